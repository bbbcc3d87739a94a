"""The invitation template editor and the email status in a real browser.

Debian's Chromium (``/usr/bin/chromium``) through Playwright, as in ``test_browser_widget.py``; no browser is
downloaded.  An admin edits the subject, previews and saves it; an agent then presses play in the widget,
framed cross-site by a fake helpdesk, and the email that reaches a real aiosmtpd server carries the new
subject.  Screenshots go to conftest's ``screenshot_dir()``.
"""
import email
import email.policy
import re

import pytest
from aiosmtpd.controller import Controller
from flask import Flask, render_template_string

from ..browser import TIMEOUT, WIDGET, expect
from ..conftest import FONTS_READY, Mailbox, connect, free_port, make_token, screenshot_dir
from ..live import serve

pytestmark = pytest.mark.browser

SCREENSHOTS = screenshot_dir()
EMAIL_STATUS = '[data-tvwidget-field="email-status"]'

class RefusesOnce(Mailbox):
    """An SMTP handler that refuses the first recipient with 550, then takes mail like ``smtp``."""

    refused = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not self.refused:
            self.refused = True
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"


HOST_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Ticket – Fake Helpdesk</title>
<style>body { margin: 0; background: #f6f8fa; }
  iframe { display: block; border: 0; width: 360px; height: 560px; }</style>
</head><body><iframe title="TeamViewer" src="{{ src }}"></iframe></body></html>"""


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=2)
    context.set_default_timeout(TIMEOUT)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def helpdesk():
    """A one-page host framing the widget from another site (``localhost`` frames ``127.0.0.1``)."""
    host = Flask("fake_helpdesk_email")
    host.widget_url = None

    @host.get("/ticket")
    def ticket():
        return render_template_string(HOST_PAGE, src=host.widget_url)

    with serve(host) as url:
        host.origin = url.replace("http://127.0.0.1:", "http://localhost:")
        yield host


def widget_url(base: str, ticket_id: str) -> str:
    return f"{base}/embed/widget?token=" + make_token(ticket={
        "id": ticket_id, "subject": "Outlook crashes on start",
        "requester": {"name": "John Doe", "email": "john.doe@example.com"}})


def test_admin_edits_previews_and_saves_the_subject_and_the_next_email_carries_it(
        app_factory, helpdesk, page, smtp, sandbox_url):
    app = app_factory(FRAME_ANCESTORS=helpdesk.origin, TEAMVIEWER_API_URL=sandbox_url)
    connect(app)
    problems = []
    page.on("console", lambda message: problems.append(message.text) if message.type in ("error", "warning")
            else None)
    with serve(app) as base:
        # The admin opens the editor from the helpdesk (a top-level window) ...
        page.goto(f"{base}/embed/admin?token=" + make_token(role="admin", ticket=None, name="Ada Admin"))
        page.goto(f"{base}/embed/admin/email-template?lang=en")
        subject = page.locator('input[name="subject"]')
        expect(subject).to_have_value("Remote support for ticket #{ticket_id}: {ticket_subject}")

        # ... changes the subject and previews it on sample data ...
        subject.fill("Your remote support session for #{ticket_id} – {company_name}")
        page.locator('[data-tvwidget-action="preview"]').click()
        preview = page.locator('[data-tvwidget-field="preview-subject"]')
        expect(preview).to_have_text("Your remote support session for #1234 – Example Corp")
        frame = page.frame_locator('[data-tvwidget-field="preview-html"]')
        expect(frame.locator("a")).to_have_text("Start remote support")
        # The preview frame takes the email's layout from the stylesheet, not from inline styles.
        assert frame.locator("a").evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(9, 105, 218)"

        # ... a typo is refused in the preview, naming the token ...
        subject.fill("Your session for #{ticket_id} {company}")
        page.locator('[data-tvwidget-action="preview"]').click()
        expect(page.locator('#tvwidget-email-preview [role="alert"]')).to_contain_text("{company}")
        subject.fill("Your remote support session for #{ticket_id} – {company_name}")
        page.locator('[data-tvwidget-action="preview"]').click()
        expect(preview).to_have_text("Your remote support session for #1234 – Example Corp")
        expect(frame.locator("a")).to_have_text("Start remote support")
        page.locator("body").evaluate(FONTS_READY)
        page.mouse.move(0, 0)
        # Chromium paints an out-of-process frame (the sandboxed preview) only inside the viewport:
        # make the viewport as tall as the page rather than use a full-page capture.
        page.set_viewport_size({"width": 1100, "height": page.evaluate("document.documentElement.scrollHeight")})
        expect(frame.locator("a")).to_be_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "admin-email-template-en.png", animations="disabled")
        page.set_viewport_size({"width": 1100, "height": 900})

        # ... and saves it.
        page.locator('[data-tvwidget-action="save"]').click()
        expect(page.locator('[role="status"]')).to_contain_text("Saved")
        expect(subject).to_have_value("Your remote support session for #{ticket_id} – {company_name}")

        # An agent presses play in the ticket's widget; the email carries the new subject.
        helpdesk.widget_url = widget_url(base, "T-500")
        page.goto(f"{helpdesk.origin}/ticket")
        widget = page.frame_locator("iframe")
        widget.locator('[data-tvwidget-action="play"]').click()
        expect(widget.locator(EMAIL_STATUS)).to_have_attribute("data-status", "sent")
        (envelope,) = smtp.wait_for(1)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert message["Subject"] == "Your remote support session for #T-500 – Example Corp"
    assert not [text for text in problems if "Content Security Policy" in text], problems


def test_a_refused_email_shows_in_the_widget_with_resend_and_copy(app_factory, helpdesk, page, sandbox_url):
    handler = RefusesOnce()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        app = app_factory(FRAME_ANCESTORS=helpdesk.origin, TEAMVIEWER_API_URL=sandbox_url, MAIL_PORT=handler.port)
        connect(app)
        with serve(app) as base:
            helpdesk.widget_url = widget_url(base, "T-501")
            page.goto(f"{helpdesk.origin}/ticket")
            widget = page.frame_locator("iframe")
            widget.locator('[data-tvwidget-action="play"]').click()
            status = widget.locator(EMAIL_STATUS)
            expect(status).to_have_attribute("data-status", "failed")
            expect(status.locator('[role="alert"]')).to_contain_text("Could not be sent to john.doe@example.com")
            expect(widget.locator('[data-tvwidget-action="resend"]')).to_be_enabled()

            widget.locator("body").evaluate(FONTS_READY)
            widget.locator(WIDGET).hover(position={"x": 2, "y": 2})
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.locator("iframe").screenshot(path=SCREENSHOTS / "widget-email-failed-en.png", animations="disabled")

            # Copy link: the host grants no clipboard permission, so the link's text is selected instead.
            widget.locator('[data-tvwidget-action="copy-link"]').click()
            expect(widget.locator(".tvwidget-copy-status")).not_to_be_empty()
            selected = widget.locator("body").evaluate("() => window.getSelection().toString()")
            link = widget.locator('[data-tvwidget-field="customer-link"]').get_attribute("href")
            assert selected == link or widget.locator(".tvwidget-copy-status").inner_text() == "Copied"

            # The mail server takes it now; the agent resends from the widget.
            widget.locator('[data-tvwidget-action="resend"]').click()
            expect(widget.locator(EMAIL_STATUS)).to_have_attribute("data-status", "sent")
            assert len(handler.wait_for(1)) == 1
            assert re.match(r"^<.+@.+>$", email.message_from_bytes(
                handler.messages[0].content, policy=email.policy.default)["Message-ID"].strip())
    finally:
        controller.stop()
