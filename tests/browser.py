"""What the browser tests share: Playwright's ``expect``, the widget's selectors, the fake helpdesk that frames
the widget cross-site (conftest's ``helpdesk`` and ``serve_widget`` fixtures serve it) and small page helpers.

Debian's Chromium (``/usr/bin/chromium``) is driven by Playwright through conftest's ``browser`` fixture."""
import requests
from flask import Flask, abort, render_template_string, request

from .conftest import PLAYWRIGHT_TIMEOUT, make_token, ticket_claim
from .helpers import API

try:
    from playwright.sync_api import expect
except ImportError:  # the shared ``browser`` fixture says why, or fails under TVWIDGET_REQUIRE_ALL
    expect = None

TIMEOUT = PLAYWRIGHT_TIMEOUT  # ms, for Playwright's waits

WIDGET = "#tvwidget-widget"
PLAY = '[data-tvwidget-action="play"]'
STOP = '[data-tvwidget-action="stop"]'
CONFIRM_STOP = '[data-tvwidget-action="confirm-stop"]'
ALERT = '#tvwidget-widget [role="alert"]'


def field(name: str) -> str:
    return f'[data-tvwidget-field="{name}"]'


# --- the fake helpdesk (the host) -----------------------------------------------------------------

AGENTS = {
    "en": {"sub": "agent-1", "name": "Alex Morgan", "email": "alex.morgan@helpdesk.example", "tz": "Europe/London"},
    "ja": {"sub": "agent-2", "name": "田中 愛子", "email": "aiko.tanaka@helpdesk.example", "tz": "Asia/Tokyo"},
}
TICKETS = {
    "en": {"subject": "Outlook crashes on start", "requester": {"name": "John Doe", "email": "john.doe@example.com"},
           "description": "Since this morning Outlook closes right after the splash screen. Could someone look?"},
    "ja": {"subject": "プリンターに印刷できない",
           "requester": {"name": "山田 花子", "email": "hanako.yamada@example.jp"},
           "description": "3階の複合機に印刷ジョブを送っても何も出てきません。リモートで確認していただけますか。"},
}

HOST_PAGE = """<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<title>#{{ ticket.id }} {{ ticket.subject }} – Fake Helpdesk</title>
<style>
  body { margin: 0; font: 14px/1.5 system-ui, "Noto Sans CJK JP", sans-serif; background: #f6f8fa; color: #1f2328; }
  .bar { background: #24292f; color: #fff; padding: 10px 20px; font-weight: 600; }
  .layout { display: flex; gap: 20px; padding: 20px; align-items: flex-start; }
  main { flex: 1; min-width: 0; padding: 4px 20px 16px;
         background: #fff; border: 1px solid #d0d7de; border-radius: 8px; }
  aside { flex: none; width: 360px; }
  aside iframe { display: block; border: 0; width: 360px; height: 440px; }
</style>
</head>
<body>
<div class="bar">Fake Helpdesk</div>
<div class="layout">
  <main>
    <h1>#{{ ticket.id }} {{ ticket.subject }}</h1>
    <p>{{ ticket.requester.name }} &lt;{{ ticket.requester.email }}&gt;</p>
    <p>{{ description }}</p>
  </main>
  <aside aria-label="Apps">
    <iframe id="tvwidget-frame" title="TeamViewer" src="{{ src }}" width="360" height="440"></iframe>
  </aside>
</div>
</body>
</html>
"""


class Helpdesk:
    """A tiny host app: a ticket page whose 360-px sidebar frames the widget with a freshly signed token."""

    def __init__(self):
        self.widgets = {}  # name -> tvwidget base URL
        self.origin = None
        self.app = Flask("fake_helpdesk")

        @self.app.get("/ticket/<ticket_id>")
        def ticket_page(ticket_id):
            lang = request.args.get("lang", "en")
            base = self.widgets.get(request.args.get("widget", "main")) or abort(404)
            agent, data = AGENTS[lang], TICKETS[lang]
            ticket = ticket_claim(ticket_id, subject=data["subject"], requester=data["requester"])
            token = make_token(locale=lang, tz=agent["tz"], sub=agent["sub"], name=agent["name"],
                               email=agent["email"], role=request.args.get("role", "agent"), ticket=ticket)
            return render_template_string(HOST_PAGE, lang=lang, ticket=ticket, description=data["description"],
                                          src=f"{base}/embed/widget?token={token}")

        @self.app.get("/cookie-probe")
        def cookie_probe():
            return f'<!doctype html><iframe src="{self.widgets["probe"]}/set-cookie"></iframe>'

    def ticket_url(self, ticket_id: str, lang: str = "en", widget: str = "main", **params) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"lang": lang, "widget": widget, **params}.items())
        return f"{self.origin}/ticket/{ticket_id}?{query}"


def localhost(url: str) -> str:
    """Reach a server bound to 127.0.0.1 through the name ``localhost`` (another site)."""
    return url.replace("http://127.0.0.1:", "http://localhost:")


def host_api(app, method: str, path: str) -> requests.Response:
    """Call the host API server to server, as the helpdesk does."""
    return requests.request(method, f"{app.base_url}/api/v1{path}", headers=API, timeout=10)


def widget_frame(page):
    """The helpdesk page's (only) iframe."""
    return page.frame_locator("iframe")


def open_ticket(page, url: str, state: str):
    """Open the helpdesk's ticket page and wait until the framed widget is in ``state``."""
    page.goto(url)
    frame = widget_frame(page)
    expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", state)
    return frame


def stop_case(frame):
    """Press stop; if the widget asks for a note and an outcome first, confirm."""
    frame.locator(STOP).click()
    frame.locator(f'{WIDGET}[data-tvwidget-state="idle"], {CONFIRM_STOP}').first.wait_for()
    confirm = frame.locator(CONFIRM_STOP)
    if confirm.count():
        confirm.click()
    expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "idle")
