"""The audit log in the admin area: read, filter and export the append-only trail.

The filter form uses GET, so a link reproduces the view; dates are whole days
in the admin's time zone (from the launch token's ``tz``, else UTC).
"""
import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import g, request, url_for
from flask_babel import gettext, lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, NumberRange, Optional, ValidationError

from tvwidget import csv_export, timefmt
from tvwidget.extensions import db
from tvwidget.i18n import render_page
from tvwidget.storage.audit import KINDS
from tvwidget.storage.models import AuditEvent, ServiceCase, utcnow
from tvwidget.web.admin import bp

PAGE_SIZE = 50
CSV_BATCH = 500

DETAIL_LABELS = {
    "account": _l("account"),
    "company": _l("company"),
    "last4": _l("token"),
    "replaced_last4": _l("replaced token"),
    "after_revoke_by": _l("after revoke by"),
    "connected_by": _l("connected by"),
    "reason": _l("reason"),
    "status": _l("HTTP status"),
    "remote_error": _l("TeamViewer error"),
    "old": _l("from"),
    "new": _l("to"),
    "code": _l("session code"),
    "error": _l("error"),
    "recipient": _l("recipient"),
    "cases": _l("active cases"),
    "rotated": _l("re-encrypted"),
    "unknown_to_teamviewer": _l("unknown to TeamViewer"),
    "attempt": _l("attempt"),
    "message_id": _l("Message-ID"),
    "language": _l("language"),
    "subject": _l("subject"),
    "had_custom_template": _l("had a custom template"),
    "replaced": _l("replaced"),
    "by": _l("by"),
    "previous_status": _l("before"),
    "old_case_id": _l("old case"),
    "old_code": _l("old session code"),
    "new_code": _l("new session code"),
    "userid": _l("TeamViewer user"),
    "assigned_userid": _l("assigned to"),
    "agent": _l("agent"),
    "group": _l("group"),
    "groupid": _l("group id"),
    "users": _l("users"),
    "local_state": _l("state in tvwidget"),
    "closed_at_teamviewer": _l("closed at TeamViewer"),
    "outcome": _l("outcome"),
    "note": _l("note"),
    "final": _l("final attempt"),
    "retry_at": _l("next attempt"),
    "idempotency_key": _l("idempotency key"),
}
CSV_COLUMNS = ("time_utc", "time_local", "timezone", "kind", "event", "actor_id", "actor_name", "ticket_id",
               "case_id", "session_code", "detail")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class AuditFilterForm(FlaskForm):
    """Which audit events to show; read from the query string."""

    class Meta:
        csrf = False  # a GET filter changes nothing

    kind = SelectField(_l("Event"), default="", choices=[SelectChoice("", _l("All events"))] + [
        SelectChoice(kind, label) for kind, label in KINDS.items()])
    agent = StringField(_l("Who (id or name)"), validators=[Optional(), Length(max=200)], filters=[_strip])
    ticket = StringField(_l("Ticket"), validators=[Optional(), Length(max=64)], filters=[_strip])
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])
    page = IntegerField(validators=[Optional(), NumberRange(min=1, max=1_000_000)], default=1)

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("The end date is before the start date."))


def _zone() -> str:
    return g.tvwidget_agent.tz or "UTC"


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _query(form: AuditFilterForm, zone: str):
    query = (sa.select(AuditEvent, ServiceCase.code)
             .outerjoin(ServiceCase, ServiceCase.id == AuditEvent.case_id))
    if form.kind.data:
        query = query.where(AuditEvent.kind == form.kind.data)
    if form.agent.data:
        pattern = _like(form.agent.data)
        query = query.where(sa.or_(AuditEvent.actor_id.ilike(pattern, escape="\\"),
                                   AuditEvent.actor_name.ilike(pattern, escape="\\")))
    if form.ticket.data:
        query = query.where(AuditEvent.ticket_id == form.ticket.data)
    if form.date_from.data:
        query = query.where(AuditEvent.at >= timefmt.day_start(form.date_from.data, zone))
    if form.date_to.data:
        query = query.where(AuditEvent.at < timefmt.day_start(form.date_to.data + timedelta(days=1), zone))
    return query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())


def _detail(event: AuditEvent) -> dict:
    try:
        data = json.loads(event.detail or "{}")
    except ValueError:
        return {"detail": event.detail}
    return data if isinstance(data, dict) else {"detail": data}


def _value(value) -> str:
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


# Details holding a token's last four characters, shown the way the settings page shows them.
_LAST4_KEYS = ("last4", "replaced_last4")


def _row(event: AuditEvent, code: str | None) -> dict:
    detail = _detail(event)
    for key in _LAST4_KEYS:
        if isinstance(detail.get(key), str):
            detail[key] = "…" + detail[key]
    return {
        "event": event,
        "label": KINDS.get(event.kind, event.kind),
        "code": code or (detail.get("code") if isinstance(detail.get("code"), str) else None),
        "details": [(DETAIL_LABELS.get(key, key), _value(value)) for key, value in detail.items()
                    if value is not None and value != "" and key != "code"],
    }


def _filters(form: AuditFilterForm) -> dict:
    """Return the active filters as query-string arguments (for links that keep them)."""
    values = {"kind": form.kind.data, "agent": form.agent.data, "ticket": form.ticket.data,
              "date_from": form.date_from.data and form.date_from.data.isoformat(),
              "date_to": form.date_to.data and form.date_to.data.isoformat()}
    return {key: value for key, value in values.items() if value}


def _invalid(form: AuditFilterForm, zone: str):
    return render_page("tvwidget/admin/audit.html", form=form, zone=zone, rows=[], total=0, page=1, pages=1,
                       prev_url=None, next_url=None, csv_url=None), 422


@bp.get("/audit")
def audit():
    """Show the audit trail, newest first, 50 events a page."""
    form = AuditFilterForm(formdata=request.args)
    zone = _zone()
    if not form.validate():
        return _invalid(form, zone)
    query = _query(form, zone)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery()))
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(form.page.data or 1, pages)
    result = db.session.execute(query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    filters = _filters(form)
    return render_page(
        "tvwidget/admin/audit.html", form=form, zone=zone, rows=[_row(e, code) for e, code in result],
        total=total, page=page, pages=pages, csv_url=url_for(".audit_csv", **filters),
        prev_url=url_for(".audit", **filters, page=page - 1) if page > 1 else None,
        next_url=url_for(".audit", **filters, page=page + 1) if page < pages else None)


@bp.get("/audit.csv")
def audit_csv():
    """Export the filtered audit trail as CSV (UTF-8 with BOM, so spreadsheets read Japanese)."""
    form = AuditFilterForm(formdata=request.args)
    zone = _zone()
    if not form.validate():
        return _invalid(form, zone)
    query = _query(form, zone).execution_options(yield_per=CSV_BATCH)
    tz = ZoneInfo(zone)

    def rows():
        yield CSV_COLUMNS
        for event, code in db.session.execute(query):
            yield [csv_export.cell(value) for value in (
                timefmt.iso_utc(event.at), event.at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), zone,
                event.kind, KINDS.get(event.kind, event.kind), event.actor_id, event.actor_name,
                event.ticket_id, event.case_id, code, event.detail)]

    return csv_export.response(rows(), f"tvwidget-audit-{utcnow().astimezone(tz).date().isoformat()}.csv")

