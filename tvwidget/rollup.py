"""The report's roll-ups, kept exactly in step with the service cases by database triggers.

A million cases cannot be grouped six ways on every report view, so closed
and expired cases are summed per UTC day of opening into
``tvwidget_report_days`` (all technicians) and
``tvwidget_report_technician_days`` (one technician), and per UTC hour into
``tvwidget_report_hours`` and ``tvwidget_report_technician_hours``: a range
in the viewer's time zone is whole UTC days, then whole hours at either end
(every zone's midnight is a whole UTC hour, or half or quarter past one),
then at most a few minutes of cases summed directly.

Triggers update all four in the same transaction as any insert, update or
delete of a case, from any process or tool, so the sums never drift.  SQLite
runs row triggers; PostgreSQL runs statement triggers over the transition
tables, so a bulk insert updates each roll-up row once per statement.

The roll-ups and the report's own query over cases (``aggregate_sql``) must
compute durations and bands with the very same expressions, or the two would
disagree by a rounding; the tests compare them.

A migration that changes these triggers calls ``install`` again (it replaces
them); so must a SQLite batch migration that recreates the cases table, which
drops the table's triggers with it.
"""
import contextlib
from dataclasses import dataclass

CASES = "tvwidget_service_cases"

COUNTED = ("closed", "expired")
# Duration bands: lower bounds in minutes (<5, <15, <30, <60, >=60).
BANDS = (0, 5, 15, 30, 60)
ATTRIBUTES = (("category", "ticket_category"), ("type", "ticket_type"),
              ("priority", "ticket_priority"), ("source", "ticket_source"))
# The columns whose change moves a case in the roll-ups.
_WATCHED = ("state", "opened_at", "closed_at", "opened_by_id", "opened_by_name") + tuple(c for _, c in ATTRIBUTES)
_TRIGGERS = ("tvwidget_report_case_lock", "tvwidget_report_case_insert", "tvwidget_report_case_delete",
             "tvwidget_report_case_update_old", "tvwidget_report_case_update_new", "tvwidget_report_case_truncate")
_FUNCTIONS = ("tvwidget_report_lock", "tvwidget_report_apply", "tvwidget_report_truncate")
# PostgreSQL advisory lock key ("tvwd") taken before any change to the cases: see _postgresql_statements.
_LOCK_KEY = 0x74767764
_COUNTED_SQL = "('closed', 'expired')"


@dataclass(frozen=True)
class Rollup:
    """One roll-up table: its time bucket column (``day`` or ``hour``) and whether it is per technician."""

    table: str
    bucket: str
    per_technician: bool

    @property
    def keys(self) -> str:
        return ("technician_id, " if self.per_technician else "") + f"{self.bucket}, dimension, value"


DAYS = Rollup("tvwidget_report_days", "day", False)
TECHNICIAN_DAYS = Rollup("tvwidget_report_technician_days", "day", True)
HOURS = Rollup("tvwidget_report_hours", "hour", False)
TECHNICIAN_HOURS = Rollup("tvwidget_report_technician_hours", "hour", True)
ROLLUPS = (DAYS, TECHNICIAN_DAYS, HOURS, TECHNICIAN_HOURS)


def seconds_sql(dialect: str, opened: str, closed: str) -> str:
    """Return the SQL for a closed case's duration in whole seconds (never negative, 0 without an end)."""
    if dialect == "postgresql":
        return f"coalesce(greatest(0, round(extract(epoch FROM {closed} - {opened}))::bigint), 0)"
    return f"coalesce(max(0, CAST(round((julianday({closed}) - julianday({opened})) * 86400.0) AS INTEGER)), 0)"


def band_sql(seconds: str) -> str:
    """Return the SQL naming the band of ``seconds`` by its lower bound in minutes."""
    steps = " ".join(f"WHEN {seconds} < {upper * 60} THEN '{lower}'" for lower, upper in zip(BANDS, BANDS[1:]))
    return f"CASE {steps} ELSE '{BANDS[-1]}' END"


def _bucket_sql(dialect: str, bucket: str, column: str) -> str:
    """Return the SQL for the UTC day or hour ``column`` falls in, as the roll-up's column stores it."""
    if dialect == "postgresql":
        return f"CAST({column} AS date)" if bucket == "day" else f"date_trunc('hour', {column})"
    # SQLAlchemy keeps SQLite datetimes as text with microseconds; the hour must compare with them.
    return f"date({column})" if bucket == "day" else f"strftime('%Y-%m-%d %H:00:00.000000', {column})"


def _cases_sql(dialect: str, source: str, bucket: str) -> str:
    """Return a SELECT of the counted cases of ``source`` with what the roll-ups need, computed once each.

    ``source`` yields ``sign`` (1 to add, -1 to take away), ``state``,
    ``opened_at``, ``closed_at``, ``opened_by_id``, ``opened_by_name`` and the
    ticket attributes.
    """
    seconds = seconds_sql(dialect, "s.opened_at", "s.closed_at")
    return (
        f"SELECT j.*, CASE WHEN j.closed = 1 THEN {band_sql('j.seconds')} ELSE '' END AS band FROM ("
        f"SELECT s.sign, {_bucket_sql(dialect, bucket, 's.opened_at')} AS bucket, s.opened_by_id, "
        "s.opened_by_name, " + ", ".join(f"coalesce(s.{column}, '') AS {column}" for _, column in ATTRIBUTES)
        + ", CASE WHEN s.state = 'closed' THEN 1 ELSE 0 END AS closed, "
        f"CASE WHEN s.state = 'closed' THEN {seconds} ELSE 0 END AS seconds "
        f"FROM ({source}) AS s WHERE s.state IN {_COUNTED_SQL}) AS j")


def _sums(rollup: Rollup, cases: str = "c") -> str:
    """Return a SELECT of ``cases`` summed per key of ``rollup``: one GROUP BY per dimension.

    Yields ``[technician_id,] <bucket>, dimension, value, [name,] sessions,
    duration_seconds, expired``, each key once.
    """
    figures = ("sum(sign * closed) AS sessions, sum(sign * seconds) AS duration_seconds, "
               "sum(sign * (1 - closed)) AS expired")
    per = "opened_by_id, " if rollup.per_technician else ""
    head = "opened_by_id AS technician_id, " if rollup.per_technician else ""
    values = [(dimension, column) for dimension, column in ATTRIBUTES] + [("band", "band")]
    parts = [] if rollup.per_technician else [
        f"SELECT bucket AS {rollup.bucket}, 'technician' AS dimension, opened_by_id AS value, "
        f"max(CASE WHEN sign > 0 THEN opened_by_name END) AS name, {figures} FROM {cases} "
        "GROUP BY bucket, opened_by_id"]
    name = "" if rollup.per_technician else "NULL AS name, "
    parts += [f"SELECT {head}bucket AS {rollup.bucket}, '{dimension}' AS dimension, {column} AS value, {name}"
              f"{figures} FROM {cases} GROUP BY {per}bucket, {column}" for dimension, column in values]
    return " UNION ALL ".join(parts)


def _upsert(dialect: str, rollup: Rollup, source: str) -> str:
    """Return one statement adding the cases of ``source`` (see ``_cases_sql``) to ``rollup``."""
    table, keys = rollup.table, rollup.keys
    name_column = "" if rollup.per_technician else "name, "
    name_update = "" if rollup.per_technician else f", name = coalesce(excluded.name, {table}.name)"
    return (
        f"WITH c AS MATERIALIZED ({_cases_sql(dialect, source, rollup.bucket)}) "
        f"INSERT INTO {table} ({keys}, {name_column}sessions, duration_seconds, expired) "
        f"SELECT * FROM ({_sums(rollup)}) AS sums WHERE true "
        f"ON CONFLICT ({keys}) DO UPDATE SET sessions = {table}.sessions + excluded.sessions, "
        f"duration_seconds = {table}.duration_seconds + excluded.duration_seconds, "
        f"expired = {table}.expired + excluded.expired{name_update}")


def aggregate_sql(dialect: str, where: str) -> str:
    """Return a SELECT summing the cases matching ``where`` as the roll-ups do, per dimension and value.

    The report uses it for the minutes no whole hour covers; it yields
    ``dimension``, ``value``, ``name``, ``sessions``, ``duration_seconds``
    and ``expired``.
    """
    source = f"SELECT 1 AS sign, {_columns(CASES)} FROM {CASES} WHERE {where}"
    return (f"WITH c AS MATERIALIZED ({_cases_sql(dialect, source, 'day')}) "
            "SELECT dimension, value, max(name) AS name, sum(sessions) AS sessions, "
            "sum(duration_seconds) AS duration_seconds, sum(expired) AS expired "
            f"FROM ({_sums(DAYS)}) AS sums GROUP BY dimension, value")


def _columns(prefix: str) -> str:
    return ", ".join(f"{prefix}.{column} AS {column}" for column in _WATCHED)


def _sqlite_upserts(sign: int, row: str) -> str:
    """Return the statements of a SQLite row trigger adding (``sign`` 1) or taking away (-1) ``row``.

    One multi-row VALUES per roll-up: far cheaper per case than the grouped
    form of ``_upsert``, with the very same expressions.
    """
    closed = f"({row}.state = 'closed')"
    seconds = f"(CASE WHEN {closed} THEN {seconds_sql('sqlite', f'{row}.opened_at', f'{row}.closed_at')} ELSE 0 END)"
    band = f"(CASE WHEN {closed} THEN {band_sql(seconds)} ELSE '' END)"
    values = [(f"'{dimension}'", f"coalesce({row}.{column}, '')") for dimension, column in ATTRIBUTES]
    values.append(("'band'", band))
    figures = f"{sign} * {closed}, {sign} * {seconds}, {sign} * ({row}.state = 'expired')"
    name = f"{row}.opened_by_name" if sign > 0 else "NULL"
    statements = []
    for rollup in ROLLUPS:
        bucket = _bucket_sql("sqlite", rollup.bucket, f"{row}.opened_at")
        table, keys = rollup.table, rollup.keys
        if rollup.per_technician:
            tuples = [f"({row}.opened_by_id, {bucket}, {dimension}, {value}, {figures})"
                      for dimension, value in values]
            columns, name_update = keys, ""
        else:
            tuples = [f"({bucket}, 'technician', {row}.opened_by_id, {name}, {figures})"] + [
                f"({bucket}, {dimension}, {value}, NULL, {figures})" for dimension, value in values]
            columns, name_update = f"{keys}, name", ", name = coalesce(excluded.name, name)"
        statements.append(
            f"INSERT INTO {table} ({columns}, sessions, duration_seconds, expired) VALUES {', '.join(tuples)} "
            f"ON CONFLICT ({keys}) DO UPDATE SET sessions = sessions + excluded.sessions, "
            f"duration_seconds = duration_seconds + excluded.duration_seconds, "
            f"expired = expired + excluded.expired{name_update};")
    return " ".join(statements)


def _sqlite_statements() -> list[str]:
    watched = ", ".join(_WATCHED)
    return [f"DROP TRIGGER IF EXISTS {name}" for name in _TRIGGERS] + [
        f"CREATE TRIGGER tvwidget_report_case_insert AFTER INSERT ON {CASES} "
        f"WHEN NEW.state IN {_COUNTED_SQL} BEGIN {_sqlite_upserts(1, 'NEW')} END",
        f"CREATE TRIGGER tvwidget_report_case_delete AFTER DELETE ON {CASES} "
        f"WHEN OLD.state IN {_COUNTED_SQL} BEGIN {_sqlite_upserts(-1, 'OLD')} END",
        f"CREATE TRIGGER tvwidget_report_case_update_old AFTER UPDATE OF {watched} ON {CASES} "
        f"WHEN OLD.state IN {_COUNTED_SQL} BEGIN {_sqlite_upserts(-1, 'OLD')} END",
        f"CREATE TRIGGER tvwidget_report_case_update_new AFTER UPDATE OF {watched} ON {CASES} "
        f"WHEN NEW.state IN {_COUNTED_SQL} BEGIN {_sqlite_upserts(1, 'NEW')} END",
    ]


def _all(dialect: str, source: str) -> str:
    return " ".join(f"{_upsert(dialect, rollup, source)};" for rollup in ROLLUPS)


def _postgresql_statements() -> list[str]:
    """Return the statement triggers, and the lock that keeps them from deadlocking.

    Each change to the cases adds to roll-up rows that many cases share.  A
    transaction that changed one case (locking its row, then roll-up rows)
    and next waits for another case's row could deadlock with one doing the
    same the other way round (the cron expiring many cases while an agent
    stops one of them).  So every statement changing the cases first takes
    one transaction-wide advisory lock, before any row: case writers queue up
    as on SQLite, each for the few milliseconds of its transaction (the
    TeamViewer calls happen outside them).
    """
    new = f"SELECT 1 AS sign, {_columns('n')} FROM new_rows AS n"
    old = f"SELECT -1 AS sign, {_columns('o')} FROM old_rows AS o"
    tables = ", ".join(rollup.table for rollup in ROLLUPS)
    return [
        "CREATE OR REPLACE FUNCTION tvwidget_report_lock() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN PERFORM pg_advisory_xact_lock({_LOCK_KEY}); RETURN NULL; END $$",
        "CREATE OR REPLACE FUNCTION tvwidget_report_apply() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        f"  IF TG_OP = 'INSERT' THEN {_all('postgresql', new)}\n"
        f"  ELSIF TG_OP = 'DELETE' THEN {_all('postgresql', old)}\n"
        f"  ELSE {_all('postgresql', f'{old} UNION ALL {new}')}\n"
        "  END IF;\n"
        "  RETURN NULL;\n"
        "END $$",
        "CREATE OR REPLACE FUNCTION tvwidget_report_truncate() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN TRUNCATE {tables}; RETURN NULL; END $$",
    ] + [f"DROP TRIGGER IF EXISTS {name} ON {CASES}" for name in _TRIGGERS] + [
        f"CREATE TRIGGER tvwidget_report_case_lock BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {CASES} "
        "FOR EACH STATEMENT EXECUTE FUNCTION tvwidget_report_lock()",
        f"CREATE TRIGGER tvwidget_report_case_insert AFTER INSERT ON {CASES} "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tvwidget_report_apply()",
        f"CREATE TRIGGER tvwidget_report_case_delete AFTER DELETE ON {CASES} "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tvwidget_report_apply()",
        # Transition tables cannot be combined with UPDATE OF <columns>; the
        # function's WHERE keeps updates of uncounted cases cheap.
        f"CREATE TRIGGER tvwidget_report_case_update_new AFTER UPDATE ON {CASES} "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION tvwidget_report_apply()",
        f"CREATE TRIGGER tvwidget_report_case_truncate AFTER TRUNCATE ON {CASES} "
        "FOR EACH STATEMENT EXECUTE FUNCTION tvwidget_report_truncate()",
    ]


def _statements(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return _postgresql_statements()
    if dialect == "sqlite":
        return _sqlite_statements()
    raise NotImplementedError(f"the report roll-ups have no triggers for {dialect}")


@contextlib.contextmanager
def bulk_load(connection):
    """Let a bulk insert of cases on ``connection`` skip SQLite's row triggers, then sum the new cases in at once.

    For ``seed-demo``: SQLite's per-case triggers would cost more than the
    insert itself.  Runs inside the caller's transaction, which on SQLite
    holds the write lock from its start (``tvwidget.database``), so no other
    writer's case can slip in unsummed, and a rollback restores the
    triggers.  PostgreSQL's statement triggers are set-based already.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    before = connection.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {CASES}").scalar()
    for name in _TRIGGERS:
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    yield
    source = f"SELECT 1 AS sign, {_columns(CASES)} FROM {CASES} WHERE id > {int(before)}"
    for rollup in ROLLUPS:
        connection.exec_driver_sql(_upsert("sqlite", rollup, source))
    install(connection)


def install(connection) -> None:
    """Create (or replace) the roll-up triggers in ``connection``'s database."""
    for statement in _statements(connection.dialect.name):
        connection.exec_driver_sql(statement)


def create_triggers(table, connection, **kw) -> None:
    """``after_create`` hook of the cases table: ``metadata.create_all`` gets the triggers too."""
    install(connection)


def uninstall(connection) -> None:
    """Drop the roll-up triggers (and PostgreSQL's trigger functions)."""
    postgresql = connection.dialect.name == "postgresql"
    for name in _TRIGGERS:
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {CASES}" if postgresql else ""))
    if postgresql:
        for name in _FUNCTIONS:
            connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}()")


def rebuild(connection) -> None:
    """Recompute the roll-ups from the cases (after a migration, or to repair by hand)."""
    source = f"SELECT 1 AS sign, {_columns(CASES)} FROM {CASES}"
    for rollup in ROLLUPS:
        connection.exec_driver_sql(f"DELETE FROM {rollup.table}")
        connection.exec_driver_sql(_upsert(connection.dialect.name, rollup, source))
