"""Secrets at rest and in logs (checklist 23-25): rotation, unreadable tokens, no leaks."""
import json
import logging
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from werkzeug import Response

from tvwidget.extensions import db
from tvwidget.storage import secrets
from tvwidget.storage.models import AuditEvent, IntegrationSettings
from tvwidget.teamviewer import integration

from ..conftest import Widget, make_token, open_widget
from ..helpers import admin_client, csrf, sign_in_admin

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
CANARY = "sandbox-canary-Kx81-9fQz"


def _store(app, token=CANARY):
    with app.app_context():
        db.session.merge(IntegrationSettings(id=1, token_ciphertext=secrets.encrypt(token), token_last4=token[-4:],
                                             group_name="BOSS", account_name="Sandbox Supporter"))
        db.session.commit()


def _ciphertext(app) -> str:
    with app.app_context():
        return db.session.get(IntegrationSettings, 1).token_ciphertext


def _rotate(app):
    return app.test_cli_runner().invoke(args=["tvwidget", "rotate-keys"])


# -- rotation ----------------------------------------------------------------------------------------

def test_rotate_keys_reencrypts_with_the_newest_key_and_is_safe_to_rerun(app_factory):
    before_rotation = app_factory(ENCRYPTION_KEYS=OLD)
    _store(before_rotation)
    old_ciphertext = _ciphertext(before_rotation)

    both = app_factory(ENCRYPTION_KEYS=f"{NEW},{OLD}")
    with both.app_context():  # the new key list still reads the old row
        assert secrets.decrypt(old_ciphertext) == CANARY
    result = _rotate(both)
    assert result.exit_code == 0, result.output
    assert "1 secret(s) re-encrypted with the newest key, 0 already used it, 0 unreadable." in result.output
    rotated = _ciphertext(both)
    assert rotated != old_ciphertext
    assert Fernet(NEW).decrypt(rotated.encode()).decode() == CANARY
    assert Fernet(NEW).extract_timestamp(rotated.encode()) == Fernet(OLD).extract_timestamp(old_ciphertext.encode())

    again = _rotate(both)
    assert again.exit_code == 0 and "0 secret(s) re-encrypted with the newest key, 1 already used it" in again.output
    assert _ciphertext(both) == rotated
    with both.app_context():
        assert db.session.scalars(sa.select(AuditEvent.kind)).all().count("keys_rotated") == 1

    # The old key can go: everything still opens, and the widget still reaches TeamViewer with the token.
    after = app_factory(ENCRYPTION_KEYS=NEW)
    client = after.test_client()
    page = sign_in_admin(client)
    assert "Connected" in page.text and "cannot be read" not in page.text
    assert client.get("/healthz").json["teamviewer"] == "connected"
    widget = Widget(client, client.get("/embed/widget", query_string={"token": make_token()}).text)
    widget.play()
    assert widget.state() == "open"
    widget.stop()
    assert CANARY not in result.output + again.output


def test_rotate_keys_with_nothing_stored_says_so(app):
    result = _rotate(app)
    assert result.exit_code == 0 and "No stored secrets" in result.output


def test_rotate_keys_reports_a_token_no_key_opens_without_crashing(app_factory):
    _store(app_factory(ENCRYPTION_KEYS=OLD))
    app = app_factory(ENCRYPTION_KEYS=NEW)  # the old key was dropped before rotating
    before = _ciphertext(app)
    result = _rotate(app)
    assert result.exit_code == 1
    assert "cannot be decrypted with any key" in result.output and "enter the script token again" in result.output
    assert "Traceback" not in result.output and "0 secret(s) re-encrypted" in result.output
    assert _ciphertext(app) == before


@pytest.mark.parametrize("damage", ["key dropped", "tampered"])
def test_an_unreadable_token_asks_admins_to_reenter_it_instead_of_failing(app_factory, damage):
    if damage == "key dropped":
        _store(app_factory(ENCRYPTION_KEYS=OLD))
        app = app_factory(ENCRYPTION_KEYS=NEW)
    else:
        app = app_factory()
        _store(app)
        with app.app_context():
            row = db.session.get(IntegrationSettings, 1)
            middle = len(row.token_ciphertext) // 2
            flipped = "A" if row.token_ciphertext[middle] != "A" else "B"
            row.token_ciphertext = row.token_ciphertext[:middle] + flipped + row.token_ciphertext[middle + 1:]
            db.session.commit()
    client = app.test_client()
    page = sign_in_admin(client)
    assert page.status_code == 200
    assert "Re-enter the script token" in page.text and 'role="alert"' in page.text
    assert client.get("/healthz").json["teamviewer"] == "token_unreadable"
    saved = client.post("/embed/admin/settings", data={"csrf_token": csrf(page), "script_token": CANARY,
                                                       "group_name": "BOSS"})
    assert saved.status_code == 303
    assert "Re-enter the script token" not in client.get("/embed/admin/settings").text
    assert client.get("/healthz").json["teamviewer"] == "connected"


def test_an_unreadable_token_can_be_revoked(app_factory):
    _store(app_factory(ENCRYPTION_KEYS=OLD))
    app = app_factory(ENCRYPTION_KEYS=NEW)
    client = app.test_client()
    page = sign_in_admin(client)
    confirm = client.get("/embed/admin/revoke")
    response = client.post("/embed/admin/revoke", data={"csrf_token": csrf(confirm)})
    assert page.status_code == 200 and response.status_code == 303
    assert _ciphertext(app) is None


# -- keeping the token out of logs, pages and the database file ----------------------------------

@pytest.mark.parametrize("text", [
    f"Authorization: Bearer {CANARY}",
    f"{{'Authorization': 'Bearer {CANARY}', 'Accept': 'application/json'}}",
    f'headers={{"authorization": "{CANARY}"}}',
    f"Invalid header value b'Bearer {CANARY}'",
    f"POST /embed/admin/settings script_token={CANARY}&group_name=BOSS",
    f"GET /embed/admin?token={CANARY} HTTP/1.1",
    f'{{"script_token": "{CANARY}"}}',
])
def test_redact_removes_tokens_and_authorization_headers(text):
    cleaned = secrets.redact(text)
    assert CANARY not in cleaned and secrets.REDACTED in cleaned


def test_redact_leaves_ordinary_text_alone():
    text = "TeamViewer GET /ping failed: auth (HTTP 401, error token_expired) for ticket T-1 case s12-345-678"
    assert secrets.redact(text) == text


def test_log_records_are_scrubbed_whoever_logs_them(app, caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").debug("sent %s", {"Authorization": f"Bearer {CANARY}"})
    logging.getLogger("somewhere.else").warning(f"token={CANARY}")
    try:
        raise ValueError(f"Invalid leading whitespace in header value 'Bearer {CANARY}'")
    except ValueError:
        logging.getLogger("tvwidget.web.admin").exception("connect failed")
    assert caplog.records and CANARY not in caplog.text
    assert all(CANARY not in record.getMessage() for record in caplog.records)


def _leaks(app, caplog, responses) -> list[str]:
    found = [f"response {label}" for label, response in responses if CANARY in response.get_data(as_text=True)]
    if CANARY in caplog.text:
        found.append("log")
    with app.app_context():
        details = " ".join(db.session.scalars(sa.select(AuditEvent.detail)).all())
        row = db.session.get(IntegrationSettings, 1)
        if CANARY in details or (row and CANARY in (row.token_ciphertext or "")):
            found.append("database rows")
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        for file in (path, Path(f"{path}-wal")):
            if file.exists() and CANARY.encode() in file.read_bytes():
                found.append(f"file {file.name}")
    return found


def test_a_canary_token_never_leaks_through_the_whole_admin_and_widget_flow(app, caplog, smtp):
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    responses = []

    def get(path, **kwargs):
        response = client.get(path, **kwargs)
        responses.append((path, response))
        return response

    page = sign_in_admin(client)
    responses.append(("settings", page))
    responses.append(("connect", client.post("/embed/admin/settings", data={
        "csrf_token": csrf(page), "script_token": CANARY, "group_name": "BOSS"}, follow_redirects=True)))
    widget = Widget(client, get("/embed/widget", query_string={"token": make_token()}).text)
    responses.append(("play", widget.play()))
    smtp.wait_for(1)
    responses.append(("stop", widget.stop()))
    page = get("/embed/admin/settings")
    responses.append(("bad connect", client.post("/embed/admin/settings", data={
        "csrf_token": csrf(page), "script_token": "sandbox-noperm-" + CANARY, "group_name": "BOSS"})))
    for path in ("/embed/admin/audit", "/embed/admin/audit.csv", "/embed/admin/branding", "/healthz",
                 "/embed/admin/revoke"):
        get(path)
    responses.append(("revoke", client.post("/embed/admin/revoke", data={"csrf_token": csrf(page)},
                                            follow_redirects=True)))
    assert responses[-1][1].status_code == 200 and "App access revoked" in responses[-1][1].text
    assert b"".join(m.content for m in smtp.messages).find(CANARY.encode()) == -1
    assert _leaks(app, caplog, responses) == []


def test_a_canary_token_never_leaks_when_teamviewer_fails_or_tvwidget_crashes(app_factory, teamviewer_server, caplog,
                                                                              monkeypatch):
    caplog.set_level(logging.DEBUG)
    # A broken proxy in front of TeamViewer answers 500 and echoes the request's Authorization header.
    teamviewer_server.expect_request("/api/v1/ping").respond_with_handler(
        lambda request: Response(
            json.dumps({"error": "internal_error", "error_description": request.headers["Authorization"]}),
            status=500, content_type="application/json"))
    app = app_factory(TEAMVIEWER_API_URL=teamviewer_server.url_for("/api/v1"), TEAMVIEWER_RETRIES=0,
                      PROPAGATE_EXCEPTIONS=False)
    client = app.test_client()
    page = sign_in_admin(client)
    failed = client.post("/embed/admin/settings", data={"csrf_token": csrf(page), "script_token": CANARY,
                                                        "group_name": "BOSS"})
    assert failed.status_code == 422 and "cannot be reached" in failed.text
    assert teamviewer_server.log and teamviewer_server.log[0][0].headers["Authorization"] == f"Bearer {CANARY}"

    # A bug deep inside (here: an error whose message quotes the header) gives a clear page, not a traceback.
    def explode(token):
        raise RuntimeError(f"could not send header Authorization: Bearer {token}")

    monkeypatch.setattr(integration, "verify", explode)
    crashed = client.post("/embed/admin/settings", data={"csrf_token": csrf(page), "script_token": CANARY,
                                                         "group_name": "BOSS"})
    assert crashed.status_code == 500 and 'role="alert"' in crashed.text and "nothing was saved" in crashed.text
    assert "Traceback" not in crashed.text and "RuntimeError" not in crashed.text
    assert "Exception on /embed/admin/settings" in caplog.text and "RuntimeError" in caplog.text
    assert _leaks(app, caplog, [("failed", failed), ("crashed", crashed)]) == []
    with app.app_context():
        assert db.session.get(IntegrationSettings, 1) is None


# ==========================================================================================================
# 23. No plaintext token at rest, in the SQLite files or a pg_dump
# ==========================================================================================================

def _database_bytes(app) -> bytes:
    url = sa.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite":
        path = Path(url.database)
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())
    dump = subprocess.run(["pg_dump", "--no-owner", url.set(drivername="postgresql").render_as_string(
        hide_password=False)], capture_output=True, check=True, timeout=60)
    return dump.stdout


def test_23_the_raw_database_never_holds_the_token(app_factory, teamviewer):
    app = app_factory(TEAMVIEWER_API_URL=teamviewer.url, TEAMVIEWER_RETRIES=0)
    canary = "sandbox-canary-at-rest-Qx93vT"
    teamviewer.token = canary  # TeamViewer hears the token the admin saves
    admin = admin_client(app)
    page = admin.get("/embed/admin/settings")
    assert admin.post("/embed/admin/settings", data={"csrf_token": csrf(page), "script_token": canary,
                                                     "group_name": "BOSS"}).status_code == 303
    open_widget(app).play()  # the token is used (decrypted) too
    with app.app_context():
        ciphertext = db.session.get(IntegrationSettings, 1).token_ciphertext
        db.session.remove()
    raw = _database_bytes(app)
    assert ciphertext.encode() in raw  # the dump or file really holds the row...
    assert canary.encode() not in raw and canary.encode("utf-16-le") not in raw  # ...but never the token
