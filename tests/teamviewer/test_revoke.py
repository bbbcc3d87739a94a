"""Revoke app access and hand over: refused while cases are active, clear errors afterwards."""
import datetime as dt
import json
import re
import uuid

import sqlalchemy as sa

from tvwidget.extensions import db
from tvwidget.storage.models import (
    AuditEvent,
    CaseState,
    Comment,
    EmailTemplate,
    IntegrationSettings,
    ServiceCase,
    utcnow,
)

from ..conftest import connect, make_token
from ..helpers import csrf, sign_in_admin

REVOKE = 'data-tvwidget-action="revoke"'
CONFIRM = 'data-tvwidget-action="confirm-revoke"'
ADA = {"sub": "admin-1", "name": "Ada Admin"}  # the admin who revokes


def _confirm(client):
    page = client.get("/embed/admin/revoke")
    assert page.status_code == 200
    return page


def _revoke(client, page=None):
    page = page or _confirm(client)
    return client.post("/embed/admin/revoke", data={"csrf_token": csrf(page)})


def _events(app, kind=None):
    with app.app_context():
        query = sa.select(AuditEvent).order_by(AuditEvent.id)
        if kind:
            query = query.where(AuditEvent.kind == kind)
        return [(e.kind, e.actor_id, e.ticket_id, json.loads(e.detail)) for e in db.session.scalars(query)]


def _settings(app) -> IntegrationSettings:
    with app.app_context():
        row = db.session.get(IntegrationSettings, 1)
        db.session.expunge(row)
        return row


def _open_case_row(app, ticket_id="T-9", code="s12-345-678", **values):
    """Insert an open case as another process would have (a race the admin page cannot see coming)."""
    from tvwidget.host.tokens import TicketData, save_ticket

    with app.app_context():
        save_ticket(TicketData(id=ticket_id, subject="Printer offline", requester_email="r@example.com"))
        db.session.add(ServiceCase(
            ticket_id=ticket_id, state=values.pop("state", CaseState.OPEN), idempotency_key=uuid.uuid4().hex,
            code=code, group_name="BOSS", opened_by_id="agent-7", opened_by_name="Sam Agent",
            valid_until=values.pop("valid_until", utcnow() + dt.timedelta(hours=1)), **values))
        db.session.commit()


def test_the_revoke_button_leads_to_a_confirmation_step(connected_app, client):
    page = sign_in_admin(client, **ADA)
    assert REVOKE in page.text and CONFIRM not in page.text
    confirm = _confirm(client)
    assert CONFIRM in confirm.text and 'method="post"' in confirm.text
    assert "…1234" in confirm.text and "history" in confirm.text and "delete this script token" in confirm.text
    assert _settings(connected_app).connected  # looking at the confirmation changes nothing


def test_revoke_is_refused_while_a_case_is_active_listing_each(connected_app, client, launch):
    widget = launch(sub="agent-3", name="Kim Agent")
    widget.play()
    assert widget.state() == "open"
    code = widget.field("session-code")
    sign_in_admin(client, **ADA)
    confirm = _confirm(client)
    refusal = re.search(r'<div class="[^"]*" role="alert">(.*?)</div>', confirm.text, re.S).group(1)
    assert "cannot be revoked while service cases are active" in refusal
    assert "#T-1" in refusal and code in refusal and "Kim Agent" in refusal and "<time datetime=" in refusal
    assert CONFIRM not in confirm.text

    # A confirmation posted anyway (from an older page) is refused the same way.
    response = client.post("/embed/admin/revoke", data={"csrf_token": csrf(sign_in_admin(client, **ADA))})
    assert response.status_code == 409 and code in response.text and 'role="alert"' in response.text
    assert _settings(connected_app).connected
    assert _events(connected_app, "revoke_refused")[0][3]["cases"] == [f"T-1 {code}"]

    widget.stop()
    assert widget.state() == "idle"
    assert _revoke(client).status_code == 303
    assert not _settings(connected_app).connected


def test_revoke_forgets_the_token_and_keeps_group_templates_and_history(connected_app, client, launch):
    with connected_app.app_context():
        db.session.add(EmailTemplate(language="en", subject="Help for {ticket_id}", body="{customer_link}"))
        db.session.get(IntegrationSettings, 1).group_name = "Helpdesk"
        db.session.commit()
    widget = launch()
    widget.play()
    widget.stop()
    sign_in_admin(client, **ADA)
    response = _revoke(client)
    assert response.status_code == 303 and response.headers["Location"].endswith("revoked=1")
    row = _settings(connected_app)
    assert row.token_ciphertext is None and row.token_last4 is None
    assert row.account_name is None and row.account_email is None and row.company_name is None
    assert row.connected_by_name is None and row.connected_at is None
    assert row.revoked_by_name == "Ada Admin" and row.revoked_at is not None
    assert row.group_name == "Helpdesk"
    with connected_app.app_context():
        assert db.session.get(EmailTemplate, "en") is not None
        assert db.session.scalars(sa.select(ServiceCase.state)).all() == ["closed"]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Comment)) == 1
    _, actor, _, detail = _events(connected_app, "revoked")[0]
    assert actor == "admin-1" and detail["last4"] == "1234"
    assert {"case_opened", "case_closed", "revoked"} <= {e[0] for e in _events(connected_app)}

    page = client.get(response.headers["Location"])
    assert "App access revoked" in page.text and "revoked by Ada Admin" in page.text
    assert "How to connect TeamViewer" in page.text and "Create script token" in page.text
    assert REVOKE not in page.text
    # Nothing left to revoke: the confirmation step goes back to the settings.
    assert client.get("/embed/admin/revoke").status_code == 303


def test_after_revoke_the_widget_is_disconnected_and_tells_agents_an_admin_must_connect(connected_app, client,
                                                                                        launch):
    sign_in_admin(client, **ADA)
    _revoke(client)
    widget = launch()
    assert widget.state() == "disconnected"
    assert "Ask an administrator to connect TeamViewer" in widget.html
    admin_widget = launch(role="admin")
    assert "open tvwidget's admin area" in admin_widget.html
    response = widget.play()
    assert widget.state() == "disconnected" and response.status_code == 409
    assert "not connected" in widget.html


def test_stopping_a_case_opened_through_a_race_after_revoke_gives_a_clear_error(connected_app, client, launch):
    sign_in_admin(client, **ADA)
    assert _revoke(client).status_code == 303
    _open_case_row(connected_app, ticket_id="T-1", code="s98-765-432")
    response = launch().stop()
    assert response.status_code == 409
    assert "no longer connected" in response.text and "s98-765-432" in response.text
    assert 'role="alert"' in response.text
    with connected_app.app_context():
        assert db.session.scalar(sa.select(ServiceCase.state)) == "open"
    assert _events(connected_app, "case_close_failed")[0][1:3] == ("agent-1", "T-1")


def test_a_case_teamviewer_refuses_to_close_with_the_old_token_gives_a_clear_error(app_factory, teamviewer_server):
    """The token was revoked at TeamViewer (deleted in the Management Console) while tvwidget still holds it."""
    app = app_factory(TEAMVIEWER_API_URL=teamviewer_server.url_for("/api/v1"), TEAMVIEWER_RETRIES=0)
    connect(app)
    _open_case_row(app, ticket_id="T-1", code="s12-345-678")
    teamviewer_server.expect_request("/api/v1/sessions/s12-345-678", method="PUT").respond_with_json(
        {"error": "invalid_token", "error_code": 2}, status=401)
    from ..conftest import Widget

    client = app.test_client()
    widget = Widget(client, client.get("/embed/widget", query_string={"token": make_token()}).text)
    response = widget.stop()
    assert response.status_code == 502 and "rejected the script token" in response.text
    assert widget.state() == "open"
    assert _events(app, "case_close_failed")[0][3]["error"] == "auth"


def test_expired_and_abandoned_cases_do_not_block_a_revoke(connected_app, client):
    _open_case_row(connected_app, ticket_id="T-old", code="s11-111-111",
                   valid_until=utcnow() - dt.timedelta(minutes=5))
    _open_case_row(connected_app, ticket_id="T-stuck", code=None, state=CaseState.CREATING,
                   opened_at=utcnow() - dt.timedelta(minutes=10), valid_until=None)
    sign_in_admin(client, **ADA)
    assert CONFIRM in _confirm(client).text
    assert _revoke(client).status_code == 303


def test_a_case_being_created_blocks_a_revoke(connected_app, client):
    _open_case_row(connected_app, ticket_id="T-new", code=None, state=CaseState.CREATING, valid_until=None)
    sign_in_admin(client, **ADA)
    page = _confirm(client)
    assert "(being created)" in page.text and CONFIRM not in page.text


def test_revoke_without_the_csrf_token_changes_nothing(connected_app, client):
    sign_in_admin(client, **ADA)
    response = client.post("/embed/admin/revoke")
    assert response.status_code == 400 and _settings(connected_app).connected


def test_another_admin_connects_their_own_token_after_a_revoke(connected_app, client, app_factory):
    sign_in_admin(client, **ADA)
    _revoke(client)
    other = connected_app.test_client()
    page = sign_in_admin(other, sub="admin-2", name="Bo Second")
    response = other.post("/embed/admin/settings", data={
        "csrf_token": csrf(page), "script_token": "sandbox-second-admin-9876", "group_name": "BOSS"})
    assert response.status_code == 303
    page = other.get("/embed/admin/settings")
    assert "…9876" in page.text and "Bo Second" in page.text and REVOKE in page.text
    row = _settings(connected_app)
    assert row.connected_by_id == "admin-2" and row.revoked_at is None
    events = [(kind, actor) for kind, actor, _, _ in _events(connected_app)
              if kind in ("connected", "revoked")]
    assert events == [("revoked", "admin-1"), ("connected", "admin-2")]
    assert _events(connected_app, "connected")[0][3]["after_revoke_by"] == "Ada Admin"
    audit = other.get("/embed/admin/audit")
    assert "App access revoked" in audit.text and "TeamViewer connected" in audit.text
    assert "Ada Admin" in audit.text and "Bo Second" in audit.text
