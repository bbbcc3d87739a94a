"""The invitation outbox (a transactional outbox): every stored invitation is sent exactly once.

A message is stored ``pending`` in the same transaction as its case.  Whoever
sends it (the request that opened the case, a later widget request, or
``flask --app wsgi tvwidget outbox send`` from cron on any number of machines)
first *claims* it with one conditional UPDATE, so of several senders exactly
one wins; the claim is a lease, so a sender that died mid-way does not hold the
message forever.  SMTP is spoken with no database transaction open, then the
outcome is recorded: ``sent``; ``pending`` again with a later
``next_attempt_at`` after a temporary failure; or ``failed`` after a permanent
one or too many tries.  A message sent again keeps its ``Message-ID``.
"""
import logging
from collections import Counter
from datetime import datetime, timedelta

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from tvwidget.after_response import after_response
from tvwidget.config import setting
from tvwidget.extensions import db
from tvwidget.mail import message as mail
from tvwidget.storage import audit, database
from tvwidget.storage.models import CaseState, EmailMessage, utcnow

log = logging.getLogger(__name__)

# Waits after the 1st, 2nd, ... failed try; the try after the last wait is the final one.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=60),
           timedelta(minutes=240))
MAX_ATTEMPTS = len(BACKOFF) + 1
CASE_GONE = "the service case was closed or expired before the invitation went out"


def _lease() -> timedelta:
    # Far beyond one delivery: connect, EHLO, MAIL, RCPT, DATA each wait at most SMTP_TIMEOUT.
    return timedelta(seconds=max(60.0, 8 * float(setting("SMTP_TIMEOUT"))))


def _unclaimed(now: datetime):
    return sa.or_(EmailMessage.claimed_until.is_(None), EmailMessage.claimed_until < now)


def due_ids(now: datetime | None = None, limit: int | None = None) -> list[int]:
    """Return the ids of pending messages whose time has come and that nobody holds."""
    now = now or utcnow()
    query = (sa.select(EmailMessage.id)
             .where(EmailMessage.status == "pending", _unclaimed(now),
                    sa.or_(EmailMessage.next_attempt_at.is_(None), EmailMessage.next_attempt_at <= now))
             .order_by(EmailMessage.next_attempt_at, EmailMessage.id))
    if limit is not None:
        query = query.limit(limit)
    with database.reading():
        ids = list(db.session.scalars(query))
        db.session.rollback()
    return ids


def send_one(message_id: int, actor=None) -> str | None:
    """Claim, send and record one pending message; return its new status, or None if another sender has it.

    Commits: the claim before SMTP, the outcome (with its audit event) after.
    """
    now = utcnow()
    lease_until = now + _lease()
    claimed = db.session.execute(
        sa.update(EmailMessage)
        .where(EmailMessage.id == message_id, EmailMessage.status == "pending", _unclaimed(now))
        .values(claimed_until=lease_until)
        .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        db.session.rollback()
        return None
    message = db.session.get(EmailMessage, message_id, populate_existing=True)
    case = message.case
    outgoing = mail.Outgoing.of(message)
    attempts = message.attempts
    ticket_id, case_id = (case.ticket_id, case.id) if case is not None else (None, None)
    case_open = case is not None and case.state == CaseState.OPEN and case.is_valid(now)
    db.session.commit()  # the claim; from here on no transaction is open while SMTP talks

    error = None
    if not case_open:
        error = mail.DeliveryError(CASE_GONE, permanent=True)
    else:
        try:
            mail.deliver(outgoing)
        except mail.DeliveryError as exc:
            error = exc
    return _record(outgoing, attempts + (1 if case_open else 0), lease_until, error, actor, ticket_id, case_id)


def _record(outgoing: mail.Outgoing, attempts: int, lease_until: datetime, error, actor, ticket_id, case_id) -> str:
    finished = utcnow()
    if error is None:
        status, values = "sent", {"sent_at": finished, "last_error": None, "next_attempt_at": None}
    elif error.permanent or attempts >= MAX_ATTEMPTS:
        status, values = "failed", {"last_error": error.description, "next_attempt_at": None}
    else:
        status = "pending"
        values = {"last_error": error.description, "next_attempt_at": finished + BACKOFF[max(attempts, 1) - 1]}
    recorded = db.session.execute(
        sa.update(EmailMessage)
        .where(EmailMessage.id == outgoing.id, EmailMessage.claimed_until == lease_until)
        .values(status=status, attempts=attempts, claimed_until=None, **values)
        .execution_options(synchronize_session=False))
    if recorded.rowcount != 1:
        # Only possible if this sender outlived its lease and another took over.
        log.warning("invitation %s: outcome %s not recorded, the claim had lapsed", outgoing.id, status)
        db.session.rollback()
        return status
    if error is None:
        audit.record("email_sent", actor, ticket_id=ticket_id, case_id=case_id, recipient=outgoing.recipient,
                     message_id=outgoing.message_id, attempt=attempts)
    else:
        log.warning("invitation %s not sent (%s): %s", outgoing.id, status, error.description)
        audit.record("email_failed", actor, ticket_id=ticket_id, case_id=case_id, recipient=outgoing.recipient,
                     message_id=outgoing.message_id, attempt=attempts, error=error.description,
                     final=status == "failed", retry_at=values.get("next_attempt_at"))
    db.session.commit()
    return status


def send_due(limit: int | None = None, actor=None) -> Counter:
    """Send every due pending message (at most ``limit``); return how many ended in each status."""
    outcome = Counter()
    for message_id in due_ids(limit=limit):
        status = send_one(message_id, actor)
        outcome[status or "taken by another sender"] += 1
    return outcome


def reschedule(message: EmailMessage, now: datetime | None = None) -> bool:
    """Make ``message`` due now for a fresh round of tries (keeping its Message-ID); False while it is being sent.

    The caller commits.
    """
    now = now or utcnow()
    result = db.session.execute(
        sa.update(EmailMessage)
        .where(EmailMessage.id == message.id, _unclaimed(now))
        .values(status="pending", attempts=0, next_attempt_at=now, claimed_until=None)
        .execution_options(synchronize_session=False))
    db.session.refresh(message)
    return result.rowcount == 1


def send_one_due_after(response):
    """Send at most one due message once ``response`` has gone out (the outbox's opportunistic sender)."""
    return after_response(response, lambda: send_due(limit=1), "sending a due invitation")


outbox_cli = AppGroup("outbox", help="The invitation email outbox.")


@outbox_cli.command("send")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Send at most this many messages.")
def send_command(limit):
    """Send every due invitation (safe to run from cron on several machines at once)."""
    outcome = send_due(limit=limit)
    pending = db.session.scalar(sa.select(sa.func.count()).select_from(EmailMessage)
                                .where(EmailMessage.status == "pending"))
    db.session.rollback()
    click.echo(f"{outcome['sent']} sent, {outcome['pending']} to retry later, {outcome['failed']} failed, "
               f"{outcome['taken by another sender']} taken by another sender; {pending} pending in all.")
