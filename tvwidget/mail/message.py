"""The invitation email: built from the admin's template, stored with the case, delivered by the outbox.

Building and delivering are apart on purpose: ``queue_invitation`` only adds a
row to the caller's transaction, and ``deliver`` only talks SMTP and never
touches the database (``tvwidget.mail.outbox`` decides when and records the outcome).
"""
import logging
import re
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from urllib.parse import urlsplit

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import force_locale, gettext, lazy_gettext as _l
from flask_mail import BadHeaderError, Connection, Message
from markupsafe import Markup, escape

from tvwidget import timefmt
from tvwidget.config import setting
from tvwidget.extensions import db
from tvwidget.i18n import render_page
from tvwidget.mail import placeholders
from tvwidget.storage import delivery
from tvwidget.storage.models import EmailMessage, EmailTemplate, ServiceCase, utcnow

log = logging.getLogger(__name__)

LANGUAGES = ("en", "ja")
SUBJECT_MAX_LENGTH = 200
BODY_MAX_LENGTH = 5000

DEFAULT_SUBJECT = _l("Remote support for ticket #{ticket_id}: {ticket_subject}")
DEFAULT_BODY = _l(
    "Hello {requester_name},\n\n"
    "{technician_name} from {company_name} would like to connect to your computer "
    "to help with ticket #{ticket_id} ({ticket_subject}).\n\n"
    "Open this link to start the remote support session:\n{customer_link}\n\n"
    "Session code: {session_code}\n"
    "The link is valid until {valid_until}.\n\n"
    "If you did not expect this message, you can ignore it.\n\n"
    "{technician_name}\n{technician_email}"
)

# The HTML part's fixed layout.  The email carries these as style attributes
# (what mail clients understand); the editor's preview, whose page forbids
# inline styles, gets the same rules as a stylesheet (``preview_stylesheet``).
EMAIL_STYLES = {
    "body": "margin:0;padding:24px;background:#f4f5f7;color:#1f2328;"
            "font-family:-apple-system,'Segoe UI',Roboto,'Hiragino Sans','Yu Gothic',Meiryo,sans-serif;",
    "card": "max-width:560px;margin:0 auto;background:#ffffff;border:1px solid #d8dde3;border-radius:8px;",
    "cell": "padding:24px;font-size:15px;line-height:1.6;",
    "text": "margin:0 0 16px;",
    "actions": "margin:24px 0 8px;text-align:center;",
    "button": "display:inline-block;padding:12px 24px;background:#0969da;color:#ffffff;"
              "text-decoration:none;border-radius:6px;font-weight:600;",
}

# CR, LF, NUL and RFC 2047 encoded words could add headers on this Python
# (CVE-2024-6923): header-bound values lose them before the message is built.
_HEADER_UNSAFE_RE = re.compile(r"[\r\n\x00]|=\?")
_PARAGRAPH_RE = re.compile(r"\n[ \t]*\n+")


_HOSTNAME_RE = re.compile(r"^[a-z0-9.-]+$")


def button_link(link: str) -> str | None:
    """Return ``link`` if it may become the invitation's button, else None.

    Only https on TeamViewer's own domain, or a link on the configured
    TeamViewer API's origin (the sandbox): never javascript:, nor a look-alike host.
    """
    try:
        parts = urlsplit(link)
        host = parts.hostname or ""
    except ValueError:
        return None
    if not _HOSTNAME_RE.match(host) or parts.scheme not in ("https", "http"):
        return None
    if parts.scheme == "https" and (host == "teamviewer.com" or host.endswith(".teamviewer.com")):
        return link
    api = urlsplit(setting("TEAMVIEWER_API_URL"))
    return link if (parts.scheme, parts.netloc) == (api.scheme, api.netloc) else None


def header_safe(value: str) -> str:
    """Return ``value`` fit for a mail header: one line, no encoded words."""
    return _HEADER_UNSAFE_RE.sub(" ", value).strip()


def valid_address(address: str) -> str | None:
    """Return the normalised address, or None when it cannot receive mail."""
    try:
        normalized = validate_email(address or "", check_deliverability=False).normalized
    except EmailNotValidError:
        return None
    # "=?" is legal in a local part, but mail readers decode it as an RFC 2047 encoded word
    # ("=?UTF-8?Q?=0A?=@…" shows as a line break): no real mailbox needs it.
    return None if "=?" in normalized else normalized


# --- templates -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Template:
    """An invitation template for one language: the admin's, or the built-in default."""

    language: str
    subject: str
    body: str
    custom: bool = False
    updated_by_name: str | None = None
    updated_at: datetime | None = None


def default_template(language: str) -> Template:
    """Return the built-in template in ``language`` (from the message catalog)."""
    with force_locale(language):
        return Template(language, str(DEFAULT_SUBJECT), str(DEFAULT_BODY))


def template_for(language: str) -> Template:
    """Return the template invitations in ``language`` use now."""
    row = db.session.get(EmailTemplate, language)
    if row is None:
        return default_template(language)
    if placeholders.problems(row.subject) or placeholders.problems(row.body):
        # Only a hand-edited row can get here (the editor refuses such templates);
        # the customer still gets a sound email.
        log.warning("stored %s invitation template is invalid; using the default", language)
        return default_template(language)
    return Template(language, row.subject, row.body, True, row.updated_by_name, row.updated_at)


# --- rendering -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rendered:
    """An invitation as it will be sent: header-safe subject, text part, HTML part."""

    subject: str
    text: str
    html: str


def _html_paragraphs(body: str, values: dict) -> list[Markup]:
    """Return the body as escaped HTML paragraphs (blank lines part them, line breaks kept)."""
    html = placeholders.render(str(escape(body.replace("\r\n", "\n"))), values, escape=escape)
    return [Markup(part.strip("\n").replace("\n", "<br>\n")) for part in _PARAGRAPH_RE.split(html) if part.strip()]


def render_invitation(template: Template, values: dict, *, stylesheet_url: str | None = None) -> Rendered:
    """Render ``template`` with ``values`` (a dict over ``placeholders.PLACEHOLDERS``).

    ``stylesheet_url`` is for the editor's preview only: the HTML part then
    takes ``EMAIL_STYLES`` from that stylesheet instead of style attributes.
    """
    values = {name: str(values.get(name, "")) for name in placeholders.PLACEHOLDERS}
    subject = header_safe(placeholders.render(
        template.subject, {name: header_safe(value) for name, value in values.items()}))
    text = placeholders.render(template.body.replace("\r\n", "\n"), values)
    link = values["customer_link"]
    with force_locale(template.language):
        html = render_page(
            "tvwidget/email/invitation.html",
            body_paragraphs=_html_paragraphs(template.body, values),
            customer_link=button_link(link),
            button_label=gettext("Start remote support"),
            lang=template.language,
            styles=EMAIL_STYLES,
            stylesheet_url=stylesheet_url,
        )
    return Rendered(subject=subject[:500], text=text, html=html)


def preview_stylesheet() -> str:
    """Return ``EMAIL_STYLES`` as CSS classes for the editor's preview frame."""
    return "\n".join(f".tvwidget-mail-{name} {{{rules}}}" for name, rules in EMAIL_STYLES.items()) + "\n"


def message_language(ticket) -> str:
    """Return the language the requester gets the invitation in."""
    locale = ticket.requester_locale
    return locale if locale in LANGUAGES else setting("DEFAULT_LOCALE")


def invitation_values(case: ServiceCase, agent, language: str, tz: str) -> dict:
    """Return the placeholder values for ``case`` (never the supporter link)."""
    ticket = case.ticket
    address = valid_address(ticket.requester_email) or ""
    return {
        "requester_name": ticket.requester_name or address,
        "requester_email": address,
        "ticket_id": ticket.id,
        "ticket_subject": ticket.subject,
        "technician_name": agent.name,
        "technician_email": agent.email,
        "session_code": case.code or "",
        "customer_link": case.end_customer_link or "",
        "valid_until": timefmt.local_time(case.valid_until, language, tz) if case.valid_until else "",
        "company_name": setting("COMPANY_NAME"),
    }


def sample_values(language: str, agent, tz: str) -> dict:
    """Return made-up values for the editor's preview."""
    with force_locale(language):
        return {
            "requester_name": gettext("John Doe"),
            "requester_email": "john.doe@example.com",
            "ticket_id": "1234",
            "ticket_subject": gettext("Outlook crashes on start"),
            "technician_name": agent.name,
            "technician_email": agent.email,
            "session_code": "s123-456-789",
            "customer_link": "https://get.teamviewer.com/s123456789",
            "valid_until": timefmt.local_time(utcnow() + timedelta(hours=24), language, tz),
            "company_name": setting("COMPANY_NAME"),
        }


def queue_invitation(case: ServiceCase, agent, tz: str = "UTC") -> EmailMessage | None:
    """Add the invitation for ``case`` (status ``pending``) to the session; None if there is no valid address."""
    recipient = valid_address(case.ticket.requester_email)
    if recipient is None:
        return None
    language = message_language(case.ticket)
    rendered = render_invitation(template_for(language), invitation_values(case, agent, language, tz))
    domain = (setting("MAIL_DEFAULT_SENDER", None) or "tvwidget@localhost").rpartition("@")[2]
    message = EmailMessage(
        case=case, recipient=recipient, subject=rendered.subject, body_text=rendered.text,
        body_html=rendered.html, language=language, status="pending", attempts=0,
        message_id=make_msgid("tvwidget", domain=domain or None), next_attempt_at=utcnow(),
    )
    db.session.add(message)
    return message


def saved_template_languages() -> set[str]:
    """Return the languages that have an admin-edited template."""
    return set(db.session.scalars(sa.select(EmailTemplate.language)))


# --- delivery --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outgoing:
    """What ``deliver`` needs of a stored message, detached from the database session."""

    id: int
    recipient: str
    subject: str
    body_text: str
    body_html: str
    message_id: str

    @classmethod
    def of(cls, message: EmailMessage) -> "Outgoing":
        return cls(message.id, message.recipient, message.subject, message.body_text, message.body_html,
                   message.message_id)


class DeliveryError(delivery.Failed):
    """SMTP did not take the message; ``permanent`` says whether trying again can help."""


class _TimeoutConnection(Connection):
    """Flask-Mail's connection, but with a socket timeout (it opens SMTP without one)."""

    def configure_host(self):
        timeout = setting("SMTP_TIMEOUT")
        smtp_class = smtplib.SMTP_SSL if self.mail.use_ssl else smtplib.SMTP
        host = smtp_class(self.mail.server, self.mail.port, timeout=timeout)
        try:
            if self.mail.use_tls:
                host.starttls()
            if self.mail.username and self.mail.password:
                host.login(self.mail.username, self.mail.password)
        except BaseException:
            host.close()
            raise
        return host

    def __exit__(self, exc_type, exc_value, tb):
        # Flask-Mail's QUIT would raise over the real error (a server that sent
        # 421 has already hung up), and a QUIT failing after the server took the
        # message must not turn a delivery into a failure that gets resent.
        if self.host is None:
            return
        try:
            self.host.quit()
        except (smtplib.SMTPException, OSError):
            self.host.close()


def deliver(outgoing: Outgoing) -> None:
    """Hand ``outgoing`` to the SMTP server, or raise DeliveryError.

    Never call it inside an open database transaction: the server may take
    up to SMTP_TIMEOUT per step, and no lock may be held meanwhile.
    """
    message = Message(
        subject=outgoing.subject, recipients=[outgoing.recipient], body=outgoing.body_text,
        html=outgoing.body_html, sender=setting("MAIL_DEFAULT_SENDER"),
    )
    message.msgId = outgoing.message_id
    try:
        with _TimeoutConnection(current_app.extensions["tvwidget"].mail) as connection:
            connection.send(message)
    except (smtplib.SMTPException, OSError, BadHeaderError) as exc:
        description, permanent = classify(exc)
        raise DeliveryError(description, permanent) from exc


def greet() -> str:
    """Connect to the SMTP server, say EHLO (and STARTTLS and log in, as sending does), then QUIT; send nothing.

    Returns the server's name from its EHLO reply; raises DeliveryError with what went wrong.
    """
    try:
        with _TimeoutConnection(current_app.extensions["mail"]) as connection:
            code, reply = connection.host.ehlo()
            if not 200 <= code < 300:
                raise smtplib.SMTPResponseException(code, reply)
    except (smtplib.SMTPException, OSError) as exc:
        description, permanent = classify(exc)
        raise DeliveryError(description, permanent) from exc
    first = reply.decode(errors="replace").splitlines()[0] if reply else ""
    return first.split()[0] if first.split() else "?"


def _code_text(code: int, text) -> str:
    text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(text.split())}".strip()


def classify(exc: Exception) -> tuple[str, bool]:
    """Return (what went wrong, whether it is permanent) for an SMTP failure.

    4xx replies, timeouts, refused or dropped connections are temporary; a 5xx
    about the message or its recipient is permanent.  A 5xx about our own
    login or sender address is a configuration fault an administrator can fix,
    so it is retried like a temporary one.
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.values())
        permanent = bool(replies) and all(500 <= code < 600 for code, _ in replies)
        return "recipient refused: " + "; ".join(_code_text(code, text) for code, text in replies), permanent
    if isinstance(exc, (smtplib.SMTPAuthenticationError, smtplib.SMTPSenderRefused)):
        return f"SMTP {_code_text(exc.smtp_code, exc.smtp_error)} (check the mail settings)", False
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {_code_text(exc.smtp_code, exc.smtp_error)}", 500 <= exc.smtp_code < 600
    if isinstance(exc, BadHeaderError):
        return "the message has an unsafe header", True
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        # smtplib reports a reply that never came as a disconnect; the timeout is its cause.
        if isinstance(exc.__context__, TimeoutError):
            return "the mail server did not answer in time", False
        return "the mail server closed the connection", False
    if isinstance(exc, TimeoutError):
        return "the mail server did not answer in time", False
    if isinstance(exc, ConnectionRefusedError):
        return "the mail server refused the connection", False
    return exc.__class__.__name__ + (f": {exc}" if str(exc) else ""), False
