"""RELIABILITY.md's checklist items that no other module proves in full (docs/reliability-checklist.md maps all 34).

Everything runs against real servers: a stateful TeamViewer double over HTTP (pytest-httpserver), the
sandbox, aiosmtpd, SQLite and PostgreSQL, gunicorn.  Faults are injected at the database (a trigger that
refuses a write) or the network, never by replacing tvwidget's own code.
"""
import base64
import email
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email import policy
from html.parser import HTMLParser
from pathlib import Path

import jwt
import pytest
import requests
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings, strategies as st
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tvwidget.extensions import db
from tvwidget.mail import message as mail
from tvwidget.storage.models import (
    CaseState,
    CaseTracking,
    EmailMessage,
    IntegrationSettings,
    ServiceCase,
    Ticket,
    utcnow,
)

from .conftest import EMBED_SECRET, HOST_API_KEY, Widget, connect, free_port, make_token, open_widget, ticket_claim
from .live import serve, wait_for_http

ROOT = Path(__file__).resolve().parents[1]
API = {"Authorization": f"Bearer {HOST_API_KEY}"}
LEEWAY = 10  # LAUNCH_TOKEN_LEEWAY's default


# --- a stateful TeamViewer double -------------------------------------------------------------------------

class FakeTeamViewer:
    """TeamViewer's Web API as a small stateful double over real HTTP; ``calls`` lists every request."""

    def __init__(self, valid_for=timedelta(hours=24)):
        self.server = HTTPServer(host="127.0.0.1", threaded=True)
        self.sessions = {}
        self.valid_for = valid_for
        self.lock = threading.Lock()
        self.before_create_reply = None  # called with the new session, before TeamViewer answers

    def start(self):
        self.server.start()
        self.server.expect_request(re.compile(r"^/api/v1/.*$")).respond_with_handler(self._handle)
        return self

    def url(self):
        return self.server.url_for("/api/v1")

    @property
    def calls(self):
        return [(request.method, request.path.removeprefix("/api/v1")) for request, _ in self.server.log]

    def _handle(self, request):
        path = request.path.removeprefix("/api/v1")
        code = re.fullmatch(r"/sessions/(s[0-9-]+)", path)
        with self.lock:
            if path == "/sessions" and request.method == "POST":
                return self._create(request.get_json())
            if path == "/sessions" and request.method == "GET":
                return _json(200, {"sessions": [s for s in self.sessions.values() if s["state"] == "Open"]})
            if code and code.group(1) in self.sessions:
                session = self.sessions[code.group(1)]
                if request.method == "PUT":
                    session["state"] = "Closed"
                    return Response("", 204)
                return _json(200, session)
            if path == "/ping":
                return _json(200, {"token_valid": True})
            if path == "/account":
                return _json(200, {"userid": "u1", "name": "Fake Supporter", "email": "s@example.com"})
        return _json(404, {"error": "not_found"})

    def _create(self, body):
        number = len(self.sessions) + 1
        code = f"s{100 + number}-{200 + number}-{300 + number}"
        until = datetime.now(UTC) + self.valid_for
        session = {"code": code, "state": "Open", "custom_api": body.get("custom_api"),
                   "supporter_link": f"https://get.teamviewer.com/v15/{code}-sup",
                   "end_customer_link": f"https://get.teamviewer.com/v15/{code}",
                   "valid_until": until.strftime("%Y-%m-%dT%H:%M:%SZ"), "online": False}
        self.sessions[code] = session
        if self.before_create_reply is not None:
            self.before_create_reply(session)
        return _json(200, session)


def _json(status, body, **headers):
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers)


@pytest.fixture
def teamviewer():
    fake = FakeTeamViewer().start()
    yield fake
    fake.server.clear()
    fake.server.stop()


@pytest.fixture
def tv_app(app_factory, teamviewer):
    """A connected app whose TeamViewer is the stateful double."""
    app = app_factory(TEAMVIEWER_API_URL=teamviewer.url(), TEAMVIEWER_RETRIES=0, TEAMVIEWER_READ_TIMEOUT=2.0)
    connect(app)
    return app


def admin_client(app):
    client = app.test_client()
    response = client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None)})
    assert response.status_code == 303, response.text
    return client


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)


# --- the whole database, fingerprinted --------------------------------------------------------------------

def table_checksums(app) -> dict:
    """Return {table: (row count, SHA-256 of every row)} for every table in the database, reflected."""
    with app.app_context():
        engine = db.engine
        metadata = sa.MetaData()
        metadata.reflect(bind=engine)
        sums = {}
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                order = list(table.primary_key.columns) or list(table.columns)
                rows = connection.execute(sa.select(table).order_by(*order)).all()
                sums[table.name] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
    return sums


def changed_tables(before: dict, after: dict) -> set:
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


# ==========================================================================================================
# 1-4. Launch tokens
# ==========================================================================================================

def _part(data) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _altered(token: str, **claims) -> str:
    """The token with claims changed and the original signature kept."""
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return ".".join((header, _part(body | claims), signature))


FORGED = {
    "wrong key": lambda **c: make_token(secret="another-installation-secret-0123456789abcdef", **c),
    "altered claim": lambda **c: _altered(make_token(**c), sub="someone-else", role="admin"),
    "truncated": lambda **c: make_token(**c)[:-12],
}


def _signed_by_hand(token: str, alg: str, digest) -> str:
    """The token's claims under ``alg``, keyed with the right secret (PyJWT will not make it: key too short)."""
    import hmac

    header = _part({"alg": alg, "typ": "JWT"})
    signing_input = f"{header}.{token.split('.')[1]}"
    signature = hmac.new(EMBED_SECRET.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _refusals(caplog):
    return [r for r in caplog.records if r.name == "tvwidget.web.security" and "launch refused" in r.getMessage()]


@pytest.mark.parametrize("where", ["widget", "admin"])
@pytest.mark.parametrize("forgery", FORGED)
def test_1_forged_launch_token_is_401_without_cookie_or_rows_and_is_logged(app, caplog, forgery, where):
    caplog.set_level(logging.INFO)
    claims = {} if where == "widget" else {"role": "admin", "ticket": None}
    token = FORGED[forgery](**claims)
    before = table_checksums(app)
    assert sum(count for count, _ in before.values()) == 0
    client = app.test_client()
    for response in (client.get(f"/embed/{where}", query_string={"token": token}),
                     client.post(f"/embed/{where}", data={"token": token})):
        assert response.status_code == 401, response.text
        assert "Set-Cookie" not in response.headers
    assert client.get_cookie(app.config["SESSION_COOKIE_NAME"]) is None
    assert table_checksums(app) == before  # no ticket, no spent jti, no session, no audit row: nothing
    # The refusal is in the log (twice: GET and POST), tied to the token by a fingerprint, never the token.
    refusals = _refusals(caplog)
    assert len(refusals) == 2 and all(r.levelno == logging.WARNING for r in refusals)
    assert all(hashlib.sha256(token.encode()).hexdigest()[:12] in r.getMessage() for r in refusals)
    assert all("HTTP 401" in r.getMessage() for r in refusals)
    assert token not in caplog.text and token.split(".")[-1] not in caplog.text


def test_1_an_agent_token_on_the_admin_launch_is_logged_as_refused(app, caplog):
    caplog.set_level(logging.INFO)
    response = app.test_client().get("/embed/admin", query_string={"token": make_token(ticket=None)})
    assert response.status_code == 403
    assert len(_refusals(caplog)) == 1 and "HTTP 403" in _refusals(caplog)[0].getMessage()


def test_1_accepted_launches_are_not_logged_as_refused(app, caplog):
    caplog.set_level(logging.INFO)
    client = app.test_client()
    assert client.get("/embed/widget", query_string={"token": make_token()}).status_code == 200
    assert client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None)}).status_code == 303
    assert _refusals(caplog) == []


NOW = 1_900_000_000  # a fixed instant; the app's clock is frozen on it


@pytest.mark.parametrize(("times", "status"), [
    ({"iat": NOW - 600, "exp": NOW - LEEWAY - 1}, 401),   # expired, 1 s beyond the leeway
    ({"iat": NOW - 600, "exp": NOW - LEEWAY + 1}, 200),   # expired, but 1 s inside the leeway
    ({"nbf": NOW + LEEWAY + 1}, 401),                      # not valid yet, 1 s beyond the leeway
    ({"nbf": NOW + LEEWAY - 1}, 200),
    ({"iat": NOW + LEEWAY + 1, "exp": NOW + 600}, 401),    # issued in the future
    ({"iat": NOW + LEEWAY - 1, "exp": NOW + 600}, 200),
    ({"iat": NOW - 3601, "exp": NOW + 1}, 401),            # stale: issued more than an hour before expiry
    ({"iat": NOW - 3599, "exp": NOW + 1}, 200),            # lifetime exactly one hour
], ids=["exp-11s", "exp-9s", "nbf+11s", "nbf+9s", "iat+11s", "iat+9s", "iat-3601s", "iat-3599s"])
def test_2_token_times_are_judged_to_the_second_around_the_leeway(app, times, status):
    claims = {"iat": NOW, "exp": NOW + 600} | times
    token = make_token(**claims)
    with freeze_time(datetime.fromtimestamp(NOW, UTC)):
        response = app.test_client().get("/embed/widget", query_string={"token": token})
    assert response.status_code == status, response.text


@pytest.fixture
def key_server():
    """Where a hostile token's ``jku`` points; it must never be asked."""
    server = HTTPServer(host="127.0.0.1")
    server.start()
    server.expect_request(re.compile(".*")).respond_with_json({"keys": []})
    yield server
    server.clear()
    server.stop()


def test_3_header_keys_are_ignored_and_the_algorithm_is_pinned(app, key_server):
    client = app.test_client()
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    jku = key_server.url_for("/.well-known/jwks.json")
    refused = {
        "RS256 with its own jwk": make_token(secret=attacker, algorithm="RS256"),
        "RS256 with embedded jwk": jwt.encode(jwt.decode(make_token(), options={"verify_signature": False}),
                                              attacker, algorithm="RS256", headers={"jwk": jwk, "kid": "x"}),
        "RS256 with jku": jwt.encode(jwt.decode(make_token(), options={"verify_signature": False}),
                                     attacker, algorithm="RS256", headers={"jku": jku, "kid": "attacker"}),
        "HS256, attacker's secret, jku": jwt.encode(
            jwt.decode(make_token(), options={"verify_signature": False}),
            "attacker-secret-0123456789abcdef0123456789", algorithm="HS256", headers={"jku": jku}),
        # Signed with the right secret, but not with the one algorithm tvwidget allows.
        "HS384, right secret": _signed_by_hand(make_token(), "HS384", hashlib.sha384),
        "HS512, right secret": _signed_by_hand(make_token(), "HS512", hashlib.sha512),
        "alg none, right claims": f"{_part({'alg': 'none', 'typ': 'JWT'})}.{make_token().split('.')[1]}.",
    }
    for name, token in refused.items():
        assert client.get("/embed/widget", query_string={"token": token}).status_code == 401, name
    # Header keys change nothing either way: the right secret with a hostile jku and kid is simply accepted.
    accepted = make_token()
    body = jwt.decode(accepted, options={"verify_signature": False})
    decorated = jwt.encode(body | {"jti": "decorated"}, EMBED_SECRET, algorithm="HS256",
                           headers={"jku": jku, "kid": "../../etc/passwd", "x5u": jku})
    assert client.get("/embed/widget", query_string={"token": decorated}).status_code == 200
    assert key_server.log == []


@pytest.mark.parametrize("audience", ["another-app", "tvwidget-staging", "TVWIDGET", "", ["other-app"], 42,
                                      "https://helpdesk.example"])
def test_4_a_token_for_another_audience_is_401(client, audience):
    assert client.get("/embed/widget", query_string={"token": make_token(aud=audience)}).status_code == 401


def test_4_a_token_from_another_installation_or_helpdesk_is_401(client):
    """Each installation has its own TVWIDGET_EMBED_SECRET: a token its helpdesk signed fails here."""
    for secret in ("secret-of-another-installation-0123456789ab", "secret-of-a-subdomain-helpdesk-0123456789"):
        token = make_token(secret=secret, iss="https://other.helpdesk.example")
        assert client.get("/embed/widget", query_string={"token": token}).status_code == 401


# ==========================================================================================================
# 6. IDOR: the widget credential alone names the ticket
# ==========================================================================================================

ID_LIKE = st.one_of(st.sampled_from(["B", "b", "B ", " B", "B\n", "%42", "../B", "B/../A", "T-1", "0", "*"]),
                    st.text(max_size=70))


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(other=ID_LIKE)
def test_6_a_widget_credential_for_ticket_a_never_reaches_ticket_b(app_factory, teamviewer, other):
    # Hypothesis runs every example on the same database: each gets its own pair of tickets.
    run = os.urandom(4).hex()
    ticket_a, ticket_b = f"A-{run}", f"B-{run}"
    app = app_factory(TEAMVIEWER_API_URL=teamviewer.url(), TEAMVIEWER_RETRIES=0)
    connect(app)
    b = open_widget(app, ticket=ticket_claim(ticket_b))
    b.play()
    code_b = b.field("session-code")
    a = open_widget(app, ticket=ticket_claim(ticket_a))
    calls_before = len(teamviewer.calls)
    for victim in (other, ticket_b):
        names_b = {"ticket_id": victim, "ticket": victim, "code": code_b}
        in_header = re.sub(r"[\x00-\x1f\x7f]", " ", victim)  # what an HTTP header can carry
        headers = {"X-Ticket-Id": in_header, "X-TVWidget-Ticket": in_header}
        query = "?" + "&".join(f"{key}={requests.utils.quote(value)}" for key, value in names_b.items())
        a.post("play" + query, names_b | {"idempotency_key": os.urandom(16).hex()}, **headers)
        assert a.state() == "open" and a.field("session-code") != code_b
        assert a.post("replace", names_b, **headers).status_code == 409  # B's code is not A's case
        status = a.client.get("/embed/widget/status", query_string=names_b,
                              headers={"X-TVWidget-Credential": a.credential, "HX-Request": "true"} | headers)
        assert code_b not in status.text
        history = a.client.get("/embed/widget/history", query_string=names_b,
                               headers={"X-TVWidget-Credential": a.credential} | headers)
        assert code_b not in history.text
    a.post("stop", names_b, **headers)
    assert a.state() == "idle"
    # The host API does not take a widget credential at all.
    assert a.client.post(f"/api/v1/tickets/{ticket_b}/close",
                         headers={"X-TVWidget-Credential": a.credential}).status_code == 401
    # B's case is untouched here and at TeamViewer; TeamViewer heard of A only, once to open, once to close.
    with app.app_context():
        states = dict(db.session.execute(sa.select(ServiceCase.ticket_id, ServiceCase.state).where(
            ServiceCase.ticket_id.in_([ticket_a, ticket_b]))).all())
    assert states == {ticket_a: "closed", ticket_b: "open"}
    later = teamviewer.server.log[calls_before:]
    assert [request.method for request, _ in later] == ["POST", "PUT"]
    assert json.loads(later[0][0].get_json()["custom_api"])["ticket_id"] == ticket_a
    assert code_b not in later[1][0].path


# ==========================================================================================================
# 7. The launch token in the URL stays out of logs and pages
# ==========================================================================================================

def test_7_a_launch_token_in_the_url_is_never_logged_or_shown(app, caplog):
    caplog.set_level(logging.DEBUG)
    good, admin = make_token(), make_token(role="admin", ticket=None)
    expired = make_token(iat=int(time.time()) - 4000, exp=int(time.time()) - 400)
    bodies = []
    with serve(app) as base:  # a real HTTP server, which logs every request line
        for path, token in (("/embed/widget", good), ("/embed/widget", good), ("/embed/widget", expired),
                            ("/embed/admin", admin)):
            response = requests.get(base + path, params={"token": token}, timeout=10, allow_redirects=False)
            assert response.headers["Referrer-Policy"] == "no-referrer"
            bodies.append(response.text)
    assert "GET /embed/widget?token=[redacted]" in caplog.text  # the request lines were logged, redacted
    for token in (good, admin, expired):
        assert token not in caplog.text and token.split(".")[2] not in caplog.text
        assert all(token not in body for body in bodies)


# ==========================================================================================================
# 10. Cookie attributes
# ==========================================================================================================

def parse_set_cookie(header: str) -> tuple[str, dict]:
    name_value, *attributes = (part.strip() for part in header.split(";"))
    found = {}
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        found[key.lower()] = value
    return name_value.partition("=")[0], found


def assert_cookie_rules(header: str) -> None:
    """RELIABILITY checklist 10, for one Set-Cookie header."""
    name, attributes = parse_set_cookie(header)
    assert len(header.encode()) < 4096, header
    assert name.startswith("__Host-"), header
    assert "secure" in attributes and "httponly" in attributes, header
    assert attributes.get("path") == "/" and "domain" not in attributes, header
    assert attributes.get("samesite") in ("Lax", "Strict", "None"), header
    if attributes["samesite"] == "None":
        assert "secure" in attributes and "partitioned" in attributes, header


@pytest.mark.parametrize("environment", ["production", "development"])
def test_10_every_cookie_is_host_prefixed_secure_http_only_and_small(app_factory, environment):
    # Production applies its own rules (Secure, the __Host- name); TeamViewer must be https there.
    app = app_factory(ENV=environment, TEAMVIEWER_API_URL="https://webapi.teamviewer.com/api/v1")
    client = app.test_client()
    seen = []

    def record(response):
        seen.extend(response.headers.getlist("Set-Cookie"))
        return response

    record(client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None)}))
    for path in ("/embed/admin/settings", "/embed/admin/branding", "/embed/admin/audit",
                 "/embed/admin/email-template", "/embed/admin/reports/teamviewer-sessions"):
        record(client.get(path))
    page = client.get("/embed/admin/email-template")
    record(client.post("/embed/admin/email-template", query_string={"lang": "en"},
                       data={"csrf_token": csrf_of(page), "subject": "Hi {ticket_id}", "body": "{customer_link}"}))
    assert seen, "the admin launch sets the session cookie"
    for header in seen:
        assert_cookie_rules(header)
    assert {parse_set_cookie(header)[0] for header in seen} == {"__Host-tvwidget_admin"}
    # A session that grew (CSRF token, the agent) still fits the 4 KB budget with room to spare.
    assert max(len(header) for header in seen) < 1024


def test_10_the_widget_never_sets_a_cookie(tv_app):
    """Decision 1: the widget works on its header credential; a third-party cookie would be blocked anyway."""
    client = tv_app.test_client()
    launched = client.get("/embed/widget", query_string={"token": make_token()})
    widget = Widget(client, launched.text)
    responses = [launched, client.post("/embed/widget", data={"token": make_token()}), widget.play(),
                 client.get("/embed/widget/panel", headers={"X-TVWidget-Credential": widget.credential}),
                 client.get("/embed/widget/status", query_string={"code": widget.field("session-code")},
                            headers={"X-TVWidget-Credential": widget.credential}),
                 client.get("/embed/widget/history", headers={"X-TVWidget-Credential": widget.credential}),
                 widget.post("resend"), widget.stop(), client.get("/static/tvwidget/tvwidget.css"),
                 client.get("/embed/email-preview.css")]
    for response in responses:
        response.close()
    assert [r.headers.getlist("Set-Cookie") for r in responses] == [[]] * len(responses)
    assert client.get_cookie(tv_app.config["SESSION_COOKIE_NAME"]) is None


def test_10_the_plain_http_demo_keeps_a_name_browsers_accept(app_factory):
    """A __Host- cookie must be Secure; the demo serves plain HTTP, so its cookie has the plain name."""
    demo = app_factory(ENV="demo")
    response = demo.test_client().get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None)})
    name, attributes = parse_set_cookie(response.headers["Set-Cookie"])
    assert name == "tvwidget_admin" and attributes["samesite"] == "Lax" and "httponly" in attributes


# ==========================================================================================================
# 11-12. State changes need their proof, and must come from tvwidget's own pages
# ==========================================================================================================

def _post_routes(app, blueprint: str) -> list[str]:
    return sorted({rule.rule for rule in app.url_map.iter_rules()
                   if rule.endpoint.startswith(blueprint + ".") and "POST" in rule.methods
                   and not rule.endpoint.endswith(".launch")})


def test_11_changes_without_the_credential_or_csrf_token_have_no_side_effects(tv_app, teamviewer, smtp):
    widget = open_widget(tv_app)
    widget.play()
    code = widget.field("session-code")
    assert len(smtp.wait_for(1)) == 1
    admin = admin_client(tv_app)
    before, calls = table_checksums(tv_app), len(teamviewer.calls)

    widget_posts = _post_routes(tv_app, "tvwidget")
    assert widget_posts == ["/embed/widget/play", "/embed/widget/replace", "/embed/widget/resend",
                            "/embed/widget/stop"]
    form = {"idempotency_key": "b" * 32, "code": code, "note": "x", "outcome": "resolved"}
    browser = {"HX-Request": "true", "Sec-Fetch-Site": "same-origin"}
    for path in widget_posts:
        for proof in ({}, {"X-TVWidget-Credential": ""}, {"X-TVWidget-Credential": widget.credential[:-6] + "AAAAAA"},
                      {"X-CSRFToken": "whatever"}):
            response = widget.client.post(path, data=form, headers=browser | proof)
            assert response.status_code == 403, (path, proof)
            assert 'role="alert"' in response.text

    admin_posts = _post_routes(tv_app, "tvwidget_admin")
    assert len(admin_posts) >= 5
    form = {"script_token": "sandbox-replacement-7777", "group_name": "Other", "subject": "Hi {ticket_id}",
            "body": "{customer_link}"}
    for path in admin_posts:
        for proof in ({}, {"csrf_token": ""}, {"csrf_token": "forged-token"}):
            response = admin.post(path, query_string={"lang": "en"}, data=form | proof,
                                  headers={"Sec-Fetch-Site": "same-origin"})
            assert response.status_code == 400, (path, proof)

    time.sleep(0.3)  # a mail or TeamViewer call would have arrived by now
    assert table_checksums(tv_app) == before  # no case, outbox row, audit row, template or setting
    assert len(teamviewer.calls) == calls and len(smtp.messages) == 1


# Headers a browser sends with the POST -> whether tvwidget may act on it.
FETCH_MATRIX = [
    ({"Sec-Fetch-Site": "same-origin"}, True),
    ({"Sec-Fetch-Site": "none"}, True),
    ({"Sec-Fetch-Site": "cross-site"}, False),
    ({"Sec-Fetch-Site": "same-site"}, False),
    ({"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"}, False),  # Fetch Metadata decides
    ({"Origin": "http://localhost"}, True),                                   # no Fetch Metadata: Origin
    ({"Origin": "https://evil.example"}, False),
    ({"Origin": "null"}, False),
    ({"Referer": "http://localhost/embed/widget"}, True),                     # neither: the Referer
    ({"Referer": "https://evil.example/ticket/1"}, False),
    ({"Referer": "http://localhost.evil.example/embed/widget"}, False),
    ({}, True),  # nothing to judge by: the credential header alone (no cross-site form can send it)
]


def test_12_cross_site_posts_are_refused_by_fetch_metadata_origin_or_referer(tv_app, teamviewer):
    admin = admin_client(tv_app)
    for number, (headers, allowed) in enumerate(FETCH_MATRIX):
        widget = open_widget(tv_app, ticket=ticket_claim(f"M-{number}"))
        response = widget.client.post("/embed/widget/play", data={"idempotency_key": os.urandom(16).hex()},
                                      headers={"X-TVWidget-Credential": widget.credential, "HX-Request": "true"}
                                      | headers)
        assert response.status_code == (200 if allowed else 403), headers
        with tv_app.app_context():
            made = db.session.scalar(sa.select(sa.func.count()).select_from(ServiceCase)
                                     .where(ServiceCase.ticket_id == f"M-{number}"))
        assert made == (1 if allowed else 0), headers

        page = admin.get("/embed/admin/settings")
        saved = admin.post("/embed/admin/settings", headers=headers, data={
            "csrf_token": csrf_of(page), "script_token": "", "group_name": f"Group {number}"})
        assert saved.status_code == (303 if allowed else 403), headers
        with tv_app.app_context():
            group = db.session.scalar(sa.select(IntegrationSettings.group_name))
        assert (group == f"Group {number}") == allowed, headers
    assert len([c for c in teamviewer.calls if c[0] == "POST"]) == sum(allowed for _, allowed in FETCH_MATRIX)


def test_12_the_launch_is_the_one_cross_site_post_accepted(app):
    cross_site = {"Sec-Fetch-Site": "cross-site", "Origin": "https://helpdesk.example"}
    client = app.test_client()
    assert client.post("/embed/widget", data={"token": make_token()}, headers=cross_site).status_code == 200
    assert client.post("/embed/admin", data={"token": make_token(role="admin", ticket=None)},
                       headers=cross_site).status_code == 303


# ==========================================================================================================
# 13, 33. A crawler's walk over every GET route: nothing changes, and every answer carries the headers
# ==========================================================================================================

PARAMETERS = {"filename": "tvwidget.css", "ticket_id": "T-1", "unknown": "no/such/endpoint", "table": "sessions"}


@pytest.fixture
def walked_app(app_factory, teamviewer, smtp):
    """A connected app in use: an open case on T-1 (status seen once), a closed one on T-2, a saved template.

    The status cache window is long, so a poll during the walk answers from it (see test_13's last part)."""
    app = app_factory(TEAMVIEWER_API_URL=teamviewer.url(), TEAMVIEWER_RETRIES=0, STATUS_CACHE_SECONDS=3600)
    connect(app)
    closed = open_widget(app, ticket=ticket_claim("T-2"))
    closed.play().close()  # closing runs what a response does once it has gone out
    closed.stop().close()
    widget = open_widget(app, ticket=ticket_claim("T-1"))
    widget.play().close()
    widget.code = widget.field("session-code")
    with widget.client.get("/embed/widget/status", query_string={"code": widget.code},
                           headers={"X-TVWidget-Credential": widget.credential}) as status:
        assert status.status_code == 200
    admin = admin_client(app)
    page = admin.get("/embed/admin/email-template")
    assert admin.post("/embed/admin/email-template", query_string={"lang": "en"}, data={
        "csrf_token": csrf_of(page), "subject": "Help with #{ticket_id}", "body": "{customer_link}"}).status_code == 303
    assert len(smtp.wait_for(2)) == 2
    app.widget, app.admin = widget, admin
    return app


def crawl(app, base_url="http://localhost"):
    """Yield (endpoint, method, response) for GET and HEAD on every route, as a signed-in crawler sees them:
    admin session cookie, widget credential and host API key all present, with and without HX-Request."""
    widget, admin = app.widget, app.admin
    queries = {"tvwidget.status": {"code": widget.code}, "tvwidget.history": {"page": "1"},
               "tvwidget_admin.email_template": {"lang": "en"}}
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods:
            continue
        path = rule.build(PARAMETERS, append_unknown=False)[1] if rule.arguments else rule.rule
        for method in ("GET", "HEAD"):
            for htmx in ({}, {"HX-Request": "true"}):
                response = admin.open(path, method=method, base_url=base_url,
                                      query_string=queries.get(rule.endpoint, {}),
                                      headers={"X-TVWidget-Credential": widget.credential} | API | htmx)
                response.close()
                yield rule.endpoint, method, response


def test_13_get_and_head_on_every_route_change_nothing(walked_app, teamviewer):
    before, seen = table_checksums(walked_app), len(teamviewer.calls)
    statuses, callers = {}, set()
    for endpoint, method, response in crawl(walked_app):
        statuses[endpoint] = response.status_code
        assert response.status_code < 500, (endpoint, method)
        if len(teamviewer.calls) != seen:
            callers.add(endpoint)
            seen = len(teamviewer.calls)
    assert changed_tables(before, table_checksums(walked_app)) == set()
    # No page calls TeamViewer on GET or HEAD (the Health page asks it only from its POST button).
    assert callers == set(), callers
    # The walk really was signed in: every page answered (launches without a token refuse, as they should).
    refused = {endpoint for endpoint, status in statuses.items() if status >= 400}
    assert refused == {"tvwidget.launch", "tvwidget_admin.launch", "tvwidget_api.not_found"}, statuses
    assert len(statuses) >= 20

    # The documented exceptions. A launch spends its single-use token and stores the host's ticket snapshot:
    before = table_checksums(walked_app)
    walked_app.test_client().get("/embed/widget", query_string={"token": make_token(ticket=ticket_claim("T-9"))})
    assert changed_tables(before, table_checksums(walked_app)) == {"tvwidget_used_launch_tokens",
                                                                   "tvwidget_tickets"}
    before = table_checksums(walked_app)
    walked_app.test_client().get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None)})
    assert changed_tables(before, table_checksums(walked_app)) == {"tvwidget_used_launch_tokens"}
    # A status poll whose shared cache is stale refreshes that cache (once per window for every poller);
    # TeamViewer says the session is still open, so nothing else changes.
    with walked_app.app_context():
        db.session.execute(sa.update(CaseTracking).values(status_checked_at=utcnow() - timedelta(hours=2)))
        db.session.commit()
    before = table_checksums(walked_app)
    widget = walked_app.widget
    widget.client.get("/embed/widget/status", query_string={"code": widget.code},
                      headers={"X-TVWidget-Credential": widget.credential})
    assert changed_tables(before, table_checksums(walked_app)) == {"tvwidget_case_tracking"}


def _csp(response) -> dict:
    directives = {}
    for part in response.headers.get("Content-Security-Policy", "").split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            directives[name] = value
    return directives


def assert_scan_headers(response, endpoint, https: bool, frameable: bool) -> None:
    """RELIABILITY checklist 9 and 33 for one response (a passive scanner's rules)."""
    label = (endpoint, response.status_code)
    csp = _csp(response)
    assert csp.get("object-src") == "'none'" and csp.get("base-uri") == "'none'", label
    assert csp.get("script-src") == "'self'" and csp.get("default-src") == "'self'", label
    assert "unsafe-inline" not in str(csp) and "unsafe-eval" not in str(csp), label
    assert "X-Frame-Options" not in response.headers, label  # checklist 9: neither kind of route sends it
    if frameable:
        assert csp["frame-ancestors"] == "https://helpdesk.example", label
    else:
        assert csp["frame-ancestors"] == "'none'", label
    assert response.headers["X-Content-Type-Options"] == "nosniff", label
    assert response.headers["Referrer-Policy"] == "no-referrer", label
    for banner in ("Server", "X-Powered-By", "X-AspNet-Version"):
        assert banner not in response.headers, label
    hsts = response.headers.get("Strict-Transport-Security")
    if https:
        max_age = int(re.search(r"max-age=(\d+)", hsts).group(1))
        assert max_age >= 365 * 24 * 3600 and "includeSubDomains" in hsts, label
    else:
        assert hsts is None, label


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_33_every_route_and_error_answer_passes_the_header_scan(walked_app, scheme):
    base = f"{scheme}://tvwidget.example"
    seen = 0
    for endpoint, _, response in crawl(walked_app, base):
        assert_scan_headers(response, endpoint, scheme == "https", endpoint.startswith("tvwidget."))
        seen += 1
    client = walked_app.test_client()
    widget = walked_app.widget
    errors = {
        "404": client.get("/no/such/page", base_url=base),
        "405": client.get("/embed/widget/play", base_url=base),
        "413": client.post("/embed/widget/stop", base_url=base, data={"note": "x" * 200_000},
                           headers={"X-TVWidget-Credential": widget.credential, "Sec-Fetch-Site": "same-origin"}),
        "401 api": client.get("/api/v1/tickets/T-1/comments", base_url=base),
        "403 widget": client.get("/embed/widget/panel", base_url=base),
    }
    for label, response in errors.items():
        assert response.status_code == int(label[:3]), label
        assert_scan_headers(response, label, scheme == "https", frameable=label == "413" or label == "403 widget")
    assert seen >= 80


def test_13_head_on_the_revoke_page_only_asks(tv_app):
    """HEAD /embed/admin/revoke once ran the revoke itself (it was not GET, so it fell to the POST branch)."""
    admin = admin_client(tv_app)
    before = table_checksums(tv_app)
    assert admin.head("/embed/admin/revoke").status_code == 200
    assert table_checksums(tv_app) == before
    with tv_app.app_context():
        assert db.session.get(IntegrationSettings, 1).token_ciphertext is not None


# ==========================================================================================================
# 14. Helpdesk data is inert text in widget fragments and e-mails
# ==========================================================================================================

class Elements(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML document."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)

    def shape(self):
        """The document's skeleton: tags and attribute names, not values."""
        return [(tag, sorted(attrs)) for tag, attrs in self.tags]


HOSTILE = {
    "ticket": '<img src=x onerror=alert(1)>{{7*7}}',
    "subject": '<div hx-get="https://evil.example/x" hx-trigger="load">${x}</div> {{7*7}}',
    "requester": '<img src=x onerror=alert(2)> {customer_link} ${x}',
    "agent": '<b hx-post="https://evil.example/y">Eve</b> {{config}}',
    "note": '<script>alert(3)</script><a href="javascript:alert(4)" hx-boost="true">x</a> ${x} {{7*7}}',
}
BENIGN = {key: f"plain {key} text" for key in HOSTILE}


def _widget_documents(app, values: dict, smtp) -> tuple[list[str], object]:
    """Drive a widget through its states with ``values`` as the helpdesk's data; return its HTML and the e-mail."""
    smtp.messages.clear()
    widget = open_widget(app, name=values["agent"], ticket=ticket_claim(
        values["ticket"], subject=values["subject"],
        requester={"name": values["requester"], "email": "john.doe@example.com"}))
    documents = [widget.html]
    credential = {"X-TVWidget-Credential": widget.credential, "HX-Request": "true"}
    documents.append(widget.play().text)
    documents.append(widget.client.get("/embed/widget/stop", headers=credential).text)
    documents.append(widget.post("stop", {"note": values["note"], "outcome": "resolved"}).text)
    documents.append(widget.client.get("/embed/widget/history", headers=credential).text)
    (envelope,) = smtp.wait_for(1)
    return documents, email.message_from_bytes(envelope.content, policy=policy.default)


def _assert_inert(hostile: Elements, benign: Elements, where: str) -> None:
    assert hostile.shape() == benign.shape(), where  # not one element or attribute more
    for tag, attrs in hostile.tags:
        assert tag != "img" and (tag != "script" or attrs.get("src", "").startswith("/static/tvwidget/")), where
        for name, value in attrs.items():
            assert not name.startswith("on"), where
            if name == "data-tvwidget-events":
                # Not markup: JSON data for the host page (H1), whose strings it receives as event.detail
                # (tvwidget's comment quotes the note). The widget's script only parses and posts it.
                assert all(isinstance(item, str | None) for event in json.loads(value)
                           for item in event["detail"].values()), where
                continue
            assert "evil.example" not in (value or "") and "javascript:" not in (value or ""), (where, name)


def test_14_helpdesk_data_renders_as_inert_text_in_the_widget_and_the_email(tv_app, smtp):
    hostile_pages, hostile_mail = _widget_documents(tv_app, HOSTILE, smtp)
    benign_pages, benign_mail = _widget_documents(tv_app, BENIGN, smtp)
    shown = ""
    for number, (hostile, benign) in enumerate(zip(hostile_pages, benign_pages)):
        parsed = Elements(hostile)
        _assert_inert(parsed, Elements(benign), f"widget document {number}")
        shown += "".join(parsed.text)
    for value in (HOSTILE["ticket"], HOSTILE["agent"], HOSTILE["note"]):
        assert value in shown  # shown to the agent, as the very text the helpdesk sent
    html_part = hostile_mail.get_body(("html",)).get_content()
    _assert_inert(Elements(html_part), Elements(benign_mail.get_body(("html",)).get_content()), "e-mail")
    text_part = hostile_mail.get_body(("plain",)).get_content()
    assert HOSTILE["requester"] in text_part and HOSTILE["requester"] in "".join(Elements(html_part).text)
    assert hostile_mail["Subject"].endswith(HOSTILE["subject"])
    assert "49" not in hostile_mail["Subject"] and "{7*7}" not in text_part.replace("{{7*7}}", "")


def test_14_the_htmx_configuration_forbids_eval_foreign_requests_and_history_caching(tv_app, smtp):
    admin = admin_client(tv_app)
    pages = [open_widget(tv_app).html, admin.get("/embed/admin/settings").text,
             admin.get("/embed/admin/email-template").text,
             admin.get("/embed/admin/reports/teamviewer-sessions").text]
    for page in pages:
        metas = [attrs for tag, attrs in Elements(page).tags if tag == "meta" and attrs.get("name") == "htmx-config"]
        assert len(metas) == 1
        config = json.loads(metas[0]["content"])
        assert config["selfRequestsOnly"] is True and config["allowEval"] is False
        assert config["allowScriptTags"] is False and config["historyCacheSize"] == 0
        assert not any(tag == "script" and "src" not in attrs for tag, attrs in Elements(page).tags)


# ==========================================================================================================
# 16. Template injection saved by an admin is never evaluated
# ==========================================================================================================

REFUSED_AT_SAVE = ["{% for x in y %}{% endfor %}", "{0.__class__}", "${__class__}", "${x}", "{ticket_id.__class__}",
                   "{config}", "{self}", "{ticket_id!r}", "{ticket_id:>99}", "{{7*7}", "{supporter_link}"]
LITERAL = ["{{7*7}}", "{{config}}", "{{config.SECRET_KEY}}", "$a.__init__", "$ticket_id", "%(ticket_id)s",
           "{{ request.application.__globals__ }}"]


def test_16_template_payloads_are_refused_at_save_or_stay_literal_text(tv_app, smtp):
    admin = admin_client(tv_app)
    for payload in REFUSED_AT_SAVE:
        page = admin.get("/embed/admin/email-template")
        for fields in ({"subject": f"Hi {payload}", "body": "{customer_link}"},
                       {"subject": "Hi", "body": f"{{customer_link}} {payload}"}):
            response = admin.post("/embed/admin/email-template", query_string={"lang": "en"},
                                  data={"csrf_token": csrf_of(page)} | fields)
            assert response.status_code == 422 and "Nothing was saved" in response.text, payload
    with tv_app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM tvwidget_email_templates")) == 0

    page = admin.get("/embed/admin/email-template")
    saved = admin.post("/embed/admin/email-template", query_string={"lang": "en"}, data={
        "csrf_token": csrf_of(page), "subject": " ".join(LITERAL), "body": "\n".join(LITERAL + ["{customer_link}"])})
    assert saved.status_code == 303
    open_widget(tv_app).play()
    (envelope,) = smtp.wait_for(1)
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    everything = envelope.content.decode("utf-8", "replace") + text + message.get_body(("html",)).get_content()
    for piece in LITERAL:  # {{x}} is how a literal brace is written: it arrives as {x}, never evaluated
        literal = piece.replace("{{", "{").replace("}}", "}")
        assert literal in message["Subject"] and literal in text, piece
    assert "49" not in message["Subject"]
    for secret in ("SECRET_KEY", "EMBED_SECRET", "HOST_API_KEY", "ENCRYPTION_KEYS"):
        assert tv_app.config[secret] not in everything
    assert "<Config" not in everything and "__globals__" not in text.replace(LITERAL[-1].replace("{{", "{")
                                                                            .replace("}}", "}"), "")


# ==========================================================================================================
# 19. Both MIME parts, golden
# ==========================================================================================================

GOLDEN = Path(__file__).parent / "data" / "golden"
GOLDEN_VALUES = {
    "requester_name": 'Ann <b>"O\'Neil"</b> & Co',
    "requester_email": "ann@example.com",
    "ticket_id": "T-42",
    "ticket_subject": "Printer <script>alert(1)</script> & {ticket_id}",
    "technician_name": "Alex Morgan",
    "technician_email": "alex@helpdesk.example",
    "session_code": "s123-456-789",
    "customer_link": "https://get.teamviewer.com/v15/s123456789?x=1&y=<2>",
    "valid_until": "25 Nov 2026, 10:00:00 (UTC)",
    "company_name": "Example & Sons",
}


@pytest.mark.parametrize("language", ["en", "ja"])
def test_19_the_invitation_parts_match_their_golden_files(app, language):
    """The HTML part escapes every value; the text part is raw but control-free; the button is TeamViewer's
    https link.  TVWIDGET_UPDATE_GOLDEN=1 rewrites the files (review the diff before committing it)."""
    with app.test_request_context():
        rendered = mail.render_invitation(mail.default_template(language), GOLDEN_VALUES)
    parts = {"subject.txt": rendered.subject + "\n", "txt": rendered.text, "html": rendered.html}
    for suffix, content in parts.items():
        path = GOLDEN / f"invitation-{language}.{suffix}"
        if os.environ.get("TVWIDGET_UPDATE_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        assert content == path.read_text(encoding="utf-8"), f"{path.name} differs from its golden file"
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", rendered.text)
    assert "<script>" not in rendered.html and "<b>" not in rendered.html
    assert 'href="https://get.teamviewer.com/v15/s123456789?x=1&amp;y=&lt;2&gt;"' in rendered.html


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
    app = app_factory(TEAMVIEWER_API_URL=teamviewer.url(), TEAMVIEWER_RETRIES=0)
    canary = "sandbox-canary-at-rest-Qx93vT"
    admin = admin_client(app)
    page = admin.get("/embed/admin/settings")
    assert admin.post("/embed/admin/settings", data={"csrf_token": csrf_of(page), "script_token": canary,
                                                     "group_name": "BOSS"}).status_code == 303
    open_widget(app).play()  # the token is used (decrypted) too
    with app.app_context():
        ciphertext = db.session.get(IntegrationSettings, 1).token_ciphertext
        db.session.remove()
    raw = _database_bytes(app)
    assert ciphertext.encode() in raw  # the dump or file really holds the row...
    assert canary.encode() not in raw and canary.encode("utf-16-le") not in raw  # ...but never the token


# ==========================================================================================================
# 30 (and 22). TeamViewer made the session, then the local commit failed
# ==========================================================================================================

FAIL_OPEN = {
    "sqlite": ["CREATE TRIGGER tvwidget_test_fail_open BEFORE UPDATE OF state ON tvwidget_service_cases "
               "WHEN NEW.state = 'open' BEGIN SELECT RAISE(ABORT, 'injected: the commit after TeamViewer failed'); "
               "END"],
    # SQLSTATE 08006 (connection failure): what a database lost between the call and the commit raises.
    "postgresql": ["CREATE FUNCTION tvwidget_test_fail_open() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "RAISE EXCEPTION 'injected: the commit after TeamViewer failed' USING ERRCODE = '08006'; END $$",
                   "CREATE TRIGGER tvwidget_test_fail_open BEFORE UPDATE OF state ON tvwidget_service_cases "
                   "FOR EACH ROW WHEN (NEW.state = 'open') EXECUTE FUNCTION tvwidget_test_fail_open()"],
}


def _trigger(app, install: bool) -> None:
    with app.app_context(), db.engine.begin() as connection:
        dialect = connection.dialect.name
        if install:
            for statement in FAIL_OPEN[dialect]:
                connection.exec_driver_sql(statement)
        else:
            connection.exec_driver_sql("DROP TRIGGER tvwidget_test_fail_open" + (
                " ON tvwidget_service_cases" if dialect == "postgresql" else ""))


@pytest.mark.parametrize("next_step", ["reconcile", "press play again"])
def test_30_a_lost_commit_after_teamviewer_ends_with_one_live_session_and_one_case(app_factory, teamviewer, smtp,
                                                                                    next_step):
    app = app_factory(TEAMVIEWER_API_URL=teamviewer.url(), TEAMVIEWER_RETRIES=0, PROPAGATE_EXCEPTIONS=False)
    connect(app)
    widget = open_widget(app)
    _trigger(app, install=True)
    response = widget.play()
    assert response.status_code in (500, 503) and "Traceback" not in response.text
    _trigger(app, install=False)
    assert [s["state"] for s in teamviewer.sessions.values()] == ["Open"]  # TeamViewer did make it
    with app.app_context():
        (case,) = db.session.scalars(sa.select(ServiceCase)).all()
        assert case.state == CaseState.CREATING and case.code is None  # the intent row, committed before the call
        # Checklist 22: the invitation was in the rolled-back transaction: no outbox row, no mail.
        assert db.session.scalar(sa.select(sa.func.count()).select_from(EmailMessage)) == 0
        # Time passes beyond the client's timeouts (the row's request is certainly over).
        case.opened_at -= timedelta(minutes=5)
        db.session.commit()
    assert smtp.messages == []
    reloaded = open_widget(app)
    assert reloaded.state() == "idle"  # a stuck "creating" is offered as retryable, not as a spinner

    if next_step == "press play again":
        reloaded.play()
        assert reloaded.state() == "open"
    result = app.test_cli_runner().invoke(args=["tvwidget", "reconcile"])
    assert result.exit_code == 0, result.output
    again = app.test_cli_runner().invoke(args=["tvwidget", "reconcile"])
    assert "adopted 0, failed 0, closed at TeamViewer 0" in again.output

    live = [code for code, s in teamviewer.sessions.items() if s["state"] == "Open"]
    with app.app_context():
        active = db.session.scalars(sa.select(ServiceCase).where(ServiceCase.state.in_(CaseState.ACTIVE))).all()
        assert [case.code for case in active] == live and len(live) == 1
    expected = "adopted 1, failed 0, closed at TeamViewer 0" if next_step == "reconcile" else \
        "adopted 0, failed 0, closed at TeamViewer 1"
    assert expected in result.output
    assert open_widget(app).field("session-code") == live[0]


# ==========================================================================================================
# 31. The partial unique index under racing writers
# ==========================================================================================================

def test_31_racing_inserts_leave_one_active_case_and_the_losers_get_integrity_errors(app):
    with app.app_context():
        db.session.add(Ticket(id="T-1"))
        db.session.commit()
    barrier = threading.Barrier(8)
    outcomes = []

    def insert(number):
        with app.app_context():
            barrier.wait(10)
            try:
                with db.engine.begin() as connection:  # no application check: the database alone decides
                    connection.execute(sa.insert(ServiceCase.__table__).values(
                        ticket_id="T-1", state=(CaseState.CREATING, CaseState.OPEN)[number % 2],
                        idempotency_key=f"race-{number}", group_name="BOSS", opened_at=utcnow(),
                        opened_by_id="agent-1", opened_by_name="", opened_by_email=""))
                outcomes.append("inserted")
            except sa.exc.IntegrityError:
                outcomes.append("IntegrityError")
            except sa.exc.OperationalError as exc:  # "database is locked" would land here
                outcomes.append(f"OperationalError: {exc.orig}")

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["IntegrityError"] * 7 + ["inserted"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServiceCase)) == 1


# ==========================================================================================================
# 32. Travel past the expiry
# ==========================================================================================================

def test_32_after_the_expiry_the_case_is_over_everywhere_and_teamviewer_hears_only_the_close(app_factory, smtp):
    fake = FakeTeamViewer(valid_for=timedelta(minutes=30)).start()
    try:
        with freeze_time("2030-03-01 09:00:00", tick=True) as clock:
            app = app_factory(TEAMVIEWER_API_URL=fake.url(), TEAMVIEWER_RETRIES=0)
            connect(app)
            widget = open_widget(app)
            widget.play()
            code = widget.field("session-code")
            api = app.test_client()
            assert api.post("/api/v1/tickets/T-1/close", headers=API).status_code == 409

            clock.move_to("2030-03-01 09:30:01")  # one second past valid_until
            before = len(fake.calls)
            status = widget.client.get("/embed/widget/status", query_string={"code": code},
                                       headers={"X-TVWidget-Credential": widget.credential, "HX-Request": "true"})
            assert 'data-tvwidget-state="expired"' in status.text and 'hx-trigger="every' not in status.text
            fresh = open_widget(app)
            assert fresh.state() == "expired" and 'data-tvwidget-action="play"' in fresh.html
            assert api.get("/api/v1/tickets/T-1/service-case", headers=API).status_code == 404
            assert api.post("/api/v1/tickets/T-1/close", headers=API).status_code == 200  # the block is released
            assert fake.calls[before:] == []  # the expiry itself needs no TeamViewer call

            result = app.test_cli_runner().invoke(args=["tvwidget", "reconcile"])
            assert "closed at TeamViewer 1" in result.output, result.output
            assert fake.sessions[code]["state"] == "Closed"
            assert [c for c in fake.calls[before:] if code in c[1]] == [("PUT", f"/sessions/{code}")]

            clock.move_to("2030-03-01 09:50:00")
            after_close = len(fake.calls)
            widget.client.get("/embed/widget/status", query_string={"code": code},
                              headers={"X-TVWidget-Credential": widget.credential})
            open_widget(app)
            app.test_cli_runner().invoke(args=["tvwidget", "expire-cases"])
            app.test_cli_runner().invoke(args=["tvwidget", "reconcile"])
            assert [c for c in fake.calls[after_close:] if code in c[1]] == []  # nothing more about this case
        comments = api.get("/api/v1/tickets/T-1/comments", headers=API).get_json()["comments"]
        assert [c["kind"] for c in comments] == ["expired"]
    finally:
        fake.server.clear()
        fake.server.stop()


# ==========================================================================================================
# 7, 33. Behind gunicorn: no version banner, HSTS when the proxy says HTTPS, no token in the server's logs
# ==========================================================================================================

@pytest.mark.slow
def test_7_33_under_gunicorn_the_banner_hsts_and_the_logs_are_clean(database_url, tmp_path):
    env = os.environ | {
        "TVWIDGET_ENV": "development", "TVWIDGET_SQLALCHEMY_DATABASE_URI": database_url,
        "TVWIDGET_EMBED_SECRET": EMBED_SECRET, "TVWIDGET_HOST_API_KEY": HOST_API_KEY,
        "TVWIDGET_FRAME_ANCESTORS": "https://helpdesk.example", "PYTHONPATH": str(ROOT),
    }
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)
    port, log = free_port(), tmp_path / "gunicorn.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "--access-logfile", str(log),
         "--error-logfile", str(log), "--log-level", "debug", "wsgi:app"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    tokens = [make_token(), make_token(role="admin", ticket=None), make_token(secret="wrong-secret-" + "x" * 40)]
    try:
        wait_for_http(base + "/healthz", why=log.read_text)
        answers = [requests.get(base + path, params={"token": token}, timeout=10, allow_redirects=False)
                   for path, token in zip(("/embed/widget", "/embed/admin", "/embed/widget"), tokens)]
        assert [a.status_code for a in answers] == [200, 303, 401]
        answers += [requests.get(base + "/healthz", timeout=10), requests.get(base + "/no/such/page", timeout=10)]
        proxied = requests.get(base + "/healthz", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    finally:
        process.terminate()
        process.wait(15)
    for answer in answers:
        assert answer.headers.get("Server") == "gunicorn"  # the name, without a version
        assert "X-Powered-By" not in answer.headers and "Strict-Transport-Security" not in answer.headers
        assert "frame-ancestors" in answer.headers["Content-Security-Policy"]
    # TLS ending at a proxy on this machine: gunicorn trusts its X-Forwarded-Proto, so HSTS is sent.
    assert proxied.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    written = log.read_text()
    assert "GET /embed/widget?token=[redacted]" in written  # the access log has the request lines...
    for token in tokens:  # ...and never a launch token, nor its signature
        assert token not in written and token.split(".")[2] not in written
        assert all(token not in answer.text for answer in answers)
