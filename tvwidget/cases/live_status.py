"""Live case status: is the customer there, and has TeamViewer closed the case?

Every open widget polls a cheap status fragment; TeamViewer must not see one
call per poll.  The answer is cached per case in ``tvwidget_case_tracking``,
shared by every process: a poll whose cache is older than
``STATUS_CACHE_SECONDS`` (15 s) tries to *claim* the refresh with one
conditional UPDATE, and only the claimer calls ``GET /sessions/{code}``, with
no transaction open.  So however many agents, tabs and processes watch a
case, TeamViewer is asked about it at most once per window; after a failure
(rate limit, outage) the next try waits ``STATUS_BACKOFF_SECONDS`` (60 s).
"""
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from tvwidget.cases import lifecycle as cases
from tvwidget.config import setting
from tvwidget.extensions import db
from tvwidget.storage.models import CaseState, CaseTracking, ServiceCase, utcnow
from tvwidget.storage.secrets import SecretUnreadable
from tvwidget.teamviewer import integration
from tvwidget.teamviewer.client import TeamViewerError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveStatus:
    """What the status fragment shows."""

    status: str              # waiting | online | closed | expired
    unavailable: bool        # the last check failed: shown quietly, never as an alert
    seconds_left: int | None


def _window() -> timedelta:
    return timedelta(seconds=float(setting("STATUS_CACHE_SECONDS")))


def _backoff() -> timedelta:
    return timedelta(seconds=float(setting("STATUS_BACKOFF_SECONDS")))


def _stale(now: datetime):
    """The condition under which a tracking row's status may be refreshed now."""
    return sa.or_(
        CaseTracking.status_checked_at.is_(None),
        sa.and_(CaseTracking.status_error.is_(None), CaseTracking.status_checked_at <= now - _window()),
        sa.and_(CaseTracking.status_error.is_not(None), CaseTracking.status_checked_at <= now - _backoff()),
    )


def is_due(row: CaseTracking | None, now: datetime) -> bool:
    """Return whether the cached status is old enough to ask TeamViewer again (a cheap pre-check, no write)."""
    if row is None or row.status_checked_at is None:
        return True
    return now - row.status_checked_at >= (_backoff() if row.status_error else _window())


def _claim(case_id: int, now: datetime) -> bool:
    """Take the right to ask TeamViewer about the case now; True for exactly one of any racing pollers."""
    return cases.claim_tracking(case_id, _stale(now), status_checked_at=now)


def refresh(case_id: int, code: str, now: datetime | None = None) -> str:
    """Ask TeamViewer about an open case if nobody has within the window; commits.

    Returns ``"fresh"`` (nothing asked: the cache is recent or another
    process is asking), ``"checked"``, ``"unavailable"`` or ``"closed"``
    (TeamViewer had closed it; it is now closed here, with a comment).
    """
    now = now or utcnow()
    try:
        client = integration.connected_client(integration.settings())
    except SecretUnreadable:
        client = None
    db.session.rollback()
    if client is None:
        return "fresh"
    if not _claim(case_id, now):
        db.session.rollback()
        return "fresh"
    db.session.commit()

    try:  # no transaction is open during the call
        remote = client.get_session(code)
    except TeamViewerError as exc:
        client.close()
        log.info("status of case %s unavailable: %s", case_id, exc.kind)
        _record(case_id, now, status_error=exc.kind)
        db.session.commit()
        return "unavailable"
    client.close()
    closed = remote.state == "closed"
    if not _record(case_id, now, remote_online=bool(remote.online) and not closed,
                   remote_state=remote.state, status_error=None):
        db.session.rollback()
        return "checked"
    outcome = "checked"
    if closed:
        finished = utcnow()
        when = remote.closed_at if remote.closed_at is not None and remote.closed_at <= finished else finished
        if cases.close_remotely(case_id, when):
            outcome = "closed"
    db.session.commit()
    return outcome


def _record(case_id: int, claimed_at: datetime, **values) -> bool:
    """Store a check's result, unless a later claim has overtaken this one."""
    result = db.session.execute(
        sa.update(CaseTracking)
        .where(CaseTracking.case_id == case_id, CaseTracking.status_checked_at == claimed_at)
        .values(**values)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def status_of(case: ServiceCase, row: CaseTracking | None, now: datetime) -> LiveStatus:
    """Return what the widget shows about ``case`` from the cache alone (no TeamViewer call)."""
    if case.state == CaseState.EXPIRED or (case.state == CaseState.OPEN and not case.is_valid(now)):
        return LiveStatus("expired", False, 0)
    if case.state != CaseState.OPEN:
        return LiveStatus("closed", False, None)
    left = int((case.valid_until - now).total_seconds()) if case.valid_until else None
    online = row is not None and bool(row.remote_online)
    return LiveStatus("online" if online else "waiting", row is not None and row.status_error is not None, left)
