"""Database engine settings: SQLite in WAL mode with a busy timeout and write-ahead locking."""
import contextlib
import contextvars
import functools
import logging
import os
import time

import sqlalchemy as sa
from flask import Flask, has_request_context, request
from sqlalchemy.dialects import postgresql, sqlite

from tvwidget.extensions import db

SQLITE_BUSY_TIMEOUT_MS = 15000
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_reading = contextvars.ContextVar("tvwidget_reading", default=False)


@contextlib.contextmanager
def reading():
    """Run the transactions started inside as plain reads, even in a POST."""
    token = _reading.set(True)
    try:
        yield
    finally:
        _reading.reset(token)


def insert_for(dialect_name: str):
    """Return the dialect's ``insert`` construct, the one with ON CONFLICT (upserts without a race)."""
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert


def upsert(model, values: dict, keys: tuple[str, ...], update: dict | None = None, connection=None) -> None:
    """Insert ``values`` into ``model``'s table, or update the row with the same ``keys`` in one statement.

    ``update`` is what an existing row gets (default: every value but the keys);
    the statement runs on ``connection`` if given, else in the session.
    """
    statement = insert_for(db.engine.dialect.name)(model).values(**values)
    update = update if update is not None else {k: statement.excluded[k] for k in values if k not in keys}
    (connection or db.session).execute(statement.on_conflict_do_update(index_elements=list(keys), set_=update))


def claim(model, key: dict, due, **stamp) -> bool:
    """Stamp the row ``key`` of ``model`` where ``due`` holds, or create it stamped; True for exactly one racer.

    Must be the first statement of its transaction: SQLite then takes the
    write lock before reading anything.
    """
    where = [getattr(model, name) == value for name, value in key.items()]
    claimed = db.session.execute(sa.update(model).where(*where, due).values(**stamp)
                                 .execution_options(synchronize_session=False))
    if claimed.rowcount == 1:
        return True
    if db.session.get(model, tuple(key.values())) is not None:
        return False
    try:
        with db.session.begin_nested():
            db.session.add(model(**key, **stamp))
    except sa.exc.IntegrityError:
        return False  # another racer created the row (and so holds the claim) first
    return True


def configure(settings, instance_path: str) -> None:
    """Prepare tvwidget's engine options before Flask-SQLAlchemy creates the engine."""
    uri = settings["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite"):
        os.makedirs(instance_path, exist_ok=True)
        options = settings["SQLALCHEMY_ENGINE_OPTIONS"]
        options.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)


# Every key Flask-SQLAlchemy reads, at its own default unless tvwidget's settings name it.
FLASK_SQLALCHEMY_DEFAULTS = {"SQLALCHEMY_ENGINE_OPTIONS": {}, "SQLALCHEMY_ECHO": False, "SQLALCHEMY_BINDS": {},
                             "SQLALCHEMY_RECORD_QUERIES": False, "SQLALCHEMY_TRACK_MODIFICATIONS": False}


def flask_sqlalchemy_settings(settings) -> dict:
    """Return what Flask-SQLAlchemy must read to make tvwidget's engine in a host app.

    From tvwidget's settings only (``TVWIDGET_SQLALCHEMY_DATABASE_URI`` and the like):
    a host's own ``SQLALCHEMY_*`` keys never choose tvwidget's database.
    """
    return FLASK_SQLALCHEMY_DEFAULTS | {key: value for key, value in settings.items()
                                       if key.startswith("SQLALCHEMY_")}


def attach(app: Flask) -> None:
    """Hook tvwidget's own engine (never a host's) once Flask-SQLAlchemy made it."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
    else:
        sa.event.listen(engine, "checkin", _note_idle)
        sa.event.listen(engine, "checkout", functools.partial(_ping_if_idle, engine.dialect))


# A pooled connection idle longer than this is pinged before use, so one left
# dead by a database restart is replaced instead of failing a request.  A busy
# pool is never pinged: pool_pre_ping would add a round trip to every request.
PING_AFTER_IDLE_SECONDS = 5.0


def _note_idle(dbapi_connection, connection_record):
    connection_record.info["tvwidget_idle_since"] = time.monotonic()


def _ping_if_idle(dialect, dbapi_connection, connection_record, connection_proxy):
    idle_since = connection_record.info.get("tvwidget_idle_since")
    if idle_since is None or time.monotonic() - idle_since <= PING_AFTER_IDLE_SECONDS:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as exc:
        # SQLAlchemy then discards this connection and checks out a fresh one.
        raise sa.exc.DisconnectionError(str(exc)) from exc


def _sqlite_connect(dbapi_connection, connection_record):
    # Let SQLAlchemy's "begin" hook below issue BEGIN itself (pysqlite's own
    # transaction handling would start them too late to take the write lock).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # In WAL mode NORMAL still never corrupts the database; it only skips the
    # fsync per commit (a power cut may lose the last commits, not consistency).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# An execution option: each statement on the connection is a transaction of its own (SQLite's autocommit).
SINGLE_STATEMENTS = "tvwidget_single_statements"


def _sqlite_begin(connection):
    if connection.get_execution_options().get(SINGLE_STATEMENTS):
        return
    # A request that may write takes SQLite's write lock up front, so racing
    # writers queue on the busy timeout instead of failing with "database is
    # locked" when a read transaction tries to become a write transaction.
    read_only = _reading.get() or (has_request_context() and request.method in READ_ONLY_METHODS)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


# What a lost or refused database connection raises (IntegrityError and the
# like are bugs or races handled where they happen, never an outage).
OUTAGE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError)


def on_outage(bp, respond) -> None:
    """Answer ``respond()`` (a 503 for the person in front of the screen) when the database is unreachable.

    The session is rolled back, so nothing partial is written.  A lost
    connection invalidates the pool, and idle connections are pinged before
    use (PostgreSQL), so service resumes by itself once the database is back.
    """
    def handle(exc):
        db.session.rollback()
        logging.getLogger(__name__).error("database unavailable: %s", exc.__class__.__name__)
        return respond()

    for error in OUTAGE_ERRORS:
        bp.register_error_handler(error, handle)
