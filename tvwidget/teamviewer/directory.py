"""Per-agent TeamViewer identity: the company directory, each agent's match, overrides and sharing.

Each agent is matched to a TeamViewer user by email: the directory
(``GET /users?full_list=true``) is kept in the database, shared by every
process and machine, and fetched at most once per refresh window
(``DIRECTORY_REFRESH_SECONDS``) however many plays want it: a process takes
the right to fetch with one conditional UPDATE of ``DirectoryState``, as the
live status does.  A directory TeamViewer will not show (403
``invalid_permission``, a licence, the rate limit) is a normal state, backed
off and shown to the admin; a play then opens its case unassigned, as before.

Matching: the agent's address and the user's are compared exactly after
lower-casing (``+`` and everything else kept), active users only, and only a
single match counts.  An admin's override (a user, or "don't assign")
always wins.
"""
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError

from tvwidget.config import setting
from tvwidget.extensions import db
from tvwidget.storage import audit, database
from tvwidget.storage.models import AgentIdentity, DirectoryState, DirectoryUser, utcnow
from tvwidget.storage.secrets import SecretUnreadable
from tvwidget.teamviewer import integration
from tvwidget.teamviewer.client import (
    TeamViewerBadRequest,
    TeamViewerError,
    TeamViewerNotFound,
    TeamViewerPermissionError,
    TeamViewerRateLimited,
)

log = logging.getLogger(__name__)

STATE_ID = 1
DONT_ASSIGN = "none"
# A refresh button pressed twice, or by two admins at once, fetches once.
FORCED_REFRESH_GAP = timedelta(seconds=10)
# How long a refused directory is left alone before it is asked again (an admin's refresh asks at once).
BACKOFF = {
    "permission": timedelta(hours=1),
    "license": timedelta(hours=1),
    "auth": timedelta(hours=1),
    "rate_limited": timedelta(minutes=30),
}
REFUSAL_DETAIL_MAX = 500

MATCH_LABELS = {
    "matched": _l("Matched"),
    "override": _l("Set by an administrator"),
    "dont_assign": _l("Don't assign"),
    "not_found": _l("Not found"),
    "inactive": _l("Inactive in TeamViewer"),
    "ambiguous": _l("Ambiguous"),
    "refused": _l("Refused by TeamViewer"),
    "unknown": _l("Directory not read yet"),
}

DIRECTORY_PROBLEMS = {
    "permission": _l("TeamViewer does not let this script token read the company's users (invalid_permission). "
                     "In the Management Console (Edit profile ➜ Apps), edit the script token and allow "
                     "User management ➜ View users, or set each agent's TeamViewer user below."),
    "license": _l("Reading the company's users needs a TeamViewer Premium or Corporate license "
                  "(TeamViewer answered license_required). Set each agent's TeamViewer user below instead."),
    "rate_limited": _l("TeamViewer's request limit was reached; tvwidget asks again later by itself."),
    "auth": _l("TeamViewer rejected the script token. Connect TeamViewer again on the connection page."),
    "unavailable": _l("TeamViewer could not be reached; tvwidget asks again at the next refresh."),
    "timeout": _l("TeamViewer did not answer in time; tvwidget asks again at the next refresh."),
    "bad_reply": _l("TeamViewer's list of users could not be read; tvwidget asks again at the next refresh."),
}


def email_key(address: str | None) -> str | None:
    """Return the form addresses are compared in: trimmed and lower-cased, nothing else changed."""
    key = (address or "").strip().lower()
    return key or None


def refresh_window() -> timedelta:
    return timedelta(seconds=float(setting("DIRECTORY_REFRESH_SECONDS")))


def state() -> DirectoryState:
    """Return the directory's state row (an unsaved, empty one before the first try)."""
    return db.session.get(DirectoryState, STATE_ID) or DirectoryState(id=STATE_ID, user_count=0)


def _claim(now: datetime, force: bool) -> bool:
    """Take the right to fetch the directory now; True for exactly one of racing processes (the caller's
    transaction must not have read anything yet)."""
    if force:
        due = sa.or_(DirectoryState.claimed_at.is_(None), DirectoryState.claimed_at <= now - FORCED_REFRESH_GAP)
    else:
        due = sa.and_(
            sa.or_(DirectoryState.claimed_at.is_(None), DirectoryState.claimed_at <= now - refresh_window()),
            sa.or_(DirectoryState.retry_at.is_(None), DirectoryState.retry_at <= now))
    return database.claim(DirectoryState, {"id": STATE_ID}, due, claimed_at=now)


def refresh_due(now: datetime | None = None, *, force: bool = False, in_play: bool = False) -> dict:
    """Fetch the directory if this process wins the refresh window's claim; return counts. Commits.

    ``{"fetched": 1, "users": n, "status": "ok"}`` after a fetch,
    ``{"fetched": 0, ...}`` when another process has it, it is not due, or
    TeamViewer is not connected (``status`` says which), and the error kind
    when TeamViewer refused or failed (recorded and backed off, never raised).
    ``force`` (the admin's refresh button) ignores the window and the back-off.
    ``in_play``: an agent is waiting, so the one call is not retried (a failure
    is backed off like any other; the periodic job retries).
    """
    now = now or utcnow()
    connected = integration.settings().connected
    db.session.rollback()
    if not connected:
        return {"fetched": 0, "users": 0, "status": "not_connected"}
    if not _claim(now, force):
        db.session.rollback()
        return {"fetched": 0, "users": state().user_count, "status": "not_due"}
    db.session.commit()  # the claim is visible to every process before TeamViewer is asked
    try:
        client = integration.connected_client(integration.settings(), retries=0 if in_play else None)
    except SecretUnreadable:
        client = None
    db.session.rollback()
    if client is None:  # revoked since, or the token cannot be read: the play says so itself
        return {"fetched": 0, "users": 0, "status": "not_connected"}
    with client:
        try:
            users = client.users()
        except TeamViewerError as exc:
            users = None
            _record_failure(now, exc)
        else:
            _store(now, users)
        db.session.commit()
        if not in_play:  # who has accepted the shared group: for the admin, never on an agent's time
            check_group(client, now)
            db.session.commit()
    if users is None:
        return {"fetched": 0, "users": state().user_count, "status": state().status}
    log.info("TeamViewer directory refreshed: %d users", len(users))
    return {"fetched": 1, "users": len(users), "status": "ok"}


def _record_failure(now: datetime, exc: TeamViewerError) -> None:
    kind = exc.kind
    if isinstance(exc, TeamViewerPermissionError) and exc.remote_error == "license_required":
        kind = "license"
    backoff = BACKOFF.get(kind, refresh_window())
    if isinstance(exc, TeamViewerRateLimited) and exc.retry_after:
        backoff = max(backoff, timedelta(seconds=exc.retry_after))
    row = db.session.get(DirectoryState, STATE_ID, populate_existing=True)
    row.attempted_at, row.status, row.remote_error, row.retry_at = now, kind, exc.remote_error, now + backoff
    log.warning("TeamViewer directory not read: %s (HTTP %s); next try after %s", kind, exc.status, row.retry_at)


def _store(now: datetime, users) -> None:
    """Replace the stored directory with ``users`` (the claim makes this process its only writer)."""
    db.session.execute(sa.delete(DirectoryUser))
    seen = set()
    for user in users:
        if user.id in seen:
            continue
        seen.add(user.id)
        db.session.add(DirectoryUser(userid=user.id, name=(user.name or "")[:200] or None,
                                     email=(user.email or "")[:254] or None, email_key=email_key(user.email),
                                     active=user.active))
    row = db.session.get(DirectoryState, STATE_ID, populate_existing=True)
    row.fetched_at = row.attempted_at = now
    row.status, row.remote_error, row.retry_at, row.user_count = "ok", None, None, len(seen)


# --- agents and their match ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """How an agent maps to TeamViewer: ``status`` (a MATCH_LABELS key) and the user their cases go to."""

    status: str
    userid: str | None = None
    name: str | None = None
    candidates: tuple[DirectoryUser, ...] = ()

    @property
    def label(self):
        return MATCH_LABELS[self.status]

    @property
    def assigns(self) -> bool:
        return self.userid is not None and self.status in ("matched", "override")


def note_agent(agent, now: datetime | None = None) -> None:
    """Record that ``agent`` (from a launch token) was seen, with their current name and address."""
    now = now or utcnow()
    row = db.session.get(AgentIdentity, agent.id)
    if row is None:
        try:
            with db.session.begin_nested():
                db.session.add(AgentIdentity(id=agent.id, name=agent.name[:200], email=agent.email[:254],
                                             first_seen_at=now, last_seen_at=now))
            return
        except IntegrityError:
            row = db.session.get(AgentIdentity, agent.id)  # another process added them just now
    row.name, row.email, row.last_seen_at = agent.name[:200], agent.email[:254], now


def _users_by_email(keys) -> dict[str, list[DirectoryUser]]:
    keys = [key for key in keys if key]
    found: dict[str, list[DirectoryUser]] = {}
    if keys:
        for user in db.session.scalars(sa.select(DirectoryUser).where(DirectoryUser.email_key.in_(keys))
                                       .order_by(DirectoryUser.userid)):
            found.setdefault(user.email_key, []).append(user)
    return found


def _match(row: AgentIdentity, candidates: list[DirectoryUser], names: dict[str, str], directory_read: bool) -> Match:
    if row.override == DONT_ASSIGN:
        return Match("dont_assign")
    if row.override:
        name = names.get(row.override) or row.override
        return Match("refused" if row.refused_userid == row.override else "override", row.override, name)
    if not directory_read:
        return Match("unknown")
    active = [user for user in candidates if user.active is not False]
    if len(active) > 1:
        return Match("ambiguous", candidates=tuple(active))
    if not active:
        return Match("inactive" if candidates else "not_found", candidates=tuple(candidates))
    user = active[0]
    if row.refused_userid == user.userid:
        return Match("refused", user.userid, user.name or user.userid)
    return Match("matched", user.userid, user.name or user.userid)


def matches(rows: list[AgentIdentity]) -> dict[str, Match]:
    """Return each agent's match, by agent id."""
    directory_read = state().fetched_at is not None
    by_email = _users_by_email({email_key(row.email) for row in rows})
    overrides = [row.override for row in rows if row.override and row.override != DONT_ASSIGN]
    names = dict(db.session.execute(sa.select(DirectoryUser.userid, DirectoryUser.name)
                                    .where(DirectoryUser.userid.in_(overrides))).all()) if overrides else {}
    return {row.id: _match(row, by_email.get(email_key(row.email), []), names, directory_read) for row in rows}


def match_for(agent_id: str) -> Match:
    row = db.session.get(AgentIdentity, agent_id)
    return matches([row])[agent_id] if row is not None else Match("unknown")


def prepare_play(agent) -> Match:
    """Note the agent, refresh the directory if due, and return whom their case goes to. Commits.

    Never raises for TeamViewer: a directory it will not show leaves the
    agent unmatched, and the case opens as it always has.
    """
    note_agent(agent)
    db.session.commit()
    refresh_due(in_play=True)
    match = match_for(agent.id)
    db.session.rollback()
    return match


def refuses_assignment(exc: TeamViewerError, userid: str) -> bool:
    """Return whether TeamViewer refused a create because of its ``assigned_userid`` (a 4xx naming it).

    Only a refusal that names the assignee or the field counts: anything else
    (the licence limit, the rate limit, a token problem) would refuse the
    create without it just the same.
    """
    if not isinstance(exc, (TeamViewerBadRequest, TeamViewerNotFound, TeamViewerPermissionError)):
        return False
    said = " ".join(part for part in (exc.remote_error, exc.detail) if part).lower()
    return "assign" in said or userid.lower() in said


def record_refusal(agent, match: Match, exc: TeamViewerError, case_id: int | None, ticket_id: str) -> None:
    """Remember that TeamViewer refused ``match.userid`` as the agent's assignee, for the admin."""
    detail = " ".join(part for part in (f"HTTP {exc.status}" if exc.status else None, exc.remote_error,
                                        exc.detail) if part)[:REFUSAL_DETAIL_MAX]
    db.session.execute(sa.update(AgentIdentity).where(AgentIdentity.id == agent.id).values(
        refused_userid=match.userid, refused_at=utcnow(), refused_detail=detail)
        .execution_options(synchronize_session=False))
    audit.record("assignment_refused", agent, ticket_id=ticket_id, case_id=case_id, userid=match.userid,
                 status=exc.status, remote_error=exc.remote_error)
    log.warning("TeamViewer refused %s as assignee for agent %s: %s", match.userid, agent.id, detail)


def user_name(userid: str | None) -> str | None:
    """Return the directory's name of ``userid``, if known."""
    if not userid:
        return None
    return db.session.scalar(sa.select(DirectoryUser.name).where(DirectoryUser.userid == userid))


def agents() -> list[AgentIdentity]:
    """Return every agent seen so far, by name."""
    return list(db.session.scalars(sa.select(AgentIdentity).order_by(sa.func.lower(AgentIdentity.name),
                                                                       AgentIdentity.id)))


def directory_users() -> list[DirectoryUser]:
    """Return the stored directory, by name."""
    return list(db.session.scalars(sa.select(DirectoryUser).order_by(sa.func.lower(DirectoryUser.name),
                                                                     DirectoryUser.userid)))


def set_override(agent_id: str, choice: str, admin) -> AgentIdentity | None:
    """Set an agent's TeamViewer user (``"auto"``, ``"none"`` or a user id); clears a recorded refusal.

    Returns None for an agent tvwidget has never seen.
    """
    row = db.session.get(AgentIdentity, agent_id)
    if row is None:
        return None
    new = None if choice == "auto" else choice
    old = row.override
    row.override = new
    row.override_by_name, row.override_at = admin.name, utcnow()
    row.refused_userid = row.refused_at = row.refused_detail = None
    audit.record("agent_mapping_changed", admin, agent=agent_id, old=old or "auto", new=new or "auto")
    return row


def userid_to_agent() -> dict[str, AgentIdentity]:
    """Return which agent each TeamViewer user id stands for (matched, set by an admin or refused), for "worked by"."""
    rows = agents()
    found: dict[str, AgentIdentity] = {}
    for row_id, match in matches(rows).items():
        if match.userid is not None:
            found.setdefault(match.userid, next(row for row in rows if row.id == row_id))
    return found


# --- sharing the case group (so each agent's client sees and is notified of its cases) --------------------


def owner_userids() -> set[str]:
    """Return the directory ids of the script token's owner (who owns the group; it cannot be shared with them)."""
    key = email_key(integration.settings().account_email)
    if key is None:
        return set()
    return set(db.session.scalars(sa.select(DirectoryUser.userid).where(DirectoryUser.email_key == key)))


@dataclass(frozen=True)
class Sharing:
    """The case group as last read from TeamViewer: ``shares`` maps user id to pending (True) or accepted."""

    group_id: str | None
    shares: dict
    checked_at: datetime | None
    error: str | None


def sharing(group_name: str) -> Sharing:
    """Return what tvwidget last learnt about sharing the group ``group_name`` (no TeamViewer call)."""
    row = state()
    if row.group_checked_at is None or row.group_name != group_name:
        return Sharing(None, {}, None, None)
    try:
        shares = json.loads(row.group_shares or "{}")
    except ValueError:
        shares = {}
    return Sharing(row.group_id, shares if isinstance(shares, dict) else {}, row.group_checked_at, row.group_error)


def _record_group(now: datetime, group_name: str, group, error: str | None = None) -> None:
    row = db.session.get(DirectoryState, STATE_ID, populate_existing=True)
    if row is None:
        row = DirectoryState(id=STATE_ID, user_count=0)
        db.session.add(row)
    row.group_name, row.group_checked_at, row.group_error = group_name, now, error
    if error is None:
        row.group_id = group.id if group is not None else None
        row.group_shares = json.dumps({share.userid: share.pending for share in group.shared_with}
                                      if group is not None else {})


def check_group(client, now: datetime | None = None) -> None:
    """Read the case group's shares from TeamViewer and keep them (errors are kept, never raised); caller commits."""
    now = now or utcnow()
    name = integration.settings().group_name
    try:
        group = client.find_group(name)
    except TeamViewerError as exc:
        _record_group(now, name, None, exc.kind)
        return
    _record_group(now, name, group, None if group is not None else "no_group")


def share_group(client, group_name: str, admin):
    """Share the case group (readwrite) with every assigned agent it is not shared with yet.

    Returns ``(group, newly shared user ids)``; ``group`` is None when
    TeamViewer has no such group yet (it is made with the first case).
    Raises TeamViewerError; the caller commits (the audit record and the shares kept).
    """
    group = client.find_group(group_name)
    if group is None:
        _record_group(utcnow(), group_name, None, "no_group")
        return None, []
    already = {share.userid for share in group.shared_with} | owner_userids()
    wanted = sorted({match.userid for match in matches(agents()).values() if match.assigns} - already)
    if wanted:
        client.share_group(group.id, wanted, "readwrite")
        audit.record("group_shared", admin, group=group_name, groupid=group.id, users=wanted)
        group = client.get_group(group.id)
    _record_group(utcnow(), group_name, group)
    return group, wanted
