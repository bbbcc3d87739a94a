"""Durable delivery: a table of items (invitations, webhook events) each delivered once, from any process.

An item is stored ``pending`` in the same transaction as the change it belongs
to.  Whoever delivers it (the request that made it, once its response has gone
out; the worker; a cron command; on any number of machines) first *claims* it
with one conditional UPDATE, so of several senders exactly one wins.  The claim
is a lease (``claimed_until``), so a sender that died mid-way does not hold the
item for ever.  The delivery itself (SMTP, an HTTP POST) runs with no database
transaction open; then the outcome is recorded by a second conditional UPDATE
that only the lease's holder can make: done, ``pending`` again with a later
``next_attempt_at`` (the back-off), or ``failed`` once trying again cannot help.

A ``Delivery`` names the table and the rules of one kind of item; the table has
the columns ``status``, ``attempts``, ``last_error``, ``created_at``,
``next_attempt_at``, ``claimed_until`` and ``<done>_at`` (``sent_at``,
``delivered_at``).
"""
import dataclasses
import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from tvwidget.after_response import after_response
from tvwidget.extensions import db
from tvwidget.storage import database
from tvwidget.storage.models import utcnow

log = logging.getLogger(__name__)

TAKEN = "taken by another sender"  # what ``send_due`` counts for an item another sender had claimed


class Failed(Exception):
    """A delivery did not go through: ``description`` says why, ``permanent`` whether trying again can help."""

    def __init__(self, description: str, permanent: bool = False):
        super().__init__(description)
        self.description = description[:500]
        self.permanent = permanent


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What was recorded for one try: the new ``status``, the tries so far, the failure and the next try's time."""

    status: str
    attempts: int
    error: Failed | None
    retry_at: datetime | None


def _nothing(outcome: Outcome) -> None:
    return None


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One claimed item, read in the claim's transaction: how to deliver it and what else its outcome records.

    ``deliver()`` runs with no transaction open and raises ``Failed``;
    ``refused`` is a failure known before trying (nothing is tried, no try
    is counted); ``recorded(outcome)`` runs in the outcome's transaction,
    which it commits with (an audit event, say).
    """

    deliver: Callable[[], None]
    refused: Failed | None = None
    recorded: Callable[[Outcome], None] = _nothing


@dataclasses.dataclass(frozen=True)
class Delivery:
    """The rules of one kind of item.

    ``prepare(row, now, **context)`` reads what the delivery needs from the
    claimed ``row`` and returns its ``Attempt``.  After a failed try the item
    waits ``backoff[tries - 1]`` (the last wait again once they run out); it
    fails for good on a permanent failure, after ``max_attempts`` tries, or
    once ``give_up_after`` has passed since it was made.
    """

    model: type
    noun: str  # for the log: "invitation"
    done: str  # the status once delivered: "sent"
    prepare: Callable[..., Attempt]
    backoff: tuple[timedelta, ...]
    lease: Callable[[], timedelta]  # far longer than one delivery can take
    max_attempts: int | None = None
    give_up_after: timedelta | None = None
    order_by: tuple[str, ...] = ("id",)  # the due items' order
    enabled: Callable[[], bool] = lambda: True

    def unclaimed(self, now: datetime):
        """Return the condition of an item nobody holds at ``now`` (never claimed, or its lease ran out)."""
        return sa.or_(self.model.claimed_until.is_(None), self.model.claimed_until < now)

    def due_ids(self, now: datetime | None = None, limit: int | None = None) -> list[int]:
        """Return the ids of pending items whose time has come and that nobody holds."""
        now = now or utcnow()
        model = self.model
        query = (sa.select(model.id)
                 .where(model.status == "pending", self.unclaimed(now),
                        sa.or_(model.next_attempt_at.is_(None), model.next_attempt_at <= now))
                 .order_by(*(getattr(model, column) for column in self.order_by)))
        if limit is not None:
            query = query.limit(limit)
        with database.reading():
            ids = list(db.session.scalars(query))
            db.session.rollback()
        return ids

    def backlog(self) -> int:
        """Return how many items are pending, due or not."""
        count = db.session.scalar(sa.select(sa.func.count()).select_from(self.model)
                                  .where(self.model.status == "pending"))
        db.session.rollback()
        return count

    def send_one(self, item_id: int, **context) -> str | None:
        """Claim, deliver and record one pending item; return its new status, or None if another sender has it.

        Commits: the claim before the delivery, the outcome after.
        """
        db.session.rollback()  # the claim is the transaction's first statement (SQLite takes its write lock there)
        now = utcnow()
        lease_until = now + self.lease()
        claimed = db.session.execute(
            sa.update(self.model)
            .where(self.model.id == item_id, self.model.status == "pending", self.unclaimed(now))
            .values(claimed_until=lease_until)
            .execution_options(synchronize_session=False))
        if claimed.rowcount != 1:
            db.session.rollback()
            return None
        row = db.session.get(self.model, item_id, populate_existing=True)
        attempt = self.prepare(row, now, **context)
        attempts, created_at = row.attempts + (0 if attempt.refused else 1), row.created_at
        db.session.commit()  # the claim; from here on no transaction is open while the delivery runs

        error = attempt.refused
        if error is None:
            try:
                attempt.deliver()
            except Failed as exc:
                error = exc
        return self._record(item_id, lease_until, attempts, created_at, error, attempt)

    def _record(self, item_id: int, lease_until: datetime, attempts: int, created_at: datetime,
                error: Failed | None, attempt: Attempt) -> str:
        finished = utcnow()
        if error is None:
            status, values = self.done, {f"{self.done}_at": finished, "last_error": None, "next_attempt_at": None}
        elif (error.permanent or (self.max_attempts is not None and attempts >= self.max_attempts)
              or (self.give_up_after is not None and finished - created_at >= self.give_up_after)):
            status, values = "failed", {"last_error": error.description, "next_attempt_at": None}
        else:
            wait = self.backoff[min(max(attempts, 1), len(self.backoff)) - 1]
            status, values = "pending", {"last_error": error.description, "next_attempt_at": finished + wait}
        recorded = db.session.execute(
            sa.update(self.model)
            .where(self.model.id == item_id, self.model.claimed_until == lease_until)
            .values(status=status, attempts=attempts, claimed_until=None, **values)
            .execution_options(synchronize_session=False))
        if recorded.rowcount != 1:
            # Only possible if this sender outlived its lease and another took over.
            log.warning("%s %s: outcome %s not recorded, the claim had lapsed", self.noun, item_id, status)
            db.session.rollback()
            return status
        if error is not None:
            log.warning("%s %s not %s (%s): %s", self.noun, item_id, self.done, status, error.description)
        attempt.recorded(Outcome(status, attempts, error, values["next_attempt_at"]))
        db.session.commit()
        return status

    def send_due(self, limit: int | None = None, stopping: Callable[[], bool] = lambda: False,
                 **context) -> Counter:
        """Deliver every due item (at most ``limit``, until ``stopping()``); count how many ended in each status."""
        outcome = Counter()
        if not self.enabled():
            return outcome
        for item_id in self.due_ids(limit=limit):
            if stopping():
                break
            outcome[self.send_one(item_id, **context) or TAKEN] += 1
        return outcome

    def send_due_after(self, response, limit: int, what: str):
        """Deliver at most ``limit`` due items once ``response`` has gone out, so nobody waits for them."""
        if not self.enabled():
            return response
        return after_response(response, lambda: self.send_due(limit=limit), what)

    def cli(self, name: str, help: str, summary: str, off: str = "") -> AppGroup:
        """Return the command group ``name`` with its ``send`` command (for cron; safe on several machines).

        ``summary`` formats the outcome from ``done``, ``pending``, ``failed``,
        ``taken`` and ``backlog``; ``off`` is said instead when not ``enabled()``.
        """
        group = AppGroup(name, help=help)

        @group.command("send", help=f"Deliver every due {self.noun} (safe to run from cron on several machines "
                                    "at once).")
        @click.option("--limit", type=click.IntRange(min=1), default=None,
                      help=f"Deliver at most this many {self.noun}s.")
        def send(limit):
            if not self.enabled():
                click.echo(off)
                return
            outcome = self.send_due(limit=limit)
            click.echo(summary.format(done=outcome[self.done], pending=outcome["pending"], failed=outcome["failed"],
                                      taken=outcome[TAKEN], backlog=self.backlog()))

        return group
