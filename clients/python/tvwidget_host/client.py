"""The host API client (SPEC "Host API"; described in openapi.yaml): server to server, bearer key, JSON."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import requests

from .errors import ActiveServiceCase, BadRequest, NotFound, TVWidgetError, Unauthorized, Unavailable
from .tokens import ticket_claim

API_PREFIX = "/api/v1"


class HostClient:
    """Talk to tvwidget's host API at ``base_url`` (where tvwidget is served, e.g. ``https://tvwidget.example.com``).

    ``api_key`` is tvwidget's TVWIDGET_HOST_API_KEY; it is sent only in the
    Authorization header and never appears in an error or ``repr``.  Each call
    waits at most ``timeout`` seconds for the connection and for each read.
    Pass a ``requests.Session`` to share a connection pool (the client then
    leaves closing it to you).  Every failure raises a ``TVWidgetError``
    subclass; see ``tvwidget_host.errors``.
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 5.0,
                 session: requests.Session | None = None):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be tvwidget's http(s) URL, not {base_url!r}")
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be tvwidget's TVWIDGET_HOST_API_KEY")
        base = base_url.rstrip("/")
        if base.endswith(API_PREFIX):
            base = base[:-len(API_PREFIX)]
        self.base_url = base
        self.timeout = timeout
        self._api_key = api_key
        self._own_session = session is None
        self._session = session if session is not None else requests.Session()

    def __repr__(self) -> str:
        return f"HostClient({self.base_url!r})"

    def close(self) -> None:
        """Close the connection pool (only the client's own session)."""
        if self._own_session:
            self._session.close()

    def __enter__(self) -> HostClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- the calls ---------------------------------------------------------

    def put_ticket(self, ticket_id: str, fields: Mapping[str, Any]) -> dict:
        """Create or update the ticket's fields (the launch token's ``ticket`` shape); return ``{"id", "status"}``.

        Fields left out are cleared.  Raises ValueError for what ``sign_launch_token`` refuses in a ticket.
        """
        if not isinstance(fields, Mapping):
            raise ValueError(f"fields must be a dict, not {type(fields).__name__}")
        path = self._ticket_path(ticket_id)
        if "id" in fields and str(fields["id"]) != str(ticket_id):
            raise ValueError(f"fields['id'] {fields['id']!r} differs from ticket_id {ticket_id!r}")
        # The token's checks: a misspelt key (tvwidget would ignore it) is an error here, not a lost field.
        return self._call("PUT", path, json=ticket_claim({**fields, "id": ticket_id}))

    def service_case(self, ticket_id: str) -> dict | None:
        """Return the ticket's valid service case, or None when it has none."""
        try:
            return self._call("GET", self._ticket_path(ticket_id, "/service-case"))
        except NotFound as exc:
            if exc.code == "no_active_case":
                return None
            raise

    def close_ticket(self, ticket_id: str) -> dict:
        """Ask tvwidget whether the ticket may close, and record it closed: ``{"id", "status": "closed"}``.

        Call it before closing a ticket in the helpdesk.  Raises
        ``ActiveServiceCase`` (with ``.case`` and tvwidget's ``.message`` for
        the person) while a case is valid; then the ticket must stay open.
        """
        return self._call("POST", self._ticket_path(ticket_id, "/close"))

    def comments(self, ticket_id: str) -> list:
        """Return the comments tvwidget wrote on the ticket, oldest first.

        Each is ``{"id", "kind", "body", "author", "created_at", "service_case"}``;
        ``kind`` is ``closed``, ``expired``, ``closed_remotely`` or ``connections``.
        """
        reply = self._call("GET", self._ticket_path(ticket_id, "/comments"))
        comments = reply.get("comments")
        if not isinstance(comments, list):
            raise Unavailable("tvwidget's reply to the comments call has no comment list.", code="bad_reply",
                              status=200)
        return comments

    def report(self, date_from: date | str, date_to: date | str, technician: str | None = None, *,
               tz: str | None = None) -> dict:
        """Return the TeamViewer Sessions Summary for whole days ``date_from`` to ``date_to`` (UTC unless ``tz``)."""
        params = {"from": _day(date_from, "date_from"), "to": _day(date_to, "date_to")}
        if technician is not None:
            params["technician"] = technician
        if tz is not None:
            params["tz"] = tz
        return self._call("GET", API_PREFIX + "/reports/teamviewer-sessions", params=params)

    # -- the plumbing ------------------------------------------------------

    @staticmethod
    def _ticket_path(ticket_id: str, suffix: str = "") -> str:
        if isinstance(ticket_id, int) and not isinstance(ticket_id, bool):
            ticket_id = str(ticket_id)
        if not isinstance(ticket_id, str) or not ticket_id:
            raise ValueError(f"ticket_id must be a non-empty string, not {ticket_id!r}")
        return f"{API_PREFIX}/tickets/{quote(ticket_id, safe='')}{suffix}"

    def _call(self, method: str, path: str, **kwargs) -> dict:
        url = self.base_url + path
        try:
            response = self._session.request(
                method, url, timeout=self.timeout, allow_redirects=False,
                headers={"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}, **kwargs)
        except requests.Timeout:
            raise Unavailable(f"tvwidget at {self.base_url} did not answer within {self.timeout} s.",
                              code="timeout") from None
        except requests.RequestException as exc:
            raise Unavailable(f"tvwidget at {self.base_url} cannot be reached ({type(exc).__name__}).",
                              code="unreachable") from None
        with response:
            status = response.status_code
            try:
                body = response.json()
            except ValueError:
                body = None
        if 200 <= status < 300:
            if not isinstance(body, dict):
                raise Unavailable(f"tvwidget at {self.base_url} answered {method} {path} with something that is "
                                  "not its JSON (is base_url right?).", code="bad_reply", status=status)
            return body
        if 300 <= status < 400:
            raise Unavailable(f"tvwidget at {self.base_url} redirected {method} {path} to "
                              f"{response.headers.get('Location', '?')}; use tvwidget's own address as base_url.",
                              code="redirected", status=status)
        raise _error(status, body, self.base_url)


def _day(value: date | str, what: str) -> str:
    if isinstance(value, datetime):
        raise ValueError(f"{what} must be a date (whole days), not a datetime")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise ValueError(f"{what} must be a date or 'YYYY-MM-DD', not {value!r}")


def _error(status: int, body: Any, base_url: str) -> TVWidgetError:
    """Return the typed error for a non-2xx answer."""
    is_ours = isinstance(body, dict) and isinstance(body.get("error"), str)
    code = body["error"] if is_ours else f"http_{status}"
    message = body.get("message") if is_ours and isinstance(body.get("message"), str) else None
    if status >= 500:
        return Unavailable(message or f"tvwidget at {base_url} answered HTTP {status}.", code=code, status=status)
    if not is_ours:
        return Unavailable(f"tvwidget at {base_url} answered HTTP {status} without its JSON error "
                           "(is base_url right, or is a proxy in the way?).", code="bad_reply", status=status)
    message = message or code
    if status == 401:
        return Unauthorized(message, code=code, status=status)
    if status == 404:
        return NotFound(message, code=code, status=status)
    if status in (400, 413, 422):
        return BadRequest(message, code=code, status=status)
    if status == 409 and code == "active_service_case" and isinstance(body.get("service_case"), dict):
        return ActiveServiceCase(message, case=body["service_case"], code=code, status=status)
    return TVWidgetError(message, code=code, status=status)
