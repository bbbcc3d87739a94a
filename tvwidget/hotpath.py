"""The ticket-view hot path: a widget launch, the live-status poll and the host's guard read (issue 8).

Every agent loads the widget on every ticket view, so these paths are measured
(``bench/widget.py``).  Through the ORM session a launch cost six statements
and, on PostgreSQL, a BEGIN and a COMMIT round trip around them; here each
path is one to three statements run in autocommit on the pool's own DBAPI
connection.  The statements are SQLAlchemy Core built from the models and
compiled once per dialect, and every value passes through the column types'
own bind and result processors, so they read and write exactly what the ORM
does.  Everything else (play, stop, admin) keeps using the ORM.
"""
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .database import insert_for
from .extensions import db
from .models import (CaseState, CaseTracking, EmailMessage, IntegrationSettings, ServiceCase, Ticket,
                     UsedLaunchToken)


class Statement:
    """A Core statement compiled once per dialect and run on a DBAPI cursor with the types' processors."""

    def __init__(self, build: Callable[[str], sa.sql.Executable]):
        self._build = build
        self._compiled: dict[str, tuple] = {}

    def _prepare(self, dialect):
        prepared = self._compiled.get(dialect.name)
        if prepared is None:
            statement = self._build(dialect.name)
            compiled = statement.compile(dialect=dialect)
            binds = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                     for name, bind in compiled.binds.items()}
            processors = [column.type.dialect_impl(dialect).result_processor(dialect, None)
                          for column in statement.exported_columns]
            # Only the columns whose type converts what the driver returns (dates on SQLite, say).
            results = (len(processors), [(n, process) for n, process in enumerate(processors) if process])
            # Literal values in the statement (limits, states) travel as parameters too.
            fixed = {name: value for name, value in compiled.params.items() if value is not None}
            prepared = (compiled.string, compiled.positiontup, binds, results, fixed)
            self._compiled[dialect.name] = prepared
        return prepared

    def execute(self, cursor, dialect, **values) -> None:
        """Send the statement with ``values`` (by bind name)."""
        sql, order, binds, _, fixed = self._prepare(dialect)
        processed = {name: (binds[name](value) if binds[name] else value)
                     for name, value in (fixed | values).items()}
        cursor.execute(sql, [processed[name] for name in order] if order is not None else processed)

    def rows(self, cursor, dialect) -> list[tuple]:
        """Return the processed rows of the statement the cursor executed."""
        width, processors = self._prepare(dialect)[3]
        if not width:  # (asking the cursor's description builds an object per column: slow on psycopg)
            return []
        rows = []
        for row in cursor.fetchall():
            row = list(row)
            for n, process in processors:
                row[n] = process(row[n])
            rows.append(tuple(row))
        return rows

    def run(self, cursor, dialect, **values) -> list[tuple]:
        """Execute with ``values`` and return the processed rows."""
        self.execute(cursor, dialect, **values)
        return self.rows(cursor, dialect)


@contextlib.contextmanager
def _cursor():
    """Yield an autocommit cursor on a pooled connection, and the dialect; DBAPI errors leave as SQLAlchemy's.

    A connection found dead invalidates the whole pool (as SQLAlchemy's own
    disconnect handling does), so the next request starts on fresh ones.
    """
    engine = db.engine
    dialect = engine.dialect
    autocommit = dialect.name == "postgresql"  # SQLite's connections are in autocommit already (database.py)
    connection = cursor = None
    try:
        connection = engine.raw_connection()
        if autocommit:
            connection.driver_connection.autocommit = True
        cursor = connection.cursor()
        yield cursor, dialect
        cursor.close()
        if autocommit:
            connection.driver_connection.autocommit = False
    except dialect.loaded_dbapi.Error as exc:
        disconnected = connection is None or dialect.is_disconnect(exc, connection.dbapi_connection, cursor)
        if connection is not None:
            connection.invalidate(exc)  # never hand a connection in an unknown state back to the pool
        if disconnected:
            engine.dispose(close=False)
        raise sa.exc.DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error,
                                         connection_invalidated=disconnected, dialect=dialect) from exc
    except BaseException:
        if connection is not None:
            connection.invalidate()  # it may still be in autocommit: never back to the pool like that
        raise
    finally:
        if connection is not None:
            connection.close()


# --- what the widget shows: settings, the ticket's latest case, its email and its live-status cache ----------

_CASE = ServiceCase.__table__
_TRACKING = CaseTracking.__table__
# Short aliases keep the statements short: psycopg caches the parsing of statements up to 4 kB only.
_C, _E, _T, _S = (table.alias(name) for table, name in (
    (_CASE, "c"), (EmailMessage.__table__, "e"), (_TRACKING, "t"), (IntegrationSettings.__table__, "s")))
# The invitation's bodies stay in the database: the widget shows only where it went and how it fared.
_EMAIL_SHOWN = [_E.c[key] for key in ("id", "case_id", "recipient", "language", "status", "attempts",
                                      "last_error", "created_at", "sent_at", "next_attempt_at")]
_CASE_KEYS = _CASE.columns.keys()
_EMAIL_KEYS = [column.key for column in _EMAIL_SHOWN]
_TRACKING_KEYS = _TRACKING.columns.keys()


def _view_select(ticket_id) -> sa.Select:
    """Settings, the ticket's latest case, its email and its status cache, in that column order."""
    latest = (sa.select(_CASE.c.id).where(_CASE.c.ticket_id == ticket_id, _CASE.c.state != CaseState.FAILED)
              .order_by(_CASE.c.id.desc()).limit(1).scalar_subquery())
    one = sa.select(sa.literal(1).label("one")).subquery("one")
    return (sa.select(_S.c.token_ciphertext.is_not(None), *_C.columns, *_EMAIL_SHOWN, *_T.columns)
            .select_from(one)
            .outerjoin(_S, _S.c.id == 1)
            .outerjoin(_C, _C.c.id == latest)
            .outerjoin(_E, _E.c.case_id == _C.c.id)
            .outerjoin(_T, _T.c.case_id == _C.c.id))


class CaseRow(SimpleNamespace):
    """A service case as the hot path read it: its columns as attributes and the model's rules.

    A read-only snapshot, never attached to a session: building ORM instances
    cost more than the query that fetched them.
    """

    is_valid = ServiceCase.is_valid
    ended_at = ServiceCase.ended_at


@dataclass(frozen=True)
class View:
    """What the widget needs from the database, as read-only snapshots."""

    connected: bool
    case: CaseRow | None
    email: SimpleNamespace | None
    tracking: SimpleNamespace | None


def _view(row: tuple, offset: int) -> View:
    """Build the view from a row holding ``_view_select``'s columns from ``offset`` on."""
    connected = bool(row[offset])
    offset += 1
    parts = []
    for snapshot, keys in ((CaseRow, _CASE_KEYS), (SimpleNamespace, _EMAIL_KEYS), (SimpleNamespace, _TRACKING_KEYS)):
        values = row[offset:offset + len(keys)]
        offset += len(keys)
        # Each part starts with its primary key: None means the outer join found no row.
        parts.append(None if values[0] is None else snapshot(**dict(zip(keys, values))))
    case, email, tracking = parts
    if case is not None:
        case.email = email
    return View(connected, case, email, tracking)


_VIEW = Statement(lambda name: _view_select(sa.bindparam("ticket_id", type_=_CASE.c.ticket_id.type)))


def view(ticket_id: str) -> View:
    """Return what the ticket's widget shows, in one statement."""
    with _cursor() as (cursor, dialect):
        return _view(_VIEW.run(cursor, dialect, ticket_id=ticket_id)[0], 0)


# --- a launch: spend the token's jti, save the ticket snapshot, read the view -------------------------------

_TICKET = Ticket.__table__
_TICKET_VALUES = [column.key for column in _TICKET.columns if column.key != "closed_at"]
_TICKET_KEPT = [key for key in _TICKET_VALUES if key not in ("id", "updated_at")]


def _spend_insert(name: str):
    return (insert_for(name)(UsedLaunchToken.__table__)
            .values(key=sa.bindparam("key"), expires_at=sa.bindparam("expires_at"))
            .on_conflict_do_nothing())


def _ticket_binds() -> dict:
    return {key: sa.bindparam(key, type_=_TICKET.c[key].type) for key in _TICKET_VALUES}


def _ticket_upsert(insert):
    return insert.on_conflict_do_update(
        index_elements=[_TICKET.c.id], set_={key: insert.excluded[key] for key in _TICKET_KEPT + ["updated_at"]})


def _launch_postgresql(name: str):
    """Spend, save the ticket if it changed, read the view: one statement of writing CTEs.

    An unchanged ticket (nearly every view) is not written at all, so
    concurrent views of one ticket never queue on its row lock.  The
    statement's own transaction commits asynchronously (``set_config(...,
    true)`` is ``SET LOCAL``): it writes only a spent token and perhaps the
    ticket snapshot, so it need not wait for the WAL to reach the disk.  A
    crash may forget the last fraction of a second of spent tokens, as
    SQLite's WAL with synchronous=NORMAL may; service cases and everything
    else keep PostgreSQL's durable commits.
    """
    binds = _ticket_binds()
    spent = _spend_insert(name).returning(UsedLaunchToken.__table__.c.key).cte("spent")
    unchanged = sa.exists().where(_TICKET.c.id == binds["id"],
                                  *(_TICKET.c[key].is_not_distinct_from(binds[key]) for key in _TICKET_KEPT))
    source = sa.select(*binds.values()).where(sa.exists(sa.select(spent.c.key)), ~unchanged)
    saved = _ticket_upsert(postgresql.insert(_TICKET).from_select(_TICKET_VALUES, source)) \
        .returning(_TICKET.c.id).cte("saved")
    spent_key = sa.select(spent.c.key).scalar_subquery().label("spent")
    view_select = _view_select(binds["id"])
    asynchronous = sa.func.set_config("synchronous_commit", "off", True)
    return (sa.select(spent_key, *view_select.selected_columns, asynchronous)
            .select_from(*view_select.get_final_froms()).add_cte(saved))


_SPEND = Statement(lambda name: _spend_insert(name).returning(UsedLaunchToken.__table__.c.key))
_SAVE_TICKET = Statement(lambda name: _ticket_upsert(sqlite.insert(_TICKET).values(_ticket_binds())))
_LAUNCH_POSTGRESQL = Statement(_launch_postgresql)
# The view and, after it, the ticket as stored (compared with the token's before writing).
_VIEW_AND_TICKET = Statement(lambda name: _view_select(sa.bindparam("id", type_=_TICKET.c.id.type)).add_columns(
    *(_TICKET.c[key] for key in _TICKET_KEPT)).outerjoin(_TICKET, _TICKET.c.id == sa.bindparam("id")))


def launch(key: str, expires_at: datetime, ticket: dict) -> View | None:
    """Spend the launch token ``key`` and save ``ticket``; return the widget's view, or None if already spent.

    PostgreSQL does it in one statement.  SQLite, which has no writing CTEs,
    spends the token, reads the view with the stored ticket, and writes the
    ticket only when it changed: two statements, three for a changed ticket,
    each its own transaction (a token spent just before a failure only means
    the agent reloads the page).
    """
    values = {key_: ticket[key_] for key_ in _TICKET_VALUES}
    with _cursor() as (cursor, dialect):
        if dialect.name == "postgresql":
            row = _LAUNCH_POSTGRESQL.run(cursor, dialect, key=key, expires_at=expires_at, **values)[0]
            return _view(row, 1) if row[0] is not None else None
        if not _SPEND.run(cursor, dialect, key=key, expires_at=expires_at):
            return None
        row = _VIEW_AND_TICKET.run(cursor, dialect, id=values["id"])[0]
        if row[-len(_TICKET_KEPT):] != tuple(values[key_] for key_ in _TICKET_KEPT):
            _SAVE_TICKET.run(cursor, dialect, **values)
        return _view(row, 0)


# --- the host's guard read: the ticket's case in creating or open ------------------------------------------

_ACTIVE = Statement(lambda name: sa.select(*_CASE.columns).where(
    _CASE.c.ticket_id == sa.bindparam("ticket_id", type_=_CASE.c.ticket_id.type),
    sa.or_(_CASE.c.state == CaseState.CREATING, _CASE.c.state == CaseState.OPEN)))


def active_case(ticket_id: str) -> CaseRow | None:
    """Return the ticket's case in ``creating`` or ``open`` (valid or not) in one statement."""
    with _cursor() as (cursor, dialect):
        rows = _ACTIVE.run(cursor, dialect, ticket_id=ticket_id)
    return CaseRow(**dict(zip(_CASE_KEYS, rows[0]))) if rows else None


# --- the host's close guard: record the ticket closed unless a case holds it ---------------------------------

def _holds(ticket_id):
    return sa.and_(_C.c.ticket_id == ticket_id, sa.or_(_C.c.state == CaseState.CREATING, _C.c.state == CaseState.OPEN))


def _close_upsert(name: str):
    """Insert or update the ticket as closed, only while no case is in creating or open; return its id if so."""
    ticket_id = sa.bindparam("ticket_id", type_=_TICKET.c.id.type)
    now = sa.bindparam("now", type_=_TICKET.c.closed_at.type)
    # A ticket tvwidget never saw gets what the model's defaults would give it.
    blank = {key: sa.literal(_TICKET.c[key].default.arg) for key in ("subject", "requester_name", "requester_email")}
    source = sa.select(ticket_id, sa.literal("closed"), now, now, *blank.values()) \
        .where(~sa.exists().where(_holds(ticket_id)))
    insert = insert_for(name)(_TICKET).from_select(["id", "status", "closed_at", "updated_at", *blank], source,
                                                   include_defaults=False)
    return insert.on_conflict_do_update(index_elements=[_TICKET.c.id],
                                        set_={"status": "closed", "closed_at": insert.excluded.closed_at}) \
        .returning(_TICKET.c.id)


def _close_postgresql(name: str):
    """Close, or else read the case that holds the ticket: one statement (a writing CTE)."""
    closed = _close_upsert(name).cte("closed")
    one = sa.select(sa.literal(1).label("one")).subquery("one")
    return (sa.select(sa.select(closed.c.id).scalar_subquery().label("closed"), *_C.columns)
            .select_from(one).outerjoin(_C, _holds(sa.bindparam("ticket_id", type_=_TICKET.c.id.type))))


_CLOSE = Statement(_close_upsert)
_CLOSE_POSTGRESQL = Statement(_close_postgresql)


def close_ticket(ticket_id: str, now: datetime) -> tuple[bool, CaseRow | None]:
    """Record ``ticket_id`` closed unless a case in creating or open holds it; return (closed, that case).

    Nothing is written while a case holds the ticket, valid or not: an
    overdue or abandoned one is for ``cases.close_ticket`` to settle (expiry
    comment, audit) before the close.  The close itself commits durably.
    PostgreSQL: one statement; SQLite: one, two when a case holds the ticket
    (and (False, None) if that case ended in between: the caller decides anew).
    """
    with _cursor() as (cursor, dialect):
        if dialect.name == "postgresql":
            row = _CLOSE_POSTGRESQL.run(cursor, dialect, ticket_id=ticket_id, now=now)[0]
            return (True, None) if row[0] is not None else (False, CaseRow(**dict(zip(_CASE_KEYS, row[1:]))))
        if _CLOSE.run(cursor, dialect, ticket_id=ticket_id, now=now):
            return True, None
        rows = _ACTIVE.run(cursor, dialect, ticket_id=ticket_id)
    return False, (CaseRow(**dict(zip(_CASE_KEYS, rows[0]))) if rows else None)
