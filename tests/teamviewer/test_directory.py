"""Per-agent TeamViewer identity: the directory, every match, overrides, the assignment and its
fallback, sharing the group and "worked by", against a strict TeamViewer double over HTTP, on both engines."""
import csv
import io
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tvwidget.extensions import db
from tvwidget.storage.models import (
    AgentIdentity,
    AuditEvent,
    CaseState,
    Connection,
    DirectoryState,
    ServiceCase,
    utcnow,
)
from tvwidget.teamviewer import directory

from ..conftest import HOST_API_KEY, connect, open_widget, ticket_claim
from ..fake_teamviewer import OWNER, TOKEN
from ..helpers import admin_client, csrf

ADA = {"sub": "admin-1", "name": "Ada Admin"}


@pytest.fixture
def app(app_factory, teamviewer):
    app = app_factory(TEAMVIEWER_API_URL=teamviewer.url)
    connect(app, TOKEN)
    with app.app_context():
        row = db.session.get(directory.integration.IntegrationSettings, 1)
        row.account_email = OWNER["email"]
        db.session.commit()
    return app


_tickets = iter(range(1, 10_000))


def play(app, email, sub=None, name="Agent"):
    """Press play as the agent with ``email`` on a fresh ticket; return the widget."""
    number = next(_tickets)
    widget = open_widget(app, sub=sub or email, name=name, email=email, ticket=ticket_claim(f"T-{number}"))
    response = widget.play()
    assert response.status_code == 200, response.text
    return widget


def page_csrf(client, path="/embed/admin/agents"):
    page = client.get(path)
    return page, csrf(page)


def match_of(app, agent_id):
    with app.app_context():
        return directory.match_for(agent_id)


def audit(app, kind):
    with app.app_context():
        return [json.loads(e.detail) for e in db.session.scalars(sa.select(AuditEvent).where(AuditEvent.kind == kind))]


# -- matching ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("email, status, userid", [
    ("alex.morgan@helpdesk.example", "matched", "u201"),       # TeamViewer has Alex.Morgan@Helpdesk.example
    ("ALEX.MORGAN@HELPDESK.EXAMPLE", "matched", "u201"),
    ("kim+support@helpdesk.example", "matched", "u202"),       # the + stays part of the address
    ("kim@helpdesk.example", "not_found", None),
    ("chris@helpdesk.example", "inactive", None),
    ("sam@helpdesk.example", "ambiguous", None),               # two active users, one address
    ("nobody@helpdesk.example", "not_found", None),
    ("", "not_found", None),
])
def test_each_agent_gets_their_match_and_only_a_single_active_match_assigns(app, teamviewer, email, status, userid):
    widget = play(app, email, sub="agent-x")
    assert match_of(app, "agent-x").status == status
    assert teamviewer.creates[-1].get("assigned_userid") == userid
    assert widget.state() == "open" and 'role="alert"' not in widget.html


def test_widget_shows_whose_teamviewer_the_case_is_assigned_to(app, teamviewer):
    widget = play(app, "alex.morgan@helpdesk.example")
    assert "Alex Morgan" in widget.field("assignee")
    assert 'data-userid="u201"' in widget.html
    unmapped = play(app, "nobody@helpdesk.example")
    assert teamviewer.creates[-1].get("assigned_userid") is None
    assert unmapped.state() == "open"
    assert "Token Owner" in unmapped.field("assignee")  # TeamViewer gave it to the token's owner


def test_directory_is_fetched_once_per_window_and_again_after_it(app, teamviewer):
    for _ in range(5):
        play(app, "alex.morgan@helpdesk.example")
    assert teamviewer.users_hits() == 1
    assert teamviewer.posts() == 5
    with app.app_context():
        later = utcnow() + timedelta(seconds=301)
        assert directory.refresh_due(later) == {"fetched": 1, "users": len(teamviewer.users), "status": "ok"}
        assert directory.refresh_due(later + timedelta(seconds=5))["fetched"] == 0
    assert teamviewer.users_hits() == 2


def test_a_directory_change_is_seen_at_the_next_refresh(app, teamviewer):
    play(app, "robin@helpdesk.example", sub="robin")
    assert match_of(app, "robin").status == "matched"
    next(user for user in teamviewer.users if user["id"] == "u206")["active"] = False
    with app.app_context():
        directory.refresh_due(utcnow() + timedelta(minutes=6))
    assert match_of(app, "robin").status == "inactive"
    play(app, "robin@helpdesk.example", sub="robin")
    assert "assigned_userid" not in teamviewer.creates[-1]


@pytest.mark.parametrize("refusal, kind, text", [
    ("forbidden", "permission", "View users"),
    ("license", "license", "Premium or Corporate"),
    ("rate_limited", "rate_limited", "request limit"),
])
def test_a_directory_teamviewer_will_not_show_is_a_normal_backed_off_state(app, teamviewer, refusal, kind, text):
    teamviewer.directory = refusal
    widgets = [play(app, "alex.morgan@helpdesk.example") for _ in range(3)]
    assert all(w.state() == "open" and 'role="alert"' not in w.html for w in widgets)
    assert all("assigned_userid" not in body for body in teamviewer.creates)
    assert teamviewer.users_hits() == 1  # backed off: not asked again on every play
    with app.app_context():
        state = db.session.get(DirectoryState, 1)
        assert state.status == kind and state.retry_at > utcnow() + timedelta(minutes=10)
        # Still backed off after the ordinary window.
        assert directory.refresh_due(utcnow() + timedelta(minutes=6))["fetched"] == 0
    client = admin_client(app, **ADA)
    page = client.get("/embed/admin/agents")
    assert page.status_code == 200
    assert f'data-tvwidget-directory="{kind}"' in page.text and text in page.text
    assert "Service cases still open as usual" in page.text

    teamviewer.directory = "ok"  # the admin adds the permission and, a minute later, presses refresh
    with app.app_context():
        db.session.get(DirectoryState, 1).claimed_at -= timedelta(minutes=1)
        db.session.commit()
    _, token = page_csrf(client)
    assert client.post("/embed/admin/agents/refresh", data={"csrf_token": token}).status_code == 303
    assert teamviewer.users_hits() == 2
    assert 'data-tvwidget-directory="ok"' in client.get("/embed/admin/agents").text
    play(app, "alex.morgan@helpdesk.example")
    assert teamviewer.creates[-1]["assigned_userid"] == "u201"


def test_without_a_directory_the_admin_types_the_users_id(app, teamviewer):
    teamviewer.directory = "forbidden"
    play(app, "robin@helpdesk.example", sub="robin")
    client = admin_client(app, **ADA)
    page, token = page_csrf(client)
    assert 'name="userid"' in page.text and 'data-tvwidget-match="unknown"' in page.text
    assert client.post("/embed/admin/agents/robin/user",
                       data={"csrf_token": token, "choice": "auto", "userid": "u206"}).status_code == 303
    play(app, "robin@helpdesk.example", sub="robin")
    assert teamviewer.creates[-1]["assigned_userid"] == "u206"
    assert client.post("/embed/admin/agents/robin/user",
                       data={"csrf_token": token, "choice": "auto", "userid": "robin"}).status_code == 422


def test_refresh_command_and_function_for_the_worker(app, teamviewer):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["tvwidget", "directory", "refresh"])
    assert result.exit_code == 0, result.output
    assert "fetched 1, users 7, status ok" in result.output
    assert "fetched 0" in runner.invoke(args=["tvwidget", "directory", "refresh"]).output
    assert teamviewer.users_hits() == 1
    # Even forced, a refresh seconds after the last one is the same fetch (a double click).
    assert "fetched 0" in runner.invoke(args=["tvwidget", "directory", "refresh", "--force"]).output
    assert teamviewer.users_hits() == 1


# -- the assignment refused ----------------------------------------------------------------------------------


def _cases(app):
    with app.app_context():
        return db.session.scalars(sa.select(ServiceCase).order_by(ServiceCase.id)).all()


def test_an_assignee_teamviewer_refuses_gets_the_case_unassigned_and_the_admin_is_told(app, teamviewer):
    teamviewer.refuse = "named"
    widget = play(app, "alex.morgan@helpdesk.example", sub="alex")
    assert teamviewer.posts() == 2
    assert teamviewer.creates[0]["assigned_userid"] == "u201" and "assigned_userid" not in teamviewer.creates[1]
    assert {k: v for k, v in teamviewer.creates[0].items() if k != "assigned_userid"} == teamviewer.creates[1]
    cases = _cases(app)
    assert [(c.state, c.assigned_userid) for c in cases] == [(CaseState.OPEN, OWNER["id"])]
    assert widget.state() == "open" and 'role="alert"' not in widget.html
    assert audit(app, "assignment_refused")[0]["userid"] == "u201"
    assert match_of(app, "alex").status == "refused"
    page = admin_client(app, **ADA).get("/embed/admin/agents").text
    assert 'data-tvwidget-match="refused"' in page and "cannot be assigned" in page

    play(app, "alex.morgan@helpdesk.example", sub="alex")  # not asked to assign again: one create
    assert teamviewer.posts() == 3 and "assigned_userid" not in teamviewer.creates[2]

    client = admin_client(app, **ADA)  # the admin picks another user: tried once, refused, remembered likewise
    assert _set(client, "alex", "u206").status_code == 303
    play(app, "alex.morgan@helpdesk.example", sub="alex")
    assert teamviewer.posts() == 5 and teamviewer.creates[3]["assigned_userid"] == "u206"
    assert match_of(app, "alex").status == "refused"
    play(app, "alex.morgan@helpdesk.example", sub="alex")
    assert teamviewer.posts() == 6 and "assigned_userid" not in teamviewer.creates[5]


@pytest.mark.parametrize("refuse", ["unnamed", "5xx", "timeout"])
def test_other_failures_of_an_assigned_create_are_never_retried(app, teamviewer, refuse):
    teamviewer.refuse = refuse
    widget = open_widget(app, sub="alex", email="alex.morgan@helpdesk.example", ticket=ticket_claim("T-R"))
    response = widget.play()
    assert response.status_code in (200, 502, 503, 504)
    assert teamviewer.posts() == 1
    assert 'role="alert"' in widget.html
    assert [c.state for c in _cases(app)] == [CaseState.FAILED]
    assert audit(app, "assignment_refused") == []


# -- overrides -----------------------------------------------------------------------------------------------


def _set(client, agent_id, choice):
    _, token = page_csrf(client)
    return client.post(f"/embed/admin/agents/{agent_id}/user", data={"csrf_token": token, "choice": choice})


def test_the_admins_override_always_wins(app, teamviewer):
    play(app, "alex.morgan@helpdesk.example", sub="alex")
    play(app, "sam@helpdesk.example", sub="sam")
    client = admin_client(app, **ADA)
    page = client.get("/embed/admin/agents").text
    assert 'data-tvwidget-match="matched"' in page and 'data-tvwidget-match="ambiguous"' in page

    assert _set(client, "sam", "u205").status_code == 303
    assert _set(client, "alex", "none").status_code == 303
    assert match_of(app, "sam").status == "override" and match_of(app, "alex").status == "dont_assign"
    play(app, "sam@helpdesk.example", sub="sam")
    assert teamviewer.creates[-1]["assigned_userid"] == "u205"
    play(app, "alex.morgan@helpdesk.example", sub="alex")
    assert "assigned_userid" not in teamviewer.creates[-1]

    assert _set(client, "alex", "auto").status_code == 303
    play(app, "alex.morgan@helpdesk.example", sub="alex")
    assert teamviewer.creates[-1]["assigned_userid"] == "u201"
    changes = audit(app, "agent_mapping_changed")
    assert [(c["agent"], c["new"]) for c in changes] == [("sam", "u205"), ("alex", "none"), ("alex", "auto")]


def test_override_input_is_checked(app, teamviewer):
    play(app, "alex.morgan@helpdesk.example", sub="alex")
    client = admin_client(app, **ADA)
    assert _set(client, "alex", "u1; DROP").status_code == 422
    assert _set(client, "nobody-seen", "u201").status_code == 404
    play(app, "robin@helpdesk.example", sub="team/robin")  # a host's ids may hold a slash
    assert _set(client, "team/robin", "none").status_code == 303
    assert match_of(app, "team/robin").status == "dont_assign"
    _, token = page_csrf(client)
    assert client.post("/embed/admin/agents/alex/user", data={"choice": "u201"}).status_code == 400  # no CSRF token
    agent_client = open_widget(app).client
    assert agent_client.get("/embed/admin/agents").status_code == 401
    assert match_of(app, "alex").status == "matched"


# -- sharing the group -----------------------------------------------------------------------------------------


def _refresh_later(app, client):
    """Press "Refresh now" as an admin does a while after the last read (presses seconds apart are one)."""
    with app.app_context():
        row = db.session.get(DirectoryState, 1)
        if row is not None and row.claimed_at is not None:
            row.claimed_at -= timedelta(minutes=1)
            db.session.commit()
    _, token = page_csrf(client)
    assert client.post("/embed/admin/agents/refresh", data={"csrf_token": token}).status_code == 303


def test_sharing_the_group_with_assigned_agents_shows_pending_then_accepted(app, teamviewer):
    client = admin_client(app, **ADA)
    assert "Not read from TeamViewer yet" in client.get("/embed/admin/agents").text
    _refresh_later(app, client)
    assert "created with the first service case" in client.get("/embed/admin/agents").text
    play(app, "alex.morgan@helpdesk.example", sub="alex")
    play(app, "kim+support@helpdesk.example", sub="kim")
    play(app, "owner@helpdesk.example", sub="owner")  # the token's owner owns the group
    play(app, "nobody@helpdesk.example", sub="nobody")
    calls = sum(teamviewer.counts.values())
    page, token = page_csrf(client)
    assert sum(teamviewer.counts.values()) == calls  # a page view never asks TeamViewer
    assert 'data-tvwidget-share="alex" data-status="not-shared"' in page.text
    assert 'data-tvwidget-share="owner" data-status="owner"' in page.text
    assert 'data-tvwidget-share="nobody"' not in page.text

    response = client.post("/embed/admin/agents/share", data={"csrf_token": token})
    assert response.status_code == 303
    assert teamviewer.shares == [{"users": [{"userid": "u201", "permissions": "readwrite"},
                                      {"userid": "u202", "permissions": "readwrite"}]}]
    page = client.get(response.headers["Location"]).text
    assert 'data-tvwidget-share="alex" data-status="pending"' in page
    assert "Notify on service case changes" in page

    teamviewer.groups["g900"]["shared_with"]["u201"] = False  # Alex accepts in the TeamViewer client
    assert 'data-tvwidget-share="alex" data-status="pending"' in client.get("/embed/admin/agents").text
    _refresh_later(app, client)  # the admin's refresh (or the periodic job) reads the group again
    page, token = page_csrf(client)
    assert 'data-tvwidget-share="alex" data-status="accepted"' in page.text
    assert 'data-tvwidget-share="kim" data-status="pending"' in page.text
    client.post("/embed/admin/agents/share", data={"csrf_token": token})
    assert len(teamviewer.shares) == 1  # nobody left to share with
    assert audit(app, "group_shared")[0]["users"] == ["u201", "u202"]


def test_the_periodic_refresh_reads_the_groups_shares_but_a_play_does_not(app, teamviewer):
    play(app, "alex.morgan@helpdesk.example", sub="alex")
    assert teamviewer.counts[("GET", "/groups")] == 0
    with app.app_context():
        assert directory.refresh_due(utcnow() + timedelta(minutes=6))["fetched"] == 1
        assert directory.sharing("BOSS").group_id == "g900"
    assert teamviewer.counts[("GET", "/groups")] == 1


# -- worked by ---------------------------------------------------------------------------------------------------


def test_the_report_says_who_really_worked_each_session(app, teamviewer):
    alex = play(app, "alex.morgan@helpdesk.example", sub="alex", name="Alex Morgan")
    play(app, "kim+support@helpdesk.example", sub="kim", name="Kim Park")
    alex.post("stop")  # Alex opened it ...
    with app.app_context():
        case = db.session.scalars(sa.select(ServiceCase).where(ServiceCase.state == CaseState.CLOSED)).one()
        start = case.opened_at
        # ... and Kim connected (the connection report names Kim's TeamViewer user), then someone unknown.
        db.session.add_all([
            Connection(case_id=case.id, report_id="r1", start_at=start, end_at=start + timedelta(minutes=10),
                       userid="u202", username="Kim P."),
            Connection(case_id=case.id, report_id="r2", start_at=start, end_at=start + timedelta(minutes=1),
                       userid="u999", username="Someone Else"),
        ])
        db.session.commit()
    client = admin_client(app, **ADA)
    page = client.get("/embed/admin/reports/teamviewer-sessions").text
    section = page[page.index('data-tvwidget-report="worked_by"'):]
    assert 'data-tvwidget-worked-by="kim"' in section and "Kim Park" in section and "Someone Else" in section
    assert "Alex Morgan" in page[page.index('data-tvwidget-report="technicians"'):]

    rows = list(csv.reader(io.StringIO(client.get("/embed/admin/reports/teamviewer-sessions/worked_by.csv")
                                       .get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[1][:5] == ["kim", "Kim Park", "u202", "Kim Park", "1"] and rows[1][5] == "600"
    assert rows[2][:4] == ["", "Someone Else", "u999", "Someone Else"]

    body = app.test_client().get("/api/v1/reports/teamviewer-sessions",
                                 headers={"Authorization": f"Bearer {HOST_API_KEY}"}).get_json()
    assert body["by_technician"][0]["value"] == "alex"
    assert body["by_worked_by"][0] == {"value": "kim", "name": "Kim Park", "teamviewer_userid": "u202",
                                       "teamviewer_name": "Kim Park", "sessions": 1,
                                       "total_connected_seconds": 600}


def test_agents_seen_are_listed_with_their_latest_name(app, teamviewer):
    play(app, "alex.morgan@helpdesk.example", sub="alex", name="Alex M.")
    play(app, "alex.morgan@helpdesk.example", sub="alex", name="Alex Morgan")
    with app.app_context():
        rows = db.session.scalars(sa.select(AgentIdentity)).all()
        assert [(r.id, r.name) for r in rows] == [("alex", "Alex Morgan")]
