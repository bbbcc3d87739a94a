"""The ticket sidebar widget (F2-F8, G5): launch, play, stop, refresh, resend, replace.

Every request after the launch carries the widget credential in the
``X-TVWidget-Credential`` header; the ticket and the agent come from it, never
from anything else the browser sends.
"""
import re
import uuid

from flask import Blueprint, Response, abort, g, make_response, render_template, request
from flask_babel import lazy_gettext as _l

from .. import cases, integration, mail, outbox
from ..database import on_outage
from ..extensions import db
from ..host import LaunchError, issue_credential, read_credential, save_ticket, verify_launch_token
from ..models import CaseState, utcnow
from ..paths import asset_dir
from ..security import headers, same_origin_request

bp = Blueprint("tvwidget", __name__, static_folder=asset_dir("static"), static_url_path="/static/tvwidget")
bp.after_request(headers(frameable=True))

CREDENTIAL_HEADER = "X-TVWidget-Credential"
_IDEMPOTENCY_KEY_RE = re.compile(r"^[0-9a-f]{32}$")


def widget_context(agent, ticket_id: str, alert=None, alert_kind: str = "error") -> dict:
    """Return everything ``_widget.html`` shows, for page and fragment alike."""
    now = utcnow()
    settings = integration.settings()
    case = cases.latest_case(ticket_id)
    if not settings.connected:
        state = "disconnected"
    elif case is None or case.state == CaseState.CLOSED:
        state = "idle"
    elif case.state == CaseState.CREATING:
        state = "busy" if case.is_valid(now) else "idle"
    elif case.state == CaseState.EXPIRED or not case.is_valid(now):
        state = "expired"
    else:
        state = "open"
    email = case.email if case is not None else None
    if email is None:
        email_status = "failed"  # no valid requester address: nothing could be sent
    else:
        email_status = email.status if email.status in ("sent", "failed") else "pending"
    return {
        "state": state,
        "case": case,
        "email": email,
        "email_status": email_status,
        # Pending after a failed try: the outbox retries, the agent is told so.
        "email_retrying": email is not None and email.status == "pending" and bool(email.last_error),
        "agent": agent,
        "ticket_id": ticket_id,
        "credential": issue_credential(agent, ticket_id),
        "idempotency_key": uuid.uuid4().hex,
        "alert": alert,
        "alert_kind": alert_kind,
        "now": now,
    }


def _render(context: dict, status: int = 200):
    template = "tvwidget/_widget.html" if request.headers.get("HX-Request") else "tvwidget/widget.html"
    return render_template(template, **context), status, {"Vary": "HX-Request"}


def _render_then_send_due(context: dict, status: int = 200):
    """Render the widget; once it has gone out, send one due invitation (the outbox's opportunistic sender)."""
    return outbox.send_one_due_after(make_response(_render(context, status)))


def _error_page(message, status: int):
    template = "tvwidget/_error.html" if request.headers.get("HX-Request") else "tvwidget/error.html"
    return render_template(template, message=message), status, {"Vary": "HX-Request"}


on_outage(bp, lambda: _error_page(
    _l("tvwidget cannot reach its database right now. Nothing was changed; try again in a moment."), 503))


@bp.route("/embed/widget", methods=["GET", "POST"])
def launch():
    """Open the widget for the ticket named in the host's launch token."""
    raw = request.form.get("token") if request.method == "POST" else request.args.get("token")
    try:
        agent, ticket = verify_launch_token(raw or "", want_ticket=True)
    except LaunchError as exc:
        db.session.rollback()
        return _error_page(exc.message, exc.status)
    g.tvwidget_agent = agent
    save_ticket(ticket)
    db.session.commit()
    return render_template("tvwidget/widget.html", **widget_context(agent, ticket.id)), 200, {"Vary": "HX-Request"}


def _authorised():
    """Return (agent, ticket_id) from the credential header, or abort with a clear page."""
    try:
        agent, ticket_id = read_credential(request.headers.get(CREDENTIAL_HEADER))
    except LaunchError as exc:
        abort(make_response(_error_page(exc.message, exc.status)))
    if ticket_id is None:
        abort(make_response(_error_page(_l("This credential is not for a ticket's widget."), 403)))
    if request.method not in ("GET", "HEAD") and not same_origin_request():
        abort(make_response(_error_page(_l("Requests from other sites are not accepted."), 403)))
    g.tvwidget_agent = agent
    return agent, ticket_id


@bp.get("/embed/widget/panel")
def panel():
    """Return the widget as it stands now (used while a case is being created)."""
    agent, ticket_id = _authorised()
    return _render(widget_context(agent, ticket_id))


def _case_error(exc: cases.CaseError) -> int:
    return 502 if exc.kind in ("unavailable", "timeout", "auth", "permission", "rate_limited", "license",
                               "bad_request", "not_found", "bad_reply") else 409


@bp.post("/embed/widget/play")
def play():
    """Start a service case (F3), or show the one the ticket already has."""
    agent, ticket_id = _authorised()
    key = request.form.get("idempotency_key", "")
    if not _IDEMPOTENCY_KEY_RE.match(key):
        key = uuid.uuid4().hex
    try:
        case, created = cases.start_case(ticket_id, agent, key)
    except cases.CaseError as exc:
        db.session.rollback()
        return _render(widget_context(agent, ticket_id, alert=exc.message), _case_error(exc))
    if created:
        cases.send_invitation(case, agent)
    return _render_then_send_due(widget_context(agent, ticket_id))


@bp.post("/embed/widget/stop")
def stop():
    """Close the ticket's service case and comment its times (F7)."""
    agent, ticket_id = _authorised()
    try:
        cases.stop_case(ticket_id, agent)
    except cases.CaseError as exc:
        db.session.rollback()
        return _render(widget_context(agent, ticket_id, alert=exc.message), _case_error(exc))
    return _render_then_send_due(widget_context(agent, ticket_id))


@bp.post("/embed/widget/resend")
def resend():
    """Send the open case's invitation again, with the same Message-ID (G5)."""
    agent, ticket_id = _authorised()
    try:
        case = cases.resend_invitation(ticket_id, agent)
    except cases.CaseError as exc:
        db.session.rollback()
        return _render(widget_context(agent, ticket_id, alert=exc.message), _case_error(exc))
    cases.send_invitation(case, agent)
    return _render(widget_context(agent, ticket_id))


@bp.post("/embed/widget/replace")
def replace():
    """Close an open case the customer never joined and open a fresh one with a new invitation (G5)."""
    agent, ticket_id = _authorised()
    key = request.form.get("idempotency_key", "")
    if not _IDEMPOTENCY_KEY_RE.match(key):
        key = uuid.uuid4().hex
    try:
        case, created = cases.replace_case(ticket_id, agent, request.form.get("code", ""), key)
    except cases.CaseError as exc:
        db.session.rollback()
        return _render(widget_context(agent, ticket_id, alert=exc.message), _case_error(exc))
    if created:
        cases.send_invitation(case, agent)
    return _render_then_send_due(widget_context(
        agent, ticket_id, alert=_l("The old service case was closed; this is a new one with a new link."),
        alert_kind="info"))


@bp.get("/embed/email-preview.css")
def email_preview_css():
    """The invitation layout's styles as a stylesheet, for the template editor's sandboxed preview frame."""
    response = Response(mail.preview_stylesheet(), mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
