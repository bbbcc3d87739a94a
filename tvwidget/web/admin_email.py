"""The invitation template editor in the admin area: edit, preview, save, reset.

The routes live on the admin blueprint, whose ``before_request`` demands the
admin session; Flask-WTF's CSRF protection covers every POST here.
"""
import sqlalchemy as sa
from flask import g, redirect, request, url_for
from flask_babel import lazy_gettext as _l

from tvwidget.config import setting
from tvwidget.extensions import db
from tvwidget.i18n import render_page
from tvwidget.mail import message as mail, placeholders
from tvwidget.storage import audit
from tvwidget.storage.database import upsert
from tvwidget.storage.models import EmailTemplate, utcnow
from tvwidget.web.admin import bp
from tvwidget.web.forms import EmailTemplateForm

# Each language by its own name, as language pickers do.
LANGUAGE_NAMES = {"en": "English", "ja": "日本語"}

PLACEHOLDER_HELP = {
    "requester_name": _l("The requester's name (their email address if the ticket has no name)"),
    "requester_email": _l("The requester's email address"),
    "ticket_id": _l("The ticket number"),
    "ticket_subject": _l("The ticket's subject"),
    "technician_name": _l("The name of the agent who started the session"),
    "technician_email": _l("The email address of the agent who started the session"),
    "session_code": _l("The TeamViewer session code, e.g. s123-456-789"),
    "customer_link": _l("The link that starts the session for the customer (also shown as a button)"),
    "valid_until": _l("When the link stops working, with the agent's time zone"),
    "company_name": _l("Your company's name"),
}


def _language() -> str | None:
    language = request.args.get("lang") or g.tvwidget_agent.locale or setting("DEFAULT_LOCALE")
    return language if language in mail.LANGUAGES else None


def _not_found():
    return render_page("tvwidget/error.html", message=_l("There is no email template for that language.")), 404


def _preview(form: EmailTemplateForm, language: str) -> dict:
    """Return what the preview shows: the rendered email on sample data, or why it cannot be rendered."""
    if form.errors:
        return {"errors": [(field.label.text, message) for field in (form.subject, form.body)
                           for message in field.errors]}
    agent = g.tvwidget_agent
    template = mail.Template(language, form.subject.data or "", form.body.data or "")
    rendered = mail.render_invitation(
        template, mail.sample_values(language, agent, agent.tz or "UTC"),
        stylesheet_url=url_for("tvwidget.email_preview_css", _external=True))
    return {"rendered": rendered}


def _page(form: EmailTemplateForm, language: str, status: int = 200):
    context = {
        "form": form,
        "language": language,
        "languages": LANGUAGE_NAMES,
        "custom_languages": mail.saved_template_languages(),
        "current": mail.template_for(language),
        "placeholders": [(name, PLACEHOLDER_HELP[name]) for name in placeholders.PLACEHOLDERS],
        "preview": _preview(form, language),
    }
    return render_page("tvwidget/admin/email_template.html", **context), status, {"Vary": "HX-Request"}


@bp.get("/email-template")
def email_template():
    """Show the invitation template of one language (``?lang=en|ja``) with its preview."""
    language = _language()
    if language is None:
        return _not_found()
    current = mail.template_for(language)
    form = EmailTemplateForm(data={"subject": current.subject, "body": current.body})
    return _page(form, language)


def _save(language: str, subject: str, body: str) -> None:
    agent = g.tvwidget_agent
    values = {"language": language, "subject": subject, "body": body, "updated_by_id": agent.id,
              "updated_by_name": agent.name, "updated_at": utcnow()}
    # One statement, so two admins saving at once cannot collide on the key.
    upsert(EmailTemplate, values, ("language",))


@bp.post("/email-template")
def email_template_save():
    """Save the template; an invalid one is refused (422) with every problem named, and nothing is stored."""
    language = _language()
    if language is None:
        return _not_found()
    form = EmailTemplateForm()
    if not form.validate():
        return _page(form, language, 422)
    _save(language, form.subject.data, form.body.data)
    audit.record("template_saved", g.tvwidget_agent, language=language, subject=form.subject.data)
    db.session.commit()
    return redirect(url_for(".email_template", lang=language, saved=1), 303)


@bp.post("/email-template/preview")
def email_template_preview():
    """Render the form's subject and body on sample data (htmx swaps in the preview; 422 names the problems)."""
    language = _language()
    if language is None:
        return _not_found()
    form = EmailTemplateForm()
    status = 200 if form.validate() else 422
    if not request.headers.get("HX-Request"):
        return _page(form, language, status)
    preview = _preview(form, language)
    return (render_page("tvwidget/admin/_email_preview.html", preview=preview, language=language,
                        languages=LANGUAGE_NAMES),
            status, {"Vary": "HX-Request"})


@bp.post("/email-template/reset")
def email_template_reset():
    """Go back to the built-in template for one language."""
    language = _language()
    if language is None:
        return _not_found()
    removed = db.session.execute(sa.delete(EmailTemplate).where(EmailTemplate.language == language)).rowcount
    audit.record("template_reset", g.tvwidget_agent, language=language, had_custom_template=bool(removed))
    db.session.commit()
    return redirect(url_for(".email_template", lang=language, reset=1), 303)
