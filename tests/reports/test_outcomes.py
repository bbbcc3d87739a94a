"""The report's connected time and outcome breakdown: roll-ups, filters, JSON, CSV and the page."""
import csv
import io
import itertools
import random
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from tvwidget.cases import connections
from tvwidget.extensions import db
from tvwidget.reports import rollup, summary as reports
from tvwidget.storage.models import Connection, ServiceCase, Ticket

from ..helpers import sign_in_admin
from .test_summary import DAY, PAGE, RANGE, _rollup_rows, report

OUTCOMES = ("resolved", "unresolved", "unknown")


@pytest.fixture
def add_case(app):
    """Return ``add(opened_at, minutes, **fields) -> id``: store one case as if stopped after ``minutes``."""
    keys = itertools.count()

    def add(opened_at=DAY, minutes=30, *, state="closed", outcome=None, tech="agent-1", name="Alex Morgan",
            category="PC"):
        with app.app_context():
            if db.session.get(Ticket, "T-1") is None:
                db.session.add(Ticket(id="T-1", subject="Outlook crashes"))
            case = ServiceCase(
                ticket_id="T-1", state=state, idempotency_key=f"o-{next(keys)}", group_name="BOSS",
                code="s123-456-789", opened_at=opened_at, valid_until=opened_at + timedelta(hours=24),
                opened_by_id=tech, opened_by_name=name, outcome=outcome,
                closed_at=opened_at + timedelta(minutes=minutes) if state == "closed" else None,
                ticket_category=category, ticket_type="Incident", ticket_priority="High", ticket_source="Email")
            db.session.add(case)
            db.session.commit()
            return case.id
    return add


@pytest.fixture
def add_connection(app):
    """Return ``add(case_id, start, seconds) -> id``: store a connection as sync-connections does (None: no end)."""
    numbers = itertools.count()

    def add(case_id, start, seconds):
        with app.app_context():
            row = Connection(case_id=case_id, report_id=f"r-{next(numbers)}", start_at=start,
                             end_at=None if seconds is None else start + timedelta(seconds=seconds),
                             username="Sandbox Supporter", devicename="REQUESTER-PC")
            db.session.add(row)
            db.session.commit()
            return row.id
    return add


def outcomes(body):
    """Return the outcome breakdown as {value: (sessions, total connected, average connected)}."""
    return {item["value"]: (item["sessions"], item["total_connected_seconds"], item["average_connected_seconds"])
            for item in body["by_outcome"]}


def csv_rows(response):
    assert response.status_code == 200, response.text
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"), newline="")))


# --- the roll-ups against a direct aggregate -------------------------------------------------------

def _expected(filters: reports.Filters) -> dict:
    """Sum the cases in ``filters`` in Python, with ``connections.connected_seconds``: what the report must say."""
    query = sa.select(ServiceCase).where(ServiceCase.opened_at >= filters.since, ServiceCase.opened_at < filters.until,
                                         ServiceCase.state.in_(rollup.COUNTED))
    if filters.technician:
        query = query.where(ServiceCase.opened_by_id == filters.technician)
    found = db.session.scalars(query).all()
    connected = connections.connected_seconds([case.id for case in found])
    sums = {"total": [0, 0, 0]} | {f"outcome:{value}": [0, 0, 0] for value in OUTCOMES}
    for case in found:
        closed = case.state == "closed"
        figures = (int(closed), int(not closed), connected.get(case.id, 0) if closed else 0)
        for key in ("total", f"outcome:{case.outcome or 'unknown'}", f"technician:{case.opened_by_id}"):
            sums[key] = [a + b for a, b in zip(sums.get(key, (0, 0, 0)), figures, strict=True)]
    return {key: tuple(value) for key, value in sums.items() if key.startswith(("total", "outcome")) or any(value)}


def _reported(built: reports.Report) -> dict:
    def figures(row):
        return row.sessions, row.expired, row.connected_seconds

    sums = {"total": figures(built.total)} | {f"outcome:{row.value}": figures(row) for row in built.outcomes}
    return sums | {f"technician:{row.value}": figures(row) for row in built.technicians}


def _seconds(rng):
    """A random instant's offset with microseconds, so that truncation and rounding would tell apart."""
    return timedelta(seconds=rng.randrange(0, 3 * 86400), microseconds=rng.randrange(1_000_000))


def test_the_rollups_equal_a_direct_aggregate_through_late_connections_and_outcome_changes(app):
    rng = random.Random(20261110)
    start = DAY - timedelta(days=1)
    with app.app_context():
        cases = []
        for number in range(60):
            state = rng.choice(("closed", "closed", "closed", "expired", "open", "failed"))
            opened = start + _seconds(rng)
            db.session.add(Ticket(id=f"T-{number}"))  # one open case per ticket at a time
            cases.append(ServiceCase(
                ticket_id=f"T-{number}", state=state, idempotency_key=f"r-{number}", group_name="BOSS",
                opened_at=opened,
                valid_until=opened + timedelta(hours=24), opened_by_id=f"agent-{number % 3}",
                opened_by_name=f"Agent {number % 3}", ticket_category=rng.choice(("PC", None)),
                closed_at=opened + timedelta(seconds=rng.randrange(30, 5400)) if state == "closed" else None,
                outcome=rng.choice(OUTCOMES + (None,)) if state == "closed" else None))
        db.session.add_all(cases)
        db.session.commit()
        ids = [case.id for case in cases]
        reports_made = itertools.count()

        def connection(case_id, ended=True):
            begin = start + _seconds(rng)
            # Some reports come back with the end before the start: they count nothing, as in connections.py.
            length = timedelta(seconds=rng.randrange(-30, 3600), microseconds=rng.randrange(1_000_000))
            return {"case_id": case_id, "report_id": f"rep-{next(reports_made)}", "start_at": begin,
                    "end_at": begin + length if ended else None, "fetched_at": begin}

        # Connections as they arrive: one multi-row insert, some still running (no end yet).
        db.session.execute(sa.insert(Connection), [connection(rng.choice(ids), rng.random() < 0.8)
                                                   for _ in range(70)])
        db.session.commit()
        # Open cases are stopped, with an outcome; more reports arrive for closed and expired cases.
        for case in cases:
            if case.state == "open":
                case.state, case.closed_at, case.outcome = "closed", case.opened_at + timedelta(minutes=9), "resolved"
        db.session.commit()
        for _ in range(30):
            db.session.add(Connection(**connection(rng.choice(ids))))
        db.session.commit()
        # Running connections end (one statement for many rows), others are corrected or withdrawn.
        running = db.session.scalars(sa.select(Connection.id).where(Connection.end_at.is_(None))).all()
        db.session.execute(sa.update(Connection).where(Connection.id.in_(running[::2]))
                           .values(end_at=start + timedelta(days=2, microseconds=1)))
        rows = db.session.scalars(sa.select(Connection).order_by(Connection.id)).all()
        for row in rng.sample(rows, 10):
            row.end_at = row.start_at + timedelta(seconds=rng.randrange(0, 900), microseconds=999_999)
        for row in rng.sample(rows, 3):
            row.case_id = rng.choice(ids)  # reported under another case
        for row in rng.sample(rows, 5):
            db.session.delete(row)
        db.session.commit()
        # Outcomes change after the stop, one to none at all.
        closed = [case for case in cases if case.state == "closed"]
        for case in rng.sample(closed, 8):
            case.outcome = rng.choice(OUTCOMES)
        closed[0].outcome = None
        db.session.commit()
        # A case and its connections go.
        gone = closed[1].id
        db.session.execute(sa.delete(Connection).where(Connection.case_id == gone))
        db.session.execute(sa.delete(ServiceCase).where(ServiceCase.id == gone))
        db.session.commit()

        counted = connections.connected_seconds(ids)
        stored = dict(db.session.execute(sa.select(ServiceCase.id, ServiceCase.connected_seconds)).all())
        assert stored == {case_id: counted.get(case_id, 0) for case_id in stored}
        assert sum(stored.values()) > 0
        for tz, first, last, technician in [
            ("UTC", "2026-11-01", "2026-11-30", None), ("Asia/Tokyo", "2026-11-10", "2026-11-11", None),
            ("Asia/Kathmandu", "2026-11-09", "2026-11-10", "agent-1"), ("America/St_Johns", "2026-11-10",
                                                                        "2026-11-10", None)]:
            filters = reports.Filters(date.fromisoformat(first), date.fromisoformat(last), tz, technician)
            built = reports.build(filters)
            assert _reported(built) == _expected(filters), (tz, first, last, technician)
            assert reports.as_json(built) == reports.as_json(reports.build(filters, use_rollup=False))
    kept = _rollup_rows(app)
    with app.app_context():
        with db.engine.begin() as connection_:
            rollup.rebuild(connection_)
    assert _rollup_rows(app) == kept


# --- connected time --------------------------------------------------------------------------------

def test_a_connection_without_end_counts_nothing_until_it_ends(app, client, add_case, add_connection):
    case = add_case(DAY, 30, outcome="resolved")
    add_connection(case, DAY + timedelta(minutes=1), 600)
    running = add_connection(case, DAY + timedelta(minutes=15), None)
    assert report(client)["total_connected_seconds"] == 600
    with app.app_context():
        row = db.session.get(Connection, running)
        row.end_at = row.start_at + timedelta(minutes=5)
        db.session.commit()
    body = report(client)
    assert (body["total_connected_seconds"], body["average_connected_seconds"]) == (900, 900)
    assert outcomes(body)["resolved"] == (1, 900, 900)


def test_connected_time_is_summed_per_session_and_left_out_for_expired_cases(client, add_case, add_connection):
    first = add_case(DAY, 40, outcome="resolved")
    add_connection(first, DAY + timedelta(minutes=2), 1200)
    add_connection(first, DAY + timedelta(minutes=25), 300)  # a reconnect
    second = add_case(DAY, 20, outcome="unresolved", tech="agent-2", name="田中 愛子")
    add_connection(second, DAY + timedelta(minutes=3), 601)
    add_case(DAY, 10)  # nobody joined: a session without connected time
    expired = add_case(DAY, state="expired")
    add_connection(expired, DAY + timedelta(minutes=5), 3000)  # a forgotten stop
    body = report(client)
    totals = body["total_sessions"], body["total_connected_seconds"], body["average_connected_seconds"]
    assert totals == (3, 2101, 700)
    technicians = {item["value"]: (item["total_connected_seconds"], item["average_connected_seconds"])
                   for item in body["by_technician"]}
    assert technicians == {"agent-1": (1500, 750), "agent-2": (601, 601)}
    assert {item["value"]: item["total_connected_seconds"] for item in body["by_category"]} == {"PC": 2101}


# --- the outcome breakdown -------------------------------------------------------------------------

def test_the_outcome_breakdown_lists_every_outcome_and_counts_none_as_unknown(client, add_case):
    add_case(DAY, 10, outcome="resolved")
    add_case(DAY, 20, outcome="resolved")
    add_case(DAY, 30, outcome=None)  # closed before outcomes existed, or by another tool
    add_case(DAY, 40, outcome="unknown")
    add_case(DAY, state="expired")
    body = report(client)
    assert [item["value"] for item in body["by_outcome"]] == ["resolved", "unresolved", "unknown"]
    durations = {item["value"]: (item["sessions"], item["total_duration_seconds"]) for item in body["by_outcome"]}
    assert durations == {"resolved": (2, 1800), "unresolved": (0, 0), "unknown": (2, 4200)}


def test_an_outcome_changed_after_the_stop_moves_the_session(app, client, add_case):
    case = add_case(DAY, 10, outcome="unresolved")
    assert outcomes(report(client))["unresolved"][0] == 1
    with app.app_context():
        db.session.get(ServiceCase, case).outcome = "resolved"
        db.session.commit()
    body = report(client)
    assert outcomes(body)["unresolved"][0] == 0 and outcomes(body)["resolved"][0] == 1


def test_filters_apply_to_outcomes_and_connected_time(client, add_case, add_connection):
    mine = add_case(DAY, 30, outcome="resolved", tech="agent-1")
    add_connection(mine, DAY, 100)
    theirs = add_case(DAY, 30, outcome="unresolved", tech="agent-2", name="田中 愛子")
    add_connection(theirs, DAY, 200)
    later = add_case(DAY + timedelta(days=5), 30, outcome="unresolved", tech="agent-2", name="田中 愛子")
    add_connection(later, DAY + timedelta(days=5), 400)
    one = report(client, technician="agent-2")
    assert one["total_connected_seconds"] == 600
    assert outcomes(one) == {"resolved": (0, 0, 0), "unresolved": (2, 600, 300), "unknown": (0, 0, 0)}
    # 2026-11-10 in Tokyo holds the first two; the later one is on the 15th.
    day = report(client, **{"from": "2026-11-10", "to": "2026-11-10", "tz": "Asia/Tokyo"})
    assert day["total_connected_seconds"] == 300
    assert outcomes(day) == {"resolved": (1, 100, 100), "unresolved": (1, 200, 200), "unknown": (0, 0, 0)}
    both = report(client, **{"from": "2026-11-10", "to": "2026-11-10", "tz": "Asia/Tokyo", "technician": "agent-2"})
    assert outcomes(both)["unresolved"] == (1, 200, 200) and both["total_connected_seconds"] == 200


# --- CSV and the page ------------------------------------------------------------------------------

def test_the_csvs_carry_connected_time_and_outcome(client, add_case, add_connection):
    case = add_case(datetime(2026, 11, 10, 1, 2, 3, tzinfo=UTC), 20, outcome="resolved")
    add_connection(case, DAY + timedelta(minutes=3), 754)
    expired = add_case(DAY + timedelta(hours=1), state="expired", tech="agent-2", name="田中 愛子")
    add_connection(expired, DAY + timedelta(minutes=3), 60)
    sign_in_admin(client)
    sessions = csv_rows(client.get(f"{PAGE}/sessions.csv", query_string=RANGE))
    assert sessions[0][-3:] == ["State", "Connected (seconds)", "Outcome"]
    assert sessions[1][-3:] == ["closed", "754", "resolved"]
    assert sessions[2][-3:] == ["expired", "60", "unknown"]  # what TeamViewer measured, though not summed
    table = csv_rows(client.get(f"{PAGE}/outcome.csv", query_string=RANGE))
    assert table[0] == ["Outcome", "Sessions", "Total duration (seconds)", "Total duration (h:mm:ss)",
                        "Average duration (seconds)", "Average duration (h:mm:ss)", "Expired without stop",
                        "Connected time (seconds)", "Connected time (h:mm:ss)", "Average connected time (seconds)",
                        "Average connected time (h:mm:ss)"]
    assert table[1:] == [["resolved", "1", "1200", "0:20:00", "1200", "0:20:00", "0", "754", "0:12:34", "754",
                          "0:12:34"],
                         ["unresolved", "0", "0", "0:00:00", "0", "0:00:00", "0", "0", "0:00:00", "0", "0:00:00"],
                         ["unknown", "0", "0", "0:00:00", "0", "0:00:00", "1", "0", "0:00:00", "0", "0:00:00"]]
    for name in ("summary", "technicians", "category", "bands"):
        heading, *lines = csv_rows(client.get(f"{PAGE}/{name}.csv", query_string=RANGE))
        assert heading[-4:] == ["Connected time (seconds)", "Connected time (h:mm:ss)",
                                "Average connected time (seconds)", "Average connected time (h:mm:ss)"]
        assert sum(int(line[-4]) for line in lines) == 754, name


def test_the_page_shows_connected_time_and_the_outcome_breakdown(client, add_case, add_connection):
    case = add_case(DAY, 65, outcome="resolved")
    add_connection(case, DAY + timedelta(minutes=2), 3600 + 5 * 60)
    add_case(DAY, 5, outcome="unresolved")
    sign_in_admin(client, tz="Asia/Tokyo")
    html = client.get(PAGE, query_string={"from": "2026-11-10", "to": "2026-11-10"}).text
    assert 'data-tvwidget-total="connected"><time datetime="PT3900S">1 h 05 min<' in html
    assert 'data-tvwidget-total="connected-average"><time datetime="PT1950S">32 min 30 s<' in html
    section = html[html.index('data-tvwidget-report="outcome"'):html.index('data-tvwidget-report="category"')]
    assert [line.split("</th>")[0].rsplit(">", 1)[-1] for line in section.split('<th scope="row"')[1:]] == [
        "Resolved", "Unresolved", "Unknown"]
    assert section.count('<rect class="tvwidget-report-bar') == 3 and "tvwidget-report-bar--muted" in section
    assert "50%" in section and 'data-tvwidget-csv="outcome"' in section
    assert '<time datetime="PT3900S">1:05:00</time>' in section  # the resolved session's connected time
