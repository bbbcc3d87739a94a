"""The host API: bearer key, JSON errors, tickets, service case, guard, comments, report."""
import pytest

from tvwidget.cases import lifecycle as cases

from ..conftest import HOST_API_KEY

API = {"Authorization": f"Bearer {HOST_API_KEY}"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": HOST_API_KEY},
                                     {"Authorization": f"Basic {HOST_API_KEY}"}])
def test_missing_or_wrong_host_key_is_401_json(client, headers):
    response = client.get("/api/v1/tickets/T-1/service-case", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_put_ticket_creates_and_updates(client):
    body = {"subject": "Mail", "requester": {"name": "Ann", "email": "ann@example.com"}, "priority": "Low"}
    assert client.put("/api/v1/tickets/T-5", json=body, headers=API).status_code == 200
    assert client.put("/api/v1/tickets/T-5", json=body | {"priority": "High"}, headers=API).status_code == 200


@pytest.mark.parametrize("body, code", [
    ("not json", "invalid_json"), ([1, 2], "invalid_json"),
    ({"id": "OTHER"}, "id_mismatch"), ({"subject": {"x": 1}}, "invalid_ticket"),
    ({"requester": "ann"}, "invalid_ticket"),
])
def test_put_ticket_rejects_malformed_bodies(client, body, code):
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, str) else {"json": body}
    response = client.put("/api/v1/tickets/T-5", headers=API, **kwargs)
    assert response.status_code == 400 and response.get_json()["error"] == code


def test_service_case_is_404_without_a_case(client):
    response = client.get("/api/v1/tickets/T-1/service-case", headers=API)
    assert response.status_code == 404 and response.get_json()["error"] == "no_active_case"


def test_service_case_shows_the_valid_case(connected_app, launch, client):
    widget = launch()
    widget.play()
    body = client.get("/api/v1/tickets/T-1/service-case", headers=API).get_json()
    assert body["code"] == widget.field("session-code")
    assert body["state"] == "open" and body["valid_until"].endswith("Z")
    assert body["supporter_link"] and body["end_customer_link"] and body["opened_by"]["id"] == "agent-1"


def test_close_of_unknown_ticket_is_recorded(client):
    assert client.post("/api/v1/tickets/NEW-1/close", headers=API).get_json() == {"id": "NEW-1", "status": "closed"}


def test_guard_is_a_python_function_for_blueprint_hosts(connected_app, launch):
    launch().play()
    with connected_app.app_context():
        with pytest.raises(cases.ActiveServiceCase) as raised:
            cases.ensure_ticket_can_close("T-1")
        assert raised.value.case.code
        cases.ensure_ticket_can_close("T-other")


def test_report_totals_and_breakdowns(connected_app, launch, client):
    widget = launch()
    widget.play()
    widget.stop()
    body = client.get("/api/v1/reports/teamviewer-sessions", headers=API).get_json()
    assert body["total_sessions"] == 1
    assert body["by_technician"][0] | {"total_duration_seconds": 0, "average_duration_seconds": 0} == {
        "value": "agent-1", "name": "Alex Morgan", "sessions": 1,
        "total_duration_seconds": 0, "average_duration_seconds": 0,
        "total_connected_seconds": 0, "average_connected_seconds": 0}  # no connection report yet
    assert body["by_category"][0]["value"] == "PC" and body["by_type"][0]["value"] == "Incident"
    assert body["by_priority"][0]["value"] == "High" and body["by_source"][0]["value"] == "Email"


@pytest.mark.parametrize("query, parameter", [
    ("from=yesterday", "from"), ("to=2026-13-01", "to"), ("from=2026-11-30&to=2026-11-01", "from"),
])
def test_report_rejects_bad_parameters_naming_them(client, query, parameter):
    response = client.get(f"/api/v1/reports/teamviewer-sessions?{query}", headers=API)
    assert response.status_code == 400 and response.get_json()["parameter"] == parameter


