"""What a ticket view reads: the widget's launch and its live-status poll, each one short round of statements.

Every agent loads the widget on every ticket view, so these paths are measured
(``bench/widget.py``).  They run SQLAlchemy Core statements built from the
models on a connection of their own, through ``Connection.execute`` (so query
logging and tracing see them), each statement a transaction of its own: on
PostgreSQL in autocommit, which spares the BEGIN and COMMIT round trips around
them, and likewise on SQLite.
The rows come back as read-only snapshots, never attached to a session.
Everything else (play, stop, admin, the host API) uses the ORM session.
"""
import contextlib
from dataclasses import dataclass
from types import SimpleNamespace

import sqlalchemy as sa

from tvwidget.cases.lifecycle import CLOSE_UNLESS_HELD, active_case_query
from tvwidget.extensions import db
from tvwidget.host.tokens import SPEND, LaunchClaims, save_ticket, spend_launch_token
from tvwidget.storage.database import SINGLE_STATEMENTS
from tvwidget.storage.models import CaseState, CaseTracking, EmailMessage, IntegrationSettings, ServiceCase, Ticket


@contextlib.contextmanager
def _connection():
    """Yield a connection of tvwidget's engine on which each statement is a transaction of its own.

    PostgreSQL runs them in autocommit (no BEGIN/COMMIT round trips).  On
    SQLite no BEGIN is sent either: SQLite commits each statement by itself,
    so a launch holds the write lock only while it spends its token, not
    across the read that follows, and no path pays for two extra statements
    (measured in bench/RESULTS-i19.md).
    """
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        else:
            connection.execution_options(**{SINGLE_STATEMENTS: True})
        yield connection
        connection.commit()


# --- what the widget shows: settings, the ticket's latest case, its email and its live-status cache ----------

_CASE = ServiceCase.__table__
_TRACKING = CaseTracking.__table__
# Short aliases keep the statements short: psycopg caches the parsing of statements up to 4 kB only.
_C, _E, _T, _S = (table.alias(name) for table, name in (
    (_CASE, "c"), (EmailMessage.__table__, "e"), (_TRACKING, "t"), (IntegrationSettings.__table__, "s")))
# Only what the widget reads (web/widget.py, its templates, ``live_status.status_of`` and ``is_due``,
# ``ServiceCase.is_valid`` and ``ended_at``), each part starting with its primary key: every column
# fetched costs the driver and SQLAlchemy an object per view (measured in bench/RESULTS-i19.md).
# The invitation's bodies stay in the database: the widget shows only where it went and how it fared.
CASE_SHOWN = ("id", "ticket_id", "state", "code", "valid_until", "opened_at", "closed_at", "supporter_link",
              "end_customer_link", "assigned_name", "assigned_userid")
EMAIL_SHOWN = ("id", "recipient", "status", "last_error", "next_attempt_at")
TRACKING_SHOWN = ("case_id", "status_checked_at", "remote_online", "status_error")


def _view_select(ticket_id) -> sa.Select:
    """Settings, the ticket's latest case, its email and its status cache, in that column order."""
    latest = (sa.select(_CASE.c.id).where(_CASE.c.ticket_id == ticket_id, _CASE.c.state != CaseState.FAILED)
              .order_by(_CASE.c.id.desc()).limit(1).scalar_subquery())
    one = sa.select(sa.literal(1).label("one")).subquery("one")
    shown = [part.c[key] for part, keys in ((_C, CASE_SHOWN), (_E, EMAIL_SHOWN), (_T, TRACKING_SHOWN))
             for key in keys]
    return (sa.select(_S.c.token_ciphertext.is_not(None), *shown)
            .select_from(one)
            .outerjoin(_S, _S.c.id == 1)
            .outerjoin(_C, _C.c.id == latest)
            .outerjoin(_E, _E.c.case_id == _C.c.id)
            .outerjoin(_T, _T.c.case_id == _C.c.id))


class CaseRow(SimpleNamespace):
    """A service case as the hot path read it: the columns it read as attributes, and the model's rules.

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
    for snapshot, keys in ((CaseRow, CASE_SHOWN), (SimpleNamespace, EMAIL_SHOWN), (SimpleNamespace, TRACKING_SHOWN)):
        values = row[offset:offset + len(keys)]
        offset += len(keys)
        # Each part starts with its primary key: None means the outer join found no row.
        parts.append(None if values[0] is None else snapshot(**dict(zip(keys, values, strict=True))))
    case, email, tracking = parts
    if case is not None:
        case.email = email
    return View(connected, case, email, tracking)


# Built once (SQLAlchemy caches their compiled form): building a select of some forty columns
# costs more than running it.
_VIEW = _view_select(sa.bindparam("ticket_id", type_=_CASE.c.ticket_id.type))


def view(ticket_id: str) -> View:
    """Return what the ticket's widget shows, in one statement.

    A plain read even in a POST: the request's session may hold SQLite's
    write lock already.
    """
    with _connection() as connection:
        return _view(tuple(connection.execute(_VIEW, {"ticket_id": ticket_id}).one()), 0)


# --- a launch: spend the token, save the ticket snapshot if it changed, read the view ------------------------

_TICKET = Ticket.__table__
_TICKET_KEPT = [column.key for column in _TICKET.columns if column.key not in ("id", "updated_at", "closed_at")]
# The view and, after it, the ticket as stored (compared with the token's before writing).
_VIEW_AND_TICKET = _view_select(sa.bindparam("ticket_id", type_=_TICKET.c.id.type)).add_columns(
    *(_TICKET.c[key] for key in _TICKET_KEPT)).outerjoin(_TICKET, _TICKET.c.id == sa.bindparam("ticket_id"))


# PostgreSQL spends the token in the same statement, a writing CTE (the spend statement itself)
# whose returned key comes last: one round trip instead of two (measured in bench/RESULTS-i19.md).
_SPENT = SPEND["postgresql"].cte("spent")
_SPEND_VIEW_AND_TICKET = _VIEW_AND_TICKET.add_columns(sa.select(_SPENT.c.key).scalar_subquery())


def launch(claims: LaunchClaims) -> View | None:
    """Spend the launch token of ``claims`` and save its ticket; return the widget's view, or None if already spent.

    Two statements on SQLite (spend, then read), one on PostgreSQL; one
    more for a ticket that changed since the last view (nearly every view
    changes nothing, so concurrent views of one ticket do not queue on its
    row lock).
    """
    ticket = claims.ticket
    with _connection() as connection:
        if connection.dialect.name == "postgresql":
            *row, spent = connection.execute(_SPEND_VIEW_AND_TICKET, {
                "ticket_id": ticket.id, "key": claims.key, "expires_at": claims.expires_at}).one()
            if spent is None:
                return None
        else:
            if not spend_launch_token(connection, claims):
                return None
            row = connection.execute(_VIEW_AND_TICKET, {"ticket_id": ticket.id}).one()
        row = tuple(row)
        if row[-len(_TICKET_KEPT):] != tuple(getattr(ticket, key) for key in _TICKET_KEPT):
            save_ticket(ticket, connection)
    return _view(row, 0)


# --- the host's guard read ---------------------------------------------------------------------------------

# Only what the guard read shows (``cases.case_json``) and needs to tell a valid case: each column
# fetched costs the driver an object per request (measured in bench/RESULTS-i19.md).
_GUARD_KEYS = ("code", "state", "valid_until", "supporter_link", "end_customer_link", "opened_at",
               "opened_by_id", "opened_by_name", "opened_by_email")
_ACTIVE = active_case_query(sa.bindparam("ticket_id", type_=_CASE.c.ticket_id.type)).with_only_columns(
    *(_CASE.c[key] for key in _GUARD_KEYS))


def active_case(ticket_id: str) -> CaseRow | None:
    """Return the ticket's case in ``creating`` or ``open`` (valid or not) as a snapshot of what the guard shows.

    ``cases.active_case``'s query, with the columns ``cases.case_json`` and ``is_valid`` read.
    """
    with _connection() as connection:
        row = connection.execute(_ACTIVE, {"ticket_id": ticket_id}).first()
    return None if row is None else CaseRow(**dict(zip(_GUARD_KEYS, row, strict=True)))


# --- the host's close guard ----------------------------------------------------------------------------------

def close_unless_held(ticket_id: str, now) -> bool:
    """Record the ticket closed unless a case in creating or open holds it; True if it was closed.

    ``cases.close_ticket``'s first statement, run and committed on a
    connection of its own (autocommit on PostgreSQL) instead of in the
    session: nearly every close finds no case, and it skips the session's
    transaction (measured in bench/RESULTS-i19.md).  False: a case holds the ticket,
    nothing was written, and ``cases.close_ticket`` settles it.
    """
    with _connection() as connection:
        statement = CLOSE_UNLESS_HELD[connection.dialect.name]
        return connection.execute(statement, {"ticket_id": ticket_id, "now": now}).first() is not None
