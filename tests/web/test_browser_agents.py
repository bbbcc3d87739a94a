"""The Agents page in a real browser, English and Japanese: every match, an override, sharing, a 403
directory; and the widget naming whose TeamViewer the case is assigned to.  Screenshots go to
conftest's ``screenshot_dir()`` (``admin-agents-*.png``, ``widget-assigned-*.png``)."""
from datetime import timedelta

import pytest

from tvwidget.demo.sandbox import create_sandbox_app
from tvwidget.extensions import db
from tvwidget.storage.models import DirectoryState, IntegrationSettings

from ..browser import expect
from ..conftest import FONTS_READY, connect, make_token, open_widget, screenshot_dir, ticket_claim
from ..live import serve

pytestmark = pytest.mark.browser

SCREENSHOTS = screenshot_dir()
AGENTS = [  # (sub, name, email as the helpdesk knows it)
    ("agent-1", "Alex Morgan", "alex.morgan@helpdesk.example"),
    ("agent-2", "田中 愛子", "aiko.tanaka@helpdesk.example"),      # TeamViewer has Aiko.Tanaka@Helpdesk.example
    ("agent-3", "Sam Lee", "sam.lee@helpdesk.example"),           # two TeamViewer users share it
    ("agent-4", "Chris Former", "chris.former@helpdesk.example"),  # deactivated in TeamViewer
    ("agent-5", "Pat Doe", "pat.doe@helpdesk.example"),           # not in TeamViewer
]


def _shoot(page, name):
    page.locator("body").evaluate(FONTS_READY)
    page.mouse.move(0, 0)
    path = SCREENSHOTS / name
    page.screenshot(path=path, full_page=True, animations="disabled")
    assert path.stat().st_size > 5000


def _admin_page(browser, base_url, locale):
    context = browser.new_context(viewport={"width": 1200, "height": 800}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(10_000)
    token = make_token(role="admin", ticket=None, sub="admin-1", name="Ada Admin", locale=locale)
    page.goto(f"{base_url}/embed/admin?token={token}")
    page.goto(f"{base_url}/embed/admin/agents")
    return context, page


def test_agents_page_and_assigned_widget_in_both_languages(app_factory, browser, smtp):
    sandbox = create_sandbox_app()
    with serve(sandbox) as sandbox_base:
        app = app_factory(TEAMVIEWER_API_URL=sandbox_base + "/api/v1")
        connect(app)
        with app.app_context():
            db.session.get(IntegrationSettings, 1).account_email = "sandbox@example.com"
            db.session.commit()
        for number, (sub, name, email) in enumerate(AGENTS):
            widget = open_widget(app, sub=sub, name=name, email=email, ticket=ticket_claim(f"T-{number}"))
            assert widget.play().status_code == 200 and widget.state() == "open"

        with serve(app) as base_url:
            context, page = _admin_page(browser, base_url, "en")
            try:
                rows = page.locator("[data-tvwidget-agent]")
                expect(rows).to_have_count(5)
                for sub, status in [("agent-1", "matched"), ("agent-2", "matched"), ("agent-3", "ambiguous"),
                                    ("agent-4", "inactive"), ("agent-5", "not_found")]:
                    expect(page.locator(f'[data-tvwidget-agent="{sub}"]')).to_have_attribute(
                        "data-tvwidget-match", status)
                # The admin settles the ambiguous address and keeps Pat's cases unassigned.
                row = page.locator('[data-tvwidget-agent="agent-3"]')
                row.locator("select").select_option("u2000004")
                row.locator('[data-tvwidget-action="save-agent"]').click()
                expect(page.locator('[data-tvwidget-agent="agent-3"]')).to_have_attribute(
                    "data-tvwidget-match", "override")
                page.locator('[data-tvwidget-agent="agent-5"] select').select_option("none")
                page.locator('[data-tvwidget-agent="agent-5"] [data-tvwidget-action="save-agent"]').click()
                expect(page.locator('[data-tvwidget-agent="agent-5"]')).to_have_attribute(
                    "data-tvwidget-match", "dont_assign")
                page.click('[data-tvwidget-action="share-group"]')
                expect(page.locator('[data-tvwidget-share="agent-1"]')).to_have_attribute("data-status", "pending")
                _shoot(page, "admin-agents-en.png")
            finally:
                context.close()

            context, page = _admin_page(browser, base_url, "ja")
            try:
                expect(page.locator("h1")).to_have_text("サポートユーザーとTeamViewerユーザー")
                expect(page.locator("main")).to_contain_text("サービスケースの変更を通知する")
                _shoot(page, "admin-agents-ja.png")
                # The token loses the directory: a normal state, said in words, with the permission to add.
                with sandbox.app_context():
                    sandbox.extensions["tvwidget_sandbox"].directory_forbidden = True
                with app.app_context():  # a minute later (a refresh seconds after the last is the same one)
                    db.session.get(DirectoryState, 1).claimed_at -= timedelta(minutes=1)
                    db.session.commit()
                page.click('[data-tvwidget-action="refresh-directory"]')
                expect(page.locator("#directory [role=alert]")).to_contain_text("invalid_permission")
                _shoot(page, "admin-agents-403-ja.png")
            finally:
                context.close()

            for locale in ("en", "ja"):
                context = browser.new_context(viewport={"width": 360, "height": 640}, locale="en-GB")
                try:
                    page = context.new_page()
                    token = make_token(sub="agent-1", name="Alex Morgan", email="alex.morgan@helpdesk.example",
                                       locale=locale, ticket=ticket_claim("T-0"))
                    page.goto(f"{base_url}/embed/widget?token={token}")
                    expect(page.locator('[data-tvwidget-field="assignee"]')).to_contain_text("Alex Morgan")
                    _shoot(page, f"widget-assigned-{locale}.png")
                finally:
                    context.close()
