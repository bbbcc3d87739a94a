"""Fixtures: tvwidget and the TeamViewer sandbox as real servers on loopback, a real SMTP server, helpdesk data.

Django (pytest-django) and Flask (tvwidget) run in this one process: tvwidget is served over HTTP by a
werkzeug server thread, exactly as the helpdesk reaches it in production (host API, widget, webhook).
"""
import contextlib
import os
import re
import socket
import threading
import time

import pytest
import requests
from aiosmtpd.controller import Controller
from django.conf import settings as django_settings
from werkzeug.serving import make_server

EMBED_SECRET = django_settings.TVWIDGET_EMBED_SECRET
HOST_API_KEY = django_settings.TVWIDGET_HOST_API_KEY
SANDBOX_TOKEN = "sandbox-test-token-1234"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic",
                 "--test-third-party-cookie-phaseout"]  # third-party cookies blocked
REQUIRE_ALL = os.environ.get("TVWIDGET_REQUIRE_ALL") == "1"


def skip_or_fail(reason: str):
    if REQUIRE_ALL:
        pytest.fail(f"required but unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def serve(wsgi_app, host="127.0.0.1"):
    server = make_server(host, 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 Message accepted for delivery"

    def wait_for(self, count=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


@pytest.fixture(scope="session")
def smtp():
    """A real SMTP server (aiosmtpd) on 127.0.0.1."""
    mailbox = Mailbox()
    mailbox.port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def sandbox_url():
    from tvwidget.sandbox import create_sandbox_app

    with serve(create_sandbox_app()) as base_url:
        yield base_url + "/api/v1"


class TVWidgetServer:
    """tvwidget served on 127.0.0.1 (``url``), with the app for direct reads of its database."""

    def __init__(self, url, app):
        self.url, self.app = url, app


def _connect_sandbox(app):
    from tvwidget import secrets
    from tvwidget.extensions import db
    from tvwidget.models import IntegrationSettings, utcnow

    with app.app_context():
        db.create_all()
        db.session.merge(IntegrationSettings(
            id=1, token_ciphertext=secrets.encrypt(SANDBOX_TOKEN), token_last4=SANDBOX_TOKEN[-4:], group_name="BOSS",
            account_name="Sandbox Supporter", connected_by_id="admin-1", connected_by_name="Admin",
            connected_at=utcnow()))
        db.session.commit()


@pytest.fixture
def tvwidget_server(tmp_path, sandbox_url, smtp):
    """tvwidget as a real server on loopback, with the TeamViewer sandbox connected.

    One per test, with its own database: helpdesk ticket ids start again in each test, tvwidget's must too.
    Its webhook is off until a test points ``app.config["HOST_WEBHOOK_URL"]`` at a live helpdesk."""
    from tvwidget import create_app

    database = tmp_path / "tvwidget.db"
    app = create_app({
        "ENV": "development", "TESTING": True,
        "SECRET_KEY": "test-secret-key-0123456789abcdef-0123456789",
        "EMBED_SECRET": EMBED_SECRET, "HOST_API_KEY": HOST_API_KEY,
        "ENCRYPTION_KEYS": "Ws0dQ7C4Ho3T9pvf9_kS7OTZHJxmRvqm2JhTn2v9h3E=",
        "FRAME_ANCESTORS": "http://localhost:*",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
        "TEAMVIEWER_API_URL": sandbox_url, "TEAMVIEWER_READ_TIMEOUT": 3.0,
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp.port, "MAIL_DEFAULT_SENDER": "support@helpdesk.example",
        "SMTP_TIMEOUT": 3, "COMPANY_NAME": "Example Corp",
    })
    _connect_sandbox(app)
    with serve(app) as url:
        yield TVWidgetServer(url, app)
    from tvwidget.extensions import db

    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def tvwidget(tvwidget_server, settings):
    """Point the helpdesk at the running tvwidget."""
    settings.TVWIDGET_URL = tvwidget_server.url
    return tvwidget_server


CREDENTIAL_RE = re.compile(r"hx-headers='([^']*)'")
KEY_RE = re.compile(r'"idempotency_key": "([0-9a-f]{32})"')


class WidgetDriver:
    """The widget driven over HTTP as its page does (credential header, same-origin fetch metadata)."""

    def __init__(self, base_url, html):
        import json

        self.base_url, self.html, self.json = base_url, html, json
        self.session = requests.Session()

    def post(self, action, data=None):
        credential = self.json.loads(CREDENTIAL_RE.search(self.html).group(1))["X-TVWidget-Credential"]
        response = self.session.post(f"{self.base_url}/embed/widget/{action}", data=data or {}, timeout=15, headers={
            "X-TVWidget-Credential": credential, "HX-Request": "true", "Sec-Fetch-Site": "same-origin"})
        assert response.status_code == 200, response.text[:500]
        self.html = response.text
        return self

    def play(self):
        return self.post("play", {"idempotency_key": KEY_RE.search(self.html).group(1)})

    def stop(self):
        return self.post("stop", {"note": "", "outcome": "resolved"})

    def state(self):
        return re.search(r'data-tvwidget-state="([a-z]+)"', self.html).group(1)

    def code(self):
        match = re.search(r'data-tvwidget-field="session-code"[^>]*>([^<]*)<', self.html)
        return match.group(1).strip() if match else None


@pytest.fixture
def open_case(tvwidget):
    """Return a function opening a service case on a helpdesk ticket through tvwidget's own widget (over HTTP)."""
    from tvwidget_helpdesk.views import launch_token

    def open_for(ticket, user):
        response = requests.post(f"{tvwidget.url}/embed/widget", data={"token": launch_token(user, ticket)},
                                 timeout=15)
        assert response.status_code == 200, response.text[:500]
        widget = WidgetDriver(tvwidget.url, response.text).play()
        assert widget.state() == "open", widget.html[:2000]
        return widget

    return open_for


@pytest.fixture
def queue(db):
    from helpdesk.models import Queue

    return Queue.objects.create(title="PC", slug="pc", email_address="support@helpdesk.example",
                                allow_public_submission=True)


@pytest.fixture
def agent(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("agent", "alex.morgan@helpdesk.example", "pw-agent-123",
                                                first_name="Alex", last_name="Morgan", is_staff=True)


@pytest.fixture
def make_ticket(queue):
    from helpdesk.models import Ticket

    def make(**fields):
        values = {"title": "Outlook crashes on start", "queue": queue, "submitter_email": "john.doe@example.com",
                  "priority": 2} | fields
        return Ticket.objects.create(**values)

    return make


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium via Playwright, headless, third-party cookies blocked (never downloaded)."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        skip_or_fail(f"playwright cannot be imported: {exc}")
    if not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    expect.set_options(timeout=15_000)
    # Playwright's sync API keeps an event loop running in this thread; Django then refuses ORM calls from it
    # unless told that this (single-threaded, test-only) use is fine.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
