"""``flask --app wsgi tvwidget reconcile``: finish or undo what a crash left between us and TeamViewer.

Starting a case commits a ``creating`` row before calling TeamViewer (see
``cases.start_case``), and every session carries that row's key in
``custom_api``.  So after a crash, a lost commit or a timed-out create, the
two sides can be matched up:

- a ``creating`` row older than the client's timeouts whose session exists is
  adopted (it becomes ``open``, and its invitation and webhook event are queued
  as a finished play's would be); without a session it becomes ``failed``;
- an open TeamViewer session whose case is failed, closed or expired here (a
  create that timed out but happened, a stop whose close was lost, an expiry)
  is closed at TeamViewer.  Sessions whose key names no case here are left
  alone: they belong to another installation sharing the TeamViewer account.

Safe to run from cron on several machines: every change is a conditional
update or an idempotent close.
"""
import json
import logging
from dataclasses import dataclass

import sqlalchemy as sa

from tvwidget.cases.lifecycle import DEFAULT_VALIDITY, transition
from tvwidget.extensions import db
from tvwidget.host import webhook
from tvwidget.host.tokens import Agent
from tvwidget.mail import message as mail
from tvwidget.storage import audit
from tvwidget.storage.models import CREATING_STALE_AFTER, CaseState, ServiceCase, utcnow
from tvwidget.teamviewer import directory, integration
from tvwidget.teamviewer.client import Session, TeamViewerError, TeamViewerNotFound

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    adopted: int = 0
    failed: int = 0
    closed_remotely: int = 0
    errors: int = 0


def _case_key(session: Session) -> str | None:
    try:
        data = json.loads(session.custom_api or "")
    except ValueError:
        return None
    return data.get("case") if isinstance(data, dict) and isinstance(data.get("case"), str) else None


def _announce(case: ServiceCase) -> None:
    """Do for an adopted case what a play does once TeamViewer answers: the webhook event and the invitation.

    The invitation goes out through the outbox, in the agent's name, as if the play had finished.
    """
    webhook.enqueue("service_case.opened", case)
    opener = Agent(id=case.opened_by_id, name=case.opened_by_name, email=case.opened_by_email or "", role="agent")
    if mail.queue_invitation(case, opener) is None:
        audit.record("email_not_sent", None, ticket_id=case.ticket_id, case_id=case.id, reason="no valid address")


def reconcile(client) -> Outcome:
    """Match local cases with TeamViewer's open sessions and repair both sides."""
    outcome = Outcome()
    now = utcnow()
    remote = {key: s for s in client.all_sessions(state="open") if (key := _case_key(s))}
    stale = db.session.scalars(sa.select(ServiceCase).where(
        ServiceCase.state == CaseState.CREATING, ServiceCase.opened_at <= now - CREATING_STALE_AFTER)).all()
    for case in stale:
        session = remote.pop(case.idempotency_key, None)
        if session is not None and transition(
                case, CaseState.OPEN, code=session.code, supporter_link=session.supporter_link,
                end_customer_link=session.end_customer_link,
                valid_until=session.valid_until or case.opened_at + DEFAULT_VALIDITY,
                assigned_userid=session.assigned_userid,
                assigned_name=(directory.user_name(session.assigned_userid) or session.assigned_userid)
                if session.assigned_userid else None):
            audit.record("case_adopted", None, ticket_id=case.ticket_id, case_id=case.id, code=session.code)
            _announce(case)
            outcome.adopted += 1
        elif session is None and transition(case, CaseState.FAILED, error="abandoned while creating"):
            audit.record("case_failed", None, ticket_id=case.ticket_id, case_id=case.id,
                         error="abandoned while creating")
            outcome.failed += 1
    db.session.commit()

    keys = list(remote)
    cases = {c.idempotency_key: c for c in db.session.scalars(
        sa.select(ServiceCase).where(ServiceCase.idempotency_key.in_(keys)))} if keys else {}
    for key, session in remote.items():
        case = cases.get(key)
        if case is None:
            # Never ours to touch: every case of ours is committed before its session
            # exists, so this one belongs to another installation on the same account.
            continue
        if case.state in CaseState.ACTIVE and case.is_valid(now):
            continue  # a live case: leave it alone
        try:
            client.close_session(session.code)
        except TeamViewerNotFound:
            pass
        except TeamViewerError as exc:
            log.warning("reconcile: could not close orphan session %s: %s", session.code, exc.kind)
            outcome.errors += 1
            continue
        audit.record("orphan_closed", None, ticket_id=case.ticket_id, case_id=case.id, code=session.code,
                     local_state=case.state)
        outcome.closed_remotely += 1
    db.session.commit()
    return outcome


def run() -> Outcome | None:
    """Reconcile with the stored token; None when TeamViewer is not connected."""
    client = integration.connected_client(integration.settings())
    db.session.rollback()  # hold no lock while listing sessions
    return reconcile(client) if client is not None else None
