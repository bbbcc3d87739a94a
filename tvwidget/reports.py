"""The TeamViewer Sessions Summary (F10): totals and breakdowns over stopped cases."""
from datetime import datetime

import sqlalchemy as sa

from .extensions import db
from .models import CaseState, ServiceCase

BREAKDOWNS = {
    "by_category": ServiceCase.ticket_category,
    "by_type": ServiceCase.ticket_type,
    "by_priority": ServiceCase.ticket_priority,
    "by_source": ServiceCase.ticket_source,
}


def _duration():
    # Seconds between play and stop, computed in SQL on both engines.
    if db.session.get_bind().dialect.name == "postgresql":
        return sa.func.extract("epoch", ServiceCase.closed_at - ServiceCase.opened_at)
    return (sa.func.julianday(ServiceCase.closed_at) - sa.func.julianday(ServiceCase.opened_at)) * 86400.0


def _item(value, sessions: int, total: float | None) -> dict:
    total = int(round(total or 0))
    return {"value": value, "sessions": sessions, "total_duration_seconds": total,
            "average_duration_seconds": int(round(total / sessions)) if sessions else 0}


def summary(since: datetime, until: datetime, technician: str | None = None) -> dict:
    """Return the report for cases stopped by an agent and opened in [since, until)."""
    duration = _duration()
    filters = [ServiceCase.state == CaseState.CLOSED, ServiceCase.opened_at >= since, ServiceCase.opened_at < until]
    if technician:
        filters.append(ServiceCase.opened_by_id == technician)

    def grouped(column, *extra):
        return db.session.execute(
            sa.select(column, *extra, sa.func.count(), sa.func.sum(duration)).where(*filters).group_by(column)
            .order_by(sa.func.count().desc(), column)).all()

    total_sessions, total_seconds = db.session.execute(
        sa.select(sa.func.count(), sa.func.sum(duration)).where(*filters)).one()
    totals = _item(None, total_sessions, total_seconds)
    report = {
        "total_sessions": total_sessions,
        "total_duration_seconds": totals["total_duration_seconds"],
        "average_duration_seconds": totals["average_duration_seconds"],
        "by_technician": [
            _item(tech_id, count, seconds) | {"name": name}
            for tech_id, name, count, seconds in grouped(ServiceCase.opened_by_id,
                                                               sa.func.max(ServiceCase.opened_by_name))
        ],
    }
    for key, column in BREAKDOWNS.items():
        report[key] = [_item(value, count, seconds) for value, count, seconds in grouped(column)]
    return report
