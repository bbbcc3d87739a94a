"""The host API (server to server): tickets, the case, the close guard, comments, report."""
from datetime import date, datetime, time, timedelta, timezone

import sqlalchemy as sa
from flask import Blueprint, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import cases, reports
from ..extensions import db
from ..host import TicketDataError, host_key_matches, parse_ticket, save_ticket
from ..models import Comment
from ..security import headers

bp = Blueprint("tvwidget_api", __name__, url_prefix="/api/v1")
bp.after_request(headers(frameable=False))


def error(code: str, message: str, status: int, **extra):
    """Return the host API's error shape."""
    return jsonify({"error": code, "message": message, **extra}), status


@bp.before_request
def _authenticate():
    auth = request.headers.get("Authorization", "")
    scheme, _, key = auth.partition(" ")
    if scheme.lower() != "bearer" or not host_key_matches(key.strip()):
        response, status = error("unauthorized", "Send Authorization: Bearer <TVWIDGET_HOST_API_KEY>.", 401)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response, status
    return None


@bp.before_request
def _check_ticket_id():
    ticket_id = (request.view_args or {}).get("ticket_id")
    if ticket_id is not None and not 1 <= len(ticket_id) <= 64:
        return error("invalid_ticket_id", "A ticket id has 1 to 64 characters.", 400)
    return None


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return error(exc.name.lower().replace(" ", "_"), exc.description or exc.name, exc.code or 500)


@bp.put("/tickets/<ticket_id>")
def put_ticket(ticket_id: str):
    """Create or update a ticket's fields."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error("invalid_json", "The body must be a JSON object describing the ticket.", 400)
    if "id" in body and str(body["id"]) != ticket_id:
        return error("id_mismatch", "The body's id differs from the URL's ticket id.", 400)
    try:
        ticket = parse_ticket({**body, "id": ticket_id})
    except TicketDataError as exc:
        return error("invalid_ticket", str(exc), 400)
    save_ticket(ticket)
    db.session.commit()
    return jsonify({"id": ticket.id, "status": "saved"})


@bp.get("/tickets/<ticket_id>/service-case")
def get_service_case(ticket_id: str):
    """Return the ticket's valid case, or 404 ``no_active_case``."""
    case = cases.valid_case(ticket_id)
    if case is None:
        return error("no_active_case", f"Ticket {ticket_id} has no active TeamViewer service case.", 404)
    return jsonify(cases.case_json(case))


@bp.post("/tickets/<ticket_id>/close")
def close_ticket(ticket_id: str):
    """The close-ticket guard (F8): 409 while a case is valid, else record the ticket closed."""
    try:
        cases.close_ticket(ticket_id)
    except cases.ActiveServiceCase as exc:
        db.session.commit()  # keeps any expiry recorded on the way
        case = exc.case
        return error(
            "active_service_case",
            f"Ticket {ticket_id} has an active TeamViewer service case {case.code or '(being created)'}, "
            f"opened by {case.opened_by_name or case.opened_by_id}. Stop it in the ticket's TeamViewer widget "
            "before closing the ticket.",
            409, service_case=cases.case_json(case))
    db.session.commit()
    return jsonify({"id": ticket_id, "status": "closed"})


@bp.get("/tickets/<ticket_id>/comments")
def comments(ticket_id: str):
    """Return the comments tvwidget wrote on the ticket, oldest first."""
    rows = db.session.scalars(sa.select(Comment).where(Comment.ticket_id == ticket_id).order_by(Comment.id))
    return jsonify({"comments": [{
        "id": row.id, "kind": row.kind, "body": row.body, "author": row.author_name,
        "created_at": row.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "service_case": row.case_id,
    } for row in rows]})


def _day(name: str) -> date | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    return date.fromisoformat(value)


@bp.get("/reports/teamviewer-sessions")
def sessions_report():
    """The TeamViewer Sessions Summary as JSON (F10)."""
    try:
        start, end = _day("from"), _day("to")
    except ValueError:
        bad = "from" if not _valid_day(request.args.get("from")) else "to"
        return error("invalid_parameter", f"'{bad}' must be a date like 2026-11-24.", 400, parameter=bad)
    today = datetime.now(timezone.utc).date()
    end = end or today
    start = start or end - timedelta(days=29)
    if start > end:
        return error("invalid_parameter", "'from' must not be after 'to'.", 400, parameter="from")
    technician = request.args.get("technician") or None
    if technician is not None and len(technician) > 100:
        return error("invalid_parameter", "'technician' is too long.", 400, parameter="technician")
    since = datetime.combine(start, time.min, timezone.utc)
    until = datetime.combine(end + timedelta(days=1), time.min, timezone.utc)
    return jsonify(reports.summary(since, until, technician))


def _valid_day(value) -> bool:
    try:
        if value:
            date.fromisoformat(value)
        return True
    except ValueError:
        return False
