"""The audit trail: append-only records of admin actions and case events.

``record`` is the only way in; nothing updates or deletes a row, and the ORM
refuses to flush a change to one that exists.  ``KINDS`` lists every kind
``record`` is called with, with the label the admin audit page shows and
filters on (a test checks the source for kinds missing from it).
"""
import json

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from tvwidget.extensions import db
from tvwidget.storage.models import AuditEvent

# Every kind tvwidget records, with the label admins read; code that records a new kind adds it here.
KINDS = {
    "connected": _l("TeamViewer connected"),
    "connect_failed": _l("Script token refused"),
    "group_changed": _l("Group changed"),
    "revoked": _l("App access revoked"),
    "revoke_refused": _l("Revoke refused (active service cases)"),
    "keys_rotated": _l("Encryption key rotated"),
    "template_saved": _l("Email template saved"),
    "template_reset": _l("Email template reset"),
    "case_opened": _l("Service case opened"),
    "case_failed": _l("Service case could not be opened"),
    "case_adopted": _l("Service case recovered from TeamViewer"),
    "case_closed": _l("Service case closed"),
    "case_close_failed": _l("Service case could not be closed"),
    "case_expired": _l("Service case expired"),
    "case_replaced": _l("Service case replaced"),
    "case_replace_failed": _l("Service case could not be replaced"),
    "orphan_closed": _l("Leftover service case closed at TeamViewer"),
    "email_sent": _l("Invitation sent"),
    "email_resent": _l("Invitation sent again"),
    "email_failed": _l("Invitation failed"),
    "email_not_sent": _l("Invitation not sent"),
    "assignment_refused": _l("TeamViewer refused the assignee"),
    "agent_mapping_changed": _l("Agent's TeamViewer user changed"),
    "group_shared": _l("Group shared"),
}


def record(kind: str, actor=None, *, ticket_id: str | None = None, case_id: int | None = None, **detail) -> None:
    """Add an audit event to the session; the caller commits it with the change it describes.

    ``kind`` is one of ``KINDS``.
    """
    db.session.add(AuditEvent(
        kind=kind,
        actor_id=getattr(actor, "id", None),
        actor_name=getattr(actor, "name", None),
        ticket_id=ticket_id,
        case_id=case_id,
        detail=json.dumps(detail, ensure_ascii=False, default=str, sort_keys=True),
    ))


@sa.event.listens_for(AuditEvent, "before_update")
@sa.event.listens_for(AuditEvent, "before_delete")
def _refuse_change(mapper, connection, target):
    raise RuntimeError(f"audit event {target.id} is append-only; it cannot be changed or deleted")
