"""TeamViewerClient against real HTTP on 127.0.0.1 (pytest-httpserver and raw sockets)."""
import datetime as dt
import json
import logging
import socket
import struct
import threading
import time
import traceback
from email.utils import format_datetime

import flask
import pytest
import requests
from flask_babel import Babel
from werkzeug import Response

from tvwidget.teamviewer import client as teamviewer
from tvwidget.teamviewer.client import (
    Account,
    Session,
    TeamViewerAuthError,
    TeamViewerBadReply,
    TeamViewerBadRequest,
    TeamViewerClient,
    TeamViewerError,
    TeamViewerLicenseLimit,
    TeamViewerNotFound,
    TeamViewerPermissionError,
    TeamViewerRateLimited,
    TeamViewerTimeout,
    TeamViewerUnavailable,
)

CANARY = "87654321-CanaryTokenMustNotLeak"
CODE = "s119-457-589"
LIVE_SESSION = {
    "code": CODE,
    "state": "Open",
    "groupid": "g272032545",
    "description": "Ticket #535824: Outlook crashes on start",
    "waiting_message": "A technician will join shortly",
    "end_customer": {"name": "John Doe", "email": "john.doe@example.com"},
    "assigned_userid": "u11293276",
    "assigned_at": "2024-04-16T20:40:38Z",
    "end_customer_link": "https://get.teamviewer.com/v15/s119457589",
    "supporter_link": "https://get.teamviewer.com/v15/s119457589-AEG8iPEEzz96",
    "webclient_supporter_link": "https://login.teamviewer.com/Connect/IndexByol?sessioncode=s119457589",
    "custom_api": "{\"ticket_id\":\"535824\"}",
    "created_at": "2024-04-16T20:40:38Z",
    "valid_until": "2024-04-17T20:40:38Z",
    "online": False,
    "support_session_type": "Default",
    "tv_version": "15.52",
}
CREATE_ARGS = {
    "group_name": "Helpdesk",
    "description": "Ticket #535824: Outlook crashes on start",
    "end_customer_name": "John Doe",
    "end_customer_email": "john.doe@example.com",
    "custom_api": "{\"ticket_id\":\"535824\"}",
}
SESSION_PATH = f"/api/v1/sessions/{CODE}"


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.fixture
def make_client(httpserver):
    """Return a factory of clients on the test server (fast back-off), closed after the test."""
    clients = []

    def make(base_url=None, token=CANARY, **options):
        options = {"connect_timeout": 1.0, "read_timeout": 2.0, "backoff_factor": 0, **options}
        client = TeamViewerClient(base_url or httpserver.url_for("/api/v1"), token, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def app():
    """A bare app with Flask-Babel, for rendering lazy messages."""
    app = flask.Flask(__name__)
    Babel(app)
    with app.app_context():
        yield app


@pytest.fixture
def dropping_server():
    """Yield (base URL, connection count) of a server that resets every connection without answering."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    accepted = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                accepted.append(conn.recv(65536))
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api/v1", accepted
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@pytest.fixture
def closed_port_url():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v1"


@pytest.fixture
def release():
    """An event a slow handler waits on; set after the test so the single-threaded server moves on."""
    event = threading.Event()
    yield event
    event.set()


def slow_handler(release):
    def handler(request):
        release.wait(5)
        return Response(json.dumps(LIVE_SESSION), 200, content_type="application/json")
    return handler


def drain(httpserver):
    """Wait until the single-threaded server has handled every connection opened before this call."""
    httpserver.expect_request("/drain").respond_with_data("")
    requests.get(httpserver.url_for("/drain"), timeout=5).close()


def requests_to(httpserver, method, path):
    return [req for req, _ in httpserver.log if req.method == method and req.path == path]


# --- create -----------------------------------------------------------------

def test_create_session_sends_token_group_description_customer_and_custom_api(httpserver, client):
    httpserver.expect_request("/api/v1/sessions", method="POST").respond_with_json(LIVE_SESSION, status=200)

    client.create_session(**CREATE_ARGS)

    (request,) = requests_to(httpserver, "POST", "/api/v1/sessions")
    assert request.headers["Authorization"] == f"Bearer {CANARY}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_json() == {
        "groupname": "Helpdesk",
        "description": "Ticket #535824: Outlook crashes on start",
        "end_customer": {"name": "John Doe", "email": "john.doe@example.com"},
        "custom_api": "{\"ticket_id\":\"535824\"}",
    }


@pytest.mark.parametrize(("name", "email", "expected"), [
    ("John Doe", None, {"name": "John Doe"}),
    (None, "john@example.com", {"email": "john@example.com"}),
    ("", "", None),
    (None, None, None),
])
def test_create_session_omits_empty_end_customer_fields(httpserver, client, name, email, expected):
    httpserver.expect_request("/api/v1/sessions", method="POST").respond_with_json(LIVE_SESSION)

    client.create_session(**{**CREATE_ARGS, "end_customer_name": name, "end_customer_email": email})

    body = httpserver.log[0][0].get_json()
    assert body.get("end_customer") == expected
    assert ("end_customer" in body) == (expected is not None)


def test_client_without_token_sends_no_authorization_header(httpserver, make_client):
    httpserver.expect_request("/api/v1/ping").respond_with_json({"token_valid": False})

    assert make_client(token=None).ping() is False

    assert "Authorization" not in httpserver.log[0][0].headers


@pytest.mark.parametrize("status", [200, 201])
def test_create_session_accepts_200_and_201_with_location(httpserver, client, status):
    httpserver.expect_request("/api/v1/sessions", method="POST").respond_with_json(
        LIVE_SESSION, status=status,
        headers={"Location": f"https://webapi.teamviewer.com/api/v1/sessions/{CODE}"})

    assert client.create_session(**CREATE_ARGS).code == CODE


def test_create_session_parses_the_live_reply_and_ignores_unknown_fields(httpserver, client):
    httpserver.expect_request("/api/v1/sessions", method="POST").respond_with_json(LIVE_SESSION)

    assert client.create_session(**CREATE_ARGS) == Session(
        code=CODE,
        state="open",
        supporter_link="https://get.teamviewer.com/v15/s119457589-AEG8iPEEzz96",
        end_customer_link="https://get.teamviewer.com/v15/s119457589",
        valid_until=utc(2024, 4, 17, 20, 40, 38),
        created_at=utc(2024, 4, 16, 20, 40, 38),
        closed_at=None,
        online=False,
        groupid="g272032545",
        custom_api="{\"ticket_id\":\"535824\"}",
        description="Ticket #535824: Outlook crashes on start",
        assigned_userid="u11293276",
    )


@pytest.mark.parametrize("code", ["s12-345-678", "s119-457-589"])
@pytest.mark.parametrize(("state", "expected"), [("Open", "open"), ("open", "open"), ("CLOSED", "closed")])
def test_create_session_accepts_8_and_9_digit_codes_and_any_state_case(httpserver, client, code, state, expected):
    httpserver.expect_request("/api/v1/sessions", method="POST").respond_with_json({"code": code, "state": state})

    session = client.create_session(**CREATE_ARGS)

    assert (session.code, session.state) == (code, expected)


def test_create_session_with_only_a_code_defaults_state_open_and_the_rest_none(httpserver, client):
    httpserver.expect_request("/api/v1/sessions", method="POST").respond_with_json({"code": "s12-345-678"})

    assert client.create_session(**CREATE_ARGS) == Session(
        code="s12-345-678", state="open", supporter_link=None, end_customer_link=None, valid_until=None,
        created_at=None, closed_at=None, online=None, groupid=None, custom_api=None, description=None)


def test_create_session_turns_nulls_and_wrong_types_into_none(httpserver, client):
    httpserver.expect_request("/api/v1/sessions", method="POST").respond_with_json({
        "code": CODE, "state": None, "supporter_link": 12345, "end_customer_link": None, "online": "yes",
        "groupid": ["g1"], "description": "", "valid_until": 1713300038,
    })

    session = client.create_session(**CREATE_ARGS)

    assert session.state == "open"
    assert (session.supporter_link, session.end_customer_link, session.online, session.groupid,
            session.description, session.valid_until) == (None, None, None, None, None, None)


@pytest.mark.parametrize(("body", "content_type"), [
    (json.dumps({"state": "Open", "supporter_link": "https://get.teamviewer.com/v15/s1-x"}), "application/json"),
    (json.dumps({"code": "s1234"}), "application/json"),
    (json.dumps({"code": "12-345-678"}), "application/json"),
    (json.dumps({"code": "s12-345-6789"}), "application/json"),
    (json.dumps({"code": "s12-345-678\n"}), "application/json"),
    (json.dumps({"code": 12345678}), "application/json"),
    ("<html><body>502 Bad Gateway</body></html>", "text/html"),
    ("", "application/json"),
    (json.dumps([LIVE_SESSION]), "application/json"),
    ("null", "application/json"),
], ids=["no-code", "s1234", "no-s", "too-long", "trailing-newline", "number", "html", "empty", "list", "null"])
def test_create_session_with_unusable_reply_is_bad_reply(httpserver, client, body, content_type):
    httpserver.expect_request("/api/v1/sessions", method="POST").respond_with_data(body, content_type=content_type)

    with pytest.raises(TeamViewerBadReply) as caught:
        client.create_session(**CREATE_ARGS)

    assert (caught.value.kind, caught.value.status) == ("bad_reply", 200)


@pytest.mark.parametrize("status", [202, 302, 405])
def test_unexpected_status_is_bad_reply_and_redirects_are_not_followed(httpserver, client, status):
    httpserver.expect_request("/api/v1/sessions", method="POST").respond_with_json(
        LIVE_SESSION, status=status, headers={"Location": httpserver.url_for("/elsewhere")})

    with pytest.raises(TeamViewerBadReply) as caught:
        client.create_session(**CREATE_ARGS)

    assert caught.value.status == status
    assert [req.path for req, _ in httpserver.log] == ["/api/v1/sessions"]


# --- create is never retried ---------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Retry-After": "1"}])
@pytest.mark.parametrize("status", [500, 503])
def test_create_session_server_error_is_not_retried(httpserver, make_client, status, headers):
    httpserver.expect_request("/api/v1/sessions", method="POST").respond_with_json(
        {"error": "internal_error"}, status=status, headers=headers)

    with pytest.raises(TeamViewerUnavailable) as caught:
        make_client(retries=2).create_session(**CREATE_ARGS)

    assert (caught.value.kind, caught.value.status) == ("unavailable", status)
    assert len(httpserver.log) == 1


def test_create_session_read_timeout_is_not_retried_and_ends_within_budget(httpserver, make_client, release):
    httpserver.expect_request("/api/v1/sessions", method="POST").respond_with_handler(slow_handler(release))
    client = make_client(connect_timeout=1.0, read_timeout=0.5, retries=2)

    started = time.monotonic()
    with pytest.raises(TeamViewerTimeout) as caught:
        client.create_session(**CREATE_ARGS)
    elapsed = time.monotonic() - started

    assert caught.value.kind == "timeout"
    assert isinstance(caught.value, TeamViewerUnavailable)
    assert 0.5 <= elapsed < 1.0 + 0.5 + 0.5
    release.set()
    drain(httpserver)
    assert len(requests_to(httpserver, "POST", "/api/v1/sessions")) == 1


def test_create_session_connection_reset_is_not_retried(dropping_server, make_client):
    base_url, accepted = dropping_server

    with pytest.raises(TeamViewerUnavailable) as caught:
        make_client(base_url, retries=2).create_session(**CREATE_ARGS)

    assert caught.value.kind == "unavailable"
    assert len(accepted) == 1


# --- get and close are retried ------------------------------------------------

def test_get_session_is_retried_after_a_server_error(httpserver, client):
    httpserver.expect_oneshot_request(SESSION_PATH, method="GET").respond_with_json(
        {"error": "internal_error"}, status=500)
    httpserver.expect_request(SESSION_PATH, method="GET").respond_with_json(LIVE_SESSION)

    assert client.get_session(CODE).code == CODE
    assert [resp.status_code for _, resp in httpserver.log] == [500, 200]


def test_close_session_is_retried_after_a_server_error(httpserver, client):
    httpserver.expect_oneshot_request(SESSION_PATH, method="PUT").respond_with_data("Bad Gateway", status=502)
    httpserver.expect_request(SESSION_PATH, method="PUT").respond_with_data("", status=204)

    client.close_session(CODE)

    assert [resp.status_code for _, resp in httpserver.log] == [502, 204]


def test_get_session_gives_up_after_retries(httpserver, make_client):
    httpserver.expect_request(SESSION_PATH).respond_with_data("Service Unavailable", status=503)

    with pytest.raises(TeamViewerUnavailable) as caught:
        make_client(retries=2).get_session(CODE)

    assert (type(caught.value), caught.value.status) == (TeamViewerUnavailable, 503)
    assert len(httpserver.log) == 3


def test_get_session_connection_reset_is_retried_then_unavailable(dropping_server, make_client):
    base_url, accepted = dropping_server

    with pytest.raises(TeamViewerUnavailable) as caught:
        make_client(base_url, retries=2).get_session(CODE)

    assert type(caught.value) is TeamViewerUnavailable
    assert len(accepted) == 3


def test_get_session_read_timeout_is_retried_then_timeout(httpserver, make_client, release):
    httpserver.expect_request(SESSION_PATH).respond_with_handler(slow_handler(release))

    with pytest.raises(TeamViewerTimeout):
        make_client(read_timeout=0.3, retries=1).get_session(CODE)

    release.set()
    drain(httpserver)
    assert len(requests_to(httpserver, "GET", SESSION_PATH)) == 2


@pytest.mark.parametrize("call", [
    lambda client: client.get_session(CODE),
    lambda client: client.create_session(**CREATE_ARGS),
], ids=["get", "create"])
def test_connection_refused_is_unavailable(closed_port_url, make_client, call):
    with pytest.raises(TeamViewerUnavailable) as caught:
        call(make_client(closed_port_url, retries=1))

    assert type(caught.value) is TeamViewerUnavailable


@pytest.mark.parametrize(("status", "body"), [
    (204, ""),
    (200, ""),
    (200, json.dumps({"state": "closed"})),
    (200, "<html>OK</html>"),
])
def test_close_session_sends_state_closed_and_accepts_any_success_body(httpserver, client, status, body):
    httpserver.expect_request(SESSION_PATH, method="PUT").respond_with_data(body, status=status)

    assert client.close_session(CODE) is None

    (request,) = requests_to(httpserver, "PUT", SESSION_PATH)
    assert request.get_json() == {"state": "closed"}
    assert request.headers["Authorization"] == f"Bearer {CANARY}"


@pytest.mark.parametrize("code", ["../account", "s12-345-678/x", "", "S12-345-678"])
def test_malformed_session_code_is_refused_before_any_request(httpserver, client, code):
    with pytest.raises(ValueError):
        client.get_session(code)
    with pytest.raises(ValueError):
        client.close_session(code)

    assert httpserver.log == []


# --- error statuses ---------------------------------------------------------------

def error_json(error, description="human readable message", code=400):
    return json.dumps({"error": error, "error_description": description, "error_code": code,
                       "error_signature": "1234567"})


@pytest.mark.parametrize(("status", "body", "headers", "error_type", "remote_error"), [
    (400, error_json("invalid_request", "groupname is too long"), {}, TeamViewerBadRequest, "invalid_request"),
    (400, "Session could not be created due to license limitations.", {"Content-Type": "text/plain"},
     TeamViewerLicenseLimit, None),
    (400, error_json("invalid_request", "Denied because of License Limitations"), {}, TeamViewerLicenseLimit,
     "invalid_request"),
    (400, error_json("token_expired", "The access token expired", 1), {}, TeamViewerAuthError, "token_expired"),
    (401, error_json("token_expired", "The access token expired", 1), {"WWW-Authenticate": "Bearer"},
     TeamViewerAuthError, "token_expired"),
    (401, error_json("invalid_token", "The access token is invalid", 2), {"WWW-Authenticate": "Bearer"},
     TeamViewerAuthError, "invalid_token"),
    (401, "", {"WWW-Authenticate": "Bearer"}, TeamViewerAuthError, None),
    (403, error_json("rate_limit_reached", "Too many calls"), {}, TeamViewerRateLimited, "rate_limit_reached"),
    (403, error_json("blocked", "IP blocked"), {}, TeamViewerPermissionError, "blocked"),
    (403, error_json("invalid_permission", "Missing Sessions.Create"), {}, TeamViewerPermissionError,
     "invalid_permission"),
    (403, error_json("license_required", "A license is required"), {}, TeamViewerPermissionError,
     "license_required"),
    (403, "<html><h1>Forbidden</h1></html>", {"Content-Type": "text/html"}, TeamViewerPermissionError, None),
    (404, error_json("not_found", "Session code not found"), {}, TeamViewerNotFound, "not_found"),
    (500, error_json("internal_error", "Oops", 500), {}, TeamViewerUnavailable, "internal_error"),
    (409, error_json("conflict"), {}, TeamViewerBadReply, "conflict"),
], ids=["400-invalid-request", "400-license-text", "400-license-json", "400-token-expired", "401-token-expired",
        "401-invalid-token", "401-empty", "403-rate-limit", "403-blocked", "403-invalid-permission",
        "403-license-required", "403-html", "404", "500", "409"])
def test_error_status_maps_to_kind(httpserver, make_client, status, body, headers, error_type, remote_error):
    headers = {"Content-Type": "application/json", **headers}
    httpserver.expect_request("/api/v1/sessions", method="POST").respond_with_data(
        body, status=status, headers=headers)

    with pytest.raises(TeamViewerError) as caught:
        make_client(retries=0).create_session(**CREATE_ARGS)

    assert type(caught.value) is error_type
    assert (caught.value.status, caught.value.remote_error) == (status, remote_error)


@pytest.mark.parametrize(("error_type", "kind"), [
    (TeamViewerUnavailable, "unavailable"), (TeamViewerTimeout, "timeout"), (TeamViewerAuthError, "auth"),
    (TeamViewerPermissionError, "permission"), (TeamViewerRateLimited, "rate_limited"),
    (TeamViewerLicenseLimit, "license"), (TeamViewerBadRequest, "bad_request"), (TeamViewerNotFound, "not_found"),
    (TeamViewerBadReply, "bad_reply"),
])
def test_every_error_has_its_kind_and_an_agent_message(app, error_type, kind):
    error = error_type()

    assert error.kind == kind
    assert str(error) == str(error.message)
    assert str(error).startswith(("TeamViewer", "The TeamViewer", "Your TeamViewer"))


def test_bad_request_message_carries_the_bounded_description(app, httpserver, make_client):
    description = "groupname is invalid: " + "x" * 300
    httpserver.expect_request("/api/v1/sessions").respond_with_data(
        error_json("invalid_request", description), status=400, content_type="application/json")

    with pytest.raises(TeamViewerBadRequest) as caught:
        make_client().create_session(**CREATE_ARGS)

    message = str(caught.value)
    assert message.startswith("TeamViewer refused the request: groupname is invalid: xxx")
    assert len(message) == len("TeamViewer refused the request: ") + teamviewer.DETAIL_MAX


def test_bad_request_without_description_has_a_generic_message(app, httpserver, make_client):
    httpserver.expect_request("/api/v1/sessions").respond_with_data(
        "<html>Bad Request</html>", status=400, content_type="text/html")

    with pytest.raises(TeamViewerBadRequest) as caught:
        make_client().create_session(**CREATE_ARGS)

    assert str(caught.value) == "TeamViewer refused the request: no reason was given."


# --- rate limits ---------------------------------------------------------------------

def test_429_on_get_waits_for_retry_after_then_succeeds(httpserver, make_client):
    httpserver.expect_oneshot_request(SESSION_PATH).respond_with_data(
        "", status=429, headers={"Retry-After": "1"})
    httpserver.expect_request(SESSION_PATH).respond_with_json(LIVE_SESSION)

    started = time.monotonic()
    assert make_client(retries=2).get_session(CODE).code == CODE

    assert time.monotonic() - started >= 1.0
    assert [resp.status_code for _, resp in httpserver.log] == [429, 200]


def test_429_on_get_after_retries_is_rate_limited_with_retry_after(httpserver, make_client):
    httpserver.expect_request(SESSION_PATH).respond_with_data("", status=429, headers={"Retry-After": "1"})

    started = time.monotonic()
    with pytest.raises(TeamViewerRateLimited) as caught:
        make_client(retries=1).get_session(CODE)

    assert time.monotonic() - started >= 1.0
    assert (caught.value.kind, caught.value.status, caught.value.retry_after) == ("rate_limited", 429, 1.0)
    assert len(httpserver.log) == 2


def test_retry_after_is_capped_and_not_slept_without_retries(httpserver, make_client):
    httpserver.expect_request(SESSION_PATH).respond_with_data("", status=429, headers={"Retry-After": "99999"})

    started = time.monotonic()
    with pytest.raises(TeamViewerRateLimited) as caught:
        make_client(retries=0).get_session(CODE)

    assert time.monotonic() - started < 1.0
    assert caught.value.retry_after == teamviewer.RETRY_AFTER_MAX == 60


def test_retry_after_slept_inside_a_call_is_capped(httpserver, make_client, monkeypatch):
    monkeypatch.setattr(teamviewer, "RETRY_AFTER_WAIT_MAX", 1)
    httpserver.expect_request(SESSION_PATH).respond_with_data("", status=429, headers={"Retry-After": "30"})

    started = time.monotonic()
    with pytest.raises(TeamViewerRateLimited) as caught:
        make_client(retries=1).get_session(CODE)

    assert 1.0 <= time.monotonic() - started < 3.0
    assert caught.value.retry_after == 30.0


def test_retry_after_as_http_date(httpserver, make_client):
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    httpserver.expect_request(SESSION_PATH).respond_with_data(
        "", status=429, headers={"Retry-After": format_datetime(when, usegmt=True)})

    with pytest.raises(TeamViewerRateLimited) as caught:
        make_client(retries=0).get_session(CODE)

    assert 25 <= caught.value.retry_after <= 30


class RecordedClock:
    """urllib3's view of ``time`` with every retry wait recorded instead of slept (an injected clock)."""

    def __init__(self):
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch):
    import urllib3.util.retry

    recorded = RecordedClock()
    monkeypatch.setattr(urllib3.util.retry, "time", recorded)
    return recorded


def test_429_with_retry_after_2_waits_before_each_try_then_says_rate_limited(httpserver, make_client, clock):
    """Checklist 28 on status polling: >= 2 s before each of the N tries, then rate_limited with the wait."""
    httpserver.expect_request(SESSION_PATH).respond_with_data("", status=429, headers={"Retry-After": "2"})

    with pytest.raises(TeamViewerRateLimited) as caught:
        make_client(retries=2).get_session(CODE)

    assert clock.sleeps == [2.0, 2.0]
    assert len(httpserver.log) == 3
    assert (caught.value.kind, caught.value.retry_after) == ("rate_limited", 2.0)


def test_429_waits_inside_a_call_are_capped_and_the_reported_wait_too(httpserver, make_client, clock):
    httpserver.expect_request(SESSION_PATH).respond_with_data("", status=429, headers={"Retry-After": "86400"})

    with pytest.raises(TeamViewerRateLimited) as caught:
        make_client(retries=2).get_session(CODE)

    assert clock.sleeps == [teamviewer.RETRY_AFTER_WAIT_MAX] * 2
    assert caught.value.retry_after == teamviewer.RETRY_AFTER_MAX


def test_429_on_create_is_never_posted_again(httpserver, make_client, clock):
    httpserver.expect_ordered_request("/api/v1/sessions", method="POST").respond_with_data(
        "", status=429, headers={"Retry-After": "2"})
    httpserver.expect_ordered_request("/api/v1/sessions", method="POST").respond_with_json(LIVE_SESSION)

    with pytest.raises(TeamViewerRateLimited) as caught:
        make_client(retries=2).create_session(**CREATE_ARGS)

    assert caught.value.retry_after == 2.0 and clock.sleeps == []
    assert len(httpserver.log) == 1
    assert len(httpserver.ordered_handlers) == 1  # the second, successful answer was never asked for


def test_retries_back_off_exponentially_with_jitter(httpserver, make_client, clock):
    """Checklist 29: GET retries wait factor x 2^n plus up to one factor of jitter, so no two waits are alike."""
    httpserver.expect_request(SESSION_PATH).respond_with_json({"error": "internal_error"}, status=503)
    client = make_client(retries=3, backoff_factor=0.2)

    for _ in range(6):
        with pytest.raises(TeamViewerUnavailable):
            client.get_session(CODE)

    assert len(httpserver.log) == 6 * 4
    assert len(clock.sleeps) == 6 * 2  # urllib3 retries the first time at once, then backs off
    assert all(0.4 <= wait < 0.6 for wait in clock.sleeps[0::2])
    assert all(0.8 <= wait < 1.0 for wait in clock.sleeps[1::2])
    assert len(set(clock.sleeps)) == len(clock.sleeps)


def test_403_rate_limit_is_not_retried(httpserver, make_client):
    httpserver.expect_request(SESSION_PATH).respond_with_data(
        error_json("rate_limit_reached", "Too many calls"), status=403, content_type="application/json")

    with pytest.raises(TeamViewerRateLimited) as caught:
        make_client(retries=2).get_session(CODE)

    assert caught.value.retry_after is None
    assert len(httpserver.log) == 1


# --- ping, account, list ---------------------------------------------------------------

@pytest.mark.parametrize("valid", [True, False])
def test_ping_returns_token_valid(httpserver, client, valid):
    httpserver.expect_request("/api/v1/ping", method="GET").respond_with_json({"token_valid": valid})

    assert client.ping() is valid


@pytest.mark.parametrize(("body", "content_type"), [
    ("<!DOCTYPE html><html><body>Sign in to the Wi-Fi</body></html>", "text/html"),
    (json.dumps({}), "application/json"),
    (json.dumps({"token_valid": "true"}), "application/json"),
])
def test_ping_without_a_boolean_token_valid_is_bad_reply(httpserver, client, body, content_type):
    httpserver.expect_request("/api/v1/ping").respond_with_data(body, content_type=content_type)

    with pytest.raises(TeamViewerBadReply):
        client.ping()


def test_account_parses_known_fields_and_ignores_extra_ones(httpserver, client):
    httpserver.expect_request("/api/v1/account").respond_with_json({
        "userid": "u1234567", "email": "jdoe@example.com", "name": "John Doe", "company_name": "John's Company",
        "email_validated": True, "email_language": "uk", "profilepicture_url": "https://example.com/p.png",
        "license": {"version": 15, "type": "Premium", "isactive": True}, "available_licenses": [],
    })

    assert client.account() == Account(userid="u1234567", name="John Doe", email="jdoe@example.com",
                                       company_name="John's Company")


def test_account_with_missing_optional_fields(httpserver, client):
    httpserver.expect_request("/api/v1/account").respond_with_json({"userid": "u1234567", "name": "John Doe"})

    assert client.account() == Account(userid="u1234567", name="John Doe", email=None, company_name=None)


def test_list_sessions_sends_filters_and_returns_the_json(httpserver, client):
    page = {"sessions": [{"code": CODE, "state": "Open"}], "next_offset": CODE, "sessions_remaining": 3}
    httpserver.expect_request("/api/v1/sessions", method="GET").respond_with_json(page)

    assert client.list_sessions() == page
    assert client.list_sessions(state="open,closed", full_list=True, offset=CODE) == page

    first, second = (req.args.to_dict() for req, _ in httpserver.log)
    assert first == {"state": "open", "full_list": "false"}
    assert second == {"state": "open,closed", "full_list": "true", "offset": CODE}


def test_base_url_trailing_slash_is_ignored(httpserver, make_client):
    httpserver.expect_request("/api/v1/ping").respond_with_json({"token_valid": True})

    assert make_client(httpserver.url_for("/api/v1/")).ping() is True


# --- dates ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("2024-04-17T20:40:38Z", utc(2024, 4, 17, 20, 40, 38)),
    ("2024-12-03T22:25:44.414Z", utc(2024, 12, 3, 22, 25, 44, 414000)),
    ("20130116T194014Z", utc(2013, 1, 16, 19, 40, 14)),
    ("2024-04-17T20:40:38+00:00", utc(2024, 4, 17, 20, 40, 38)),
    ("2024-04-17T22:40:38+02:00", utc(2024, 4, 17, 20, 40, 38)),
    ("2024-04-17T20:40:38", utc(2024, 4, 17, 20, 40, 38)),
    ("17/04/2024 20:40", None),
    ("garbage", None),
    ("", None),
    (1713386438, None),
    (None, None),
])
def test_session_dates_are_parsed_leniently_as_utc(httpserver, client, value, expected):
    httpserver.expect_request(SESSION_PATH).respond_with_json({**LIVE_SESSION, "valid_until": value})

    valid_until = client.get_session(CODE).valid_until

    assert valid_until == expected
    if expected is not None:
        assert valid_until.tzinfo == dt.UTC


# --- the token never leaks ------------------------------------------------------------------

def echo_token_body():
    return json.dumps({"error": CANARY, "error_description": f"Token {CANARY} is not valid here"})


@pytest.mark.parametrize("scenario", [
    "400-echoing-token", "401", "403", "429", "500", "html", "reset", "refused", "timeout", "bad-token",
])
def test_token_never_appears_in_errors_repr_or_logs(httpserver, make_client, dropping_server, closed_port_url,
                                                     release, caplog, scenario):
    caplog.set_level(logging.DEBUG)
    base_url, token, options = None, CANARY, {"retries": 1}
    path = "/api/v1/sessions"
    if scenario == "400-echoing-token":
        httpserver.expect_request(path).respond_with_data(echo_token_body(), status=400,
                                                          content_type="application/json")
    elif scenario in {"401", "403", "429", "500"}:
        httpserver.expect_request(path).respond_with_data(echo_token_body(), status=int(scenario),
                                                          content_type="application/json")
    elif scenario == "html":
        httpserver.expect_request(path).respond_with_data(f"<html>{CANARY}</html>", content_type="text/html")
    elif scenario == "reset":
        base_url = dropping_server[0]
    elif scenario == "refused":
        base_url = closed_port_url
    elif scenario == "timeout":
        httpserver.expect_request(path).respond_with_handler(slow_handler(release))
        options["read_timeout"] = 0.3
    else:
        token = f"{CANARY}\r\nX-Injected: 1"
    client = make_client(base_url, token=token, **options)

    with pytest.raises(TeamViewerError) as caught:
        client.list_sessions()

    exposed = [str(caught.value), repr(caught.value), repr(client), caplog.text,
               "".join(traceback.format_exception(caught.value))]
    assert not [text for text in exposed if CANARY in text]
    if scenario == "timeout":
        release.set()
        drain(httpserver)  # the retried request must not reach the next test's log
    if scenario == "400-echoing-token":
        assert caught.value.remote_error is None
    if scenario == "bad-token":
        assert type(caught.value) is TeamViewerAuthError
        assert httpserver.log == []
