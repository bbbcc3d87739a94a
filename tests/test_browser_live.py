"""Live status, stop with a note and an outcome, and the history, in a real browser (G1, G3, G4).

The widget is framed cross-site by the fake helpdesk of ``test_browser`` (its fixtures are reused) and
talks to the TeamViewer sandbox over HTTP.  The requester's side is acted out on the sandbox's customer
link page, in a second tab: pressing its start button makes TeamViewer report ``online``, and the widget
must show it without a reload.  Polling and the status cache are shortened to 1 s to keep the test quick.
Screenshots (both languages) go to ``screenshot_dir()``.
"""
import re

import pytest

from .conftest import screenshot_dir
from .test_browser import (CONFIRM_STOP, PLAY, STOP, WIDGET, browser, context, expect, field,  # noqa: F401, F811 - fixtures reused
                           helpdesk, open_ticket, page, serve_widget, widget_frame)

pytestmark = pytest.mark.browser
SCREENSHOTS = screenshot_dir()


def shoot(page, name: str, lang: str):
    """Screenshot the whole widget: the sidebar frame is stretched so nothing is scrolled away."""
    page.locator("iframe").evaluate("frame => { frame.style.height = '980px'; }")
    frame = widget_frame(page)
    frame.locator("body").evaluate("() => document.fonts.ready")
    frame.locator(WIDGET).hover(position={"x": 2, "y": 2})
    frame.locator(WIDGET).screenshot(path=SCREENSHOTS / f"widget-{name}-{lang}.png", animations="disabled")


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_customer_online_shows_without_reload_then_stop_with_note_lands_in_history(
        lang, helpdesk, serve_widget, context, page, smtp):
    serve_widget(STATUS_POLL_SECONDS=1, STATUS_CACHE_SECONDS=1)
    frame = open_ticket(page, helpdesk.ticket_url(f"L-{lang}", lang), "idle")
    history = frame.locator(field("history"))
    expect(history.locator(".tvwidget-subtitle")).to_be_visible()  # loaded after the first paint
    expect(history.locator("[data-tvwidget-session-code]")).to_have_count(0)
    frame.locator(PLAY).click()
    expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "open")
    status = frame.locator(field("customer-status"))
    expect(status).to_have_attribute("data-status", "waiting")
    expect(frame.locator(".tvwidget-countdown")).to_contain_text(re.compile(r"23\D+5\d"))
    code = frame.locator(field("session-code")).inner_text().strip()

    # The requester opens the customer link and starts QuickSupport in another tab.
    customer = context.new_page()
    customer.goto(frame.locator(field("customer-link")).get_attribute("href"))
    customer.locator('button[value="start"]').click()
    customer.close()

    # No reload: the poll brings the news.
    expect(status).to_have_attribute("data-status", "online", timeout=10_000)
    expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "open")
    assert frame.locator('#tvwidget-widget [role="alert"]').count() == 0
    shoot(page, "online", lang)

    frame.locator(STOP).click()
    expect(frame.locator(CONFIRM_STOP)).to_be_visible()
    note = frame.locator('textarea[name="note"]')
    expect(note).to_be_focused()
    note.fill("Reset the <Outlook> profile; mail works again.")
    frame.locator('input[name="outcome"][value="resolved"]').check()
    shoot(page, "stop-form", lang)
    frame.locator(CONFIRM_STOP).click()
    expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "idle")

    item = frame.locator(f'{field("history")} [data-tvwidget-session-code="{code}"]')
    expect(item).to_be_visible()
    expect(item).to_contain_text("Reset the <Outlook> profile")  # shown as text, not markup
    expect(item.locator('[data-outcome="resolved"]')).to_be_visible()
    shoot(page, "history", lang)
