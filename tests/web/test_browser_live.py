"""Live status, stop with a note and an outcome, and the history, in a real browser.

The agent's widget is framed cross-site by the fake helpdesk of ``test_browser_widget`` (its fixtures are reused)
and talks over HTTP to a TeamViewer sandbox of its own, so nothing other tests left in the session-wide
sandbox (open sessions count against its licence limit) can change the outcome.  The requester opens the
customer link in a browser context of their own and starts the simulated QuickSupport, which makes
TeamViewer report ``online``; the widget must show it without a reload (a marker set in the frame's window
survives).  The status poll and the shared status cache are shortened to 1 s, so this takes seconds.

Every wait is a DOM state with a timeout; nothing sleeps.  Pages are never closed one by one: Chromium can
acknowledge the close of a page whose navigation is committing (the customer's form submit, the sandbox
page's meta refresh) and then never close it, and Playwright's ``page.close()`` has no timeout, so it waits
forever.  Whole contexts are closed instead (``Target.disposeBrowserContext``), after the customer's
navigation has settled.

Screenshots of each state, in English and Japanese, at the sidebar's 360-px width, go to
``screenshot_dir()`` as ``widget-{waiting,online,stop-form,history}-{en,ja}.png``.
"""
import re

import pytest

from ..browser import (
    ALERT,
    CONFIRM_STOP,
    PLAY,
    STOP,
    TIMEOUT,
    WIDGET,
    expect,
    field,
    host_api,
    open_ticket,
    widget_frame,
)
from ..conftest import FONTS_READY, screenshot_dir

pytestmark = pytest.mark.browser

SCREENSHOTS = screenshot_dir()
# Poll every second, cache for a second: the customer shows online within ~2 s; allow for a loaded CI box.
ONLINE_TIMEOUT = 20_000  # ms
NOTE = "Reset the <Outlook> profile; mail works again."
# The widget's full height in its frame (the frame's own height does not count).
WIDGET_BOTTOM = ("widget => Math.ceil(widget.getBoundingClientRect().bottom + scrollY"
                 " + parseFloat(getComputedStyle(document.body).marginBottom))")


@pytest.fixture
def page(browser):
    """The agent's browser: a wide host page (the widget's frame is 360 px), pixels doubled for screenshots."""
    page = browser.new_page(viewport={"width": 1100, "height": 600}, device_scale_factor=2)
    page.set_default_timeout(TIMEOUT)
    yield page
    page.context.close()  # also ends the widget's status polling


def shoot(page, name: str, lang: str):
    """Screenshot the 360-px frame, resized to the widget's full height: nothing scrolled away, no blank tail."""
    frame = widget_frame(page)
    frame.locator("body").evaluate(FONTS_READY)
    height = frame.locator(WIDGET).evaluate(WIDGET_BOTTOM)
    iframe = page.locator("iframe")
    iframe.evaluate("(iframe, height) => { iframe.style.height = height + 'px'; }", height)
    iframe.element_handle().content_frame().wait_for_function("height => innerHeight === height", arg=height,
                                                              timeout=TIMEOUT)
    # Rest the pointer on the widget's corner: no hover colour on the button just clicked.
    frame.locator(WIDGET).hover(position={"x": 2, "y": 2})
    path = SCREENSHOTS / f"widget-{name}-{lang}.png"
    iframe.screenshot(path=path, animations="disabled")
    assert path.stat().st_size > 2000


def start_quicksupport(browser, customer_link: str):
    """Act out the requester: open the customer link in their own browser and start QuickSupport."""
    customer = browser.new_page()
    customer.set_default_timeout(TIMEOUT)
    try:
        customer.goto(customer_link)
        customer.locator('button[value="start"]').click()  # a form POST, a 303, then the page again
        # Settled: the sandbox reports the session online and its page offers to quit.
        expect(customer.locator('button[value="quit"]')).to_be_visible()
    finally:
        customer.context.close()  # the whole context, never page.close() (see the module's docstring)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_customer_online_shows_without_reload_then_stop_with_note_lands_in_history(
        lang, browser, helpdesk, serve_widget, teamviewer_sandbox, page, smtp):
    app = serve_widget(TEAMVIEWER_API_URL=teamviewer_sandbox, STATUS_POLL_SECONDS=1, STATUS_CACHE_SECONDS=1)
    ticket = f"L-{lang}"
    frame = open_ticket(page, helpdesk.ticket_url(ticket, lang), "idle")
    history = frame.locator(field("history"))
    expect(history.locator(".tvwidget-subtitle")).to_be_visible()  # loaded after the first paint
    expect(history.locator("[data-tvwidget-session-code]")).to_have_count(0)

    frame.locator(PLAY).click()
    widget = frame.locator(WIDGET)
    expect(widget).to_have_attribute("data-tvwidget-state", "open")
    status = frame.locator(field("customer-status"))
    expect(status).to_have_attribute("data-status", "waiting")
    expect(frame.locator(".tvwidget-countdown")).to_contain_text(re.compile(r"23\D+5\d"))
    expect(frame.locator(field("email-status"))).to_have_attribute("data-status", "sent")
    code = frame.locator(field("session-code")).inner_text().strip()
    shoot(page, "waiting", lang)

    # A reload would drop this marker from the frame's window.
    frame.locator("html").evaluate("() => { window.tvwidgetNotReloaded = true; }")
    start_quicksupport(browser, frame.locator(field("customer-link")).get_attribute("href"))
    expect(status).to_have_attribute("data-status", "online", timeout=ONLINE_TIMEOUT)
    assert frame.locator("html").evaluate("() => window.tvwidgetNotReloaded === true")
    expect(widget).to_have_attribute("data-tvwidget-state", "open")
    expect(frame.locator(ALERT)).to_have_count(0)
    shoot(page, "online", lang)

    frame.locator(STOP).click()
    expect(frame.locator(CONFIRM_STOP)).to_be_visible()
    note = frame.locator('textarea[name="note"]')
    expect(note).to_be_focused()
    note.fill(NOTE)
    frame.locator('input[name="outcome"][value="resolved"]').check()
    expect(status).to_have_attribute("data-status", "online")  # still shown above the form
    shoot(page, "stop-form", lang)

    frame.locator(CONFIRM_STOP).click()
    expect(widget).to_have_attribute("data-tvwidget-state", "idle")
    expect(frame.locator("#tvwidget-status")).to_have_count(0)  # the poll went with it
    item = history.locator(f'[data-tvwidget-session-code="{code}"]')
    expect(item).to_be_visible()
    expect(item).to_contain_text(NOTE)  # shown as text, not markup
    expect(item.locator('[data-outcome="resolved"]')).to_be_visible()
    expect(frame.locator(PLAY)).to_be_enabled()
    shoot(page, "history", lang)

    comments = host_api(app, "GET", f"/tickets/{ticket}/comments").json()["comments"]
    assert len(comments) == 1 and code in comments[0]["body"] and NOTE in comments[0]["body"]
