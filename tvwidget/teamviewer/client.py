"""A client for the parts of TeamViewer's Web API (v1) that tvwidget calls.

It speaks the API as ``teamviewer-api.md`` says it really behaves: creation
answers 200 or 201, session codes have 8 or 9 digits, ``state`` comes as
``Open`` or ``open``, empty keys are left out, and errors arrive as JSON, as
plain text (the licence limit) or as a proxy's HTML page.  Every failure is
raised as a ``TeamViewerError`` subclass whose ``kind`` is a stable machine code
and whose ``message`` tells an agent what to do.

Reads (GET) and closing (PUT ``state=closed``) are idempotent, so urllib3
retries them with back-off; creating a session (POST) is never repeated by the
HTTP layer, because a repeated POST makes a second service case at TeamViewer.

The token never appears in an exception, a log record or a ``repr``.
"""
import datetime as dt
import email.utils
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import requests
from flask_babel import lazy_gettext as _l
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ReadTimeoutError
from urllib3.util import Retry

from tvwidget import metrics

log = logging.getLogger(__name__)

SESSION_CODE_RE = re.compile(r"^s\d{1,3}(-\d{3}){2}$")
# The longest wait reported to the agent as ``retry_after``.
RETRY_AFTER_MAX = 60
# The longest Retry-After slept inside one call: the call runs in a web request,
# so a longer wait is reported (rate_limited) instead of sat out.
RETRY_AFTER_WAIT_MAX = 5
BACKOFF_MAX = 2.0
DETAIL_MAX = 200
RETRY_STATUSES = (429, 500, 502, 503, 504)

# Visible ASCII only: requests quotes a header value it refuses in its error
# message, so a token it would refuse must never reach it.
_HEADER_VALUE_RE = re.compile(r"[\x21-\x7e]+")
_REMOTE_ERROR_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TOKEN_ERRORS = frozenset({"invalid_token", "token_expired"})

T = TypeVar("T")


class TeamViewerError(Exception):
    """A TeamViewer call failed; ``kind`` says how, ``message`` tells the agent what to do."""

    kind: ClassVar[str]
    default_message: ClassVar[Any]

    def __init__(self, message: Any = None, *, status: int | None = None, retry_after: float | None = None,
                 remote_error: str | None = None, detail: str | None = None) -> None:
        self.message = message if message is not None else self.default_message
        self.status = status
        self.retry_after = retry_after
        self.remote_error = remote_error
        # TeamViewer's own words (error_description or a plain-text body), cleaned; never the token.
        self.detail = detail
        super().__init__(self.message)

    def __str__(self) -> str:
        return str(self.message)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(kind={self.kind!r}, status={self.status!r}, "
                f"remote_error={self.remote_error!r}, retry_after={self.retry_after!r})")


class TeamViewerUnavailable(TeamViewerError):
    """TeamViewer could not be reached, reset the connection or kept failing with 5xx."""

    kind = "unavailable"
    default_message = _l("TeamViewer cannot be reached right now. Please try again in a moment.")


class TeamViewerTimeout(TeamViewerUnavailable):
    """TeamViewer did not accept the connection or did not answer within the timeout."""

    kind = "timeout"
    default_message = _l("TeamViewer did not answer in time. Please try again in a moment.")


class TeamViewerAuthError(TeamViewerError):
    """The token was rejected (revoked, expired or malformed)."""

    kind = "auth"
    default_message = _l("TeamViewer rejected the script token (it may have been revoked or expired). "
                         "An administrator must connect TeamViewer again.")


class TeamViewerPermissionError(TeamViewerError):
    """TeamViewer forbade the call for a reason other than the rate limit."""

    kind = "permission"
    default_message = _l("The TeamViewer script token lacks a permission this needs. An administrator must "
                         "create a token with session, group, account and connection-report permissions.")


class TeamViewerRateLimited(TeamViewerError):
    """TeamViewer's per-licence request limit was reached (403 rate_limit_reached or 429)."""

    kind = "rate_limited"
    default_message = _l("TeamViewer's request limit for this license was reached. "
                         "Please wait a minute and try again.")


class TeamViewerLicenseLimit(TeamViewerError):
    """The licence allows no more concurrent sessions."""

    kind = "license"
    default_message = _l("Your TeamViewer license does not allow more concurrent sessions. "
                         "Close an open service case and try again.")


class TeamViewerBadRequest(TeamViewerError):
    """TeamViewer refused the request as invalid."""

    kind = "bad_request"
    default_message = _l("TeamViewer refused the request: %(detail)s", detail=_l("no reason was given."))


class TeamViewerNotFound(TeamViewerError):
    """TeamViewer does not know the session code."""

    kind = "not_found"
    default_message = _l("TeamViewer does not know this session code any more.")


class TeamViewerBadReply(TeamViewerError):
    """TeamViewer's reply was not what the API promises (body, code or status)."""

    kind = "bad_reply"
    default_message = _l("TeamViewer sent a reply tvwidget could not understand. Please try again; "
                         "if it keeps happening, tell your administrator.")


@dataclass(frozen=True)
class Session:
    """A TeamViewer session code (a service case) as TeamViewer reports it."""

    code: str
    state: str
    supporter_link: str | None
    end_customer_link: str | None
    valid_until: dt.datetime | None
    created_at: dt.datetime | None
    closed_at: dt.datetime | None
    online: bool | None
    groupid: str | None
    custom_api: str | None
    description: str | None
    assigned_userid: str | None = None


@dataclass(frozen=True)
class DirectoryUser:
    """A user of the company's TeamViewer directory (``GET /users?full_list=true``).

    ``active`` is None when TeamViewer did not say (the minimal list).
    """

    id: str
    name: str | None
    email: str | None
    active: bool | None


@dataclass(frozen=True)
class GroupShare:
    """One user a group is shared with; ``pending`` until they accept it in their TeamViewer client."""

    userid: str
    name: str | None
    permissions: str | None
    pending: bool


@dataclass(frozen=True)
class Group:
    """A TeamViewer group (``GET /groups``), with whom it is shared."""

    id: str
    name: str
    permissions: str | None
    shared_with: tuple[GroupShare, ...]


@dataclass(frozen=True)
class Account:
    """The account a user-level token belongs to."""

    userid: str | None
    name: str | None
    email: str | None
    company_name: str | None


class TeamViewerClient:
    """Call TeamViewer's Web API with one token, over one pooled ``requests`` session."""

    def __init__(self, base_url: str, token: str | None, *, connect_timeout: float = 3.05,
                 read_timeout: float = 6.0, retries: int = 2, backoff_factor: float = 0.3,
                 http: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token.strip() if token and token.strip() else None
        self._timeout = (connect_timeout, read_timeout)
        self._http = http if http is not None else requests.Session()
        adapter = HTTPAdapter(max_retries=_retry_policy(retries, backoff_factor))
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)
        self._owns_http = http is None

    def __repr__(self) -> str:
        return f"<TeamViewerClient {self.base_url} token={'set' if self._token else 'none'}>"

    def close(self) -> None:
        """Close pooled connections (not those of an ``http`` session passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> "TeamViewerClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ping(self) -> bool:
        """Return whether TeamViewer accepts the token (``/ping`` answers 200 either way)."""
        return self._call("GET", "/ping", {200}, _token_valid)

    def account(self) -> Account:
        """Return the account of a user-level token."""
        return self._call("GET", "/account", {200}, _account)

    def create_session(self, *, group_name: str, description: str, end_customer_name: str | None,
                       end_customer_email: str | None, custom_api: str,
                       assigned_userid: str | None = None) -> Session:
        """Create a session code in ``group_name`` (TeamViewer creates the group if needed).

        ``assigned_userid`` assigns it to that TeamViewer user; without it
        TeamViewer assigns it to the token's owner.
        """
        body: dict[str, Any] = {"groupname": group_name, "description": description, "custom_api": custom_api}
        if assigned_userid is not None:
            _check_userid(assigned_userid)
            body["assigned_userid"] = assigned_userid
        end_customer = {key: value for key, value in (("name", end_customer_name), ("email", end_customer_email))
                        if value}
        if end_customer:
            body["end_customer"] = end_customer
        # The 2014 docs answer 201, the 2021 docs 200; the Location header adds nothing the body lacks.
        return self._call("POST", "/sessions", {200, 201}, _session, body=body)

    def get_session(self, code: str) -> Session:
        """Return the session ``code`` as TeamViewer sees it now."""
        return self._call("GET", _session_path(code), {200}, _session)

    def close_session(self, code: str) -> None:
        """Close the session ``code`` at TeamViewer."""
        self._call("PUT", _session_path(code), {200, 204}, _ignore_body, body={"state": "closed"})

    def list_sessions(self, *, state: str = "open", full_list: bool = False, offset: str | None = None) -> dict:
        """Return one page of ``GET /sessions`` as parsed JSON."""
        params = {"state": state, "full_list": "true" if full_list else "false"}
        if offset:
            params["offset"] = offset
        return self._call("GET", "/sessions", {200}, _object, params=params)

    def all_sessions(self, *, state: str = "open") -> list[Session]:
        """Return every session in ``state`` with all fields, following the pages.

        Pages end when ``next_offset`` is absent or ``sessions_remaining`` is not
        positive; an item without a well-formed code is skipped (and logged).
        """
        sessions, offset = [], None
        while True:
            page = self.list_sessions(state=state, full_list=True, offset=offset)
            items = page.get("sessions")
            for item in items if isinstance(items, list) else []:
                try:
                    sessions.append(_session_from(item, 200))
                except TeamViewerBadReply:
                    log.warning("TeamViewer listed a session without a well-formed code; skipped")
            offset = page.get("next_offset")
            remaining = page.get("sessions_remaining")
            if not isinstance(offset, str) or not offset or not (isinstance(remaining, int) and remaining > 0):
                return sessions

    def users(self) -> list[DirectoryUser]:
        """Return the company directory with every field (``GET /users?full_list=true``).

        Needs Users.Read on a Premium or Corporate licence; items without a
        well-formed id are skipped.
        """
        page = self._call("GET", "/users", {200}, _object, params={"full_list": "true"})
        items = page.get("users")
        users = [_directory_user(item) for item in items] if isinstance(items, list) else None
        if users is None:
            raise TeamViewerBadReply(status=200)
        return [user for user in users if user is not None]

    def user(self, userid: str) -> DirectoryUser:
        """Return one directory user (``GET /users/{id}``)."""
        _check_userid(userid)
        user = self._call("GET", f"/users/{userid}", {200}, lambda response: _directory_user(_object(response)))
        if user is None:
            raise TeamViewerBadReply(status=200)
        return user

    def find_group(self, name: str) -> Group | None:
        """Return the group named exactly ``name`` that the token's owner owns, or None.

        TeamViewer's ``name`` filter matches parts of names, so the exact name is picked here.
        """
        page = self._call("GET", "/groups", {200}, _object, params={"name": name, "shared": "false"})
        items = page.get("groups")
        for item in items if isinstance(items, list) else []:
            group = _group(item)
            if group is not None and group.name == name:
                return group
        return None

    def get_group(self, groupid: str) -> Group:
        """Return the group ``groupid`` with whom it is shared."""
        group = self._call("GET", _group_path(groupid), {200}, lambda response: _group(_object(response)))
        if group is None:
            raise TeamViewerBadReply(status=200)
        return group

    def share_group(self, groupid: str, userids: list[str], permissions: str = "readwrite") -> None:
        """Share the group with each user (they accept it in their TeamViewer client)."""
        for userid in userids:
            _check_userid(userid)
        body = {"users": [{"userid": userid, "permissions": permissions} for userid in userids]}
        # Section 8 says 204, the 2014 docs 200.
        self._call("POST", _group_path(groupid) + "/share_group", {200, 204}, _ignore_body, body=body)

    def connection_reports(self, session_code: str) -> list["ConnectionRecord"]:
        """Return every connection report made with ``session_code``, following ``offset_id`` pages.

        Pages end only when ``next_offset`` is absent (the remaining-count
        field's name differs between the docs' editions); a record without an
        id or a start is skipped.
        """
        _session_path(session_code)  # only a well-formed code goes out
        records, offset = [], None
        while True:
            params = {"session_code": session_code}
            if offset:
                params["offset_id"] = offset
            page = self._call("GET", "/reports/connections", {200}, _object, params=params)
            items = page.get("records")
            for item in items if isinstance(items, list) else []:
                record = _connection_record(item)
                if record is not None:
                    records.append(record)
            next_offset = page.get("next_offset")
            if not isinstance(next_offset, str) or not next_offset or next_offset == offset:
                return records
            offset = next_offset

    def _call(self, method: str, path: str, ok: set[int], parse: Callable[[requests.Response], T], *,
              params: dict[str, str] | None = None, body: dict[str, Any] | None = None) -> T:
        started, outcome = time.perf_counter(), "ok"
        try:
            return parse(self._send(method, path, ok, params, body))
        except TeamViewerError as exc:
            outcome = exc.kind
            log.warning("TeamViewer %s %s failed: %s (HTTP %s, error %s)", method, path, exc.kind, exc.status,
                        exc.remote_error)
            raise
        finally:
            metrics.teamviewer_call(method, path, outcome, time.perf_counter() - started)

    def _send(self, method: str, path: str, ok: set[int], params: dict[str, str] | None,
              body: dict[str, Any] | None) -> requests.Response:
        headers = {"Accept": "application/json"}
        if self._token is not None:
            if not _HEADER_VALUE_RE.fullmatch(self._token):
                raise TeamViewerAuthError()
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            # The API never redirects; following one could turn the POST into a GET
            # somewhere else, so a 3xx is an unexpected reply.
            response = self._http.request(method, self.base_url + path, params=params, json=body,
                                          headers=headers, timeout=self._timeout, allow_redirects=False)
        except requests.RequestException as exc:
            error = TeamViewerTimeout() if _is_timeout(exc) else TeamViewerUnavailable()
            raise error from exc
        if response.status_code not in ok:
            raise _status_error(response, self._token)
        return response


def _retry_policy(retries: int, backoff_factor: float) -> Retry:
    """Return the retry policy: idempotent calls only, bounded in count and in sleep.

    urllib3 decides by method for status codes and read errors (timeouts, resets
    after the request went out), so POST is never resent for those.  It retries
    *connect* errors (refused, DNS, connect timeout) for every method; that is
    safe because no byte of the request reached TeamViewer.  ``other=0`` stops
    the remaining errors (TLS, proxy), which urllib3 would resend for any
    method although the request may have been received.
    """
    return Retry(
        total=retries, connect=retries, read=retries, status=retries, other=0,
        backoff_factor=backoff_factor, backoff_max=BACKOFF_MAX,
        # Jitter in the size of the first step keeps widgets that failed together from retrying together.
        backoff_jitter=backoff_factor,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "PUT"}),
        respect_retry_after_header=True,
        retry_after_max=RETRY_AFTER_WAIT_MAX,
        # Hand back the last response so its status (429 vs 5xx) and body decide the error.
        raise_on_status=False,
    )


def _is_timeout(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.Timeout):
        return True
    # requests reports a read timeout as ConnectionError once retries are used up
    # or when it strikes while the body is read.
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    return isinstance(cause, (ReadTimeoutError, ConnectTimeoutError)) and not isinstance(cause, NewConnectionError)


def _status_error(response: requests.Response, token: str | None) -> TeamViewerError:
    status = response.status_code
    text = response.text
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        remote_error = _clean(data.get("error"), token)
        description = _clean(data.get("error_description"), token)
    else:
        remote_error = None
        is_html = "html" in response.headers.get("Content-Type", "") or text.lstrip().startswith("<")
        description = None if is_html else _clean(text, token)
    if remote_error is not None and not _REMOTE_ERROR_RE.fullmatch(remote_error):
        remote_error = None
    details = {"status": status, "remote_error": remote_error}

    # The licence limit on create came back as 400 with a plain-text body.
    details["detail"] = description
    if status == 400 and "license limitations" in text.lower():
        return TeamViewerLicenseLimit(**details)
    # Integrators see token errors on 400 as well as on 401 (Deskpro re-authorises on both).
    if status == 401 or (status == 400 and remote_error in _TOKEN_ERRORS):
        return TeamViewerAuthError(**details)
    if status == 400:
        message = (_l("TeamViewer refused the request: %(detail)s", detail=description) if description
                   else None)
        return TeamViewerBadRequest(message, **details)
    # TeamViewer documents its rate limit as 403 rate_limit_reached; 429 is honoured too.
    if status == 429 or (status == 403 and remote_error == "rate_limit_reached"):
        return TeamViewerRateLimited(retry_after=_retry_after(response), **details)
    if status == 403:
        return TeamViewerPermissionError(**details)
    if status == 404:
        return TeamViewerNotFound(**details)
    if status >= 500:
        return TeamViewerUnavailable(**details)
    return TeamViewerBadReply(**details)


def _clean(value: Any, token: str | None) -> str | None:
    """Return remote text fit for a message or log: one line, bounded, never holding the token."""
    if not isinstance(value, str):
        return None
    text = "".join(ch for ch in " ".join(value.split()) if ch.isprintable())
    if not text or (token and token in text):
        return None
    return text if len(text) <= DETAIL_MAX else text[:DETAIL_MAX - 1] + "…"


def _retry_after(response: requests.Response) -> float | None:
    """Return Retry-After (seconds or an HTTP date) in seconds, capped at RETRY_AFTER_MAX."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    return min(max(seconds, 0.0), float(RETRY_AFTER_MAX))


USERID_RE = re.compile(r"^u\d{1,18}$")
GROUPID_RE = re.compile(r"^g\d{1,18}$")


def _check_userid(userid: str) -> None:
    # A user id goes into a URL path or an assignment; only a well-formed one may.
    if not isinstance(userid, str) or not USERID_RE.fullmatch(userid):
        raise ValueError(f"not a TeamViewer user id: {userid!r}")


def _group_path(groupid: str) -> str:
    if not isinstance(groupid, str) or not GROUPID_RE.fullmatch(groupid):
        raise ValueError(f"not a TeamViewer group id: {groupid!r}")
    return f"/groups/{groupid}"


def _session_path(code: str) -> str:
    # The code goes into the URL path; only a well-formed code may.
    if not isinstance(code, str) or not SESSION_CODE_RE.fullmatch(code):
        raise ValueError(f"not a TeamViewer session code: {code!r}")
    return f"/sessions/{code}"


def _ignore_body(response: requests.Response) -> None:
    """Accept any body: closing answers 204 without one, or 200 with or without one."""


def _object(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise TeamViewerBadReply(status=response.status_code)
    return data


def _token_valid(response: requests.Response) -> bool:
    token_valid = _object(response).get("token_valid")
    if not isinstance(token_valid, bool):
        raise TeamViewerBadReply(status=response.status_code)
    return token_valid


def _account(response: requests.Response) -> Account:
    data = _object(response)
    return Account(userid=_str(data.get("userid")), name=_str(data.get("name")), email=_str(data.get("email")),
                   company_name=_str(data.get("company_name")))


def _session(response: requests.Response) -> Session:
    return _session_from(_object(response), response.status_code)


def _session_from(data: Any, status: int | None) -> Session:
    code = data.get("code") if isinstance(data, dict) else None
    if not isinstance(code, str) or not SESSION_CODE_RE.fullmatch(code):
        raise TeamViewerBadReply(status=status)
    state = _str(data.get("state"))
    online = data.get("online")
    return Session(
        code=code,
        # Live output says "Open", the docs "open"; a missing state is what a new session has.
        state=state.lower() if state else "open",
        supporter_link=_str(data.get("supporter_link")),
        end_customer_link=_str(data.get("end_customer_link")),
        valid_until=_datetime(data.get("valid_until")),
        created_at=_datetime(data.get("created_at")),
        closed_at=_datetime(data.get("closed_at")),
        online=online if isinstance(online, bool) else None,
        groupid=_str(data.get("groupid")),
        custom_api=_str(data.get("custom_api")),
        description=_str(data.get("description")),
        assigned_userid=_userid(data.get("assigned_userid")),
    )


def _userid(value: Any) -> str | None:
    return value if isinstance(value, str) and USERID_RE.fullmatch(value) else None


def _directory_user(data: Any) -> DirectoryUser | None:
    if not isinstance(data, dict) or _userid(data.get("id")) is None:
        return None
    active = data.get("active")
    return DirectoryUser(id=data["id"], name=_str(data.get("name")), email=_str(data.get("email")),
                         active=active if isinstance(active, bool) else None)


def _group(data: Any) -> Group | None:
    if not isinstance(data, dict):
        return None
    groupid, name = _str(data.get("id")), _str(data.get("name"))
    if groupid is None or not GROUPID_RE.fullmatch(groupid) or name is None:
        return None
    shares = data.get("shared_with")
    return Group(id=groupid, name=name, permissions=_str(data.get("permissions")), shared_with=tuple(
        GroupShare(userid=item["userid"], name=_str(item.get("name")), permissions=_str(item.get("permissions")),
                   pending=item.get("pending") is True)
        for item in (shares if isinstance(shares, list) else [])
        if isinstance(item, dict) and _userid(item.get("userid"))))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _datetime(value: Any) -> dt.datetime | None:
    """Parse an API date leniently as aware UTC; an unreadable one is unknown, not an error."""
    if not isinstance(value, str):
        return None
    try:
        # 3.11's fromisoformat reads "Z", milliseconds and the basic form 20130116T194014Z.
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        # "Always in UTC unless stated otherwise."
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


@dataclass(frozen=True)
class ConnectionRecord:
    """One connection from TeamViewer's connection report (``end`` is None while it runs)."""

    id: str
    start: dt.datetime
    end: dt.datetime | None
    userid: str | None
    username: str | None
    deviceid: str | None
    devicename: str | None
    notes: str | None


def _connection_record(data: Any) -> ConnectionRecord | None:
    if not isinstance(data, dict):
        return None
    record_id, start = _str(data.get("id")), _datetime(data.get("start_date"))
    if record_id is None or start is None:
        log.warning("TeamViewer reported a connection without an id or start; skipped")
        return None
    return ConnectionRecord(
        id=record_id[:64], start=start, end=_datetime(data.get("end_date")),
        userid=_str(data.get("userid")), username=_str(data.get("username")),
        deviceid=_str(data.get("deviceid")), devicename=_str(data.get("devicename")),
        notes=_str(data.get("notes")),
    )
