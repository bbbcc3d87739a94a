"""The seed's whole flow inside django-helpdesk, in Debian's Chromium with third-party cookies blocked.

django-helpdesk is served by pytest-django's live server on http://localhost:<port>; tvwidget (with the
TeamViewer sandbox, a real SMTP server and its webhook pointed at the helpdesk) on http://127.0.0.1:<port>:
two sites, so the widget is a cross-site frame as in production.  Everything goes through django-helpdesk's
own login and pages: the widget is idle in the ticket, play opens a case and mails the requester, the
respond form's close is refused with tvwidget's message, stop, the follow-up naming the session code
appears, and the close goes through.  Once in English and once in Japanese (django-helpdesk ships no
Japanese catalogue, so its own labels stay English; Django's, the integration's and the widget's are Japanese).

Screenshots go to docs/screenshots/ with TVWIDGET_UPDATE_SCREENSHOTS=1 (else tests/_artifacts/).
"""
import os
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from helpdesk.models import FollowUp, Queue, Ticket

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture says why (or fails under TVWIDGET_REQUIRE_ALL)
    expect = None

pytestmark = pytest.mark.browser
# Playwright's sync API keeps an event loop running in the test thread; Django refuses ORM calls from such a
# thread unless told that this single-threaded, test-only use is fine.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = (ROOT / "docs" / "screenshots" if os.environ.get("TVWIDGET_UPDATE_SCREENSHOTS") == "1"
               else Path(__file__).resolve().parent / "_artifacts")
FRAME = 'iframe[title="TeamViewer"]'
WIDGET = "#tvwidget-widget"
CODE_RE = re.compile(r"^s\d{1,3}(-\d{3}){2}$")
TEXT = {
    "en": {"refused": "cannot be closed", "accept_language": "en-US"},
    "ja": {"refused": "クローズできません", "accept_language": "ja-JP"},
}


@pytest.fixture
def helpdesk(live_server, tvwidget, transactional_db):
    """The live helpdesk, tvwidget's webhook pointed at it, a staff user and a ticket with a requester."""
    tvwidget.app.config["HOST_WEBHOOK_URL"] = f"{live_server.url}/tvwidget/webhook/"
    user = get_user_model().objects.create_user("agent", "alex.morgan@helpdesk.example", "pw-agent-123",
                                                first_name="Alex", last_name="Morgan", is_staff=True)
    get_user_model().objects.create_user("john", "john.doe@example.com", first_name="John", last_name="Doe")
    queue = Queue.objects.create(title="PC", slug="pc", email_address="support@helpdesk.example")
    yield live_server, user, queue
    tvwidget.app.config["HOST_WEBHOOK_URL"] = None


NOTE = {"en": "Repaired the Outlook profile; it starts again.", "ja": "プリンタードライバーを再インストールしました。"}
TICKETS = {
    "en": ("Outlook crashes on start", "Since this morning Outlook closes right after the splash screen."),
    "ja": ("プリンターに印刷できない", "3階の複合機に印刷ジョブを送っても何も出てきません。"),
}


def ticket_for(queue, lang):
    subject, description = TICKETS[lang]
    ticket = Ticket.objects.create(title=subject, queue=queue, submitter_email="john.doe@example.com", priority=2,
                                   description=description)
    FollowUp.objects.create(ticket=ticket, title="Ticket opened", comment=ticket.description, public=True)
    return ticket


def shoot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => document.fonts.ready")
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True, animations="disabled")


def log_in(page, base_url):
    """Log in as the agent through django-helpdesk's own login page."""
    page.goto(f"{base_url}/login/")
    page.fill('input[name="username"]', "agent")
    page.fill('input[name="password"]', "pw-agent-123")
    page.locator('form button[type="submit"], form input[type="submit"]').first.click()
    page.wait_for_load_state()


def respond(page, status_value: int, comment: str):
    """Close (or otherwise update) the ticket with django-helpdesk's own respond form."""
    page.locator("#respond-tab").click()
    page.locator(f'#ticket-respond-form input[name="new_status"][value="{status_value}"]').check()
    page.locator("#commentBox").fill(comment)
    page.locator('#ticket-respond-form button[type="submit"]').click()
    page.wait_for_load_state()


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_whole_flow_inside_django_helpdesk(browser, helpdesk, tvwidget, smtp, lang):
    live_server, user, queue = helpdesk
    ticket = ticket_for(queue, lang)
    mails_before = len(smtp.messages)
    context = browser.new_context(viewport={"width": 1400, "height": 950}, locale=TEXT[lang]["accept_language"],
                                  extra_http_headers={"Accept-Language": TEXT[lang]["accept_language"]})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        log_in(page, live_server.url)  # django-helpdesk's own login page
        page.goto(f"{live_server.url}/tickets/{ticket.pk}/")

        # 1. the widget is idle in the ticket (a cross-site frame: localhost page, 127.0.0.1 widget)
        page.locator(FRAME).wait_for()
        frame = page.frame_locator(FRAME)
        expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "idle")
        assert page.locator(FRAME).element_handle().content_frame().url.startswith(tvwidget.url)
        assert live_server.url.startswith("http://localhost:")
        expect(frame.locator("html")).to_have_attribute("lang", lang)

        # 2. play: a case opens and the requester gets the email
        frame.locator('[data-tvwidget-action="play"]').click()
        expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "open")
        code = frame.locator('[data-tvwidget-field="session-code"]').inner_text().strip()
        assert CODE_RE.match(code), code
        mails = smtp.wait_for(mails_before + 1)
        assert any("john.doe@example.com" in message.rcpt_tos for message in mails[mails_before:])
        shoot(page, f"helpdesk-ticket-open-{lang}")

        # 3. django-helpdesk's own close (the respond form) is refused with tvwidget's message
        respond(page, Ticket.CLOSED_STATUS, "Solved remotely, closing.")
        alert = page.locator('.alert[role="alert"]').filter(has_text=code)
        expect(alert).to_be_visible()
        expect(alert).to_contain_text(TEXT[lang]["refused"])
        expect(alert).to_have_class(re.compile(r"alert-danger"))
        assert Ticket.objects.get(pk=ticket.pk).status == Ticket.OPEN_STATUS
        shoot(page, f"helpdesk-close-refused-{lang}")
        page.locator("#respond-tab").click()
        expect(page.locator("#commentBox")).to_have_value("Solved remotely, closing.")  # the reply is kept

        # 4. stop (after the note and outcome)
        frame = page.frame_locator(FRAME)
        expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "open")
        frame.locator('[data-tvwidget-action="stop"]').click()
        frame.locator('input[name="outcome"][value="resolved"]').check()
        frame.locator('textarea[name="note"]').fill(NOTE[lang])
        frame.locator('[data-tvwidget-action="confirm-stop"]').click()
        expect(frame.locator(WIDGET)).to_have_attribute("data-tvwidget-state", "idle")
        expect(page.locator('[data-tvwidget-helpdesk="followup-note"]')).to_be_visible()

        # 5. the follow-up naming the session code appears (tvwidget's signed webhook), private, by the agent,
        #    in the ticket's timeline without a reload (the panel swaps the follow-up list in)
        url = page.url
        expect(page.locator("#followup-tab-pane")).to_contain_text(code, timeout=20_000)
        assert page.url == url
        page.reload()
        expect(page.locator("#followup-tab-pane")).to_contain_text(code)
        followup = FollowUp.objects.get(ticket=ticket, title__contains=code)
        assert followup.public is False and followup.user == user and NOTE[lang] in followup.comment
        shoot(page, f"helpdesk-followup-{lang}")

        # 6. the close goes through
        respond(page, Ticket.CLOSED_STATUS, "Solved remotely, closing.")
        assert Ticket.objects.get(pk=ticket.pk).status == Ticket.CLOSED_STATUS
        expect(page.locator('.alert[role="alert"]').filter(has_text=TEXT[lang]["refused"])).to_have_count(0)
    finally:
        context.close()


def test_kanban_drag_to_closed_shows_the_message_in_the_boards_toast(browser, helpdesk, tvwidget, open_case):
    """django-helpdesk's own kanban board: dropping a ticket with an open case on Closed is refused (JSON 409)
    and the board's toast says why; the ticket stays open."""
    live_server, user, queue = helpdesk
    ticket = ticket_for(queue, "en")
    widget = open_case(ticket, user)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        log_in(page, live_server.url)
        page.goto(f"{live_server.url}/kanban/?due_weeks=0")  # every ticket, with or without a due date
        card = page.locator(f'.kanban-card[data-ticket-id="{ticket.pk}"]')
        card.drag_to(page.locator(f'.kanban-drop-zone[data-status="{Ticket.CLOSED_STATUS}"]'))
        toast = page.locator("#kanban-toast-msg")
        expect(toast).to_contain_text(widget.code())
        expect(toast).to_contain_text("cannot be closed")
        shoot(page, "helpdesk-kanban-refused-en")
        assert Ticket.objects.get(pk=ticket.pk).status == Ticket.OPEN_STATUS
    finally:
        context.close()


def test_a_superuser_reaches_tvwidgets_admin_area_from_the_ticket_page(browser, helpdesk, tvwidget):
    live_server, user, queue = helpdesk
    user.is_superuser = True
    user.save()
    ticket = ticket_for(queue, "en")
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        log_in(page, live_server.url)
        page.goto(f"{live_server.url}/tickets/{ticket.pk}/")
        with context.expect_page() as opened:
            page.locator('[data-tvwidget-helpdesk="admin-link"]').click()
        admin = opened.value
        admin.wait_for_load_state()
        assert admin.url.startswith(f"{tvwidget.url}/embed/admin/")
        expect(admin.locator('[data-tvwidget-action="revoke"]')).to_be_visible()  # the TeamViewer connection
    finally:
        context.close()
