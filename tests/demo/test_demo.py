"""The demo (`make run`) over real HTTP: host page, cross-site widget, sandbox, outbox, close guard (issue 2).

The server (the ``demo`` fixture in conftest) is built the way ``tvwidget.demo.host.main()`` builds it: the
tvwidget app in demo mode with the TeamViewer sandbox mounted at ``/sandbox``
of the same server, which the widget reaches over HTTP.
"""
import html
import json
import re
from urllib.parse import urlsplit

import requests

from ..helpers import csrf

TICKET = "DEMO-1001"
HX_HEADERS_RE = re.compile(r"hx-headers='([^']*)'")
HX_VALS_RE = re.compile(r"""data-tvwidget-action="play"[^>]*hx-vals='([^']*)'""")
STATE_RE = re.compile(r'data-tvwidget-state="([a-z]+)"')
CODE_RE = re.compile(r'data-tvwidget-field="session-code">([^<]+)<')
CUSTOMER_LINK_RE = re.compile(r'data-tvwidget-field="customer-link" href="([^"]+)"')
EMBED_SCRIPT_RE = re.compile(r'<script src="([^"]+/embed/embed\.js\?v=[0-9a-f]+)" async>')
EMBED_TOKEN_RE = re.compile(r'data-tvwidget-embed data-tvwidget-token="([^"]+)"')
CLOSE_RESULT_RE = re.compile(r'data-demo-close-status="(\d+)">([^<]*)<')


def _widget_call(http, url, fragment, data):
    """POST the way htmx does from inside the widget: credential header, HX-Request, same-origin fetch."""
    credential = json.loads(html.unescape(HX_HEADERS_RE.search(fragment).group(1)))
    return http.post(url, data=data, timeout=10, allow_redirects=False, headers={
        **credential, "HX-Request": "true", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"})


def _close_ticket(host, base):
    """Press the demo page's close button (a CSRF-protected form) and return the page it redirects to."""
    page = host.get(f"{base}/demo/ticket/{TICKET}", timeout=10)
    token = csrf(page)
    response = host.post(f"{base}/demo/ticket/{TICKET}/close", data={"csrf_token": token}, timeout=10)
    assert response.status_code == 200 and response.history and response.history[0].status_code == 303
    status, message = CLOSE_RESULT_RE.search(response.text).groups()
    return int(status), html.unescape(message), response.text


def test_demo_plays_mails_guards_and_stops_over_http(demo):
    host_base, widget_base = demo
    with requests.Session() as host, requests.Session() as frame:
        start = host.get(host_base + "/", timeout=10)
        assert start.status_code == 200
        assert start.history and start.history[0].status_code in (302, 303)
        assert urlsplit(start.url).path == f"/demo/ticket/{TICKET}"
        assert "Outlook crashes on start" in start.text
        assert "frame-src " + widget_base in start.headers["Content-Security-Policy"]

        # The page embeds the widget with tvwidget's script from the other site and a freshly signed
        # launch token, which the script POSTs into the frame as the page's origin (embed.js).
        script = html.unescape(EMBED_SCRIPT_RE.search(start.text).group(1))
        assert script.startswith(widget_base + "/embed/embed.js?v="), script
        assert f"script-src 'self' {widget_base}" in start.headers["Content-Security-Policy"]
        assert frame.get(script, timeout=10).status_code == 200
        token = html.unescape(EMBED_TOKEN_RE.search(start.text).group(1))
        widget = frame.post(widget_base + "/embed/widget", data={"token": token, "host_origin": host_base},
                            headers={"Origin": host_base}, timeout=10)
        assert widget.status_code == 200
        csp = widget.headers["Content-Security-Policy"]
        assert "frame-ancestors" in csp and "http://localhost:*" in csp
        assert "X-Frame-Options" not in widget.headers
        assert STATE_RE.search(widget.text).group(1) == "idle", widget.text  # the sandbox is connected
        assert 'data-tvwidget-action="play"' in widget.text
        assert f'data-tvwidget-host-origin="{host_base}"' in widget.text  # the demo's FRAME_ANCESTORS allow it

        # Play, as htmx sends it from the iframe (no cookies needed).
        key = json.loads(html.unescape(HX_VALS_RE.search(widget.text).group(1)))["idempotency_key"]
        played = _widget_call(frame, widget_base + "/embed/widget/play", widget.text, {"idempotency_key": key})
        assert played.status_code == 200, played.text
        assert "<html" not in played.text.lower()  # a fragment for htmx to swap in
        assert STATE_RE.search(played.text).group(1) == "open", played.text
        code = CODE_RE.search(played.text).group(1)
        assert re.fullmatch(r"s\d{3}-\d{3}-\d{2,3}", code), code
        customer_link = html.unescape(CUSTOMER_LINK_RE.search(played.text).group(1))
        assert customer_link.startswith(widget_base + "/sandbox/join/"), customer_link
        assert 'data-tvwidget-field="supporter-link"' in played.text
        print("played:", code, customer_link)
        assert 'data-tvwidget-field="email-status" data-status="sent"' in played.text, played.text
        # The demo's agent is in the sandbox's directory, so the case is assigned to their TeamViewer.
        assert 'data-tvwidget-field="assignee" data-userid="u2000001"' in played.text, played.text

        # The customer link really opens the sandbox's join page.
        joined = frame.get(customer_link, timeout=10)
        assert joined.status_code == 200 and "text/html" in joined.headers["Content-Type"]

        # The invitation is on the demo's "Sent mail" page, with the customer link.
        mail = host.get(host_base + "/demo/mail", timeout=10)
        assert mail.status_code == 200
        assert "john.doe@example.com" in mail.text
        assert customer_link in html.unescape(mail.text), mail.text

        # The helpdesk cannot close the ticket while the case is open.
        status, message, _page = _close_ticket(host, host_base)
        print("close while open:", status, message)
        assert status == 409 and code in message, (status, message)

        # Stop: the case closes and its times land on the ticket as a comment.
        stopped = _widget_call(frame, widget_base + "/embed/widget/stop", played.text, {})
        assert stopped.status_code == 200, stopped.text
        assert STATE_RE.search(stopped.text).group(1) == "idle", stopped.text
        page = host.get(f"{host_base}/demo/ticket/{TICKET}", timeout=10)
        comments = re.findall(r"data-demo-comment>(.*?)</article>", page.text, re.S)
        print("comment:", html.unescape(comments[0]).strip() if comments else None)
        assert len(comments) == 1 and code in comments[0], page.text

        # Now closing succeeds.
        status, message, _page = _close_ticket(host, host_base)
        print("close after stop:", status, message)
        assert status == 200, (status, message)

        # The framed widget never needed a cookie (browsers block third-party ones).
        assert not frame.cookies, frame.cookies


def test_the_demo_close_button_needs_its_csrf_token(demo):
    host_base, _widget_base = demo
    with requests.Session() as host:
        host.get(f"{host_base}/demo/ticket/{TICKET}", timeout=10)
        refused = host.post(f"{host_base}/demo/ticket/{TICKET}/close", data={}, timeout=10, allow_redirects=False)
        forged = host.post(f"{host_base}/demo/ticket/{TICKET}/close", data={"csrf_token": "forged"}, timeout=10,
                           allow_redirects=False)
        page = host.get(f"{host_base}/demo/ticket/{TICKET}", timeout=10).text
    assert refused.status_code == 400 and forged.status_code == 400
    assert CLOSE_RESULT_RE.search(page) is None  # the guard was never asked
