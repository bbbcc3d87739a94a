"""``tvwidget doctor`` against real parts: aiosmtpd, the TeamViewer sandbox over HTTP, a migrated database."""
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask_migrate import upgrade

from tvwidget import create_app
from tvwidget.extensions import db
from tvwidget.ops import worker

from ..conftest import EMBED_SECRET, HOST_API_KEY, SANDBOX_TOKEN, connect, free_port
from ..helpers import admin_client, csrf

# The newest migration, as the doctor must name it (read from the scripts, not written down here).
HEAD = ScriptDirectory(str(Path(__file__).resolve().parents[2] / "migrations")).get_current_head()

SECRET_KEY = "doctor-secret-key-0123456789abcdef-0123456789"
ENCRYPTION_KEYS = "Ws0dQ7C4Ho3T9pvf9_kS7OTZHJxmRvqm2JhTn2v9h3E="
SECRETS = (SECRET_KEY, EMBED_SECRET, HOST_API_KEY, ENCRYPTION_KEYS, SANDBOX_TOKEN)


@pytest.fixture
def doctor_app(database_url, sandbox_url, smtp):
    """Return ``make(revision="head", **config)``: a migrated app, connected to the sandbox, whose worker ran."""
    made = []

    def make(revision: str = "head", token: str | None = SANDBOX_TOKEN, **overrides):
        app = create_app({
            "ENV": "development", "SECRET_KEY": SECRET_KEY, "EMBED_SECRET": EMBED_SECRET,
            "HOST_API_KEY": HOST_API_KEY, "ENCRYPTION_KEYS": ENCRYPTION_KEYS,
            "FRAME_ANCESTORS": "https://helpdesk.example", "SQLALCHEMY_DATABASE_URI": database_url,
            "TEAMVIEWER_API_URL": sandbox_url, "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp.port,
            "MAIL_DEFAULT_SENDER": "support@helpdesk.example", "SMTP_TIMEOUT": 3,
        } | overrides)
        made.append(app)
        with app.app_context():
            upgrade(revision=revision)
            if revision == "head":
                worker.run_due()
        if token:
            connect(app, token)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def doctor(app) -> tuple[int, dict[str, list[str]]]:
    """Run the command; return its exit code and its lines grouped by check label (``ok``/``FAIL`` first)."""
    result = app.test_cli_runner().invoke(args=["tvwidget", "doctor"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for secret in SECRETS:
        assert secret not in result.output
    lines = {}
    for line in result.output.splitlines()[:-1]:
        status, label, message = re.match(r"^(ok  |FAIL)  ([^:]+): (.*)$", line).groups()
        lines.setdefault(label, []).append(f"{status.strip()} {message}")
    assert result.output.splitlines()[-1].endswith("to fix.")
    return result.exit_code, lines


def failing(lines) -> dict[str, list[str]]:
    return {label: [m for m in messages if m.startswith("FAIL")] for label, messages in lines.items()
            if any(m.startswith("FAIL") for m in messages)}


def test_a_sound_installation_passes_every_check(doctor_app, smtp):
    code, lines = doctor(doctor_app())
    assert failing(lines) == {} and code == 0
    assert lines["Database schema"] == [f"ok at the newest revision ({HEAD})."]
    assert lines["SMTP server"][0].startswith(f"ok 127.0.0.1:{smtp.port} greets as ")
    assert smtp.messages == []  # greeted, nothing sent
    assert lines["TeamViewer token"] == ["ok valid."]
    assert len(lines["TeamViewer permission"]) == 3
    assert lines["Worker"][0].startswith("ok ran ")
    assert lines["TVWIDGET_SECRET_KEY"] == [f"ok set ({len(SECRET_KEY)} characters)."]


def test_smtp_down(doctor_app):
    code, lines = doctor(doctor_app(MAIL_PORT=free_port()))
    assert code == 1
    assert list(failing(lines)) == ["SMTP server"]
    assert "the mail server refused the connection" in lines["SMTP server"][0]
    assert "TVWIDGET_MAIL_SERVER" in lines["SMTP server"][0]


def test_revoked_token(doctor_app):
    code, lines = doctor(doctor_app(token="revoked-at-teamviewer-0001"))
    assert code == 1
    assert list(failing(lines)) == ["TeamViewer token"]
    assert "rejects the stored token" in lines["TeamViewer token"][0]


def test_missing_permission(doctor_app):
    code, lines = doctor(doctor_app(token="sandbox-noperm-token-0001"))  # the sandbox's token without scopes
    assert code == 1
    assert lines["TeamViewer token"] == ["ok valid."]
    permissions = lines["TeamViewer permission"]
    assert permissions[0] == "ok Account management: view"
    assert permissions[1].startswith("FAIL Session management: view") and "missing" in permissions[1]
    assert permissions[2].startswith("FAIL Connection reports: view") and "Edit profile" in permissions[2]


def test_not_connected_and_unreadable_token(doctor_app):
    code, lines = doctor(doctor_app(token=None))
    assert code == 1 and "not connected" in failing(lines)["TeamViewer token"][0]
    app = doctor_app(ENCRYPTION_KEYS="Xq3cX0l0GxJm0ZkqH2w3p6y1f0bK5cQy8n9sRr4tT1U=")
    connect(app)  # stored with this app's key...
    app.config["ENCRYPTION_KEYS"] = ENCRYPTION_KEYS  # ...which then disappears from the settings
    code, lines = doctor(app)
    assert code == 1 and "cannot be decrypted" in failing(lines)["TeamViewer token"][0]


def test_old_schema(doctor_app):
    code, lines = doctor(doctor_app(revision="5e0c2a7d41b9"))
    assert code == 1
    assert failing(lines)["Database schema"] == [
        f"FAIL at 5e0c2a7d41b9, the code needs {HEAD}. Run: flask --app wsgi db upgrade"]


def test_worker_never_ran_or_not_recently(doctor_app):
    app = doctor_app()
    with app.app_context():
        db.session.execute(sa.text("UPDATE tvwidget_worker_jobs SET last_finished_at = :old"),
                           {"old": "2020-01-01 00:00:00"})
        db.session.commit()
    code, lines = doctor(app)
    assert code == 1 and list(failing(lines)) == ["Worker"]
    assert "last ran" in lines["Worker"][0] and "tvwidget worker" in lines["Worker"][0]
    with app.app_context():
        db.session.execute(sa.text("DELETE FROM tvwidget_worker_jobs"))
        db.session.commit()
    code, lines = doctor(app)
    assert "has never run" in failing(lines)["Worker"][0]


def test_malformed_frame_ancestors_and_production_values(doctor_app):
    app = doctor_app()
    app.config["FRAME_ANCESTORS"] = "https://helpdesk.example/tickets helpdesk.example"
    code, lines = doctor(app)
    assert code == 1
    assert "'https://helpdesk.example/tickets'" not in lines["Frame ancestors"][0]  # named plainly
    assert "https://helpdesk.example/tickets, helpdesk.example: not an origin" in lines["Frame ancestors"][0]
    app.config["FRAME_ANCESTORS"] = "https://helpdesk.example"
    app.config["SMTP_TIMEOUT"] = 0
    code, lines = doctor(app)
    assert lines["Timeouts and intervals"] == ["FAIL TVWIDGET_SMTP_TIMEOUT must be positive numbers (seconds)."]
    app.config["SMTP_TIMEOUT"] = 3
    app.config["ENV"] = "production"
    app.config["HOST_API_KEY"] = "short"
    code, lines = doctor(app)
    assert lines["TVWIDGET_HOST_API_KEY"] == ["FAIL too short (5 characters, needs 24). Set a longer random value."]
    assert lines["TVWIDGET_TEAMVIEWER_API_URL"] == ["FAIL must use https in production."]


def test_the_health_page_asks_teamviewer_only_from_its_button(doctor_app):
    """GET shows the local checks; the button's POST (with the form's CSRF token) adds TeamViewer's answers."""
    client = admin_client(doctor_app(token="sandbox-noperm-token-0001"))  # valid, but without two permissions
    page = client.get("/embed/admin/health")
    assert page.status_code == 200
    assert 'id="tvwidget-health-teamviewer-checks"' not in page.text and "Account management" not in page.text
    assert 'data-tvwidget-action="ask-teamviewer"' in page.text
    assert "Everything is fine." in page.text
    asked = client.post("/embed/admin/health", data={"csrf_token": csrf(page)})
    assert asked.status_code == 200
    teamviewer = asked.text.split('id="tvwidget-health-teamviewer-checks"')[1].split("</table>")[0]
    # Only TeamViewer knows these: the sandbox takes the token and refuses two of the three permissions.
    assert teamviewer.count('data-tvwidget-ok="true"') == 2 and teamviewer.count('data-tvwidget-ok="false"') == 2
    assert "valid." in teamviewer and "Account management: view" in teamviewer
    assert "Session management: view: missing" in teamviewer
    assert "Checks that need attention: 2." in asked.text
    assert 'id="tvwidget-health"' in asked.text  # the local checks stay on the page

    refused = client.post("/embed/admin/health", data={})
    assert refused.status_code == 400 and "The form expired" in refused.text
    assert "Account management" not in refused.text


@pytest.mark.browser
def test_the_admin_health_page_shows_the_checks_in_english_and_japanese(doctor_app, browser):
    """The Health section at 360 px, one problem (SMTP down) among the checks, TeamViewer asked from the button.

    Screenshots en and ja, after the button's answers arrived.
    """
    from playwright.sync_api import expect

    from ..conftest import FONTS_READY, make_token, screenshot_dir
    from ..live import serve

    app = doctor_app(MAIL_PORT=free_port())
    with serve(app) as base_url:
        for locale, heading, summary in (("en", "Health", "Checks that need attention: 1."),
                                         ("ja", "ヘルスチェック", "対応が必要なチェック: 1 件。")):
            context = browser.new_context(viewport={"width": 360, "height": 800}, locale=locale)
            try:
                page = context.new_page()
                token = make_token(role="admin", ticket=None, sub="admin-1", name="Ada Admin", locale=locale)
                page.goto(f"{base_url}/embed/admin?token={token}")
                page.goto(f"{base_url}/embed/admin/health")
                expect(page.locator("h1")).to_have_text(heading)
                expect(page.locator("#tvwidget-health-summary")).to_have_text(summary)
                failing_rows = page.locator('#tvwidget-health tr[data-tvwidget-ok="false"]')
                expect(failing_rows).to_have_count(1)
                expect(failing_rows.first).to_contain_text("SMTP")
                rows = page.locator("#tvwidget-health tbody tr")
                assert rows.count() >= 15
                text = page.locator("body").inner_text()
                for secret in SECRETS:
                    assert secret not in text
                # One form: the button that asks TeamViewer (read-only questions), whose answers then appear.
                expect(page.locator("main form")).to_have_count(1)
                expect(page.locator("#tvwidget-health-teamviewer-checks")).to_have_count(0)
                page.locator('[data-tvwidget-action="ask-teamviewer"]').click()
                asked = page.locator('#tvwidget-health-teamviewer-checks tr[data-tvwidget-ok="true"]')
                expect(asked).to_have_count(4)  # the token and three permissions
                expect(page.locator("#tvwidget-health-summary")).to_have_text(summary)
                page.locator("body").evaluate(FONTS_READY)
                path = screenshot_dir() / f"admin-health-{locale}.png"
                page.screenshot(path=path, full_page=True, animations="disabled")
                assert page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scrolling
            finally:
                context.close()
