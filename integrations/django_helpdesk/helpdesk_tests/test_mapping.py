"""Field mapping (SPEC H3): django-helpdesk's ticket and user as tvwidget's host contract describes them."""
import jwt
import pytest
from django.contrib.auth import get_user_model
from django.utils import translation
from helpdesk.models import CustomField, FollowUp, Ticket, TicketCustomFieldValue

from tvwidget_helpdesk import mapping
from tvwidget_helpdesk.views import launch_token

from .conftest import EMBED_SECRET


@pytest.mark.parametrize("priority, label", [(1, "Urgent"), (2, "High"), (3, "Medium"), (4, "Low"), (5, "Low")])
def test_priority_map_default(make_ticket, priority, label):
    assert mapping.ticket_claim(make_ticket(priority=priority))["priority"] == label


def test_priority_map_is_a_setting(make_ticket, settings):
    settings.TVWIDGET_PRIORITY_MAP = {1: "P1", 2: "P2", 3: "P3", 4: "P4", 5: "P5"}
    assert mapping.ticket_claim(make_ticket(priority=5))["priority"] == "P5"


@pytest.mark.parametrize("status, key", [(Ticket.OPEN_STATUS, "open"), (Ticket.REOPENED_STATUS, "reopened"),
                                         (Ticket.RESOLVED_STATUS, "resolved"), (Ticket.CLOSED_STATUS, "closed"),
                                         (Ticket.DUPLICATE_STATUS, "duplicate")])
def test_status_keys_are_fixed_not_translated(make_ticket, status, key):
    ticket = make_ticket(status=status)
    with translation.override("de"):  # django-helpdesk translates its labels; the keys stay
        assert mapping.ticket_claim(ticket)["status"] == key


def test_ticket_fields(make_ticket, queue):
    get_user_model().objects.create_user("john", "John.Doe@example.com", first_name="John", last_name="Doe")
    ticket = make_ticket(title="Outlook crashes on start", submitter_email="john.doe@example.com")
    claim = mapping.ticket_claim(ticket)
    assert claim["id"] == str(ticket.pk) and isinstance(claim["id"], str)
    assert claim["subject"] == "Outlook crashes on start" and claim["category"] == queue.title == "PC"
    assert claim["requester"] == {"name": "John Doe", "email": "john.doe@example.com"}
    assert claim["type"] is None


def test_requester_without_account_has_no_name(make_ticket):
    assert mapping.ticket_claim(make_ticket(submitter_email="nobody@example.com"))["requester"]["name"] == ""


def test_type_from_a_custom_field(make_ticket, settings):
    settings.TVWIDGET_TYPE_FIELD = "ticket_type"
    field = CustomField.objects.create(name="ticket_type", label="Type", data_type="varchar", max_length=50)
    ticket = make_ticket()
    TicketCustomFieldValue.objects.create(ticket=ticket, field=field, value="Incident")
    assert mapping.ticket_claim(ticket)["type"] == "Incident"


def test_source_email_portal_or_technician(make_ticket, agent):
    by_mail, by_agent, by_portal = make_ticket(), make_ticket(), make_ticket()
    FollowUp.objects.create(ticket=by_mail, title="in", message_id="<abc@mail.example>")
    FollowUp.objects.create(ticket=by_agent, title="opened", user=agent)
    FollowUp.objects.create(ticket=by_portal, title="opened")
    assert [mapping.source(t) for t in (by_mail, by_agent, by_portal)] == ["Email", "Technician portal",
                                                                           "User portal"]


def test_agent_claims_sub_is_the_primary_key_as_a_string_and_role_from_superuser(agent, db):
    claims = mapping.agent_claims(agent)
    assert claims["sub"] == str(agent.pk) and claims["role"] == "agent"
    assert claims["name"] == "Alex Morgan" and claims["email"] == "alex.morgan@helpdesk.example"
    root = get_user_model().objects.create_superuser("root", "root@x.example", "pw")
    assert mapping.agent_claims(root)["role"] == "admin" and mapping.agent_claims(root)["name"] == "root"


def test_locale_follows_the_request_language(agent):
    with translation.override("ja"):
        assert mapping.agent_claims(agent)["locale"] == "ja"
    with translation.override("de"):
        assert mapping.agent_claims(agent)["locale"] == "en"


def test_launch_token_carries_the_mapping(make_ticket, agent):
    ticket = make_ticket(priority=1)
    claims = jwt.decode(launch_token(agent, ticket), EMBED_SECRET, algorithms=["HS256"], audience="tvwidget")
    assert claims["sub"] == str(agent.pk) and claims["ticket"]["id"] == str(ticket.pk)
    assert claims["ticket"]["priority"] == "Urgent" and claims["exp"] - claims["iat"] <= 3600 and claims["jti"]
