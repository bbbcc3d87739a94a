"""tvwidget mounted with init_app, in real Chromium: the helpdesk's own ticket page frames the widget.

Play and stop in English and Japanese, the admin area opens and saves in both, and the helpdesk's own
login (its session cookie, signed with its own secret key) is there before and after.  Screenshots
(``host-mount-*.png``) go to conftest's ``screenshot_dir()``.
"""
import pytest
from flask import render_template_string, request

from tvwidget import init_app
from tvwidget.extensions import db

from ..browser import PLAY, WIDGET, stop_case, widget_frame
from ..conftest import EMBED_SECRET, FONTS_READY, connect, helpdesk_app, make_token, screenshot_dir, ticket_claim
from ..live import serve

try:
    from playwright.sync_api import expect
except ImportError:  # the shared ``browser`` fixture says why, or fails under TVWIDGET_REQUIRE_ALL
    expect = None

pytestmark = pytest.mark.browser

TICKET_PAGE = """<!doctype html><html lang="{{ lang }}"><head><title>Ticket {{ ticket_id }}</title></head>
<body style="display:flex;gap:20px;font-family:sans-serif"><main><h1>{{ config.COMPANY_NAME }}</h1>
<p>Ticket {{ ticket_id }}</p></main><aside><iframe src="/embed/widget?token={{ token }}" title="TeamViewer"
style="border:0;width:360px;height:440px"></iframe></aside></body></html>"""
LANGUAGES = {
    "en": {"title": "TeamViewer connection", "saved": "Saved.", "group": "Tier 2"},
    "ja": {"title": "TeamViewerの接続", "saved": "保存しました。", "group": "二次サポート"},
}


@pytest.fixture
def mounted(tmp_path, monkeypatch, sandbox_url, smtp):
    """The helpdesk, with tvwidget mounted by init_app from TVWIDGET_* variables, served over HTTP."""
    for key, value in {"TVWIDGET_ENV": "development", "TVWIDGET_SECRET_KEY": "tvwidget-own-secret-key-0123456789abcdef",
                       "TVWIDGET_EMBED_SECRET": EMBED_SECRET, "TVWIDGET_TEAMVIEWER_API_URL": sandbox_url,
                       "TVWIDGET_MAIL_SERVER": "127.0.0.1", "TVWIDGET_MAIL_PORT": str(smtp.port),
                       "TVWIDGET_FRAME_ANCESTORS": "'self'",
                       "TVWIDGET_SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'tvwidget.db'}"}.items():
        monkeypatch.setenv(key, value)
    host = helpdesk_app(tmp_path, SECRET_KEY="the-helpdesk-s-own-secret-key-0123456789abcdef",
                    COMPANY_NAME="Helpdesk Host Inc.", ENV="staging")

    @host.get("/tickets/<ticket_id>/support")
    def support(ticket_id):
        lang = request.args.get("lang", "en")
        token = make_token(locale=lang, ticket=ticket_claim(ticket_id))
        return render_template_string(TICKET_PAGE, lang=lang, ticket_id=ticket_id, token=token)

    init_app(host)
    with host.app_context():
        db.create_all()
    connect(host)
    with serve(host) as base_url:
        yield base_url
    with host.app_context():
        db.engine.dispose()


def _shoot(page, name: str) -> None:
    page.locator("body").evaluate(FONTS_READY)
    page.mouse.move(0, 0)
    path = screenshot_dir() / name
    page.screenshot(path=path, full_page=True, animations="disabled")
    assert path.stat().st_size > 5000


def test_widget_and_admin_work_inside_the_helpdesk_and_its_login_survives(mounted, browser):
    context = browser.new_context(viewport={"width": 1000, "height": 560})
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        assert context.request.post(f"{mounted}/login").text() == "signed in"
        for lang, words in LANGUAGES.items():
            page.goto(f"{mounted}/tickets/T-{lang}/support?lang={lang}")
            frame = widget_frame(page)
            expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "idle")
            expect(frame.locator("html")).to_have_attribute("lang", lang)
            frame.locator(PLAY).click()
            expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "open")
            _shoot(page, f"host-mount-widget-{lang}.png")
            stop_case(frame)

            token = make_token(role="admin", ticket=None, locale=lang)
            page.goto(f"{mounted}/embed/admin?token={token}")
            expect(page.locator("h1")).to_have_text(words["title"])
            page.fill('input[name="group_name"]', words["group"])
            page.click('[data-tvwidget-action="save"]')
            expect(page.locator(".tvwidget-admin-notice")).to_have_text(words["saved"])
            _shoot(page, f"host-mount-admin-{lang}.png")

        page.goto(f"{mounted}/me")
        expect(page.locator("body")).to_have_text("u1")  # the helpdesk login outlived both
        cookies = {cookie["name"]: cookie for cookie in context.cookies()}
        assert set(cookies) == {"session", "__Host-tvwidget_admin"}
        admin = cookies["__Host-tvwidget_admin"]
        assert admin["secure"] and admin["httpOnly"] and admin["path"] == "/" and admin["sameSite"] == "Lax"
    finally:
        context.close()
