"""One valid case per ticket, under concurrent presses and directly in the database (F3)."""
import threading

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tvwidget.extensions import db
from tvwidget.storage.models import CaseState, ServiceCase, Ticket, utcnow

from ..conftest import HOST_API_KEY, Widget, connect, make_token


@pytest.fixture
def slow_teamviewer():
    """A TeamViewer double that takes a moment to create, widening the race window; counts creates."""
    server = HTTPServer(host="127.0.0.1")
    server.start()
    creates = []

    def create(request):
        creates.append(request.get_json())
        threading.Event().wait(0.4)
        return Response('{"code": "s123-456-789", "state": "Open", "supporter_link": "https://tv.test/s",'
                        ' "end_customer_link": "https://tv.test/c", "valid_until": "2099-01-01T00:00:00Z"}',
                        status=200, content_type="application/json")

    server.expect_request("/api/v1/sessions", method="POST").respond_with_handler(create)
    server.creates = creates
    yield server
    server.clear()
    server.stop()


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

        def close():
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
