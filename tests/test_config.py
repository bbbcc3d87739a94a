"""Configuration from TVWIDGET_* variables and the production start-up checks."""
import pytest
from cryptography.fernet import Fernet

from tvwidget import create_app
from tvwidget.config import ConfigError

GOOD = {
    "TVWIDGET_ENV": "production",
    "TVWIDGET_SECRET_KEY": "s" * 40,
    "TVWIDGET_EMBED_SECRET": "e" * 40,
    "TVWIDGET_HOST_API_KEY": "1234567890123456789012345678",  # all digits: must stay text
    "TVWIDGET_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "TVWIDGET_FRAME_ANCESTORS": "https://helpdesk.example https://*.helpdesk.example",
    "TVWIDGET_MAIL_DEFAULT_SENDER": "support@helpdesk.example",
}


@pytest.fixture
def env(monkeypatch, tmp_path):
    for key, value in GOOD.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TVWIDGET_SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path}/c.db")
    return monkeypatch


def test_production_settings_come_from_the_environment(env):
    app = create_app()
    assert app.config["HOST_API_KEY"] == GOOD["TVWIDGET_HOST_API_KEY"]
    assert app.config["TEAMVIEWER_API_URL"] == "https://webapi.teamviewer.com/api/v1"
    assert app.config["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize("key", ["TVWIDGET_SECRET_KEY", "TVWIDGET_EMBED_SECRET", "TVWIDGET_HOST_API_KEY",
                                 "TVWIDGET_ENCRYPTION_KEYS", "TVWIDGET_FRAME_ANCESTORS",
                                 "TVWIDGET_MAIL_DEFAULT_SENDER"])
def test_missing_secret_in_production_stops_start_up_naming_it(env, key):
    env.delenv(key)
    with pytest.raises(ConfigError, match=key):
        create_app()


@pytest.mark.parametrize("key, value", [
    ("TVWIDGET_ENCRYPTION_KEYS", "not-a-fernet-key"),
    ("TVWIDGET_EMBED_SECRET", "short"),
    ("TVWIDGET_FRAME_ANCESTORS", "javascript:alert(1)"),
    ("TVWIDGET_TEAMVIEWER_API_URL", "http://webapi.teamviewer.com/api/v1"),
    ("TVWIDGET_DEFAULT_LOCALE", "fr"),
    ("TVWIDGET_ENV", "staging"),
])
def test_malformed_setting_stops_start_up_naming_it(env, key, value):
    env.setenv(key, value)
    with pytest.raises(ConfigError, match=key):
        create_app()


def test_development_default_just_works(monkeypatch, tmp_path):
    for key in GOOD:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TVWIDGET_ENV", "development")
    monkeypatch.setenv("TVWIDGET_SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path}/d.db")
    app = create_app()
    assert app.config["EMBED_SECRET"] and app.config["ENCRYPTION_KEYS"]


def test_init_app_mounts_tvwidget_in_a_host_app(tmp_path):
    from flask import Flask

    from tvwidget import init_app

    host = Flask("host")

    @host.get("/")
    def home():
        return "host home"

    @host.get("/healthz")
    def host_health():
        return "host ok"

    @host.post("/tickets/<ticket_id>/comments")
    def comment(ticket_id):
        return f"commented on {ticket_id}"

    init_app(host, {"ENV": "development", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/h.db"})
    client = host.test_client()
    assert client.get("/").text == "host home"
    assert client.get("/healthz").text == "host ok"  # tvwidget's own is under /embed there
    assert "database" in client.get("/embed/healthz").json  # (no tables made here: "unavailable")
    # tvwidget's CSRF checks are its own views': the host's forms need no Flask-WTF token.
    assert client.post("/tickets/T-1/comments", data={"body": "hi"}).text == "commented on T-1"
    assert "Content-Security-Policy" not in client.get("/").headers  # tvwidget leaves the host's pages alone
    assert client.get("/embed/widget").status_code == 401
    with client.get("/static/tvwidget/tvwidget.css") as stylesheet:
        assert stylesheet.status_code == 200


def test_init_app_leaves_the_hosts_session_and_request_limits_alone(tmp_path):
    from flask import request

    from tvwidget import init_app
    from tvwidget.extensions import db

    from .conftest import EMBED_SECRET, HOST_API_KEY, helpdesk_app, make_token

    host = helpdesk_app(tmp_path, SECRET_KEY="the-host-s-own-secret-key-0123456789abcdef")

    @host.post("/attachments")
    def upload():
        return str(len(request.get_data()))

    app_wide = ("SESSION_COOKIE_NAME", "SESSION_COOKIE_SECURE", "SESSION_COOKIE_SAMESITE", "SESSION_COOKIE_PATH",
                "PERMANENT_SESSION_LIFETIME", "MAX_CONTENT_LENGTH", "MAX_FORM_MEMORY_SIZE", "SECRET_KEY")
    before = {key: host.config[key] for key in app_wide}
    init_app(host, {"ENV": "development", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/h.db",
                    "EMBED_SECRET": EMBED_SECRET, "HOST_API_KEY": HOST_API_KEY})
    assert {key: host.config[key] for key in app_wide} == before
    with host.app_context():
        db.create_all()

    client = host.test_client()
    client.post("/login")
    # An administrator opens tvwidget's admin area in the same browser: the helpdesk login stays.
    opened = client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None)})
    assert opened.status_code == 303
    assert client.get("/embed/admin/settings").status_code == 200
    assert client.get("/me").text == "u1"
    # The helpdesk's uploads keep the helpdesk's limit; tvwidget's own routes keep theirs.
    assert client.post("/attachments", data=b"x" * 200_000).text == "200000"
    assert client.post("/embed/widget", data={"token": "x" * 100_000}).status_code == 413
    assert client.put("/api/v1/tickets/T-1", data=b"{}" + b" " * 100_000,
                      headers={"Content-Type": "application/json",
                               "Authorization": f"Bearer {HOST_API_KEY}"}).status_code == 413
