"""The audit log: append-only, paginated, filterable, exportable, times in the admin's zone."""
import csv
import datetime as dt
import io
import json
import re
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tvwidget.extensions import db
from tvwidget.storage import audit
from tvwidget.storage.models import AuditEvent, CaseState, ServiceCase

from ..helpers import sign_in_admin

UTC = dt.UTC


def _add(app, *events):
    with app.app_context():
        for event in events:
            db.session.add(AuditEvent(**{"detail": "{}"} | event))
        db.session.commit()


def _kinds_shown(page) -> list[str]:
    return re.findall(r'<tr data-tvwidget-kind="([a-z_]+)"', page.text)


# -- append-only ------------------------------------------------------------------------------------

def test_the_audit_module_exposes_only_record():
    public = sorted(name for name, value in vars(audit).items()
                    if callable(value) and not name.startswith("_")
                    and getattr(value, "__module__", "") == audit.__name__)
    assert public == ["record"]


def test_an_audit_row_cannot_be_changed_or_deleted(app):
    _add(app, {"kind": "connected", "actor_id": "admin-1"})
    with app.app_context():
        event = db.session.scalar(sa.select(AuditEvent))
        event.kind = "revoked"
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.scalar(sa.select(AuditEvent)))
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.commit()
        db.session.rollback()
        assert db.session.scalar(sa.select(AuditEvent.kind)) == "connected"


def test_no_code_path_updates_or_deletes_audit_rows():
    package = Path(audit.__file__).parent
    pattern = re.compile(r"(update|delete)\(\s*AuditEvent|AuditEvent\.__table__\.(update|delete)|"
                         r"tvwidget_audit_events\b[^\n]*\b(UPDATE|DELETE)|"
                         r"\b(UPDATE|DELETE FROM)\s+tvwidget_audit_events",
                         re.I)
    offenders = [str(path) for path in package.rglob("*.py") if pattern.search(path.read_text(encoding="utf-8"))]
    assert offenders == []


# -- the page ---------------------------------------------------------------------------------------

def test_the_audit_page_shows_newest_first_fifty_a_page(app, client):
    start = dt.datetime(2030, 1, 1, tzinfo=UTC)
    _add(app, *({"kind": "case_opened", "at": start + dt.timedelta(minutes=i), "ticket_id": f"T-{i}",
                 "actor_id": "agent-1", "actor_name": "Alex"} for i in range(120)))
    sign_in_admin(client)
    first = client.get("/embed/admin/audit")
    assert first.status_code == 200
    tickets = re.findall(r"<td>#(T-\d+)</td>", first.text)
    assert len(tickets) == 50 and tickets[0] == "T-119" and tickets[-1] == "T-70"
    assert "120 events" in first.text and "Page 1 of 3" in first.text
    third = client.get("/embed/admin/audit?page=3")
    assert re.findall(r"<td>#(T-\d+)</td>", third.text)[-1] == "T-0" and "Page 3 of 3" in third.text
    beyond = client.get("/embed/admin/audit?page=99")
    assert "Page 3 of 3" in beyond.text


def test_filters_by_kind_agent_and_ticket_and_links_keep_them(app, client):
    at = dt.datetime(2030, 1, 1, tzinfo=UTC)
    _add(app,
         {"kind": "connected", "at": at, "actor_id": "admin-1", "actor_name": "Ada Admin"},
         {"kind": "case_opened", "at": at, "actor_id": "agent-1", "actor_name": "Alex Morgan", "ticket_id": "T-1"},
         {"kind": "case_closed", "at": at, "actor_id": "agent-2", "actor_name": "田中 愛子", "ticket_id": "T-2"},
         *({"kind": "case_opened", "at": at, "actor_id": "agent-9", "actor_name": "Nine", "ticket_id": "T-9"}
           for _ in range(60)))
    sign_in_admin(client)
    assert _kinds_shown(client.get("/embed/admin/audit?kind=connected")) == ["connected"]
    assert _kinds_shown(client.get("/embed/admin/audit?agent=morgan")) == ["case_opened"]
    assert _kinds_shown(client.get("/embed/admin/audit?agent=agent-2")) == ["case_closed"]
    assert _kinds_shown(client.get("/embed/admin/audit", query_string={"agent": "田中"})) == ["case_closed"]
    assert _kinds_shown(client.get("/embed/admin/audit?agent=%25")) == []  # a LIKE wildcard is just a character
    assert _kinds_shown(client.get("/embed/admin/audit?ticket=T-2")) == ["case_closed"]
    page = client.get("/embed/admin/audit?kind=case_opened&ticket=T-9")
    assert len(_kinds_shown(page)) == 50
    assert re.search(r'<select[^>]*name="kind"', page.text) and 'method="get"' in page.text
    next_link = re.search(r'href="([^"]+)" rel="next"', page.text).group(1).replace("&amp;", "&")
    assert "kind=case_opened" in next_link and "ticket=T-9" in next_link and "page=2" in next_link
    assert len(_kinds_shown(client.get(next_link))) == 10
    csv_link = re.search(r'href="([^"]+)" download', page.text).group(1).replace("&amp;", "&")
    assert "kind=case_opened" in csv_link and "ticket=T-9" in csv_link


def test_dates_are_whole_days_in_the_admins_time_zone(app, client):
    late = dt.datetime(2030, 3, 1, 14, 59, tzinfo=UTC)   # 23:59 on 1 March in Tokyo
    early = dt.datetime(2030, 3, 1, 15, 0, tzinfo=UTC)   # 00:00 on 2 March in Tokyo
    _add(app, {"kind": "case_opened", "at": late, "ticket_id": "LATE"},
         {"kind": "case_closed", "at": early, "ticket_id": "EARLY"})
    sign_in_admin(client, tz="Asia/Tokyo")
    assert _kinds_shown(client.get("/embed/admin/audit?date_from=2030-03-02")) == ["case_closed"]
    assert _kinds_shown(client.get("/embed/admin/audit?date_to=2030-03-01")) == ["case_opened"]
    page = client.get("/embed/admin/audit?date_from=2030-03-01&date_to=2030-03-02")
    assert _kinds_shown(page) == ["case_closed", "case_opened"]
    assert "Asia/Tokyo" in page.text and "12:00:00" in page.text  # 15:00 UTC shown as 0:00:00 JST (12 AM)
    assert '<time datetime="2030-03-01T15:00:00Z">' in page.text


def test_without_a_time_zone_the_log_is_in_utc(app, client):
    _add(app, {"kind": "case_opened", "at": dt.datetime(2030, 3, 1, 23, 30, tzinfo=UTC)})
    sign_in_admin(client, tz=None)
    page = client.get("/embed/admin/audit?date_from=2030-03-01&date_to=2030-03-01")
    assert _kinds_shown(page) == ["case_opened"] and "in UTC" in page.text


@pytest.mark.parametrize("query, message", [
    ("date_from=2030-02-30", "Not a valid date value"),
    ("date_from=2030-03-02&date_to=2030-03-01", "The end date is before the start date."),
    ("kind=no_such_kind", "Not a valid choice"),
    ("page=0", "Number must be between 1 and 1000000"),
    ("page=abc", "Not a valid integer value"),
    ("ticket=" + "x" * 65, "cannot be longer than 64 characters"),
])
def test_a_bad_filter_is_explained(app, client, query, message):
    sign_in_admin(client)
    page = client.get(f"/embed/admin/audit?{query}")
    assert page.status_code == 422 and 'role="alert"' in page.text and message in page.text
    assert client.get(f"/embed/admin/audit.csv?{query}").status_code == 422


def test_each_row_shows_when_what_who_ticket_code_and_details_safely(app, client):
    with app.app_context():
        from tvwidget.host.tokens import TicketData, save_ticket

        save_ticket(TicketData(id="T-5"))
        case = ServiceCase(ticket_id="T-5", state=CaseState.CLOSED, idempotency_key=uuid.uuid4().hex,
                           code="s55-555-555", group_name="BOSS", opened_by_id="agent-1")
        db.session.add(case)
        db.session.flush()
        db.session.add(AuditEvent(kind="case_closed", actor_id="agent-1", actor_name="Alex Morgan", ticket_id="T-5",
                                  case_id=case.id, detail=json.dumps({"unknown_to_teamviewer": False})))
        db.session.add(AuditEvent(kind="group_changed", actor_id="admin-1", actor_name="Ada",
                                  detail=json.dumps({"old": "BOSS", "new": "<img src=x onerror=alert(1)>"})))
        db.session.add(AuditEvent(kind="something_new", detail="not json <b>"))
        db.session.commit()
    sign_in_admin(client)
    page = client.get("/embed/admin/audit")
    assert "Service case closed" in page.text and "Group changed" in page.text and "something_new" in page.text
    assert "<code>s55-555-555</code>" in page.text and "#T-5" in page.text and "Alex Morgan" in page.text
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "not json &lt;b&gt;" in page.text
    assert "<dt>unknown to TeamViewer</dt><dd>no</dd>" in page.text


# -- CSV export -------------------------------------------------------------------------------------

def test_csv_export_streams_the_filtered_rows_as_utf8_with_bom(app, client):
    at = dt.datetime(2030, 1, 1, 0, 0, tzinfo=UTC)
    _add(app,
         {"kind": "case_opened", "at": at, "actor_id": "agent-2", "actor_name": "田中 愛子", "ticket_id": "T-1",
          "detail": json.dumps({"code": "s12-345-678"})},
         {"kind": "group_changed", "at": at + dt.timedelta(minutes=1), "actor_id": "admin-1",
          "actor_name": "=HYPERLINK(\"http://evil\")", "detail": json.dumps({"new": "@SUM(1)"})},
         {"kind": "connected", "at": at - dt.timedelta(days=400), "actor_id": "admin-0"})
    sign_in_admin(client, tz="Asia/Tokyo")
    response = client.get("/embed/admin/audit.csv?date_from=2029-12-01")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv" and response.mimetype_params.get("charset") == "utf-8"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="tvwidget-audit-')
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert [row["kind"] for row in rows] == ["group_changed", "case_opened"]
    opened = rows[1]
    assert opened["actor_name"] == "田中 愛子" and opened["ticket_id"] == "T-1"
    assert opened["time_utc"] == "2030-01-01T00:00:00Z" and opened["time_local"] == "2030-01-01 09:00:00"
    assert opened["timezone"] == "Asia/Tokyo" and opened["event"] == "Service case opened"
    assert json.loads(opened["detail"]) == {"code": "s12-345-678"}
    assert rows[0]["actor_name"].startswith("'=") and "'" not in rows[1]["actor_name"]
    assert rows[0]["detail"].startswith("{")  # JSON, not a formula


# -- what gets recorded ---------------------------------------------------------------------------

def test_admin_actions_and_case_events_are_recorded_with_who(connected_app, client, launch, smtp):
    widget = launch()
    widget.play()
    smtp.wait_for(1)
    widget.stop()
    sign_in_admin(client)
    page = client.get("/embed/admin/audit")
    for label in ("Service case opened", "Invitation sent", "Service case closed"):
        assert label in page.text, label
    with connected_app.app_context():
        events = db.session.execute(sa.select(AuditEvent.kind, AuditEvent.actor_id, AuditEvent.ticket_id)).all()
    assert ("case_opened", "agent-1", "T-1") in events and ("case_closed", "agent-1", "T-1") in events
