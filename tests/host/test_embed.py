"""The embed script's server side: how embed.js is served, which host origins the widget accepts,
and the events a response announces.  The browser side is tests/host/test_browser_embed.py."""
import html
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tvwidget.extensions import db
from tvwidget.host import tokens as host
from tvwidget.storage.models import ServiceCase, utcnow
from tvwidget.web.widget import EMBED_SCRIPT_CACHE, EMBED_SCRIPT_VERSIONED_CACHE

from ..conftest import Widget, connect, make_token

HOST_ORIGIN_RE = re.compile(r'data-tvwidget-host-origin="([^"]*)"')
EVENTS_RE = re.compile(r"data-tvwidget-events='([^']*)'")


def events_of(page: str) -> list[dict]:
    match = EVENTS_RE.search(page)
    return json.loads(html.unescape(match.group(1))) if match else []


def embed_launch(app, origin, header=None):
    """POST a launch as embed.js does; return the Widget (whatever the outcome) and the response."""
    client = app.test_client()
    headers = {"Origin": header} if header else {}
    response = client.post("/embed/widget", data={"token": make_token(), "host_origin": origin}, headers=headers)
    return Widget(client, response.text), response


def test_embed_script_is_javascript_cached_long_and_revalidated_by_etag(client):
    plain = client.get("/embed/embed.js")
    assert plain.status_code == 200
    assert plain.mimetype == "text/javascript" and plain.headers["X-Content-Type-Options"] == "nosniff"
    assert plain.headers["Cache-Control"] == EMBED_SCRIPT_CACHE == "public, max-age=3600, stale-while-revalidate=86400"
    etag = plain.headers["ETag"]
    assert plain.data == (Path(__file__).resolve().parents[2] / "static" / "embed.js").read_bytes()
    assert len(plain.data) < 8 * 1024  # small: every ticket view of every host page loads it
    # Unchanged: a 304 without the body.
    again = client.get("/embed/embed.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    # Its version (the ETag) in the URL: cached for a year; another version is not the current one.
    version = etag.strip('"')
    versioned = client.get(f"/embed/embed.js?v={version}")
    assert versioned.headers["Cache-Control"] == EMBED_SCRIPT_VERSIONED_CACHE == "public, max-age=31536000, immutable"
    assert versioned.data == plain.data
    assert client.get("/embed/embed.js?v=0000").headers["Cache-Control"] == EMBED_SCRIPT_CACHE


def test_the_demo_and_helpers_name_the_versioned_script(app):
    from tvwidget.web.widget import embed_script_path

    with app.test_request_context():
        path = embed_script_path()
    etag = app.test_client().get("/embed/embed.js").headers["ETag"].strip('"')
    assert path == f"/embed/embed.js?v={etag}"


@pytest.mark.parametrize("ancestors, origin, header, accepted", [
    ("https://helpdesk.example", "https://helpdesk.example", None, True),
    ("https://helpdesk.example", "https://helpdesk.example:443", None, True),
    ("https://helpdesk.example", "https://helpdesk.example:8443", None, False),
    ("https://helpdesk.example", "http://helpdesk.example", None, False),
    ("https://helpdesk.example", "https://evil.example", None, False),
    ("https://helpdesk.example", "https://helpdesk.example.evil.example", None, False),
    ("http://localhost:*", "http://localhost:5000", None, True),
    ("http://localhost:*", "http://localhost", None, True),
    ("http://localhost:*", "http://127.0.0.1:5000", None, False),
    ("https://*.example.com", "https://desk.example.com", None, True),
    ("https://*.example.com", "https://example.com", None, False),
    ("https://*.example.com", "https://desk.example.community", None, False),
    ("'self'", "http://localhost", None, True),  # the test client's own origin
    ("https://a.example https://helpdesk.example", "https://helpdesk.example", None, True),
    ("https://helpdesk.example", "https://helpdesk.example/path", None, False),
    ("https://helpdesk.example", "javascript:alert(1)", None, False),
    ("https://helpdesk.example", "", None, False),
    # The browser's Origin header must name the same page as the form (or be withheld: "null").
    ("https://helpdesk.example", "https://helpdesk.example", "https://evil.example", False),
    ("https://helpdesk.example", "https://helpdesk.example", "null", True),
    ("https://helpdesk.example", "https://helpdesk.example", "https://helpdesk.example", True),
])
def test_the_widget_talks_only_to_a_host_origin_frame_ancestors_allow(app_factory, ancestors, origin, header,
                                                                      accepted):
    app = app_factory(FRAME_ANCESTORS=ancestors)
    connect(app)
    widget, response = embed_launch(app, origin, header)
    assert response.status_code == 200 and widget.state() == "idle"
    shown = HOST_ORIGIN_RE.search(widget.html)
    with app.app_context():
        vouched = host.read_credential(widget.credential).host_origin
    if accepted:
        assert shown.group(1) == origin.removesuffix(":443") or shown.group(1) == origin
        assert vouched == shown.group(1)
    else:
        assert shown is None and vouched is None


def test_the_host_origin_travels_in_the_signed_credential_not_in_what_the_browser_sends(connected_app):
    widget, _ = embed_launch(connected_app, "https://helpdesk.example")
    panel = widget.client.get("/embed/widget/panel", headers={
        "X-TVWidget-Credential": widget.credential, "HX-Request": "true", "Sec-Fetch-Site": "same-origin"})
    assert HOST_ORIGIN_RE.search(panel.text).group(1) == "https://helpdesk.example"
    # A plain launch (GET, no embed.js) names no host, and its later fragments name none either.
    plain = widget.client.get("/embed/widget", query_string={"token": make_token()})
    assert HOST_ORIGIN_RE.search(plain.text) is None
    later = Widget(widget.client, plain.text).post("panel", host_origin="https://helpdesk.example")
    assert HOST_ORIGIN_RE.search(later.text) is None


def test_play_stop_and_resend_announce_their_events(connected_app, smtp):
    widget, _ = embed_launch(connected_app, "https://helpdesk.example")
    assert events_of(widget.html) == []  # a launch announces nothing
    widget.play()
    code = widget.field("session-code")
    assert events_of(widget.html) == [
        {"event": "case-opened", "detail": {"ticketId": "T-1", "code": code, "state": "open"}},
        {"event": "email-status", "detail": {"ticketId": "T-1", "code": code, "state": "open", "emailStatus": "sent"}},
    ]
    widget.play()  # the second press shows the case the first one opened: no new event
    assert events_of(widget.html) == []
    widget.post("resend")
    assert [e["event"] for e in events_of(widget.html)] == ["email-status"]
    widget.stop()
    closed = events_of(widget.html)
    assert [e["event"] for e in closed] == ["case-closed"]
    assert closed[0]["detail"]["state"] == "closed" and closed[0]["detail"]["code"] == code
    assert closed[0]["detail"]["comment"].startswith(f"TeamViewer service case {code} closed by Alex Morgan.")


def test_spent_or_expired_credentials_and_tokens_ask_the_host_for_a_new_token(connected_app):
    token = make_token()
    client = connected_app.test_client()
    first = client.post("/embed/widget", data={"token": token, "host_origin": "https://helpdesk.example"})
    assert events_of(first.text) == []
    again = client.post("/embed/widget", data={"token": token, "host_origin": "https://helpdesk.example"})
    assert again.status_code == 401
    assert HOST_ORIGIN_RE.search(again.text).group(1) == "https://helpdesk.example"
    [needed] = events_of(again.text)
    assert needed["event"] == "token-needed" and "already used" in needed["detail"]["message"]
    # A fragment request with a bad credential: the same event (the widget's script knows the host already).
    refused = client.get("/embed/widget/panel", headers={"X-TVWidget-Credential": "forged", "HX-Request": "true"})
    assert refused.status_code == 403 and events_of(refused.text)[0]["event"] == "token-needed"
    # A request refused for another reason asks for no token.
    widget = Widget(client, first.text)
    cross = widget.post("play", **{"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403 and events_of(cross.text) == []


def test_replace_announces_the_old_case_closed_and_the_new_one_opened(connected_app, smtp):
    widget, _ = embed_launch(connected_app, "https://helpdesk.example")
    widget.play()
    old_code = widget.field("session-code")
    values = json.loads(html.unescape(re.search(
        r'data-tvwidget-action="replace"\s+hx-post="[^"]+"\s+hx-vals=\'([^\']+)\'', widget.html).group(1)))
    assert widget.post("replace", values).status_code == 200
    new_code = widget.field("session-code")
    announced = events_of(widget.html)
    assert [(e["event"], e["detail"]["code"], e["detail"]["state"]) for e in announced] == [
        ("case-closed", old_code, "closed"), ("case-opened", new_code, "open"), ("email-status", new_code, "open")]
    assert "Replaced by a new service case" in announced[0]["detail"]["comment"]


def test_a_stop_that_finds_the_case_expired_announces_the_expiry(connected_app, smtp):
    widget, _ = embed_launch(connected_app, "https://helpdesk.example")
    widget.play()
    code = widget.field("session-code")
    with connected_app.app_context():
        db.session.execute(sa.update(ServiceCase).values(valid_until=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    refused = widget.stop()
    assert refused.status_code == 409 and widget.state() == "expired"
    [expired] = events_of(widget.html)
    assert expired["event"] == "case-expired" and expired["detail"]["code"] == code
    assert expired["detail"]["comment"].startswith(f"TeamViewer service case {code} expired")
    # Refused for another reason (nothing left to stop): no event.
    widget.stop()
    assert events_of(widget.html) == []
