"""The admin entry: which admin opened tvwidget's admin area, when they last used it, and its CSRF token.

In the standalone app it lives in the app's session (the app, its secret and
its cookie are tvwidget's).  Mounted in a host app with ``init_app`` it is a
cookie of tvwidget's own, signed with ``TVWIDGET_SECRET_KEY``: the host's
session, secret key and session cookie are never read or written, and a host
without sessions still gets an admin area.
"""
import hmac
import secrets

from flask import g, request, session
from flask_wtf.csrf import generate_csrf
from itsdangerous import BadSignature, URLSafeTimedSerializer
from wtforms.csrf.core import CSRF
from wtforms.validators import ValidationError

from tvwidget.config import HOST_COOKIE_NAME, setting, standalone

KEY = "tvwidget_admin"  # the standalone session's key
# The entry ends after an hour without use (every use renews it), timed by tvwidget itself.
IDLE_SECONDS = 3600
_SALT = "tvwidget-admin-entry"
_UNSET = object()


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(setting("SECRET_KEY"), salt=_SALT)


def cookie_name() -> str:
    """Return the host-app cookie's name: ``__Host-`` (Secure, Path=/, no Domain) except over the demo's plain HTTP."""
    return HOST_COOKIE_NAME if setting("ENV") != "demo" else HOST_COOKIE_NAME.removeprefix("__Host-")


def load() -> dict | None:
    """Return the entry of this request (``None`` without one, or with a forged or stale cookie)."""
    if standalone():
        return session.get(KEY)
    entry = g.get("tvwidget_admin_entry", _UNSET)
    if entry is _UNSET:
        entry = None
        raw = request.cookies.get(cookie_name())
        if raw:
            try:
                entry = _serializer().loads(raw, max_age=IDLE_SECONDS)
            except BadSignature:  # (SignatureExpired is one)
                entry = None
        g.tvwidget_admin_entry = entry
    return entry


def save(entry: dict) -> None:
    """Keep ``entry`` for the admin's next request (the response carries it)."""
    if standalone():
        session[KEY] = entry
        session.modified = True  # a changed "seen" inside the dict is a change too
        return
    entry.setdefault("csrf", secrets.token_urlsafe(32))
    g.tvwidget_admin_entry = entry
    g.tvwidget_admin_entry_changed = True


def clear() -> None:
    """End the entry."""
    if standalone():
        session.pop(KEY, None)
        return
    g.tvwidget_admin_entry = None
    g.tvwidget_admin_entry_changed = True


def write(response):
    """``after_request`` of the admin blueprint: set or delete the host-app cookie when the entry changed."""
    if standalone() or not g.get("tvwidget_admin_entry_changed"):
        return response
    entry = g.tvwidget_admin_entry
    secure = setting("ENV") != "demo"
    if entry is None:
        response.delete_cookie(cookie_name(), path="/", secure=secure, httponly=True, samesite="Lax")
    else:
        response.set_cookie(cookie_name(), _serializer().dumps(entry), max_age=IDLE_SECONDS, path="/",
                            secure=secure, httponly=True, samesite="Lax")
    return response


def csrf_token() -> str:
    """Return the CSRF token tvwidget's admin forms carry (Flask-WTF's in the standalone app)."""
    if standalone():
        return generate_csrf()
    entry = load()
    return entry["csrf"] if entry else ""


def csrf_matches(token: str | None) -> bool:
    """Return whether ``token`` is this admin entry's CSRF token (host apps; the standalone app asks Flask-WTF)."""
    entry = load()
    return bool(token and entry and entry.get("csrf")) and hmac.compare_digest(token, entry["csrf"])


class EntryCSRF(CSRF):
    """WTForms CSRF for tvwidget's forms in a host app: the admin entry's token instead of one in the host's session."""

    def generate_csrf_token(self, csrf_token_field):
        return csrf_token()

    def validate_csrf_token(self, form, field):
        if not csrf_matches(field.data):
            raise ValidationError(field.gettext("The CSRF token is missing or does not match."))
