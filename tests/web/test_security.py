"""Security headers on every route (reliability checklist 9, 10, 33)."""
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from tvwidget.extensions import db
from tvwidget.storage.models import CaseTracking, IntegrationSettings, ServiceCase, utcnow

from ..conftest import EMBED_SECRET, HOST_API_KEY, Widget, connect, free_port, make_token, open_widget, ticket_claim
from ..helpers import API, admin_client, changed_tables, csrf, table_checksums
from ..live import wait_for_http

ROOT = Path(__file__).resolve().parents[2]


def _routes(app):
    for rule in app.url_map.iter_rules():
        methods = rule.methods - {"HEAD", "OPTIONS"}
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "static.css" if m.group(1) == "filename" else "x", rule.rule)
        if rule.endpoint.endswith("static"):
            path = path.replace("static.css", "tvwidget.css")
        for method in sorted(methods):
            yield rule.endpoint, method, path


def test_every_route_sends_security_headers(app):
    client = app.test_client()
    seen = 0
    for endpoint, method, path in _routes(app):
        response = client.open(path, method=method)
        response.close()
        assert response.status_code < 500, (endpoint, response.status_code)
        csp = response.headers.get("Content-Security-Policy", "")
        assert "object-src 'none'" in csp and "base-uri 'none'" in csp and "frame-ancestors" in csp, endpoint
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, endpoint
        assert response.headers["X-Content-Type-Options"] == "nosniff", endpoint
        assert response.headers["Referrer-Policy"] == "no-referrer", endpoint
        seen += 1
    assert seen >= 8


def test_widget_may_be_framed_by_the_helpdesk_only(app, client):
    response = client.get("/embed/widget", query_string={"token": make_token()})
    assert "frame-ancestors https://helpdesk.example" in response.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in response.headers


@pytest.mark.parametrize("path", ["/embed/admin", "/api/v1/tickets/x/comments"])
def test_other_pages_refuse_framing(client, path):
    response = client.get(path)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in response.headers  # checklist 9: CSP alone, on every route


def test_htmx_is_vendored_and_configured_safely(client):
    html = client.get("/embed/widget", query_string={"token": make_token()}).text
    assert re.search(r'src="/static/tvwidget/vendor/htmx-2\.0\.\d+\.min\.js"', html)
    assert '"selfRequestsOnly": true' in html and '"allowEval": false' in html
    assert "<script>" not in html and " on" + "click=" not in html
    with client.get("/static/tvwidget/vendor/htmx-2.0.11.min.js") as script:
        assert script.status_code == 200


def test_hsts_over_https(client):
    response = client.get("/embed/widget", base_url="https://tvwidget.example")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_oversized_request_is_refused(connected_app, launch):
    widget = launch()
    response = widget.post("play", {"idempotency_key": "x" * (200 * 1024)})
    assert response.status_code == 413


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
    """reliability checklist 10, for one Set-Cookie header."""
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
                       data={"csrf_token": csrf(page), "subject": "Hi {ticket_id}", "body": "{customer_link}"}))
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
            "csrf_token": csrf(page), "script_token": "", "group_name": f"Group {number}"})
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
    app = app_factory(TEAMVIEWER_API_URL=teamviewer.url, TEAMVIEWER_RETRIES=0, STATUS_CACHE_SECONDS=3600)
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
        "csrf_token": csrf(page), "subject": "Help with #{ticket_id}", "body": "{customer_link}"}).status_code == 303
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
    """reliability checklist 9 and 33 for one response (a passive scanner's rules)."""
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
                   for path, token in zip(("/embed/widget", "/embed/admin", "/embed/widget"), tokens, strict=True)]
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
