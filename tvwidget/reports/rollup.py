"""The report's roll-ups, kept exactly in step with the service cases by database triggers.

A million cases cannot be grouped seven ways on every report view, so closed
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

TeamViewer's connection reports arrive late, after the case closed, so a case's
connected time cannot be summed once at stop: triggers on
``tvwidget_connections`` keep each case's ``connected_seconds`` (the sum of
its connections), and that change of the case moves the roll-ups like any
other.  The roll-ups so only ever read the cases.

The roll-ups and the report's own query over cases (``aggregate_sql``) must
compute durations and bands with the very same expressions, or the two would
disagree by a rounding; the tests compare them.

What the roll-ups hold changes with the schema, so each migration installs
and rebuilds the ``Design`` of its own revision (``FIRST``, ``WITH_OUTCOMES``),
never ``CURRENT``: an old database then upgrades step by step.  A migration
that changes these triggers calls ``install`` again (it replaces them); so
must a SQLite batch migration that recreates the cases table, which drops
the table's triggers with it.
"""
import contextlib
import itertools
from dataclasses import dataclass

import sqlalchemy as sa

from tvwidget.storage.models import Connection, ServiceCase

CASES = "tvwidget_service_cases"
CONNECTIONS = "tvwidget_connections"

COUNTED = ("closed", "expired")
# Duration bands: lower bounds in minutes (<5, <15, <30, <60, >=60).
BANDS = (0, 5, 15, 30, 60)
ATTRIBUTES = (("category", "ticket_category"), ("type", "ticket_type"),
              ("priority", "ticket_priority"), ("source", "ticket_source"))
# A case closed without an outcome (before outcomes were asked at stop, or by another tool) counts as unknown.
UNKNOWN_OUTCOME = "unknown"
_TRIGGERS = {
    CASES: ("tvwidget_report_case_lock", "tvwidget_report_case_insert", "tvwidget_report_case_delete",
            "tvwidget_report_case_update_old", "tvwidget_report_case_update_new", "tvwidget_report_case_truncate"),
    CONNECTIONS: ("tvwidget_report_connection_insert", "tvwidget_report_connection_delete",
                  "tvwidget_report_connection_update", "tvwidget_report_connection_truncate"),
}
# The PostgreSQL triggers following inserts, updates and deletes (not the lock, not TRUNCATE).
_ROW_CHANGES = ((CASES, "tvwidget_report_case_insert"), (CASES, "tvwidget_report_case_delete"),
                (CASES, "tvwidget_report_case_update_new"), (CONNECTIONS, "tvwidget_report_connection_insert"),
                (CONNECTIONS, "tvwidget_report_connection_delete"), (CONNECTIONS, "tvwidget_report_connection_update"))
_FUNCTIONS = ("tvwidget_report_lock", "tvwidget_report_apply", "tvwidget_report_truncate",
              "tvwidget_report_connections", "tvwidget_report_connections_truncate")
# PostgreSQL advisory lock key ("tvwd") taken before any change to the cases: see PostgresqlTriggers.
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


def connection_seconds_sql(dialect: str, start: str, end: str) -> str:
    """Return the SQL for a connection's whole seconds exactly as ``Connection.seconds`` counts them.

    Truncated, never negative, 0 while TeamViewer reports no end.  SQLite's
    date functions read milliseconds at most, so the microseconds (which
    SQLAlchemy always writes as six digits) are counted apart.
    """
    if dialect == "postgresql":
        seconds = f"greatest(0, trunc(extract(epoch FROM {end} - {start})))::bigint"
    else:
        seconds = (f"max(0, ((strftime('%s', substr({end}, 1, 19)) - strftime('%s', substr({start}, 1, 19)))"
                   f" * 1000000 + CAST(substr({end}, 21) AS INTEGER) - CAST(substr({start}, 21) AS INTEGER))"
                   " / 1000000)")
    return f"CASE WHEN {end} IS NULL THEN 0 ELSE {seconds} END"


def band_sql(seconds: str) -> str:
    """Return the SQL naming the band of ``seconds`` by its lower bound in minutes."""
    steps = " ".join(f"WHEN {seconds} < {upper * 60} THEN '{lower}'" for lower, upper in itertools.pairwise(BANDS))
    return f"CASE {steps} ELSE '{BANDS[-1]}' END"


def _bucket_sql(dialect: str, bucket: str, column: str) -> str:
    """Return the SQL for the UTC day or hour ``column`` falls in, as the roll-up's column stores it."""
    if dialect == "postgresql":
        return f"CAST({column} AS date)" if bucket == "day" else f"date_trunc('hour', {column})"
    # SQLAlchemy keeps SQLite datetimes as text with microseconds; the hour must compare with them.
    return f"date({column})" if bucket == "day" else f"strftime('%Y-%m-%d %H:00:00.000000', {column})"


def _recount_sql(dialect: str, where: str = "true") -> str:
    """Return an UPDATE setting the cases ``s`` matching ``where`` to the sum of their connections' seconds."""
    seconds = connection_seconds_sql(dialect, "c.start_at", "c.end_at")
    return (f"UPDATE {CASES} SET connected_seconds = d.seconds FROM ("
            f"SELECT s.id, coalesce(sum({seconds}), 0) AS seconds FROM {CASES} AS s "
            f"LEFT JOIN {CONNECTIONS} AS c ON c.case_id = s.id WHERE {where} GROUP BY s.id) AS d "
            f"WHERE {CASES}.id = d.id AND {CASES}.connected_seconds <> d.seconds")


@dataclass(frozen=True)
class Design:
    """What the roll-ups hold as of one schema revision; ``statements`` and ``aggregate_sql`` give its SQL.

    ``dimensions`` are ``(dimension, column of the cases, value a NULL
    counts as)``; with ``connected`` the roll-ups also sum the sessions'
    ``connected_seconds``, which triggers on the connections keep on the cases.
    The SQL itself is built by ``GroupedSums`` (both dialects), ``SqliteTriggers``
    and ``PostgresqlTriggers``.
    """

    dimensions: tuple[tuple[str, str, str], ...]
    connected: bool

    @property
    def watched(self) -> tuple[str, ...]:
        """Return the case columns whose change moves a case in the roll-ups."""
        return (("state", "opened_at", "closed_at", "opened_by_id", "opened_by_name")
                + tuple(column for _, column, _ in self.dimensions)
                + (("connected_seconds",) if self.connected else ()))

    @property
    def measures(self) -> tuple[str, ...]:
        """Return the roll-ups' summed columns."""
        return ("sessions", "duration_seconds", "expired") + (("connected_seconds",) if self.connected else ())

    def columns(self, prefix: str) -> str:
        """Return the SELECT list of the ``watched`` columns of the cases named ``prefix``."""
        return ", ".join(f"{prefix}.{column} AS {column}" for column in self.watched)

    def cases(self, where: str | None = None) -> str:
        """Return a source of cases to add (``sign`` 1): those matching ``where``, or all."""
        return f"SELECT 1 AS sign, {self.columns(CASES)} FROM {CASES}" + (f" WHERE {where}" if where else "")

    def added(self, prefix: str = "") -> str:
        """Return the SET list of an upsert adding ``excluded``'s measures to the row (``prefix``: its table.)."""
        return ", ".join(f"{measure} = {prefix}{measure} + excluded.{measure}" for measure in self.measures)

    def statements(self, dialect: str, table: str) -> list[str]:
        """Return the statements (re)creating the triggers this design puts on ``table``."""
        if dialect == "postgresql":
            return PostgresqlTriggers(self).statements(table)
        if dialect == "sqlite":
            return SqliteTriggers(self).statements(table)
        raise NotImplementedError(f"the report roll-ups have no triggers for {dialect}")

    def aggregate_sql(self, dialect: str, where: str) -> str:
        """Return a SELECT summing the cases matching ``where`` as the roll-ups do, per dimension and value.

        Yields ``dimension``, ``value``, ``name`` and the ``measures``.
        """
        return GroupedSums(self, dialect).aggregate(self.cases(where))

    def sum_in(self, connection, source: str) -> None:
        """Add the cases of ``source`` (see ``cases``) to every roll-up, in ``connection``'s transaction."""
        sums = GroupedSums(self, connection.dialect.name)
        for rollup in ROLLUPS:
            connection.exec_driver_sql(sums.upsert(rollup, source))


@dataclass(frozen=True)
class GroupedSums:
    """The set-based SQL of a design in one dialect: many cases summed per roll-up key with GROUP BY.

    For PostgreSQL's statement triggers, ``rebuild``, ``bulk_load`` and the
    report's own query over the cases (``aggregate``).
    """

    design: Design
    dialect: str

    def counted(self, source: str, bucket: str) -> str:
        """Return a SELECT of the counted cases of ``source`` with what the roll-ups need, computed once each.

        ``source`` yields ``sign`` (1 to add, -1 to take away) and the
        ``watched`` columns.
        """
        design = self.design
        seconds = seconds_sql(self.dialect, "s.opened_at", "s.closed_at")
        connected = ", CASE WHEN s.state = 'closed' THEN s.connected_seconds ELSE 0 END AS connected" \
            if design.connected else ""
        return (
            f"SELECT j.*, CASE WHEN j.closed = 1 THEN {band_sql('j.seconds')} ELSE '' END AS band FROM ("
            f"SELECT s.sign, {_bucket_sql(self.dialect, bucket, 's.opened_at')} AS bucket, s.opened_by_id, "
            "s.opened_by_name, " + ", ".join(f"coalesce(s.{column}, '{default}') AS {column}"
                                             for _, column, default in design.dimensions)
            + ", CASE WHEN s.state = 'closed' THEN 1 ELSE 0 END AS closed, "
            f"CASE WHEN s.state = 'closed' THEN {seconds} ELSE 0 END AS seconds{connected} "
            f"FROM ({source}) AS s WHERE s.state IN {_COUNTED_SQL}) AS j")

    def sums(self, rollup: Rollup, cases: str = "c") -> str:
        """Return a SELECT of ``cases`` summed per key of ``rollup``: one GROUP BY per dimension.

        Yields ``[technician_id,] <bucket>, dimension, value, [name,]`` and
        the ``measures``, each key once.
        """
        figures = ("sum(sign * closed) AS sessions, sum(sign * seconds) AS duration_seconds, "
                   "sum(sign * (1 - closed)) AS expired")
        if self.design.connected:
            figures += ", sum(sign * connected) AS connected_seconds"
        per = "opened_by_id, " if rollup.per_technician else ""
        head = "opened_by_id AS technician_id, " if rollup.per_technician else ""
        values = [(dimension, column) for dimension, column, _ in self.design.dimensions] + [("band", "band")]
        parts = [] if rollup.per_technician else [
            f"SELECT bucket AS {rollup.bucket}, 'technician' AS dimension, opened_by_id AS value, "
            f"max(CASE WHEN sign > 0 THEN opened_by_name END) AS name, {figures} FROM {cases} "
            "GROUP BY bucket, opened_by_id"]
        name = "" if rollup.per_technician else "NULL AS name, "
        parts += [f"SELECT {head}bucket AS {rollup.bucket}, '{dimension}' AS dimension, {column} AS value, {name}"
                  f"{figures} FROM {cases} GROUP BY {per}bucket, {column}" for dimension, column in values]
        return " UNION ALL ".join(parts)

    def upsert(self, rollup: Rollup, source: str) -> str:
        """Return one statement adding the cases of ``source`` (see ``counted``) to ``rollup``."""
        table, keys = rollup.table, rollup.keys
        name_column = "" if rollup.per_technician else "name, "
        name_update = "" if rollup.per_technician else f", name = coalesce(excluded.name, {table}.name)"
        return (
            f"WITH c AS MATERIALIZED ({self.counted(source, rollup.bucket)}) "
            f"INSERT INTO {table} ({keys}, {name_column}{', '.join(self.design.measures)}) "
            f"SELECT * FROM ({self.sums(rollup)}) AS sums WHERE true "
            f"ON CONFLICT ({keys}) DO UPDATE SET {self.design.added(f'{table}.')}{name_update}")

    def aggregate(self, source: str) -> str:
        """Return a SELECT summing the cases of ``source`` per dimension and value (as the daily roll-up would)."""
        sums = ", ".join(f"sum({measure}) AS {measure}" for measure in self.design.measures)
        return (f"WITH c AS MATERIALIZED ({self.counted(source, 'day')}) "
                f"SELECT dimension, value, max(name) AS name, {sums} "
                f"FROM ({self.sums(DAYS)}) AS sums GROUP BY dimension, value")


@dataclass(frozen=True)
class SqliteTriggers:
    """A design's SQLite row triggers: each changed case adds to (or takes from) every roll-up directly."""

    design: Design

    def statements(self, table: str) -> list[str]:
        """Return the statements (re)creating the triggers on ``table``."""
        drops = [f"DROP TRIGGER IF EXISTS {name}" for name in _TRIGGERS[table]]
        if table == CONNECTIONS:
            return drops + (self.connection_triggers() if self.design.connected else [])
        watched = ", ".join(self.design.watched)
        return drops + [
            f"CREATE TRIGGER tvwidget_report_case_insert AFTER INSERT ON {CASES} "
            f"WHEN NEW.state IN {_COUNTED_SQL} BEGIN {self.upserts(1, 'NEW')} END",
            f"CREATE TRIGGER tvwidget_report_case_delete AFTER DELETE ON {CASES} "
            f"WHEN OLD.state IN {_COUNTED_SQL} BEGIN {self.upserts(-1, 'OLD')} END",
            f"CREATE TRIGGER tvwidget_report_case_update_old AFTER UPDATE OF {watched} ON {CASES} "
            f"WHEN OLD.state IN {_COUNTED_SQL} BEGIN {self.upserts(-1, 'OLD')} END",
            f"CREATE TRIGGER tvwidget_report_case_update_new AFTER UPDATE OF {watched} ON {CASES} "
            f"WHEN NEW.state IN {_COUNTED_SQL} BEGIN {self.upserts(1, 'NEW')} END",
        ]

    def upserts(self, sign: int, row: str) -> str:
        """Return the statements of a row trigger adding (``sign`` 1) or taking away (-1) ``row``.

        One multi-row VALUES per roll-up: far cheaper per case than the grouped
        form of ``GroupedSums.upsert``, with the very same expressions.
        """
        return " ".join(self.upsert(rollup, sign, row) for rollup in ROLLUPS)

    def upsert(self, rollup: Rollup, sign: int, row: str) -> str:
        """Return the one statement adding (or taking away) ``row`` in ``rollup``: a row per dimension."""
        design = self.design
        closed = f"({row}.state = 'closed')"
        duration = seconds_sql("sqlite", f"{row}.opened_at", f"{row}.closed_at")
        seconds = f"(CASE WHEN {closed} THEN {duration} ELSE 0 END)"
        band = f"(CASE WHEN {closed} THEN {band_sql(seconds)} ELSE '' END)"
        values = [(f"'{dimension}'", f"coalesce({row}.{column}, '{default}')")
                  for dimension, column, default in design.dimensions]
        values.append(("'band'", band))
        figures = f"{sign} * {closed}, {sign} * {seconds}, {sign} * ({row}.state = 'expired')"
        if design.connected:
            figures += f", {sign} * (CASE WHEN {closed} THEN {row}.connected_seconds ELSE 0 END)"
        bucket = _bucket_sql("sqlite", rollup.bucket, f"{row}.opened_at")
        table, keys = rollup.table, rollup.keys
        if rollup.per_technician:
            tuples = [f"({row}.opened_by_id, {bucket}, {dimension}, {value}, {figures})"
                      for dimension, value in values]
            columns, name_update = keys, ""
        else:
            name = f"{row}.opened_by_name" if sign > 0 else "NULL"
            tuples = [f"({bucket}, 'technician', {row}.opened_by_id, {name}, {figures})"] + [
                f"({bucket}, {dimension}, {value}, NULL, {figures})" for dimension, value in values]
            columns, name_update = f"{keys}, name", ", name = coalesce(excluded.name, name)"
        return (f"INSERT INTO {table} ({columns}, {', '.join(design.measures)}) VALUES {', '.join(tuples)} "
                f"ON CONFLICT ({keys}) DO UPDATE SET {design.added()}{name_update};")

    @staticmethod
    def connection_triggers() -> list[str]:
        """Return the row triggers moving a case's ``connected_seconds`` with its connections."""
        def seconds(row: str) -> str:
            return f"({connection_seconds_sql('sqlite', f'{row}.start_at', f'{row}.end_at')})"

        return [
            f"CREATE TRIGGER tvwidget_report_connection_insert AFTER INSERT ON {CONNECTIONS} "
            f"WHEN {seconds('NEW')} <> 0 BEGIN UPDATE {CASES} SET connected_seconds = connected_seconds + "
            f"{seconds('NEW')} WHERE id = NEW.case_id; END",
            f"CREATE TRIGGER tvwidget_report_connection_delete AFTER DELETE ON {CONNECTIONS} "
            f"WHEN {seconds('OLD')} <> 0 BEGIN UPDATE {CASES} SET connected_seconds = connected_seconds - "
            f"{seconds('OLD')} WHERE id = OLD.case_id; END",
            # One UPDATE, even when the connection moves to another case: each UPDATE of a case runs its triggers.
            f"CREATE TRIGGER tvwidget_report_connection_update AFTER UPDATE OF case_id, start_at, end_at "
            f"ON {CONNECTIONS} WHEN OLD.case_id IS NOT NEW.case_id OR {seconds('OLD')} <> {seconds('NEW')} BEGIN "
            f"UPDATE {CASES} SET connected_seconds = connected_seconds "
            f"+ CASE WHEN id = NEW.case_id THEN {seconds('NEW')} ELSE 0 END "
            f"- CASE WHEN id = OLD.case_id THEN {seconds('OLD')} ELSE 0 END "
            "WHERE id IN (OLD.case_id, NEW.case_id); END",
        ]


@dataclass(frozen=True)
class PostgresqlTriggers:
    """A design's PostgreSQL statement triggers over transition tables, and the lock that keeps them from deadlocking.

    Each change to the cases adds to roll-up rows that many cases share.  A
    transaction that changed one case (locking its row, then roll-up rows)
    and next waits for another case's row could deadlock with one doing the
    same the other way round (the cron expiring many cases while an agent
    stops one of them).  So every statement changing the cases first takes
    one transaction-wide advisory lock, before any row: case writers queue up
    as on SQLite, each for the few milliseconds of its transaction (the
    TeamViewer calls happen outside them).  A change to the connections
    changes the cases, so it queues up the same way.
    """

    design: Design

    def statements(self, table: str) -> list[str]:
        """Return the statements (re)creating the trigger functions and the triggers on ``table``."""
        drops = [f"DROP TRIGGER IF EXISTS {name} ON {table}" for name in _TRIGGERS[table]]
        if table == CONNECTIONS:
            return (self.connection_functions() + drops + self.connection_triggers()
                    if self.design.connected else drops)
        return self.case_functions() + drops + self.case_triggers()

    def case_functions(self) -> list[str]:
        """Return the functions the cases' triggers run: the lock, the roll-ups' update, TRUNCATE's."""
        columns = self.design.columns
        new = f"SELECT 1 AS sign, {columns('n')} FROM new_rows AS n"
        old = f"SELECT -1 AS sign, {columns('o')} FROM old_rows AS o"
        sums = GroupedSums(self.design, "postgresql")
        tables = ", ".join(rollup.table for rollup in ROLLUPS)

        def everywhere(source: str) -> str:
            return " ".join(f"{sums.upsert(rollup, source)};" for rollup in ROLLUPS)

        return [
            "CREATE OR REPLACE FUNCTION tvwidget_report_lock() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN PERFORM pg_advisory_xact_lock({_LOCK_KEY}); RETURN NULL; END $$",
            "CREATE OR REPLACE FUNCTION tvwidget_report_apply() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            f"  IF TG_OP = 'INSERT' THEN {everywhere(new)}\n"
            f"  ELSIF TG_OP = 'DELETE' THEN {everywhere(old)}\n"
            f"  ELSE {everywhere(f'{old} UNION ALL {new}')}\n"
            "  END IF;\n"
            "  RETURN NULL;\n"
            "END $$",
            "CREATE OR REPLACE FUNCTION tvwidget_report_truncate() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN TRUNCATE {tables}; RETURN NULL; END $$",
        ]

    @staticmethod
    def case_triggers() -> list[str]:
        return [
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

    @staticmethod
    def connection_functions() -> list[str]:
        """Return the functions moving each case's ``connected_seconds`` with its connections."""
        def moved(parts: list[str]) -> str:
            """Return an UPDATE adding each case's share of ``parts`` (``case_id``, ``seconds``) to the case."""
            return (f"UPDATE {CASES} AS s SET connected_seconds = s.connected_seconds + d.seconds "
                    f"FROM (SELECT case_id, sum(seconds) AS seconds FROM ({' UNION ALL '.join(parts)}) AS c "
                    "GROUP BY case_id) AS d WHERE s.id = d.case_id AND d.seconds <> 0;")

        seconds = connection_seconds_sql
        new = f"SELECT n.case_id, {seconds('postgresql', 'n.start_at', 'n.end_at')} AS seconds FROM new_rows AS n"
        old = f"SELECT o.case_id, -{seconds('postgresql', 'o.start_at', 'o.end_at')} AS seconds FROM old_rows AS o"
        return [
            "CREATE OR REPLACE FUNCTION tvwidget_report_connections() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            f"  IF TG_OP = 'INSERT' THEN {moved([new])}\n"
            f"  ELSIF TG_OP = 'DELETE' THEN {moved([old])}\n"
            f"  ELSE {moved([old, new])}\n"
            "  END IF;\n"
            "  RETURN NULL;\n"
            "END $$",
            "CREATE OR REPLACE FUNCTION tvwidget_report_connections_truncate() RETURNS trigger LANGUAGE plpgsql "
            "AS $$\n"
            f"BEGIN UPDATE {CASES} SET connected_seconds = 0 WHERE connected_seconds <> 0; RETURN NULL; END $$",
        ]

    @staticmethod
    def connection_triggers() -> list[str]:
        return [
            f"CREATE TRIGGER tvwidget_report_connection_insert AFTER INSERT ON {CONNECTIONS} "
            "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tvwidget_report_connections()",
            f"CREATE TRIGGER tvwidget_report_connection_delete AFTER DELETE ON {CONNECTIONS} "
            "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tvwidget_report_connections()",
            # Most updates (the sync refreshing a report) move nothing: the function's "<> 0" skips the cases then.
            f"CREATE TRIGGER tvwidget_report_connection_update AFTER UPDATE ON {CONNECTIONS} "
            "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION tvwidget_report_connections()",
            f"CREATE TRIGGER tvwidget_report_connection_truncate AFTER TRUNCATE ON {CONNECTIONS} "
            "FOR EACH STATEMENT EXECUTE FUNCTION tvwidget_report_connections_truncate()",
        ]


# As of revision 6bd39e089668: ticket attributes and bands.
FIRST = Design(tuple((dimension, column, "") for dimension, column in ATTRIBUTES), connected=False)
# As of revision 5e0c2a7d41b9: the outcome chosen at stop and the connected time.
WITH_OUTCOMES = Design(FIRST.dimensions + (("outcome", "outcome", UNKNOWN_OUTCOME),), connected=True)
CURRENT = WITH_OUTCOMES


def aggregate_sql(dialect: str, where: str) -> str:
    """Return the current design's SELECT summing the cases matching ``where`` (see ``Design.aggregate_sql``).

    The report uses it for the minutes no whole hour covers.
    """
    return CURRENT.aggregate_sql(dialect, where)


@contextlib.contextmanager
def bulk_load(connection):
    """Let a bulk insert of cases and their connections skip the row triggers, then sum them in at once.

    For ``seed-demo``: SQLite's per-row triggers would cost more than the
    insert itself, and a case's connections arriving after it would sum
    each case in twice.  Runs inside the caller's transaction, which owns
    the tables until it ends (SQLite's write lock, held from the start by
    ``tvwidget.storage.database``; PostgreSQL's ``ALTER TABLE``, which also blocks
    readers), so no other writer's case can slip in unsummed, and a rollback
    restores the triggers.
    """
    dialect = connection.dialect.name
    if dialect == "sqlite":
        for names in _TRIGGERS.values():
            for name in names:
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for table, name in _ROW_CHANGES:
            connection.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER {name}")
    before = int(connection.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {CASES}").scalar())
    yield
    connection.exec_driver_sql(_recount_sql(dialect, f"s.id > {before}"))
    CURRENT.sum_in(connection, CURRENT.cases(f"id > {before}"))
    if dialect == "sqlite":
        install(connection)
    else:
        for table, name in _ROW_CHANGES:
            connection.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER {name}")


def install(connection, design: Design = CURRENT) -> None:
    """Create (or replace) ``design``'s roll-up triggers in ``connection``'s database."""
    for table in (CASES, CONNECTIONS):
        for statement in design.statements(connection.dialect.name, table):
            connection.exec_driver_sql(statement)


def rebuild(connection, design: Design = CURRENT) -> None:
    """Recompute ``design``'s roll-ups, and the cases' connected seconds, from scratch.

    After a migration, or to repair by hand.
    """
    if design.connected:
        connection.exec_driver_sql(_recount_sql(connection.dialect.name))
    for rollup in ROLLUPS:
        connection.exec_driver_sql(f"DELETE FROM {rollup.table}")
    design.sum_in(connection, design.cases())


def create_triggers(table, connection, **kw) -> None:
    """``after_create`` hook of the cases and connections tables: ``metadata.create_all`` gets the triggers too."""
    for statement in CURRENT.statements(connection.dialect.name, table.name):
        connection.exec_driver_sql(statement)


# ``metadata.create_all`` (tests, a new SQLite file) creates the triggers with their tables;
# migrations call ``install``.  tvwidget's app imports this module, so the hooks are in place.
sa.event.listen(ServiceCase.__table__, "after_create", create_triggers)
sa.event.listen(Connection.__table__, "after_create", create_triggers)


def uninstall(connection) -> None:
    """Drop the roll-up triggers (and PostgreSQL's trigger functions) of every design."""
    postgresql = connection.dialect.name == "postgresql"
    for table, names in _TRIGGERS.items():
        for name in names:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgresql else ""))
    if postgresql:
        for name in _FUNCTIONS:
            connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}()")
