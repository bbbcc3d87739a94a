"""Real connection times: TeamViewer's connection report, paged, late and incomplete, stored per case."""
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from werkzeug import Response

from tvwidget.extensions import db
from tvwidget.storage.models import CaseTracking, Comment, Connection, ServiceCase, utcnow
from tvwidget.teamviewer.client import TeamViewerClient

from ..conftest import HOST_API_KEY, connect

CODE = "s12-345-678"
SESSION = {"code": CODE, "state": "Open", "supporter_link": "https://tv.test/s12345678-abc",
           "end_customer_link": "https://tv.test/s12345678", "valid_until": "2099-01-01T00:00:00Z"}


def _record(n, start="2030-01-01T10:00:00Z", end="2030-01-01T10:20:30Z", **extra):
    record = {"id": f"00000000-0000-0000-0000-{n:012d}", "userid": "u1234", "username": "Sandbox Supporter",
              "deviceid": "d111", "devicename": "REQUESTER-PC", "start_date": start, "notes": "fixed outlook",
              "session_code": CODE, "support_session_type": 2} | extra
    if end is not None:
        record["end_date"] = end
    return record


class Reports:
    """GET /reports/connections answering from ``pages`` (a list of record lists), paged on offset_id."""

    def __init__(self):
        self.pages = []
        self.requests = []

    def handle(self, request):
        self.requests.append(request.args.to_dict())
        pages = self.pages
        index = 0
        if "offset_id" in request.args:
            index = next(i for i, page in enumerate(pages) if page and page[-1]["id"] == request.args["offset_id"]) + 1
        body = {"records": pages[index] if index < len(pages) else []}
        if index + 1 < len(pages):
            body["next_offset"] = pages[index][-1]["id"]
            if index == 0:
                body["records_remaining"] = 1  # the docs' field, present only sometimes
        return Response(json.dumps(body), 200, content_type="application/json")


@pytest.fixture
def teamviewer(teamviewer_server):
    """The session TeamViewer makes and the connection report it pages through, scripted on the bare server."""
    server = teamviewer_server
    server.reports = Reports()
    server.expect_request("/api/v1/sessions", method="POST").respond_with_json(SESSION)
    server.expect_request(f"/api/v1/sessions/{CODE}", method="PUT").respond_with_response(Response("", 204))
    server.expect_request("/api/v1/reports/connections", method="GET").respond_with_handler(server.reports.handle)
    return server


@pytest.fixture
def app(app_factory, teamviewer):
    app = app_factory(TEAMVIEWER_API_URL=teamviewer.url_for("/api/v1"), TEAMVIEWER_RETRIES=0)
    connect(app)
    return app


def _sync(app):
    return app.test_cli_runner().invoke(args=["tvwidget", "sync-connections"]).output


def _retry_soon(app):
    """Let the next run ask again (runs are at most every 10 minutes per case)."""
    with app.app_context():
        db.session.execute(sa.update(CaseTracking).values(connections_checked_at=utcnow() - timedelta(minutes=11)))
        db.session.commit()


def _connections(app):
    with app.app_context():
        rows = db.session.scalars(sa.select(Connection).order_by(Connection.start_at)).all()
        db.session.expunge_all()
        return rows


def test_client_follows_offset_id_until_next_offset_is_absent(teamviewer):
    teamviewer.reports.pages = [[_record(1), _record(2)], [_record(3)], [_record(4, end=None)]]
    with TeamViewerClient(teamviewer.url_for("/api/v1"), "token") as client:
        records = client.connection_reports(CODE)
    assert [r.id[-1] for r in records] == ["1", "2", "3", "4"]
    assert [r.get("offset_id") for r in teamviewer.reports.requests] == [None, _record(2)["id"], _record(3)["id"]]
    assert all(r["session_code"] == CODE for r in teamviewer.reports.requests)
    assert records[0].username == "Sandbox Supporter" and records[0].devicename == "REQUESTER-PC"
    assert records[0].notes == "fixed outlook" and (records[0].end - records[0].start).total_seconds() == 1230
    assert records[3].end is None


def test_reports_that_arrive_late_are_fetched_by_a_later_run(app, teamviewer, launch, client):
    widget = launch()
    widget.play()
    widget.stop()
    assert "0 case(s) synced, 1 still waiting" in _sync(app)
    assert _connections(app) == []
    assert "0 case(s) synced, 0 still waiting" in _sync(app)  # asked again only after 10 minutes
    assert len(teamviewer.reports.requests) == 1

    teamviewer.reports.pages = [[_record(1)], [_record(2, start="2030-01-01T11:00:00Z", end="2030-01-01T11:05:00Z")]]
    _retry_soon(app)
    assert "1 case(s) synced" in _sync(app)
    rows = _connections(app)
    assert [(r.username, r.devicename, r.seconds) for r in rows] == [("Sandbox Supporter", "REQUESTER-PC", 1230),
                                                                      ("Sandbox Supporter", "REQUESTER-PC", 300)]
    with app.app_context():
        comment = db.session.scalar(sa.select(Comment).where(Comment.kind == "connections"))
        assert "connected 0:25:30" in comment.body and "REQUESTER-PC" in comment.body
    history = widget.client.get("/embed/widget/history", headers={"X-TVWidget-Credential": widget.credential}).text
    assert "connected 0:25:30" in history
    _retry_soon(app)
    _sync(app)  # synced cases are not asked again
    assert len(teamviewer.reports.requests) == 3


def test_a_connection_without_end_date_is_stored_and_asked_again(app, teamviewer, launch):
    widget = launch()
    widget.play()
    widget.stop()
    teamviewer.reports.pages = [[_record(1, end=None)]]
    assert "1 still waiting" in _sync(app)
    (row,) = _connections(app)
    assert row.end_at is None and row.seconds == 0
    teamviewer.reports.pages = [[_record(1)]]
    _retry_soon(app)
    assert "1 case(s) synced" in _sync(app)
    (row,) = _connections(app)  # updated in place, not duplicated
    assert row.seconds == 1230


def test_cases_ended_more_than_48_hours_ago_are_given_up(app, teamviewer, launch):
    widget = launch()
    widget.play()
    widget.stop()
    with app.app_context():
        db.session.execute(sa.update(ServiceCase).values(closed_at=utcnow() - timedelta(hours=49)))
        db.session.commit()
    assert "0 case(s) synced, 0 still waiting" in _sync(app)
    assert teamviewer.reports.requests == []


def test_open_cases_are_not_synced(app, teamviewer, launch):
    launch().play()
    _sync(app)
    assert teamviewer.reports.requests == []


def test_the_report_gains_the_connected_time_when_the_reports_arrive(app, teamviewer, launch, client):
    widget = launch()
    widget.play()
    widget.post("stop", {"outcome": "resolved"})
    api = {"Authorization": f"Bearer {HOST_API_KEY}"}

    def report():
        return client.get("/api/v1/reports/teamviewer-sessions", headers=api).get_json()

    _sync(app)  # nothing reported yet
    assert report()["total_sessions"] == 1 and report()["total_connected_seconds"] == 0
    teamviewer.reports.pages = [[_record(1), _record(2, start="2030-01-01T11:00:00Z", end="2030-01-01T11:05:00Z")]]
    _retry_soon(app)
    assert "1 case(s) synced" in _sync(app)
    body = report()
    assert (body["total_connected_seconds"], body["average_connected_seconds"]) == (1530, 1530)
    assert body["by_outcome"][0] | {"total_duration_seconds": 0, "average_duration_seconds": 0} == {
        "value": "resolved", "sessions": 1, "total_duration_seconds": 0, "average_duration_seconds": 0,
        "total_connected_seconds": 1530, "average_connected_seconds": 1530}
