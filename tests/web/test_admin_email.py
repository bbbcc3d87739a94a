"""The invitation template editor: form, validation, preview, save, reset, audit."""
import html
import json
import re

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from tvwidget.extensions import db
from tvwidget.mail import placeholders
from tvwidget.storage.models import AuditEvent, EmailTemplate

from ..conftest import make_token
from ..helpers import csrf

PAGE = "/embed/admin/email-template"


@pytest.fixture
def admin(client):
    """The test client with an admin session; returns the editor page of ``lang``."""
    response = client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None,
                                                                              sub="admin-7", name="Ada Admin")})
    assert response.status_code == 303, response.text

    def page(lang="en"):
        response = client.get(PAGE, query_string={"lang": lang})
        assert response.status_code == 200, response.text
        return response
    return page


def _post(client, page, path="", lang="en", htmx=False, **fields):
    data = {"csrf_token": csrf(page), "subject": "Hello {requester_name}", "body": "Link: {customer_link}"} | fields
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(PAGE + path, query_string={"lang": lang}, data=data, headers=headers)


def _state(app):
    """Everything a refused save must leave untouched."""
    with app.app_context():
        templates = db.session.execute(sa.select(EmailTemplate.language, EmailTemplate.subject,
                                                 EmailTemplate.body)).all()
        events = db.session.scalars(sa.select(AuditEvent.kind).where(AuditEvent.kind.like("template_%"))).all()
        db.session.remove()
    return templates, events


def _field_value(page_html: str, name: str) -> str:
    if name == "body":
        body = re.search(r'<textarea[^>]*name="body"[^>]*>\r?\n?(.*?)</textarea>', page_html, re.S)
        return html.unescape(body.group(1))
    return html.unescape(re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page_html).group(1))


# --- access -------------------------------------------------------------------------------------------

def test_the_editor_needs_the_admin_session(client):
    assert client.get(PAGE).status_code == 401


def test_agents_cannot_reach_the_editor(client):
    response = client.get("/embed/admin", query_string={"token": make_token(role="agent", ticket=None)})
    assert response.status_code == 403
    assert client.get(PAGE).status_code == 401


def test_saving_without_the_csrf_token_is_refused_and_saves_nothing(app, client, admin):
    admin()
    before = _state(app)
    response = client.post(PAGE, query_string={"lang": "en"}, data={"subject": "x {ticket_id}", "body": "y"})
    assert response.status_code == 400
    assert _state(app) == before


# --- the page ---------------------------------------------------------------------------------------

def test_the_page_shows_subject_body_placeholders_and_the_actions(admin):
    page = admin("en")
    text = page.text
    assert _field_value(text, "subject") == "Remote support for ticket #{ticket_id}: {ticket_subject}"
    assert _field_value(text, "body").startswith("Hello {requester_name},")
    for name in placeholders.PLACEHOLDERS:
        assert f"<code>{{{name}}}</code>" in text
    assert "{supporter_link}" not in text
    assert 'data-tvwidget-action="save"' in text and 'data-tvwidget-action="preview"' in text
    assert re.search(r'hx-post="/embed/admin/email-template/preview\?lang=en"', text)
    assert "vendor/htmx-2.0.11.min.js" in text and "tvwidget-admin.css" in text
    headers = json.loads(html.unescape(re.search(r"hx-headers='([^']*)'", text).group(1)))
    assert headers["X-CSRFToken"]
    assert 'href="/embed/admin/email-template?lang=ja"' in text
    # The page opens with a preview of the current template on sample data.
    assert 'data-tvwidget-field="preview-subject">Remote support for ticket #1234: Outlook crashes on start<' in text
    assert "<script>" not in text and " on" + "click=" not in text


def test_the_japanese_template_is_a_separate_form(admin):
    text = admin("ja").text
    assert _field_value(text, "body").startswith("{requester_name} 様")
    assert 'action="/embed/admin/email-template?lang=ja"' in text


def test_an_unknown_language_is_not_found(client, admin):
    admin()
    assert client.get(PAGE, query_string={"lang": "de"}).status_code == 404


# --- save, reset, audit --------------------------------------------------------------------------------

def test_saving_stores_the_template_and_records_who(app, client, admin):
    page = admin("ja")
    response = _post(client, page, lang="ja", subject="リモートサポート #{ticket_id}",
                     body="{requester_name} 様\r\n\r\n{customer_link}\r\n{{ 波括弧 }}")
    assert response.status_code == 303
    shown = client.get(response.headers["Location"])
    assert 'role="status"' in shown.text
    assert _field_value(shown.text, "subject") == "リモートサポート #{ticket_id}"
    with app.app_context():
        row = db.session.get(EmailTemplate, "ja")
        assert row.body == "{requester_name} 様\n\n{customer_link}\n{{ 波括弧 }}"
        assert (row.updated_by_id, row.updated_by_name) == ("admin-7", "Ada Admin")
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.kind == "template_saved"))
        assert event.actor_name == "Ada Admin" and json.loads(event.detail)["language"] == "ja"
        assert db.session.get(EmailTemplate, "en") is None


def test_reset_goes_back_to_the_builtin_template_and_is_audited(app, client, admin):
    page = admin()
    assert _post(client, page, subject="Custom {ticket_id}").status_code == 303
    page = admin()
    assert 'data-tvwidget-action="reset"' in page.text
    response = client.post(PAGE + "/reset", query_string={"lang": "en"}, data={"csrf_token": csrf(page)})
    assert response.status_code == 303
    shown = client.get(response.headers["Location"])
    assert _field_value(shown.text, "subject") == "Remote support for ticket #{ticket_id}: {ticket_subject}"
    with app.app_context():
        assert db.session.get(EmailTemplate, "en") is None
        kinds = db.session.scalars(sa.select(AuditEvent.kind).order_by(AuditEvent.id)).all()
        assert kinds[-2:] == ["template_saved", "template_reset"]
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.kind == "template_reset"))
        assert event.actor_id == "admin-7"


# --- refusals: 422, every offending token named, nothing saved ------------------------------------------

@pytest.mark.parametrize(("field", "value", "tokens"), [
    ("body", "Hi {foo} and {bar}", ["{foo}", "{bar}"]),
    ("body", "Hi {supporter_link}", ["{supporter_link}"]),
    ("body", "Hi {requester_name.__class__} {ticket_id[0]}", ["{requester_name.__class__}", "{ticket_id[0]}"]),
    ("body", "{% for x in range(10) %}x{% endfor %}", ["{% for x in range(10) %}", "{% endfor %}"]),
    ("body", "{# a comment #} ok", ["{# a comment #}"]),
    ("body", "Open {# here", ["{"]),
    ("body", "Close } before { open", ["}", "{"]),
    ("body", "Open { here and } there", ["{ here and }"]),
    ("subject", "Ticket {ticket_id} {0}", ["{0}"]),
    ("subject", "${__class__} {a.b}", ["{__class__}", "{a.b}"]),
])
def test_a_bad_placeholder_is_refused_with_each_token_named(app, client, admin, field, value, tokens):
    page = admin()
    before = _state(app)
    response = _post(client, page, **{field: value})
    assert response.status_code == 422
    alert = re.search(r'<div class="tvwidget-alert" role="alert">(.*?)</div>', response.text, re.S).group(1)
    assert "Nothing was saved" in alert
    for token in tokens:
        assert f"<code>{html.escape(token, quote=False)}</code>" in alert, token
    assert _state(app) == before
    # The admin's text comes back for correction.
    assert _field_value(response.text, field) == value


@pytest.mark.parametrize(("fields", "message"), [
    ({"subject": ""}, "Enter a subject."),
    ({"subject": "   "}, "Enter a subject."),
    ({"body": ""}, "Enter the message."),
    ({"subject": "x" * 201}, "Keep the subject to 200 characters or fewer."),
    ({"body": "x" * 5001}, "Keep the message to 5000 characters or fewer."),
    ({"subject": "Hi\nBcc: evil@example.com"}, "Use letters, digits, spaces and punctuation only."),
    ({"subject": "Hi\x00"}, "Use letters, digits, spaces and punctuation only."),
    ({"body": "Hi\x00 there"}, "invisible control characters"),
])
def test_empty_overlong_and_control_values_are_refused(app, client, admin, fields, message):
    page = admin()
    before = _state(app)
    response = _post(client, page, **fields)
    assert response.status_code == 422
    assert 'role="alert"' in response.text and message in response.text
    assert _state(app) == before


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=40)
@given(st.lists(st.sampled_from(["{ticket_id}", "{", "}", "{{", "}}", "{x}", "{a.b}", "{%", "%}", "{#", "text ",
                                 "{supporter_link}", "$"]), min_size=1, max_size=6).map("".join))
def test_the_form_refuses_exactly_what_problems_reports(app, client, admin, body):
    page = admin()
    response = _post(client, page, body=body)
    assert response.status_code == (422 if placeholders.problems(body) else 303)
    with app.app_context():
        db.session.execute(sa.delete(EmailTemplate))
        db.session.commit()
        db.session.remove()


# --- preview ----------------------------------------------------------------------------------------------

def test_preview_renders_subject_text_and_html_on_sample_data(app, client, admin):
    page = admin()
    before = _state(app)
    response = _post(client, page, "/preview", htmx=True, subject="Help with #{ticket_id} from {company_name}",
                     body="Dear {requester_name},\n\n<b>bold?</b> {ticket_subject}\n{customer_link}")
    assert response.status_code == 200
    assert "HX-Request" in response.headers["Vary"]
    text = response.text
    assert text.lstrip().startswith('<section id="tvwidget-email-preview"')  # a fragment for htmx to swap
    assert 'data-tvwidget-field="preview-subject">Help with #1234 from Example Corp<' in text
    assert "Dear John Doe,\n\n&lt;b&gt;bold?&lt;/b&gt; Outlook crashes on start" in text
    frame = re.search(r'<iframe[^>]*data-tvwidget-field="preview-html"[^>]*>', text).group(0)
    assert 'sandbox=""' in frame
    srcdoc = html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1))
    assert "&lt;b&gt;bold?&lt;/b&gt;" in srcdoc and "<b>" not in srcdoc  # escaped inside the email, too
    assert 'href="https://get.teamviewer.com/s123456789"' in srcdoc and "<script" not in srcdoc
    assert "/embed/email-preview.css" in srcdoc
    assert _state(app) == before  # a preview saves nothing


def test_preview_of_a_bad_template_is_422_with_the_tokens(client, admin):
    page = admin()
    response = _post(client, page, "/preview", htmx=True, body="Hi {nope} {a[0]}")
    assert response.status_code == 422
    assert 'role="alert"' in response.text
    assert "<code>{nope}</code>" in response.text and "<code>{a[0]}</code>" in response.text
    assert "<iframe" not in response.text


def test_preview_without_javascript_returns_the_whole_page(client, admin):
    page = admin()
    response = _post(client, page, "/preview", subject="Plain {ticket_id}")
    assert response.status_code == 200 and "<html" in response.text
    assert 'data-tvwidget-field="preview-subject">Plain 1234<' in response.text


def test_preview_stylesheet_carries_the_email_layout(client):
    response = client.get("/embed/email-preview.css")
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert ".tvwidget-mail-button {" in response.text
