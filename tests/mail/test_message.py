"""The invitation email as it reaches a real SMTP server, and its lifecycle in the widget (
checklist 18-20)."""
import email
import json
import os
import re
from email import policy
from email.headerregistry import Address
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from hypothesis import given, settings, strategies as st

from tvwidget.extensions import db
from tvwidget.mail import message as mail
from tvwidget.storage.models import AuditEvent, Comment, EmailMessage, EmailTemplate, ServiceCase

from ..conftest import HOST_API_KEY, SANDBOX_TOKEN, ticket_claim

API = {"Authorization": f"Bearer {HOST_API_KEY}"}
SANDBOX_AUTH = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
pytestmark = pytest.mark.usefixtures("free_sandbox_licences")


def _received(smtp, count=1):
    envelopes = smtp.wait_for(count)
    assert len(envelopes) == count
    envelope = envelopes[-1]
    return envelope, email.message_from_bytes(envelope.content, policy=policy.default)


def _link(html: str, field: str) -> str:
    return re.search(rf'data-tvwidget-field="{field}" href="([^"]+)"', html).group(1)


def _save_template(app, language, subject, body):
    with app.app_context():
        db.session.merge(EmailTemplate(language=language, subject=subject, body=body, updated_by_name="Ada"))
        db.session.commit()


# --- the message ----------------------------------------------------------------------------------

def test_invitation_has_text_and_html_parts_with_the_customer_link(connected_app, launch, smtp):
    widget = launch()
    widget.play()
    envelope, message = _received(smtp)
    assert envelope.rcpt_tos == ["john.doe@example.com"]
    assert message["To"] == "john.doe@example.com" and message["From"] == "support@helpdesk.example"
    assert message["Subject"] == "Remote support for ticket #T-1: Outlook crashes on start"
    assert len(message.get_all("Subject")) == 1 and message["Bcc"] is None and message["Cc"] is None
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    code = widget.field("session-code")
    customer, supporter = _link(widget.html, "customer-link"), _link(widget.html, "supporter-link")
    assert "Hello John Doe," in text and code in text and "Alex Morgan" in text and "Example Corp" in text
    assert customer in text and f'href="{customer}"' in html and ">Start remote support</a>" in html
    assert supporter not in envelope.content.decode()
    with connected_app.app_context():
        stored = db.session.scalar(sa.select(EmailMessage))
        assert message["Message-ID"].strip() == stored.message_id and stored.status == "sent" and stored.attempts == 1
        assert stored.language == "en"


@pytest.mark.parametrize(("claims", "config", "language"), [
    ({"ticket": ticket_claim(requester={"name": "John Doe", "email": "john.doe@example.com", "locale": "ja"})},
     {}, "ja"),
    ({"locale": "ja"}, {}, "en"),  # the agent's language does not decide the requester's email
    ({}, {"DEFAULT_LOCALE": "ja"}, "ja"),
    ({"ticket": ticket_claim(requester={"name": "John Doe", "email": "john.doe@example.com", "locale": "en"})},
     {"DEFAULT_LOCALE": "ja"}, "en"),
])
def test_the_email_is_in_the_requesters_language_else_the_default(app_factory, smtp, claims, config, language):
    from ..conftest import Widget, connect, make_token

    app = app_factory(**config)
    connect(app)
    client = app.test_client()
    Widget(client, client.get("/embed/widget", query_string={"token": make_token(**claims)}).text).play()
    _, message = _received(smtp)
    text = message.get_body(("plain",)).get_content()
    assert text.startswith("John Doe 様") if language == "ja" else text.startswith("Hello John Doe,")
    with app.app_context():
        assert db.session.scalar(sa.select(EmailMessage.language)) == language


def test_the_admins_saved_template_shapes_the_email(connected_app, launch, smtp):
    _save_template(connected_app, "en", "Help with #{ticket_id} from {company_name} {{ref}}",
                   "Hi {requester_name},\n\nplease open {customer_link}\n\n<b>{technician_name}</b>")
    launch().play()
    envelope, message = _received(smtp)
    assert message["Subject"] == "Help with #T-1 from Example Corp {ref}"
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(("html",)).get_content()
    assert text.startswith("Hi John Doe,\n\nplease open http")
    assert "&lt;b&gt;Alex Morgan&lt;/b&gt;" in html and "<b>" not in html


def test_a_hand_edited_invalid_template_falls_back_to_the_default(connected_app, launch, smtp):
    _save_template(connected_app, "en", "Leak {ticket_id.__class__}", "{supporter_link}")
    launch().play()
    _, message = _received(smtp)
    assert message["Subject"] == "Remote support for ticket #T-1: Outlook crashes on start"


@pytest.mark.parametrize("subject", [
    "Hi\nBcc: evil@example.com",
    "Hi\r\nBcc: evil@example.com",
    "Hi=?UTF-8?Q?=0A?=Bcc: evil@example.com",
    "Hi\x00Bcc: evil@example.com",
    "Hi\n",
])
def test_ticket_subject_cannot_inject_headers(connected_app, launch, smtp, subject):
    launch(ticket=ticket_claim(subject=subject)).play()
    envelope, message = _received(smtp)
    assert envelope.rcpt_tos == ["john.doe@example.com"]
    assert message["Bcc"] is None and len(message.get_all("Subject")) == 1
    headers = envelope.content.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"(^|\n)bcc:", headers, re.IGNORECASE)  # no header line, only subject text
    assert message["Subject"].startswith("Remote support for ticket #T-1: Hi") and "\n" not in message["Subject"]


def test_an_admin_subject_cannot_inject_headers_either(connected_app, launch, smtp):
    _save_template(connected_app, "en", "{requester_name} =?UTF-8?Q?=0A?=Bcc: evil@example.com", "{customer_link}")
    launch(ticket=ticket_claim(requester={"name": "Eve\r\nBcc: evil2@example.com", "email": "eve@example.com"})).play()
    envelope, message = _received(smtp)
    assert envelope.rcpt_tos == ["eve@example.com"]
    assert message["Bcc"] is None and len(message.get_all("Subject")) == 1
    assert not re.search(rb"(^|\n)bcc:", envelope.content.split(b"\r\n\r\n", 1)[0], re.IGNORECASE)


def test_values_are_escaped_in_the_html_part(connected_app, launch, smtp):
    hostile = '<img src=x onerror="alert(1)">'
    launch(ticket=ticket_claim(subject=hostile, requester={"name": "<b>Eve</b>", "email": "eve@example.com"})).play()
    _, message = _received(smtp)
    html = message.get_body(("html",)).get_content()
    assert "<img src=x" not in html and "&lt;img src=x" in html and "<b>Eve</b>" not in html


@pytest.fixture(scope="module")
def render_app():
    """An app for rendering only (no database is touched)."""
    from tvwidget import create_app

    app = create_app({"ENV": "development", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                      "TEAMVIEWER_API_URL": "http://127.0.0.1:5999/api/v1"})
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize(("link", "button"), [
    ("https://get.teamviewer.com/v15/s123456789", True),
    ("https://teamviewer.com/s123456789", True),
    ("javascript:alert(1)", False),
    ("http://get.teamviewer.com/v15/s123456789", False),       # TeamViewer's links are https
    ("https://get.teamviewer.com.evil.example/s1", False),     # a look-alike host
    ("https://evil.example/get.teamviewer.com", False),
    ("https://evil.example\\.teamviewer.com/s1", False),       # browsers read the backslash as a slash
    ("https://[::1/s1", False),                                 # not even a URL
    ("data:text/html,<script>alert(1)</script>", False),
])
def test_only_an_https_teamviewer_link_becomes_the_button(render_app, link, button):
    """Checklist 19: the button is https on TeamViewer's host only (or the configured API's own origin, the
    sandbox's); the text part keeps the value as plain text whatever it is."""
    values = {"customer_link": link, "requester_name": "Ann"}
    with render_app.test_request_context():
        rendered = mail.render_invitation(mail.Template("en", "Hi", "Hi {requester_name} {customer_link}"), values)
    assert ("href" in rendered.html) is button
    if button:
        assert f'href="{link}"' in rendered.html
    assert link in rendered.text


def test_the_sandbox_links_on_the_api_origin_become_the_button(render_app):
    link = render_app.config["TEAMVIEWER_API_URL"].removesuffix("/api/v1") + "/s/123456789"
    with render_app.test_request_context():
        rendered = mail.render_invitation(mail.Template("en", "Hi", "{customer_link}"), {"customer_link": link})
    assert f'href="{link}"' in rendered.html


ADDRESS_PIECES = st.sampled_from(["a@example.com", "b@example.org", "John <john@example.com>", ", ", " ", "\n",
                                  "\r\n", "Bcc: evil@example.com", "\"x\"@example.com", "<", ">", ";", "\x00",
                                  "=?UTF-8?Q?=0A?=", "@", "example.com"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.emails(), st.lists(ADDRESS_PIECES, min_size=1, max_size=5).map("".join),
                 st.text(max_size=40)))
def test_an_accepted_requester_address_is_always_exactly_one_plain_address(address):
    """Checklist 20: whatever the host sends, what tvwidget mails to parses as one bare address, nothing else."""
    accepted = mail.valid_address(address)
    if accepted is None:
        return
    assert not re.search(r"[\x00-\x20,;<>\x7f]", accepted)
    parsed = Address(addr_spec=accepted)
    assert parsed.addr_spec == accepted and parsed.display_name == ""
    header = email.message_from_string(f"To: {accepted}\n\n", policy=policy.default)["To"]
    assert [a.addr_spec for a in header.addresses] == [accepted]


@pytest.mark.parametrize("address", [
    "not-an-address",
    "a@example.com, b@example.com",
    "a@example.com b@example.com",
    "John <john@example.com>",
    "john@example.com\nBcc: evil@example.com",
    "",
])
def test_without_a_valid_requester_address_the_case_opens_and_the_link_is_offered(connected_app, launch, smtp,
                                                                                  address):
    widget = launch(ticket=ticket_claim(requester={"name": "No Mail", "email": address}))
    widget.play()
    assert widget.state() == "open"
    assert 'data-tvwidget-field="email-status" data-status="failed"' in widget.html
    assert "No email could be sent" in widget.html and "no valid requester address" in widget.html
    assert 'data-tvwidget-action="copy-link"' in widget.html and _link(widget.html, "customer-link")
    assert smtp.messages == []
    with connected_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(EmailMessage)) == 0
        assert "email_not_sent" in db.session.scalars(sa.select(AuditEvent.kind)).all()


# --- resend ----------------------------------------------------------------------------------------------

def test_resend_sends_the_same_message_again_with_the_same_message_id(connected_app, launch, smtp):
    widget = launch()
    widget.play()
    assert 'data-tvwidget-action="resend"' in widget.html  # also on demand after a successful send
    response = widget.post("resend")
    assert response.status_code == 200 and 'data-status="sent"' in widget.html
    first, second = (email.message_from_bytes(e.content, policy=policy.default) for e in smtp.wait_for(2))
    assert first["Message-ID"] == second["Message-ID"]
    assert first.get_body(("plain",)).get_content() == second.get_body(("plain",)).get_content()
    assert smtp.messages[1].rcpt_tos == ["john.doe@example.com"]
    with connected_app.app_context():
        events = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.kind.in_(
            ["email_sent", "email_resent"])).order_by(AuditEvent.id)).all()
        assert [e.kind for e in events] == ["email_sent", "email_resent", "email_sent"]
        assert events[1].actor_name == "Alex Morgan"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(EmailMessage)) == 1


def test_resend_without_an_open_case_says_so(connected_app, launch, smtp):
    widget = launch()
    widget.play()
    widget.stop()
    response = widget.post("resend")
    assert response.status_code == 409 and 'role="alert"' in widget.html
    assert "no open service case" in widget.html
    assert len(smtp.wait_for(1)) == 1


def test_resend_needs_the_widget_credential(connected_app, launch, smtp):
    widget = launch()
    widget.play()
    response = widget.client.post("/embed/widget/resend", headers={"HX-Request": "true",
                                                                  "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 403
    cross_site = widget.post("resend", **{"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    assert len(smtp.wait_for(1)) == 1


def test_resend_after_the_host_fixed_the_address_sends_the_first_invitation(connected_app, launch, client, smtp):
    widget = launch(ticket=ticket_claim(requester={"name": "Ann", "email": "ann(at)example.com"}))
    widget.play()
    assert widget.post("resend").status_code == 409
    assert "no valid requester address" in widget.html and smtp.messages == []
    fixed = client.put("/api/v1/tickets/T-1", headers=API,
                       json=ticket_claim(requester={"name": "Ann", "email": "ann@example.com"}))
    assert fixed.status_code in (200, 204), fixed.text
    widget.post("resend")
    envelope, _ = _received(smtp)
    assert envelope.rcpt_tos == ["ann@example.com"] and 'data-status="sent"' in widget.html


# --- copy link ---------------------------------------------------------------------------------------------

def test_copy_link_is_a_scripted_button_with_a_selection_fallback(connected_app, launch, smtp):
    widget = launch()
    widget.play()
    button = re.search(r'<button[^>]*data-tvwidget-action="copy-link"[^>]*>', widget.html).group(0)
    assert 'type="button"' in button and "onclick" not in button
    assert 'data-tvwidget-copied="Copied"' in button
    script = (Path(__file__).resolve().parents[2] / "static" / "tvwidget.js").read_text()
    assert "navigator.clipboard.writeText" in script and "selectNodeContents" in script


# --- replace -------------------------------------------------------------------------------------------------

def _replace_values(html: str) -> dict:
    return json.loads(re.search(r'data-tvwidget-action="replace"\s+hx-post="[^"]+"\s+hx-vals=\'([^\']+)\'',
                                html).group(1))


def test_replace_closes_the_unused_case_and_sends_a_fresh_invitation(connected_app, launch, client, smtp,
                                                                     sandbox_url):
    widget = launch()
    widget.play()
    old_code, old_link = widget.field("session-code"), _link(widget.html, "customer-link")
    response = widget.post("replace", _replace_values(widget.html))
    assert response.status_code == 200
    new_code, new_link = widget.field("session-code"), _link(widget.html, "customer-link")
    assert widget.state() == "open" and new_code != old_code and new_link != old_link
    assert 'role="status"' in widget.html and "this is a new one" in widget.html
    assert 'data-status="sent"' in widget.html

    old = requests.get(f"{sandbox_url}/sessions/{old_code}", headers=SANDBOX_AUTH, timeout=5).json()
    assert old["state"].lower() == "closed"
    first, second = (email.message_from_bytes(e.content, policy=policy.default) for e in smtp.wait_for(2))
    assert first["Message-ID"] != second["Message-ID"]
    assert new_link in second.get_body(("plain",)).get_content()
    assert old_link not in second.get_body(("plain",)).get_content()

    with connected_app.app_context():
        states = dict(db.session.execute(sa.select(ServiceCase.code, ServiceCase.state)).all())
        assert states == {old_code: "closed", new_code: "open"}
        (comment,) = db.session.scalars(sa.select(Comment)).all()
        assert old_code in comment.body and "Replaced by a new service case" in comment.body
        events = {e.kind: json.loads(e.detail) for e in db.session.scalars(sa.select(AuditEvent))}
        assert events["case_closed"]["replaced"] is True
        assert (events["case_replaced"]["old_code"], events["case_replaced"]["new_code"]) == (old_code, new_code)
    case = client.get("/api/v1/tickets/T-1/service-case", headers=API).get_json()
    assert case["code"] == new_code


def test_replace_is_refused_while_the_customer_is_online(connected_app, launch, smtp, sandbox_url):
    widget = launch()
    widget.play()
    code, link = widget.field("session-code"), _link(widget.html, "customer-link")
    joined = requests.post(link, data={"action": "start"}, timeout=5)  # the customer starts QuickSupport
    assert joined.ok
    response = widget.post("replace", _replace_values(widget.html))
    assert response.status_code == 409
    assert 'role="alert"' in widget.html and "connected to service case" in widget.html
    assert widget.field("session-code") == code and widget.state() == "open"
    remote = requests.get(f"{sandbox_url}/sessions/{code}", headers=SANDBOX_AUTH, timeout=5).json()
    assert remote["state"].lower() == "open"
    assert len(smtp.wait_for(1)) == 1
    with connected_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServiceCase)) == 1


def test_a_second_replace_of_the_same_case_does_not_replace_the_new_one(connected_app, launch, smtp):
    widget = launch()
    widget.play()
    stale = _replace_values(widget.html)
    widget.post("replace", stale)
    new_code = widget.field("session-code")
    again = widget.post("replace", stale)  # the same click delivered twice: nothing more happens
    assert again.status_code == 200 and widget.field("session-code") == new_code
    other_window = widget.post("replace", stale | {"idempotency_key": "f" * 32})
    assert other_window.status_code == 409 and "already stopped or replaced" in widget.html
    with connected_app.app_context():
        assert sorted(db.session.scalars(sa.select(ServiceCase.state))) == ["closed", "open"]


@pytest.mark.parametrize("address", ["=?UTF-8?Q?=0A?=@example.com", "=?UTF-8?Q?=0A?=a@example.com",
                                     "a=?UTF-8?B?Cg==?=@example.com"])
def test_an_address_holding_an_encoded_word_is_refused(address):
    """Found by the property above: mail readers would decode these local parts (a line break here)."""
    assert mail.valid_address(address) is None


# ==========================================================================================================
# 19. Both MIME parts, golden
# ==========================================================================================================

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
GOLDEN_VALUES = {
    "requester_name": 'Ann <b>"O\'Neil"</b> & Co',
    "requester_email": "ann@example.com",
    "ticket_id": "T-42",
    "ticket_subject": "Printer <script>alert(1)</script> & {ticket_id}",
    "technician_name": "Alex Morgan",
    "technician_email": "alex@helpdesk.example",
    "session_code": "s123-456-789",
    "customer_link": "https://get.teamviewer.com/v15/s123456789?x=1&y=<2>",
    "valid_until": "25 Nov 2026, 10:00:00 (UTC)",
    "company_name": "Example & Sons",
}


@pytest.mark.parametrize("language", ["en", "ja"])
def test_19_the_invitation_parts_match_their_golden_files(app, language):
    """The HTML part escapes every value; the text part is raw but control-free; the button is TeamViewer's
    https link.  TVWIDGET_UPDATE_GOLDEN=1 rewrites the files (review the diff before committing it)."""
    with app.test_request_context():
        rendered = mail.render_invitation(mail.default_template(language), GOLDEN_VALUES)
    parts = {"subject.txt": rendered.subject + "\n", "txt": rendered.text, "html": rendered.html}
    for suffix, content in parts.items():
        path = GOLDEN / f"invitation-{language}.{suffix}"
        if os.environ.get("TVWIDGET_UPDATE_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        assert content == path.read_text(encoding="utf-8"), f"{path.name} differs from its golden file"
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", rendered.text)
    assert "<script>" not in rendered.html and "<b>" not in rendered.html
    assert 'href="https://get.teamviewer.com/v15/s123456789?x=1&amp;y=&lt;2&gt;"' in rendered.html
