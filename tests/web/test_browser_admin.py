"""The admin area in a real browser: connect ➜ revoke refused ➜ stop ➜ revoke ➜ reconnect.

Debian's Chromium (``/usr/bin/chromium``) is driven by Playwright; no browser is downloaded.  tvwidget is
served over HTTP with the TeamViewer sandbox behind it; the admin area opens top-level, as a host opens it,
and the widget runs in a second tab so that a real service case is open while the admin tries to revoke.
Screenshots (``admin-*.png``) go to conftest's ``screenshot_dir()``.
"""

import pytest

from ..browser import CONFIRM_STOP, TIMEOUT, WIDGET, expect
from ..conftest import FONTS_READY, make_token, screenshot_dir, ticket_claim
from ..live import serve

pytestmark = pytest.mark.browser

SCREENSHOTS = screenshot_dir()

REVOKE = '[data-tvwidget-action="revoke"]'
CONFIRM_REVOKE = '[data-tvwidget-action="confirm-revoke"]'
SAVE = '[data-tvwidget-action="save"]'
ALERT = '[role="alert"]'


def _context(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 800}, locale="en-GB")
    context.set_default_timeout(TIMEOUT)
    return context


def _open_admin(page, base_url, sub="admin-1", name="Ada Admin"):
    token = make_token(role="admin", ticket=None, sub=sub, name=name, email=f"{sub}@helpdesk.example")
    page.goto(f"{base_url}/embed/admin?token={token}")
    expect(page.locator("h1")).to_have_text("TeamViewer connection")


def _connect(page, token):
    page.fill('input[name="script_token"]', token)
    page.click(SAVE)
    expect(page.locator(".tvwidget-admin-status--ok")).to_have_text("Connected")
    expect(page.locator("#tvwidget-admin-connection")).to_contain_text("…" + token[-4:])


def _open_widget(page, base_url, ticket_id, state):
    token = make_token(ticket=ticket_claim(ticket_id, subject="VPN drops every few minutes"))
    page.goto(f"{base_url}/embed/widget?token={token}")
    expect(page.locator(WIDGET)).to_have_attribute("data-tvwidget-state", state)


def _shoot(page, name):
    page.locator("body").evaluate(FONTS_READY)
    page.mouse.move(0, 0)
    path = SCREENSHOTS / name
    page.screenshot(path=path, full_page=True, animations="disabled")
    assert path.stat().st_size > 5000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_connect_revoke_refused_stop_revoke_reconnect(app_factory, browser, smtp):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    app = app_factory()
    with serve(app) as base_url:
        first, second = _context(browser), _context(browser)
        try:
            admin = first.new_page()
            _open_admin(admin, base_url)
            expect(admin.locator(".tvwidget-admin-status")).to_contain_text("Not connected")
            _connect(admin, "sandbox-browser-admin-4321")
            expect(admin.locator("#tvwidget-admin-connection")).to_contain_text("Sandbox Supporter")
            expect(admin.locator("#tvwidget-admin-connection")).to_contain_text("Ada Admin")
            _shoot(admin, "admin-settings-en.png")

            # An agent opens a service case in another tab.
            agent = first.new_page()
            _open_widget(agent, base_url, "B-7", "idle")
            agent.click('[data-tvwidget-action="play"]')
            expect(agent.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "open")
            code = agent.locator('[data-tvwidget-field="session-code"]').inner_text().strip()

            # Revoke is refused and names the case.
            admin.click(REVOKE)
            refusal = admin.locator(ALERT)
            expect(refusal).to_contain_text("cannot be revoked while service cases are active")
            expect(refusal).to_contain_text("#B-7")
            expect(refusal).to_contain_text(code)
            expect(refusal).to_contain_text("Alex Morgan")
            expect(admin.locator(CONFIRM_REVOKE)).to_have_count(0)
            _shoot(admin, "admin-revoke-refused-en.png")

            # The agent stops; now the revoke goes through after confirmation.
            agent.click('[data-tvwidget-action="stop"]')
            agent.locator(f'{WIDGET}[data-tvwidget-state="idle"], {CONFIRM_STOP}').first.wait_for()
            if agent.locator('[data-tvwidget-action="confirm-stop"]').count():
                agent.click('[data-tvwidget-action="confirm-stop"]')
            expect(agent.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "idle")
            admin.get_by_role("link", name="Check again").click()
            admin.click(CONFIRM_REVOKE)
            expect(admin.locator('[role="status"]')).to_contain_text("App access revoked")
            expect(admin.locator(".tvwidget-admin-status")).to_contain_text("Not connected")
            expect(admin.locator("#tvwidget-admin-connection")).to_contain_text("revoked by Ada Admin")
            expect(admin.locator(REVOKE)).to_have_count(0)
            _open_widget(agent, base_url, "B-7", "disconnected")

            # Hand over: another admin, in their own browser, connects their own token.
            other = second.new_page()
            _open_admin(other, base_url, sub="admin-2", name="Bo Second")
            _connect(other, "sandbox-handover-8765")
            expect(other.locator("#tvwidget-admin-connection")).to_contain_text("Bo Second")
            _open_widget(agent, base_url, "B-7", "idle")

            other.goto(f"{base_url}/embed/admin/audit")
            table = other.locator("#tvwidget-admin-audit")
            for label in ("TeamViewer connected", "App access revoked",
                          "Service case opened", "Service case closed"):
                expect(table).to_contain_text(label)
            expect(table).to_contain_text("Ada Admin")
            expect(table).to_contain_text("Bo Second")
            _shoot(other, "admin-audit-en.png")

            other.goto(f"{base_url}/embed/admin/branding")
            expect(other.locator("h1")).to_have_text("Branding and notifications")
            _shoot(other, "admin-branding-en.png")
        finally:
            first.close()
            second.close()
