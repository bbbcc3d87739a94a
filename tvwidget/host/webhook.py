"""The host webhook: ``service_case.opened|closed|expired`` events, signed, delivered once.

The payload and its signature are described in docs/host-contract.md ("Webhook").

With ``TVWIDGET_HOST_WEBHOOK_URL`` set, an event is stored in the same
transaction as the change it describes, so a change is never announced
without having happened, nor lost because the host was down.  It is delivered
like the invitation outbox (``tvwidget.storage.delivery``): a sender (the request that
made the change, once its response is out, or ``flask --app wsgi tvwidget
webhook send`` from cron on any machine) first claims the event with one
conditional UPDATE holding a lease, POSTs with no transaction open, then
records ``delivered``, or ``pending`` with a later try.  The body is stored as
the exact bytes that are signed and sent, so every retry carries the same
signature: ``X-TVWidget-Signature: sha256=<hex HMAC-SHA256 of the body with
TVWIDGET_EMBED_SECRET>``.  A host may see an event twice only if it answered
after the lease ran out; ``X-TVWidget-Delivery`` (the event id) lets it tell.
"""
import hashlib
import hmac
import json
import uuid
from datetime import datetime, timedelta

import requests

from tvwidget import timefmt
from tvwidget.config import setting
from tvwidget.extensions import db
from tvwidget.storage import delivery
from tvwidget.storage.models import ServiceCase, WebhookEvent, utcnow

EVENTS = ("service_case.opened", "service_case.closed", "service_case.expired")
# Waits after the 1st, 2nd, ... failed try; then every last wait until GIVE_UP_AFTER has passed.
BACKOFF = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1),
           timedelta(hours=6))
GIVE_UP_AFTER = timedelta(days=7)
TIMEOUT = (3.05, 10.0)
LEASE = timedelta(seconds=60)  # far beyond one POST with TIMEOUT
SIGNATURE_HEADER = "X-TVWidget-Signature"


def enabled() -> bool:
    return bool(setting("HOST_WEBHOOK_URL"))


def payload(kind: str, case: ServiceCase, comment: str | None, event_id: str, now: datetime) -> dict:
    """Return the event as the host receives it."""
    return {
        "id": event_id,
        "event": kind,
        "occurred_at": timefmt.iso_utc(now),
        "ticket_id": case.ticket_id,
        "service_case": {
            "code": case.code,
            "state": case.state,
            "opened_at": timefmt.iso_utc(case.opened_at),
            "valid_until": timefmt.iso_utc(case.valid_until),
            "closed_at": timefmt.iso_utc(case.closed_at),
            "ended_at": timefmt.iso_utc(case.ended_at),
            "opened_by": {"id": case.opened_by_id, "name": case.opened_by_name, "email": case.opened_by_email},
            "closed_by": {"id": case.closed_by_id, "name": case.closed_by_name} if case.closed_by_name else None,
            "outcome": case.outcome,
            "note": case.note,
        },
        "comment": comment,
    }


def enqueue(kind: str, case: ServiceCase, comment: str | None = None) -> WebhookEvent | None:
    """Store ``kind`` for ``case`` in the session (the caller commits it with the change); None when off."""
    if kind not in EVENTS:
        raise ValueError(f"unknown webhook event {kind!r}")
    if not enabled():
        return None
    now = utcnow()
    event_id = uuid.uuid4().hex
    body = json.dumps(payload(kind, case, comment, event_id, now), ensure_ascii=False, separators=(",", ":"))
    event = WebhookEvent(event_id=event_id, kind=kind, ticket_id=case.ticket_id, case_id=case.id, body=body,
                         created_at=now, next_attempt_at=now)
    db.session.add(event)
    return event


def signature(body: bytes, secret: str) -> str:
    """Return the ``X-TVWidget-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _prepare(event: WebhookEvent, now: datetime) -> delivery.Attempt:
    """Read the claimed ``event``: POST its stored body, signed, to the host."""
    body, kind, delivery_id = event.body.encode(), event.kind, event.event_id
    url, secret = setting("HOST_WEBHOOK_URL"), setting("EMBED_SECRET")

    def post() -> None:
        try:
            response = requests.post(url, data=body, timeout=TIMEOUT, allow_redirects=False, headers={
                "Content-Type": "application/json", SIGNATURE_HEADER: signature(body, secret),
                "X-TVWidget-Event": kind, "X-TVWidget-Delivery": delivery_id, "User-Agent": "tvwidget-webhook"})
        except requests.RequestException as exc:
            raise delivery.Failed(type(exc).__name__) from None
        with response:
            if not 200 <= response.status_code < 300:
                raise delivery.Failed(f"HTTP {response.status_code}")

    return delivery.Attempt(deliver=post)


QUEUE = delivery.Delivery(WebhookEvent, noun="webhook event", done="delivered", prepare=_prepare,
                          backoff=BACKOFF, lease=lambda: LEASE, give_up_after=GIVE_UP_AFTER, enabled=enabled)


def send_due(limit: int | None = None):
    """Deliver every due event (at most ``limit``); return how many ended in each status (a Counter)."""
    return QUEUE.send_due(limit=limit)


def send_due_after(response):
    """Deliver due events once ``response`` has gone out, so the agent never waits for the host."""
    return QUEUE.send_due_after(response, 10, "webhook delivery")


webhook_cli = QUEUE.cli(
    "webhook", "The host webhook's event queue.",
    "{done} delivered, {pending} to retry later, {failed} given up, {taken} taken by another sender; "
    "{backlog} pending in all.", off="TVWIDGET_HOST_WEBHOOK_URL is not set: no webhook to deliver to.")
