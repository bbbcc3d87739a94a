"""The audit trail (F16): append-only records of admin actions and case events."""
import json

from .extensions import db
from .models import AuditEvent


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
