"""One valid case per ticket, under concurrent presses and directly in the database."""
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from werkzeug import Response

from tvwidget.extensions import db
from tvwidget.storage.models import CaseState, EmailMessage, ServiceCase, Ticket, utcnow

from ..conftest import HOST_API_KEY, Widget, connect, make_token, open_widget


@pytest.fixture
def slow_teamviewer(teamviewer_server):
    """A TeamViewer that takes a moment to create, widening the race window; counts creates."""
    server = teamviewer_server
    creates = []

    def create(request):
        creates.append(request.get_json())
        threading.Event().wait(0.4)
        return Response('{"code": "s123-456-789", "state": "Open", "supporter_link": "https://tv.test/s",'
                        ' "end_customer_link": "https://tv.test/c", "valid_until": "2099-01-01T00:00:00Z"}',
                        status=200, content_type="application/json")

    server.expect_request("/api/v1/sessions", method="POST").respond_with_handler(create)
    server.creates = creates
    return server


def test_many_simultaneous_plays_make_one_teamviewer_session(app_factory, slow_teamviewer):
    app = app_factory(TEAMVIEWER_API_URL=slow_teamviewer.url_for("/api/v1"))
    connect(app)
    widgets = []
    for _ in range(12):
        client = app.test_client()
        widgets.append(Widget(client, client.get("/embed/widget", query_string={"token": make_token()}).text))
    barrier = threading.Barrier(len(widgets))
    results = []

    def press(widget):
        barrier.wait()
        response = widget.play()
        results.append((response.status_code, widget.field("session-code")))

    threads = [threading.Thread(target=press, args=(w,)) for w in widgets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(slow_teamviewer.creates) == 1
    assert results == [(200, "s123-456-789")] * len(widgets)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServiceCase)) == 1


def _case(ticket_id: str, state: str, key: str) -> ServiceCase:
    return ServiceCase(ticket_id=ticket_id, state=state, idempotency_key=key, group_name="BOSS",
                       opened_at=utcnow(), opened_by_id="a")


def test_database_refuses_a_second_active_case_even_when_code_is_bypassed(app):
    with app.app_context():
        db.session.add(Ticket(id="T-1"))
        db.session.add(_case("T-1", CaseState.OPEN, "k1"))
        db.session.commit()
        db.session.add(_case("T-1", CaseState.CREATING, "k2"))
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()
        db.session.rollback()
        for n in range(3):  # closed, expired and failed cases are unlimited
            db.session.add(_case("T-1", (CaseState.CLOSED, CaseState.EXPIRED, CaseState.FAILED)[n], f"c{n}"))
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServiceCase)) == 4


def test_simultaneous_closes_of_an_unseen_ticket_all_succeed(app):
    """The host may close a ticket tvwidget never saw, twice at once (a retry, two webhooks): no 500."""
    api = {"Authorization": f"Bearer {HOST_API_KEY}"}
    statuses = []
    for round_ in range(5):
        barrier = threading.Barrier(8)

        def close(barrier=barrier, round_=round_):
            client = app.test_client()
            barrier.wait(10)
            statuses.append(client.post(f"/api/v1/tickets/NEW-{round_}/close", headers=api).status_code)

        threads = [threading.Thread(target=close) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert statuses == [200] * 40
    with app.app_context():
        closed = db.session.scalars(sa.select(Ticket).where(Ticket.id.like("NEW-%"))).all()
        assert len(closed) == 5 and {t.status for t in closed} == {"closed"} and all(t.closed_at for t in closed)


# ==========================================================================================================
# 30 (and 22). TeamViewer made the session, then the local commit failed
# ==========================================================================================================

FAIL_OPEN = {
    "sqlite": ["CREATE TRIGGER tvwidget_test_fail_open BEFORE UPDATE OF state ON tvwidget_service_cases "
               "WHEN NEW.state = 'open' BEGIN SELECT RAISE(ABORT, 'injected: the commit after TeamViewer failed'); "
               "END"],
    # SQLSTATE 08006 (connection failure): what a database lost between the call and the commit raises.
    "postgresql": ["CREATE FUNCTION tvwidget_test_fail_open() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "RAISE EXCEPTION 'injected: the commit after TeamViewer failed' USING ERRCODE = '08006'; END $$",
                   "CREATE TRIGGER tvwidget_test_fail_open BEFORE UPDATE OF state ON tvwidget_service_cases "
                   "FOR EACH ROW WHEN (NEW.state = 'open') EXECUTE FUNCTION tvwidget_test_fail_open()"],
}


def _trigger(app, install: bool) -> None:
    with app.app_context(), db.engine.begin() as connection:
        dialect = connection.dialect.name
        if install:
            for statement in FAIL_OPEN[dialect]:
                connection.exec_driver_sql(statement)
        else:
            connection.exec_driver_sql("DROP TRIGGER tvwidget_test_fail_open" + (
                " ON tvwidget_service_cases" if dialect == "postgresql" else ""))


@pytest.mark.parametrize("next_step", ["reconcile", "press play again"])
def test_30_a_lost_commit_after_teamviewer_ends_with_one_live_session_and_one_case(app_factory, teamviewer, smtp,
                                                                                    next_step):
    app = app_factory(TEAMVIEWER_API_URL=teamviewer.url, TEAMVIEWER_RETRIES=0, PROPAGATE_EXCEPTIONS=False)
    connect(app)
    widget = open_widget(app)
    _trigger(app, install=True)
    response = widget.play()
    assert response.status_code in (500, 503) and "Traceback" not in response.text
    _trigger(app, install=False)
    assert [s["state"] for s in teamviewer.sessions.values()] == ["Open"]  # TeamViewer did make it
    with app.app_context():
        (case,) = db.session.scalars(sa.select(ServiceCase)).all()
        assert case.state == CaseState.CREATING and case.code is None  # the intent row, committed before the call
        # Checklist 22: the invitation was in the rolled-back transaction: no outbox row, no mail.
        assert db.session.scalar(sa.select(sa.func.count()).select_from(EmailMessage)) == 0
        # Time passes beyond the client's timeouts (the row's request is certainly over).
        case.opened_at -= timedelta(minutes=5)
        db.session.commit()
    assert smtp.messages == []
    reloaded = open_widget(app)
    assert reloaded.state() == "idle"  # a stuck "creating" is offered as retryable, not as a spinner

    if next_step == "press play again":
        reloaded.play()
        assert reloaded.state() == "open"
    result = app.test_cli_runner().invoke(args=["tvwidget", "reconcile"])
    assert result.exit_code == 0, result.output
    again = app.test_cli_runner().invoke(args=["tvwidget", "reconcile"])
    assert "adopted 0, failed 0, closed at TeamViewer 0" in again.output

    live = [code for code, s in teamviewer.sessions.items() if s["state"] == "Open"]
    with app.app_context():
        active = db.session.scalars(sa.select(ServiceCase).where(ServiceCase.state.in_(CaseState.ACTIVE))).all()
        assert [case.code for case in active] == live and len(live) == 1
    expected = "adopted 1, failed 0, closed at TeamViewer 0" if next_step == "reconcile" else \
        "adopted 0, failed 0, closed at TeamViewer 1"
    assert expected in result.output
    assert open_widget(app).field("session-code") == live[0]


# ==========================================================================================================
# 31. The partial unique index under racing writers
# ==========================================================================================================

def test_31_racing_inserts_leave_one_active_case_and_the_losers_get_integrity_errors(app):
    with app.app_context():
        db.session.add(Ticket(id="T-1"))
        db.session.commit()
    barrier = threading.Barrier(8)
    outcomes = []

    def insert(number):
        with app.app_context():
            barrier.wait(10)
            try:
                with db.engine.begin() as connection:  # no application check: the database alone decides
                    connection.execute(sa.insert(ServiceCase.__table__).values(
                        ticket_id="T-1", state=(CaseState.CREATING, CaseState.OPEN)[number % 2],
                        idempotency_key=f"race-{number}", group_name="BOSS", opened_at=utcnow(),
                        opened_by_id="agent-1", opened_by_name="", opened_by_email=""))
                outcomes.append("inserted")
            except sa.exc.IntegrityError:
                outcomes.append("IntegrityError")
            except sa.exc.OperationalError as exc:  # "database is locked" would land here
                outcomes.append(f"OperationalError: {exc.orig}")

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["IntegrityError"] * 7 + ["inserted"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServiceCase)) == 1
