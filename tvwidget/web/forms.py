"""Admin forms (Flask-WTF: CSRF included, as tvwidget's settings say)."""
import re

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from tvwidget.config import setting, standalone
from tvwidget.mail import message as mail, placeholders
from tvwidget.web.admin_entry import EntryCSRF

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# A body may hold line breaks and tabs, nothing else below the space.
_BODY_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control_characters(form, field):
    if field.data and _CONTROL_RE.search(field.data):
        raise ValidationError(_l("Use letters, digits, spaces and punctuation only."))


class AdminForm(FlaskForm):
    """A form of the admin area: CSRF from tvwidget's settings, and in a host app against the admin entry's token.

    Flask-WTF's own CSRF reads the app's config and keeps its token in the app's
    session, which in a host app are the host's.
    """

    class Meta:
        @property
        def csrf(self):
            return setting("WTF_CSRF_ENABLED")

        @property
        def csrf_field_name(self):
            return setting("WTF_CSRF_FIELD_NAME")

        @property
        def csrf_time_limit(self):
            return setting("WTF_CSRF_TIME_LIMIT")

        def build_csrf(self, form):
            return super().build_csrf(form) if standalone() else EntryCSRF()


class SettingsForm(AdminForm):
    """Connect TeamViewer and choose the group cases go into."""

    # PasswordField never renders the stored value back into the page.
    script_token = PasswordField(
        _l("Script token"),
        validators=[Optional(), Length(min=8, max=200),
                    Regexp(r"^[A-Za-z0-9._~+/=-]+$", message=_l("A script token has no spaces or other symbols."))],
        filters=[lambda value: value.strip() if value else value],
    )
    group_name = StringField(
        _l("Group for service cases"),
        validators=[DataRequired(), Length(max=100), _no_control_characters],
        filters=[lambda value: value.strip() if value else value],
    )



_PROBLEM_MESSAGES = {
    placeholders.UNKNOWN: _l("%(token)s is not a placeholder. Use one from the list."),
    placeholders.FORBIDDEN_NAME: _l("%(token)s is not available: the supporter link must never reach the customer."),
    placeholders.ACCESS: _l("%(token)s: attribute and index access is not allowed. Use a placeholder from the "
                            "list as it is."),
    placeholders.CODE: _l("%(token)s: template code is not allowed. Write {{ and }} for literal braces."),
    placeholders.BRACE: _l("%(token)s has no partner. Write {{ or }} for a literal brace."),
}


def problem_message(token: str) -> Markup:
    """Return why ``token`` is refused, with the token itself shown as code."""
    before, _, after = str(_PROBLEM_MESSAGES[placeholders.problem_kind(token)]).partition("%(token)s")
    return escape(before) + Markup("<code>%s</code>") % token + escape(after)


def _placeholders_valid(form, field):
    # One message per offending placeholder, not just the first.
    for token in placeholders.problems(field.data or ""):
        field.errors.append(problem_message(token))


def _no_control_characters_in_text(form, field):
    if field.data and _BODY_CONTROL_RE.search(field.data):
        raise ValidationError(_l("Remove the invisible control characters (only line breaks and tabs are allowed)."))


def _one_line(value):
    return value.strip() if value else value


def _unix_newlines(value):
    return value.replace("\r\n", "\n").replace("\r", "\n") if value else value


class EmailTemplateForm(AdminForm):
    """The invitation's subject and body for one language."""

    subject = StringField(
        _l("Subject"),
        validators=[DataRequired(_l("Enter a subject.")),
                    Length(max=mail.SUBJECT_MAX_LENGTH,
                           message=_l("Keep the subject to %(max)d characters or fewer.")),
                    _no_control_characters, _placeholders_valid],
        filters=[_one_line],
    )
    body = TextAreaField(
        _l("Message"),
        validators=[DataRequired(_l("Enter the message.")),
                    Length(max=mail.BODY_MAX_LENGTH,
                           message=_l("Keep the message to %(max)d characters or fewer.")),
                    _no_control_characters_in_text, _placeholders_valid],
        filters=[_unix_newlines],
    )
