"""The TeamViewer Sessions Summary in a real browser: filters update tables and charts over htmx.

Debian's Chromium (``/usr/bin/chromium``) is driven by Playwright; no browser is downloaded.  The
screenshots ``admin-report-en.png`` and ``admin-report-ja.png``, and ``admin-report-en-360.png`` and
``admin-report-ja-360.png`` on a phone-sized screen (``screenshot_dir()``), are written by
``test_report_screenshots`` over ``seed-demo`` data.
"""
import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from tvwidget.extensions import db
from tvwidget.storage.models import Connection, ServiceCase, Ticket

from ..browser import TIMEOUT, expect
from ..conftest import FONTS_READY, make_token, screenshot_dir
from ..live import serve

pytestmark = pytest.mark.browser

SCREENSHOTS = screenshot_dir()
PAGE = "/embed/admin/reports/teamviewer-sessions"
TOKYO = ZoneInfo("Asia/Tokyo")
SESSIONS = '[data-tvwidget-total="sessions"]'
CONNECTED = '[data-tvwidget-total="connected"]'


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    try:
        yield context.new_page()
    finally:
        context.close()


def days_ago(days: int, hour: int = 10) -> datetime:
    """Return ``hour`` o'clock in Tokyo, ``days`` days before today there."""
    today = datetime.now(TOKYO).date()
    return datetime.combine(today - timedelta(days=days), time(hour), TOKYO).astimezone(UTC)


def store_cases(app):
    """Two technicians in the last 30 days (Tokyo), one older session, one expired case.

    Each session has an outcome and was connected for all but its first and last minute.
    """
    cases = [("agent-1", "Alex Morgan", 3, 10, "PC", "resolved"), ("agent-1", "Alex Morgan", 5, 25, "Network", None),
             ("agent-1", "Alex Morgan", 12, 70, "PC", "resolved"),
             ("agent-2", "田中 愛子", 2, 4, "Printer", "unresolved"),
             ("agent-2", "田中 愛子", 20, 40, "Printer", "resolved"),
             ("agent-2", "田中 愛子", 60, 15, "Support", "unknown")]
    with app.app_context():
        db.session.add(Ticket(id="T-1", subject="Outlook"))
        for number, (tech, name, days, minutes, category, outcome) in enumerate(cases):
            opened = days_ago(days)
            case = ServiceCase(
                ticket_id="T-1", state="closed", idempotency_key=f"b-{number}", group_name="BOSS", opened_at=opened,
                closed_at=opened + timedelta(minutes=minutes), opened_by_id=tech, opened_by_name=name,
                ticket_category=category, ticket_type="Incident", ticket_priority="High", ticket_source="Email",
                outcome=outcome)
            db.session.add(case)
            db.session.flush()
            db.session.add(Connection(case_id=case.id, report_id=f"r-{number}", start_at=opened + timedelta(minutes=1),
                                      end_at=opened + timedelta(minutes=minutes - 1)))
        db.session.add(ServiceCase(ticket_id="T-1", state="expired", idempotency_key="b-expired", group_name="BOSS",
                                   opened_at=days_ago(1), opened_by_id="agent-1", opened_by_name="Alex Morgan",
                                   ticket_category="PC"))
        db.session.commit()
        db.session.remove()


def open_report(page, base_url: str, **claims):
    token = make_token(role="admin", ticket=None, **({"tz": "Asia/Tokyo", "locale": "en"} | claims))
    page.goto(f"{base_url}/embed/admin?token={token}")
    page.goto(base_url + PAGE)
    expect(page.locator("#tvwidget-report")).to_be_visible()


def bars(page, table: str):
    return page.locator(f'[data-tvwidget-report="{table}"] svg rect')


def test_changing_the_filters_updates_tables_and_charts_without_a_reload(app_factory, page):
    app = app_factory()
    store_cases(app)
    blocked = []
    page.on("console", lambda message: "Content Security Policy" in message.text and blocked.append(message.text))
    with serve(app) as base_url:
        open_report(page, base_url)
        expect(page.locator(SESSIONS)).to_have_text("5")
        expect(page.locator('[data-tvwidget-total="expired"]')).to_have_text("1")
        expect(page.locator(CONNECTED)).to_have_text("2 h 19 min")  # 8 + 23 + 68 + 2 + 38 minutes
        expect(page.locator('[data-tvwidget-report="outcome"] tbody th')).to_have_text(
            ["Resolved", "Unresolved", "Unknown"])
        expect(page.locator('[data-tvwidget-report="outcome"] tbody td:nth-child(2)')).to_have_text(["3", "1", "1"])
        expect(bars(page, "outcome")).to_have_count(3)
        expect(bars(page, "technicians")).to_have_count(2)
        expect(page.locator('[data-tvwidget-report="category"] tbody th')).to_have_text(["PC", "Printer", "Network"])
        page.evaluate("() => { window.tvwidgetNoReload = true; }")  # gone if the page reloads

        page.select_option("#tvwidget-report-technician", "agent-2")
        expect(page.locator(SESSIONS)).to_have_text("2")
        expect(page.locator(CONNECTED)).to_have_text("40 min 00 s")
        expect(page.locator('[data-tvwidget-report="outcome"] tbody td:nth-child(2)')).to_have_text(["1", "1", "0"])
        expect(page).to_have_url(re.compile(r"technician=agent-2"))
        expect(bars(page, "technicians")).to_have_count(1)
        expect(page.locator('[data-tvwidget-report="technicians"] tbody th')).to_have_text(["田中 愛子"])
        expect(page.locator('[data-tvwidget-report="category"] svg text').first).to_have_text("Printer")

        older = (datetime.now(TOKYO).date() - timedelta(days=89)).isoformat()
        page.fill("#tvwidget-report-from", older)
        expect(page.locator(SESSIONS)).to_have_text("3")
        expect(page).to_have_url(re.compile(rf"from={older}.*technician=agent-2|technician=agent-2.*from={older}"))
        expect(page.locator('[data-tvwidget-report="category"] tbody th')).to_have_text(["Printer", "Support"])
        assert page.evaluate("() => window.tvwidgetNoReload") is True
        csv_link = page.locator('[data-tvwidget-csv="sessions"]').get_attribute("href")
        assert f"from={older}" in csv_link and "technician=agent-2" in csv_link

        # The URL reproduces the view: a reload, then the back button.
        page.reload()
        expect(page.locator(SESSIONS)).to_have_text("3")
        expect(page.locator("#tvwidget-report-technician")).to_have_value("agent-2")
        page.go_back()
        expect(page.locator(SESSIONS)).to_have_text("2")

        page.fill("#tvwidget-report-to", "2020-01-01")
        expect(page.locator("#tvwidget-report [role=alert]")).to_contain_text("'from' must not be after 'to'.")
    assert blocked == []  # no inline script or style anywhere, swaps included


@pytest.mark.parametrize("width", [1280, 360])
@pytest.mark.parametrize("lang, tz", [("en", "Europe/London"), ("ja", "Asia/Tokyo")])
def test_report_screenshots(app_factory, browser, lang, tz, width):
    """The report over seed-demo data, as an admin sees it on a desktop and on a phone."""
    app = app_factory(demo=True)
    result = app.test_cli_runner().invoke(args=["tvwidget", "seed-demo", "--sessions", "2400", "--seed", "11"])
    assert result.exit_code == 0, result.output
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": 900}, locale=lang)
    context.set_default_timeout(TIMEOUT)
    try:
        page = context.new_page()
        with serve(app) as base_url:
            open_report(page, base_url, locale=lang, tz=tz, name="Helpdesk Admin" if lang == "en" else "管理者 佐々木")
            expect(page.locator('[data-tvwidget-report="bands"] svg rect')).to_have_count(5)
            expect(page.locator('[data-tvwidget-report="outcome"] svg rect')).to_have_count(3)
            # Nothing may stick out sideways, not even on a phone.
            assert page.evaluate("() => document.documentElement.scrollWidth") <= width
            page.evaluate(FONTS_READY)
            name = f"admin-report-{lang}.png" if width == 1280 else f"admin-report-{lang}-{width}.png"
            page.screenshot(path=SCREENSHOTS / name, full_page=True, animations="disabled")
    finally:
        context.close()
