"""Migrations: one head, ``db upgrade`` builds exactly the models' schema, host tables untouched."""
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from tvwidget import create_app
from tvwidget.extensions import db, migrate
from tvwidget.reports import rollup, summary as reports
from tvwidget.storage.models import ServiceCase, UTCDateTime


@pytest.fixture
def empty_app(database_url):
    app = create_app({"ENV": "development", "SQLALCHEMY_DATABASE_URI": database_url})
    yield app
    with app.app_context():
        db.engine.dispose()


def test_single_head(empty_app):
    with empty_app.app_context():
        script = ScriptDirectory.from_config(migrate.get_config())
        assert len(script.get_heads()) == 1


def test_upgrade_matches_the_models_and_leaves_host_tables_alone(empty_app):
    with empty_app.app_context():
        with db.engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE host_tickets (id INTEGER PRIMARY KEY)")
        upgrade()
        inspector = sa.inspect(db.engine)
        tables = set(inspector.get_table_names())
        assert "tvwidget_alembic_version" in tables and "alembic_version" not in tables
        assert "host_tickets" in tables
        assert all(t.startswith("tvwidget_") for t in tables - {"host_tickets"})
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "include_object": lambda obj, name, type_, *a: type_ != "table" or (
                    name.startswith("tvwidget_") and name != "tvwidget_alembic_version"),
                "compare_type": True})
            assert compare_metadata(context, db.metadata) == []
        indexes = {ix["name"]: ix for ix in inspector.get_indexes("tvwidget_service_cases")}
        assert indexes["uq_tvwidget_service_cases_one_active_per_ticket"]["unique"]


def test_downgrade_to_base_and_back(empty_app):
    with empty_app.app_context():
        upgrade()
        downgrade(revision="base")
        assert not [t for t in sa.inspect(db.engine).get_table_names() if t.startswith("tvwidget_")
                    and t != "tvwidget_alembic_version"]
        upgrade()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    app = create_app({"ENV": "development", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/w.db"})
    with app.app_context():
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        db.engine.dispose()


def _rows(table: str, *columns: sa.Column) -> sa.TableClause:
    """A table as an old revision had it, for writing rows the models of today no longer fit."""
    return sa.table(table, *columns)


CASES = _rows("tvwidget_service_cases", *(sa.column(name) for name in (
    "ticket_id", "state", "idempotency_key", "group_name", "opened_by_id", "opened_by_name", "opened_by_email",
    "ticket_category", "outcome")),
    *(sa.column(name, UTCDateTime()) for name in ("opened_at", "closed_at", "valid_until")))
CONNECTIONS = _rows("tvwidget_connections", sa.column("case_id"), sa.column("report_id"),
                    *(sa.column(name, UTCDateTime()) for name in ("start_at", "end_at", "fetched_at")))
DAY = datetime(2026, 11, 10, 1, 0, tzinfo=UTC)


def _old_case(connection, key: str, state: str, outcome: str | None, minutes: int = 10) -> int:
    connection.execute(CASES.insert().values(
        ticket_id="T-1", state=state, idempotency_key=key, group_name="BOSS", opened_by_id="agent-1",
        opened_by_name="Alex Morgan", opened_by_email="", ticket_category="PC", outcome=outcome, opened_at=DAY,
        closed_at=DAY + timedelta(minutes=minutes) if state == "closed" else None,
        valid_until=DAY + timedelta(hours=24)))
    return connection.execute(sa.text("SELECT id FROM tvwidget_service_cases WHERE idempotency_key = :key"),
                              {"key": key}).scalar()


def _old_connection(connection, case_id: int, report_id: str, seconds: int | None) -> None:
    connection.execute(CONNECTIONS.insert().values(
        case_id=case_id, report_id=report_id, start_at=DAY, fetched_at=DAY,
        end_at=None if seconds is None else DAY + timedelta(seconds=seconds)))


def _category_sessions(connection) -> int:
    return connection.execute(sa.text(
        "SELECT coalesce(sum(sessions), 0) FROM tvwidget_report_days WHERE dimension = 'category'")).scalar()


def test_the_report_outcome_migration_rolls_up_existing_data_and_downgrades(empty_app):
    """5e0c2a7d41b9 counts the connections stored before it and rolls every case up again; its downgrade
    brings back the roll-ups (and triggers) of bbf919ce0700."""
    day = reports.Filters(DAY.date(), DAY.date())
    with empty_app.app_context():
        upgrade(revision="bbf919ce0700")
        with db.engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO tvwidget_tickets (id, subject, requester_name, requester_email, "
                                       "updated_at) VALUES ('T-1', '', '', '', '2026-11-10 00:00:00')")
            resolved = _old_case(connection, "m-1", "closed", "resolved", 30)
            _old_connection(connection, resolved, "a", 600)
            _old_connection(connection, resolved, "b", None)  # still running when fetched: counts nothing
            _old_case(connection, "m-2", "closed", None)
            expired = _old_case(connection, "m-3", "expired", None)
            _old_connection(connection, expired, "c", 900)
        upgrade()
        built = reports.build(day)
        assert (built.total.sessions, built.total.expired, built.total.connected_seconds) == (2, 1, 600)
        assert {row.value: (row.sessions, row.expired, row.connected_seconds) for row in built.outcomes} == {
            "resolved": (1, 0, 600), "unresolved": (0, 0, 0), "unknown": (1, 1, 0)}
        assert reports.as_json(built) == reports.as_json(reports.build(day, use_rollup=False))
        assert db.session.get(ServiceCase, expired).connected_seconds == 900  # kept, though not summed
        db.session.remove()

        downgrade(revision="bbf919ce0700")
        with db.engine.begin() as connection:
            for table in ("tvwidget_service_cases", "tvwidget_report_days"):
                assert "connected_seconds" not in {c["name"] for c in sa.inspect(connection).get_columns(table)}
            assert connection.execute(sa.text(
                "SELECT count(*) FROM tvwidget_report_days WHERE dimension = 'outcome'")).scalar() == 0
            assert _category_sessions(connection) == 2
            # The triggers of bbf919ce0700 are back, and none is left on the connections.
            later = _old_case(connection, "m-4", "closed", "unresolved")
            _old_connection(connection, later, "d", 120)
            assert _category_sessions(connection) == 3

        upgrade()
        built = reports.build(day)
        assert (built.total.sessions, built.total.connected_seconds) == (3, 720)
        assert [row.sessions for row in built.outcomes] == [1, 1, 1]
        db.session.remove()


# What each migration's roll-up design installs and runs, as SHA-256 of its statements (triggers on both
# tables, the rebuild's upserts, the report's aggregate): a migration that ran must keep meaning the same SQL.
DESIGN_SQL = {
    ("FIRST", "sqlite"): "731cbbafade6c1dbc05e0b9fe70b3da5c08aa30c78fb5d29d0eb4c30d5661019",
    ("FIRST", "postgresql"): "61c55f877e04d9c760e802a5250591a3428fcdc480cbc5eda95261f5dd4fcc8f",
    ("WITH_OUTCOMES", "sqlite"): "efeb1e3b83bf938d8b04675573efee7371308ab6496e13e514fea3daa05dfcc3",
    ("WITH_OUTCOMES", "postgresql"): "839c71292fb87d6955ab7d90b998371e938c901b8d40455469e9d34e1ae60d76",
}


@pytest.mark.parametrize(("name", "dialect"), sorted(DESIGN_SQL))
def test_each_migrations_roll_up_design_builds_the_sql_it_always_did(name, dialect):
    design = getattr(rollup, name)
    sums = rollup.GroupedSums(design, dialect)
    triggers = [statement for table in (rollup.CASES, rollup.CONNECTIONS)
                for statement in design.statements(dialect, table)]
    sql = (triggers
           + [sums.upsert(roll_up, design.cases()) for roll_up in rollup.ROLLUPS]
           + [design.aggregate_sql(dialect, "true")])
    assert hashlib.sha256("\n".join(sql).encode()).hexdigest() == DESIGN_SQL[name, dialect]
