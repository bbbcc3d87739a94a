"""The invitation email as it reaches a real SMTP server (F5, F9; RELIABILITY decision 6)."""
import email
import re
from email import policy

import pytest
import sqlalchemy as sa

from tvwidget import placeholders
from tvwidget.extensions import db
from tvwidget.models import EmailMessage

from .conftest import ticket_claim


def _received(smtp):
    (envelope,) = smtp.wait_for(1)
    return envelope, email.message_from_bytes(envelope.content, policy=policy.default)


def test_invitation_has_text_and_html_parts_with_the_customer_link(connected_app, launch, smtp):
    widget = launch()
    widget.play()
    envelope, message = _received(smtp)
    assert message["To"] == "john.doe@example.com" and message["From"] == "support@helpdesk.example"
    assert message["Subject"] == "Remote support for ticket #T-1: Outlook crashes on start"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    code = widget.field("session-code")
    assert "Hello John Doe," in text and code in text and "Alex Morgan" in text and "Example Corp" in text
    assert 'href="http' in html and code in html
    with connected_app.app_context():
        stored = db.session.scalar(sa.select(EmailMessage))
        assert message["Message-ID"].strip() == stored.message_id and stored.status == "sent" and stored.attempts == 1


def test_japanese_invitation(connected_app, launch, smtp):
    launch(locale="ja").play()
    _, message = _received(smtp)
    assert message.get_body(("plain",)).get_content().startswith("John Doe 様")


@pytest.mark.parametrize("subject", [
    "Hi\nBcc: evil@example.com",
    "Hi\r\nBcc: evil@example.com",
    "Hi=?UTF-8?Q?=0A?=Bcc: evil@example.com",
    "Hi\x00Bcc: evil@example.com",
])
def test_ticket_subject_cannot_inject_headers(connected_app, launch, smtp, subject):
    launch(ticket=ticket_claim(subject=subject)).play()
    envelope, message = _received(smtp)
    assert envelope.rcpt_tos == ["john.doe@example.com"]
    assert message["Bcc"] is None
    headers = envelope.content.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"(^|\n)bcc:", headers, re.IGNORECASE)  # no header line, only subject text
    assert message["Subject"].startswith("Remote support for ticket #T-1: Hi") and "\n" not in message["Subject"]


def test_values_are_escaped_in_the_html_part(connected_app, launch, smtp):
    hostile = '<img src=x onerror="alert(1)">'
    launch(ticket=ticket_claim(subject=hostile, requester={"name": "<b>Eve</b>", "email": "eve@example.com"})).play()
    _, message = _received(smtp)
    html = message.get_body(("html",)).get_content()
    assert "<img src=x" not in html and "&lt;img src=x" in html and "<b>Eve</b>" not in html


def test_placeholders_substitute_only_known_names_and_literal_braces():
    values = {"ticket_id": "42", "requester_name": "{customer_link}"}
    rendered = placeholders.render("#{ticket_id} {{x}} {requester_name} {unknown}", values)
    assert rendered == "#42 {x} {customer_link} {unknown}"
    assert placeholders.problems("{ticket_id} {supporter_link} {a.__class__} {0} { {{ok}}") == [
        "{supporter_link}", "{a.__class__}", "{0}", "{"]
