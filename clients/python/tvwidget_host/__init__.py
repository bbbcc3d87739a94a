"""tvwidget's host kit: everything a Python helpdesk needs to embed tvwidget.

- ``sign_launch_token``: the launch token for the widget (or the admin area);
- ``HostClient``: the host API (tickets, the close guard, comments, report);
- ``verify_webhook``: check and parse a webhook delivery.

Only PyJWT and requests are needed; nothing here imports Flask.
"""
from .client import HostClient
from .errors import (
                     ActiveServiceCase,
                     BadRequest,
                     DuplicateDelivery,
                     InvalidPayload,
                     InvalidSignature,
                     NotFound,
                     StaleDelivery,
                     TVWidgetError,
                     Unauthorized,
                     Unavailable,
                     WebhookError,
)
from .tokens import sign_launch_token
from .webhook import (
                     RETRY_WINDOW,
                     WEBHOOK_DELIVERY_HEADER,
                     WEBHOOK_EVENT_HEADER,
                     WEBHOOK_SIGNATURE_HEADER,
                     WebhookEvent,
                     signature,
                     verify_webhook,
)

__version__ = "0.1.0"

__all__ = [
    "HostClient", "sign_launch_token", "verify_webhook", "signature", "WebhookEvent",
    "WEBHOOK_SIGNATURE_HEADER", "WEBHOOK_DELIVERY_HEADER", "WEBHOOK_EVENT_HEADER", "RETRY_WINDOW",
    "TVWidgetError", "Unauthorized", "NotFound", "BadRequest", "ActiveServiceCase", "Unavailable",
    "WebhookError", "InvalidSignature", "InvalidPayload", "StaleDelivery", "DuplicateDelivery",
]
