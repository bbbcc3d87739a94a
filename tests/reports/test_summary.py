"""The TeamViewer Sessions Summary: figures, time zones, roll-ups, CSV, JSON and the admin page."""
import csv
import io
import itertools
import re
import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tvwidget.extensions import db
from tvwidget.reports import rollup, summary as reports
from tvwidget.storage.models import ServiceCase, Ticket

from ..conftest import HOST_API_KEY
from ..helpers import sign_in_admin

API = {"Authorization": f"Bearer {HOST_API_KEY}"}
URL = "/api/v1/reports/teamviewer-sessions"
PAGE = "/embed/admin/reports/teamviewer-sessions"
DAY = datetime(2026, 11, 10, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
RANGE = {"from": "2026-11-01", "to": "2026-11-30"}


@pytest.fixture
def add_case(app):
    """Return ``add(opened_at, minutes, **fields)``: store one case directly, as if stopped after ``minutes``."""
    keys = itertools.count()

    def add(opened_at, minutes=10, *, seconds=None, state="closed", tech="agent-1", name="Alex Morgan",
            category="PC", type="Incident", priority="High", source="Email", ticket="T-1"):
        length = timedelta(seconds=minutes * 60 if seconds is None else seconds)
        with app.app_context():
            if db.session.get(Ticket, ticket) is None:
                db.session.add(Ticket(id=ticket, subject="Outlook crashes"))
            case = ServiceCase(
                ticket_id=ticket, state=state, idempotency_key=f"test-{next(keys)}", group_name="BOSS",
                code="s123-456-789", opened_at=opened_at, valid_until=opened_at + timedelta(hours=24),
                opened_by_id=tech, opened_by_name=name, closed_at=opened_at + length if state == "closed" else None,
                ticket_category=category, ticket_type=type, ticket_priority=priority, ticket_source=source)
            db.session.add(case)
            db.session.commit()
            return case.id
    return add


def report(client, **params):
    response = client.get(URL, query_string=RANGE | params, headers=API)
    assert response.status_code == 200, response.text
    return response.get_json()


def items(body, key):
    """Return a breakdown as {value: (sessions, total, average)}."""
    return {item["value"]: (item["sessions"], item["total_duration_seconds"], item["average_duration_seconds"])
            for item in body[key]}


# --- figures ---------------------------------------------------------------------------------------

def test_totals_averages_and_every_breakdown(client, add_case):
    add_case(DAY, 10, tech="agent-1", name="Alex Morgan", category="PC", type="Incident", priority="High",
             source="Email")
    add_case(DAY, 20, tech="agent-1", name="Alex Morgan", category="Network", type="Incident", priority="Low",
             source="User portal")
    add_case(DAY, 45, tech="agent-2", name="田中 愛子", category="PC", type="Service request", priority="Urgent",
             source="Technician portal")
    body = report(client)
    assert (body["total_sessions"], body["total_duration_seconds"], body["average_duration_seconds"]) == (3, 4500, 1500)
    assert body["by_technician"] == [
        {"value": "agent-1", "name": "Alex Morgan", "sessions": 2, "total_duration_seconds": 1800,
         "average_duration_seconds": 900, "total_connected_seconds": 0, "average_connected_seconds": 0},
        {"value": "agent-2", "name": "田中 愛子", "sessions": 1, "total_duration_seconds": 2700,
         "average_duration_seconds": 2700, "total_connected_seconds": 0, "average_connected_seconds": 0},
    ]
    assert items(body, "by_category") == {"PC": (2, 3300, 1650), "Network": (1, 1200, 1200)}
    assert items(body, "by_type") == {"Incident": (2, 1800, 900), "Service request": (1, 2700, 2700)}
    assert items(body, "by_priority") == {"High": (1, 600, 600), "Low": (1, 1200, 1200), "Urgent": (1, 2700, 2700)}
    assert items(body, "by_source") == {"Email": (1, 600, 600), "User portal": (1, 1200, 1200),
                                        "Technician portal": (1, 2700, 2700)}


def test_averages_round_to_whole_seconds(client, add_case):
    add_case(DAY, seconds=10)
    add_case(DAY, seconds=11)
    assert report(client)["average_duration_seconds"] == 10  # 10.5 rounds to even, as Python does


def test_duration_bands_hold_each_session_once(client, add_case):
    for seconds in (0, 299, 300, 899, 900, 1799, 1800, 3599, 3600, 3 * 3600):
        add_case(DAY, seconds=seconds)
    bands = {band["value"]: (band["sessions"], band["from_minutes"], band["to_minutes"])
             for band in report(client)["duration_bands"]}
    assert bands == {"<5": (2, 0, 5), "<15": (2, 5, 15), "<30": (2, 15, 30), "<60": (2, 30, 60),
                     ">=60": (2, 60, None)}


def test_expired_cases_are_counted_apart_and_left_out_of_durations(client, add_case):
    add_case(DAY, 30)
    add_case(DAY, state="expired")
    add_case(DAY, state="expired", tech="agent-2", name="田中 愛子", ticket="T-2")
    body = report(client)
    assert (body["total_sessions"], body["total_duration_seconds"], body["average_duration_seconds"]) == (1, 1800, 1800)
    assert body["expired_without_stop"] == 2
    assert sum(band["sessions"] for band in body["duration_bands"]) == 1
    technicians = {item["value"]: item["sessions"] for item in body["by_technician"]}
    assert technicians == {"agent-1": 1, "agent-2": 0}  # a technician whose only case expired: no sessions


def test_open_creating_and_failed_cases_are_not_reported(client, add_case):
    add_case(DAY, state="open", ticket="T-2")
    add_case(DAY, state="creating", ticket="T-3")
    add_case(DAY, state="failed", ticket="T-4")
    body = report(client)
    assert body["total_sessions"] == 0 and body["expired_without_stop"] == 0 and body["by_technician"] == []


def test_unknown_attributes_are_reported_as_null(client, add_case):
    add_case(DAY, category=None, type=None, priority=None, source=None)
    body = report(client)
    for key in ("by_category", "by_type", "by_priority", "by_source"):
        assert [item["value"] for item in body[key]] == [None]


def test_the_technician_filter_keeps_one_technicians_sessions(client, add_case):
    add_case(DAY, 10, tech="agent-1", category="PC")
    add_case(DAY, 20, tech="agent-2", name="田中 愛子", category="Printer")
    add_case(DAY + timedelta(hours=30), 40, tech="agent-2", name="田中 愛子", category="Printer")
    body = report(client, technician="agent-2")
    assert (body["total_sessions"], body["total_duration_seconds"]) == (2, 3600)
    assert body["by_technician"] == [{"value": "agent-2", "name": "田中 愛子", "sessions": 2,
                                      "total_duration_seconds": 3600, "average_duration_seconds": 1800,
                                      "total_connected_seconds": 0, "average_connected_seconds": 0}]
    assert items(body, "by_category") == {"Printer": (2, 3600, 1800)}
    nobody = report(client, technician="nobody")
    assert nobody["total_sessions"] == 0 and nobody["by_technician"] == [] and nobody["by_category"] == []


def test_a_session_belongs_to_the_day_it_was_opened_in_the_viewers_zone(client, add_case):
    add_case(datetime(2026, 11, 9, 14, 59, 59, tzinfo=UTC), 10)  # Tokyo: 23:59:59 on the 9th
    add_case(datetime(2026, 11, 9, 15, 0, 0, tzinfo=UTC), 20)    # Tokyo: 00:00:00 on the 10th
    add_case(datetime(2026, 11, 9, 18, 30, 0, tzinfo=UTC), 50)   # Kolkata (UTC+5:30): 00:00 on the 10th
    add_case(datetime(2026, 11, 10, 14, 59, 0, tzinfo=UTC), 30)  # Tokyo: 23:59 on the 10th
    add_case(datetime(2026, 11, 10, 15, 0, 0, tzinfo=UTC), 40)   # Tokyo: the 11th
    tokyo = report(client, **{"from": "2026-11-10", "to": "2026-11-10", "tz": "Asia/Tokyo"})
    assert (tokyo["total_sessions"], tokyo["total_duration_seconds"]) == (3, 6000)
    utc = report(client, **{"from": "2026-11-09", "to": "2026-11-09"})
    assert (utc["total_sessions"], utc["total_duration_seconds"]) == (3, 4800)
    assert report(client, **{"from": "2026-11-10", "to": "2026-11-11", "tz": "Asia/Tokyo"})["total_sessions"] == 4
    kolkata = report(client, **{"from": "2026-11-09", "to": "2026-11-09", "tz": "Asia/Kolkata"})
    assert (kolkata["total_sessions"], kolkata["total_duration_seconds"]) == (2, 1800)


def test_history_stays_true_when_the_ticket_changes_later(client, add_case):
    add_case(DAY, 10, ticket="T-9", category="PC", priority="Low")
    client.put("/api/v1/tickets/T-9", json={"category": "Network", "priority": "Urgent"}, headers=API)
    body = report(client)
    assert [i["value"] for i in body["by_category"]] == ["PC"] and [i["value"] for i in body["by_priority"]] == ["Low"]


def test_a_case_stopped_in_the_widget_is_reported(connected_app, launch, client):
    widget = launch()
    widget.play()
    widget.stop()
    body = report(client, **{"from": "", "to": ""})
    assert body["total_sessions"] == 1 and body["by_technician"][0]["value"] == "agent-1"


# --- the roll-ups stay exactly in step with the cases ----------------------------------------------

def _rollup_rows(app):
    """Return every roll-up row that holds anything, table by table."""
    with app.app_context():
        return {r.table: {tuple(row) for row in db.session.execute(sa.text(
                    f"SELECT * FROM {r.table} WHERE sessions <> 0 OR duration_seconds <> 0 OR expired <> 0 "
                    "OR connected_seconds <> 0"))}
                for r in rollup.ROLLUPS}


def test_the_rollups_follow_inserts_updates_and_deletes(app, add_case):
    ids = [add_case(DAY + timedelta(hours=7 * i, microseconds=123457 * i), seconds=97 * i + 0.4,
                    tech=f"agent-{i % 3}", name=f"Agent {i % 3}", category=("PC", "Network", None)[i % 3],
                    ticket=f"T-{i}") for i in range(12)]
    add_case(DAY, state="expired", ticket="T-E")
    open_id = add_case(DAY + timedelta(hours=3), state="open", ticket="T-O")
    with app.app_context():
        # A stop (open -> closed), a late edit of a closed case, a deletion, an update of nothing counted.
        db.session.execute(sa.update(ServiceCase).where(ServiceCase.id == open_id).values(
            state="closed", closed_at=DAY + timedelta(hours=4)))
        db.session.execute(sa.update(ServiceCase).where(ServiceCase.id == ids[1]).values(
            ticket_category="Printer", opened_by_name="Renamed", opened_at=DAY - timedelta(days=3)))
        db.session.execute(sa.delete(ServiceCase).where(ServiceCase.id == ids[2]))
        db.session.execute(sa.update(ServiceCase).where(ServiceCase.id == ids[3]).values(supporter_link="x"))
        db.session.commit()
    kept = _rollup_rows(app)
    with app.app_context():
        with db.engine.begin() as connection:
            rollup.rebuild(connection)
    assert _rollup_rows(app) == kept


@pytest.mark.parametrize("tz, start, end, technician", [
    ("UTC", "2026-11-01", "2026-11-30", None), ("Asia/Tokyo", "2026-11-10", "2026-11-12", None),
    ("Asia/Kolkata", "2026-11-09", "2026-11-13", "agent-1"), ("America/St_Johns", "2026-11-11", "2026-11-11", None),
    ("Asia/Tokyo", "2026-11-11", "2026-11-11", "agent-2"), ("Asia/Kathmandu", "2026-11-10", "2026-11-12", "agent-0"),
])
def test_the_report_from_rollups_equals_the_report_from_cases(app, add_case, tz, start, end, technician):
    for i in range(40):
        add_case(DAY + timedelta(minutes=97 * i, microseconds=654321 * i), seconds=37 * i + 0.5,
                 state="expired" if i % 9 == 0 else "closed", tech=f"agent-{i % 3}", name=f"Agent {i % 3}",
                 category=("PC", "Network", None, "Printer")[i % 4], priority=("High", "Low")[i % 2],
                 ticket=f"T-{i}")
    filters = reports.Filters(date.fromisoformat(start), date.fromisoformat(end), tz, technician)
    with app.app_context():
        quick, slow = reports.build(filters), reports.build(filters, use_rollup=False)
        assert reports.as_json(quick) == reports.as_json(slow)
        assert quick.total.sessions + quick.total.expired > 0


def test_concurrent_case_changes_cannot_deadlock_on_the_rollups(app, add_case):
    """The cron expiring cases while an agent stops one of them: both finish, the sums stay true."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite lets one writer in at a time")
    first_case, second_case = add_case(DAY, state="open", ticket="T-A"), add_case(DAY, state="open", ticket="T-C")
    expire = sa.text("UPDATE tvwidget_service_cases SET state = 'expired' WHERE id = :id AND state = 'open'")
    stop = sa.text("UPDATE tvwidget_service_cases SET state = 'closed', closed_at = opened_at "
                   "WHERE id = :id AND state = 'open'")
    errors, stopped = [], []

    def agent():
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SET lock_timeout = '10s'")
                stopped.append(connection.execute(stop, {"id": second_case}).rowcount)
                connection.commit()
        except sa.exc.DBAPIError as exc:
            errors.append(exc)

    with engine.connect() as cron:
        cron.exec_driver_sql("SET lock_timeout = '10s'")
        cron.execute(expire, {"id": first_case})
        thread = threading.Thread(target=agent)
        thread.start()
        time.sleep(0.5)  # the agent's stop now waits for the cron's transaction
        cron.execute(expire, {"id": second_case})
        cron.commit()
    thread.join(15)
    assert errors == [] and stopped == [0]  # the cron got there first; the stop found nothing open
    with app.app_context():
        assert reports.build(reports.Filters(DAY.date(), DAY.date())).total.expired == 2
    kept = _rollup_rows(app)
    with app.app_context():
        with db.engine.begin() as connection:
            rollup.rebuild(connection)
    assert _rollup_rows(app) == kept


def test_migrations_install_the_triggers(app_factory):
    from flask_migrate import upgrade

    app = app_factory()
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as connection:
            rollup.uninstall(connection)
            connection.exec_driver_sql("DROP TABLE IF EXISTS tvwidget_alembic_version")
        upgrade()
        db.session.add(Ticket(id="T-1"))
        db.session.add(ServiceCase(ticket_id="T-1", state="closed", idempotency_key="m-1", group_name="BOSS",
                                   opened_at=DAY, closed_at=DAY + timedelta(minutes=5), opened_by_id="agent-1"))
        db.session.commit()
        assert reports.build(reports.Filters(DAY.date(), DAY.date())).total.sessions == 1


# --- JSON ------------------------------------------------------------------------------------------

def test_the_json_has_the_spec_shape(client, add_case):
    add_case(DAY, 10)
    body = report(client)
    assert {"total_sessions", "total_duration_seconds", "average_duration_seconds", "by_technician", "by_category",
            "by_type", "by_priority", "by_source"} <= set(body)
    assert {"total_connected_seconds", "average_connected_seconds", "by_outcome"} <= set(body)
    item_keys = {"value", "sessions", "total_duration_seconds", "average_duration_seconds",
                 "total_connected_seconds", "average_connected_seconds"}
    assert set(body["by_technician"][0]) == item_keys | {"name"}
    for key in ("by_category", "by_type", "by_priority", "by_source", "by_outcome"):
        assert set(body[key][0]) == item_keys
    assert body["filters"] == {"from": "2026-11-01", "to": "2026-11-30", "tz": "UTC", "technician": None}


def test_the_json_defaults_to_the_last_30_utc_days(client):
    body = report(client, **{"from": "", "to": ""})
    end = datetime.now(UTC).date()
    assert body["filters"]["to"] == end.isoformat()
    assert body["filters"]["from"] == (end - timedelta(days=29)).isoformat()


@pytest.mark.parametrize("query, parameter", [
    ({"from": "yesterday"}, "from"), ({"to": "2026-13-01"}, "to"), ({"from": "2026-11-30", "to": "2026-11-01"}, "from"),
    ({"from": "0001-01-01"}, "from"), ({"to": "9999-12-31"}, "to"), ({"tz": "Mars/Olympus_Mons"}, "tz"),
    ({"technician": "x" * 101}, "technician"),
])
def test_bad_parameters_get_a_400_naming_them(client, query, parameter):
    response = client.get(URL, query_string=RANGE | query, headers=API)
    body = response.get_json()
    assert response.status_code == 400 and body["error"] == "invalid_parameter" and body["parameter"] == parameter
    assert parameter in body["message"]


# --- CSV -------------------------------------------------------------------------------------------

def _csv(response):
    assert response.status_code == 200, response.text
    assert response.is_streamed
    assert response.mimetype == "text/csv" and response.mimetype_params["charset"] == "utf-8"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=\"teamviewer-sessions-")
    raw = response.get_data()
    assert raw.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def test_the_sessions_csv_has_one_quoted_row_per_case(client, add_case):
    tricky = 'Drucker, "3. Stock"\nプリンター'
    add_case(datetime(2026, 11, 10, 1, 2, 3, 456789, tzinfo=UTC), seconds=754, category=tricky,
             name="田中 愛子", tech="agent-2")
    add_case(datetime(2026, 11, 11, 8, 0, tzinfo=UTC), state="expired", category="=HYPERLINK(\"x\")",
             ticket="T-2")
    sign_in_admin(client)
    response = client.get(f"{PAGE}/sessions.csv", query_string=RANGE)
    rows = _csv(response)
    assert rows[0] == ["Ticket ID", "Session code", "Category", "Type", "Priority", "Source", "Technician ID",
                       "Technician", "Opened (UTC)", "Closed (UTC)", "Duration (seconds)", "State",
                       "Connected (seconds)", "Outcome"]
    assert rows[1] == ["T-1", "s123-456-789", tricky, "Incident", "High", "Email", "agent-2", "田中 愛子",
                       "2026-11-10T01:02:03Z", "2026-11-10T01:14:37Z", "754", "closed", "0", "unknown"]
    assert rows[2][2] == "'=HYPERLINK(\"x\")"  # a formula stays text in a spreadsheet
    assert rows[2][9:] == ["", "", "expired", "0", "unknown"]
    assert len(rows) == 3
    assert b'"Drucker, ""3. Stock""\n' in response.get_data()  # RFC 4180 quoting


def test_every_table_downloads_as_csv(client, add_case):
    add_case(DAY, 10, category=None)
    add_case(DAY, 70, tech="agent-2", name="田中 愛子")
    add_case(DAY, state="expired")
    sign_in_admin(client)
    tables = {table: _csv(client.get(f"{PAGE}/{table}.csv", query_string=RANGE))
              for table in reports.TABLES if table != "sessions"}
    assert tables["summary"][1][:8] == ["2026-11-01", "2026-11-30", "Asia/Tokyo", "All technicians", "2", "4800",
                                        "1:20:00", "2400"]
    assert tables["summary"][1][9] == "1"
    assert [row[:3] for row in tables["technicians"][1:]] == [["agent-1", "Alex Morgan", "1"],
                                                            ["agent-2", "田中 愛子", "1"]]
    assert tables["technicians"][1][7] == "1"  # Alex's expired case
    assert {row[0] for row in tables["category"][1:]} == {"(none)", "PC"}
    assert [row[:2] for row in tables["bands"][1:]] == [["<5", "0"], ["<15", "1"], ["<30", "0"], ["<60", "0"],
                                                        [">=60", "1"]]


def test_csv_needs_the_admin_session_and_a_known_table(client):
    assert client.get(f"{PAGE}/sessions.csv").status_code == 401
    sign_in_admin(client)
    assert client.get(f"{PAGE}/secrets.csv").status_code == 404
    bad = client.get(f"{PAGE}/sessions.csv", query_string={"from": "soon"})
    assert bad.status_code == 422 and 'role="alert"' in bad.text


# --- the admin page --------------------------------------------------------------------------------

def test_the_page_shows_tables_and_charts_in_the_admins_zone(client, add_case):
    add_case(datetime(2026, 11, 9, 15, 0, tzinfo=UTC), 65, category=None)  # the 10th in Tokyo
    add_case(datetime(2026, 11, 9, 14, 0, tzinfo=UTC), 5)  # the 9th in Tokyo
    sign_in_admin(client, tz="Asia/Tokyo")
    page = client.get(PAGE, query_string={"from": "2026-11-10", "to": "2026-11-10"})
    assert page.status_code == 200 and page.headers["Vary"].startswith("HX-Request")
    html = page.text
    assert 'data-tvwidget-total="sessions">1<' in html and "1 h 05 min" in html
    assert "(none)" in html and "1:05:00" in html
    for key in ("technicians", "outcome", "category", "type", "priority", "source", "bands"):
        assert f'data-tvwidget-report="{key}"' in html and f'data-tvwidget-csv="{key}"' in html
    assert html.count('<svg class="tvwidget-report-chart"') == 7 and html.count('aria-hidden="true" focusable') == 7
    assert " style=" not in html and "<script>" not in html  # the CSP allows neither
    assert 'src="/static/tvwidget/vendor/htmx-2.0.11.min.js"' in html
    assert 'hx-push-url="true"' in html and 'value="2026-11-10"' in html
    assert "Asia/Tokyo" in html


def test_the_page_defaults_to_the_last_30_days(client):
    sign_in_admin(client, tz="Pacific/Kiritimati")  # UTC+14: its today is often not UTC's
    html = client.get(PAGE).text
    end = datetime.now(timezone(timedelta(hours=14))).date()
    assert f'name="to" type="date" value="{end.isoformat()}"' in html
    assert f'name="from" type="date" value="{(end - timedelta(days=29)).isoformat()}"' in html


def test_htmx_gets_only_the_results_and_a_history_restore_the_whole_page(client, add_case):
    add_case(DAY, 10)
    sign_in_admin(client)
    fragment = client.get(PAGE, query_string=RANGE, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and fragment.text.startswith('<section id="tvwidget-report"')
    assert "<html" not in fragment.text and fragment.headers["Vary"].startswith("HX-Request")
    restore = client.get(PAGE, query_string=RANGE,
                         headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text and 'id="tvwidget-report-filters"' in restore.text


def test_an_empty_range_and_a_technician_without_sessions_render_cleanly(client, add_case):
    add_case(DAY, 10)
    sign_in_admin(client)
    empty = client.get(PAGE, query_string={"from": "2020-01-01", "to": "2020-01-31"})
    assert empty.status_code == 200 and 'data-tvwidget-report="empty"' in empty.text
    assert 'data-tvwidget-total="sessions">0<' in empty.text
    nobody = client.get(PAGE, query_string=RANGE | {"technician": "agent-404"})
    assert nobody.status_code == 200 and 'data-tvwidget-report="empty"' in nobody.text
    assert '<option value="agent-404" selected>agent-404</option>' in nobody.text


def test_a_range_with_only_expired_cases_renders(client, add_case):
    add_case(DAY, state="expired")
    sign_in_admin(client)
    page = client.get(PAGE, query_string=RANGE)
    assert page.status_code == 200 and 'data-tvwidget-total="expired">1<' in page.text
    assert 'data-tvwidget-total="sessions">0<' in page.text and "0%" in page.text


def test_bad_filters_show_an_alert_and_keep_the_input(client):
    sign_in_admin(client)
    page = client.get(PAGE, query_string={"from": "2026-11-30", "to": "2026-11-01"})
    assert page.status_code == 422 and 'role="alert"' in page.text and "'from' must not be after 'to'." in page.text
    assert 'value="2026-11-30"' in page.text
    fragment = client.get(PAGE, query_string={"to": "tomorrow"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 422 and 'role="alert"' in fragment.text


def test_the_page_needs_the_admin_session(client):
    response = client.get(PAGE)
    assert response.status_code == 401 and 'role="alert"' in response.text


def test_the_filter_lists_technicians_by_name(client, add_case):
    add_case(DAY, 10, tech="agent-2", name="田中 愛子")
    add_case(DAY, 10, tech="agent-1", name="Alex Morgan")
    sign_in_admin(client)
    options = re.findall(r'<option value="([^"]*)"', client.get(PAGE).text)
    assert options == ["", "agent-1", "agent-2"]
