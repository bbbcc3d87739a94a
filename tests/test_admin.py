"""The admin area: admin-only access, connect with live verification, secrets never shown (F1, F12)."""
import logging
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from tvwidget.extensions import db
from tvwidget.models import AuditEvent, IntegrationSettings

from .conftest import make_token

CANARY = "sandbox-canary-token-Zq7w"


def _admin(client, **claims):
    response = client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None, **claims)})
    assert response.status_code == 303, response.text
    return client.get(response.headers["Location"])


def _save(client, page, **fields):
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    return client.post("/embed/admin/settings", data={"csrf_token": token, "script_token": "",
                                                      "group_name": "BOSS"} | fields)


def test_agents_cannot_open_the_admin_area(client):
    response = client.get("/embed/admin", query_string={"token": make_token(role="agent", ticket=None)})
    assert response.status_code == 403 and 'role="alert"' in response.text


def test_admin_pages_need_the_admin_session(client):
    response = client.get("/embed/admin/settings")
    assert response.status_code == 401 and "Open the tvwidget admin area again" in response.text


def test_admin_area_is_not_frameable_and_not_cached(client):
    page = _admin(client)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert 'name="script_token"' in page.text and 'name="group_name"' in page.text


def test_connecting_verifies_the_token_and_shows_only_its_last_four(app, client, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    saved = _save(client, _admin(client), script_token=CANARY, group_name="Helpdesk")
    assert saved.status_code == 303
    page = client.get(saved.headers["Location"])
    assert "Connected" in page.text and "Sandbox Supporter" in page.text and "…Zq7w" in page.text
    assert CANARY not in page.text and CANARY not in caplog.text
    with app.app_context():
        row = db.session.get(IntegrationSettings, 1)
        assert row.group_name == "Helpdesk" and CANARY not in row.token_ciphertext
        kinds = db.session.scalars(sa.select(AuditEvent.kind)).all()
        assert "connected" in kinds and "group_changed" in kinds
        assert CANARY not in " ".join(db.session.scalars(sa.select(AuditEvent.detail)).all())
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
        files = [Path(path), Path(path + "-wal")]
        assert all(CANARY.encode() not in f.read_bytes() for f in files if f.exists())


@pytest.mark.parametrize("token, message", [
    ("not-a-sandbox-token", "not valid"),
    ("sandbox-expired-token", "not valid"),
])
def test_a_bad_token_is_refused_and_nothing_is_saved(app, client, token, message):
    response = _save(client, _admin(client), script_token=token)
    assert response.status_code == 422
    assert 'role="alert"' in response.text and message in response.text
    with app.app_context():
        assert db.session.get(IntegrationSettings, 1) is None
        assert "connect_failed" in db.session.scalars(sa.select(AuditEvent.kind)).all()


def test_unreachable_teamviewer_is_refused_clearly(app_factory):
    from .conftest import free_port

    app = app_factory(TEAMVIEWER_API_URL=f"http://127.0.0.1:{free_port()}/api/v1")
    client = app.test_client()
    response = _save(client, _admin(client), script_token=CANARY)
    assert response.status_code == 422 and "cannot be reached" in response.text
    with app.app_context():
        assert db.session.get(IntegrationSettings, 1) is None


def test_an_empty_token_field_keeps_the_stored_token(app, client):
    page = _admin(client)
    _save(client, page, script_token=CANARY)
    with app.app_context():
        before = db.session.get(IntegrationSettings, 1).token_ciphertext
    response = _save(client, client.get("/embed/admin/settings"), group_name="Support")
    assert response.status_code == 303
    with app.app_context():
        row = db.session.get(IntegrationSettings, 1)
        assert row.token_ciphertext == before and row.group_name == "Support"


def test_first_save_without_a_token_asks_for_one(client):
    response = _save(client, _admin(client))
    assert response.status_code == 422 and "Paste the script token" in response.text


@pytest.mark.parametrize("group", ["", "x" * 101, "bad\nname"])
def test_malformed_group_name_is_refused(client, group):
    response = _save(client, _admin(client), script_token=CANARY, group_name=group)
    assert response.status_code == 422 and 'role="alert"' in response.text


def test_post_without_csrf_token_changes_nothing(app, client):
    _admin(client)
    response = client.post("/embed/admin/settings", data={"script_token": CANARY, "group_name": "X"})
    assert response.status_code == 400 and "form expired" in response.text and 'role="alert"' in response.text
    with app.app_context():
        assert db.session.get(IntegrationSettings, 1) is None


def test_the_password_field_never_renders_the_stored_token(app, client):
    _save(client, _admin(client), script_token=CANARY)
    page = client.get("/embed/admin/settings")
    assert re.search(r'<input[^>]*name="script_token"[^>]*value=""', page.text)
