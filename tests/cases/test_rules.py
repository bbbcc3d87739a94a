"""The case rules, called directly (no HTTP view in between): one case a ticket, stop, replace, expiry, the guard.

Each test runs ``tvwidget.cases.lifecycle`` inside an app context, on SQLite
and PostgreSQL, against the TeamViewer sandbox over real HTTP; what reached
TeamViewer is read back from the sandbox's own API.
"""
import json
import re
import uuid
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from tvwidget.cases import lifecycle
from tvwidget.extensions import db
from tvwidget.host.tokens import Agent, TicketData, save_ticket
from tvwidget.storage.models import AuditEvent, CaseState, Comment, EmailMessage, ServiceCase, Ticket, utcnow

from ..conftest import SANDBOX_TOKEN, connect, free_port

AGENT = Agent(id="agent-1", name="Alex Agent", email="alex@helpdesk.example", role="agent", locale="en",
              tz="Asia/Tokyo")
TICKET = TicketData(id="T-100", subject="Printer offline", requester_name="Riley Requester",
                    requester_email="riley@customer.example", category="Printer")


def _key() -> str:
    return str(uuid.uuid4())


def _remote(sandbox_url: str, code: str) -> dict:
    """Return the session as the sandbox's API shows it (over HTTP, like TeamViewer)."""
    response = requests.get(f"{sandbox_url}/sessions/{code}", timeout=5,
                            headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"})
    response.raise_for_status()
    return response.json()


def _remote_cases(sandbox_url: str, keys: set[str]) -> list[dict]:
    """Return the sandbox's sessions whose ``custom_api`` names one of ``keys`` (a play's idempotency key)."""
    found, params = [], {"state": "open,closed", "full_list": "true"}
    while True:
        page = requests.get(f"{sandbox_url}/sessions", params=params, timeout=5,
                            headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}).json()
        found += [s for s in page["sessions"] if json.loads(s.get("custom_api") or "{}").get("case") in keys]
        if "next_offset" not in page:
            return found
        params["offset"] = page["next_offset"]


def _close_remote(sandbox_url: str, code: str) -> None:
    """Close a session at the sandbox (tidying up what a test leaves open there)."""
    requests.put(f"{sandbox_url}/sessions/{code}", json={"state": "closed"}, timeout=5,
                 headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}).raise_for_status()


@pytest.fixture
def ctx(app):
    """An app context on a connected app with the ticket saved, as a launch leaves it."""
    connect(app)
    with app.app_context():
        save_ticket(TICKET)
        db.session.commit()
        yield app


def _cases() -> list[ServiceCase]:
    db.session.expire_all()
    return db.session.scalars(sa.select(ServiceCase).order_by(ServiceCase.id)).all()


def _kinds() -> list[str]:
    return db.session.scalars(sa.select(AuditEvent.kind).order_by(AuditEvent.id)).all()


def test_play_creates_exactly_one_case_and_a_second_play_gets_the_same_one(ctx, sandbox_url):
    first_key, second_key = _key(), _key()
    case, created = lifecycle.start_case(TICKET.id, AGENT, first_key)
    assert created is True
    assert case.state == CaseState.OPEN and re.fullmatch(r"s\d{2,3}-\d{3}-\d{3}", case.code)
    assert case.opened_by_id == AGENT.id and case.ticket_category == "Printer"
    assert case.valid_until > utcnow()
    assert lifecycle.valid_case(TICKET.id).id == case.id
    # The invitation is queued with the case, and the audit trail records the play.
    assert db.session.scalar(sa.select(EmailMessage.case_id)) == case.id
    assert _kinds() == ["case_opened"]

    again, created = lifecycle.start_case(TICKET.id, AGENT, second_key)  # another press, another window
    assert created is False and again.id == case.id
    assert [(c.id, c.state) for c in _cases()] == [(case.id, CaseState.OPEN)]
    remote = _remote_cases(sandbox_url, {first_key, second_key})
    assert [s["code"] for s in remote] == [case.code]  # TeamViewer was asked once
    lifecycle.stop_case(TICKET.id, AGENT)


def test_the_database_refuses_a_second_active_case_for_a_ticket(ctx):
    case, _ = lifecycle.start_case(TICKET.id, AGENT, _key())
    db.session.add(ServiceCase(ticket_id=TICKET.id, state=CaseState.CREATING, idempotency_key=_key(),
                               opened_at=utcnow(), opened_by_id="agent-2", opened_by_name="Kim"))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()
    assert [c.id for c in _cases()] == [case.id]
    lifecycle.stop_case(TICKET.id, AGENT)


def test_stop_closes_the_case_and_comments_start_end_and_duration(ctx, sandbox_url):
    case, _ = lifecycle.start_case(TICKET.id, AGENT, _key())
    stopped = lifecycle.stop_case(TICKET.id, AGENT, note="Replaced the toner.\x07", outcome="resolved")
    assert stopped.id == case.id and stopped.state == CaseState.CLOSED
    assert stopped.closed_by_id == AGENT.id and stopped.closed_at >= stopped.opened_at
    assert stopped.note == "Replaced the toner." and stopped.outcome == "resolved"
    assert lifecycle.active_case(TICKET.id) is None
    assert _remote(sandbox_url, case.code)["state"] == "Closed"

    comment = db.session.scalar(sa.select(Comment).where(Comment.case_id == case.id))
    assert comment.kind == "closed" and comment.author_name == AGENT.name
    lines = comment.body.splitlines()
    assert lines[0] == f"TeamViewer service case {case.code} closed by {AGENT.name}."
    # Times in the agent's zone, named; the duration from the whole seconds shown beside it.
    start = re.fullmatch(r"Start: (.+) \(Asia/Tokyo\)", lines[1])
    end = re.fullmatch(r"End: (.+) \(Asia/Tokyo\)", lines[2])
    assert start and end
    seconds = int((stopped.closed_at.replace(microsecond=0) - stopped.opened_at.replace(microsecond=0))
                  .total_seconds())
    assert lines[3] == f"Duration: {seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    assert "Outcome: Resolved" in lines and "Note: Replaced the toner." in lines
    assert _kinds() == ["case_opened", "case_closed"]

    with pytest.raises(lifecycle.CaseError) as gone:  # a second stop (another window) finds nothing
        lifecycle.stop_case(TICKET.id, AGENT)
    assert gone.value.kind == "gone"


def test_replace_closes_the_old_case_and_opens_a_new_one(ctx, sandbox_url):
    old, _ = lifecycle.start_case(TICKET.id, AGENT, _key())
    old_id, old_code = old.id, old.code
    new, created = lifecycle.replace_case(TICKET.id, AGENT, old_code, _key())
    assert created is True and new.id != old_id and new.code != old_code
    assert {(c.id, c.state) for c in _cases()} == {(old_id, CaseState.CLOSED), (new.id, CaseState.OPEN)}
    assert lifecycle.active_case(TICKET.id).id == new.id
    assert _remote(sandbox_url, old_code)["state"] == "Closed"
    assert _remote(sandbox_url, new.code)["state"] == "Open"
    comment = db.session.scalar(sa.select(Comment.body).where(Comment.case_id == old_id))
    assert comment.startswith(f"TeamViewer service case {old_code} closed by {AGENT.name}.")
    assert db.session.scalars(sa.select(EmailMessage.case_id).order_by(EmailMessage.id)).all() == [old_id, new.id]
    assert _kinds() == ["case_opened", "case_closed", "case_opened", "case_replaced"]

    with pytest.raises(lifecycle.CaseError) as stale:  # the old code (a stale window) replaces nothing
        lifecycle.replace_case(TICKET.id, AGENT, old_code, _key())
    assert stale.value.kind == "gone"
    lifecycle.stop_case(TICKET.id, AGENT)


def test_an_expired_case_no_longer_holds_the_ticket(ctx, sandbox_url):
    case, _ = lifecycle.start_case(TICKET.id, AGENT, _key())
    code = case.code
    assert lifecycle.valid_case(TICKET.id, utcnow() + timedelta(days=2)) is None  # past its validity
    # TeamViewer's validity runs out: the case is past valid_until from now on.
    case.valid_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert lifecycle.valid_case(TICKET.id) is None
    assert lifecycle.expire_overdue() == 1
    db.session.commit()
    assert lifecycle.expire_overdue() == 0  # recorded once
    assert [c.state for c in _cases()] == [CaseState.EXPIRED]
    comment = db.session.scalar(sa.select(Comment).where(Comment.case_id == case.id))
    assert comment.kind == "expired"
    assert comment.body.startswith(f"TeamViewer service case {code} expired without being stopped.")

    lifecycle.close_ticket(TICKET.id)  # the guard lets the ticket close
    db.session.commit()
    assert db.session.get(Ticket, TICKET.id).status == "closed"
    fresh, created = lifecycle.start_case(TICKET.id, AGENT, _key())  # and a new play may take the slot
    assert created and fresh.id != case.id
    lifecycle.stop_case(TICKET.id, AGENT)
    _close_remote(sandbox_url, code)


def test_stop_of_an_overdue_case_records_its_expiry_instead(ctx, sandbox_url):
    case, _ = lifecycle.start_case(TICKET.id, AGENT, _key())
    code = case.code
    case.valid_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    with pytest.raises(lifecycle.CaseError) as expired:
        lifecycle.stop_case(TICKET.id, AGENT)
    assert expired.value.kind == "expired"
    assert [c.state for c in _cases()] == [CaseState.EXPIRED]
    assert _kinds() == ["case_opened", "case_expired"]
    _close_remote(sandbox_url, code)


def test_the_guard_refuses_to_close_a_ticket_with_an_active_case_and_allows_it_after_stop(ctx):
    lifecycle.close_ticket("T-never-seen")  # a ticket without a case closes (and is recorded)
    db.session.commit()
    assert db.session.get(Ticket, "T-never-seen").status == "closed"

    case, _ = lifecycle.start_case(TICKET.id, AGENT, _key())
    with pytest.raises(lifecycle.ActiveServiceCase) as refused:
        lifecycle.ensure_ticket_can_close(TICKET.id)
    assert refused.value.case.id == case.id
    with pytest.raises(lifecycle.ActiveServiceCase):
        lifecycle.close_ticket(TICKET.id)
    db.session.rollback()
    assert db.session.get(Ticket, TICKET.id).status != "closed"

    lifecycle.stop_case(TICKET.id, AGENT)
    lifecycle.ensure_ticket_can_close(TICKET.id)
    lifecycle.close_ticket(TICKET.id)
    db.session.commit()
    ticket = db.session.get(Ticket, TICKET.id)
    assert ticket.status == "closed" and ticket.closed_at is not None


@pytest.mark.parametrize("failure", ["refused", "unreachable"])
def test_a_teamviewer_failure_leaves_no_half_made_case(app_factory, sandbox_url, failure):
    """TeamViewer refuses the create (a token without the permission) or cannot be reached at all."""
    if failure == "refused":
        app = app_factory()
        connect(app, token="sandbox-noperm-token-1234")
    else:
        app = app_factory(TEAMVIEWER_API_URL=f"http://127.0.0.1:{free_port()}/api/v1", TEAMVIEWER_RETRIES=0)
        connect(app)
    key = _key()
    with app.app_context():
        save_ticket(TICKET)
        db.session.commit()
        with pytest.raises(lifecycle.CaseError) as failed:
            lifecycle.start_case(TICKET.id, AGENT, key)
        assert failed.value.kind == {"refused": "permission", "unreachable": "unavailable"}[failure]
        # The claim is settled as failed: nothing holds the ticket, nothing was announced or queued.
        assert [c.state for c in _cases()] == [CaseState.FAILED]
        assert lifecycle.active_case(TICKET.id) is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Comment)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(EmailMessage)) == 0
        assert _kinds() == ["case_failed"]
        lifecycle.close_ticket(TICKET.id)  # the guard does not count it
        db.session.rollback()
    assert _remote_cases(sandbox_url, {key}) == []
