"""The TeamViewer double of the test suite: TeamViewer's Web API, stateful and strict, over real HTTP on loopback.

Sessions are made, read, listed and closed; the company directory, groups, sharing and the connection
report answer as TeamViewer's do.  Strict: every call needs the bearer token (``token=None`` accepts any),
an unknown query parameter or body field is a 400 ``invalid_request``, ids must have TeamViewer's shapes,
and only an active user of the directory may be assigned a session.  ``calls`` lists every request as
``(method, path)``; ``counts`` counts them by path with ids as ``{id}``; ``creates`` keeps the create bodies,
so tests assert exactly what reached TeamViewer.  The ``teamviewer`` fixture in conftest serves one; tests
that script single answers use conftest's ``teamviewer_server`` (a bare pytest-httpserver) instead.
"""
import json
import re
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from pytest_httpserver import HTTPServer
from werkzeug import Response

TOKEN = "sandbox-test-token-1234"
OWNER = {"id": "u100", "name": "Token Owner", "email": "owner@helpdesk.example", "active": True}
USERS = [
    OWNER,
    {"id": "u201", "name": "Alex Morgan", "email": "Alex.Morgan@Helpdesk.example", "active": True},
    {"id": "u202", "name": "Kim Park", "email": "kim+support@helpdesk.example", "active": True},
    {"id": "u203", "name": "Chris Former", "email": "chris@helpdesk.example", "active": False},
    {"id": "u204", "name": "Sam Lee (desk)", "email": "sam@helpdesk.example", "active": True},
    {"id": "u205", "name": "Sam Lee (laptop)", "email": "SAM@helpdesk.example", "active": True},
    {"id": "u206", "name": "Robin Roe", "email": "robin@helpdesk.example", "active": True},
]
USERID = re.compile(r"^u\d+$")
SESSION_FIELDS = {"groupid", "groupname", "description", "end_customer", "waiting_message", "valid_until",
                  "assigned_userid", "custom_api", "support_session_type"}


def _json(body, status=200):
    return Response(json.dumps(body), status, content_type="application/json")


def _error(status, error, description):
    return _json({"error": error, "error_description": description, "error_code": status}, status)


class FakeTeamViewer:
    """The double; ``directory`` is ``ok``, ``forbidden``, ``license`` or ``rate_limited``; ``refuse``
    makes creates answer a 4xx naming the assignee (``"named"``), a 400 that does not (``"unnamed"``),
    a 500 (``"5xx"``) or hang past the client's timeout (``"timeout"``) whenever ``assigned_userid`` is sent."""

    def __init__(self, valid_for=timedelta(hours=24), token=TOKEN):
        self.server = HTTPServer(host="127.0.0.1", threaded=True)
        self.token = token
        self.valid_for = valid_for
        self.before_create_reply = None  # called with a new session before TeamViewer answers
        self.delays = {"POST": 0.0, "PUT": 0.0}  # seconds a create or close takes to answer, once done
        self.gets = []  # when each GET of one session arrived (time.monotonic())
        self.fail_with = None  # a response every GET of one session gets instead of the session
        self.counts = Counter()
        self.creates = []
        self.users = [dict(user) for user in USERS]
        self.directory = "ok"
        self.refuse = None
        self.users_delay = 0.0
        self.groups = {}  # id -> {"name", "shared_with": {userid: pending}}
        self.shares = []
        self.connections = {}  # session code -> [records]
        self.lock = threading.Lock()
        self.sessions = {}

    @property
    def url(self):
        return self.server.url_for("/api/v1")

    def url_for(self, path):
        return self.server.url_for(path)

    @property
    def calls(self):
        """Every request so far, as ``(method, path below /api/v1)``."""
        return [(request.method, request.path.removeprefix("/api/v1")) for request, _ in self.server.log]

    def start(self):
        self.server.start()
        self.server.expect_request(re.compile(r"^/api/v1/.*")).respond_with_handler(self._handle)
        return self

    def stop(self):
        self.server.clear()
        self.server.stop()

    def _handle(self, request):
        path = request.path.removeprefix("/api/v1")
        with self.lock:
            self.counts[(request.method, re.sub(r"/[ug]\d+", "/{id}", path))] += 1
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "invalid_token", "The access token is invalid.")
        routes = [
            ("GET", r"/users", self._users), ("GET", r"/users/(u\d+)", self._user),
            ("POST", r"/sessions", self._create), ("GET", r"/groups", self._groups),
            ("GET", r"/groups/(g\d+)", self._group), ("POST", r"/groups/(g\d+)/share_group", self._share),
            ("GET", r"/reports/connections", self._report), ("PUT", r"/sessions/(s[\d-]+)", self._put),
            ("GET", r"/sessions", self._list), ("GET", r"/sessions/(s[\d-]+)", self._session),
            ("GET", r"/ping", lambda request: _json({"token_valid": True})),
            ("GET", r"/account", lambda request: _json({"userid": OWNER["id"], "name": OWNER["name"],
                                                         "email": OWNER["email"]})),
        ]
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and request.method == method:
                return handler(request, *match.groups())
        return _error(404, "not_found", f"{request.method} {path} is not part of this API.")

    @staticmethod
    def _params(request, allowed):
        unknown = set(request.args) - allowed
        if unknown:
            return _error(400, "invalid_request", f"Unknown parameter(s): {', '.join(sorted(unknown))}.")
        return None

    def _directory_refusal(self):
        if self.directory == "forbidden":
            return _error(403, "invalid_permission", "This token may not view users.")
        if self.directory == "license":
            return _error(403, "license_required", "A license is required to perform this action.")
        if self.directory == "rate_limited":
            return _error(403, "rate_limit_reached", "Too many calls to a single function.")
        return None

    def _users(self, request):
        bad = self._params(request, {"email", "name", "permissions", "full_list"})
        if bad or (refused := self._directory_refusal()):
            return bad or refused
        time.sleep(self.users_delay)
        full = request.args.get("full_list") == "true"
        return _json({"users": [user if full else {"id": user["id"], "name": user["name"]} for user in self.users]})

    def _user(self, request, userid):
        if refused := self._directory_refusal():
            return refused
        user = next((user for user in self.users if user["id"] == userid), None)
        return _json(user) if user else _error(404, "not_found", "No such user.")

    def _create(self, request):
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or set(body) - SESSION_FIELDS \
                or not (body.get("groupname") or body.get("groupid")):
            return _error(400, "invalid_request", "Malformed session.")
        assignee = body.get("assigned_userid")
        with self.lock:
            self.creates.append(body)
        if assignee is not None:
            if not USERID.match(assignee):
                return _error(400, "invalid_request", "assigned_userid is malformed.")
            if self.refuse == "named":
                return _error(400, "invalid_request", f"The user {assignee} cannot be assigned to this session.")
            if self.refuse == "unnamed":
                return _error(400, "invalid_request", "The request is invalid.")
            if self.refuse == "5xx":
                return _error(500, "internal_error", "Something broke.")
            if self.refuse == "timeout":
                time.sleep(8)
            user = next((user for user in self.users if user["id"] == assignee), None)
            if user is None or not user["active"]:
                return _error(400, "invalid_request", f"assigned_userid {assignee} is not an active user.")
        with self.lock:
            number = len(self.sessions) + 1
            code = f"s{number // 1_000_000 + 100}-{number // 1000 % 1000:03d}-{number % 1000:03d}"
            group = next((gid for gid, g in self.groups.items() if g["name"] == body.get("groupname")), None)
            if group is None:
                group = f"g{900 + len(self.groups)}"
                self.groups[group] = {"name": body.get("groupname"), "shared_with": {}}
            link = code.replace("-", "")
            until = datetime.now(UTC) + self.valid_for
            session = {"code": code, "state": "Open", "groupid": group, "online": False,
                       "valid_until": until.strftime("%Y-%m-%dT%H:%M:%SZ"), "created_at": "2026-12-01T00:00:00Z",
                       "supporter_link": f"https://get.tv.test/{link}-x", "end_customer_link": f"https://get.tv.test/{link}",
                       "assigned_userid": assignee or OWNER["id"], "custom_api": body.get("custom_api", "")}
            self.sessions[code] = session
            if self.before_create_reply is not None:
                self.before_create_reply(session)
        time.sleep(self.delays["POST"])
        return _json(session)

    def _list(self, request):
        with self.lock:
            return _json({"sessions": [s for s in self.sessions.values() if s["state"] == "Open"]})

    def _session(self, request, code):
        with self.lock:
            self.gets.append(time.monotonic())
            if self.fail_with is not None:
                return self.fail_with
            session = self.sessions.get(code)
            return _json(session) if session else _error(404, "not_found", "No such session.")

    def _put(self, request, code):
        with self.lock:
            if code not in self.sessions:
                return _error(404, "not_found", "No such session.")
            self.sessions[code]["state"] = "Closed"
        time.sleep(self.delays["PUT"])
        return Response("", 204)

    def _group_json(self, gid):
        group = self.groups[gid]
        return {"id": gid, "name": group["name"], "permissions": "owned", "shared_with": [
            {"userid": userid, "name": userid, "permissions": "readwrite", **({"pending": True} if pending else {})}
            for userid, pending in group["shared_with"].items()]}

    def _groups(self, request):
        bad = self._params(request, {"name", "shared"})
        if bad:
            return bad
        name = request.args.get("name", "")
        return _json({"groups": [self._group_json(gid) for gid, g in self.groups.items() if name in g["name"]]})

    def _group(self, request, gid):
        return _json(self._group_json(gid)) if gid in self.groups else _error(404, "not_found", "No such group.")

    def _share(self, request, gid):
        body = request.get_json(silent=True)
        if gid not in self.groups:
            return _error(404, "not_found", "No such group.")
        if not isinstance(body, dict) or set(body) != {"users"} or not body["users"]:
            return _error(400, "invalid_request", "users is required.")
        for item in body["users"]:
            if set(item) != {"userid", "permissions"} or item["permissions"] not in ("read", "readwrite") \
                    or not any(user["id"] == item["userid"] and user["active"] for user in self.users) \
                    or item["userid"] == OWNER["id"]:
                return _error(400, "invalid_request", f"Cannot share with {item}.")
        self.shares.append(body)
        for item in body["users"]:
            self.groups[gid]["shared_with"].setdefault(item["userid"], True)
        return Response("", 204)

    def _report(self, request):
        bad = self._params(request, {"session_code", "offset_id"})
        if bad:
            return bad
        return _json({"records": self.connections.get(request.args.get("session_code"), [])})

    def live(self) -> set:
        """The codes of the sessions still open at TeamViewer."""
        with self.lock:
            return {code for code, session in self.sessions.items() if session["state"] == "Open"}

    def session_calls(self, method) -> int:
        """How many ``method`` requests reached /sessions or one session."""
        return sum(n for (verb, path), n in self.counts.items() if verb == method and path.startswith("/sessions"))

    def users_hits(self):
        return self.counts[("GET", "/users")]

    def posts(self):
        return self.counts[("POST", "/sessions")]
