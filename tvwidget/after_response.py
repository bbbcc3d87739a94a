"""Work done once a response has gone out: the person in front of the screen never waits for it."""
import logging

from flask import Response, current_app

log = logging.getLogger(__name__)


def after_response(response: Response, work, what: str) -> Response:
    """Run ``work()`` in an app context when the server closes ``response``.

    For opportunistic work a cron job also does (sending due mail, delivering
    webhooks, sweeping spent tokens): a failure is logged and otherwise ignored.
    """
    app = current_app._get_current_object()

    def run():
        try:
            with app.app_context():
                work()
        except Exception:  # noqa: BLE001 - a background nicety must never break anything; cron catches up
            log.exception("%s after the response failed", what)

    response.call_on_close(run)
    return response
