"""Typed errors: every failure a host can meet, with tvwidget's own code and message where it gave one."""
from __future__ import annotations


class TVWidgetError(Exception):
    """Base of every error the kit raises (other than ``ValueError``/``TypeError`` for bad arguments).

    ``code`` is tvwidget's machine-readable error code (``"active_service_case"``,
    ``"unauthorized"``, ...) or the kit's own (``"unreachable"``, ``"bad_reply"``,
    ``"invalid_signature"``, ...); ``message`` is a sentence a person can read;
    ``status`` is the HTTP status tvwidget answered, or None when there was no answer.
    """

    def __init__(self, message: str, *, code: str = "error", status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, message={self.message!r})"


class Unauthorized(TVWidgetError):
    """401: the host API key is wrong (compare it with tvwidget's TVWIDGET_HOST_API_KEY)."""


class NotFound(TVWidgetError):
    """404 other than "no active case": usually a wrong base URL."""


class BadRequest(TVWidgetError):
    """400/422 (and 413): tvwidget refused the request's data; ``message`` says what is wrong."""


class ActiveServiceCase(TVWidgetError):
    """409 from the close guard: the ticket has a valid TeamViewer service case.

    ``case`` is the case as tvwidget describes it (``code``, ``state``,
    ``valid_until``, ``supporter_link``, ``end_customer_link``, ``opened_at``,
    ``opened_by``); ``message`` is tvwidget's sentence for the person who tried
    to close the ticket.
    """

    def __init__(self, message: str, *, case: dict, code: str = "active_service_case", status: int | None = 409):
        super().__init__(message, code=code, status=status)
        self.case = case


class Unavailable(TVWidgetError):
    """tvwidget could not answer: network failure, timeout, 5xx, or a reply that is not tvwidget's JSON.

    Nothing is known to have changed; retrying later is safe (every host API
    call is idempotent).
    """


class WebhookError(TVWidgetError):
    """Base of the webhook checks' refusals."""


class InvalidSignature(WebhookError):
    """The body was not signed with the embed secret (forged, altered, or another secret). Answer 401."""


class InvalidPayload(WebhookError):
    """The body is signed but is not a tvwidget event. Answer 400."""


class StaleDelivery(WebhookError):
    """The event's ``occurred_at`` is older than ``max_age`` (or too far in the future).

    ``event`` is the verified event: the signature was good, only its age was refused.
    """

    def __init__(self, message: str, *, event, code: str = "stale_delivery"):
        super().__init__(message, code=code)
        self.event = event


class DuplicateDelivery(WebhookError):
    """``seen`` says this event id was already processed. Answer 2xx so tvwidget stops retrying.

    ``event`` is the verified event.
    """

    def __init__(self, message: str, *, event, code: str = "duplicate_delivery"):
        super().__init__(message, code=code)
        self.event = event
