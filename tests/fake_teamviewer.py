"""A strict TeamViewer double over real HTTP on loopback, for the agent directory and assignment (G7).

Strict: every call needs the bearer token, an unknown query parameter or
body field is a 400 ``invalid_request``, ids must have TeamViewer's shapes,
and only an active user of the directory may be assigned a session.  It
counts every call by ``(method, path)`` and keeps the bodies of creates, so
tests assert exactly what reached TeamViewer.
"""
import json
import re
import threading
import time
from collections import Counter

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

    def __init__(self):
        self.server = HTTPServer(host="127.0.0.1", threaded=True)
        self.calls = Counter()
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
            self.calls[(request.method, re.sub(r"/[ug]\d+", "/{id}", path))] += 1
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _error(401, "invalid_token", "The access token is invalid.")
        routes = [
            ("GET", r"/users", self._users), ("GET", r"/users/(u\d+)", self._user),
            ("POST", r"/sessions", self._create), ("GET", r"/groups", self._groups),
            ("GET", r"/groups/(g\d+)", self._group), ("POST", r"/groups/(g\d+)/share_group", self._share),
            ("GET", r"/reports/connections", self._report), ("PUT", r"/sessions/(s[\d-]+)", self._put),
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
        if not isinstance(body, dict) or set(body) - SESSION_FIELDS or not (body.get("groupname") or body.get("groupid")):
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
            self.sessions[code] = body
            group = next((gid for gid, g in self.groups.items() if g["name"] == body.get("groupname")), None)
            if group is None:
                group = f"g{900 + len(self.groups)}"
                self.groups[group] = {"name": body.get("groupname"), "shared_with": {}}
        link = code.replace("-", "")
        return _json({"code": code, "state": "Open", "groupid": group, "valid_until": "2099-01-01T00:00:00Z",
                      "created_at": "2026-12-01T00:00:00Z", "supporter_link": f"https://get.tv.test/{link}-x",
                      "end_customer_link": f"https://get.tv.test/{link}",
                      "assigned_userid": assignee or OWNER["id"], "custom_api": body.get("custom_api", "")})

    def _put(self, request, code):
        return Response("", 204) if code in self.sessions else _error(404, "not_found", "No such session.")

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

    def users_hits(self):
        return self.calls[("GET", "/users")]

    def posts(self):
        return self.calls[("POST", "/sessions")]
