"""The admin area: connect TeamViewer, revoke and hand over, choose the group.

Opened from the host with an ``admin`` launch token in a top-level window,
so a first-party cookie and a CSRF token apply here.  Every route but the
launch needs the admin entry (``admin_entry``: the session in the standalone
app, tvwidget's own signed cookie in a host app), held by an admin; it ends
after an hour without a request (``admin_entry.IDLE_SECONDS``).
"""
import logging
import time
from dataclasses import asdict

from flask import Blueprint, abort, g, make_response, redirect, request, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import InternalServerError

from tvwidget.extensions import db
from tvwidget.host.tokens import Agent, LaunchError, verify_launch_token
from tvwidget.i18n import render_page
from tvwidget.storage import secrets
from tvwidget.storage.database import on_outage
from tvwidget.teamviewer import integration
from tvwidget.web import admin_entry
from tvwidget.web.forms import SettingsForm
from tvwidget.web.security import check_csrf_token, headers, limit_request_size, log_refused_launch, same_origin_request

log = logging.getLogger(__name__)

bp = Blueprint("tvwidget_admin", __name__, url_prefix="/embed/admin")
bp.after_request(headers(frameable=False))
bp.before_request(limit_request_size)
bp.after_request(log_refused_launch)
bp.after_request(admin_entry.write)

SESSION_ENDED = _l("Your admin session has ended. Open the tvwidget admin area again from your helpdesk.")


@bp.record_once
def _keep_secrets_out_of_logs(state):
    # The admin area is where the TeamViewer token enters tvwidget.
    secrets.redact_logs()


def _page(template: str, status: int = 200, **context):
    return render_page(template, **context), status


on_outage(bp, lambda: _page("tvwidget/error.html", 503, message=_l(
    "tvwidget cannot reach its database right now. Nothing was changed; try again in a moment.")))


def _refuse(status: int, message):
    abort(make_response(_page("tvwidget/error.html", status, message=message)))


@bp.errorhandler(CSRFError)
def _csrf_failed(exc):
    return _page("tvwidget/error.html", 400, message=_l(
        "The form expired or did not come from this page. Reload the page and try again."))


@bp.errorhandler(InternalServerError)
def _failed(exc):
    db.session.rollback()
    return _page("tvwidget/error.html", 500, message=_l(
        "Something went wrong in the tvwidget admin area, and nothing was saved. Try again; if it keeps "
        "happening, the details are in tvwidget's server log."))


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
        return _page("tvwidget/error.html", 403, message=_l(
            "Only helpdesk administrators can open the tvwidget admin area."))
    db.session.commit()
    admin_entry.save({"agent": asdict(agent), "seen": int(time.time())})
    return redirect(url_for(".settings"), 303)


@bp.before_request
def _require_admin():
    # The launch is authenticated by the host's signed, single-use token (a host may POST
    # it from its own page); every other route checks CSRF here, after the session, so a
    # visitor without one hears that first.
    if request.endpoint == "tvwidget_admin.launch":
        return None
    entry = admin_entry.load()
    now = int(time.time())
    try:
        agent = Agent(**entry["agent"])
        idle = now - int(entry["seen"])
    except (KeyError, TypeError, ValueError):
        _refuse(401, SESSION_ENDED)
    if idle > admin_entry.IDLE_SECONDS:  # (a clock a second behind another machine's gives a negative idle: fine)
        admin_entry.clear()
        _refuse(401, SESSION_ENDED)
    if not agent.is_admin:
        _refuse(403, _l("Only helpdesk administrators can open the tvwidget admin area."))
    entry["seen"] = now
    admin_entry.save(entry)  # every use keeps the admin session alive for another hour
    g.tvwidget_agent = agent
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        if not same_origin_request():
            _refuse(403, _l("Requests from other sites are not accepted."))
        check_csrf_token()
    return None


def _settings_page(form: SettingsForm, row, status: int = 200, connect_failed: bool = False):
    return _page("tvwidget/admin/settings.html", status, form=form, settings=row,
                 integration_status=integration.status(row), connect_failed=connect_failed)


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    """Show and save the TeamViewer connection and the group."""
    agent = g.tvwidget_agent
    row = integration.settings()
    form = SettingsForm(obj=row if request.method == "GET" else None)
    if not form.validate_on_submit():
        return _settings_page(form, row, 422 if request.method == "POST" else 200)
    token = form.script_token.data
    if not token and not row.connected:
        form.script_token.errors.append(_l("Paste the script token to connect TeamViewer."))
        return _settings_page(form, row, 422)
    if token:
        try:
            account = integration.verify(token)
        except integration.ConnectFailed as failure:
            integration.record_connect_failure(failure, agent)
            db.session.commit()
            form.script_token.errors.append(failure.message)
            return _settings_page(form, row, 422, connect_failed=True)
        row = integration.connect(row, token, account, agent)
    integration.change_group(row, form.group_name.data, agent)
    db.session.commit()
    return redirect(url_for(".settings", saved=1), 303)


@bp.route("/revoke", methods=["GET", "POST"])
def revoke():
    """Ask for confirmation, then forget the token so another admin can connect theirs."""
    agent = g.tvwidget_agent
    row = integration.settings()
    if not row.connected:
        return redirect(url_for(".settings"), 303)
    if request.method != "POST":  # GET and HEAD only ask (a HEAD once fell through to the revoke)
        return _page("tvwidget/admin/revoke.html", settings=row, cases=integration.active_cases())
    try:
        integration.revoke(agent)
    except integration.RevokeRefused as refused:
        db.session.commit()  # the refusal is audited
        return _page("tvwidget/admin/revoke.html", 409, settings=row, cases=refused.cases)
    db.session.commit()
    return redirect(url_for(".settings", revoked=1), 303)


@bp.get("/branding")
def branding():
    """Explain QuickSupport branding and supporter notifications on TeamViewer's side."""
    return _page("tvwidget/admin/branding.html", settings=integration.settings())


# Sections that live in their own modules but share this blueprint's admin check.
from tvwidget.web import admin_agents, admin_audit, admin_email, admin_health, admin_reports  # noqa: E402,F401
