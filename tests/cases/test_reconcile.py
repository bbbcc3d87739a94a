"""``tvwidget reconcile``: orphans between a crash and TeamViewer are adopted or closed (issue 7)."""
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tvwidget.extensions import db
from tvwidget.storage.models import (
    AuditEvent,
    CaseState,
    DirectoryUser,
    EmailMessage,
    ServiceCase,
    Ticket,
    WebhookEvent,
    utcnow,
)

from ..conftest import connect


@pytest.fixture
def app(app_factory, teamviewer_server):
    app = app_factory(TEAMVIEWER_API_URL=teamviewer_server.url_for("/api/v1"), TEAMVIEWER_RETRIES=0)
    connect(app)
    return app


def _remote(code, key):
    return {"code": code, "state": "Open", "supporter_link": f"https://tv.test/{code}-x",
            "end_customer_link": f"https://tv.test/{code}", "valid_until": "2099-01-01T00:00:00Z",
            "custom_api": json.dumps({"ticket_id": "T", "case": key})}


def _case(ticket, state, key, age=timedelta(minutes=5), **values):
    return ServiceCase(ticket_id=ticket, state=state, idempotency_key=key, group_name="BOSS",
                       opened_at=utcnow() - age, opened_by_id="agent-1", **values)


def _run(app):
    return app.test_cli_runner().invoke(args=["tvwidget", "reconcile"])


def test_reconcile_adopts_closes_and_leaves_live_cases_alone(app, teamviewer_server):
    with app.app_context():
        for ticket in ("A", "B", "C", "D", "E"):
            db.session.add(Ticket(id=ticket))
        db.session.add_all([
            _case("A", CaseState.CREATING, "k-adopt"),               # crashed after TeamViewer made it
            _case("B", CaseState.CREATING, "k-gone"),                # crashed before TeamViewer made it
            _case("C", CaseState.FAILED, "k-timeout", error="timeout"),  # timed out, but TeamViewer made it
            _case("D", CaseState.EXPIRED, "k-expired", code="s44-444-444",
                  valid_until=utcnow() - timedelta(hours=1)),
            _case("E", CaseState.OPEN, "k-live", code="s55-555-555", valid_until=utcnow() + timedelta(hours=3)),
        ])
        db.session.commit()
    teamviewer_server.expect_request("/api/v1/sessions", method="GET").respond_with_json({"sessions": [
        _remote("s11-111-111", "k-adopt"), _remote("s33-333-333", "k-timeout"),
        _remote("s44-444-444", "k-expired"), _remote("s55-555-555", "k-live"),
        {"code": "s99-999-999", "state": "Open"},  # not ours: no custom_api key
    ]})
    for code in ("s33-333-333", "s44-444-444"):
        teamviewer_server.expect_oneshot_request(f"/api/v1/sessions/{code}", method="PUT",
                                          json={"state": "closed"}).respond_with_data("", 204)
    result = _run(app)
    assert result.exit_code == 0, result.output
    assert "adopted 1, failed 1, closed at TeamViewer 2, errors 0" in result.output
    with app.app_context():
        states = dict(db.session.execute(sa.select(ServiceCase.ticket_id, ServiceCase.state)).all())
        assert states == {"A": "open", "B": "failed", "C": "failed", "D": "expired", "E": "open"}
        assert db.session.scalar(sa.select(ServiceCase.code).where(ServiceCase.ticket_id == "A")) == "s11-111-111"
        kinds = db.session.scalars(sa.select(AuditEvent.kind)).all()
        assert kinds.count("orphan_closed") == 2 and "case_adopted" in kinds
    puts = [entry[0].path for entry in teamviewer_server.log if entry[0].method == "PUT"]
    assert sorted(puts) == ["/api/v1/sessions/s33-333-333", "/api/v1/sessions/s44-444-444"]


def test_an_adopted_case_gets_its_invitation_and_webhook_event(app_factory, teamviewer_server, smtp):
    app = app_factory(TEAMVIEWER_API_URL=teamviewer_server.url_for("/api/v1"), TEAMVIEWER_RETRIES=0,
                      HOST_WEBHOOK_URL="https://helpdesk.example/hooks/tvwidget")
    connect(app)
    with app.app_context():
        db.session.add(Ticket(id="A", requester_name="John Doe", requester_email="john.doe@example.com"))
        db.session.add(Ticket(id="B", requester_email="not an address"))
        db.session.add_all([_case("A", CaseState.CREATING, "k-a", opened_by_name="Alex Morgan"),
                            _case("B", CaseState.CREATING, "k-b", opened_by_name="Alex Morgan")])
        db.session.commit()
    teamviewer_server.expect_request("/api/v1/sessions", method="GET").respond_with_json({"sessions": [
        _remote("s11-111-111", "k-a"), _remote("s22-222-222", "k-b")]})
    assert "adopted 2" in _run(app).output
    with app.app_context():
        messages = db.session.scalars(sa.select(EmailMessage)).all()
        assert [(m.recipient, m.status) for m in messages] == [("john.doe@example.com", "pending")]
        assert "https://tv.test/s11-111-111" in messages[0].body_text and "Alex Morgan" in messages[0].body_text
        events = db.session.scalars(sa.select(WebhookEvent.kind).order_by(WebhookEvent.ticket_id)).all()
        assert events == ["service_case.opened", "service_case.opened"]
        assert "email_not_sent" in db.session.scalars(sa.select(AuditEvent.kind)).all()  # B has no valid address
    sent = app.test_cli_runner().invoke(args=["tvwidget", "outbox", "send"])
    assert sent.exit_code == 0, sent.output
    assert smtp.wait_for(1)[0].rcpt_tos == ["john.doe@example.com"]
    assert _run(app).output.count("adopted 0")  # nothing queued twice on the next run
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(EmailMessage)) == 1


def test_reconcile_twice_changes_nothing_more(app, teamviewer_server):
    with app.app_context():
        db.session.add(Ticket(id="A"))
        db.session.add(_case("A", CaseState.CREATING, "k-gone"))
        db.session.commit()
    teamviewer_server.expect_request("/api/v1/sessions", method="GET").respond_with_json({"sessions": []})
    assert "failed 1" in _run(app).output
    assert "adopted 0, failed 0, closed at TeamViewer 0" in _run(app).output


def test_a_young_creating_row_is_left_to_its_request(app, teamviewer_server):
    with app.app_context():
        db.session.add(Ticket(id="A"))
        db.session.add(_case("A", CaseState.CREATING, "k-young", age=timedelta(seconds=2)))
        db.session.commit()
    teamviewer_server.expect_request("/api/v1/sessions", method="GET").respond_with_json({"sessions": []})
    _run(app)
    with app.app_context():
        assert db.session.scalar(sa.select(ServiceCase.state)) == CaseState.CREATING


def test_reconcile_follows_teamviewers_pages(app, teamviewer_server):
    with app.app_context():
        db.session.add(Ticket(id="A"))
        db.session.add(_case("A", CaseState.FAILED, "k-page2", error="timeout"))
        db.session.commit()
    teamviewer_server.expect_ordered_request("/api/v1/sessions", method="GET").respond_with_json(
        {"sessions": [_remote("s10-000-001", "other")], "next_offset": "s10-000-001", "sessions_remaining": 1})
    teamviewer_server.expect_ordered_request("/api/v1/sessions", method="GET",
                                      query_string={"state": "open", "full_list": "true",
                                                    "offset": "s10-000-001"}).respond_with_json(
        {"sessions": [_remote("s20-000-002", "k-page2")]})
    teamviewer_server.expect_request("/api/v1/sessions/s20-000-002", method="PUT").respond_with_data("", 204)
    assert "closed at TeamViewer 1" in _run(app).output
    # s10-000-001 carries a key no case here has: another installation's session, left alone.
    assert [e[0].path for e in teamviewer_server.log if e[0].method == "PUT"] == ["/api/v1/sessions/s20-000-002"]


def test_reconcile_without_a_connection_says_so(app_factory):
    result = app_factory().test_cli_runner().invoke(args=["tvwidget", "reconcile"])
    assert result.exit_code == 0 and "not connected" in result.output


def test_an_adopted_case_keeps_whose_teamviewer_it_was_assigned_to(app, teamviewer_server):
    """A play that died after TeamViewer assigned its case: the adopted case names the assignee."""
    with app.app_context():
        db.session.add(Ticket(id="A"))
        db.session.add(_case("A", CaseState.CREATING, "k-assigned"))
        db.session.add(DirectoryUser(userid="u201", name="Alex Morgan", email="alex@x.example",
                                     email_key="alex@x.example", active=True))
        db.session.commit()
    teamviewer_server.expect_request("/api/v1/sessions", method="GET").respond_with_json({"sessions": [
        _remote("s11-111-111", "k-assigned") | {"assigned_userid": "u201"}]})
    assert _run(app).exit_code == 0
    with app.app_context():
        case = db.session.scalars(sa.select(ServiceCase)).one()
        assert (case.state, case.assigned_userid, case.assigned_name) == (CaseState.OPEN, "u201", "Alex Morgan")
