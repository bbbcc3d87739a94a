"""The embed script in a real browser: launch by POST, auto-height, host events, origin discipline.

A host page on ``http://localhost:<port>`` writes only the two embedding lines (tvwidget's ``embed.js`` and a
``[data-tvwidget-embed]`` element with a launch token); tvwidget is served from ``http://127.0.0.1:<port>``,
another *site*, in Debian's Chromium with third-party cookies blocked (the ``browser`` fixture).  TeamViewer
is a sandbox of each test's own over HTTP (open sessions count against a sandbox's licence limit), or a
closed port where TeamViewer must be unreachable.  Screenshots of the 360-px sidebar in each state, in
English and Japanese, are written by ``test_the_frame_follows_the_widget_height_in_every_state``.
"""
import contextlib
import datetime as dt
import json
import logging
import time

import pytest
import sqlalchemy as sa
from flask import Flask, render_template_string, request

from tvwidget.extensions import db
from tvwidget.storage.models import ServiceCase, utcnow

from ..browser import CONFIRM_STOP, PLAY, STOP, TIMEOUT, WIDGET, expect, host_api, stop_case
from ..conftest import FONTS_READY, connect, free_port, make_token, screenshot_dir, ticket_claim
from ..live import serve

pytestmark = pytest.mark.browser

SCREENSHOTS = screenshot_dir()
HEIGHT_WITHIN = 1.0  # s: the embed script resizes "within a second"
FRAME = "[data-tvwidget-embed] iframe"
EVENTS = ("case-opened", "case-closed", "case-expired", "email-status", "token-needed")
AGENTS = {
    "en": {"sub": "agent-1", "name": "Alex Morgan", "email": "alex.morgan@helpdesk.example", "tz": "Europe/London"},
    "ja": {"sub": "agent-2", "name": "田中 愛子", "email": "aiko.tanaka@helpdesk.example", "tz": "Asia/Tokyo"},
}

HOST_PAGE = """<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<title>#{{ ticket }} – Embedding Helpdesk</title>
<style>
  body { margin: 0; font: 14px/1.5 system-ui, "Noto Sans CJK JP", sans-serif; background: #f6f8fa; color: #1f2328; }
  .layout { display: flex; gap: 20px; padding: 20px; align-items: flex-start; }
  main { flex: 1; min-width: 0; padding: 4px 20px 16px;
         background: #fff; border: 1px solid #d0d7de; border-radius: 8px; }
  aside { flex: none; width: 360px; }
</style>
<script src="{{ base }}/embed/embed.js" async></script>
</head>
<body>
<div class="layout">
  <main><h1>#{{ ticket }}</h1>
    <p>{{ "プリンターに印刷できない" if lang == "ja" else "Outlook crashes on start" }}</p></main>
  <aside id="sidebar">
    <div id="tv" data-tvwidget-embed data-tvwidget-token="{{ token }}"
         {%- if max_height %} data-tvwidget-max-height="{{ max_height }}"{% endif %}></div>
  </aside>
</div>
{% if forgers %}
<iframe id="tvwidget-site-frame" title="another tvwidget page" src="{{ base }}/embed/widget"></iframe>
<iframe id="host-site-frame" title="another host page" src="/blank"></iframe>
{% endif %}
</body>
</html>
"""

PLAIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Plain iframe</title></head>
<body><aside style="width:360px">
<iframe id="plain" title="TeamViewer" src="{{ base }}/embed/widget?token={{ token }}" width="360" height="440"
        style="border:0"></iframe>
</aside></body></html>
"""

# Records every tvwidget event that bubbles up to the document, with the element it was dispatched on,
# and every message the host page receives.
RECORDER = """
window.__tvwidget = {events: [], messages: []};
for (const name of EVENT_NAMES) {
  document.addEventListener("tvwidget:" + name, (event) => window.__tvwidget.events.push(
      {name, detail: event.detail, target: event.target.id, bubbles: event.bubbles}));
}
window.addEventListener("message", (event) => window.__tvwidget.messages.push(
    {origin: event.origin, data: event.data}));
""".replace("EVENT_NAMES", json.dumps(list(EVENTS)))


class Host:
    """An embedding helpdesk: ticket pages with embed.js; every launch token it signs is remembered."""

    def __init__(self):
        self.base = None  # tvwidget's base URL
        self.origin = None
        self.tokens = []
        self.app = Flask("embedding_helpdesk")

        @self.app.get("/ticket/<ticket_id>")
        def ticket_page(ticket_id):
            lang = request.args.get("lang", "en")
            return render_template_string(
                HOST_PAGE, lang=lang, ticket=ticket_id, base=request.args.get("base", self.base),
                token=self.token(ticket_id, lang), max_height=request.args.get("max"),
                forgers=request.args.get("forgers"))

        @self.app.get("/plain/<ticket_id>")
        def plain_page(ticket_id):
            return render_template_string(PLAIN_PAGE, base=self.base, token=self.token(ticket_id, "en"))

        @self.app.get("/blank")
        def blank():
            return "<!doctype html><title>blank</title><p>host page</p>"

    def token(self, ticket_id: str, lang: str = "en") -> str:
        agent = AGENTS[lang]
        token = make_token(locale=lang, tz=agent["tz"], sub=agent["sub"], name=agent["name"], email=agent["email"],
                           ticket=ticket_claim(ticket_id))
        self.tokens.append(token)
        return token

    def url(self, ticket_id: str, lang: str = "en", **params) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"lang": lang, **params}.items())
        return f"{self.origin}/ticket/{ticket_id}?{query}"


@pytest.fixture
def host():
    desk = Host()
    with serve(desk.app) as url:
        desk.origin = url.replace("http://127.0.0.1:", "http://localhost:")  # another site than tvwidget's
        yield desk


@pytest.fixture
def serve_tvwidget(app_factory, host, teamviewer_sandbox):
    """Return ``start(connected=True, **config)``: serve a tvwidget app the host may frame; it becomes host.base."""
    with contextlib.ExitStack() as servers:
        def start(connected: bool = True, **overrides):
            app = app_factory(**{"FRAME_ANCESTORS": host.origin, "TEAMVIEWER_API_URL": teamviewer_sandbox}
                              | overrides)
            if connected:
                connect(app)
            app.base_url = servers.enter_context(serve(app))
            host.base = app.base_url
            return app
        yield start


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 700}, device_scale_factor=2)
    context.set_default_timeout(TIMEOUT)
    context.add_init_script(RECORDER)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context):
    return context.new_page()


# --- helpers ----------------------------------------------------------------------------------------

def widget_frame(page):
    """The widget's frame (a Frame: it can evaluate), once embed.js has made it and launched the widget."""
    page.locator(FRAME).wait_for()
    frame = page.locator(FRAME).element_handle().content_frame()
    frame.locator(WIDGET).wait_for()
    return frame


def in_state(page, state: str):
    frame = widget_frame(page)
    expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", state)
    return frame


def settled_height(page, frame) -> int:
    """Wait (at most HEIGHT_WITHIN) until the frame is exactly as tall as the widget's page; return the height.

    Also asserts there is no inner scrollbar: the framed page's scrollHeight fits its clientHeight.
    """
    started = time.monotonic()
    while True:
        content, scroll, client = frame.evaluate(
            "() => [Math.ceil(document.documentElement.getBoundingClientRect().height),"
            " document.documentElement.scrollHeight, document.documentElement.clientHeight]")
        outer = page.evaluate(f"() => document.querySelector('{FRAME}').getBoundingClientRect().height")
        if outer == content and scroll <= client:
            return outer
        assert time.monotonic() - started < HEIGHT_WITHIN, \
            f"frame {outer}px, widget {content}px, scroll {scroll} > client {client} after {HEIGHT_WITHIN}s"
        time.sleep(0.02)


def events(page, name: str | None = None) -> list[dict]:
    recorded = page.evaluate("() => window.__tvwidget.events")
    return [event for event in recorded if name is None or event["name"] == name]


def wait_for_event(page, name: str, count: int = 1) -> dict:
    page.wait_for_function(f"() => window.__tvwidget.events.filter(e => e.name === '{name}').length >= {count}")
    return events(page, name)[count - 1]


def expire_cases_of(app, ticket_id: str) -> None:
    with app.app_context():
        db.session.execute(sa.update(ServiceCase).where(ServiceCase.ticket_id == ticket_id)
                           .values(valid_until=utcnow() - dt.timedelta(minutes=1)))
        db.session.commit()
        db.session.remove()


# --- tests ------------------------------------------------------------------------------------------

def test_the_frame_follows_the_widget_height_in_every_state(host, serve_tvwidget, context, page, smtp):
    """Disconnected, idle, open, stop form, history and an alert, in English and Japanese: each time the
    frame takes the widget's height within a second, with no inner scrollbar; screenshots of each."""
    written = []

    def shoot(name: str, lang: str, frame):
        frame.locator("body").evaluate(FONTS_READY)
        frame.locator(WIDGET).hover(position={"x": 2, "y": 2})
        settled_height(page, frame)
        path = SCREENSHOTS / f"embed-{name}-{lang}.png"
        page.locator("#sidebar").screenshot(path=path, animations="disabled")
        written.append(path)

    app = serve_tvwidget(connected=False)
    heights = {}
    for lang in ("en", "ja"):
        page.goto(host.url(f"H-D-{lang}", lang))
        frame = in_state(page, "disconnected")
        heights["disconnected", lang] = settled_height(page, frame)
        shoot("disconnected", lang, frame)

    connect(app)
    for lang in ("en", "ja"):
        page.goto(host.url(f"H-{lang}", lang))
        frame = in_state(page, "idle")
        expect(frame.locator('[data-tvwidget-field="history"] .tvwidget-hint')).not_to_contain_text("…")
        heights["idle", lang] = settled_height(page, frame)
        shoot("idle", lang, frame)

        frame.locator(PLAY).click()
        expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "open")
        heights["open", lang] = settled_height(page, frame)
        shoot("open", lang, frame)

        frame.locator(STOP).click()
        frame.locator(CONFIRM_STOP).wait_for()
        heights["stop-form", lang] = settled_height(page, frame)
        shoot("stop-form", lang, frame)

        frame.locator('textarea[name="note"]').fill("Reinstalled the printer driver; the test page printed.")
        frame.locator(CONFIRM_STOP).click()
        expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "idle")
        expect(frame.locator('[data-tvwidget-field="history"] li')).to_have_count(1)
        heights["history", lang] = settled_height(page, frame)
        shoot("history", lang, frame)

    # TeamViewer unreachable (nothing listens on the port): play shows an alert.
    serve_tvwidget(TEAMVIEWER_API_URL=f"http://127.0.0.1:{free_port()}/api/v1", TEAMVIEWER_CONNECT_TIMEOUT=0.5)
    for lang in ("en", "ja"):
        page.goto(host.url(f"H-A-{lang}", lang))
        frame = in_state(page, "idle")
        expect(frame.locator('[data-tvwidget-field="history"] .tvwidget-hint')).not_to_contain_text("…")
        before = settled_height(page, frame)
        frame.locator(PLAY).click()
        expect(frame.locator(f'{WIDGET} [role="alert"]')).to_be_visible()
        heights["alert", lang] = settled_height(page, frame)
        assert heights["alert", lang] > before
        shoot("alert", lang, frame)

    print("heights:", heights)
    for lang in ("en", "ja"):
        # The frame really moved with the content: each of these states is taller than the one before it.
        assert heights["open", lang] > heights["idle", lang] > heights["disconnected", lang]
        assert heights["stop-form", lang] > heights["open", lang]
        assert heights["history", lang] > heights["idle", lang]
        assert heights["stop-form", lang] > 440  # the README's old fixed height would have scrolled
    assert len(written) == 12
    for path in written:
        assert path.stat().st_size > 2000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_case_events_bubble_with_their_detail_and_the_token_is_in_no_url(host, serve_tvwidget, context, page,
                                                                          smtp, caplog):
    """Play, stop and expiry each fire their event on the element (bubbling), closed and expired with
    tvwidget's comment; the launch token is in no URL: not the frame's, the page's, the browser's history,
    any request the browser made, nor the server's request log."""
    caplog.set_level(logging.INFO, logger="werkzeug")
    app = serve_tvwidget(STATUS_POLL_SECONDS=1, STATUS_CACHE_SECONDS=1)
    requested = []
    context.on("request", lambda r: requested.append(r.url))

    page.goto(host.url("T-EV"))
    frame = in_state(page, "idle")
    assert events(page) == []

    frame.locator(PLAY).click()
    opened = wait_for_event(page, "case-opened")
    code = frame.locator('[data-tvwidget-field="session-code"]').inner_text().strip()
    assert opened == {"name": "case-opened", "target": "tv", "bubbles": True,
                      "detail": {"ticketId": "T-EV", "code": code, "state": "open"}}
    assert wait_for_event(page, "email-status")["detail"] == {
        "ticketId": "T-EV", "code": code, "state": "open", "emailStatus": "sent"}

    stop_case(frame)
    closed = wait_for_event(page, "case-closed")
    comments = host_api(app, "GET", "/tickets/T-EV/comments").json()["comments"]
    assert closed["target"] == "tv" and closed["bubbles"]
    assert closed["detail"] == {"ticketId": "T-EV", "code": code, "state": "closed", "comment": comments[-1]["body"]}
    assert code in closed["detail"]["comment"] and "Duration" in closed["detail"]["comment"]

    frame.locator(PLAY).click()
    second = wait_for_event(page, "case-opened", 2)["detail"]["code"]
    expire_cases_of(app, "T-EV")  # the live-status poll (every second here) finds it expired
    expired = wait_for_event(page, "case-expired")
    comments = host_api(app, "GET", "/tickets/T-EV/comments").json()["comments"]
    assert expired["detail"] == {"ticketId": "T-EV", "code": second, "state": "expired",
                                 "comment": comments[-1]["body"]}
    assert "expired" in expired["detail"]["comment"]
    expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "expired")
    settled_height(page, frame)
    assert [e["name"] for e in events(page)] == ["case-opened", "email-status", "case-closed", "case-opened",
                                                 "email-status", "case-expired"]

    # The token is in no URL anywhere.
    history = context.new_cdp_session(page).send("Page.getNavigationHistory")["entries"]
    urls = [page.url] + [f.url for f in page.frames] + [entry["url"] for entry in history] + requested
    assert any(url.startswith(app.base_url + "/embed/widget") for url in urls)
    log = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert any("POST /embed/widget " in line for line in log), log  # the launch is in the log...
    for token in host.tokens:
        for url in urls:
            assert token not in url
        for line in log:
            assert token not in line  # ...without its token


def test_token_needed_when_the_credential_expires_and_a_new_token_relaunches(host, serve_tvwidget, page, smtp):
    """An expired widget credential (401) and a spent token each fire tvwidget:token-needed; setting
    data-tvwidget-token again relaunches the widget in a fresh frame."""
    serve_tvwidget(WIDGET_CREDENTIAL_MAX_AGE=2)
    page.goto(host.url("T-TOK"))
    frame = in_state(page, "idle")
    time.sleep(3.2)  # the credential's age counts in whole seconds: past 2 for sure
    frame.locator(PLAY).click()
    needed = wait_for_event(page, "token-needed")
    assert needed["target"] == "tv" and needed["bubbles"]
    assert needed["detail"]["ticketId"] == "T-TOK" and needed["detail"]["message"]
    expect(frame.locator(f'{WIDGET} [role="alert"]')).to_be_visible()

    # The host answers with a fresh token: the script launches it.
    page.evaluate("(token) => document.getElementById('tv').setAttribute('data-tvwidget-token', token)",
                  host.token("T-TOK"))
    frame = in_state(page, "idle")
    assert page.locator(FRAME).count() == 1
    frame.locator(PLAY).click()
    assert wait_for_event(page, "case-opened")["detail"]["ticketId"] == "T-TOK"

    # A token that was already used: the widget cannot start, and says so to the host.
    spent = host.tokens[-1]
    page.evaluate("() => document.getElementById('tv').setAttribute('data-tvwidget-token', 'x')")
    wait_for_event(page, "token-needed", 2)
    page.evaluate("(token) => document.getElementById('tv').setAttribute('data-tvwidget-token', token)", spent)
    third = wait_for_event(page, "token-needed", 3)
    assert "already used" in third["detail"]["message"]


def test_forged_messages_resize_nothing_and_fire_nothing(host, serve_tvwidget, page, smtp):
    """Messages from the host page itself, from another frame of tvwidget's site and from another frame of
    the host's site are ignored; the same message from the widget's own frame is obeyed (the control), and
    ignored again once that frame shows another site's page."""
    serve_tvwidget()
    page.goto(host.url("T-FORGE", forgers=1))
    frame = in_state(page, "idle")
    settled_height(page, frame)
    # Every height the frame takes from here on (the widget's own resizes may still come, and are fine).
    page.evaluate(f"""() => {{ window.__heights = [];
        new ResizeObserver((entries) => entries.forEach((e) => window.__heights.push(
            Math.round(e.target.getBoundingClientRect().height)))).observe(document.querySelector('{FRAME}')); }}""")
    forged_height = {"tvwidget": 1, "type": "height", "height": 901}
    forged_event = {"tvwidget": 1, "type": "event", "event": "case-opened",
                    "detail": {"ticketId": "T-FORGE", "code": "s123-456-789", "state": "open"}}
    post = "(message) => window.parent.postMessage(message, '*')"

    page.evaluate("(messages) => messages.forEach((m) => window.postMessage(m, '*'))", [forged_height, forged_event])
    others = [f for f in page.frames if f not in (page.main_frame, frame)]
    tvwidget_site = next(f for f in page.frames if f.url.startswith(host.base) and f != frame)
    host_site = next(f for f in page.frames if f.url.endswith("/blank"))
    assert len(others) == 2
    for forger in (tvwidget_site, host_site):
        forger.evaluate(post, forged_height)
        forger.evaluate(post, forged_event)
    # All six forged messages arrived (and were heard by the page), yet changed nothing.
    page.wait_for_function("() => window.__tvwidget.messages.filter("
                           "m => m.data.height === 901 || m.data.event === 'case-opened').length === 6")
    time.sleep(0.3)
    assert 901 not in page.evaluate("() => window.__heights") and settled_height(page, frame) != 901
    assert events(page) == []

    # Control: the widget's own frame, on tvwidget's origin, is obeyed.
    frame.evaluate(post, forged_height)
    frame.evaluate(post, forged_event)
    page.wait_for_function(f"() => document.querySelector('{FRAME}').getBoundingClientRect().height === 901")
    assert wait_for_event(page, "case-opened")["detail"]["code"] == "s123-456-789"

    # The widget's own frame navigated to another site: the same window, another origin, no longer heard.
    frame.evaluate("(url) => { window.location.href = url; }", f"{host.origin}/blank")
    page.wait_for_function(f"() => {{ try {{ return document.querySelector('{FRAME}').contentWindow.location.href"
                           f".endsWith('/blank'); }} catch (e) {{ return false; }} }}")
    navigated = page.locator(FRAME).element_handle().content_frame()
    navigated.evaluate(post, forged_height | {"height": 555})
    navigated.evaluate(post, forged_event | {"event": "case-closed"})
    page.wait_for_function("() => window.__tvwidget.messages.filter(m => m.data.height === 555"
                           " || m.data.event === 'case-closed').length === 2")
    time.sleep(0.3)
    assert page.evaluate(f"() => document.querySelector('{FRAME}').getBoundingClientRect().height") == 901
    assert [e["name"] for e in events(page)] == ["case-opened"]


def test_max_height_caps_the_frame(host, serve_tvwidget, page, smtp):
    """data-tvwidget-max-height: the frame stops there and the widget scrolls inside it."""
    serve_tvwidget()
    page.goto(host.url("T-MAX", max=300))
    frame = in_state(page, "idle")
    frame.locator(PLAY).click()
    expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "open")
    page.wait_for_function(f"() => document.querySelector('{FRAME}').getBoundingClientRect().height === 300")
    content = frame.evaluate("() => document.documentElement.scrollHeight")
    assert content > 300
    time.sleep(0.5)
    assert page.evaluate(f"() => document.querySelector('{FRAME}').getBoundingClientRect().height") == 300


def test_a_plain_iframe_still_works_and_hears_nothing(host, serve_tvwidget, page, smtp):
    """Without the script the widget runs as before in its fixed frame, and posts the host no message."""
    serve_tvwidget()
    page.goto(f"{host.origin}/plain/T-PLAIN")
    frame = page.frame_locator("#plain")
    expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "idle")
    assert frame.locator(WIDGET).get_attribute("data-tvwidget-host-origin") is None
    frame.locator(PLAY).click()
    expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "open")
    time.sleep(0.3)
    assert page.evaluate("() => window.__tvwidget.messages") == []
    assert page.locator("#plain").get_attribute("height") == "440"


def test_the_demo_ticket_page_embeds_with_the_script_and_adds_the_comment_live(demo, page, context):
    """The demo helpdesk (``make run``) uses the two lines under its own strict CSP; its own script adds
    tvwidget's comment to the ticket's timeline from the case-closed event, without a reload."""
    host_base, widget_base = demo
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(f"{host_base}/demo/ticket/DEMO-1001?lang=en")
    frame = in_state(page, "idle")
    assert frame.url == f"{widget_base}/embed/widget"
    settled_height(page, frame)
    expect(page.locator("[data-demo-comment]")).to_have_count(0)
    frame.locator(PLAY).click()
    expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "open")
    settled_height(page, frame)
    code = frame.locator('[data-tvwidget-field="session-code"]').inner_text().strip()
    stop_case(frame)
    expect(page.locator("[data-demo-comment]")).to_have_count(1)
    expect(page.locator("[data-demo-comment] pre")).to_contain_text(f"TeamViewer service case {code} closed by")
    settled_height(page, frame)
    assert violations == []


LAUNCH_AS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>Launch as</title></head>
<body>
<iframe name="tvwidget-frame" title="TeamViewer" style="border:0;width:360px;height:600px"></iframe>
<form id="launch" method="post" action="{{ base }}/embed/widget" target="tvwidget-frame">
  <input type="hidden" name="token" value="{{ token }}">
  <input type="hidden" name="host_origin" value="{{ origin }}">
</form>
</body></html>
"""


def test_the_widget_posts_only_to_the_origin_it_was_launched_for(host, serve_tvwidget, page, smtp):
    """A page launching the widget for *another* allowed origin (its Origin header withheld by
    ``no-referrer``) hears nothing from it: the widget posts to that origin only, never to "*".
    The same page launching it for its own origin hears the widget (the control)."""
    other = Flask("other_helpdesk")
    with serve(other) as other_url:
        other_origin = other_url.replace("http://127.0.0.1:", "http://localhost:")
        serve_tvwidget(FRAME_ANCESTORS=f"{host.origin} {other_origin}")

        @host.app.get("/launch-as")
        def launch_as():
            return render_template_string(LAUNCH_AS_PAGE, base=host.base, token=host.token(request.args["ticket"]),
                                          origin=request.args["origin"])

        for origin, heard in ((other_origin, False), (host.origin, True)):
            page.goto(f"{host.origin}/launch-as?origin={origin}&ticket=T-AS-{heard}")
            page.evaluate("() => document.getElementById('launch').submit()")
            frame = page.frame_locator("iframe")
            expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-host-origin", origin)
            expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "idle")
            frame.locator(PLAY).click()  # a case event and height changes: messages for the launch origin
            expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "open")
            if heard:
                page.wait_for_function("() => window.__tvwidget.messages.some(m => m.data.event === 'case-opened')")
                assert {m["origin"] for m in page.evaluate("() => window.__tvwidget.messages")} == {host.base}
            else:
                time.sleep(0.5)
                assert page.evaluate("() => window.__tvwidget.messages") == []
