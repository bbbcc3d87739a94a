"""``flask tvwidget seed-demo``: realistic, deterministic, bulk-inserted closed cases the report adds up."""
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from tvwidget.extensions import db
from tvwidget.reports import summary as reports
from tvwidget.storage.models import Connection, ServiceCase, Ticket

UNTIL = "2026-11-24"
END = datetime(2026, 11, 24, tzinfo=UTC)
ALL = reports.Filters(date(2026, 8, 1), date(2026, 11, 30))


@pytest.fixture
def app(app_factory):
    """The demo app: seed-demo is one of its commands."""
    return app_factory(demo=True)


def seed(app, *args):
    result = app.test_cli_runner().invoke(args=["tvwidget", "seed-demo", *args])
    return result


def cases(app):
    columns = [c for c in ServiceCase.__table__.columns if c.name != "id"]
    with app.app_context():
        return db.session.execute(sa.select(*columns).order_by(ServiceCase.idempotency_key)).all()


def test_the_same_seed_gives_the_same_cases(app):
    assert seed(app, "--sessions", "1500", "--seed", "7", "--until", UNTIL).exit_code == 0
    first = cases(app)
    with app.app_context():
        db.session.execute(sa.delete(Connection))
        db.session.execute(sa.delete(ServiceCase))
        db.session.execute(sa.delete(Ticket))
        db.session.commit()
        assert reports.build(ALL).empty  # the roll-ups followed the deletion
    assert seed(app, "--sessions", "1500", "--seed", "7", "--until", UNTIL).exit_code == 0
    assert cases(app) == first and len(first) == 1500
    assert seed(app, "--sessions", "1500", "--seed", "8", "--until", UNTIL).exit_code == 0
    assert len(cases(app)) == 3000 and cases(app)[1500:] != first


def test_a_seed_already_loaded_is_refused(app):
    assert seed(app, "--sessions", "10", "--until", UNTIL).exit_code == 0
    again = seed(app, "--sessions", "10", "--until", UNTIL)
    assert again.exit_code != 0 and "already" in again.output


def test_seeded_cases_are_realistic(app):
    started = time.perf_counter()
    result = seed(app, "--sessions", "4000", "--seed", "3", "--until", UNTIL)
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - started < 30  # bulk inserts: a per-row path would be far slower
    rows = cases(app)
    assert len({row.idempotency_key for row in rows}) == 4000
    assert {row.state for row in rows} == {"closed", "expired"}
    expired = [row for row in rows if row.state == "expired"]
    assert 0.03 < len(expired) / len(rows) < 0.07 and all(row.closed_at is None for row in expired)
    closed = [row for row in rows if row.state == "closed"]
    minutes = sorted((row.closed_at - row.opened_at).total_seconds() / 60 for row in closed)
    assert 0.5 <= minutes[0] and minutes[-1] <= 150 and 8 < minutes[len(minutes) // 2] < 40
    assert all(END - timedelta(days=92) <= row.opened_at and (row.closed_at or row.valid_until) <= END for row in rows)
    assert {row.ticket_category for row in rows} == {"Support", "PC", "Network", "Printer", None}
    assert {row.ticket_type for row in rows} == {"Service request", "Incident", "Request"}
    assert {row.ticket_priority for row in rows} == {"Urgent", "High", "Medium", "Low"}
    assert {row.ticket_source for row in rows} == {"Technician portal", "User portal", "Email"}
    names = {row.opened_by_name for row in rows}
    assert 5 <= len(names) <= 10 and "田中 愛子" in names
    with app.app_context():
        tickets = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket))
        assert 3000 < tickets < 4000  # some tickets got a second session


def test_the_report_over_seeded_cases_adds_up(app):
    assert seed(app, "--sessions", "3000", "--seed", "5", "--until", UNTIL).exit_code == 0
    with app.app_context():
        report = reports.build(ALL)
        assert report.total.sessions + report.total.expired == 3000
        for lines in (report.technicians, *report.breakdowns.values()):
            assert sum(row.sessions for row in lines) == report.total.sessions
            assert sum(row.duration_seconds for row in lines) == report.total.duration_seconds
            assert sum(row.expired for row in lines) == report.total.expired
        assert sum(row.sessions for row in report.bands) == report.total.sessions
        tokyo = reports.Filters(date(2026, 10, 1), date(2026, 10, 31), "Asia/Tokyo", "tech-3")
        assert reports.as_json(reports.build(tokyo)) == reports.as_json(reports.build(tokyo, use_rollup=False))
        assert reports.as_json(report) == reports.as_json(reports.build(ALL, use_rollup=False))
