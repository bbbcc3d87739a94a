"""Fixtures: tvwidget and the TeamViewer sandbox as real servers on loopback, a real SMTP server, helpdesk data.

Django (pytest-django) and Flask (tvwidget) run in this one process: tvwidget is served over HTTP by a
werkzeug server thread, exactly as the helpdesk reaches it in production (host API, widget, webhook).
"""
import json
import re

import pytest
import requests
from django.conf import settings as django_settings

# tvwidget's own test fixtures and helpers (the repository root is on pythonpath): the same real SMTP server,
# TeamViewer sandbox, WSGI server thread and Chromium (third-party cookies blocked) for both suites.
from tests.conftest import browser, connect, sandbox_url, smtp  # noqa: F401  (fixtures used here)
from tests.live import serve

EMBED_SECRET = django_settings.TVWIDGET_EMBED_SECRET
HOST_API_KEY = django_settings.TVWIDGET_HOST_API_KEY


class TVWidgetServer:
    """tvwidget served on 127.0.0.1 (``url``), with the app for direct reads of its database."""

    def __init__(self, url, app):
        self.url, self.app = url, app


@pytest.fixture
def tvwidget_server(tmp_path, sandbox_url, smtp):  # noqa: F811  (pytest passes the imported fixtures)
    """tvwidget as a real server on loopback, with the TeamViewer sandbox connected.

    One per test, with its own database: helpdesk ticket ids start again in each test, tvwidget's must too.
    Its webhook is off until a test points ``app.config["HOST_WEBHOOK_URL"]`` at a live helpdesk."""
    from tvwidget import create_app
    from tvwidget.extensions import db

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
    with app.app_context():
        db.create_all()
    connect(app)
    with serve(app) as url:
        yield TVWidgetServer(url, app)
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
        self.base_url, self.html = base_url, html
        self.session = requests.Session()

    def post(self, action, data=None):
        credential = json.loads(CREDENTIAL_RE.search(self.html).group(1))["X-TVWidget-Credential"]
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
