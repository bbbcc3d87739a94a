"""The TeamViewer Sessions Summary: totals, breakdowns, outcomes, duration bands, CSV.

A session is a case an agent stopped (``closed``); its duration runs from
play to stop on this server's clock, and its connected time is what
TeamViewer's connection reports say the connections lasted (0 until they
arrive).  Cases that expired without a stop are counted apart and left out
of every duration, connected time included.  A case belongs to the day it
was opened in the viewer's time zone, and is reported under the ticket
attributes kept on the case when it opened, so later ticket edits do not
rewrite the past.

Whole UTC days and hours come from the roll-ups (``tvwidget.reports.rollup``); the
minutes of a range that fill no whole UTC hour (zones half or a quarter of an
hour off UTC) are summed from the cases themselves with the same SQL.
"""
import functools
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from tvwidget import timefmt
from tvwidget.cases.lifecycle import STOP_OUTCOMES
from tvwidget.csv_export import cell
from tvwidget.extensions import db
from tvwidget.reports import rollup
from tvwidget.storage.models import (
    CaseState,
    Connection,
    DirectoryUser,
    ReportDay,
    ReportHour,
    ReportTechnicianDay,
    ReportTechnicianHour,
    ServiceCase,
    UTCDateTime,
)
from tvwidget.teamviewer import directory

ATTRIBUTES = tuple(dimension for dimension, _ in rollup.ATTRIBUTES)
BANDS = rollup.BANDS
DEFAULT_DAYS = 30
# Far enough apart for any real range, near enough that a zone's midnight stays a valid datetime.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)
MAX_TECHNICIAN_LENGTH = 100


class FilterError(ValueError):
    """A report parameter is not acceptable; ``parameter`` names it."""

    def __init__(self, parameter: str, message):
        super().__init__(str(message))
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class Filters:
    """What a report covers: the days ``start`` to ``end`` (inclusive) in ``tz``, one or all technicians."""

    start: date
    end: date
    tz: str = "UTC"
    technician: str | None = None

    @property
    def since(self) -> datetime:
        """Return the range's first instant (midnight of ``start`` in ``tz``), in UTC."""
        return timefmt.day_start(self.start, self.tz)

    @property
    def until(self) -> datetime:
        """Return the instant just after the range (midnight after ``end`` in ``tz``), in UTC."""
        return timefmt.day_start(self.end + timedelta(days=1), self.tz)

    def query(self) -> dict:
        """Return the filters as URL parameters (the exports' links)."""
        values = {"from": self.start.isoformat(), "to": self.end.isoformat(), "technician": self.technician}
        return {key: value for key, value in values.items() if value}


def _day(args: Mapping, name: str) -> date | None:
    value = args.get(name) or None
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise FilterError(name, _l("'%(parameter)s' must be a date like 2026-11-24.", parameter=name)) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise FilterError(name, _l("'%(parameter)s' must be a date between %(first)s and %(last)s.",
                                   parameter=name, first=FIRST_DAY.isoformat(), last=LAST_DAY.isoformat()))
    return day


def parse_filters(args: Mapping, tz: str = "UTC") -> Filters:
    """Return the filters in ``args`` (``from``, ``to``, ``technician``); raise FilterError naming a bad one.

    Without dates the range is the last 30 days up to today in ``tz``.
    """
    start, end = _day(args, "from"), _day(args, "to")
    end = end or datetime.now(ZoneInfo(tz)).date()
    start = start or max(end - timedelta(days=DEFAULT_DAYS - 1), FIRST_DAY)
    if start > end:
        raise FilterError("from", _l("'from' must not be after 'to'."))
    technician = args.get("technician") or None
    if technician is not None and len(technician) > MAX_TECHNICIAN_LENGTH:
        raise FilterError("technician", _l("'technician' is too long."))
    return Filters(start, end, tz, technician)


@dataclass
class Row:
    """One line of a table: sessions, their durations and connected time, and the cases that expired without a stop."""

    value: str | None
    sessions: int = 0
    duration_seconds: int = 0
    expired: int = 0
    connected_seconds: int = 0
    name: str | None = None

    @property
    def average_seconds(self) -> int:
        return round(self.duration_seconds / self.sessions) if self.sessions else 0

    @property
    def average_connected_seconds(self) -> int:
        return round(self.connected_seconds / self.sessions) if self.sessions else 0

    def add(self, sessions: int, duration_seconds: int, expired: int, connected_seconds: int,
            name: str | None = None) -> None:
        self.sessions += int(sessions or 0)
        self.duration_seconds += int(duration_seconds or 0)
        self.expired += int(expired or 0)
        self.connected_seconds += int(connected_seconds or 0)
        self.name = name or self.name

    def as_json(self) -> dict:
        return {"value": self.value, "sessions": self.sessions, "total_duration_seconds": self.duration_seconds,
                "average_duration_seconds": self.average_seconds,
                "total_connected_seconds": self.connected_seconds,
                "average_connected_seconds": self.average_connected_seconds}


@dataclass
class WorkedBy:
    """Who really worked sessions: one TeamViewer user of the connection reports, mapped back to an agent.

    ``agent_id`` is None when no agent maps to the TeamViewer user.
    """

    teamviewer_userid: str | None
    teamviewer_name: str | None
    agent_id: str | None
    name: str | None
    sessions: int = 0
    connected_seconds: int = 0

    def as_json(self) -> dict:
        return {"value": self.agent_id, "name": self.name, "teamviewer_userid": self.teamviewer_userid,
                "teamviewer_name": self.teamviewer_name, "sessions": self.sessions,
                "total_connected_seconds": self.connected_seconds}


@dataclass
class Report:
    """The TeamViewer Sessions Summary for one set of filters."""

    filters: Filters
    total: Row
    technicians: list[Row]
    breakdowns: dict[str, list[Row]]
    outcomes: list[Row]
    bands: list[Row]
    worked_by: list[WorkedBy]

    @property
    def empty(self) -> bool:
        return not (self.total.sessions or self.total.expired)


Span = tuple[datetime, datetime]


def _whole(since: datetime, until: datetime, step: timedelta) -> Span | None:
    """Return the whole UTC days or hours (``step``) inside [since, until), or None."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)  # a midnight: whole steps count from it
    first = epoch + -((epoch - since) // step) * step
    last = epoch + ((until - epoch) // step) * step
    return (first, last) if first < last else None


def _split(since: datetime, until: datetime) -> tuple[Span | None, list[Span], list[Span]]:
    """Split [since, until) into whole UTC days, whole UTC hours around them, and the minutes left.

    A time zone's midnight is a whole UTC hour in most of the world, and
    half or a quarter past one elsewhere, so the minutes left are none or few.
    """
    days = _whole(since, until, timedelta(days=1))
    rest = [(since, days[0]), (days[1], until)] if days else [(since, until)]
    hours, minutes = [], []
    for start, stop in rest:
        whole = _whole(start, stop, timedelta(hours=1)) if start < stop else None
        if whole:
            hours.append(whole)
        minutes += [(start, stop)] if not whole else [(start, whole[0]), (whole[1], stop)]
    return days, hours, [(start, stop) for start, stop in minutes if start < stop]


def _rolled_up(table, bucket, start, stop, technician: str | None):
    """Return the roll-up ``table`` summed per dimension and value over the buckets in [start, stop)."""
    name = sa.null() if technician else sa.func.max(table.name)
    query = (sa.select(table.dimension, table.value, name,
                       *(sa.func.sum(getattr(table, measure)) for measure in rollup.CURRENT.measures))
             .where(bucket >= start, bucket < stop).group_by(table.dimension, table.value))
    if technician:
        query = query.where(table.technician_id == technician)
    return db.session.execute(query).all()


def _from_cases(since: datetime, until: datetime, technician: str | None):
    """Return the cases opened in [since, until) summed as the roll-ups would be."""
    where = "opened_at >= :since AND opened_at < :until" + (" AND opened_by_id = :technician" if technician else "")
    dialect = db.session.get_bind().dialect.name
    query = sa.text(rollup.aggregate_sql(dialect, where)).bindparams(
        sa.bindparam("since", since, type_=UTCDateTime()), sa.bindparam("until", until, type_=UTCDateTime()),
        *([sa.bindparam("technician", technician)] if technician else []))
    return db.session.execute(query).all()


def _sorted(rows: Iterable[Row]) -> list[Row]:
    # Busiest first; unknown values after known ones with as many sessions.
    return sorted((row for row in rows if row.sessions or row.expired),
                  key=lambda row: (-row.sessions, -row.expired, row.value is None, row.name or row.value or ""))


def build(filters: Filters, use_rollup: bool = True) -> Report:
    """Return the report for ``filters``.

    ``use_rollup=False`` sums every case instead of the roll-ups: the same
    figures, much slower; the tests and the benchmark compare the two.
    """
    since, until, technician = filters.since, filters.until, filters.technician
    days, hours, minutes = _split(since, until) if use_rollup else (None, [], [(since, until)])
    daily, hourly = (ReportTechnicianDay, ReportTechnicianHour) if technician else (ReportDay, ReportHour)
    rows = list(_rolled_up(daily, daily.day, days[0].date(), days[1].date(), technician)) if days else []
    for start, stop in hours:
        rows += _rolled_up(hourly, hourly.hour, start, stop, technician)
    for start, stop in minutes:
        rows += _from_cases(start, stop, technician)
    cells: dict[tuple[str, str], Row] = {}
    for dimension, value, name, sessions, seconds, expired, connected in rows:
        if technician and dimension == "technician":
            continue  # one technician: their line is the total, below
        cells.setdefault((dimension, value), Row(value or None)).add(sessions, seconds, expired, connected, name)

    def lines(dimension: str) -> list[Row]:
        return [row for (kind, _), row in cells.items() if kind == dimension]

    total = Row(None)
    for row in lines("category"):  # each case has exactly one category, known or not
        total.add(row.sessions, row.duration_seconds, row.expired, row.connected_seconds)
    if technician:
        people = [Row(technician, total.sessions, total.duration_seconds, total.expired, total.connected_seconds,
                      name=dict(technicians()).get(technician) or technician)]
    else:
        people = lines("technician")
    bands = {row.value: row for row in lines("band")}
    outcomes = {row.value: row for row in lines("outcome")}
    return Report(
        filters=filters, total=total, technicians=_sorted(people),
        breakdowns={dimension: _sorted(lines(dimension)) for dimension in ATTRIBUTES},
        # Every outcome, in their order; a value written by some other tool after them.
        outcomes=[outcomes.pop(value, None) or Row(value) for value in STOP_OUTCOMES] + _sorted(outcomes.values()),
        bands=[bands.get(str(lower)) or Row(str(lower)) for lower in BANDS],
        worked_by=worked_by(filters),
    )


def worked_by(filters: Filters) -> list[WorkedBy]:
    """Return who connected in the sessions of ``filters``, per TeamViewer user, busiest first.

    From the connection reports' ``userid`` (whoever started each
    connection), mapped back to agents through their TeamViewer users
    (``tvwidget.teamviewer.directory``).  A session counts once per user who connected
    in it; like every duration here, only stopped cases count.
    """
    dialect = db.session.get_bind().dialect.name
    seconds = sa.literal_column(rollup.connection_seconds_sql(dialect, "tvwidget_connections.start_at",
                                                              "tvwidget_connections.end_at"))
    query = (sa.select(Connection.userid, sa.func.max(Connection.username),
                       sa.func.count(sa.distinct(Connection.case_id)), sa.func.sum(seconds))
             .join(ServiceCase, ServiceCase.id == Connection.case_id)
             .where(ServiceCase.opened_at >= filters.since, ServiceCase.opened_at < filters.until,
                    ServiceCase.state == CaseState.CLOSED)
             .group_by(Connection.userid))
    if filters.technician:
        query = query.where(ServiceCase.opened_by_id == filters.technician)
    rows = db.session.execute(query).all()
    if not rows:
        return []
    agents = directory.userid_to_agent()
    names = dict(db.session.execute(sa.select(DirectoryUser.userid, DirectoryUser.name).where(
        DirectoryUser.userid.in_([userid for userid, *_ in rows if userid]))).all())
    found = []
    for userid, username, sessions, connected in rows:
        agent = agents.get(userid) if userid else None
        tv_name = names.get(userid) or username
        found.append(WorkedBy(teamviewer_userid=userid, teamviewer_name=tv_name,
                              agent_id=agent.id if agent else None,
                              name=(agent.name if agent else None) or tv_name or userid,
                              sessions=int(sessions or 0), connected_seconds=int(connected or 0)))
    return sorted(found, key=lambda row: (-row.sessions, -row.connected_seconds, row.name or ""))


def technicians() -> list[tuple[str, str]]:
    """Return every technician with a closed or expired case, as (id, name), by name."""
    rows = db.session.execute(
        sa.select(ReportDay.value, sa.func.max(ReportDay.name)).where(ReportDay.dimension == "technician")
        .group_by(ReportDay.value).having(sa.func.sum(ReportDay.sessions) + sa.func.sum(ReportDay.expired) > 0)
    ).all()
    return sorted(((tech_id, name or tech_id) for tech_id, name in rows), key=lambda row: (row[1].casefold(), row[0]))


def band_bounds(row: Row) -> tuple[int, int | None]:
    """Return a duration band's bounds in minutes (the last band has no upper one)."""
    lower = int(row.value)
    return lower, dict(itertools.pairwise(BANDS)).get(lower)


def band_label(row: Row) -> str:
    """Return a duration band's name: ``<5``, ``<15``, ``<30``, ``<60`` or ``>=60`` (minutes)."""
    lower, upper = band_bounds(row)
    return f"<{upper}" if upper else f">={lower}"


def as_json(report: Report) -> dict:
    """Return the report in the host API's shape (docs/host-contract.md), with the expired cases and bands beside it."""
    body = {
        "total_sessions": report.total.sessions,
        "total_duration_seconds": report.total.duration_seconds,
        "average_duration_seconds": report.total.average_seconds,
        "by_technician": [row.as_json() | {"name": row.name} for row in report.technicians],
    }
    for dimension in ATTRIBUTES:
        body[f"by_{dimension}"] = [row.as_json() for row in report.breakdowns[dimension]]
    filters = report.filters
    body["total_connected_seconds"] = report.total.connected_seconds
    body["average_connected_seconds"] = report.total.average_connected_seconds
    body["by_outcome"] = [row.as_json() for row in report.outcomes]
    body["expired_without_stop"] = report.total.expired
    body["duration_bands"] = [
        row.as_json() | {"value": band_label(row), "from_minutes": band_bounds(row)[0],
                         "to_minutes": band_bounds(row)[1]} for row in report.bands]
    body["by_worked_by"] = [row.as_json() for row in report.worked_by]
    body["filters"] = {"from": filters.start.isoformat(), "to": filters.end.isoformat(), "tz": filters.tz,
                       "technician": filters.technician}
    return body


# --- CSV -------------------------------------------------------------------------------------------

TABLES = ("summary", "technicians", "worked_by", *ATTRIBUTES, "outcome", "bands", "sessions")
NONE_LABEL = _l("(none)")
_TITLES = {
    "category": _l("Category"), "type": _l("Type"), "priority": _l("Priority"), "source": _l("Source"),
    "outcome": _l("Outcome"),
}
def _line(label, row: Row, expired: bool = True) -> list:
    """Return a table line: the label, sessions, durations, [expired,] then connected time."""
    line = [cell(label), row.sessions, row.duration_seconds, timefmt.format_duration(row.duration_seconds),
            row.average_seconds, timefmt.format_duration(row.average_seconds)]
    return line + ([row.expired] if expired else []) + [
        row.connected_seconds, timefmt.format_duration(row.connected_seconds),
        row.average_connected_seconds, timefmt.format_duration(row.average_connected_seconds)]


_DURATIONS = (_l("Sessions"), _l("Total duration (seconds)"), _l("Total duration (h:mm:ss)"),
              _l("Average duration (seconds)"), _l("Average duration (h:mm:ss)"))
_CONNECTED = (_l("Connected time (seconds)"), _l("Connected time (h:mm:ss)"),
              _l("Average connected time (seconds)"), _l("Average connected time (h:mm:ss)"))


def table_rows(report: Report, table: str) -> Iterator[list]:
    """Yield one table of the report as CSV rows, heading first."""
    expired = _l("Expired without stop")
    if table == "summary":
        yield [str(h) for h in (_l("From"), _l("To"), _l("Time zone"), _l("Technician"), *_DURATIONS, expired,
                                *_CONNECTED)]
        filters = report.filters
        who = report.technicians[0].name if filters.technician and report.technicians else filters.technician
        yield [filters.start.isoformat(), filters.end.isoformat(), filters.tz, cell(who or _l("All technicians"))] \
            + _line("", report.total)[1:]
    elif table == "technicians":
        yield [str(h) for h in (_l("Technician ID"), _l("Technician"), *_DURATIONS, expired, *_CONNECTED)]
        for row in report.technicians:
            yield [cell(row.value)] + _line(row.name, row)
    elif table == "worked_by":
        yield [str(h) for h in (_l("Technician ID"), _l("Worked by"), _l("TeamViewer user ID"), _l("TeamViewer user"),
                                _l("Sessions"), *_CONNECTED[:2])]
        for row in report.worked_by:
            yield [cell(row.agent_id), cell(row.name), cell(row.teamviewer_userid), cell(row.teamviewer_name),
                   row.sessions, row.connected_seconds, timefmt.format_duration(row.connected_seconds)]
    elif table == "bands":
        yield [str(h) for h in (_l("Duration (minutes)"), *_DURATIONS, *_CONNECTED)]
        for row in report.bands:
            yield _line(band_label(row), row, expired=False)
    else:
        rows = report.outcomes if table == "outcome" else report.breakdowns[table]
        yield [str(h) for h in (_TITLES[table], *_DURATIONS, expired, *_CONNECTED)]
        for row in rows:
            yield _line(row.value if row.value is not None else str(NONE_LABEL), row)


def session_rows(filters: Filters, chunk: int = 5000) -> Iterator[list]:
    """Yield every closed or expired case in ``filters``, one CSV row each, heading first.

    Rows come from a server-side cursor ``chunk`` at a time, so memory stays
    flat however many there are.  An expired case's connected seconds are
    given too: TeamViewer measured them, though the report's sums leave
    expired cases out.
    """
    yield [str(h) for h in (
        _l("Ticket ID"), _l("Session code"), _l("Category"), _l("Type"), _l("Priority"), _l("Source"),
        _l("Technician ID"), _l("Technician"), _l("Opened (UTC)"), _l("Closed (UTC)"), _l("Duration (seconds)"),
        _l("State"), _l("Connected (seconds)"), _l("Outcome"))]
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        def iso(column):
            return sa.func.to_char(column, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    else:
        def iso(column):
            return sa.func.strftime("%Y-%m-%dT%H:%M:%SZ", column)
    table = ServiceCase.__table__
    seconds = sa.literal_column(rollup.seconds_sql(dialect, "tvwidget_service_cases.opened_at",
                                                   "tvwidget_service_cases.closed_at"))
    query = (sa.select(table.c.ticket_id, table.c.code, table.c.ticket_category, table.c.ticket_type,
                       table.c.ticket_priority, table.c.ticket_source, table.c.opened_by_id, table.c.opened_by_name,
                       iso(table.c.opened_at), iso(table.c.closed_at),
                       sa.case((table.c.state == "closed", seconds)), table.c.state, table.c.connected_seconds,
                       sa.func.coalesce(table.c.outcome, rollup.UNKNOWN_OUTCOME))
             .where(table.c.opened_at >= filters.since, table.c.opened_at < filters.until,
                    table.c.state.in_(rollup.COUNTED))
             .order_by(table.c.opened_at, table.c.id))
    if filters.technician:
        query = query.where(table.c.opened_by_id == filters.technician)
    # Attributes and technicians repeat endlessly: check each distinct one once.
    text = functools.lru_cache(maxsize=4096)(cell)
    result = db.session.execute(query.execution_options(yield_per=chunk))
    for rows in result.partitions():
        for (ticket, code, category, kind, priority, source, tech_id, tech_name, opened, closed, seconds_, state,
             connected, outcome) in rows:
            yield [cell(ticket), code or "", text(category), text(kind), text(priority), text(source),
                   text(tech_id), text(tech_name), opened, closed or "", "" if seconds_ is None else seconds_,
                   state, connected, text(outcome)]
