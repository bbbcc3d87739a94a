"""The host webhook: ``service_case.opened|closed|expired`` events, signed, delivered once.

The payload and its signature are described in docs/host-contract.md ("Webhook").

With ``TVWIDGET_HOST_WEBHOOK_URL`` set, an event is stored in the same
transaction as the change it describes, so a change is never announced
without having happened, nor lost because the host was down.  It is delivered
like the invitation outbox (``tvwidget.mail.outbox``): a sender (the request that
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
import logging
import uuid
from collections import Counter
from datetime import datetime, timedelta

import click
import requests
import sqlalchemy as sa
from flask.cli import AppGroup

from tvwidget import timefmt
from tvwidget.after_response import after_response
from tvwidget.config import setting
from tvwidget.extensions import db
from tvwidget.storage import database
from tvwidget.storage.models import ServiceCase, WebhookEvent, utcnow

log = logging.getLogger(__name__)

EVENTS = ("service_case.opened", "service_case.closed", "service_case.expired")
# Waits after the 1st, 2nd, ... failed try; then every last wait until GIVE_UP_AFTER has passed.
BACKOFF = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1),
           timedelta(hours=6))
GIVE_UP_AFTER = timedelta(days=7)
TIMEOUT = (3.05, 10.0)
LEASE = timedelta(seconds=60)  # far beyond one POST with TIMEOUT
SIGNATURE_HEADER = "X-TVWidget-Signature"


def enabled() -> bool:
    return bool(setting("HOST_WEBHOOK_URL", None))


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


def _unclaimed(now: datetime):
    return sa.or_(WebhookEvent.claimed_until.is_(None), WebhookEvent.claimed_until < now)


def due_ids(now: datetime | None = None, limit: int | None = None) -> list[int]:
    """Return the ids of pending events whose time has come and that nobody holds, oldest first."""
    now = now or utcnow()
    query = (sa.select(WebhookEvent.id)
             .where(WebhookEvent.status == "pending", _unclaimed(now), WebhookEvent.next_attempt_at <= now)
             .order_by(WebhookEvent.id))
    if limit is not None:
        query = query.limit(limit)
    with database.reading():
        ids = list(db.session.scalars(query))
        db.session.rollback()
    return ids


def send_one(event_id: int) -> str | None:
    """Claim, POST and record one pending event; return its new status, or None if another sender has it.

    Commits: the claim before the POST, the outcome after.
    """
    db.session.rollback()  # the claim is the transaction's first statement (SQLite takes its write lock there)
    now = utcnow()
    lease_until = now + LEASE
    claimed = db.session.execute(
        sa.update(WebhookEvent)
        .where(WebhookEvent.id == event_id, WebhookEvent.status == "pending", _unclaimed(now))
        .values(claimed_until=lease_until)
        .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        db.session.rollback()
        return None
    event = db.session.get(WebhookEvent, event_id, populate_existing=True)
    body, kind, delivery, attempts, created_at = (event.body.encode(), event.kind, event.event_id,
                                                  event.attempts + 1, event.created_at)
    url, secret = setting("HOST_WEBHOOK_URL"), setting("EMBED_SECRET")
    db.session.commit()

    error = None
    try:
        response = requests.post(url, data=body, timeout=TIMEOUT, allow_redirects=False, headers={
            "Content-Type": "application/json", SIGNATURE_HEADER: signature(body, secret),
            "X-TVWidget-Event": kind, "X-TVWidget-Delivery": delivery, "User-Agent": "tvwidget-webhook"})
        if not 200 <= response.status_code < 300:
            error = f"HTTP {response.status_code}"
        response.close()
    except requests.RequestException as exc:
        error = type(exc).__name__

    finished = utcnow()
    if error is None:
        status, values = "delivered", {"delivered_at": finished, "last_error": None, "next_attempt_at": None}
    elif finished - created_at >= GIVE_UP_AFTER:
        status, values = "failed", {"last_error": error, "next_attempt_at": None}
    else:
        wait = BACKOFF[min(attempts, len(BACKOFF)) - 1]
        status, values = "pending", {"last_error": error, "next_attempt_at": finished + wait}
    recorded = db.session.execute(
        sa.update(WebhookEvent)
        .where(WebhookEvent.id == event_id, WebhookEvent.claimed_until == lease_until)
        .values(status=status, attempts=attempts, claimed_until=None, **values)
        .execution_options(synchronize_session=False))
    if recorded.rowcount != 1:
        log.warning("webhook event %s: outcome %s not recorded, the claim had lapsed", event_id, status)
        db.session.rollback()
        return status
    if error is not None:
        log.warning("webhook event %s (%s) not delivered: %s", event_id, kind, error)
    db.session.commit()
    return status


def send_due(limit: int | None = None) -> Counter:
    """Deliver every due event (at most ``limit``); return how many ended in each status."""
    outcome = Counter()
    if not enabled():
        return outcome
    for event_id in due_ids(limit=limit):
        outcome[send_one(event_id) or "taken by another sender"] += 1
    return outcome


def send_due_after(response):
    """Deliver due events once ``response`` has gone out, so the agent never waits for the host."""
    if not enabled():
        return response
    return after_response(response, lambda: send_due(limit=10), "webhook delivery")


webhook_cli = AppGroup("webhook", help="The host webhook's event queue.")


@webhook_cli.command("send")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Deliver at most this many events.")
def send_command(limit):
    """Deliver every due webhook event (safe to run from cron on several machines at once)."""
    if not enabled():
        click.echo("TVWIDGET_HOST_WEBHOOK_URL is not set: no webhook to deliver to.")
        return
    outcome = send_due(limit=limit)
    pending = db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEvent)
                                .where(WebhookEvent.status == "pending"))
    db.session.rollback()
    click.echo(f"{outcome['delivered']} delivered, {outcome['pending']} to retry later, {outcome['failed']} "
               f"given up, {outcome['taken by another sender']} taken by another sender; {pending} pending in all.")
