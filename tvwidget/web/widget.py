"""The ticket sidebar widget: launch, play, stop with note, live status, history, resend, replace.

Every request after the launch carries the widget credential in the
``X-TVWidget-Credential`` header; the ticket and the agent come from it, never
from anything else the browser sends.
"""
import hashlib
import re
import secrets
import uuid
from pathlib import Path

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, g, make_response, request, url_for
from flask_babel import gettext, lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import InternalServerError

from tvwidget import metrics, timefmt
from tvwidget.cases import connections, lifecycle as cases, live_status as live, ticket_view
from tvwidget.config import setting
from tvwidget.extensions import db
from tvwidget.host import webhook
from tvwidget.host.tokens import (
    ALREADY_USED,
    LaunchError,
    check_launch_token,
    issue_credential,
    read_credential,
    sweep_spent_tokens_after,
)
from tvwidget.i18n import language, render_page, timezone
from tvwidget.mail import message as mail, outbox
from tvwidget.paths import asset_dir
from tvwidget.storage.database import on_outage
from tvwidget.storage.models import CaseState, Comment, ServiceCase, utcnow
from tvwidget.web.security import (
    allowed_host_origin,
    headers,
    limit_request_size,
    log_refused_launch,
    same_origin_request,
)

bp = Blueprint("tvwidget", __name__, static_folder=asset_dir("static"), static_url_path="/static/tvwidget")
bp.after_request(headers(frameable=True))
bp.before_request(limit_request_size)
bp.after_request(log_refused_launch)

CREDENTIAL_HEADER = "X-TVWidget-Credential"
_IDEMPOTENCY_KEY_RE = re.compile(r"^[0-9a-f]{32}$")
HISTORY_PAGE_SIZE = 5


def time_left(seconds: int | None) -> str | None:
    """Return the time before expiry as the widget says it ("23 h 12 min left")."""
    if seconds is None:
        return None
    if seconds < 60:
        return gettext("less than a minute left")
    hours, minutes = seconds // 3600, seconds % 3600 // 60
    if hours:
        return gettext("%(hours)d h %(minutes)d min left", hours=hours, minutes=minutes)
    return gettext("%(minutes)d min left", minutes=minutes)


def status_context(case, tracking, now) -> dict:
    """Return what ``_status.html`` shows, from the shared cache only (never a TeamViewer call)."""
    status = live.status_of(case, tracking, now)
    return {"case": case, "live": status, "time_left": time_left(status.seconds_left),
            "poll_seconds": setting("STATUS_POLL_SECONDS")}


FRAGMENTS_KEPT = 1000


def _kept_render(template: str, key: tuple, context) -> Markup:
    """Render ``template`` with ``context()``, or return the render kept for the same ``key``.

    ``key`` must hold everything the template reads but the language, the
    time zone and where the app is mounted, which are added here (never
    anything about who is asking beyond those).  At most ``FRAGMENTS_KEPT``
    renders are kept per app; then the store starts afresh.
    """
    kept = current_app.extensions.setdefault("tvwidget_fragments", {})
    key = (template, language(), timezone(), request.script_root, *key)
    fragment = kept.get(key)
    if fragment is None:
        if len(kept) >= FRAGMENTS_KEPT:
            kept.clear()
        fragment = kept[key] = Markup(render_page(template, **context()))
    return fragment


def status_fragment(case, tracking, now) -> Markup:
    """``_status.html`` for an open or expired case, rendered once per status, minute left and language.

    The poll and the widget show it; an open case's polls mostly find it
    unchanged, so most polls and launches skip its render (measured in
    bench/RESULTS-i19.md).
    """
    status = live.status_of(case, tracking, now)
    minutes_left = None if status.seconds_left is None else status.seconds_left // 60
    key = (case.code, status.status, status.unavailable, minutes_left, setting("STATUS_POLL_SECONDS"))
    return _kept_render("tvwidget/_status.html", key, lambda: status_context(case, tracking, now))


def case_details_fragment(case, email, email_status: str, email_retrying: bool) -> Markup:
    """``_case_details.html`` for an open case, rendered once per case, invitation state and language.

    Every view of a ticket with an open case shows it unchanged, so launches
    skip its render, the widget's largest part (measured in
    bench/RESULTS-i19.md).  The key is every field the template reads.
    """
    shown_email = None if email is None else (email.recipient, email.next_attempt_at, email.last_error)
    key = (case.code, case.valid_until, case.assigned_name, case.assigned_userid, case.supporter_link,
           case.end_customer_link, email_status, email_retrying, shown_email)
    return _kept_render("tvwidget/_case_details.html", key, lambda: {
        "case": case, "email": email, "email_status": email_status, "email_retrying": email_retrying})


# What differs on every launch of the same widget; the kept page holds these placeholders instead.
_FILLS = {name: f"tvwidget-fill-{name.replace('_', '-')}-{secrets.token_hex(8)}"
          for name in ("credential", "idempotency_key")}
# What the fills may hold: characters that HTML escaping and |tojson leave as they are
# (the credential is URL-safe base64 with dots, the idempotency key hex).
_FILLABLE = re.compile(r"[A-Za-z0-9_.-]+")


def launch_page(context: dict) -> str:
    """``widget.html`` for a launch, rendered once per thing it shows; this launch's credential and key filled in.

    Nearly every view of a ticket shows the same widget as the last one, so
    launches skip its render (measured in bench/RESULTS-i19.md).  A launch
    shows no alert, event or form; the key is everything else the page reads
    (with ``_kept_render``'s language, time zone and mount point), the kept
    fragments included.
    """
    fills = {name: context[name] for name in _FILLS}
    if context["alert"] or context["events"] or context["confirm_stop"] \
            or not all(_FILLABLE.fullmatch(value) for value in fills.values()):
        return render_page("tvwidget/widget.html", **context)
    case = context["case"]
    key = (context["state"], context["ticket_id"], context["host_origin"], context["agent"].is_admin,
           None if case is None else (case.code, case.valid_until),
           context.get("status_fragment"), context.get("case_details"))
    page = str(_kept_render("tvwidget/widget.html", key, lambda: context | _FILLS))
    for name, value in fills.items():
        page = page.replace(_FILLS[name], value)
    return page


def email_status_of(email) -> str:
    """Return the invitation's status as the widget and the host's events name it: sent, failed or pending."""
    if email is None:
        return "failed"  # no valid requester address: nothing could be sent
    return email.status if email.status in ("sent", "failed") else "pending"


def case_event(name: str, case: ServiceCase) -> dict:
    """Return the host event ``tvwidget:<name>`` about ``case``; closed and expired carry tvwidget's comment.

    The events are described in docs/embed.md ("Events").
    """
    detail = {"ticketId": case.ticket_id, "code": case.code, "state": case.state}
    if name in ("case-closed", "case-expired"):
        detail["comment"] = db.session.scalar(
            sa.select(Comment.body).where(Comment.case_id == case.id).order_by(Comment.id.desc()).limit(1))
    elif name == "email-status":
        detail["emailStatus"] = email_status_of(case.email)
    return {"event": name, "detail": detail}


def widget_context(agent, ticket_id: str, view: ticket_view.View | None = None, alert=None, alert_kind: str = "error",
                   confirm_stop: bool = False, form: dict | None = None, form_error=None, events=()) -> dict:
    """Return everything ``_widget.html`` shows, for page and fragment alike (``view`` read if not given).

    ``events`` name the host events (``case_event``) about the widget's case that this response announces.
    """
    now = utcnow()
    if view is None:
        view = ticket_view.view(ticket_id)
    case = view.case
    if not view.connected:
        state = "disconnected"
    elif case is None or case.state == CaseState.CLOSED:
        state = "idle"
    elif case.state == CaseState.CREATING:
        state = "busy" if case.is_valid(now) else "idle"
    elif case.state == CaseState.EXPIRED or not case.is_valid(now):
        state = "expired"
    else:
        state = "open"
    email = view.email
    email_status = email_status_of(email)
    # Pending after a failed try: the outbox retries, the agent is told so.
    email_retrying = email is not None and email.status == "pending" and bool(email.last_error)
    host_origin = g.get("tvwidget_host_origin")
    fragments = {}
    if state in ("open", "expired"):
        fragments["status_fragment"] = status_fragment(case, view.tracking, now)
    if state == "open":
        fragments["case_details"] = case_details_fragment(case, email, email_status, email_retrying)
    return {
        "state": state,
        "case": case,
        "email": email,
        "email_status": email_status,
        "email_retrying": email_retrying,
        "agent": agent,
        "ticket_id": ticket_id,
        "credential": issue_credential(agent, ticket_id, host_origin),
        "host_origin": host_origin,
        "events": [case_event(name, case) for name in events],
        "idempotency_key": uuid.uuid4().hex,
        "alert": alert,
        "alert_kind": alert_kind,
        "confirm_stop": confirm_stop and state == "open",
        "form": form or {"note": "", "outcome": "unknown"},
        "form_error": form_error,
        "outcomes": cases.OUTCOME_LABELS,
        "note_max": cases.NOTE_MAX,
    } | fragments


def _render(context: dict, status: int = 200):
    template = "tvwidget/_widget.html" if request.headers.get("HX-Request") else "tvwidget/widget.html"
    return render_page(template, **context), status, {"Vary": "HX-Request"}


def _render_then_send_due(context: dict, status: int = 200):
    """Render the widget; once it has gone out, send one due invitation and the due webhook events."""
    return webhook.send_due_after(outbox.send_one_due_after(make_response(_render(context, status))))


def _error_page(message, status: int, token_needed: bool = False):
    """Render an error in the frame; ``token_needed``: only a new launch token helps (the host is told)."""
    template = "tvwidget/_error.html" if request.headers.get("HX-Request") else "tvwidget/error.html"
    events = [{"event": "token-needed", "detail": {"message": str(message)}}] if token_needed else []
    return render_page(template, message=message, host_origin=g.get("tvwidget_host_origin"),
                           events=events), status, {"Vary": "HX-Request"}


on_outage(bp, lambda: _error_page(
    _l("tvwidget cannot reach its database right now. Nothing was changed; try again in a moment."), 503))


@bp.errorhandler(InternalServerError)
def _unexpected(exc):
    """Show a clear page inside the frame instead of Flask's (the details go to the server log)."""
    db.session.rollback()
    return _error_page(_l("tvwidget ran into an unexpected error. Reload the ticket page and check the service "
                          "case; if it happens again, your administrator will find the details in the server log."),
                       500)


@bp.route("/embed/widget", methods=["GET", "POST"])
def launch():
    """Open the widget for the ticket named in the host's launch token."""
    raw = request.form.get("token") if request.method == "POST" else request.args.get("token")
    if request.method == "POST":
        # embed.js names the host page; the widget talks to it only if it may frame the widget.
        g.tvwidget_host_origin = allowed_host_origin(request.form.get("host_origin"))
    try:
        claims = check_launch_token(raw or "", want_ticket=True)
        view = ticket_view.launch(claims)
        if view is None:
            raise LaunchError(ALREADY_USED)
    except LaunchError as exc:
        return _error_page(exc.message, exc.status, token_needed=True)
    g.tvwidget_agent = claims.agent
    page = launch_page(widget_context(claims.agent, claims.ticket.id, view))
    return sweep_spent_tokens_after(make_response(page, 200, {"Vary": "HX-Request"}))


def _authorised():
    """Return (agent, ticket_id) from the credential header, or abort with a clear page."""
    try:
        credential = read_credential(request.headers.get(CREDENTIAL_HEADER))
    except LaunchError as exc:
        abort(make_response(_error_page(exc.message, exc.status, token_needed=True)))
    agent, ticket_id = credential.agent, credential.ticket_id
    if ticket_id is None:
        abort(make_response(_error_page(_l("This credential is not for a ticket's widget."), 403)))
    if request.method not in ("GET", "HEAD") and not same_origin_request():
        abort(make_response(_error_page(_l("Requests from other sites are not accepted."), 403)))
    g.tvwidget_agent = agent
    g.tvwidget_credential_issued = credential.issued
    g.tvwidget_host_origin = credential.host_origin
    return agent, ticket_id


def _credential_half_spent(now) -> bool:
    """Return whether the request's credential has used up half its life (the status poll then renews it)."""
    age = (now - g.tvwidget_credential_issued).total_seconds()
    return age > setting("WIDGET_CREDENTIAL_MAX_AGE") / 2


@bp.get("/embed/widget/panel")
def panel():
    """Return the widget as it stands now (used while a case is being created)."""
    agent, ticket_id = _authorised()
    return _render(widget_context(agent, ticket_id))


def _refused(agent, ticket_id: str, exc: cases.CaseError):
    """Undo the request's changes and show why it was refused (an expiry it found is announced to the host)."""
    db.session.rollback()
    status = 502 if exc.kind in ("unavailable", "timeout", "auth", "permission", "rate_limited", "license",
                                 "bad_request", "not_found", "bad_reply") else 409
    view = ticket_view.view(ticket_id)
    expired = exc.kind == "expired" and view.case is not None and view.case.state == CaseState.EXPIRED
    return _render(widget_context(agent, ticket_id, view, alert=exc.message,
                                  events=("case-expired",) if expired else ()), status)


@bp.post("/embed/widget/play")
def play():
    """Start a service case, or show the one the ticket already has."""
    agent, ticket_id = _authorised()
    key = request.form.get("idempotency_key", "")
    if not _IDEMPOTENCY_KEY_RE.match(key):
        key = uuid.uuid4().hex
    try:
        case, created = cases.start_case(ticket_id, agent, key)
    except cases.CaseError as exc:
        metrics.PLAYS_REFUSED.labels(exc.kind).inc()
        return _refused(agent, ticket_id, exc)
    if created:
        cases.send_invitation(case, agent)
    return _render_then_send_due(widget_context(
        agent, ticket_id, events=("case-opened", "email-status") if created else ()))


@bp.get("/embed/widget/stop")
def stop_form():
    """Ask for the closing note and outcome before stopping; changes nothing."""
    agent, ticket_id = _authorised()
    return _render(widget_context(agent, ticket_id, confirm_stop=True))


@bp.post("/embed/widget/stop")
def stop():
    """Close the ticket's service case and comment its times, outcome and note.

    Without fields (an older page, a host's script) the outcome is unknown and there is no note.
    """
    agent, ticket_id = _authorised()
    form = {"note": request.form.get("note", ""), "outcome": request.form.get("outcome") or "unknown"}
    note = cases.clean_note(form["note"])
    if form["outcome"] not in cases.STOP_OUTCOMES:
        return _render(widget_context(agent, ticket_id, confirm_stop=True, form=form,
                                      form_error=_l("Choose resolved, unresolved or unknown.")), 422)
    if note is not None and len(note) > cases.NOTE_MAX:
        return _render(widget_context(agent, ticket_id, confirm_stop=True, form=form,
                                      form_error=_l("The note may be at most %(max)d characters long.",
                                                    max=cases.NOTE_MAX)), 422)
    try:
        case = cases.stop_case(ticket_id, agent, note=note, outcome=form["outcome"])
    except cases.CaseError as exc:
        return _refused(agent, ticket_id, exc)
    context = widget_context(agent, ticket_id)
    context["events"] = [case_event("case-closed", case)]
    return _render_then_send_due(context)


@bp.get("/embed/widget/status")
def status():
    """The open case's live status, polled while the widget shows it.

    Answers from the shared cache; only the poll that claims a stale cache
    asks TeamViewer.  When the case is no longer open (stopped in another
    window, closed at TeamViewer, expired), the whole widget is sent instead.
    """
    agent, ticket_id = _authorised()
    now = utcnow()
    view = ticket_view.view(ticket_id)
    case = view.case
    if case is None or case.state != CaseState.OPEN or case.code != request.args.get("code") \
            or _credential_half_spent(now):
        # A poll never renews the credential by itself: the whole widget (with a fresh one) comes
        # back instead, so a widget left watching an open case for hours keeps working.
        return _whole_widget(agent, ticket_id, view)
    if not case.is_valid(now):
        expired = cases.expire_case(case.id, now, agent)
        db.session.commit()
        return _whole_widget(agent, ticket_id, events=("case-expired",) if expired else ())
    if not live.is_due(view.tracking, now):
        metrics.STATUS_CACHE_HIT.inc()
    else:
        refreshed = live.refresh(case.id, case.code, now)
        # "fresh": another poll is asking TeamViewer right now, so this one is answered from the cache.
        (metrics.STATUS_CACHE_HIT if refreshed == "fresh" else metrics.STATUS_CACHE_MISS).inc()
        if refreshed == "closed":
            return _whole_widget(agent, ticket_id, alert=_l(
                "Service case %(code)s was closed at TeamViewer; its times are on the ticket.", code=case.code),
                events=("case-closed",))
        view = ticket_view.view(ticket_id)
        if view.case is None or view.case.id != case.id:
            return _whole_widget(agent, ticket_id, view)
    return status_fragment(view.case, view.tracking, now), 200, {"Vary": "HX-Request"}


def _whole_widget(agent, ticket_id: str, view: ticket_view.View | None = None, alert=None, events=()):
    """Send the whole widget in place of the status fragment that asked."""
    response = make_response(render_page("tvwidget/_widget.html", **widget_context(
        agent, ticket_id, view, alert=alert, alert_kind="info", events=events)))
    response.headers.update({"HX-Retarget": "#tvwidget-widget", "HX-Reswap": "outerHTML", "Vary": "HX-Request"})
    return webhook.send_due_after(response)


@bp.get("/embed/widget/history")
def history():
    """The ticket's past service cases, newest first, a page at a time; loaded after the widget."""
    agent, ticket_id = _authorised()
    page = request.args.get("page", "1")
    # isdigit() alone admits "⁰⁴⁵", which int() refuses.
    page = int(page) if page.isascii() and page.isdigit() and 0 < int(page) < 100_000 else 1
    found = db.session.scalars(
        sa.select(ServiceCase).options(selectinload(ServiceCase.email))
        .where(ServiceCase.ticket_id == ticket_id, ServiceCase.state.in_((CaseState.CLOSED, CaseState.EXPIRED)))
        .order_by(ServiceCase.id.desc())
        .offset((page - 1) * HISTORY_PAGE_SIZE).limit(HISTORY_PAGE_SIZE + 1)).all()
    items = found[:HISTORY_PAGE_SIZE]
    connected = connections.connected_seconds([case.id for case in items])
    return render_page(
        "tvwidget/_history.html", items=[_history_item(case, connected.get(case.id)) for case in items],
        page=page, has_older=len(found) > HISTORY_PAGE_SIZE, outcomes=cases.OUTCOME_LABELS,
    ), 200, {"Vary": "HX-Request"}


def _history_item(case, connected_seconds: int | None) -> dict:
    return {
        "case": case,
        "duration": timefmt.format_duration((case.ended_at - case.opened_at).total_seconds()),
        "connected": timefmt.format_duration(connected_seconds) if connected_seconds is not None else None,
        "outcome": case.outcome or "unknown",
        "email_status": email_status_of(case.email),
    }


@bp.post("/embed/widget/resend")
def resend():
    """Send the open case's invitation again, with the same Message-ID."""
    agent, ticket_id = _authorised()
    try:
        case = cases.resend_invitation(ticket_id, agent)
    except cases.CaseError as exc:
        return _refused(agent, ticket_id, exc)
    cases.send_invitation(case, agent)
    return _render(widget_context(agent, ticket_id, events=("email-status",)))


@bp.post("/embed/widget/replace")
def replace():
    """Close an open case the customer never joined and open a fresh one with a new invitation."""
    agent, ticket_id = _authorised()
    key = request.form.get("idempotency_key", "")
    if not _IDEMPOTENCY_KEY_RE.match(key):
        key = uuid.uuid4().hex
    code = request.form.get("code", "")
    try:
        case, created = cases.replace_case(ticket_id, agent, code, key)
    except cases.CaseError as exc:
        return _refused(agent, ticket_id, exc)
    if created:
        cases.send_invitation(case, agent)
    context = widget_context(
        agent, ticket_id, alert=_l("The old service case was closed; this is a new one with a new link."),
        alert_kind="info", events=("case-opened", "email-status") if created else ())
    old = db.session.scalar(sa.select(ServiceCase).where(ServiceCase.ticket_id == ticket_id,
                                                         ServiceCase.code == code, ServiceCase.id != case.id))
    if created and old is not None:
        context["events"].insert(0, case_event("case-closed", old))
    return _render_then_send_due(context)


EMBED_SCRIPT_CACHE = "public, max-age=3600, stale-while-revalidate=86400"
EMBED_SCRIPT_VERSIONED_CACHE = "public, max-age=31536000, immutable"


def _embed_script() -> tuple[bytes, str]:
    """Return embed.js and its version (a hash of its content), read once per app."""
    cached = current_app.extensions.get("tvwidget_embed_script")
    if cached is None:
        body = (Path(bp.static_folder) / "embed.js").read_bytes()
        cached = current_app.extensions["tvwidget_embed_script"] = (body, hashlib.sha256(body).hexdigest()[:16])
    return cached


def embed_script_path() -> str:
    """Return the path of embed.js with its version: a URL that may be cached for good."""
    return url_for("tvwidget.embed_script", v=_embed_script()[1])


@bp.get("/embed/embed.js")
def embed_script():
    """The host pages' embed script (docs/embed.md).

    Host pages name it without a version: it is cached an hour, then
    revalidated by its ETag (a 304 while unchanged).  With ``?v=`` its current
    version (``embed_script_path``) it is cached for a year.
    """
    body, version = _embed_script()
    response = Response(body, mimetype="text/javascript")
    response.set_etag(version)
    response.headers["Cache-Control"] = (EMBED_SCRIPT_VERSIONED_CACHE if request.args.get("v") == version
                                         else EMBED_SCRIPT_CACHE)
    return response.make_conditional(request)


@bp.get("/embed/email-preview.css")
def email_preview_css():
    """The invitation layout's styles as a stylesheet, for the template editor's sandboxed preview frame."""
    response = Response(mail.preview_stylesheet(), mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
