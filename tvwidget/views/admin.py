"""The admin area (F1, F12): connect TeamViewer and choose the group.

Opened from the host with an ``admin`` launch token in a top-level window,
so an ordinary first-party session cookie and Flask-WTF's CSRF apply here.
"""
from dataclasses import asdict

from flask import Blueprint, abort, g, make_response, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError

from .. import audit, integration, secrets
from ..extensions import db
from ..forms import SettingsForm
from ..host import Agent, LaunchError, verify_launch_token
from ..models import utcnow
from ..security import headers
from ..teamviewer import TeamViewerError

bp = Blueprint("tvwidget_admin", __name__, url_prefix="/embed/admin")
bp.after_request(headers(frameable=False))

SESSION_KEY = "tvwidget_admin"


def _page(template: str, status: int = 200, **context):
    return render_template(template, **context), status


@bp.errorhandler(CSRFError)
def _csrf_failed(exc):
    return _page("tvwidget/error.html", 400, message=_l(
        "The form expired or did not come from this page. Reload the page and try again."))


@bp.route("", methods=["GET", "POST"])
def launch():
    """Open the admin area with the host's ``admin`` launch token."""
    raw = request.form.get("token") if request.method == "POST" else request.args.get("token")
    try:
        agent, _ = verify_launch_token(raw or "", want_ticket=False)
    except LaunchError as exc:
        db.session.rollback()
        return _page("tvwidget/error.html", exc.status, message=exc.message)
    if not agent.is_admin:
        db.session.rollback()
        return _page("tvwidget/error.html", 403, message=_l("Only helpdesk administrators can open the tvwidget admin area."))
    db.session.commit()
    session.clear()
    session.permanent = True
    session[SESSION_KEY] = asdict(agent)
    return redirect(url_for(".settings"), 303)


@bp.before_request
def _require_admin():
    if request.endpoint == "tvwidget_admin.launch":
        return None
    data = session.get(SESSION_KEY)
    if not data:
        abort(make_response(_page("tvwidget/error.html", 401, message=_l(
            "Your admin session has ended. Open the tvwidget admin area again from your helpdesk."))))
    g.tvwidget_agent = Agent(**data)
    return None


def _verify(token: str) -> tuple[str | None, dict]:
    """Check a script token live at TeamViewer; return (problem, account details)."""
    client = integration.client(token)
    try:
        if not client.ping():
            return _l("TeamViewer says this script token is not valid. Copy it again from the Management Console."), {}
        account = client.account()
    except TeamViewerError as exc:
        return exc.message, {}
    return None, {"account_name": account.name, "account_email": account.email, "company_name": account.company_name}


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    """Show and save the TeamViewer connection."""
    agent = g.tvwidget_agent
    row = integration.settings()
    form = SettingsForm(obj=row if request.method == "GET" else None)
    try:
        token_readable = not row.token_ciphertext or bool(secrets.decrypt(row.token_ciphertext))
    except secrets.SecretUnreadable:
        token_readable = False
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return _page("tvwidget/admin/settings.html", status, form=form, settings=row, token_readable=token_readable)
    if not form.script_token.data and not row.connected:
        form.script_token.errors.append(_l("Paste the script token to connect TeamViewer."))
        return _page("tvwidget/admin/settings.html", 422, form=form, settings=row, token_readable=token_readable)
    if form.script_token.data:
        problem, account = _verify(form.script_token.data)
        if problem:
            audit.record("connect_failed", agent, reason=str(problem))
            db.session.commit()
            form.script_token.errors.append(problem)
            return _page("tvwidget/admin/settings.html", 422, form=form, settings=row, token_readable=token_readable)
        row = db.session.merge(row)
        row.token_ciphertext = secrets.encrypt(form.script_token.data)
        row.token_last4 = form.script_token.data[-4:]
        row.connected_by_id, row.connected_by_name, row.connected_at = agent.id, agent.name, utcnow()
        for key, value in account.items():
            setattr(row, key, value)
        audit.record("connected", agent, account=account.get("account_name"), last4=row.token_last4)
    row = db.session.merge(row)
    if row.group_name != form.group_name.data:
        audit.record("group_changed", agent, old=row.group_name, new=form.group_name.data)
        row.group_name = form.group_name.data
    db.session.commit()
    return redirect(url_for(".settings", saved=1), 303)


# Sections that live in their own modules but share this blueprint's admin check.
from . import admin_email, admin_reports  # noqa: E402,F401
