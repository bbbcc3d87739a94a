"""The built-in TeamViewer sandbox, spoken to over real HTTP like the real Web API."""
import datetime as dt
import re
import uuid

import pytest
import requests
from freezegun import freeze_time
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from tests.live import serve
from tvwidget.demo.sandbox import LICENSE_LIMIT_MESSAGE, PAGE_CSP, create_sandbox_app

CODE_RE = re.compile(r"^s\d{1,3}(-\d{3}){2}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TOKEN = "sandbox-test-token"
PAGE_SIZE = 3


def parse(value):
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def base_url():
    # One server for the module: each werkzeug shutdown costs up to half a second.
    with serve(create_sandbox_app(page_size=PAGE_SIZE)) as url:
        yield url


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture
def call(base_url, http):
    """Return a function calling the sandbox API with a valid token unless told otherwise."""
    def call(method, path, token=TOKEN, **kwargs):
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return http.request(method, f"{base_url}/api/v1{path}", headers=headers, timeout=5, **kwargs)
    return call


@pytest.fixture
def group():
    """Return a group name of this test's own, so tests sharing the server don't see each other."""
    return f"Helpdesk {uuid.uuid4().hex[:8]}"


@pytest.fixture
def create(call, group):
    """Return a function creating a session in this test's group and returning its JSON."""
    def create(**body):
        response = call("POST", "/sessions", json={"groupname": group, **body})
        assert response.status_code == 200, response.text
        return response.json()
    return create


def link_path(link, base_url):
    assert link.startswith(base_url + "/")
    return link[len(base_url):]


def test_ping_answers_200_and_reports_whether_the_token_is_valid(call):
    assert call("GET", "/ping").json() == {"token_valid": True}
    for token in ("not-a-sandbox-token", "sandbox-expired-1", None):
        response = call("GET", "/ping", token=token)
        assert response.status_code == 200
        assert response.json() == {"token_valid": False}


def test_account_describes_the_sandbox_supporter_with_extra_live_fields(call):
    response = call("GET", "/account")

    assert response.status_code == 200
    account = response.json()
    assert account["userid"] == "u1234567"
    assert account["email"] == "sandbox@example.com"
    assert account["name"] == "Sandbox Supporter"
    assert account["company_name"] == "TeamViewer Sandbox"
    assert account["email_validated"] is True
    assert account["email_language"] == "en"
    assert "custom_field_has_paid_license" in account


def test_create_answers_200_with_location_and_the_live_session_shape(call, group, base_url):
    response = call("POST", "/sessions", json={
        "groupname": group,
        "description": "Ticket #535824: Outlook crashes on start",
        "waiting_message": "A technician will join shortly",
        "end_customer": {"name": "John Doe", "email": "john.doe@example.com"},
        "custom_api": '{"ticket_id":"535824"}',
    })

    assert response.status_code == 200
    session = response.json()
    assert CODE_RE.match(session["code"])
    assert len(session["code"].replace("-", "")) == 10
    assert response.headers["Location"] == f"{base_url}/api/v1/sessions/{session['code']}"
    assert session["state"] == "Open"
    assert session["groupid"].startswith("g")
    assert session["description"] == "Ticket #535824: Outlook crashes on start"
    assert session["waiting_message"] == "A technician will join shortly"
    assert session["end_customer"] == {"name": "John Doe", "email": "john.doe@example.com"}
    assert session["custom_api"] == '{"ticket_id":"535824"}'
    assert session["assigned_userid"] == "u1234567"
    assert session["online"] is False
    assert session["support_session_type"] == "Default"
    for key in ("created_at", "assigned_at", "valid_until"):
        assert DATE_RE.match(session[key])
    assert parse(session["valid_until"]) - parse(session["created_at"]) == dt.timedelta(hours=24)
    assert "closed_at" not in session
    assert "groupname" not in session
    link_code = session["code"].replace("-", "")
    assert session["end_customer_link"] == f"{base_url}/join/{link_code}"
    assert re.fullmatch(rf"{base_url}/support/{link_code}-[A-Za-z0-9]{{12}}", session["supporter_link"])
    assert session["webclient_supporter_link"].startswith(base_url + "/")


def test_create_omits_empty_keys(create):
    session = create(description="", end_customer={"name": "", "email": ""})

    for key in ("description", "waiting_message", "end_customer", "custom_api", "closed_at"):
        assert key not in session
    assert session["online"] is False


def test_session_codes_are_unique(create):
    codes = {create()["code"] for _ in range(20)}

    assert len(codes) == 20


def test_groupname_creates_the_group_once_and_then_reuses_it(call, create, group):
    first, second = create(), create()
    by_id = call("POST", "/sessions", json={"groupid": first["groupid"]})

    assert first["groupid"] == second["groupid"] == by_id.json()["groupid"]
    groups = call("GET", "/groups", params={"name": group}).json()["groups"]
    assert groups == [{"id": first["groupid"], "name": group, "permissions": "owned"}]
    assert call("GET", f"/groups/{first['groupid']}").json()["name"] == group


@pytest.mark.parametrize("kwargs", [
    pytest.param({"json": {"description": "no group"}}, id="no-group"),
    pytest.param({"data": "{not json", "headers": {"Content-Type": "application/json"}}, id="bad-json"),
    pytest.param({"data": "groupname=Helpdesk"}, id="form-encoded"),
    pytest.param({"json": {"groupname": "Helpdesk", "custom_api": "x" * 4001}}, id="custom-api-too-long"),
    pytest.param({"json": {"groupname": "Helpdesk", "end_customer": {"name": "x" * 101}}}, id="name-too-long"),
    pytest.param({"json": {"groupid": "g0"}}, id="unknown-groupid"),
    pytest.param({"json": {"groupname": "Helpdesk", "group_name": "typo"}}, id="unknown-field"),
])
def test_malformed_create_is_400_invalid_request(call, kwargs):
    response = call("POST", "/sessions", **kwargs)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["error_description"]
    assert isinstance(body["error_code"], int)


def test_custom_api_of_4000_characters_is_accepted(create):
    assert len(create(custom_api="x" * 4000)["custom_api"]) == 4000


@pytest.mark.parametrize(("token", "error", "error_code"), [
    (None, "invalid_token", 2),
    ("someone-elses-token", "invalid_token", 2),
    ("sandbox-expired", "token_expired", 1),
])
def test_bad_tokens_get_401_with_www_authenticate(call, token, error, error_code):
    for method, path in (("GET", "/account"), ("GET", "/sessions"), ("POST", "/sessions")):
        response = call(method, path, token=token, json={"groupname": "Helpdesk"})

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"] == error
        assert response.json()["error_code"] == error_code


def test_noperm_token_reads_the_account_but_not_sessions(call, create):
    code = create()["code"]
    token = "sandbox-noperm"

    assert call("GET", "/ping", token=token).json() == {"token_valid": True}
    assert call("GET", "/account", token=token).status_code == 200
    for method, path in (("POST", "/sessions"), ("GET", "/sessions"), ("GET", f"/sessions/{code}"),
                         ("PUT", f"/sessions/{code}"), ("GET", "/reports/connections")):
        response = call(method, path, token=token, json={"groupname": "Helpdesk"})
        assert response.status_code == 403
        assert response.json()["error"] == "invalid_permission"


def test_unknown_session_is_404_not_found(call):
    for method in ("GET", "PUT"):
        response = call(method, "/sessions/s999-999-999", json={"state": "closed"})

        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_closing_answers_204_and_the_session_then_reads_closed(call, create, base_url, http):
    session = create()

    response = call("PUT", f"/sessions/{session['code']}", json={"state": "closed"})

    assert response.status_code == 204
    assert response.content == b""
    closed = call("GET", f"/sessions/{session['code']}").json()
    assert closed["state"] == "Closed"
    assert DATE_RE.match(closed["closed_at"])
    assert closed["online"] is False
    assert closed["supporter_link"] == session["supporter_link"]
    assert "closed by your supporter" in http.get(session["end_customer_link"]).text
    assert "This session was closed." in http.get(session["supporter_link"]).text


def test_state_is_case_insensitive_on_put_and_a_closed_session_stays_closed(call, create):
    code = create()["code"]

    assert call("PUT", f"/sessions/{code}", json={"state": "Closed"}).status_code == 204
    closed_at = call("GET", f"/sessions/{code}").json()["closed_at"]
    assert call("PUT", f"/sessions/{code}", json={"state": "CLOSED"}).status_code == 204
    assert call("GET", f"/sessions/{code}").json()["closed_at"] == closed_at
    assert call("PUT", f"/sessions/{code}", json={"state": "open"}).status_code == 400
    assert call("PUT", f"/sessions/{code}", json={"state": "gone"}).status_code == 400


def test_put_changes_fields_and_clears_empty_ones(call, create):
    code = create(description="old", end_customer={"name": "Jo"})["code"]

    response = call("PUT", f"/sessions/{code}", json={"description": "new", "end_customer": {}})

    assert response.status_code == 204
    session = call("GET", f"/sessions/{code}").json()
    assert session["description"] == "new"
    assert "end_customer" not in session
    assert session["state"] == "Open"


def test_license_limit_refuses_creation_with_a_plain_text_400(http):
    with serve(create_sandbox_app(license_limit=2)) as url:
        def post():
            return http.post(f"{url}/api/v1/sessions", json={"groupname": "Helpdesk"},
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)

        first = post().json()
        post()
        refused = post()
        http.put(f"{url}/api/v1/sessions/{first['code']}", json={"state": "closed"},
                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        again = post()

    assert refused.status_code == 400
    assert refused.headers["Content-Type"].startswith("text/plain")
    assert "license limitations" in refused.text
    assert refused.text == LICENSE_LIMIT_MESSAGE
    assert again.status_code == 200


def test_list_is_newest_first_and_pages_until_next_offset_is_absent(call, create):
    created = [create()["code"] for _ in range(7)]
    groupid = call("GET", f"/sessions/{created[0]}").json()["groupid"]

    pages, params = [], {"groupid": groupid}
    while True:
        page = call("GET", "/sessions", params=params).json()
        pages.append(page)
        if "next_offset" not in page:
            break
        params["offset"] = page["next_offset"]

    assert [len(page["sessions"]) for page in pages] == [3, 3, 1]
    assert [page.get("sessions_remaining") for page in pages] == [4, 1, None]
    assert [s["code"] for page in pages for s in page["sessions"]] == created[::-1]
    item = pages[0]["sessions"][0]
    assert set(item) == {"code", "state", "online", "groupid", "support_session_type"}


def test_list_shows_open_by_default_and_closed_on_request(call, create):
    open_code, closed_code = create()["code"], create()["code"]
    groupid = call("GET", f"/sessions/{open_code}").json()["groupid"]
    call("PUT", f"/sessions/{closed_code}", json={"state": "closed"})

    def codes(**params):
        sessions = call("GET", "/sessions", params={"groupid": groupid, **params}).json()["sessions"]
        return [s["code"] for s in sessions]

    assert codes() == [open_code]
    assert codes(state="closed") == [closed_code]
    assert codes(state="open,closed") == [closed_code, open_code]
    full = call("GET", "/sessions", params={"groupid": groupid, "full_list": "true"}).json()["sessions"][0]
    assert "supporter_link" in full and "valid_until" in full
    assert call("GET", "/sessions", params={"state": "pending"}).status_code == 400


def test_link_pages_are_labelled_sandbox_and_served_with_a_strict_csp(create, http, base_url):
    session = create()

    for link in (session["end_customer_link"], session["supporter_link"]):
        response = http.get(link)
        assert response.status_code == 200
        assert "TeamViewer sandbox — nothing real happens here" in response.text
        assert response.headers["Content-Security-Policy"] == PAGE_CSP
        assert "<script" not in response.text and "style=" not in response.text
    css = http.get(f"{base_url}/static/tvwidget-sandbox.css")
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")


def test_unknown_links_and_wrong_supporter_tokens_are_404_pages(create, http, base_url):
    session = create()
    link_code = session["code"].replace("-", "")

    for url in (f"{base_url}/join/s000000000", f"{base_url}/support/{link_code}-wrongtoken00",
                f"{base_url}/support/{link_code}"):
        response = http.get(url)
        assert response.status_code == 404
        assert response.headers["Content-Type"].startswith("text/html")
    assert http.post(f"{base_url}/support/{link_code}-wrongtoken00", data={"action": "connect"}).status_code == 404


def test_webclient_link_leads_to_the_supporter_page(create, http):
    session = create()

    response = http.get(session["webclient_supporter_link"])

    assert response.status_code == 200
    assert response.url == session["supporter_link"]


def test_customer_starting_quicksupport_marks_the_session_online(call, create, http):
    session = create(waiting_message="A technician will join shortly")
    page = http.get(session["end_customer_link"])
    assert "Start QuickSupport (simulated)" in page.text

    response = http.post(session["end_customer_link"], data={"action": "start"}, allow_redirects=False)

    assert response.status_code == 303
    assert call("GET", f"/sessions/{session['code']}").json()["online"] is True
    page = http.get(session["end_customer_link"])
    assert "Waiting for your supporter…" in page.text
    assert "A technician will join shortly" in page.text


def test_customer_quitting_quicksupport_ends_the_connection_and_goes_offline(call, create, http):
    session = create()
    http.post(session["end_customer_link"], data={"action": "start"})
    http.post(session["supporter_link"], data={"action": "connect"})

    page = http.post(session["end_customer_link"], data={"action": "quit"})

    assert "Start QuickSupport (simulated)" in page.text
    assert call("GET", f"/sessions/{session['code']}").json()["online"] is False
    [record] = call("GET", "/reports/connections", params={"session_code": session["code"]}).json()["records"]
    assert "end_date" in record


def test_supporter_cannot_connect_before_the_customer_opens_the_link(call, create, http):
    session = create()
    assert "has not opened their link yet" in http.get(session["supporter_link"]).text

    response = http.post(session["supporter_link"], data={"action": "connect"})

    assert "has not opened their link yet" in response.text
    assert call("GET", "/reports/connections", params={"session_code": session["code"]}).json() == {"records": []}


def test_connect_and_disconnect_produce_a_connection_report(call, create, http):
    session = create(description="Ticket #7", end_customer={"name": "Jo"}, custom_api='{"ticket_id":"7"}')
    http.post(session["end_customer_link"], data={"action": "start"})

    connected = http.post(session["supporter_link"], data={"action": "connect"})

    assert "Connected to the customer" in connected.text
    assert "Your supporter is connected." in http.get(session["end_customer_link"]).text
    running = call("GET", "/reports/connections", params={"session_code": session["code"]}).json()["records"]
    assert len(running) == 1 and "end_date" not in running[0]

    http.post(session["supporter_link"], data={"action": "disconnect"})

    report = call("GET", "/reports/connections", params={"session_code": session["code"]}).json()
    assert "next_offset" not in report
    [record] = report["records"]
    assert uuid.UUID(record["id"])
    assert record["session_code"] == session["code"]
    assert record["userid"] == "u1234567"
    assert record["username"] == "Sandbox Supporter"
    assert record["devicename"] == "SANDBOX-PC"
    assert record["deviceid"].startswith("d")
    assert record["groupid"] == session["groupid"]
    assert record["support_session_type"] == 2
    assert record["session_note"] == "Ticket #7"
    assert record["custom_api"] == '{"ticket_id":"7"}'
    assert record["end_customer"] == {"name": "Jo"}
    assert record["session_created_at"] == session["created_at"]
    assert record["valid_until"] == session["valid_until"]
    assert parse(record["start_date"]) <= parse(record["end_date"])
    assert "Waiting for your supporter…" in http.get(session["end_customer_link"]).text


def test_closing_ends_a_running_connection(call, create, http):
    session = create()
    http.post(session["end_customer_link"], data={"action": "start"})
    http.post(session["supporter_link"], data={"action": "connect"})

    call("PUT", f"/sessions/{session['code']}", json={"state": "closed"})

    [record] = call("GET", "/reports/connections", params={"session_code": session["code"]}).json()["records"]
    assert DATE_RE.match(record["end_date"])


def test_report_pages_until_next_offset_is_absent_and_filters_dates(call, create, http):
    sessions = [create() for _ in range(4)]
    for session in sessions:
        http.post(session["end_customer_link"], data={"action": "start"})
        for _ in range(2):
            http.post(session["supporter_link"], data={"action": "connect"})
            http.post(session["supporter_link"], data={"action": "disconnect"})
    groupid = sessions[0]["groupid"]

    pages, params = [], {"groupid": groupid}
    while True:
        page = call("GET", "/reports/connections", params=params).json()
        pages.append(page)
        if "next_offset" not in page:
            break
        assert page["next_offset"] == page["records"][-1]["id"]
        params["offset_id"] = page["next_offset"]

    records = [record for page in pages for record in page["records"]]
    assert [len(page["records"]) for page in pages] == [3, 3, 2]
    assert [page.get("records_remaining") for page in pages] == [5, 2, None]
    assert len({record["id"] for record in records}) == 8
    assert [record["session_code"] for record in records] == [s["code"] for s in sessions for _ in range(2)]
    start = records[0]["start_date"]
    in_range = call("GET", "/reports/connections", params={"groupid": groupid, "from_date": start}).json()
    assert in_range["records"][0]["id"] == records[0]["id"]
    before = call("GET", "/reports/connections", params={"groupid": groupid, "to_date": start}).json()
    assert before == {"records": []}
    assert call("GET", "/reports/connections", params={"from_date": "yesterday"}).status_code == 400


def test_expired_sessions_stay_open_in_the_api_but_their_links_say_expired():
    app = create_sandbox_app()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with freeze_time("2024-04-16T20:40:38Z") as frozen:
        session = client.post("/api/v1/sessions", json={"groupname": "Helpdesk"}, headers=headers).json
        assert session["valid_until"] == "2024-04-17T20:40:38Z"
        join = session["end_customer_link"].removeprefix("http://localhost")
        support = session["supporter_link"].removeprefix("http://localhost")

        frozen.tick(dt.timedelta(hours=24))

        assert "This link has expired." in client.get(join).text
        assert "This link has expired." in client.get(support).text
        client.post(join, data={"action": "start"})
        assert client.get(f"/api/v1/sessions/{session['code']}", headers=headers).json["online"] is False
        listed = client.get("/api/v1/sessions", headers=headers).json["sessions"]
        assert [(s["code"], s["state"]) for s in listed] == [(session["code"], "Open")]


def test_links_include_the_mount_prefix(http):
    app = DispatcherMiddleware(NotFound(), {"/sandbox": create_sandbox_app()})
    with serve(app) as url:
        response = http.post(f"{url}/sandbox/api/v1/sessions", json={"groupname": "Helpdesk"},
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        session = response.json()
        customer_page = http.get(session["end_customer_link"])
        started = http.post(session["end_customer_link"], data={"action": "start"})

    assert response.headers["Location"] == f"{url}/sandbox/api/v1/sessions/{session['code']}"
    for key in ("end_customer_link", "supporter_link", "webclient_supporter_link"):
        assert session[key].startswith(f"{url}/sandbox/")
    assert customer_page.status_code == 200
    assert "/sandbox/static/tvwidget-sandbox.css" in customer_page.text
    assert started.url == session["end_customer_link"]
