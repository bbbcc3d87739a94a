"""Service-case rules: start (one valid case a ticket), stop, replace, expire, and the close-ticket guard.

Starting a case calls TeamViewer, which no database transaction can cover, so
it runs in atomic phases: commit a ``creating`` row
that claims the ticket's single slot, call TeamViewer, then record ``open`` or
``failed``.  The partial unique index makes the claim race-free across
processes.  These functions therefore commit at their phase boundaries.
"""
import json
import logging
import time
import unicodedata
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_babel import force_locale, gettext, lazy_gettext as _l
from sqlalchemy.exc import IntegrityError

from tvwidget import timefmt
from tvwidget.config import setting
from tvwidget.extensions import db
from tvwidget.host import webhook
from tvwidget.host.tokens import Agent
from tvwidget.mail import message as mail, outbox
from tvwidget.storage import audit, database
from tvwidget.storage.models import CREATING_STALE_AFTER, CaseState, CaseTracking, Comment, ServiceCase, Ticket, utcnow
from tvwidget.storage.secrets import SecretUnreadable
from tvwidget.teamviewer import directory, integration
from tvwidget.teamviewer.client import TeamViewerError, TeamViewerNotFound

log = logging.getLogger(__name__)

DEFAULT_VALIDITY = timedelta(hours=24)
# The outcomes an agent chooses from when stopping a case.
STOP_OUTCOMES = ("resolved", "unresolved", "unknown")
OUTCOME_LABELS = {"resolved": _l("Resolved"), "unresolved": _l("Unresolved"), "unknown": _l("Unknown")}
NOTE_MAX = 1000
NOT_CONNECTED = _l("TeamViewer is not connected. An administrator must connect it in the tvwidget admin area.")
TOKEN_UNREADABLE = _l("The stored TeamViewer token cannot be read (the encryption key changed). "
                      "An administrator must enter the script token again.")


class CaseError(Exception):
    """An action on a service case could not be done; ``message`` is for the agent."""

    def __init__(self, message, kind: str = "error"):
        super().__init__(str(message))
        self.message = message
        self.kind = kind


class ActiveServiceCase(Exception):
    """The ticket cannot be closed: a service case is still valid."""

    def __init__(self, case: ServiceCase):
        code = case.code or "(being created)"
        super().__init__(f"ticket {case.ticket_id} has an active TeamViewer service case {code}")
        self.case = case


def transition(case: ServiceCase, new_state: str, **values) -> bool:
    """Move ``case`` to ``new_state`` unless another process already moved it on.

    A conditional UPDATE from the states that may precede ``new_state``, so
    that of two concurrent stops (or a stop and an expiry) exactly one wins
    and writes the comment; the loser gets False.
    """
    predecessors = [state for state, following in CaseState.TRANSITIONS.items() if new_state in following]
    result = db.session.execute(
        sa.update(ServiceCase)
        .where(ServiceCase.id == case.id, ServiceCase.state.in_(predecessors))
        .values(state=new_state, **values)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(case)
    return result.rowcount == 1


def _holds_ticket(ticket_id):
    """The condition that a case holds the ticket: it is in ``creating`` or ``open``.

    Spelled as two comparisons, not ``in_``: an IN list is rewritten into the
    SQL on every execution, a cost the guard read and the close guard paid on
    every request (measured in bench/RESULTS-i19.md).
    """
    return sa.and_(ServiceCase.ticket_id == ticket_id,
                   sa.or_(*(ServiceCase.state == state for state in CaseState.ACTIVE)))


def active_case_query(ticket_id) -> sa.Select:
    """Select the ticket's case in ``creating`` or ``open`` (the index allows one), valid or not."""
    return sa.select(ServiceCase).where(_holds_ticket(ticket_id))


def active_case(ticket_id: str) -> ServiceCase | None:
    """Return the ticket's case in ``creating`` or ``open`` (the index allows one), valid or not."""
    return db.session.scalar(active_case_query(ticket_id))


def valid_case(ticket_id: str, now: datetime | None = None) -> ServiceCase | None:
    """Return the ticket's valid case (a ticket has at most one), or None."""
    case = active_case(ticket_id)
    return case if case is not None and case.is_valid(now or utcnow()) else None


def clean_note(text: str | None) -> str | None:
    """Return the agent's closing note without control characters (line breaks and tabs kept), or None."""
    if not text:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
    return text.strip() or None


def _comment_body(case: ServiceCase, kind: str, actor_name: str, locale: str, tz: str,
                  replaced: bool = False) -> str:
    # Whole seconds, so the duration always agrees with the start and end it is shown beside.
    start, end = case.opened_at.replace(microsecond=0), case.ended_at.replace(microsecond=0)
    with force_locale(locale):
        if kind == "closed":
            head = gettext("TeamViewer service case %(code)s closed by %(name)s.", code=case.code, name=actor_name)
        elif kind == "closed_remotely":
            head = gettext("TeamViewer service case %(code)s was closed at TeamViewer.", code=case.code)
        else:
            head = gettext("TeamViewer service case %(code)s expired without being stopped.", code=case.code)
        lines = [head]
        if replaced:
            lines.append(gettext("Replaced by a new service case because the customer never joined."))
        lines += [
            gettext("Start: %(time)s", time=timefmt.local_time(case.opened_at, locale, tz)),
            gettext("End: %(time)s", time=timefmt.local_time(end, locale, tz)),
            gettext("Duration: %(duration)s", duration=timefmt.format_duration((end - start).total_seconds())),
        ]
        if case.outcome:
            lines.append(gettext("Outcome: %(outcome)s", outcome=OUTCOME_LABELS.get(case.outcome, case.outcome)))
        if case.note:
            lines.append(gettext("Note: %(note)s", note=case.note))
    return "\n".join(lines)


def _add_comment(case: ServiceCase, kind: str, actor: Agent | None, replaced: bool = False) -> Comment:
    locale = (actor.locale if actor else None) or setting("DEFAULT_LOCALE")
    tz = (actor.tz if actor else None) or "UTC"
    comment = Comment(
        ticket_id=case.ticket_id, case_id=case.id, kind=kind,
        body=_comment_body(case, kind, actor.name if actor else "", locale, tz, replaced),
        author_name=actor.name if actor else "tvwidget",
    )
    db.session.add(comment)
    webhook.enqueue("service_case.expired" if kind == "expired" else "service_case.closed", case, comment.body)
    return comment


def expire_overdue(now: datetime | None = None, ticket_id: str | None = None, actor: Agent | None = None) -> int:
    """Record every open case past its ``valid_until`` as expired; return how many."""
    now = now or utcnow()
    query = sa.select(ServiceCase).where(ServiceCase.state == CaseState.OPEN, ServiceCase.valid_until <= now)
    if ticket_id is not None:
        query = query.where(ServiceCase.ticket_id == ticket_id)
    count = 0
    for case in db.session.scalars(query).all():
        if transition(case, CaseState.EXPIRED):
            _add_comment(case, "expired", actor)
            audit.record("case_expired", actor, ticket_id=case.ticket_id, case_id=case.id, code=case.code)
            count += 1
    return count


def _fail_abandoned(ticket_id: str, now: datetime) -> None:
    """Release the slot of a ``creating`` row whose process died mid-call."""
    case = db.session.scalar(sa.select(ServiceCase).where(
        ServiceCase.ticket_id == ticket_id, ServiceCase.state == CaseState.CREATING,
        ServiceCase.opened_at <= now - CREATING_STALE_AFTER))
    if case is not None and transition(case, CaseState.FAILED, error="abandoned while creating"):
        audit.record("case_failed", None, ticket_id=ticket_id, case_id=case.id, error="abandoned while creating",
                     idempotency_key=case.idempotency_key)


def _client_or_raise(lock: str | None = None):
    row = integration.settings(lock)
    try:
        client = integration.connected_client(row)
    except SecretUnreadable:
        raise CaseError(TOKEN_UNREADABLE, "not_connected") from None
    if client is None:
        raise CaseError(NOT_CONNECTED, "not_connected")
    return row, client


def _assignee_name(userid: str | None, match: "directory.Match", settings_row) -> str | None:
    """Name the case's TeamViewer assignee: the agent's match, the directory, or the token's owner."""
    if userid is None:
        return None
    if userid == match.userid and match.name:
        return match.name[:200]
    name = directory.user_name(userid)
    if name is None and not match.assigns:
        name = settings_row.account_name  # unassigned cases go to the token's owner
    return (name or userid)[:200]


def _wait_for_other(ticket_id: str) -> ServiceCase | None:
    """Wait while another request finishes creating the ticket's case; return what it became."""
    deadline = time.monotonic() + setting("TEAMVIEWER_CONNECT_TIMEOUT") + setting("TEAMVIEWER_READ_TIMEOUT") + 2
    while True:
        db.session.rollback()
        with database.reading():
            case = active_case(ticket_id)
            if case is None or case.state != CaseState.CREATING or time.monotonic() > deadline:
                return case
            db.session.rollback()  # hold no snapshot while waiting
        time.sleep(0.1)


def start_case(ticket_id: str, agent: Agent, idempotency_key: str) -> tuple[ServiceCase | None, bool]:
    """Open a TeamViewer service case for the ticket, or return the one it already has.

    Returns ``(case, created)``; ``created`` is False when another press won.
    The invitation is queued in the same transaction as the case; the caller
    sends it (after this function's final commit).  A mapped agent's case is
    assigned to their TeamViewer user; if TeamViewer refuses that user by
    name, the case is created once more unassigned and the refusal recorded.
    """
    # Whose TeamViewer the case goes to (the agent's mapped user); may fetch the directory,
    # so before any lock is taken.
    match = directory.prepare_play(agent)
    # The settings row stays share-locked until the claim below commits: a revoke waits, then sees the claim.
    settings_row, client = _client_or_raise("share")
    now = utcnow()
    same_click = db.session.scalar(sa.select(ServiceCase).where(ServiceCase.idempotency_key == idempotency_key))
    if same_click is not None:
        if same_click.ticket_id != ticket_id:
            raise CaseError(_l("This request does not belong to this ticket."), "forbidden")
        return (_wait_for_other(ticket_id) if same_click.state == CaseState.CREATING else same_click), False

    # Phase 1: claim the ticket's slot.
    expire_overdue(now, ticket_id, agent)
    _fail_abandoned(ticket_id, now)
    ticket = db.session.get(Ticket, ticket_id)
    case = ServiceCase(
        ticket=ticket, state=CaseState.CREATING, idempotency_key=idempotency_key,
        group_name=settings_row.group_name, opened_at=now,
        opened_by_id=agent.id, opened_by_name=agent.name, opened_by_email=agent.email,
        ticket_category=ticket.category, ticket_type=ticket.type,
        ticket_priority=ticket.priority, ticket_source=ticket.source,
    )
    db.session.add(case)
    remote_request = {
        "group_name": settings_row.group_name,
        "description": f"Ticket #{ticket.id}: {ticket.subject}"[:1000],
        "end_customer_name": ticket.requester_name[:100] or None,
        "end_customer_email": ticket.requester_email[:254] or None,
        "custom_api": json.dumps({"ticket_id": ticket.id, "case": idempotency_key}),
    }
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return _wait_for_other(ticket_id), False

    # Phase 2: the only step outside the database; no transaction is open
    # (nothing touches the expired ORM objects until phase 3).
    refusal = None
    try:
        try:
            remote = client.create_session(**remote_request, assigned_userid=match.userid if match.assigns else None)
        except TeamViewerError as exc:
            # A refused assignee created nothing: create once more, unassigned. Timeouts and 5xx
            # are never repeated (the first may have been made; reconcile adopts it).
            if not (match.assigns and directory.refuses_assignment(exc, match.userid)):
                raise
            refusal = exc
            remote = client.create_session(**remote_request)
    except TeamViewerError as exc:
        transition(case, CaseState.FAILED, error=f"{exc.kind}: {exc.status or ''}".strip(": "))
        audit.record("case_failed", agent, ticket_id=ticket_id, case_id=case.id, error=exc.kind, status=exc.status)
        if refusal is not None:
            directory.record_refusal(agent, match, refusal, case.id, ticket_id)
        db.session.commit()
        raise CaseError(exc.message, exc.kind) from None

    # Phase 3: record what TeamViewer made, with the invitation, in one transaction.
    valid_until = remote.valid_until or now + DEFAULT_VALIDITY
    assigned = remote.assigned_userid or (match.userid if match.assigns and refusal is None else None)
    transition(case, CaseState.OPEN, code=remote.code, supporter_link=remote.supporter_link,
                end_customer_link=remote.end_customer_link, valid_until=valid_until,
                assigned_userid=assigned, assigned_name=_assignee_name(assigned, match, settings_row))
    if refusal is not None:
        directory.record_refusal(agent, match, refusal, case.id, ticket_id)
    audit.record("case_opened", agent, ticket_id=ticket_id, case_id=case.id, code=remote.code,
                 assigned_userid=assigned)
    webhook.enqueue("service_case.opened", case)
    message = mail.queue_invitation(case, agent, agent.tz or "UTC")
    if message is None:
        audit.record("email_not_sent", agent, ticket_id=ticket_id, case_id=case.id, reason="no valid address")
    db.session.commit()
    return case, True


def send_invitation(case: ServiceCase, agent: Agent | None) -> None:
    """Send the case's queued invitation now (through the outbox, which records the outcome)."""
    message = case.email
    if message is None or message.status != "pending":
        return
    outbox.send_one(message.id, agent)


def resend_invitation(ticket_id: str, agent: Agent) -> ServiceCase:
    """Queue the open case's invitation again, same Message-ID; the caller sends it.

    A case opened while the ticket had no valid requester address gets its
    first invitation here, if the host has corrected the address since.
    """
    now = utcnow()
    case = active_case(ticket_id)
    if case is None or case.state != CaseState.OPEN or not case.is_valid(now):
        raise CaseError(_l("There is no open service case on this ticket, so there is no invitation to send."),
                        "gone")
    message = case.email
    if message is None:
        message = mail.queue_invitation(case, agent, agent.tz or "UTC")
        if message is None:
            raise CaseError(_l("No email can be sent: the ticket has no valid requester address. "
                               "Copy the customer link and give it to the requester yourself."), "no_address")
        db.session.flush()
        previous = None
    else:
        previous = message.status
        if not outbox.reschedule(message, now):
            db.session.rollback()
            raise CaseError(_l("The invitation is being sent right now. Wait a moment, then look again."), "busy")
    audit.record("email_resent", agent, ticket_id=ticket_id, case_id=case.id, recipient=message.recipient,
                 message_id=message.message_id, previous_status=previous)
    db.session.commit()
    return case


def _refuse_unless_open(case: ServiceCase, now: datetime, agent: Agent) -> None:
    """Refuse to stop or replace a case still being created, or one past its expiry (recording the expiry)."""
    if case.state == CaseState.CREATING:
        raise CaseError(_l("The service case is still being created. Wait a moment, then try again."), "busy")
    if not case.is_valid(now):
        expire_overdue(now, case.ticket_id, agent)
        db.session.commit()
        raise CaseError(_l("The service case had already expired; its expiry is recorded on the ticket."), "expired")


def replace_case(ticket_id: str, agent: Agent, code: str, idempotency_key: str) -> tuple[ServiceCase, bool]:
    """Close the ticket's unused case ``code`` at TeamViewer and open a fresh one with a new invitation.

    Refused while the customer is online in the case.  Returns ``(new case,
    created)`` like ``start_case``; the caller sends the new invitation.
    """
    same_click = db.session.scalar(sa.select(ServiceCase).where(ServiceCase.idempotency_key == idempotency_key))
    if same_click is not None:
        if same_click.ticket_id != ticket_id:
            raise CaseError(_l("This request does not belong to this ticket."), "forbidden")
        return same_click, False  # this very click already replaced the case
    now = utcnow()
    case = active_case(ticket_id)
    if case is None or case.code != code:
        raise CaseError(_l("This service case was already stopped or replaced, perhaps in another window."), "gone")
    _refuse_unless_open(case, now, agent)
    _, client = _client_or_raise()
    _hold_status_checks(case.id)  # as in stop_case: no poll may record the close as TeamViewer's own
    db.session.commit()  # hold no database lock across the TeamViewer calls
    try:
        remote = client.get_session(code)
    except TeamViewerNotFound:
        remote = None
    except TeamViewerError as exc:
        raise CaseError(exc.message, exc.kind) from None
    if remote is not None and remote.online:
        raise CaseError(_l("The customer is connected to service case %(code)s right now, so it was not replaced. "
                           "Stop it when the session is over.", code=code), "online")
    try:
        client.close_session(code)
    except TeamViewerNotFound:
        pass  # nothing left to close at TeamViewer
    except TeamViewerError as exc:
        audit.record("case_close_failed", agent, ticket_id=ticket_id, case_id=case.id, error=exc.kind)
        db.session.commit()
        raise CaseError(exc.message, exc.kind) from None
    if not transition(case, CaseState.CLOSED, closed_at=utcnow(), closed_by_id=agent.id, closed_by_name=agent.name):
        db.session.commit()
        raise CaseError(_l("This service case was already stopped or replaced, perhaps in another window."), "gone")
    _add_comment(case, "closed", agent, replaced=True)
    audit.record("case_closed", agent, ticket_id=ticket_id, case_id=case.id, code=code, replaced=True)
    db.session.commit()
    try:
        new_case, created = start_case(ticket_id, agent, idempotency_key)
    except CaseError as exc:
        audit.record("case_replace_failed", agent, ticket_id=ticket_id, case_id=case.id, code=code, error=exc.kind)
        db.session.commit()
        raise CaseError(_l("Service case %(code)s was closed, but a new one could not be opened: %(reason)s",
                           code=code, reason=exc.message), exc.kind) from None
    audit.record("case_replaced", agent, ticket_id=ticket_id, case_id=new_case.id if new_case else None,
                 old_case_id=case.id, old_code=code, new_code=new_case.code if new_case else None)
    db.session.commit()
    return new_case, created


def stop_case(ticket_id: str, agent: Agent, note: str | None = None, outcome: str = "unknown") -> ServiceCase:
    """Close the ticket's case at TeamViewer and comment start, end, duration, outcome and note."""
    if outcome not in STOP_OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    note = clean_note(note)
    if note is not None and len(note) > NOTE_MAX:
        raise ValueError("note too long")
    now = utcnow()
    case = active_case(ticket_id)
    if case is None:
        raise CaseError(_l("There is no open service case on this ticket; it may have been stopped in another window."),
                        "gone")
    _refuse_unless_open(case, now, agent)
    try:
        _, client = _client_or_raise()
    except CaseError as exc:
        audit.record("case_close_failed", agent, ticket_id=ticket_id, case_id=case.id, error=exc.kind)
        db.session.commit()
        raise CaseError(_l("TeamViewer is no longer connected (app access was revoked), so service case %(code)s "
                           "cannot be closed at TeamViewer. An administrator must connect TeamViewer again.",
                           code=case.code), exc.kind) from None
    code = case.code
    _hold_status_checks(case.id)
    db.session.commit()  # hold no database lock across the TeamViewer call
    try:
        client.close_session(code)
        gone_remotely = False
    except TeamViewerNotFound:
        gone_remotely = True  # TeamViewer no longer knows the code: nothing left to close there.
    except TeamViewerError as exc:
        audit.record("case_close_failed", agent, ticket_id=ticket_id, case_id=case.id, error=exc.kind)
        db.session.commit()
        raise CaseError(exc.message, exc.kind) from None
    # The end time is this server's clock once TeamViewer has confirmed the close.
    if transition(case, CaseState.CLOSED, closed_at=utcnow(), closed_by_id=agent.id, closed_by_name=agent.name,
                  note=note, outcome=outcome):
        _add_comment(case, "closed", agent)
        audit.record("case_closed", agent, ticket_id=ticket_id, case_id=case.id, code=case.code,
                     unknown_to_teamviewer=gone_remotely, outcome=outcome, note=note)
    db.session.commit()
    return case


def claim_tracking(case_id: int, stale, **stamp) -> bool:
    """Stamp the case's tracking row where ``stale`` holds, or create it stamped; True for exactly one racer.

    The claim of live status (``live``) and of connection sync
    (``connections``).  Must be the first statement of its transaction:
    SQLite then takes the write lock before reading anything.
    """
    return database.claim(CaseTracking, {"case_id": case_id}, stale, **stamp)


def _hold_status_checks(case_id: int) -> None:
    """Claim the case's live-status check (``live``) for a stop about to close it at TeamViewer.

    Otherwise a status poll asking TeamViewer just after the close records it
    as closed at TeamViewer, and that comment replaces the agent's, note and
    outcome lost.  A check already in flight is now overtaken (its result is
    dropped) and no new one starts within the status window.  The caller commits.
    """
    for _ in range(2):
        held = db.session.execute(
            sa.update(CaseTracking).where(CaseTracking.case_id == case_id).values(status_checked_at=utcnow())
            .execution_options(synchronize_session=False))
        if held.rowcount == 1:
            return
        try:
            with db.session.begin_nested():
                db.session.add(CaseTracking(case_id=case_id, status_checked_at=utcnow()))
            return
        except IntegrityError:
            continue  # a poll created the row meanwhile: overtake its claim with the update


def expire_case(case_id: int, now: datetime | None = None, actor: Agent | None = None) -> bool:
    """Record one open case past its expiry as expired; False if it was not (or another process was first).

    The conditional UPDATE is the first statement, so on SQLite the write
    lock is taken before anything is read (no stale read snapshot to upgrade).
    """
    now = now or utcnow()
    result = db.session.execute(
        sa.update(ServiceCase)
        .where(ServiceCase.id == case_id, ServiceCase.state == CaseState.OPEN, ServiceCase.valid_until <= now)
        .values(state=CaseState.EXPIRED)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return False
    case = db.session.get(ServiceCase, case_id, populate_existing=True)
    _add_comment(case, "expired", actor)
    audit.record("case_expired", actor, ticket_id=case.ticket_id, case_id=case.id, code=case.code)
    return True


def close_remotely(case_id: int, closed_at: datetime) -> bool:
    """Record that TeamViewer itself closed the open case; False if it was no longer open here.

    Like ``expire_case``, the UPDATE comes first; the caller commits.
    """
    result = db.session.execute(
        sa.update(ServiceCase)
        .where(ServiceCase.id == case_id, ServiceCase.state == CaseState.OPEN)
        .values(state=CaseState.CLOSED, closed_at=closed_at, closed_by_name="TeamViewer")
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return False
    case = db.session.get(ServiceCase, case_id, populate_existing=True)
    _add_comment(case, "closed_remotely", None)
    audit.record("case_closed", None, ticket_id=case.ticket_id, case_id=case.id, code=case.code,
                 closed_at_teamviewer=True)
    return True


def ensure_ticket_can_close(ticket_id: str) -> None:
    """Raise ActiveServiceCase while the ticket has a valid case; for hosts mounting the blueprint."""
    case = valid_case(ticket_id)
    if case is not None:
        raise ActiveServiceCase(case)


def _close_unless_held_statement(dialect_name: str):
    """Insert or update the ticket as closed unless a case in creating or open holds it; return its id if so."""
    ticket = Ticket.__table__
    ticket_id = sa.bindparam("ticket_id", type_=ticket.c.id.type)
    now = sa.bindparam("now", type_=ticket.c.closed_at.type)
    held = sa.exists().where(_holds_ticket(ticket_id))
    # A ticket tvwidget never saw gets what the model's defaults would give it.
    blank = {key: sa.literal(ticket.c[key].default.arg) for key in ("subject", "requester_name", "requester_email")}
    source = sa.select(ticket_id, sa.literal("closed"), now, now, *blank.values()).where(~held)
    insert = database.insert_for(dialect_name)(ticket).from_select(
        ["id", "status", "closed_at", "updated_at", *blank], source, include_defaults=False)
    return insert.on_conflict_do_update(index_elements=[ticket.c.id],
                                        set_={"status": "closed", "closed_at": insert.excluded.closed_at}) \
        .returning(ticket.c.id)


# Built once per dialect (SQLAlchemy caches their compiled form): building the statement costs more than running it.
CLOSE_UNLESS_HELD = {name: _close_unless_held_statement(name) for name in ("postgresql", "sqlite")}


def close_ticket(ticket_id: str) -> None:
    """Record the host's closing of a ticket, refused while a case is valid (the caller commits).

    The close-ticket guard, for the host API and for hosts mounting the
    blueprint.  With no case in creating or open it is one statement; a case
    holding the ticket is settled by the rules first (an overdue one is
    recorded expired, a valid one refuses the close with ActiveServiceCase).
    """
    now = utcnow()
    statement = CLOSE_UNLESS_HELD[db.engine.dialect.name]
    if db.session.execute(statement, {"ticket_id": ticket_id, "now": now}).first() is not None:
        return
    expire_overdue(now, ticket_id=ticket_id)
    ensure_ticket_can_close(ticket_id)
    # One statement: two closes of a ticket tvwidget never saw must not both try to insert it.
    database.upsert(Ticket, {"id": ticket_id, "status": "closed", "closed_at": now, "updated_at": now}, ("id",),
                    update={"status": "closed", "closed_at": now})


def case_json(case: ServiceCase) -> dict:
    """Return the case as the host API shows it."""
    iso = timefmt.iso_utc
    return {
        "code": case.code,
        "state": case.state,
        "valid_until": iso(case.valid_until),
        "supporter_link": case.supporter_link,
        "end_customer_link": case.end_customer_link,
        "opened_at": iso(case.opened_at),
        "opened_by": {"id": case.opened_by_id, "name": case.opened_by_name, "email": case.opened_by_email},
    }
