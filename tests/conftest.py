"""Shared fixtures: the app on SQLite and PostgreSQL, a TeamViewer sandbox over HTTP, a real SMTP server."""
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import flask_migrate
import jwt
import pytest
import requests
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask import Flask, render_template, session
from pytest_httpserver import HTTPServer
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from tvwidget import create_app
from tvwidget.demo import create_app as create_demo_app
from tvwidget.demo.sandbox import create_sandbox_app
from tvwidget.extensions import db

from .fake_teamviewer import FakeTeamViewer
from .live import serve

EMBED_SECRET = "test-embed-secret-0123456789abcdef-0123456789"
HOST_API_KEY = "test-host-api-key-0123456789abcdef"
SANDBOX_TOKEN = "sandbox-test-token-1234"
POSTGRES_URL = os.environ.get("TVWIDGET_TEST_POSTGRES_URL")
REQUIRE_ALL = os.environ.get("TVWIDGET_REQUIRE_ALL") == "1"


def screenshot_dir() -> Path:
    """Where browser tests put screenshots: docs/screenshots/ when TVWIDGET_UPDATE_SCREENSHOTS=1
    (to refresh the committed pictures), else an ignored folder, so a test run leaves the tree clean."""
    root = Path(__file__).resolve().parents[1]
    folder = root / "docs" / "screenshots" if os.environ.get("TVWIDGET_UPDATE_SCREENSHOTS") == "1" \
        else root / "tests" / "_artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Waits for web fonts before a screenshot, but never longer than 3 s: a promise
# Playwright evaluates has no timeout of its own.
FONTS_READY = "() => Promise.race([document.fonts.ready, new Promise(done => setTimeout(done, 3000))])"


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
    # Chromium's switch for the third-party-cookie phase-out: third-party cookies are blocked.
    "--test-third-party-cookie-phaseout",
]
PLAYWRIGHT_TIMEOUT = 10_000  # ms, for Playwright's waits


def skip_or_fail(reason: str):
    """Skip with ``reason``, or fail when CI demands every test run (TVWIDGET_REQUIRE_ALL=1)."""
    if REQUIRE_ALL:
        pytest.fail(f"required but unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(params=ENGINES)
def database_url(request, tmp_path):
    """Yield an empty database on each engine the suite runs against."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tvwidget.db'}"
        return
    if not POSTGRES_URL:
        skip_or_fail("PostgreSQL tests need TVWIDGET_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    name = f"tvwidget_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def sandbox_url():
    """A TeamViewer sandbox served over real HTTP on 127.0.0.1."""
    with serve(create_sandbox_app()) as base_url:
        yield base_url + "/api/v1"


@pytest.fixture
def teamviewer_server():
    """A bare pytest-httpserver on 127.0.0.1 for tests that script TeamViewer's answers one by one."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def teamviewer():
    """The suite's TeamViewer double (tests/fake_teamviewer.py), serving its whole Web API."""
    fake = FakeTeamViewer().start()
    yield fake
    fake.stop()


@pytest.fixture
def tv_app(app_factory, teamviewer):
    """A connected app whose TeamViewer is the double."""
    app = app_factory(TEAMVIEWER_API_URL=teamviewer.url, TEAMVIEWER_RETRIES=0, TEAMVIEWER_READ_TIMEOUT=2.0)
    connect(app)
    return app


@pytest.fixture
def free_sandbox_licences(sandbox_url):
    """Close what a test left open in the session-wide sandbox, which allows 50 open sessions."""
    yield
    auth = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
    listed = requests.get(f"{sandbox_url}/sessions", params={"state": "open"}, headers=auth, timeout=5)
    for remote in listed.json()["sessions"]:
        requests.put(f"{sandbox_url}/sessions/{remote['code']}", json={"state": "closed"}, headers=auth, timeout=5)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """Messages received by a real SMTP server on loopback."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 Message accepted for delivery"

    def wait_for(self, count: int = 1, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on 127.0.0.1; ``.messages`` holds what it received."""
    mailbox = Mailbox()
    mailbox.port = free_port()  # aiosmtpd's controller cannot start on port 0
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


@pytest.fixture
def app_factory(database_url, sandbox_url, smtp):
    """Return a function building a tvwidget app with test settings (plus overrides)."""
    made = []

    def make(demo=False, **overrides):
        config = {
            "ENV": "development",
            "TESTING": True,
            "SECRET_KEY": "test-secret-key-0123456789abcdef-0123456789",
            "EMBED_SECRET": EMBED_SECRET,
            "HOST_API_KEY": HOST_API_KEY,
            "ENCRYPTION_KEYS": "Ws0dQ7C4Ho3T9pvf9_kS7OTZHJxmRvqm2JhTn2v9h3E=",
            "FRAME_ANCESTORS": "https://helpdesk.example",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "TEAMVIEWER_API_URL": sandbox_url,
            "TEAMVIEWER_READ_TIMEOUT": 3.0,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": smtp.port,
            "MAIL_DEFAULT_SENDER": "support@helpdesk.example",
            "SMTP_TIMEOUT": 3,
            "COMPANY_NAME": "Example Corp",
        } | overrides
        app = (create_demo_app if demo else create_app)(config)
        with app.app_context():
            db.create_all()
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


def connect(app, token: str = SANDBOX_TOKEN, group: str = "BOSS") -> None:
    """Store a connected integration directly (the admin form is tested on its own)."""
    from tvwidget.storage import secrets
    from tvwidget.storage.models import IntegrationSettings, utcnow

    with app.app_context():
        db.session.merge(IntegrationSettings(
            id=1, token_ciphertext=secrets.encrypt(token), token_last4=token[-4:], group_name=group,
            account_name="Sandbox Supporter", connected_by_id="admin-1", connected_by_name="Admin",
            connected_at=utcnow()))
        db.session.commit()


@pytest.fixture
def connected_app(app):
    connect(app)
    return app


def helpdesk_app(root, **config) -> Flask:
    """A helpdesk app with its own login, its own Babel-free template and no Flask extensions."""
    (root / "templates").mkdir()
    (root / "templates" / "ticket.html").write_text(
        "<h1>{{ config.COMPANY_NAME }}</h1><p>Ticket {{ ticket_id }}</p>"
        "{% if _ is defined or gettext is defined or csrf_token is defined %}tvwidget leaked{% endif %}")
    host = Flask("helpdesk", root_path=str(root))
    host.config.from_mapping(config)

    @host.post("/login")
    def login():
        session["user"] = "u1"
        return "signed in"

    @host.get("/me")
    def me():
        return session.get("user", "nobody")

    @host.get("/tickets/<ticket_id>")
    def ticket(ticket_id):
        return render_template("ticket.html", ticket_id=ticket_id)

    return host


def ticket_claim(ticket_id="T-1", **fields):
    return {
        "id": ticket_id, "subject": "Outlook crashes on start",
        "requester": {"name": "John Doe", "email": "john.doe@example.com"},
        "category": "PC", "type": "Incident", "priority": "High", "source": "Email", "status": "open",
    } | fields


def make_token(secret=EMBED_SECRET, algorithm="HS256", **claims):
    """Return a launch token as a host signs it; ``claims`` override the defaults (None drops one)."""
    now = int(time.time())
    payload = {
        "aud": "tvwidget", "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex,
        "sub": "agent-1", "name": "Alex Morgan", "email": "alex@helpdesk.example", "role": "agent",
        "locale": "en", "tz": "Asia/Tokyo", "ticket": ticket_claim(),
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, secret, algorithm=algorithm)


CREDENTIAL_RE = re.compile(r"hx-headers='([^']*)'")


def credential_of(html: str) -> str:
    """Return the widget credential the page hands to htmx."""
    match = CREDENTIAL_RE.search(html)
    assert match, "widget page carries no credential"
    return json.loads(match.group(1))["X-TVWidget-Credential"]


class Widget:
    """Drive one launched widget the way htmx does: credential header, HX-Request, same-origin."""

    def __init__(self, client, html: str):
        self.client = client
        self.html = html

    @property
    def credential(self):
        return credential_of(self.html)

    def post(self, action: str, data=None, **headers):
        response = self.client.post(
            f"/embed/widget/{action}", data=data or {},
            headers={"X-TVWidget-Credential": self.credential, "HX-Request": "true",
                     "Sec-Fetch-Site": "same-origin"} | headers)
        if response.headers.get("Content-Type", "").startswith("text/html") and "hx-headers" in response.text:
            self.html = response.text
        return response

    def play(self):
        key = re.search(r'"idempotency_key": "([0-9a-f]{32})"', self.html)
        return self.post("play", {"idempotency_key": key.group(1)} if key else {})

    def stop(self):
        return self.post("stop")

    def state(self) -> str:
        return re.search(r'data-tvwidget-state="([a-z]+)"', self.html).group(1)

    def field(self, name: str) -> str:
        match = re.search(rf'data-tvwidget-field="{name}"[^>]*>([^<]*)<', self.html)
        return match.group(1).strip() if match else None


def open_widget(app, **claims) -> Widget:
    """Launch the widget in a fresh client of ``app`` with a fresh token; return the Widget."""
    client = app.test_client()
    response = client.get("/embed/widget", query_string={"token": make_token(**claims)})
    assert response.status_code == 200, response.text
    return Widget(client, response.text)


@pytest.fixture
def launch(client):
    """Return a function that launches the widget with a fresh token and returns a Widget."""
    def do(**claims):
        response = client.get("/embed/widget", query_string={"token": make_token(**claims)})
        assert response.status_code == 200, response.text
        return Widget(client, response.text)
    return do


@pytest.fixture
def demo(tmp_path, monkeypatch):
    """Serve the demo on a free port and yield ``(host_base, widget_base)``: two names, two sites."""
    for name in ("TVWIDGET_SQLALCHEMY_DATABASE_URI", "TVWIDGET_TEAMVIEWER_API_URL", "TVWIDGET_FRAME_ANCESTORS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TVWIDGET_ENV", "demo")
    port = free_port()
    app = create_demo_app({
        "ENV": "demo",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'demo.db'}",
        "TEAMVIEWER_API_URL": f"http://127.0.0.1:{port}/sandbox/api/v1",
    })
    with app.app_context():
        flask_migrate.upgrade()
    result = app.test_cli_runner().invoke(args=["tvwidget", "demo-setup"])
    assert result.exit_code == 0, result.output
    assert "Demo ready" in result.output
    try:
        with serve(DispatcherMiddleware(app, {"/sandbox": create_sandbox_app()}), port=port):
            # The host page on one name, the widget on the other (views/demo.py swaps them).
            yield f"http://localhost:{port}", f"http://127.0.0.1:{port}"
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright, headless, third-party cookies blocked (never downloaded)."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        skip_or_fail(f"playwright cannot be imported: {exc}")
    if not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    expect.set_options(timeout=PLAYWRIGHT_TIMEOUT)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()



# --- the fake helpdesk that frames the widget cross-site in the browser tests (tests/browser.py) -------------

@pytest.fixture
def helpdesk():
    """The fake helpdesk, reached as http://localhost:<port> (another site than tvwidget's 127.0.0.1)."""
    from .browser import Helpdesk, localhost

    desk = Helpdesk()
    with serve(desk.app) as url:
        desk.origin = localhost(url)
        yield desk


@pytest.fixture
def serve_widget(app_factory, helpdesk, sandbox_url):
    """Return ``start(name, connected=True, **config)``: serve a tvwidget app the helpdesk may frame."""
    with contextlib.ExitStack() as servers:
        def start(name: str = "main", connected: bool = True, **overrides):
            app = app_factory(**{"FRAME_ANCESTORS": helpdesk.origin, "TEAMVIEWER_API_URL": sandbox_url} | overrides)
            if connected:
                connect(app)
            url = servers.enter_context(serve(app))
            helpdesk.widgets[name] = url
            app.base_url = url
            return app
        yield start


@pytest.fixture
def teamviewer_sandbox():
    """A fresh TeamViewer sandbox over HTTP for this test alone (not the session's shared one); yields its API URL."""
    with serve(create_sandbox_app()) as url:
        yield url + "/api/v1"

# --- tvwidget as real processes: migrated by the flask CLI, served by gunicorn with 4 workers ---------------

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server_settings() -> dict:
    """Extra TVWIDGET_* variables for ``server_env``; a module overrides this fixture to change them."""
    return {}


@pytest.fixture
def server_env(database_url, teamviewer, smtp, server_settings):
    """The environment tvwidget's processes (gunicorn, the ``flask`` CLI) run with; TeamViewer is the double."""
    return os.environ | server_settings | {
        "TVWIDGET_ENV": "development",
        "TVWIDGET_SQLALCHEMY_DATABASE_URI": database_url,
        "TVWIDGET_TEAMVIEWER_API_URL": teamviewer.url,
        "TVWIDGET_EMBED_SECRET": EMBED_SECRET,
        "TVWIDGET_HOST_API_KEY": HOST_API_KEY,
        "TVWIDGET_MAIL_SERVER": "127.0.0.1",
        "TVWIDGET_MAIL_PORT": str(smtp.port),
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def local_app(server_env, database_url):
    """The same database seen from the test's own process (migrated with ``flask db upgrade``, connected)."""
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=server_env,
                   check=True, capture_output=True)
    app = create_app({"ENV": "development", "SQLALCHEMY_DATABASE_URI": database_url})
    connect(app)
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def gunicorn(local_app, server_env, tmp_path):
    """tvwidget under gunicorn with 4 worker processes; its log is ``tmp_path / "gunicorn.log"``."""
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "4", "--threads", "8", "-k", "gthread", "-b", f"127.0.0.1:{port}",
         "--graceful-timeout", "2", "wsgi:app"],
        cwd=ROOT, env=server_env, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(base + "/embed/widget", timeout=5).close()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(10)
        log.close()
