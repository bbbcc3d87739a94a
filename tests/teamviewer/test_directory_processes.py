"""The directory under load: 24 simultaneous plays on 4 gunicorn workers fetch it once."""
import pytest
import sqlalchemy as sa

from tvwidget.extensions import db
from tvwidget.storage.models import CaseState, DirectoryState, ServiceCase

from ..conftest import SANDBOX_TOKEN
from ..fake_teamviewer import TOKEN
from ..processes import Agent, together

pytestmark = pytest.mark.slow


def _wave(base, first):
    agents = [Agent(base, ticket=f"T-{n}", sub=f"agent-{n % 6}", email=["alex.morgan@helpdesk.example",
                    "kim+support@helpdesk.example", "robin@helpdesk.example", "sam@helpdesk.example",
                    "nobody@helpdesk.example", "chris@helpdesk.example"][n % 6]) for n in range(first, first + 24)]
    results = together([(0, lambda a=agent: a.post("play")) for agent in agents])
    assert {r.status_code for r in results} == {200}
    assert {a.state() for a in agents} == {"open"}


def test_24_simultaneous_plays_on_4_workers_read_the_directory_once(gunicorn, teamviewer, local_app):
    assert TOKEN == SANDBOX_TOKEN  # local_app connected the double's token
    teamviewer.users_delay = 0.5  # the directory is slow enough that every play arrives while it is read
    _wave(gunicorn, 0)
    assert teamviewer.users_hits() == 1
    assert teamviewer.posts() == 24
    _wave(gunicorn, 100)  # the window has not passed: the stored directory serves every play
    assert teamviewer.users_hits() == 1
    assert teamviewer.posts() == 48
    second = teamviewer.creates[24:]
    # Every mapped agent's second-wave case was assigned; the others' were not.
    by_agent = {}
    for body in second:
        by_agent.setdefault(body.get("assigned_userid"), 0)
        by_agent[body.get("assigned_userid")] += 1
    assert by_agent == {"u201": 4, "u202": 4, "u206": 4, None: 12}
    with local_app.app_context():
        states = db.session.scalars(sa.select(ServiceCase.state)).all()
        assert states.count(CaseState.OPEN) == 48
        assert db.session.get(DirectoryState, 1).status == "ok"
