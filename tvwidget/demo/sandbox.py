"""A stand-in for TeamViewer's Web API, for running tvwidget without a TeamViewer account.

The sandbox speaks the subset of ``https://webapi.teamviewer.com/api/v1`` that
tvwidget uses, the way ``teamviewer-api.md`` says the live API behaves (200 on
create, capitalised ``Open``, empty keys omitted, a plain-text licence error),
and serves supporter and customer link pages that act out joining so that the
``online`` flag and the connection report change as they would for real.

State lives in memory on the app (``app.extensions["tvwidget_sandbox"]``) and
is lost on restart.  Links are built with ``url_for(..., _external=True)`` so the
app can be mounted under a prefix (``DispatcherMiddleware``).

Run it standalone with ``python -m tvwidget.demo.sandbox --host 127.0.0.1 --port 5001``.
"""
import argparse
import datetime as dt
import functools
import re
import secrets
import string
import threading
import uuid
from dataclasses import dataclass, field

from flask import Blueprint, Flask, current_app, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.serving import run_simple

from tvwidget.paths import asset_dir

SANDBOX_USER = {"userid": "u1234567", "name": "Sandbox Supporter", "email": "sandbox@example.com"}
# The company directory (GET /users): the token's owner, the demo's two agents (one address in mixed
# case), an inactive user, two users sharing one address (so matching it is ambiguous) and a ``+`` address.
SEED_USERS = (
    {"id": SANDBOX_USER["userid"], "name": SANDBOX_USER["name"], "email": SANDBOX_USER["email"], "active": True},
    {"id": "u2000001", "name": "Alex Morgan", "email": "alex.morgan@helpdesk.example", "active": True},
    {"id": "u2000002", "name": "田中 愛子", "email": "Aiko.Tanaka@Helpdesk.example", "active": True},
    {"id": "u2000003", "name": "Chris Former", "email": "chris.former@helpdesk.example", "active": False},
    {"id": "u2000004", "name": "Sam Lee (desk)", "email": "sam.lee@helpdesk.example", "active": True},
    {"id": "u2000005", "name": "Sam Lee (laptop)", "email": "Sam.Lee@helpdesk.example", "active": True},
    {"id": "u2000006", "name": "Kim Park", "email": "kim+support@helpdesk.example", "active": True},
)
USER_PARAMS = {"email", "name", "permissions", "full_list"}
USER_PERMISSIONS = "ShareOwnGroups,EditConnections,ViewOwnConnections,EditFullProfile,ManageOwnSessions"
SHARE_PERMISSIONS = ("read", "readwrite")
SANDBOX_DEVICENAME = "SANDBOX-PC"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
SESSION_LIFETIME = dt.timedelta(hours=24)
CUSTOM_API_MAX = 4000
END_CUSTOMER_LIMITS = {"name": 100, "email": 254}
LICENSE_LIMIT_MESSAGE = "Session could not be created due to license limitations."
PAGE_CSP = (
    "default-src 'self'; script-src 'none'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# TeamViewer documents only token_expired = 1; the others just need to be distinct.
ERROR_CODES = {
    "token_expired": 1,
    "invalid_token": 2,
    "invalid_permission": 3,
    "not_found": 4,
    "invalid_request": 400,
    "internal_error": 500,
}
SESSION_POST_FIELDS = {
    "groupid", "groupname", "description", "end_customer", "waiting_message", "valid_until",
    "assigned_userid", "custom_api", "support_session_type", "custom_module_id",
}
SESSION_PUT_FIELDS = {
    "groupid", "groupname", "description", "end_customer", "waiting_message",
    "assigned_userid", "custom_api", "state",
}
SESSION_LIST_PARAMS = {"groupid", "assigned_userid", "state", "full_list", "offset"}
REPORT_PARAMS = {
    "username", "userid", "groupid", "devicename", "deviceid", "from_date", "to_date",
    "offset_id", "has_code", "session_code", "support_session_type",
}
USERID_RE = re.compile(r"^u\d+$")
# Report support_session_type 2 = RemoteSupportActive (a connection made with a session code).
REPORT_SESSION_TYPE = 2


class ApiError(Exception):
    """A TeamViewer-style error: JSON body with ``error``, ``error_description`` and ``error_code``."""

    def __init__(self, status, error, description):
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class LicenseLimitReached(Exception):
    """Raised when the sandbox's concurrent-session limit is hit (answered as plain text)."""


@dataclass
class Session:
    code: str
    token: str
    groupid: str
    created_at: dt.datetime
    valid_until: dt.datetime
    seq: int
    deviceid: str
    links: dict
    description: str = ""
    waiting_message: str = ""
    end_customer: dict = field(default_factory=dict)
    assigned_userid: str = ""
    assigned_at: dt.datetime | None = None
    custom_api: str = ""
    support_session_type: str = "Default"
    custom_module_id: str = ""
    closed_at: dt.datetime | None = None
    online: bool = False

    @property
    def link_code(self):
        return self.code.replace("-", "")

    @property
    def is_open(self):
        return self.closed_at is None


@dataclass
class Connection:
    id: str
    session_code: str
    start_date: dt.datetime
    seq: int
    end_date: dt.datetime | None = None
    userid: str = SANDBOX_USER["userid"]


@dataclass
class SandboxState:
    """Everything the sandbox knows; every read and write holds ``lock``."""

    token_prefix: str
    license_limit: int
    page_size: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    groups: dict = field(default_factory=dict)  # groupid -> name
    sessions: dict = field(default_factory=dict)  # code -> Session
    connections: list = field(default_factory=list)
    users: dict = field(default_factory=lambda: {user["id"]: dict(user) for user in SEED_USERS})
    # groupid -> {userid: {"permissions": ..., "pending": bool}}
    shares: dict = field(default_factory=dict)
    # The switch that makes the directory answer 403 invalid_permission (a token without Users.Read).
    directory_forbidden: bool = False
    seq: int = 0

    def next_seq(self):
        self.seq += 1
        return self.seq


def now():
    """Return the current UTC time to the second, as TeamViewer's dates carry no fractions."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def format_date(value):
    return value.strftime(DATE_FORMAT) if value else None


def parse_date(value, name):
    """Parse an ISO 8601 date or date-time leniently, as UTC when no offset is given."""
    if not isinstance(value, str):
        raise ApiError(400, "invalid_request", f"{name} must be an ISO 8601 date string.")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ApiError(400, "invalid_request", f"{name} is not a valid ISO 8601 date.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).replace(microsecond=0)


def drop_empty(data):
    """Leave out keys whose value is empty, as the live API does."""
    return {key: value for key, value in data.items() if value not in (None, "", {}, [])}


# --- state changes (callers hold no lock; these take it) -------------------------------


def get_state():
    return current_app.extensions["tvwidget_sandbox"]


def _generate_code(state):
    taken = {session.link_code for session in state.sessions.values()}
    while True:
        digits = str(100_000_000 + secrets.randbelow(900_000_000))
        if f"s{digits}" not in taken:
            return f"s{digits[:3]}-{digits[3:6]}-{digits[6:]}"


def _generate_token():
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(12))


def _group_for(state, groupid, groupname):
    """Resolve ``groupid``/``groupname`` to a group id, creating a missing named group (as documented)."""
    if groupid is not None and (not isinstance(groupid, str) or groupid not in state.groups):
        raise ApiError(400, "invalid_request", "groupid does not name a group you can access.")
    if groupname is not None:
        if not isinstance(groupname, str) or not groupname.strip():
            raise ApiError(400, "invalid_request", "groupname must be a non-empty string.")
        named = next((gid for gid, name in state.groups.items() if name == groupname), None)
        if groupid is not None and named != groupid:
            raise ApiError(400, "invalid_request", "groupid and groupname point to different groups.")
        if named is None:
            named = f"g{100_000_000 + secrets.randbelow(900_000_000)}"
            while named in state.groups:
                named = f"g{100_000_000 + secrets.randbelow(900_000_000)}"
            state.groups[named] = groupname
        return named
    return groupid


def _check_text(body, name, limit=None):
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_request", f"{name} must be a string.")
    if limit is not None and len(value) > limit:
        raise ApiError(400, "invalid_request", f"{name} must be at most {limit} characters.")
    return value


def _check_end_customer(body):
    value = body.get("end_customer")
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - set(END_CUSTOMER_LIMITS):
        raise ApiError(400, "invalid_request", "end_customer must be an object with name and email.")
    for key, limit in END_CUSTOMER_LIMITS.items():
        _check_text(value, key, limit)
    return drop_empty(value)


def _check_userid(body):
    value = body.get("assigned_userid")
    if value is not None and (not isinstance(value, str) or not USERID_RE.match(value)):
        raise ApiError(400, "invalid_request", "assigned_userid must look like u1234567.")
    return value


def _check_assignee(state, userid):
    """Refuse an assignee who is not an active user of the company (caller holds the lock).

    The live API's answer here is undocumented; 400 is the most plausible (teamviewer-api.md §8).
    """
    if userid in (None, "u0"):
        return
    user = state.users.get(userid)
    if user is None or not user["active"]:
        raise ApiError(400, "invalid_request",
                       f"assigned_userid {userid} is not an active user of this company.")


def _check_fields(body, allowed):
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "The request body must be a JSON object.")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, "invalid_request", f"Unknown parameter(s): {', '.join(unknown)}.")


def create_session(state, body, build_links):
    """Create a session code from a POST /sessions body; ``build_links(link_code, token)`` gives its links."""
    _check_fields(body, SESSION_POST_FIELDS)
    if body.get("groupid") is None and body.get("groupname") is None:
        raise ApiError(400, "invalid_request", "Either groupid or groupname is required.")
    description = _check_text(body, "description")
    waiting_message = _check_text(body, "waiting_message")
    custom_api = _check_text(body, "custom_api", CUSTOM_API_MAX)
    custom_module_id = _check_text(body, "custom_module_id")
    end_customer = _check_end_customer(body)
    assigned_userid = _check_userid(body)
    session_type = body.get("support_session_type", "Default")
    if session_type not in ("Default", "Pilot"):
        raise ApiError(400, "invalid_request", "support_session_type must be Default or Pilot.")
    created_at = now()
    valid_until = created_at + SESSION_LIFETIME
    if body.get("valid_until") is not None:
        valid_until = parse_date(body["valid_until"], "valid_until")
    # 2021 docs: unset means assigned to the creator; "u0" means unassigned.
    assigned_userid = assigned_userid or SANDBOX_USER["userid"]
    with state.lock:
        _check_assignee(state, assigned_userid)
        active = sum(1 for s in state.sessions.values() if s.is_open and created_at < s.valid_until)
        if active >= state.license_limit:
            raise LicenseLimitReached
        groupid = _group_for(state, body.get("groupid"), body.get("groupname"))
        code = _generate_code(state)
        token = _generate_token()
        session = Session(
            code=code,
            token=token,
            groupid=groupid,
            created_at=created_at,
            valid_until=valid_until,
            seq=state.next_seq(),
            deviceid=f"d{100_000_000 + secrets.randbelow(900_000_000)}",
            links=build_links(code.replace("-", ""), token),
            description=description or "",
            waiting_message=waiting_message or "",
            end_customer=end_customer or {},
            assigned_userid=assigned_userid,
            assigned_at=None if assigned_userid == "u0" else created_at,
            custom_api=custom_api or "",
            support_session_type=session_type,
            custom_module_id=custom_module_id or "",
        )
        state.sessions[code] = session
        return session_json(session)


def _find(state, code):
    session = state.sessions.get(code)
    if session is None:
        raise ApiError(404, "not_found", f"Session {code} was not found.")
    return session


def get_session(state, code):
    with state.lock:
        return session_json(_find(state, code))


def _end_connections(state, session, at):
    for connection in state.connections:
        if connection.session_code == session.code and connection.end_date is None:
            connection.end_date = at


def update_session(state, code, body):
    """Apply a PUT /sessions/{code} body; closing ends any running connection."""
    _check_fields(body, SESSION_PUT_FIELDS)
    changes = {}
    for name in ("description", "waiting_message"):
        if name in body:
            changes[name] = _check_text(body, name) or ""
    if "custom_api" in body:
        changes["custom_api"] = _check_text(body, "custom_api", CUSTOM_API_MAX) or ""
    if "end_customer" in body:
        changes["end_customer"] = _check_end_customer(body) or {}
    new_state = body.get("state")
    if new_state is not None and (not isinstance(new_state, str) or new_state.lower() not in ("open", "closed")):
        raise ApiError(400, "invalid_request", "state must be open or closed.")
    assigned_userid = _check_userid(body)
    at = now()
    with state.lock:
        session = _find(state, code)
        if "groupid" in body or "groupname" in body:
            changes["groupid"] = _group_for(state, body.get("groupid"), body.get("groupname"))
        if new_state is not None and new_state.lower() == "open" and not session.is_open:
            raise ApiError(400, "invalid_request", "A closed session cannot be reopened.")
        for name, value in changes.items():
            setattr(session, name, value)
        _check_assignee(state, assigned_userid)
        if assigned_userid is not None:
            session.assigned_userid = assigned_userid
            session.assigned_at = None if assigned_userid == "u0" else at
        if new_state is not None and new_state.lower() == "closed" and session.is_open:
            session.closed_at = at
            session.online = False
            _end_connections(state, session, at)


def list_sessions(state, args):
    """Answer GET /sessions: newest first, paged on ``offset`` (a session code)."""
    _check_fields(args, SESSION_LIST_PARAMS)
    wanted = {part.strip().lower() for part in args.get("state", "open").split(",")}
    if not wanted or wanted - {"open", "closed"}:
        raise ApiError(400, "invalid_request", "state must be open, closed or open,closed.")
    full = args.get("full_list", "false").lower() == "true"
    with state.lock:
        sessions = sorted(state.sessions.values(), key=lambda s: (s.created_at, s.seq), reverse=True)
        sessions = [
            s for s in sessions
            if ("open" if s.is_open else "closed") in wanted
            and args.get("groupid") in (None, s.groupid)
            and args.get("assigned_userid") in (None, s.assigned_userid)
        ]
        if "offset" in args:
            codes = [s.code for s in sessions]
            if args["offset"] not in codes:
                raise ApiError(400, "invalid_request", "offset is not a session code in this list.")
            sessions = sessions[codes.index(args["offset"]) + 1:]
        page, rest = sessions[:state.page_size], sessions[state.page_size:]
        result = {"sessions": [session_json(s) if full else minimal_session_json(s) for s in page]}
        if rest:
            result["next_offset"] = page[-1].code
            result["sessions_remaining"] = len(rest)
        return result


def list_groups(state, args):
    name = args.get("name", "")
    shared = args.get("shared", "").lower()
    with state.lock:
        if shared == "true":
            return {"groups": []}
        return {"groups": [
            group_json(state, gid) for gid, group in state.groups.items() if name.lower() in group.lower()
        ]}


def get_group(state, groupid):
    with state.lock:
        if groupid not in state.groups:
            raise ApiError(404, "not_found", f"Group {groupid} was not found.")
        return group_json(state, groupid)


def share_group(state, groupid, body):
    """Answer POST /groups/{id}/share_group: each user gets the group, pending until they accept it."""
    _check_fields(body, {"users"})
    users = body.get("users")
    if not isinstance(users, list) or not users:
        raise ApiError(400, "invalid_request", "users must be a non-empty list.")
    with state.lock:
        if groupid not in state.groups:
            raise ApiError(404, "not_found", f"Group {groupid} was not found.")
        wanted = {}
        for item in users:
            if not isinstance(item, dict) or set(item) - {"userid", "permissions"}:
                raise ApiError(400, "invalid_request", "Each user must be an object with userid and permissions.")
            userid, permissions = item.get("userid"), item.get("permissions", "read")
            if not isinstance(userid, str) or not USERID_RE.match(userid):
                raise ApiError(400, "invalid_request", "userid must look like u1234567.")
            if permissions not in SHARE_PERMISSIONS:
                raise ApiError(400, "invalid_request", "permissions must be read or readwrite.")
            if userid == SANDBOX_USER["userid"]:
                raise ApiError(400, "invalid_request", "A group cannot be shared with its owner.")
            user = state.users.get(userid)
            if user is None or not user["active"]:
                raise ApiError(400, "invalid_request", f"User {userid} is not an active user of this company.")
            wanted[userid] = permissions
        shares = state.shares.setdefault(groupid, {})
        for userid, permissions in wanted.items():
            shares[userid] = {"permissions": permissions, "pending": shares.get(userid, {}).get("pending", True)}


def accept_share(state, groupid, userid):
    """Act out a user accepting a shared group in their TeamViewer client."""
    with state.lock:
        share = state.shares.get(groupid, {}).get(userid)
        if share is not None:
            share["pending"] = False


def user_json(user, full=True):
    """A directory item: the minimal list has only ``id`` and ``name`` (the 2014 docs)."""
    if not full:
        return {"id": user["id"], "name": user["name"]}
    return {
        "id": user["id"], "name": user["name"], "email": user["email"], "active": user["active"],
        "permissions": USER_PERMISSIONS, "log_sessions": True, "show_comment_window": False,
        "userRoleId": "5bd8a7a6-c8f0-4c1d-9f0b-0f3a2f5c1e7d", "online_state": "Offline",
        "last_access_date": "2026-11-30T08:15:00Z",
    }


def list_users(state, args):
    """Answer GET /users: ``email`` exact (comma-separated list allowed), ``name`` a substring; no paging."""
    _check_fields(args, USER_PARAMS)
    full = args.get("full_list", "false").lower() == "true"
    emails = {part.strip() for part in args["email"].split(",")} if "email" in args else None
    name = args.get("name", "").lower()
    with state.lock:
        if state.directory_forbidden:
            raise ApiError(403, "invalid_permission", "This token may not view the company's users.")
        return {"users": [
            user_json(user, full) for user in state.users.values()
            if (emails is None or user["email"] in emails) and name in user["name"].lower()
        ]}


def get_user(state, userid):
    if not USERID_RE.match(userid):
        raise ApiError(400, "invalid_request", "The user id must look like u1234567.")
    with state.lock:
        if state.directory_forbidden:
            raise ApiError(403, "invalid_permission", "This token may not view the company's users.")
        user = state.users.get(userid)
        if user is None:
            raise ApiError(404, "not_found", f"User {userid} was not found.")
        return user_json(user)


def connection_report(state, args):
    """Answer GET /reports/connections: oldest first, paged on ``offset_id`` (a report id)."""
    _check_fields(args, REPORT_PARAMS)
    from_date = parse_date(args["from_date"], "from_date") if "from_date" in args else None
    to_date = parse_date(args["to_date"], "to_date") if "to_date" in args else None
    has_code = args.get("has_code", "").lower()
    session_type = args.get("support_session_type")
    filters = {key: args[key] for key in ("username", "userid", "groupid", "devicename",
                                          "deviceid", "session_code") if key in args}
    with state.lock:
        records = []
        for connection in sorted(state.connections, key=lambda c: (c.start_date, c.seq)):
            session = state.sessions[connection.session_code]
            record = connection_json(state, connection, session)
            if any(record.get(key) != value for key, value in filters.items()):
                continue
            if from_date and connection.start_date < from_date:
                continue
            if to_date and connection.start_date >= to_date:
                continue
            if has_code == "false" or session_type not in (None, str(REPORT_SESSION_TYPE)):
                continue
            records.append(record)
        if "offset_id" in args:
            ids = [record["id"] for record in records]
            if args["offset_id"] not in ids:
                raise ApiError(400, "invalid_request", "offset_id is not a report id in this list.")
            records = records[ids.index(args["offset_id"]) + 1:]
        page, rest = records[:state.page_size], records[state.page_size:]
        result = {"records": page}
        if rest:
            result["records_remaining"] = len(rest)
            result["next_offset"] = page[-1]["id"]
        return result


def find_by_link(state, link_code, token=None):
    """Return the session behind a link (``token`` is the supporter link's secret), or None."""
    for session in state.sessions.values():
        if session.link_code == link_code:
            if token is not None and not secrets.compare_digest(token, session.token):
                return None
            return session
    return None


def link_status(state, session, at):
    """Where a session stands for the link pages: closed, expired, offline, waiting or connected."""
    if not session.is_open:
        return "closed"
    if at >= session.valid_until:
        return "expired"
    if any(c.session_code == session.code and c.end_date is None for c in state.connections):
        return "connected"
    return "waiting" if session.online else "offline"


def customer_acts(state, link_code, action):
    """Start (``action="start"``) or quit the simulated QuickSupport; return False for an unknown link."""
    at = now()
    with state.lock:
        session = find_by_link(state, link_code)
        if session is None:
            return False
        if link_status(state, session, at) in ("offline", "waiting", "connected"):
            session.online = action == "start"
            if not session.online:
                _end_connections(state, session, at)
        return True


def supporter_acts(state, link_code, token, action, userid=None):
    """Connect to (as ``userid``) or disconnect from the customer; return a notice key, or None if nothing is wrong."""
    at = now()
    with state.lock:
        session = find_by_link(state, link_code, token)
        if session is None:
            return "missing"
        status = link_status(state, session, at)
        if action == "connect":
            if status == "offline":
                return "offline"
            if status == "waiting":
                user = state.users.get(userid or session.assigned_userid or "")
                state.connections.append(Connection(
                    id=str(uuid.uuid4()), session_code=session.code, start_date=at, seq=state.next_seq(),
                    userid=user["id"] if user and user["active"] else SANDBOX_USER["userid"],
                ))
        else:
            _end_connections(state, session, at)
        return None


# --- JSON shapes ------------------------------------------------------------------------


def session_json(session):
    return drop_empty({
        "code": session.code,
        "state": "Open" if session.is_open else "Closed",
        "groupid": session.groupid,
        "description": session.description,
        "waiting_message": session.waiting_message,
        "end_customer": session.end_customer,
        "assigned_userid": session.assigned_userid,
        "assigned_at": format_date(session.assigned_at),
        **session.links,
        "custom_api": session.custom_api,
        "created_at": format_date(session.created_at),
        "valid_until": format_date(session.valid_until),
        "closed_at": format_date(session.closed_at),
        "online": session.online,
        "support_session_type": session.support_session_type,
        "custom_module_id": session.custom_module_id,
    })


def minimal_session_json(session):
    return {
        "code": session.code,
        "state": "Open" if session.is_open else "Closed",
        "online": session.online,
        "groupid": session.groupid,
        "support_session_type": session.support_session_type,
    }


def group_json(state, groupid):
    shares = state.shares.get(groupid, {})
    body = {"id": groupid, "name": state.groups[groupid], "permissions": "owned"}
    if shares:
        body["shared_with"] = [
            {"userid": userid, "name": state.users[userid]["name"], "permissions": share["permissions"],
             **({"pending": True} if share["pending"] else {})}
            for userid, share in shares.items()]
    return body


def connection_json(state, connection, session):
    return drop_empty({
        "id": connection.id,
        "userid": connection.userid,
        "username": state.users[connection.userid]["name"],
        "deviceid": session.deviceid,
        "devicename": SANDBOX_DEVICENAME,
        "groupid": session.groupid,
        "groupname": state.groups[session.groupid],
        "support_session_type": REPORT_SESSION_TYPE,
        "start_date": format_date(connection.start_date),
        "end_date": format_date(connection.end_date),
        "session_code": session.code,
        "session_created_at": format_date(session.created_at),
        "valid_until": format_date(session.valid_until),
        "assigned_userid": session.assigned_userid,
        "assigned_at": format_date(session.assigned_at),
        "session_note": session.description,
        "custom_api": session.custom_api,
        "end_customer": session.end_customer,
    })


# --- HTTP: the API ----------------------------------------------------------------------

api = Blueprint("api", __name__, url_prefix="/api/v1")


def _bearer_token():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _check_token(*, needs_scope):
    prefix = get_state().token_prefix
    token = _bearer_token()
    if token is None:
        raise ApiError(401, "invalid_token", "No access token was sent.")
    if not token.startswith(prefix):
        raise ApiError(401, "invalid_token", "The access token is invalid.")
    if token.startswith(prefix + "expired"):
        raise ApiError(401, "token_expired", "The access token expired")
    if needs_scope and token.startswith(prefix + "noperm"):
        raise ApiError(403, "invalid_permission", "The access token lacks the permission for this call.")


def requires_token(needs_scope=True):
    """Refuse the call unless a valid sandbox token (with permissions, if ``needs_scope``) was sent."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            _check_token(needs_scope=needs_scope)
            return view(*args, **kwargs)
        return wrapper
    return decorator


def _json_body():
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "invalid_request", "The request body must be JSON (Content-Type: application/json).")
    return body


@api.get("/ping")
def ping():
    try:
        _check_token(needs_scope=False)
    except ApiError:
        return jsonify(token_valid=False)
    return jsonify(token_valid=True)


@api.get("/account")
@requires_token(needs_scope=False)
def account():
    # Extra undocumented fields, as the live API sends (teamviewer-api.md §1.6).
    return jsonify({
        **SANDBOX_USER,
        "company_name": "TeamViewer Sandbox",
        "email_validated": True,
        "email_language": "en",
        "profilepicture_url": "",
        "custom_field_has_paid_license": False,
    })


@api.post("/sessions")
@requires_token()
def post_session():
    def build_links(link_code, token):
        return {
            "end_customer_link": url_for("pages.join", link_code=link_code, _external=True),
            "supporter_link": url_for("pages.support", link=f"{link_code}-{token}", _external=True),
            "webclient_supporter_link": url_for(
                "pages.webclient", sessioncode=link_code, servicequeuetoken=token, lang="en", _external=True,
            ),
        }

    try:
        session = create_session(get_state(), _json_body(), build_links)
    except LicenseLimitReached:
        return LICENSE_LIMIT_MESSAGE, 400, {"Content-Type": "text/plain; charset=utf-8"}
    location = url_for("api.session", code=session["code"], _external=True)
    return jsonify(session), 200, {"Location": location}


@api.get("/sessions")
@requires_token()
def sessions():
    return jsonify(list_sessions(get_state(), request.args.to_dict()))


@api.get("/sessions/<code>")
@requires_token()
def session(code):
    return jsonify(get_session(get_state(), code))


@api.put("/sessions/<code>")
@requires_token()
def put_session(code):
    update_session(get_state(), code, _json_body())
    return "", 204


@api.get("/groups")
@requires_token()
def groups():
    return jsonify(list_groups(get_state(), request.args))


@api.get("/groups/<groupid>")
@requires_token()
def group(groupid):
    return jsonify(get_group(get_state(), groupid))


@api.post("/groups/<groupid>/share_group")
@requires_token()
def post_share_group(groupid):
    share_group(get_state(), groupid, _json_body())
    return "", 204


@api.get("/users")
@requires_token()
def users():
    return jsonify(list_users(get_state(), request.args.to_dict()))


@api.get("/users/<userid>")
@requires_token()
def user(userid):
    return jsonify(get_user(get_state(), userid))


@api.get("/reports/connections")
@requires_token()
def connections():
    return jsonify(connection_report(get_state(), request.args.to_dict()))


# --- HTTP: the link pages ---------------------------------------------------------------

pages = Blueprint("pages", __name__)

SUPPORTER_NOTICES = {"offline": "The customer has not opened their link yet."}


def _split_support_link(link):
    link_code, _, token = link.rpartition("-")
    return link_code, token


def _not_found_page():
    return render_template("tvwidget/sandbox/not_found.html"), 404


@pages.get("/join/<link_code>")
def join(link_code):
    state = get_state()
    with state.lock:
        session = find_by_link(state, link_code)
        if session is None:
            return _not_found_page()
        status = link_status(state, session, now())
        waiting_message = session.waiting_message
    return render_template(
        "tvwidget/sandbox/join.html", status=status, waiting_message=waiting_message,
        refresh=status in ("waiting", "connected"),
    )


@pages.post("/join/<link_code>")
def join_action(link_code):
    action = request.form.get("action", "start")
    if action not in ("start", "quit"):
        return redirect(url_for("pages.join", link_code=link_code), 303)
    if not customer_acts(get_state(), link_code, action):
        return _not_found_page()
    return redirect(url_for("pages.join", link_code=link_code), 303)


@pages.get("/support/<link>")
def support(link):
    state = get_state()
    with state.lock:
        session = find_by_link(state, *_split_support_link(link))
        if session is None:
            return _not_found_page()
        status = link_status(state, session, now())
        details = session_json(session)
        running = next((c for c in state.connections
                        if c.session_code == session.code and c.end_date is None), None)
        connected_since = format_date(running.start_date) if running else None
        people = [user for user in state.users.values() if user["active"]]
        connect_as = session.assigned_userid if session.assigned_userid in state.users else SANDBOX_USER["userid"]
    return render_template(
        "tvwidget/sandbox/support.html", status=status, session=details, link=link, people=people,
        connect_as=connect_as,
        connected_since=connected_since, notice=SUPPORTER_NOTICES.get(request.args.get("notice", "")),
        refresh=status in ("offline", "waiting"),
    )


@pages.post("/support/<link>")
def support_action(link):
    action = request.form.get("action")
    if action not in ("connect", "disconnect"):
        return redirect(url_for("pages.support", link=link), 303)
    notice = supporter_acts(get_state(), *_split_support_link(link), action, request.form.get("userid"))
    if notice == "missing":
        return _not_found_page()
    return redirect(url_for("pages.support", link=link, notice=notice), 303)


@pages.get("/directory")
def directory_page():
    """The company directory, its 403 switch and the group shares (accept one as its user would)."""
    state = get_state()
    with state.lock:
        people = list(state.users.values())
        groups = [group_json(state, gid) for gid in state.groups]
        forbidden = state.directory_forbidden
    return render_template("tvwidget/sandbox/directory.html", people=people, groups=groups, forbidden=forbidden)


@pages.post("/directory")
def directory_action():
    state = get_state()
    action = request.form.get("action")
    if action in ("forbid", "allow"):
        with state.lock:
            state.directory_forbidden = action == "forbid"
    elif action == "accept":
        accept_share(state, request.form.get("groupid", ""), request.form.get("userid", ""))
    return redirect(url_for("pages.directory_page"), 303)


@pages.get("/webclient/Connect/IndexByol")
def webclient():
    state = get_state()
    link_code = request.args.get("sessioncode", "")
    token = request.args.get("servicequeuetoken", "")
    with state.lock:
        session = find_by_link(state, link_code, token)
    if session is None:
        return _not_found_page()
    return redirect(url_for("pages.support", link=f"{link_code}-{token}"), 303)


# --- the app ----------------------------------------------------------------------------


def _api_error_response(error):
    body = {
        "error": error.error,
        "error_description": error.description,
        "error_code": ERROR_CODES[error.error],
        "error_signature": str(1_000_000 + secrets.randbelow(9_000_000)),
    }
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
    return jsonify(body), error.status, headers


def _http_error(error):
    """Answer API paths with TeamViewer's JSON errors and page paths with an HTML page."""
    if error.code is None or error.code < 400:
        return error
    if request.path.startswith("/api/"):
        kind = "not_found" if error.code == 404 else "invalid_request"
        if error.code >= 500:
            kind = "internal_error"
        response, status, headers = _api_error_response(ApiError(error.code, kind, error.description))
        if getattr(error, "valid_methods", None):
            headers["Allow"] = ", ".join(error.valid_methods)
        return response, status, headers
    if error.code == 404:
        return _not_found_page()
    return error


def _secure_pages(response):
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = PAGE_CSP
        # Supporter links carry a secret; keep it out of Referer headers.
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def create_sandbox_app(*, accepted_token_prefix="sandbox-", license_limit=50, page_size=1000,
                       directory_forbidden=False):
    """Create the sandbox app; tokens starting with ``accepted_token_prefix`` are valid.

    ``<prefix>expired…`` tokens answer 401 ``token_expired`` and ``<prefix>noperm…``
    tokens are valid for ping and account but lack every other permission.
    ``license_limit`` caps open, unexpired sessions; ``page_size`` caps session
    lists and connection reports (TeamViewer's is 1000).  ``directory_forbidden``
    starts with ``GET /users`` answering 403 (the ``/directory`` page switches it).
    """
    app = Flask(
        __name__,
        template_folder=asset_dir("templates"),
        static_folder=asset_dir("static"),
        static_url_path="/static",
    )
    app.json.sort_keys = False
    app.extensions["tvwidget_sandbox"] = SandboxState(
        token_prefix=accepted_token_prefix, license_limit=license_limit, page_size=page_size,
        directory_forbidden=directory_forbidden,
    )
    app.register_blueprint(api)
    app.register_blueprint(pages)
    app.register_error_handler(ApiError, _api_error_response)
    app.register_error_handler(HTTPException, _http_error)
    app.after_request(_secure_pages)
    return app


def main(argv=None):
    """Serve the sandbox on its own (threaded werkzeug server)."""
    parser = argparse.ArgumentParser(
        prog="python -m tvwidget.demo.sandbox", description="Serve the TeamViewer sandbox.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--token-prefix", default="sandbox-", help="tokens starting with this are valid")
    args = parser.parse_args(argv)
    app = create_sandbox_app(accepted_token_prefix=args.token_prefix)
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
