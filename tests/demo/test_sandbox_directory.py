"""The sandbox's company directory, assignment checks, shared groups and "connect as", over real HTTP."""
import re
import uuid

import pytest
import requests

from tests.live import serve
from tvwidget.demo.sandbox import SANDBOX_USER, create_sandbox_app

TOKEN = "sandbox-test-token"


@pytest.fixture
def base_url():
    # Each test gets its own sandbox: the directory switch and shares are global state.
    with serve(create_sandbox_app()) as url:
        yield url


@pytest.fixture
def call(base_url):
    with requests.Session() as http:
        def call(method, path, **kwargs):
            return http.request(method, f"{base_url}/api/v1{path}", timeout=5,
                                headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)
        yield call


def test_the_directory_lists_users_fully_only_with_full_list(call):
    full = call("GET", "/users", params={"full_list": "true"}).json()["users"]
    assert {"id", "name", "email", "active", "permissions", "last_access_date"} <= set(full[0])
    assert all(re.fullmatch(r"u\d+", user["id"]) for user in full)
    emails = [user["email"] for user in full]
    assert any(email != email.lower() for email in emails)                              # mixed case
    assert any(not user["active"] for user in full)                                     # an inactive user
    assert len([e for e in emails if e.lower() == "sam.lee@helpdesk.example"]) == 2     # an ambiguous pair
    minimal = call("GET", "/users").json()["users"]
    assert [set(user) for user in minimal] == [{"id", "name"}] * len(full)              # no email


def test_users_filters_by_exact_email_with_plus_and_by_name(call):
    found = call("GET", "/users", params={"email": "kim+support@helpdesk.example", "full_list": "true"})
    assert [user["id"] for user in found.json()["users"]] == ["u2000006"]
    assert "%2B" in found.request.url  # the + travels encoded
    assert call("GET", "/users?email=kim+support@helpdesk.example").json()["users"] == []  # a raw + is a space
    both = call("GET", "/users", params={"email": "alex.morgan@helpdesk.example,kim+support@helpdesk.example"})
    assert len(both.json()["users"]) == 2
    assert [user["id"] for user in call("GET", "/users", params={"name": "sam lee"}).json()["users"]] == [
        "u2000004", "u2000005"]
    refused = call("GET", "/users", params={"page": "2"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"


def test_one_user_by_id(call):
    user = call("GET", "/users/u2000003").json()
    assert user["active"] is False and user["email"] == "chris.former@helpdesk.example"
    missing = call("GET", "/users/u9")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert call("GET", "/users/x1").status_code == 400


def test_the_switch_makes_the_directory_answer_403(base_url, call):
    assert requests.post(f"{base_url}/directory", data={"action": "forbid"}, timeout=5).status_code == 200
    for path in ("/users", "/users/u2000001"):
        refused = call("GET", path)
        assert refused.status_code == 403 and refused.json()["error"] == "invalid_permission"
    assert call("POST", "/sessions", json={"groupname": "BOSS"}).status_code == 200  # sessions still work
    requests.post(f"{base_url}/directory", data={"action": "allow"}, timeout=5)
    assert call("GET", "/users").status_code == 200


@pytest.mark.parametrize("userid, status", [
    ("u2000001", 200), ("u0", 200), ("u2000003", 400), ("u99", 400), ("alex", 400)])
def test_only_an_active_user_may_be_assigned(call, userid, status):
    created = call("POST", "/sessions", json={"groupname": "BOSS", "assigned_userid": userid})
    assert created.status_code == status, created.text
    if status == 400:
        assert "assigned_userid" in created.json()["error_description"]
    else:
        assert created.json().get("assigned_userid", "u0") == userid
    plain = call("POST", "/sessions", json={"groupname": "BOSS"}).json()
    assert plain["assigned_userid"] == SANDBOX_USER["userid"]  # unset: the token's owner
    assert call("PUT", f"/sessions/{plain['code']}", json={"assigned_userid": "u2000003"}).status_code == 400
    assert call("PUT", f"/sessions/{plain['code']}", json={"assigned_userid": "u2000002"}).status_code == 204


def test_share_group_is_pending_until_accepted(base_url, call):
    name = f"Helpdesk {uuid.uuid4().hex[:6]}"
    call("POST", "/sessions", json={"groupname": name})
    group = call("GET", "/groups", params={"name": name}).json()["groups"][0]
    shared = call("POST", f"/groups/{group['id']}/share_group",
                  json={"users": [{"userid": "u2000001", "permissions": "readwrite"}]})
    assert shared.status_code == 204
    assert call("GET", f"/groups/{group['id']}").json()["shared_with"] == [
        {"userid": "u2000001", "name": "Alex Morgan", "permissions": "readwrite", "pending": True}]
    page = requests.get(f"{base_url}/directory", timeout=5)
    assert "Accept as Alex Morgan" in page.text
    requests.post(f"{base_url}/directory", data={"action": "accept", "groupid": group["id"], "userid": "u2000001"},
                  timeout=5)
    assert "pending" not in call("GET", f"/groups/{group['id']}").json()["shared_with"][0]
    for users in ([{"userid": SANDBOX_USER["userid"], "permissions": "read"}],
                  [{"userid": "u2000003", "permissions": "read"}], [{"userid": "u2000001", "permissions": "all"}], []):
        assert call("POST", f"/groups/{group['id']}/share_group", json={"users": users}).status_code == 400
    assert call("POST", "/groups/g1/share_group", json={"users": [{"userid": "u2000001"}]}).status_code == 404


def test_the_supporter_connects_as_a_chosen_user_and_the_report_names_them(base_url, call):
    session = call("POST", "/sessions", json={"groupname": "BOSS", "assigned_userid": "u2000001"}).json()
    support = session["supporter_link"]
    page = requests.get(support, timeout=5).text
    assert re.search(r'<option value="u2000001" selected>', page)  # the assignee, by default
    link_code = session["end_customer_link"].rsplit("/", 1)[1]
    requests.post(f"{base_url}/join/{link_code}", data={"action": "start"}, timeout=5)
    requests.post(support, data={"action": "connect", "userid": "u2000006"}, timeout=5)
    requests.post(support, data={"action": "disconnect"}, timeout=5)
    records = call("GET", "/reports/connections", params={"session_code": session["code"]}).json()["records"]
    assert [(r["userid"], r["username"], r["assigned_userid"]) for r in records] == [
        ("u2000006", "Kim Park", "u2000001")]
