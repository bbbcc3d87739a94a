"""Migrations: one head, ``db upgrade`` builds exactly the models' schema, host tables untouched."""
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from tvwidget import create_app
from tvwidget.extensions import db, migrate


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
