"""The widget in a real browser, framed cross-site by a fake helpdesk (the host contract;
reliability checklist 8, 9 and 15).

Debian's Chromium (``/usr/bin/chromium``) is driven by Playwright; no browser is downloaded.  The fake
helpdesk is served on ``http://localhost:<port>`` and frames tvwidget from ``http://127.0.0.1:<port>``:
``localhost`` and ``127.0.0.1`` are different *sites*, so the widget is a third-party frame, exactly as
in a real helpdesk.  The TeamViewer side is the sandbox over HTTP, or a pytest-httpserver double where a
slow or failing TeamViewer is needed; mail goes to a real aiosmtpd server.

Screenshots of every state in both languages are written by ``test_screenshots_of_each_state``
(to ``docs/screenshots/`` with TVWIDGET_UPDATE_SCREENSHOTS=1; ``widget-open-en.png`` is the README's picture).
"""
import contextlib
import datetime as dt
import email
import email.policy
import re
import threading

import pytest
import requests
import sqlalchemy as sa
from flask import Flask, make_response
from werkzeug import Response

from tvwidget.extensions import db
from tvwidget.storage.models import CaseState, ServiceCase, utcnow

from ..browser import (
    ALERT,
    PLAY,
    STOP,
    TIMEOUT,
    WIDGET,
    expect,
    field,
    host_api,
    localhost,
    open_ticket,
    stop_case,
    widget_frame,
)
from ..conftest import FONTS_READY, HOST_API_KEY, SANDBOX_TOKEN, connect, screenshot_dir
from ..live import serve

pytestmark = pytest.mark.browser

SCREENSHOTS = screenshot_dir()
API = {"Authorization": f"Bearer {HOST_API_KEY}"}
CODE_RE = re.compile(r"^s\d{1,3}(-\d{3}){2}$")
def cookie_setter() -> Flask:
    """A page on the widget's site (127.0.0.1) setting an ordinary SameSite=None; Secure cookie."""
    app = Flask("cookie_setter")

    @app.get("/set-cookie")
    def set_cookie():
        response = make_response("<!doctype html><p>cookie set</p>")
        response.set_cookie("probe", "1", samesite="None", secure=True)
        return response

    return app


# --- fixtures --------------------------------------------------------------------------------------



@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 600})
    context.set_default_timeout(TIMEOUT)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context):
    return context.new_page()


SESSION_JSON = ('{"code": "s123-456-789", "state": "Open", "supporter_link": "https://tv.test/s/s123456789",'
                ' "end_customer_link": "https://tv.test/c/s123456789", "valid_until": "2099-01-01T00:00:00Z"}')


def answer_creates(server, handler):
    """Script conftest's bare TeamViewer server: POST /api/v1/sessions answers with ``handler``; counts creates."""
    server.creates = []

    def create(request):
        server.creates.append(request.get_json())
        return handler(request)

    server.expect_request("/api/v1/sessions", method="POST").respond_with_handler(create)
    return server


@pytest.fixture
def slow_teamviewer(teamviewer_server):
    """Takes one second to create a session, so the browser can be watched while play runs."""
    def slow(request):
        threading.Event().wait(1.0)
        return Response(SESSION_JSON, status=200, content_type="application/json")

    return answer_creates(teamviewer_server, slow)


@pytest.fixture
def failing_teamviewer(teamviewer_server):
    """Answers every create with 500."""
    def fail(request):
        return Response('{"error": "internal_error", "error_description": "Something went wrong.", "error_code": 500}',
                        status=500, content_type="application/json")

    return answer_creates(teamviewer_server, fail)


# --- helpers ----------------------------------------------------------------------------------------

def count_cases(app, *states) -> int:
    """Count the service cases in the database (in ``states``, if given)."""
    with app.app_context():
        query = sa.select(sa.func.count()).select_from(ServiceCase)
        if states:
            query = query.where(ServiceCase.state.in_(states))
        count = db.session.scalar(query)
        db.session.remove()
        return count


# --- tests ------------------------------------------------------------------------------------------

def test_lifecycle_in_a_cross_site_frame_without_third_party_cookies(helpdesk, serve_widget, context, page, smtp):
    """Play, details, email, close guard, stop and comment, all inside a third-party iframe.

    Third-party cookies are blocked: Chromium runs with ``--test-third-party-cookie-phaseout`` (V11 found
    Chromium 156 headless blocks them even without it).  The test proves the blocking itself: a page on
    the widget's site (127.0.0.1), framed by the helpdesk (localhost), sets an ordinary
    ``SameSite=None; Secure`` cookie that is *not* stored, while the same response opened top-level is.
    The widget then runs its whole lifecycle and the browser holds no cookie at all for 127.0.0.1:
    it needs no third-party cookie ().
    """
    app = serve_widget()
    servers = contextlib.ExitStack()
    helpdesk.widgets["probe"] = servers.enter_context(serve(cookie_setter()))
    with servers:
        # The browser blocks third-party cookies...
        page.goto(f"{helpdesk.origin}/cookie-probe")
        expect(page.frame_locator("iframe").locator("p")).to_have_text("cookie set")
        assert [c for c in context.cookies() if c["domain"] == "127.0.0.1"] == []

        # ...and the widget lives its whole life without one.
        frame = open_ticket(page, helpdesk.ticket_url("T-100"), "idle")
        expect(frame.locator(PLAY)).to_be_enabled()
        frame.locator(PLAY).click()
        expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "open")

        code = frame.locator(field("session-code")).inner_text().strip()
        assert CODE_RE.match(code), code
        supporter = frame.locator(field("supporter-link"))
        customer = frame.locator(field("customer-link"))
        expect(supporter).to_have_attribute("target", "_blank")
        assert "noopener" in (supporter.get_attribute("rel") or "").split()
        supporter_href, customer_href = supporter.get_attribute("href"), customer.get_attribute("href")
        assert supporter_href and customer_href and supporter_href != customer_href
        expect(frame.locator(field("valid-until"))).to_have_attribute(
            "datetime", re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"))
        expect(frame.locator(field("email-status"))).to_have_attribute("data-status", "sent")

        messages = smtp.wait_for(1)
        assert len(messages) == 1 and messages[0].rcpt_tos == ["john.doe@example.com"]
        mail = email.message_from_bytes(messages[0].content, policy=email.policy.default)
        text = mail.get_body(("plain",)).get_content()
        assert customer_href in text and supporter_href not in text

        case = host_api(app, "GET", "/tickets/T-100/service-case")
        assert case.status_code == 200 and case.json()["code"] == code
        refused = host_api(app, "POST", "/tickets/T-100/close")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "active_service_case" and code in refused.json()["message"]

        # A reload of the ticket page (a fresh launch, still no cookie) finds the open case.
        frame = open_ticket(page, helpdesk.ticket_url("T-100"), "open")
        expect(frame.locator(field("session-code"))).to_have_text(code)
        stop_case(frame)
        expect(frame.locator(PLAY)).to_be_enabled()
        expect(frame.locator(STOP)).to_have_count(0)

        comments = host_api(app, "GET", "/tickets/T-100/comments").json()["comments"]
        assert len(comments) == 1
        assert code in comments[0]["body"] and "Duration" in comments[0]["body"]
        assert host_api(app, "GET", "/tickets/T-100/service-case").status_code == 404
        closed = host_api(app, "POST", "/tickets/T-100/close")
        assert closed.status_code == 200, closed.text

        assert [c for c in context.cookies() if c["domain"] == "127.0.0.1"] == []

        # Control: the same cookie, first-party, is stored, so the blocking above was the browser's policy.
        page.goto(f"{helpdesk.widgets['probe']}/set-cookie")
        assert [c["name"] for c in context.cookies() if c["domain"] == "127.0.0.1"] == ["probe"]


def test_a_site_not_in_frame_ancestors_cannot_frame_the_widget(helpdesk, serve_widget, page):
    """CSP ``frame-ancestors`` lists only the helpdesk; another origin's frame is blocked (V12)."""
    app = serve_widget()
    console = []
    page.on("console", lambda message: console.append(message.text))
    with serve(helpdesk.app) as other:  # the same pages on another port: another origin
        other = localhost(other)
        with page.expect_response(re.compile(r"/embed/widget\?token=")) as served:
            with page.expect_event("framenavigated", timeout=TIMEOUT,
                                   predicate=lambda frame: frame.url.startswith("chrome-error://")):
                page.goto(f"{other}/ticket/T-200?lang=en&widget=main")
        # tvwidget answered; the browser refused to show the answer in this frame.
        assert served.value.status == 200
        assert f"frame-ancestors {helpdesk.origin}" in served.value.headers["content-security-policy"]
        assert "x-frame-options" not in served.value.headers
        assert [f.url for f in page.frames if f != page.main_frame] == ["chrome-error://chromewebdata/"]
        expect(widget_frame(page).locator(WIDGET)).to_have_count(0)
        assert any("frame-ancestors" in text for text in console), console

    # Control: the allowed helpdesk frames the same widget fine.
    open_ticket(page, helpdesk.ticket_url("T-200"), "idle")
    assert count_cases(app) == 0


def test_double_click_on_play_makes_one_case_and_disables_play_meanwhile(helpdesk, serve_widget, page,
                                                                          slow_teamviewer):
    """Two fast clicks: the button is disabled and the widget busy while TeamViewer works; one case results."""
    app = serve_widget(TEAMVIEWER_API_URL=slow_teamviewer.url_for("/api/v1"))
    plays = []
    page.on("request", lambda r: plays.append(r.url) if r.url.endswith("/embed/widget/play") else None)
    frame = open_ticket(page, helpdesk.ticket_url("T-300"), "idle")
    widget = frame.locator(WIDGET)

    frame.locator(PLAY).dblclick()
    # The double answers after 1 s; these must hold before then.
    expect(frame.locator(f"{PLAY}[disabled]")).to_have_count(1)
    expect(widget).to_have_attribute("data-tvwidget-state", "busy")
    expect(widget).to_have_attribute("data-tvwidget-state", "open")

    assert len(slow_teamviewer.creates) == 1
    assert len(plays) == 1, plays
    assert count_cases(app) == 1
    case = host_api(app, "GET", "/tickets/T-300/service-case")
    assert case.status_code == 200
    assert case.json()["code"] == frame.locator(field("session-code")).inner_text().strip() == "s123-456-789"


def test_teamviewer_error_shows_an_alert_and_leaves_play_enabled(helpdesk, serve_widget, page, smtp,
                                                                 failing_teamviewer):
    """TeamViewer answers 500: an alert in the widget, play still enabled, no case and no email."""
    app = serve_widget(TEAMVIEWER_API_URL=failing_teamviewer.url_for("/api/v1"))
    frame = open_ticket(page, helpdesk.ticket_url("T-400"), "idle")
    frame.locator(PLAY).click()

    expect(frame.locator(ALERT)).to_be_visible()
    expect(frame.locator(ALERT)).not_to_be_empty()
    expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "idle")
    expect(frame.locator(PLAY)).to_be_enabled()
    assert len(failing_teamviewer.creates) == 1  # a create is never retried automatically
    assert count_cases(app, CaseState.CREATING, CaseState.OPEN) == 0
    missing = host_api(app, "GET", "/tickets/T-400/service-case")
    assert missing.status_code == 404 and missing.json()["error"] == "no_active_case"
    assert smtp.messages == []


def test_screenshots_of_each_state(helpdesk, serve_widget, browser, failing_teamviewer, smtp, sandbox_url):
    """Every state in both languages, cropped to the 360-px sidebar frame."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    written = []
    context = browser.new_context(viewport={"width": 1100, "height": 600}, device_scale_factor=2)
    context.set_default_timeout(TIMEOUT)
    try:
        page = context.new_page()

        def shoot(name: str, lang: str, state: str | None = None):
            frame = widget_frame(page)
            expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", state or name)
            frame.locator("body").evaluate(FONTS_READY)
            # Rest the pointer on the widget's corner: no hover colour on the button that replaced the one clicked.
            frame.locator(WIDGET).hover(position={"x": 2, "y": 2})
            path = SCREENSHOTS / f"widget-{name}-{lang}.png"
            page.locator("iframe").screenshot(path=path, animations="disabled")
            written.append(path)

        app = serve_widget(connected=False)
        for lang in ("en", "ja"):
            open_ticket(page, helpdesk.ticket_url(f"D-{lang}", lang), "disconnected")
            shoot("disconnected", lang)

        connect(app)
        for lang in ("en", "ja"):
            ticket = f"S-{lang}"
            frame = open_ticket(page, helpdesk.ticket_url(ticket, lang), "idle")
            shoot("idle", lang)
            frame.locator(PLAY).click()
            expect(frame.locator(field("email-status"))).to_have_attribute("data-status", "sent")
            shoot("open", lang)
            code = frame.locator(field("session-code")).inner_text().strip()
            with app.app_context():
                db.session.execute(sa.update(ServiceCase).where(ServiceCase.ticket_id == ticket)
                                   .values(valid_until=utcnow() - dt.timedelta(minutes=1)))
                db.session.commit()
                db.session.remove()
            open_ticket(page, helpdesk.ticket_url(ticket, lang), "expired")
            shoot("expired", lang)
            # Expired here only; free the session-wide sandbox's licence slot.
            closed = requests.put(f"{sandbox_url}/sessions/{code}", json={"state": "closed"},
                                  headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=10)
            assert closed.ok, closed.text

        serve_widget("failing", TEAMVIEWER_API_URL=failing_teamviewer.url_for("/api/v1"))
        for lang in ("en", "ja"):
            frame = open_ticket(page, helpdesk.ticket_url(f"E-{lang}", lang, widget="failing"), "idle")
            frame.locator(PLAY).click()
            expect(frame.locator(ALERT)).to_be_visible()
            shoot("error", lang, state="idle")
    finally:
        context.close()

    states = ("disconnected", "idle", "open", "expired", "error")
    assert sorted(path.name for path in written) == sorted(
        f"widget-{state}-{lang}.png" for state in states for lang in ("en", "ja"))
    for path in written:
        assert path.stat().st_size > 2000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
