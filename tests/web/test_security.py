"""Security headers on every route (SPEC "what users expect"; RELIABILITY checklist 9, 10, 33)."""
import re

import pytest

from ..conftest import make_token


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
