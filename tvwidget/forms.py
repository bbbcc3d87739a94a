"""Admin forms (Flask-WTF: CSRF included)."""
import re

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_characters(form, field):
    if field.data and _CONTROL_RE.search(field.data):
        raise ValidationError(_l("Use letters, digits, spaces and punctuation only."))


class SettingsForm(FlaskForm):
    """Connect TeamViewer (F1) and choose the group cases go into (F12)."""

    # PasswordField never renders the stored value back (RELIABILITY V9).
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
