"""Naughty and generated input in every field the outside world fills never causes a 500."""
import json
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import HOST_API_KEY, make_token, ticket_claim

API = {"Authorization": f"Bearer {HOST_API_KEY}"}
NAUGHTY = json.loads((Path(__file__).parent / "data" / "blns.json").read_text(encoding="utf-8"))
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def test_naughty_ticket_fields_in_launch_tokens_render_inert(connected_app, client):
    for text in NAUGHTY:
        ticket = ticket_claim(subject=text, category=text[:100], requester={"name": text, "email": text})
        response = client.get("/embed/widget", query_string={"token": make_token(ticket=ticket)})
        assert response.status_code == 200, text
        assert "<script>alert" not in response.text


def test_naughty_ticket_ids_in_the_host_api(client):
    for text in NAUGHTY:
        path = quote(text, safe="") or "%20"
        for method, url in (("PUT", f"/api/v1/tickets/{path}"), ("GET", f"/api/v1/tickets/{path}/service-case"),
                            ("POST", f"/api/v1/tickets/{path}/close"), ("GET", f"/api/v1/tickets/{path}/comments")):
            response = client.open(url, method=method, headers=API, json={"subject": text})
            assert response.status_code < 500, (method, text)
            assert response.is_json, (method, text)


def test_naughty_report_parameters(client):
    for text in NAUGHTY:
        response = client.get("/api/v1/reports/teamviewer-sessions", headers=API,
                              query_string={"from": text, "to": text, "technician": text})
        assert response.status_code in (200, 400), text


def test_naughty_widget_form_values(connected_app, launch):
    widget = launch()
    for text in NAUGHTY[:120]:
        response = widget.post("play", {"idempotency_key": text, "ticket_id": text})
        assert response.status_code < 500, text
        widget.stop()


@FUZZ
@given(body=st.dictionaries(st.sampled_from(["subject", "requester", "category", "type", "priority", "source",
                                             "status", "id"]),
                            st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                                         lambda inner: st.lists(inner, max_size=3)
                                         | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)))
def test_generated_ticket_bodies_never_cause_a_500(client, body):
    response = client.put("/api/v1/tickets/T-FUZZ", headers=API, json=body)
    assert response.status_code in (200, 400)


@FUZZ
@given(claims=st.dictionaries(st.sampled_from(["sub", "name", "email", "role", "locale", "tz", "jti", "ticket"]),
                              st.none() | st.booleans() | st.integers() | st.text() | st.lists(st.text(), max_size=2)))
def test_generated_launch_claims_never_cause_a_500(client, claims):
    response = client.get("/embed/widget", query_string={"token": make_token(**claims)})
    assert response.status_code in (200, 401), claims
    assert "Traceback" not in response.text


@pytest.mark.parametrize("size", [70 * 1024, 1024 * 1024])
def test_oversized_bodies_are_refused(client, size):
    response = client.put("/api/v1/tickets/T-1", headers=API, data="x" * size, content_type="application/json")
    assert response.status_code == 413
