"""The close guard on every path django-helpdesk closes a ticket by (SPEC H3), against tvwidget as a real
server on loopback: a case is opened through tvwidget's own widget over HTTP, the helpdesk's close is
refused with tvwidget's message where the person acted, nothing changes, and after stop the close goes through.
"""
import json

import pytest
from bs4 import BeautifulSoup
from django.contrib.messages import get_messages
from django.core import mail
from helpdesk.models import FollowUp, Ticket

from tvwidget_helpdesk.guard import CloseRefused

OPEN, RESOLVED, CLOSED, DUPLICATE = (Ticket.OPEN_STATUS, Ticket.RESOLVED_STATUS, Ticket.CLOSED_STATUS,
                                     Ticket.DUPLICATE_STATUS)


def form_data(html: str, selector: str) -> dict:
    """The fields a browser would submit from the form ``selector`` of ``html`` (as rendered)."""
    form = BeautifulSoup(html, "html.parser").select_one(selector)
    assert form is not None, f"no {selector} in the page"
    data = {}
    for field in form.select("input[name], select[name], textarea[name]"):
        name, kind = field["name"], field.get("type", "")
        if field.name == "select":
            chosen = field.select_one("option[selected]") or field.select_one("option")
            data[name] = chosen.get("value", "") if chosen else ""
        elif field.name == "textarea":
            data[name] = field.text
        elif kind in ("checkbox", "radio"):
            if field.has_attr("checked"):
                data[name] = field.get("value", "on")
        elif kind not in ("file", "submit", "button"):
            data[name] = field.get("value", "")
    return data


def page_messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def status_of(ticket) -> int:
    return Ticket.objects.get(pk=ticket.pk).status


@pytest.fixture
def staff_client(client, agent):
    client.force_login(agent)
    return client


@pytest.fixture
def superuser(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", "root@helpdesk.example", "pw-root-123")


# 1. the respond form on the ticket page
def test_respond_form_close_is_refused_with_the_message_on_the_ticket_page_then_allowed_after_stop(
        staff_client, agent, make_ticket, open_case):
    ticket = make_ticket()
    widget = open_case(ticket, agent)
    page = staff_client.get(f"/tickets/{ticket.pk}/")
    data = form_data(page.content.decode(), "#ticket-respond-form") | {"new_status": str(CLOSED),
                                                                       "comment": "Fixed, closing."}
    followups = FollowUp.objects.filter(ticket=ticket).count()

    refused = staff_client.post(f"/tickets/{ticket.pk}/update/", data,
                                HTTP_REFERER=f"http://testserver/tickets/{ticket.pk}/")

    assert refused.status_code == 302 and refused["Location"] == f"http://testserver/tickets/{ticket.pk}/"
    shown = staff_client.get(refused["Location"]).content.decode()
    assert widget.code() in shown and "cannot be closed" in shown  # django-helpdesk's messages area
    assert "it is back in the Respond form" in shown  # the reply typed with the close is kept ...
    assert '<script id="tvwidget-helpdesk-reply" type="application/json">"Fixed, closing."</script>' in shown
    assert '<script id="tvwidget-helpdesk-reply"' not in staff_client.get(refused["Location"]).content.decode()  # once
    assert status_of(ticket) == OPEN
    assert FollowUp.objects.filter(ticket=ticket).count() == followups and not mail.outbox

    widget.stop()
    allowed = staff_client.post(f"/tickets/{ticket.pk}/update/", data)
    assert allowed.status_code == 302 and status_of(ticket) == CLOSED
    assert not any("cannot be closed" in text for text in page_messages(allowed))


def test_respond_form_resolve_is_refused_too(staff_client, agent, make_ticket, open_case):
    ticket = make_ticket()
    open_case(ticket, agent)
    page = staff_client.get(f"/tickets/{ticket.pk}/")
    data = form_data(page.content.decode(), "#ticket-respond-form") | {"new_status": str(RESOLVED)}
    staff_client.post(f"/tickets/{ticket.pk}/update/", data)
    assert status_of(ticket) == OPEN


def test_a_reply_that_keeps_the_ticket_open_is_not_asked_about(staff_client, agent, make_ticket, open_case):
    ticket = make_ticket()
    open_case(ticket, agent)
    page = staff_client.get(f"/tickets/{ticket.pk}/")
    data = form_data(page.content.decode(), "#ticket-respond-form") | {"comment": "Connecting now."}
    response = staff_client.post(f"/tickets/{ticket.pk}/update/", data)
    assert response.status_code == 302 and status_of(ticket) == OPEN
    assert FollowUp.objects.filter(ticket=ticket, comment__contains="Connecting now.").exists()


# 2. the submitter's "accept and close" on the public ticket page
def test_submitter_accept_and_close_is_refused_on_the_public_page(client, agent, make_ticket, open_case):
    ticket = make_ticket(status=RESOLVED)  # created resolved: the agent proposed a resolution
    widget = open_case(ticket, agent)
    public = f"/view/?ticket={ticket.ticket_for_url}&email={ticket.submitter_email}&key={ticket.secret_key}"

    refused = client.get(public + "&close")

    assert refused.status_code == 302
    back = client.get(refused["Location"])
    assert back.status_code == 200 and widget.code() in back.content.decode()
    assert status_of(ticket) == RESOLVED

    widget.stop()
    client.get(public + "&close")
    assert status_of(ticket) == CLOSED


# 3. bulk close in the ticket list: all or nothing
@pytest.mark.parametrize("action", ["close", "close_public"])
def test_bulk_close_is_all_or_nothing(staff_client, agent, make_ticket, open_case, action):
    free, held = make_ticket(title="No case here"), make_ticket(title="Case open")
    widget = open_case(held, agent)

    refused = staff_client.post("/tickets/update/", {"ticket_id": [free.pk, held.pk], "action": action},
                                HTTP_REFERER="http://testserver/tickets/")

    assert refused.status_code == 302 and refused["Location"] == "http://testserver/tickets/"
    assert any(widget.code() in text for text in page_messages(refused))
    assert (status_of(free), status_of(held)) == (OPEN, OPEN)
    assert not FollowUp.objects.filter(title__contains="bulk").exists() and not mail.outbox

    widget.stop()
    staff_client.post("/tickets/update/", {"ticket_id": [free.pk, held.pk], "action": action})
    assert (status_of(free), status_of(held)) == (CLOSED, CLOSED)


# 4. merge: the others become Duplicate
def test_merge_is_all_or_nothing(staff_client, agent, make_ticket, open_case):
    chosen, other = make_ticket(title="Keep me"), make_ticket(title="Merge me", priority=1)
    widget = open_case(other, agent)
    url = f"/tickets/merge?tickets={chosen.pk}&tickets={other.pk}"
    post = {"chosen_ticket": chosen.pk, "priority": other.pk}  # keep the other ticket's priority

    refused = staff_client.post(url, post, HTTP_REFERER=f"http://testserver{url}")

    assert refused.status_code == 302 and any(widget.code() in text for text in page_messages(refused))
    other.refresh_from_db()
    chosen.refresh_from_db()
    assert other.status == OPEN and other.merged_to is None and chosen.priority == 2 and not mail.outbox

    widget.stop()
    staff_client.post(url, post)
    other.refresh_from_db()
    assert other.status == DUPLICATE and other.merged_to_id == chosen.pk


# 5. the kanban board's drag: JSON 409
def test_kanban_drag_gets_json_409(staff_client, agent, make_ticket, open_case):
    ticket = make_ticket()
    widget = open_case(ticket, agent)

    refused = staff_client.post(f"/tickets/{ticket.pk}/kanban-update/", json.dumps({"status": CLOSED}),
                                content_type="application/json")

    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "active_service_case" and widget.code() in body["error"]  # the board's toast
    assert body["service_case"]["code"] == widget.code()
    assert status_of(ticket) == OPEN

    widget.stop()
    allowed = staff_client.post(f"/tickets/{ticket.pk}/kanban-update/", json.dumps({"status": CLOSED}),
                                content_type="application/json")
    assert allowed.status_code == 200 and status_of(ticket) == CLOSED


# 6. the REST API: PATCH a ticket, or POST a follow-up with a new status
def test_rest_api_ticket_patch_gets_409(client, superuser, agent, make_ticket, open_case):
    client.force_login(superuser)
    ticket = make_ticket()
    widget = open_case(ticket, agent)

    refused = client.patch(f"/api/tickets/{ticket.pk}/", json.dumps({"status": CLOSED}),
                           content_type="application/json")

    assert refused.status_code == 409
    assert refused.json()["error"] == "active_service_case" and widget.code() in refused.json()["detail"]
    assert status_of(ticket) == OPEN
    widget.stop()
    assert client.patch(f"/api/tickets/{ticket.pk}/", json.dumps({"status": CLOSED}),
                        content_type="application/json").status_code == 200
    assert status_of(ticket) == CLOSED


def test_rest_api_followup_with_new_status_gets_409(client, superuser, agent, make_ticket, open_case):
    client.force_login(superuser)
    ticket = make_ticket()
    widget = open_case(ticket, agent)
    before = FollowUp.objects.filter(ticket=ticket).count()

    refused = client.post("/api/followups/", json.dumps({"ticket": ticket.pk, "comment": "done", "new_status": CLOSED}),
                          content_type="application/json")

    assert refused.status_code == 409 and widget.code() in refused.json()["detail"]
    assert status_of(ticket) == OPEN and FollowUp.objects.filter(ticket=ticket).count() == before


# 7. the Django admin's change form
def test_django_admin_change_form_is_refused_with_the_message_on_the_form(
        client, superuser, agent, make_ticket, open_case):
    client.force_login(superuser)
    ticket = make_ticket()
    widget = open_case(ticket, agent)
    change = f"/admin/helpdesk/ticket/{ticket.pk}/change/"
    data = form_data(client.get(change).content.decode(), "#ticket_form") | {"status": str(CLOSED)}

    refused = client.post(change, data, HTTP_REFERER=f"http://testserver{change}")

    assert refused.status_code == 302 and refused["Location"] == f"http://testserver{change}"
    assert widget.code() in client.get(change).content.decode()
    assert status_of(ticket) == OPEN
    widget.stop()
    assert client.post(change, data).status_code == 302 and status_of(ticket) == CLOSED


# 8. any code calling ticket.save()
def test_plain_save_raises(agent, make_ticket, open_case):
    ticket = make_ticket()
    widget = open_case(ticket, agent)
    ticket.status = CLOSED
    with pytest.raises(CloseRefused) as refused:
        ticket.save()
    assert widget.code() in str(refused.value) and status_of(ticket) == OPEN
    widget.stop()
    ticket.save()
    assert status_of(ticket) == CLOSED


def test_saving_a_ticket_that_stays_open_asks_nothing(settings, make_ticket, db):
    settings.TVWIDGET_URL = "http://127.0.0.1:9"  # nothing listens: any call would refuse
    ticket = make_ticket()
    ticket.title = "Renamed"
    ticket.save()
    FollowUp.objects.create(ticket=ticket, title="note")  # re-saves the ticket
    assert Ticket.objects.get(pk=ticket.pk).title == "Renamed"


# tvwidget unreachable: closed by default, open by a setting; either way a clear message
def test_unreachable_tvwidget_fails_closed_with_a_clear_message(settings, staff_client, make_ticket):
    settings.TVWIDGET_URL = "http://127.0.0.1:9"
    ticket = make_ticket()
    response = staff_client.post(f"/tickets/{ticket.pk}/kanban-update/", json.dumps({"status": CLOSED}),
                                 content_type="application/json")
    assert response.status_code == 409 and response.json()["code"] == "tvwidget_unavailable"
    assert "could not be reached" in response.json()["error"]
    ticket.status = CLOSED
    with pytest.raises(CloseRefused):
        ticket.save()
    assert status_of(ticket) == OPEN


def test_unreachable_tvwidget_fails_open_when_configured(settings, staff_client, make_ticket):
    settings.TVWIDGET_URL = "http://127.0.0.1:9"
    settings.TVWIDGET_FAIL_OPEN = True
    first, second = make_ticket(), make_ticket()
    response = staff_client.post("/tickets/update/", {"ticket_id": [first.pk, second.pk], "action": "close"})
    assert (status_of(first), status_of(second)) == (CLOSED, CLOSED)
    warnings = [text for text in page_messages(response) if "could not be reached" in text and "closed anyway" in text]
    assert len(warnings) == 2


def test_staff_accept_and_close_link_is_an_upstream_no_op(staff_client, make_ticket, settings):
    """django-helpdesk 2.6.1 bug (README): the staff "accept and close" link on a resolved ticket writes a
    follow-up but leaves the status; if upstream fixes it, the guard covers it like the public one."""
    settings.TVWIDGET_URL = "http://127.0.0.1:9"
    ticket = make_ticket(status=RESOLVED)
    staff_client.get(f"/tickets/{ticket.pk}/?close")
    assert status_of(ticket) == RESOLVED


def test_a_wrong_host_api_key_refuses_with_a_message_naming_the_setting(settings, tvwidget, staff_client,
                                                                       make_ticket):
    settings.TVWIDGET_HOST_API_KEY = "not-the-key-tvwidget-knows-0123456789"
    ticket = make_ticket()
    response = staff_client.post(f"/tickets/{ticket.pk}/kanban-update/", json.dumps({"status": CLOSED}),
                                 content_type="application/json")
    assert response.status_code == 409 and "TVWIDGET_HOST_API_KEY" in response.json()["error"]
    assert status_of(ticket) == OPEN


def test_tvwidget_records_the_close_once_it_is_committed(tvwidget, make_ticket,
                                                         django_capture_on_commit_callbacks):
    from tvwidget.storage.models import Ticket as TVWidgetTicket

    ticket = make_ticket()
    ticket.status = CLOSED
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        ticket.save()
    assert len(callbacks) == 1
    with tvwidget.app.app_context():
        from tvwidget.extensions import db

        recorded = db.session.get(TVWidgetTicket, str(ticket.pk))
        assert recorded is not None and recorded.status == "closed" and recorded.priority == "High"
        db.session.remove()
