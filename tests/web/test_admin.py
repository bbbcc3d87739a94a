"""The admin area: admin-only access, connect with live verification, secrets never shown."""
import datetime as dt
import html
import json
import logging
import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from werkzeug import Response

from tvwidget.extensions import db
from tvwidget.storage.models import AuditEvent, IntegrationSettings

from ..conftest import free_port, make_token
from ..helpers import csrf, json_response, sign_in_admin

CANARY = "sandbox-canary-token-Zq7w"
ACCOUNT = {"userid": "u1", "name": "Help Desk", "email": "help@example.com", "company_name": "Example Corp"}


def _save(client, page, **fields):
    return client.post("/embed/admin/settings", data={"csrf_token": csrf(page), "script_token": "",
                                                      "group_name": "BOSS"} | fields)


def _audit(app, kind):
    with app.app_context():
        return [json.loads(e.detail) | {"actor": e.actor_id}
                for e in db.session.scalars(sa.select(AuditEvent).where(AuditEvent.kind == kind))]


def _nothing_saved(app):
    with app.app_context():
        return db.session.get(IntegrationSettings, 1) is None


# -- admin-only access -----------------------------------------------------------------------------

def test_agents_cannot_open_the_admin_area(client):
    response = client.get("/embed/admin", query_string={"token": make_token(role="agent", ticket=None)})
    assert response.status_code == 403 and 'role="alert"' in response.text
    assert "Only helpdesk administrators" in response.text
    assert "Set-Cookie" not in response.headers


def test_admin_pages_need_the_admin_session(client):
    response = client.get("/embed/admin/settings")
    assert response.status_code == 401 and "Open the tvwidget admin area again" in response.text


def _admin_routes(app):
    """Yield (endpoint, method, path) for every admin route, whoever added it."""
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("tvwidget_admin."):
            continue
        path = re.sub(r"<(?:([^:>]+):)?([^>]+)>", lambda m: "1" if m.group(1) == "int" else "x", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, path


def test_every_admin_route_refuses_anonymous_requests_and_agent_sessions(app):
    routes = list(_admin_routes(app))
    assert {"tvwidget_admin.launch", "tvwidget_admin.settings", "tvwidget_admin.revoke", "tvwidget_admin.audit",
            "tvwidget_admin.audit_csv", "tvwidget_admin.branding"} <= {endpoint for endpoint, _, _ in routes}
    anonymous = app.test_client()
    agent = app.test_client()
    with agent.session_transaction() as session:  # as if an agent had a session (the launch never gives one)
        session["tvwidget_admin"] = {"agent": {"id": "agent-1", "name": "Alex", "email": "a@x", "role": "agent"},
                                     "seen": int(time.time())}
    for endpoint, method, path in routes:
        if endpoint == "tvwidget_admin.launch":
            refused = anonymous.open(path, method=method)
            assert refused.status_code == 401, (endpoint, method)
            launched = anonymous.open(path, method=method, query_string={"token": make_token(ticket=None)},
                                      data={"token": make_token(ticket=None)})
            assert launched.status_code == 403 and "Set-Cookie" not in launched.headers, (endpoint, method)
            continue
        response = anonymous.open(path, method=method)
        assert response.status_code == 401, (endpoint, method, response.status_code)
        assert 'role="alert"' in response.text and "Set-Cookie" not in response.headers, (endpoint, method)
        response = agent.open(path, method=method)
        assert response.status_code == 403, (endpoint, method, response.status_code)
        assert "Only helpdesk administrators" in response.text, (endpoint, method)


def test_every_admin_page_is_not_frameable_and_not_cached(app, client):
    sign_in_admin(client)
    for endpoint, method, path in _admin_routes(app):
        if method != "GET" or endpoint == "tvwidget_admin.launch":
            continue
        response = client.get(path)
        assert response.status_code not in (401, 403), endpoint
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], endpoint
        assert response.headers["Cache-Control"] == "no-store", endpoint


def test_the_admin_form_has_the_contract_hooks(client):
    page = sign_in_admin(client)
    assert 'name="script_token"' in page.text and 'name="group_name"' in page.text


def test_an_admin_launch_may_be_posted_by_the_host(client):
    response = client.post("/embed/admin", data={"token": make_token(role="admin", ticket=None)})
    assert response.status_code == 303


def test_the_admin_session_cookie_is_http_only_lax_and_secure(client):
    response = client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None)})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_an_idle_admin_session_expires_but_use_keeps_it_alive(app):
    client = app.test_client()
    with freeze_time("2030-01-01 09:00:00") as clock:
        sign_in_admin(client)
        for _ in range(3):  # 50 minutes apart: each request renews the hour
            clock.tick(dt.timedelta(minutes=50))
            assert client.get("/embed/admin/settings").status_code == 200
        name = app.config["SESSION_COOKIE_NAME"]
        cookie = client.get_cookie(name).value
        clock.tick(dt.timedelta(minutes=61))
        response = client.get("/embed/admin/settings")
        assert response.status_code == 401 and "session has ended" in response.text
        # The server itself refuses the stale cookie, whatever a browser does with its expiry.
        replay = app.test_client()
        replay.set_cookie(name, cookie)
        assert replay.get("/embed/admin/settings").status_code == 401


def test_a_post_from_another_site_is_refused(app, client):
    page = sign_in_admin(client)
    response = client.post("/embed/admin/settings", data={"csrf_token": csrf(page), "script_token": CANARY,
                                                           "group_name": "X"},
                           headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and _nothing_saved(app)


def test_admin_changes_work_over_https_where_pages_send_no_referer(app, client):
    """Admin pages send Referrer-Policy: no-referrer, so the browser's POST carries no Referer over HTTPS."""
    https = {"base_url": "https://tvwidget.example"}
    client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None)}, **https)
    page = client.get("/embed/admin/settings", **https)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    form = {"csrf_token": csrf(page), "script_token": CANARY, "group_name": "BOSS"}
    browser = {"Sec-Fetch-Site": "same-origin", "Origin": "null"}  # what Chromium sends under no-referrer
    assert client.post("/embed/admin/settings", data=form, headers=browser, **https).status_code == 303
    assert client.post("/embed/admin/settings", data=form | {"csrf_token": ""}, headers=browser,
                       **https).status_code == 400
    old_browser = {"Origin": "https://evil.example"}  # no Fetch Metadata: the Origin decides
    assert client.post("/embed/admin/settings", data=form, headers=old_browser, **https).status_code == 403


def test_post_without_csrf_token_changes_nothing(app, client):
    sign_in_admin(client)
    response = client.post("/embed/admin/settings", data={"script_token": CANARY, "group_name": "X"})
    assert response.status_code == 400 and "form expired" in response.text and 'role="alert"' in response.text
    assert _nothing_saved(app)


# -- connect ----------------------------------------------------------------------------------

def test_connecting_verifies_the_token_and_shows_only_its_last_four(app, client, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    saved = _save(client, sign_in_admin(client), script_token=CANARY, group_name="Helpdesk")
    assert saved.status_code == 303
    page = client.get(saved.headers["Location"])
    assert "Connected" in page.text and "Sandbox Supporter" in page.text and "…Zq7w" in page.text
    assert "TeamViewer Sandbox" in page.text and "Alex Morgan" in page.text  # company, who connected
    assert 'data-tvwidget-action="revoke"' in page.text
    assert CANARY not in page.text and CANARY not in caplog.text
    with app.app_context():
        row = db.session.get(IntegrationSettings, 1)
        assert row.group_name == "Helpdesk" and CANARY not in row.token_ciphertext
        assert row.connected_by_id == "agent-1" and row.connected_at is not None
        kinds = db.session.scalars(sa.select(AuditEvent.kind)).all()
        assert "connected" in kinds and "group_changed" in kinds
        assert CANARY not in " ".join(db.session.scalars(sa.select(AuditEvent.detail)).all())
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
        files = [Path(path), Path(path + "-wal")]
        assert all(CANARY.encode() not in f.read_bytes() for f in files if f.exists())


@pytest.mark.parametrize("token, reason, message", [
    ("not-a-sandbox-token", "invalid_token", "says this script token is not valid"),
    ("sandbox-expired-token", "expired_token", "has expired at TeamViewer"),
    ("sandbox-noperm-token", "missing_session_permission", "may not manage service cases"),
])
def test_a_bad_token_is_refused_with_its_own_message_and_nothing_is_saved(app, client, token, reason, message):
    response = _save(client, sign_in_admin(client), script_token=token)
    assert response.status_code == 422
    assert 'role="alert"' in response.text and message in response.text and "Nothing was saved." in response.text
    assert token not in response.text
    assert _nothing_saved(app)
    assert _audit(app, "connect_failed")[0]["reason"] == reason


def test_unreachable_teamviewer_is_refused_clearly(app_factory):
    app = app_factory(TEAMVIEWER_API_URL=f"http://127.0.0.1:{free_port()}/api/v1")
    client = app.test_client()
    response = _save(client, sign_in_admin(client), script_token=CANARY)
    assert response.status_code == 422 and "cannot be reached from this server" in response.text
    assert _nothing_saved(app) and _audit(app, "connect_failed")[0]["reason"] == "unreachable"


def _slow(request):
    time.sleep(0.8)
    return json_response(200, {"token_valid": True})


# What TeamViewer answers on (ping, account, sessions) -> the reason and the admin's message.
VERIFY_FAULTS = {
    "licence on account": ({"token_valid": True}, (403, {"error": "license_required"}), None,
                           "license_required", "does not include the Web API"),
    "licence on sessions": ({"token_valid": True}, ACCOUNT, (403, {"error": "license_required"}),
                            "license_required", "does not include the Web API"),
    "no account permission": ({"token_valid": True}, (403, {"error": "invalid_permission"}), None,
                              "missing_account_permission", "may not read the TeamViewer account"),
    "no session permission": ({"token_valid": True}, ACCOUNT, (403, {"error": "invalid_permission"}),
                              "missing_session_permission", "may not manage service cases"),
    "slow": (_slow, None, None, "timeout", "did not answer in time"),
    "rate limited": ({"token_valid": True}, (403, {"error": "rate_limit_reached"}), None,
                     "rate_limited", "request limit"),
    "server error": ((500, {"error": "internal_error"}), None, None, "unreachable", "cannot be reached"),
    "not the API": (lambda r: Response("<html>proxy login</html>", 200, content_type="text/html"), None, None,
                    "bad_reply", "could not understand"),
    "expired after ping": ({"token_valid": False}, (401, {"error": "token_expired"}), None,
                           "expired_token", "has expired"),
}


def _answer(server, path, answer):
    if answer is None:
        return
    expectation = server.expect_request(f"/api/v1{path}")
    if callable(answer):
        expectation.respond_with_handler(answer)
    elif isinstance(answer, tuple):
        expectation.respond_with_json(answer[1], status=answer[0])
    else:
        expectation.respond_with_json(answer)


@pytest.mark.parametrize("fault", VERIFY_FAULTS)
def test_each_verification_failure_has_its_own_message(app_factory, teamviewer_server, caplog, fault):
    caplog.set_level(logging.DEBUG)
    ping, account, sessions, reason, message = VERIFY_FAULTS[fault]
    for path, answer in (("/ping", ping), ("/account", account), ("/sessions", sessions)):
        _answer(teamviewer_server, path, answer)
    app = app_factory(TEAMVIEWER_API_URL=teamviewer_server.url_for("/api/v1"), TEAMVIEWER_READ_TIMEOUT=0.5,
                      TEAMVIEWER_RETRIES=0)
    client = app.test_client()
    response = _save(client, sign_in_admin(client), script_token=CANARY)
    assert response.status_code == 422, response.text
    assert message in response.text and 'role="alert"' in response.text
    assert "Traceback" not in response.text
    assert _nothing_saved(app)
    event = _audit(app, "connect_failed")[0]
    assert event["reason"] == reason and event["actor"] == "agent-1"
    assert CANARY not in response.text and CANARY not in caplog.text
    assert all(CANARY not in json.dumps(e) for e in _audit(app, "connect_failed"))


def test_verification_reads_ping_account_and_sessions_with_the_token(app_factory, teamviewer_server):
    for path, answer in (("/ping", {"token_valid": True}), ("/account", ACCOUNT), ("/sessions", {"sessions": []})):
        _answer(teamviewer_server, path, answer)
    app = app_factory(TEAMVIEWER_API_URL=teamviewer_server.url_for("/api/v1"))
    client = app.test_client()
    assert _save(client, sign_in_admin(client), script_token=CANARY).status_code == 303
    assert [request.path for request, _ in teamviewer_server.log] == [
        "/api/v1/ping", "/api/v1/account", "/api/v1/sessions"]
    assert all(request.headers["Authorization"] == f"Bearer {CANARY}" for request, _ in teamviewer_server.log)
    page = client.get("/embed/admin/settings")
    assert "Help Desk" in page.text and "help@example.com" in page.text and "Example Corp" in page.text


def test_an_empty_token_field_keeps_the_stored_token(app, client):
    page = sign_in_admin(client)
    _save(client, page, script_token=CANARY)
    with app.app_context():
        before = db.session.get(IntegrationSettings, 1).token_ciphertext
    response = _save(client, client.get("/embed/admin/settings"), group_name="Support")
    assert response.status_code == 303
    with app.app_context():
        row = db.session.get(IntegrationSettings, 1)
        assert row.token_ciphertext == before and row.group_name == "Support"
    event = _audit(app, "group_changed")[-1]
    assert (event["old"], event["new"]) == ("BOSS", "Support")


def test_first_save_without_a_token_asks_for_one(client):
    response = _save(client, sign_in_admin(client))
    assert response.status_code == 422 and "Paste the script token" in response.text


@pytest.mark.parametrize("group", ["", "   ", "x" * 101, "bad\nname", "tab\there"])
def test_malformed_group_name_is_refused(app, client, group):
    response = _save(client, sign_in_admin(client), script_token=CANARY, group_name=group)
    assert response.status_code == 422 and 'role="alert"' in response.text
    assert _nothing_saved(app)


@pytest.mark.parametrize("token, message", [
    ("short", "between 8 and 200 characters"),
    ("has a space in it", "no spaces or other symbols"),
])
def test_a_malformed_token_is_refused_before_asking_teamviewer(app, client, token, message):
    response = _save(client, sign_in_admin(client), script_token=token)
    assert response.status_code == 422 and message in response.text and 'role="alert"' in response.text
    assert _nothing_saved(app) and _audit(app, "connect_failed") == []


def test_a_group_name_is_shown_as_text(app, client):
    _save(client, sign_in_admin(client), script_token=CANARY, group_name='<b onmouseover="x">Help</b>')
    for path in ("/embed/admin/settings", "/embed/admin/branding"):
        page = client.get(path)
        assert "<b onmouseover" not in page.text and "&lt;b onmouseover" in page.text


def test_the_password_field_never_renders_the_stored_token(app, client):
    _save(client, sign_in_admin(client), script_token=CANARY)
    page = client.get("/embed/admin/settings")
    assert re.search(r'<input[^>]*name="script_token"[^>]*value=""', page.text)


def test_the_connect_guide_and_the_branding_guide_are_shown(client):
    page = sign_in_admin(client)
    assert "How to connect TeamViewer" in page.text and "Create script token" in page.text
    guide = client.get("/embed/admin/branding")
    assert guide.status_code == 200
    text = html.unescape(guide.text)
    for step in ("Customize & deploy", "QuickSupport", "Default participant", "Custom QuickSupport",
                 "Notify on service case changes", "Enable all service case emails", "BOSS"):
        assert step in text, step
    assert "<svg" in guide.text and "<script" not in guide.text and "style=" not in guide.text
