"""Naughty and generated input in every field the outside world fills never causes a 500."""
import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ..conftest import HOST_API_KEY, make_token, ticket_claim
from ..helpers import csrf

API = {"Authorization": f"Bearer {HOST_API_KEY}"}
NAUGHTY = json.loads((Path(__file__).resolve().parents[1] / "data" / "blns.json").read_text(encoding="utf-8"))
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


def _reflected_raw(text: str, page: str) -> bool:
    """Whether ``text`` holding markup came back unescaped."""
    return bool(re.search(r"<[a-zA-Z/!]", text)) and text in page


def test_naughty_admin_fields_and_filters(app, client):
    """Checklist 34: every admin form field and filter; never a 500, markup always comes back escaped."""
    client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None)})
    token = {"csrf_token": csrf(client.get("/embed/admin/settings"))}
    tried = 0
    for text in NAUGHTY:
        answers = [
            client.post("/embed/admin/settings", data=token | {"script_token": text, "group_name": text}),
            client.post("/embed/admin/email-template", query_string={"lang": "en"},
                        data=token | {"subject": text, "body": text}),
            client.post("/embed/admin/email-template/preview", query_string={"lang": "en"},
                        data=token | {"subject": text, "body": text}, headers={"HX-Request": "true"}),
            client.get("/embed/admin/audit", query_string={"kind": text, "agent": text, "ticket": text,
                                                           "date_from": text, "date_to": text, "page": text}),
            client.get("/embed/admin/reports/teamviewer-sessions",
                       query_string={"from": text, "to": text, "technician": text}),
            client.get("/embed/admin/email-template", query_string={"lang": text}),
        ]
        for answer in answers:
            assert answer.status_code < 500, (answer.request.path, text)
            assert not _reflected_raw(text, answer.get_data(as_text=True)), (answer.request.path, text)
            tried += 1
    assert tried == 6 * len(NAUGHTY)


def test_naughty_widget_note_outcome_code_and_page(connected_app, launch):
    widget = launch()
    widget.play()
    credential = {"X-TVWidget-Credential": widget.credential, "HX-Request": "true"}
    for text in NAUGHTY:
        answers = [
            widget.client.post("/embed/widget/stop", data={"note": text, "outcome": text + "!"},
                               headers=credential | {"Sec-Fetch-Site": "same-origin"}),
            widget.client.post("/embed/widget/replace", data={"code": text, "idempotency_key": text},
                               headers=credential | {"Sec-Fetch-Site": "same-origin"}),
            widget.client.get("/embed/widget/status", query_string={"code": text}, headers=credential),
        ]
        for answer in answers:
            assert answer.status_code < 500, (answer.request.path, text)
            assert not _reflected_raw(text, answer.get_data(as_text=True)), (answer.request.path, text)
        assert answers[0].status_code == 422  # no outcome is "…!": the form comes back with the note
    assert widget.client.get("/embed/widget/panel", headers=credential).status_code == 200


def test_naughty_history_pages(connected_app, launch):
    widget = launch()
    for text in NAUGHTY:
        answer = widget.client.get("/embed/widget/history", query_string={"page": text},
                                   headers={"X-TVWidget-Credential": widget.credential, "HX-Request": "true"})
        assert answer.status_code == 200, text
        assert not _reflected_raw(text, answer.get_data(as_text=True)), text


@pytest.mark.parametrize(("path", "field"), [
    ("/embed/admin/settings", "group_name"), ("/embed/admin/email-template", "body"),
    ("/embed/widget/stop", "note"), ("/embed/widget", "token"),
])
def test_a_one_megabyte_field_is_refused(connected_app, client, launch, path, field):
    widget = launch()
    client.get("/embed/admin", query_string={"token": make_token(role="admin", ticket=None)})
    response = client.post(path, data={field: "x" * (1024 * 1024)},
                           headers={"X-TVWidget-Credential": widget.credential, "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 413
