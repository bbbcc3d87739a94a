"""The audit trail (F16): append-only records of admin actions and case events.

``record`` is the only way in; nothing updates or deletes a row, and the ORM
refuses to flush a change to one that exists.
"""
import json

import sqlalchemy as sa

from tvwidget.extensions import db
from tvwidget.storage.models import AuditEvent


def record(kind: str, actor=None, *, ticket_id: str | None = None, case_id: int | None = None, **detail) -> None:
    """Add an audit event to the session; the caller commits it with the change it describes."""
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
