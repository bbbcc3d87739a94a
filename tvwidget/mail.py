"""The invitation email: built and stored with the case, sent after commit."""
import logging
import re
import smtplib
from email.utils import make_msgid

from email_validator import EmailNotValidError, validate_email
from flask import current_app, render_template
from flask_babel import force_locale, format_datetime, gettext, lazy_gettext as _l
from flask_mail import BadHeaderError, Connection, Message
from markupsafe import Markup, escape

from . import placeholders
from .extensions import db
from .models import EmailMessage, ServiceCase, utcnow

log = logging.getLogger(__name__)

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

# CR, LF, NUL and RFC 2047 encoded words could add headers on this Python
# (CVE-2024-6923): header-bound values lose them before the message is built.
_HEADER_UNSAFE_RE = re.compile(r"[\r\n\x00]|=\?")


def header_safe(value: str) -> str:
    """Return ``value`` fit for a mail header: one line, no encoded words."""
    return _HEADER_UNSAFE_RE.sub(" ", value).strip()


def valid_address(address: str) -> str | None:
    """Return the normalised address, or None when it cannot receive mail."""
    try:
        return validate_email(address or "", check_deliverability=False).normalized
    except EmailNotValidError:
        return None


class _TimeoutConnection(Connection):
    """Flask-Mail's connection, but with a socket timeout (it opens SMTP without one)."""

    def configure_host(self):
        timeout = current_app.config["SMTP_TIMEOUT"]
        smtp_class = smtplib.SMTP_SSL if self.mail.use_ssl else smtplib.SMTP
        host = smtp_class(self.mail.server, self.mail.port, timeout=timeout)
        if self.mail.use_tls:
            host.starttls()
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host


def queue_invitation(case: ServiceCase, agent, locale: str, tz: str) -> EmailMessage | None:
    """Store the invitation for ``case`` (status ``pending``); None if there is no valid address."""
    ticket = case.ticket
    recipient = valid_address(ticket.requester_email)
    if recipient is None:
        return None
    with force_locale(locale):
        values = {
            "requester_name": ticket.requester_name or recipient,
            "requester_email": recipient,
            "ticket_id": ticket.id,
            "ticket_subject": ticket.subject,
            "technician_name": agent.name,
            "technician_email": agent.email,
            "session_code": case.code,
            "customer_link": case.end_customer_link or "",
            "valid_until": format_datetime(case.valid_until, "medium", rebase=True) + f" ({tz})"
            if case.valid_until else "",
            "company_name": current_app.config["COMPANY_NAME"],
        }
        subject_template, body_template = str(DEFAULT_SUBJECT), str(DEFAULT_BODY)
        subject = header_safe(placeholders.render(
            subject_template, {k: header_safe(str(v)) for k, v in values.items()}))
        body_text = placeholders.render(body_template, values)
        body_html = render_template(
            "tvwidget/email/invitation.html",
            body=Markup(placeholders.render(escape(body_template), values, escape=escape)),
            customer_link=case.end_customer_link,
            button_label=gettext("Start remote support"),
            lang=locale,
        )
    domain = (current_app.config.get("MAIL_DEFAULT_SENDER") or "tvwidget@localhost").rpartition("@")[2]
    message = EmailMessage(
        case=case, recipient=recipient, subject=subject[:500], body_text=body_text,
        body_html=body_html, language=locale, message_id=make_msgid("tvwidget", domain=domain or None),
    )
    db.session.add(message)
    return message


def send(message: EmailMessage) -> bool:
    """Try to deliver ``message`` now and record the outcome on it (the caller commits).

    The session's transaction is ended before talking SMTP, so no database
    lock (SQLite's write lock above all) is held for the mail server's sake.
    """
    outgoing = Message(
        subject=message.subject, recipients=[message.recipient], body=message.body_text,
        html=message.body_html, sender=current_app.config["MAIL_DEFAULT_SENDER"],
    )
    outgoing.msgId = message.message_id
    db.session.rollback()
    try:
        with _TimeoutConnection(current_app.extensions["mail"]) as connection:
            connection.send(outgoing)
        error = None
    except (smtplib.SMTPException, OSError, BadHeaderError) as exc:
        error = _describe(exc)[:500]
    message.attempts += 1
    message.status = "failed" if error else "sent"
    message.last_error = error
    if error:
        log.warning("invitation %s not sent: %s", message.id, error)
    else:
        message.sent_at = utcnow()
    return error is None


def _describe(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code}: {exc.smtp_error.decode(errors='replace') if isinstance(exc.smtp_error, bytes) else exc.smtp_error}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "recipient refused: " + ", ".join(f"{code} {msg!r}" for code, msg in exc.recipients.values())
    if isinstance(exc, TimeoutError):
        return "mail server did not answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "mail server refused the connection"
    return exc.__class__.__name__ + (f": {exc}" if str(exc) else "")
