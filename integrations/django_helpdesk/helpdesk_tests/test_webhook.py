"""The webhook receiver: signature checked through the host kit; each case's end written once as a private
follow-up attributed to the agent, even when delivered twice, replayed, or out of order."""
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from helpdesk.models import FollowUp

from tvwidget_helpdesk.models import ReceivedEvent
from tvwidget_host import signature

from .conftest import EMBED_SECRET

URL = "/tvwidget/webhook/"
COMMENT = ("TeamViewer service case s123-456-789 closed by Alex Morgan.\nStart: 3 Dec 2026, 10:00:00 (UTC)\n"
           "End: 3 Dec 2026, 10:12:30 (UTC)\nDuration: 0:12:30\nOutcome: Resolved")


def event(ticket, kind="service_case.closed", code="s123-456-789", comment=COMMENT, by=None, occurred_at=None,
          event_id=None):
    by = by or {"id": "1", "name": "Alex Morgan"}
    return {
        "id": event_id or uuid.uuid4().hex, "event": kind,
        "occurred_at": (occurred_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ticket_id": str(ticket.pk),
        "service_case": {"code": code, "state": kind.split(".")[1], "opened_by": {"id": by["id"], "name": by["name"],
                                                                                 "email": "a@x"},
                         "closed_by": by if kind == "service_case.closed" else None},
        "comment": comment if kind != "service_case.opened" else None,
    }


def deliver(client, payload, secret=EMBED_SECRET, body=None):
    body = body if body is not None else json.dumps(payload).encode()
    return client.post(URL, body, content_type="application/json",
                       HTTP_X_TVWIDGET_SIGNATURE=signature(body, secret))


@pytest.fixture
def ticket(make_ticket):
    return make_ticket()


def test_a_closed_event_becomes_one_private_followup_by_the_agent(client, ticket, agent):
    response = deliver(client, event(ticket, by={"id": str(agent.pk), "name": "Alex Morgan"}))
    assert response.status_code == 200 and response.json()["status"] == "received"
    followup = FollowUp.objects.get(ticket=ticket, title__contains="s123-456-789")
    assert followup.public is False and followup.user == agent and not followup.message_id
    assert f"{followup.title}\n{followup.comment}" == COMMENT  # headline as the title, the times below


def test_an_expired_event_is_attributed_to_the_agent_who_opened_the_case(client, ticket, agent):
    deliver(client, event(ticket, kind="service_case.expired", by={"id": str(agent.pk), "name": "Alex"},
                          comment="TeamViewer service case s123-456-789 expired without being stopped."))
    assert FollowUp.objects.get(ticket=ticket, title__contains="expired").user == agent


def test_the_same_delivery_twice_writes_once(client, ticket):
    payload = event(ticket)
    assert deliver(client, payload).json()["status"] == "received"
    again = deliver(client, payload)  # a retry: same id, same body, same signature
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert FollowUp.objects.filter(ticket=ticket, title__contains="s123-456-789").count() == 1


def test_a_second_end_event_for_the_same_case_writes_nothing(client, ticket):
    deliver(client, event(ticket))
    assert deliver(client, event(ticket)).json()["status"] == "duplicate"  # another id, same case's end
    assert FollowUp.objects.filter(ticket=ticket, title__contains="s123-456-789").count() == 1


def test_out_of_order_opened_after_closed_writes_nothing_more(client, ticket):
    deliver(client, event(ticket))
    assert deliver(client, event(ticket, kind="service_case.opened")).json()["status"] == "received"
    assert FollowUp.objects.filter(ticket=ticket, title__contains="s123-456-789").count() == 1
    assert ReceivedEvent.objects.count() == 2


def test_a_forged_signature_is_refused_and_writes_nothing(client, ticket):
    response = deliver(client, event(ticket), secret="another-secret-0123456789abcdef-0123456789")
    assert response.status_code == 401 and response.json()["error"] == "invalid_signature"
    body = json.dumps(event(ticket)).encode()
    tampered = client.post(URL, body.replace(b"Alex Morgan", b"Mallory Ma"), content_type="application/json",
                           HTTP_X_TVWIDGET_SIGNATURE=signature(body, EMBED_SECRET))
    assert tampered.status_code == 401
    missing = client.post(URL, body, content_type="application/json")
    assert missing.status_code == 401
    assert not FollowUp.objects.filter(ticket=ticket, title__contains="s123").exists()


def test_an_old_replay_is_refused(client, ticket, settings):
    settings.TVWIDGET_WEBHOOK_MAX_AGE = 3600
    response = deliver(client, event(ticket, occurred_at=datetime.now(UTC) - timedelta(hours=2)))
    assert response.status_code == 400 and response.json()["error"] == "stale_delivery"
    assert not FollowUp.objects.filter(ticket=ticket, title__contains="s123").exists()


def test_a_signed_body_that_is_not_an_event_is_a_400(client, ticket):
    assert deliver(client, None, body=b"[1, 2]").status_code == 400


def test_only_post(client):
    assert client.get(URL).status_code == 405


def test_an_event_for_a_merged_ticket_lands_on_the_ticket_it_was_merged_into(client, make_ticket):
    main, merged = make_ticket(title="main"), make_ticket(title="merged")
    merged.merged_to = main
    merged.save(update_fields=["merged_to"])
    deliver(client, event(merged))
    assert FollowUp.objects.filter(ticket=main, title__contains="s123-456-789").exists()
