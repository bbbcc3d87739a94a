"""The demo helpdesk's pages (``TVWIDGET_ENV=demo`` only)."""
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from flask import Blueprint, abort, redirect, render_template, request, session, url_for

from tvwidget.config import setting
from tvwidget.demo.host import DEMO_TICKETS, launch_token
from tvwidget.extensions import db
from tvwidget.i18n import LANGUAGES
from tvwidget.storage.models import EmailMessage
from tvwidget.web.security import check_csrf_token, headers
from tvwidget.web.widget import embed_script_path

bp = Blueprint("tvwidget_demo", __name__)


def widget_origin() -> str:
    """Return the widget's origin: the other loopback name, so the frame is cross-site."""
    parts = urlsplit(request.host_url)
    host = "127.0.0.1" if parts.hostname == "localhost" else "localhost"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


bp.after_request(headers(frameable=False, embeds=widget_origin))


def _lang() -> str:
    lang = request.args.get("lang")
    return lang if lang in LANGUAGES else (request.accept_languages.best_match(LANGUAGES) or "en")


def _host_api(method: str, path: str) -> requests.Response:
    # The demo host calls the host API over HTTP, like any helpdesk would.
    return requests.request(method, request.host_url.rstrip("/") + "/api/v1" + path, timeout=10,
                            headers={"Authorization": f"Bearer {setting('HOST_API_KEY')}"})


@bp.get("/")
def index():
    return redirect(url_for(".ticket", ticket_id="DEMO-1001"))


@bp.get("/demo/ticket/<ticket_id>")
def ticket(ticket_id: str):
    """A helpdesk ticket page with the TeamViewer widget in its sidebar."""
    data = DEMO_TICKETS.get(ticket_id) or abort(404)
    lang = _lang()
    token = launch_token("agent", lang, ticket_id)
    comments = _host_api("GET", f"/tickets/{ticket_id}/comments").json().get("comments", [])
    return render_template(
        "tvwidget/demo/ticket.html", ticket=data, lang=lang, token=token, comments=comments,
        embed_src=widget_origin() + embed_script_path(),
        tickets=DEMO_TICKETS, close_result=session.pop("tvwidget_demo_close", None))


@bp.post("/demo/ticket/<ticket_id>/close")
def close(ticket_id: str):
    """Try to close the ticket through the host API's close guard."""
    if ticket_id not in DEMO_TICKETS:
        abort(404)
    check_csrf_token()
    response = _host_api("POST", f"/tickets/{ticket_id}/close")
    body = response.json()
    session["tvwidget_demo_close"] = {"status": response.status_code, "message": body.get("message") or
                                      "Ticket closed."}
    return redirect(url_for(".ticket", ticket_id=ticket_id, lang=request.args.get("lang")), 303)


@bp.get("/demo/admin")
def admin():
    """Open the admin area as the demo's administrator."""
    return redirect(url_for("tvwidget_admin.launch", token=launch_token("admin", _lang())))


@bp.get("/demo/mail")
def mail():
    """The demo's outbox: every invitation tvwidget sent."""
    messages = db.session.scalars(sa.select(EmailMessage).order_by(EmailMessage.id.desc()).limit(50)).all()
    return render_template("tvwidget/demo/mail.html", messages=messages, lang=_lang())
