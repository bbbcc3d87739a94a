"""The invitation outbox: every stored invitation is sent exactly once.

A message is stored ``pending`` in the same transaction as its case.  It is
sent by the request that opened the case, a later widget request, the worker,
or ``flask --app wsgi tvwidget outbox send`` from cron on any number of
machines, each through ``tvwidget.storage.delivery``: claimed with a lease,
spoken over SMTP with no transaction open, then recorded.  A temporary
failure is tried again after ``BACKOFF``; a permanent one, the last of
``MAX_ATTEMPTS`` tries, or a case closed before its invitation went out ends
in ``failed``.  A message sent again keeps its ``Message-ID``.
"""
from datetime import datetime, timedelta

import sqlalchemy as sa

from tvwidget.config import setting
from tvwidget.extensions import db
from tvwidget.mail import message as mail
from tvwidget.storage import audit, delivery
from tvwidget.storage.models import CaseState, EmailMessage, utcnow

# Waits after the 1st, 2nd, ... failed try; the try after the last wait is the final one.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=60),
           timedelta(minutes=240))
MAX_ATTEMPTS = len(BACKOFF) + 1
CASE_GONE = "the service case was closed or expired before the invitation went out"


def _lease() -> timedelta:
    # Far beyond one delivery: connect, EHLO, MAIL, RCPT, DATA each wait at most SMTP_TIMEOUT.
    return timedelta(seconds=max(60.0, 8 * float(setting("SMTP_TIMEOUT"))))


def _prepare(message: EmailMessage, now: datetime, actor=None) -> delivery.Attempt:
    """Read the claimed ``message``: SMTP it while its case is open, and audit the outcome either way."""
    case = message.case
    outgoing = mail.Outgoing.of(message)
    ticket_id, case_id = (case.ticket_id, case.id) if case is not None else (None, None)
    case_open = case is not None and case.state == CaseState.OPEN and case.is_valid(now)

    def recorded(outcome: delivery.Outcome) -> None:
        about = {"ticket_id": ticket_id, "case_id": case_id, "recipient": outgoing.recipient,
                 "message_id": outgoing.message_id, "attempt": outcome.attempts}
        if outcome.error is None:
            audit.record("email_sent", actor, **about)
        else:
            audit.record("email_failed", actor, **about, error=outcome.error.description,
                         final=outcome.status == "failed", retry_at=outcome.retry_at)

    return delivery.Attempt(deliver=lambda: mail.deliver(outgoing), recorded=recorded,
                            refused=None if case_open else mail.DeliveryError(CASE_GONE, permanent=True))


OUTBOX = delivery.Delivery(EmailMessage, noun="invitation", done="sent", prepare=_prepare, backoff=BACKOFF,
                           lease=_lease, max_attempts=MAX_ATTEMPTS, order_by=("next_attempt_at", "id"))


def send_one(message_id: int, actor=None) -> str | None:
    """Claim, send and record one pending message; return its new status, or None if another sender has it."""
    return OUTBOX.send_one(message_id, actor=actor)


def send_due(limit: int | None = None, actor=None):
    """Send every due pending message (at most ``limit``); return how many ended in each status (a Counter)."""
    return OUTBOX.send_due(limit=limit, actor=actor)


def reschedule(message: EmailMessage, now: datetime | None = None) -> bool:
    """Make ``message`` due now for a fresh round of tries (keeping its Message-ID); False while it is being sent.

    The caller commits.
    """
    now = now or utcnow()
    result = db.session.execute(
        sa.update(EmailMessage)
        .where(EmailMessage.id == message.id, OUTBOX.unclaimed(now))
        .values(status="pending", attempts=0, next_attempt_at=now, claimed_until=None)
        .execution_options(synchronize_session=False))
    db.session.refresh(message)
    return result.rowcount == 1


def send_one_due_after(response):
    """Send at most one due message once ``response`` has gone out (the outbox's opportunistic sender)."""
    return OUTBOX.send_due_after(response, 1, "sending a due invitation")


outbox_cli = OUTBOX.cli("outbox", "The invitation email outbox.",
                        "{done} sent, {pending} to retry later, {failed} failed, {taken} taken by another sender; "
                        "{backlog} pending in all.")
