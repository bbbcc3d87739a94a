"""Real connection times: what TeamViewer's connection report says happened in a case.

After a case is stopped or expires, ``flask --app wsgi tvwidget sync-connections``
(from cron) reads ``GET /reports/connections?session_code=…`` for it and stores
each connection.  Reports appear late, so a case is asked about again on every
run (at most every ``RETRY_EVERY``) until TeamViewer reports connections that
have all ended, or until ``GIVE_UP_AFTER`` has passed since the case ended.
Once it has them, the ticket gets a ``connections`` comment with the connected
time.  Several cron runs on several machines claim a case with one conditional
UPDATE, as the live status does, so each case is asked about once per turn.
"""
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_babel import force_locale, gettext

from tvwidget import timefmt
from tvwidget.cases import lifecycle as cases
from tvwidget.config import setting
from tvwidget.extensions import db
from tvwidget.storage.models import CaseState, CaseTracking, Comment, Connection, ServiceCase, utcnow
from tvwidget.teamviewer import integration
from tvwidget.teamviewer.client import TeamViewerError

log = logging.getLogger(__name__)

GIVE_UP_AFTER = timedelta(hours=48)
RETRY_EVERY = timedelta(minutes=10)


@dataclass
class SyncOutcome:
    synced: int = 0
    waiting: int = 0
    errors: int = 0


def connected_seconds(case_ids: list[int]) -> dict[int, int]:
    """Return the total connected seconds per case (cases without reported connections are left out)."""
    if not case_ids:
        return {}
    totals: dict[int, int] = {}
    for connection in db.session.scalars(sa.select(Connection).where(Connection.case_id.in_(case_ids))):
        totals[connection.case_id] = totals.get(connection.case_id, 0) + connection.seconds
    return totals


def candidates(now: datetime) -> list[tuple[int, str]]:
    """Return ``(case id, code)`` of ended cases whose connections are still awaited and due a try."""
    ended = sa.case((ServiceCase.state == CaseState.CLOSED, ServiceCase.closed_at), else_=ServiceCase.valid_until)
    query = (sa.select(ServiceCase.id, ServiceCase.code)
             .outerjoin(CaseTracking, CaseTracking.case_id == ServiceCase.id)
             .where(ServiceCase.state.in_((CaseState.CLOSED, CaseState.EXPIRED)), ServiceCase.code.is_not(None),
                    ended >= now - GIVE_UP_AFTER,
                    CaseTracking.connections_synced_at.is_(None),
                    sa.or_(CaseTracking.connections_checked_at.is_(None),
                           CaseTracking.connections_checked_at <= now - RETRY_EVERY))
             .order_by(ServiceCase.id))
    rows = [(case_id, code) for case_id, code in db.session.execute(query)]
    db.session.rollback()
    return rows


def _claim(case_id: int, now: datetime) -> bool:
    """Take the right to read the case's connection reports now; True for exactly one of racing syncs."""
    due = sa.and_(CaseTracking.connections_synced_at.is_(None),
                  sa.or_(CaseTracking.connections_checked_at.is_(None),
                         CaseTracking.connections_checked_at <= now - RETRY_EVERY))
    return cases.claim_tracking(case_id, due, connections_checked_at=now)


def sync(now: datetime | None = None, stopping=lambda: False) -> SyncOutcome | None:
    """Fetch the connection reports of every ended case that awaits them; None when not connected. Commits.

    Returns early, between two cases, once ``stopping()`` is true (the worker is asked to stop).
    """
    now = now or utcnow()
    client = integration.connected_client(integration.settings())
    db.session.rollback()
    if client is None:
        return None
    outcome = SyncOutcome()
    with client:
        for case_id, code in candidates(now):
            if stopping():
                break
            if not _claim(case_id, now):
                db.session.rollback()
                continue
            db.session.commit()
            try:
                records = client.connection_reports(code)
            except TeamViewerError as exc:
                log.warning("connection report for %s failed: %s", code, exc.kind)
                outcome.errors += 1
                continue
            if _store(case_id, records):
                outcome.synced += 1
            else:
                outcome.waiting += 1
            db.session.commit()
    return outcome


def _store(case_id: int, records) -> bool:
    """Store (or update) the case's connections; True once they are complete (some, all ended)."""
    existing = {row.report_id: row for row in db.session.scalars(
        sa.select(Connection).where(Connection.case_id == case_id))}
    for record in records:
        row = existing.get(record.id)
        if row is None:
            row = Connection(case_id=case_id, report_id=record.id)
            db.session.add(row)
        row.start_at, row.end_at = record.start, record.end
        row.userid, row.username = record.userid, record.username
        row.deviceid, row.devicename = record.deviceid, record.devicename
        row.notes = record.notes
        row.fetched_at = utcnow()
    complete = bool(records) and all(record.end is not None for record in records)
    if complete:
        db.session.execute(sa.update(CaseTracking).where(CaseTracking.case_id == case_id)
                           .values(connections_synced_at=utcnow()).execution_options(synchronize_session=False))
        _add_comment(db.session.get(ServiceCase, case_id), records)
    return complete


def _add_comment(case: ServiceCase, records) -> None:
    """Comment the connected time beside the play/stop times already on the ticket."""
    locale = setting("DEFAULT_LOCALE")
    # Whole seconds, truncated as Connection.seconds counts them, so the lines add up to the total.
    timed = [(record, max(0, int((record.end - record.start).total_seconds())))
             for record in sorted(records, key=lambda r: r.start)]
    with force_locale(locale):
        lines = [gettext("TeamViewer connections in service case %(code)s: %(count)d, connected %(duration)s.",
                         code=case.code, count=len(timed),
                         duration=timefmt.format_duration(sum(seconds for _, seconds in timed)))]
        for record, seconds in timed:
            lines.append(gettext("%(start)s – %(end)s (%(duration)s) by %(user)s on %(device)s",
                                 start=record.start.strftime("%Y-%m-%d %H:%M:%S UTC"),
                                 end=record.end.strftime("%H:%M:%S UTC"),
                                 duration=timefmt.format_duration(seconds),
                                 user=record.username or record.userid or "?",
                                 device=record.devicename or record.deviceid or "?"))
    db.session.add(Comment(ticket_id=case.ticket_id, case_id=case.id, kind="connections",
                           body="\n".join(lines), author_name="tvwidget"))
