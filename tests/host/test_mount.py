"""tvwidget mounted with init_app leaves the host app's settings, sessions, Jinja environment and hooks alone."""
import copy
import email
import email.policy
import re

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from tvwidget import init_app
from tvwidget.config import ConfigError
from tvwidget.extensions import db
from tvwidget.storage.models import IntegrationSettings

from ..conftest import EMBED_SECRET, HOST_API_KEY, Widget, connect, helpdesk_app, make_token
from ..helpers import csrf

TVWIDGET_SECRET = "tvwidget-own-secret-key-0123456789abcdef-0123"
TVWIDGET_COMPANY = "Remote Desk Partners"
HOST_SECRET = "the-helpdesk-s-own-secret-key-0123456789abcdef"
HOST_COMPANY = "Helpdesk Host Inc."
# Everything that would have leaked, or been replaced, under the plain keys tvwidget uses.
HOST_CONFIG = {
    "SECRET_KEY": HOST_SECRET, "ENV": "staging", "COMPANY_NAME": HOST_COMPANY, "DEFAULT_LOCALE": "fr",
    "MAIL_SERVER": "mail.helpdesk.invalid", "MAIL_PORT": 2525, "MAIL_DEFAULT_SENDER": "noreply@helpdesk.invalid",
    "EMBED_SECRET": "the-helpdesk-s-unrelated-embed-secret-0123456789",
}
HOOK_REGISTRIES = ("before_request_funcs", "after_request_funcs", "teardown_request_funcs",
                   "url_value_preprocessors", "url_default_functions", "template_context_processors")


@pytest.fixture
def tvwidget_env(monkeypatch, sandbox_url, smtp):
    """tvwidget's settings in the environment, as the README tells a helpdesk to give them."""
    values = {
        "TVWIDGET_ENV": "development", "TVWIDGET_SECRET_KEY": TVWIDGET_SECRET,
        "TVWIDGET_COMPANY_NAME": TVWIDGET_COMPANY, "TVWIDGET_EMBED_SECRET": EMBED_SECRET,
        "TVWIDGET_TEAMVIEWER_API_URL": sandbox_url, "TVWIDGET_MAIL_SERVER": "127.0.0.1",
        "TVWIDGET_MAIL_PORT": str(smtp.port), "TVWIDGET_MAIL_DEFAULT_SENDER": "support@remotedesk.example",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def snapshot(host: Flask) -> dict:
    env = host.jinja_env
    return {
        "config": copy.deepcopy(dict(host.config)), "secret_key": host.secret_key,
        "globals": dict(env.globals), "filters": dict(env.filters), "tests": dict(env.tests),
        "jinja_extensions": set(env.extensions), "loader": env.loader,
        "app_hooks": {name: list(getattr(host, name).get(None, [])) for name in HOOK_REGISTRIES},
        "teardown_appcontext": list(host.teardown_appcontext_funcs),
    }


def host_session_cookie(host: Flask, secret: str, user: str) -> str:
    """Return a session cookie for ``user`` signed the way ``host`` signs them, with ``secret``."""
    signer = Flask("signer")
    signer.config.update(host.config)
    signer.secret_key = secret
    return signer.session_interface.get_signing_serializer(signer).dumps({"user": user})


def invitation_text(envelope) -> str:
    return email.message_from_bytes(envelope.content, policy=email.policy.default).get_body(("plain",)).get_content()


def play_and_stop(client, smtp, language: str, ready: str, open_: str) -> None:
    """Launch the widget with a signed token, play and stop (a real case at the sandbox over HTTP)."""
    before = len(smtp.messages)
    launched = client.get("/embed/widget", query_string={"token": make_token(locale=language)})
    assert launched.status_code == 200, launched.text
    widget = Widget(client, launched.text)
    assert f'lang="{language}"' in widget.html and ready in widget.html
    assert widget.play().status_code == 200
    assert widget.state() == "open" and open_ in widget.html
    assert re.match(r"^s\d", widget.field("session-code"))
    assert widget.stop().status_code == 200
    assert widget.state() == "idle"
    # The invitation went through tvwidget's mail settings, with tvwidget's company name.
    text = invitation_text(smtp.wait_for(before + 1)[before])
    assert TVWIDGET_COMPANY in text and HOST_COMPANY not in text


def use_admin_area(client, language: str, title: str, saved: str, group: str) -> None:
    """Open the admin area with an admin token, refuse a forged change, save a real one."""
    opened = client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None, locale=language)})
    assert opened.status_code == 303
    set_cookies = opened.headers.getlist("Set-Cookie")
    assert [cookie.split("=", 1)[0] for cookie in set_cookies] == ["__Host-tvwidget_admin"]
    assert all("Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie for cookie in set_cookies)
    page = client.get("/embed/admin/settings")
    assert page.status_code == 200 and title in page.text
    assert client.post("/embed/admin/settings", data={"group_name": group}).status_code == 400  # no CSRF token
    token = csrf(page)
    saved_response = client.post("/embed/admin/settings", data={"csrf_token": token, "group_name": group})
    assert saved_response.status_code == 303, saved_response.text
    assert saved in client.get(saved_response.headers["Location"]).text
    # htmx sends the same token in a header.
    reset = "/embed/admin/email-template/reset"
    assert client.post(reset, query_string={"lang": language}, headers={"X-CSRFToken": "forged"}).status_code == 400
    assert client.post(reset, query_string={"lang": language}, headers={"X-CSRFToken": token}).status_code == 303


def works_inside(host: Flask, client, smtp) -> None:
    """tvwidget in ``host``, in English and Japanese: play and stop in the widget, then the admin area."""
    with host.app_context():
        db.create_all()
    connect(host)
    play_and_stop(client, smtp, "en", "Ready", "Session open")
    play_and_stop(client, smtp, "ja", "準備完了", "セッション中")
    use_admin_area(client, "en", "TeamViewer connection", "Saved.", "Tier 2")
    use_admin_area(client, "ja", "TeamViewerの接続", "保存しました。", "二次サポート")
    with host.app_context():
        assert db.session.get(IntegrationSettings, 1).group_name == "二次サポート"


def test_init_app_leaves_the_hosts_config_session_jinja_and_hooks_alone_and_works_inside_it(
        tmp_path, tvwidget_env, database_url, smtp):
    host_database = tmp_path / "helpdesk.db"
    host = helpdesk_app(tmp_path, **HOST_CONFIG, SQLALCHEMY_DATABASE_URI=f"sqlite:///{host_database}",
                    # The host's config may hold tvwidget's settings under the TVWIDGET_ prefix.
                    TVWIDGET_HOST_API_KEY=HOST_API_KEY)
    before = snapshot(host)
    signed_before = host_session_cookie(host, HOST_SECRET, "u1")

    init_app(host, {"SQLALCHEMY_DATABASE_URI": database_url, "FRAME_ANCESTORS": "https://helpdesk.example"})

    # Every host value survives, and not one key was added (no unprefixed tvwidget key, nor an extension's).
    assert dict(host.config) == before["config"]
    assert (host.config["SECRET_KEY"], host.config["ENV"], host.config["COMPANY_NAME"]) == (
        HOST_SECRET, "staging", HOST_COMPANY)
    assert host.secret_key == HOST_SECRET
    after = snapshot(host)
    # The host's Jinja environment: no gettext, filters, globals or template folders of tvwidget's.
    for part in ("globals", "filters", "tests", "jinja_extensions", "loader"):
        assert after[part] == before[part], part
    # No app-wide request hook; the one app-context teardown is Flask-SQLAlchemy's (README: deliberate).
    assert after["app_hooks"] == before["app_hooks"]
    assert len(after["teardown_appcontext"]) == len(before["teardown_appcontext"]) + 1

    client = host.test_client()
    client.set_cookie("session", signed_before)
    assert client.get("/me").text == "u1"  # signed before init_app, still verifies: nobody is logged out
    forger = host.test_client()
    forger.set_cookie("session", host_session_cookie(host, TVWIDGET_SECRET, "admin"))
    assert forger.get("/me").text == "nobody"  # tvwidget's secret cannot sign the helpdesk's sessions
    ticket_page = client.get("/tickets/T-1")
    assert ticket_page.status_code == 200
    assert ticket_page.text == f"<h1>{HOST_COMPANY}</h1><p>Ticket T-1</p>"

    works_inside(host, client, smtp)
    # tvwidget's tables went to tvwidget's database, not to the host's SQLALCHEMY_DATABASE_URI.
    assert not host_database.exists()
    # The helpdesk login survived all of it, in a cookie tvwidget never wrote.
    assert client.get("/me").text == "u1"
    assert client.get_cookie("session").value == signed_before
    assert dict(host.config) == before["config"]
    with host.app_context():
        db.engine.dispose()


def test_a_host_configured_only_after_mounting_keeps_its_values_and_tvwidget_its_own(tmp_path, tvwidget_env, smtp):
    # As a helpdesk module does at import time: mount first, load its own configuration later.
    host = helpdesk_app(tmp_path)
    init_app(host, {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/tvwidget.db", "HOST_API_KEY": HOST_API_KEY})
    flask_defaults = set(Flask("probe").config)
    host.config.from_mapping(HOST_CONFIG, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/helpdesk.db",
                             WIDGET_CREDENTIAL_MAX_AGE=0, TEAMVIEWER_API_URL="http://127.0.0.1:9/nothing")

    assert {key: host.config[key] for key in HOST_CONFIG} == HOST_CONFIG
    assert host.secret_key == HOST_SECRET
    added = set(host.config) - flask_defaults - set(HOST_CONFIG)
    assert added == {"SQLALCHEMY_DATABASE_URI", "WIDGET_CREDENTIAL_MAX_AGE", "TEAMVIEWER_API_URL"}  # the host's own

    client = host.test_client()
    client.post("/login")
    assert client.get("/me").text == "u1"
    # Launch tokens still verify with TVWIDGET_EMBED_SECRET (not the host's EMBED_SECRET), the credential
    # with TVWIDGET_SECRET_KEY; TeamViewer, mail and the company name are tvwidget's settings.
    works_inside(host, client, smtp)
    assert client.get("/me").text == "u1"
    assert not (tmp_path / "helpdesk.db").exists()
    with host.app_context():
        db.engine.dispose()


def test_the_admin_entry_is_tvwidgets_own_signed_cookie_in_a_host_app(tmp_path, tvwidget_env):
    host = helpdesk_app(tmp_path, SECRET_KEY=HOST_SECRET)
    init_app(host, {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/tvwidget.db"})
    with host.app_context():
        db.create_all()
    client = host.test_client()
    assert client.get("/embed/admin", query_string={
        "token": make_token(role="admin", ticket=None)}).status_code == 303
    entry = client.get_cookie("__Host-tvwidget_admin").value
    assert client.get("/embed/admin/settings").status_code == 200
    # The host rotating its own secret key does not end tvwidget's admin entry...
    host.secret_key = "the-helpdesk-s-next-secret-key-0123456789abcdef"
    assert client.get("/embed/admin/settings").status_code == 200
    # ...and an entry signed with any other key than TVWIDGET_SECRET_KEY is refused.
    payload, _, signature = entry.rpartition(".")
    client.set_cookie("__Host-tvwidget_admin", payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:])
    assert client.get("/embed/admin/settings").status_code == 401
    assert client.get_cookie("session") is None  # the host's session cookie was never written
    with host.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("extension", ["Flask-SQLAlchemy", "Flask-Babel"])
def test_a_host_with_its_own_single_instance_extension_is_refused_before_anything_changes(
        tmp_path, tvwidget_env, extension):
    host = helpdesk_app(tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/helpdesk.db", SECRET_KEY=HOST_SECRET)
    if extension == "Flask-SQLAlchemy":
        SQLAlchemy().init_app(host)
    else:
        from flask_babel import Babel

        Babel().init_app(host)
    before = snapshot(host)
    extensions = dict(host.extensions)
    with pytest.raises(ConfigError, match=f"already has its own {extension}.*DispatcherMiddleware"):
        init_app(host)
    assert dict(host.config) == before["config"] and host.extensions == extensions
    assert set(host.blueprints) == set()
    if extension == "Flask-SQLAlchemy":
        with host.app_context():
            sa.inspect(host.extensions["sqlalchemy"].engine).get_table_names()  # the host's own still works
