"""The host API (server to server): tickets, the case, the close guard, comments, report."""
import sqlalchemy as sa
from flask import Blueprint, jsonify, request
from flask_babel import force_locale
from werkzeug.exceptions import HTTPException
from werkzeug.routing import PathConverter

from tvwidget import timefmt
from tvwidget.cases import lifecycle as cases, ticket_view
from tvwidget.extensions import db
from tvwidget.host.tokens import TicketDataError, host_key_matches, parse_ticket, save_ticket
from tvwidget.reports import summary as reports
from tvwidget.storage.database import on_outage
from tvwidget.storage.models import Comment, utcnow
from tvwidget.web.security import headers, limit_request_size


class AnyText(PathConverter):
    """Like ``path``, but newlines too: a host's ticket id is opaque and must get a JSON answer."""

    regex = r"[^/](?s:.)*?"


bp = Blueprint("tvwidget_api", __name__, url_prefix="/api/v1")
# Runs before the rules below are added to the host's URL map.
bp.record_once(lambda state: state.app.url_map.converters.setdefault("tvwidget_text", AnyText))
bp.after_request(headers(frameable=False))
bp.before_request(limit_request_size)


def error(code: str, message: str, status: int, **extra):
    """Return the host API's error shape."""
    return jsonify({"error": code, "message": message, **extra}), status


on_outage(bp, lambda: error("database_unavailable",
                            "tvwidget cannot reach its database right now; nothing was changed. Retry shortly.", 503))


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
    if ticket_id is not None and (not 1 <= len(ticket_id) <= 64 or not ticket_id.isprintable()):
        return error("invalid_ticket_id", "A ticket id has 1 to 64 printable characters.", 400)
    return None


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return error(exc.name.lower().replace(" ", "_"), exc.description or exc.name, exc.code or 500)


@bp.route("/<tvwidget_text:unknown>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], merge_slashes=False)
def not_found(unknown: str):
    """Answer JSON for any path under the API that names nothing (hosts parse every reply)."""
    return error("not_found", "No such host API endpoint; see openapi.yaml.", 404)


@bp.put("/tickets/<tvwidget_text:ticket_id>", merge_slashes=False)
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


@bp.get("/tickets/<tvwidget_text:ticket_id>/service-case", merge_slashes=False)
def get_service_case(ticket_id: str):
    """Return the ticket's valid case, or 404 ``no_active_case``."""
    case = ticket_view.active_case(ticket_id)
    if case is None or not case.is_valid(utcnow()):
        return error("no_active_case", f"Ticket {ticket_id} has no active TeamViewer service case.", 404)
    return jsonify(cases.case_json(case))


@bp.post("/tickets/<tvwidget_text:ticket_id>/close", merge_slashes=False)
def close_ticket(ticket_id: str):
    """The close-ticket guard: 409 while a case is valid, else record the ticket closed."""
    if ticket_view.close_unless_held(ticket_id, utcnow()):
        return jsonify({"id": ticket_id, "status": "closed"})
    try:
        cases.close_ticket(ticket_id)
    except cases.ActiveServiceCase as exc:
        db.session.commit()  # keeps any expiry recorded on the way
        return _held(ticket_id, exc.case)
    db.session.commit()
    return jsonify({"id": ticket_id, "status": "closed"})


def _held(ticket_id: str, case):
    return error(
        "active_service_case",
        f"Ticket {ticket_id} has an active TeamViewer service case {case.code or '(being created)'}, "
        f"opened by {case.opened_by_name or case.opened_by_id}. Stop it in the ticket's TeamViewer widget "
        "before closing the ticket.",
        409, service_case=cases.case_json(case))


@bp.get("/tickets/<tvwidget_text:ticket_id>/comments", merge_slashes=False)
def comments(ticket_id: str):
    """Return the comments tvwidget wrote on the ticket, oldest first."""
    rows = db.session.scalars(sa.select(Comment).where(Comment.ticket_id == ticket_id).order_by(Comment.id))
    return jsonify({"comments": [{
        "id": row.id, "kind": row.kind, "body": row.body, "author": row.author_name,
        "created_at": timefmt.iso_utc(row.created_at),
        "service_case": row.case_id,
    } for row in rows]})


@bp.get("/reports/teamviewer-sessions")
def sessions_report():
    """The TeamViewer Sessions Summary as JSON: ``from``/``to`` are UTC days unless ``tz`` names a zone."""
    tz = request.args.get("tz") or "UTC"
    if not timefmt.valid_zone(tz):
        return error("invalid_parameter", "'tz' must be an IANA time zone such as Asia/Tokyo.", 400, parameter="tz")
    try:
        filters = reports.parse_filters(request.args, tz)
    except reports.FilterError as exc:
        with force_locale("en"):  # the host API speaks English, like its other errors
            message = str(exc.message)
        return error("invalid_parameter", message, 400, parameter=exc.parameter)
    return jsonify(reports.as_json(reports.build(filters)))
