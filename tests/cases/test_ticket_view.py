"""What a ticket view reads: round trips counted at the driver, statements seen by SQLAlchemy, the ORM's answers."""
import tempfile
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tvwidget.cases import ticket_view
from tvwidget.extensions import db
from tvwidget.storage import database
from tvwidget.storage.models import CaseTracking, EmailMessage, ServiceCase, Ticket, utcnow

from ..conftest import make_token, ticket_claim

API = {"Authorization": "Bearer test-host-api-key-0123456789abcdef"}


class RoundTrips:
    """Count what reaches the database from every pooled connection opened after ``start``.

    PostgreSQL: libpq's own protocol trace; a round trip is a ReadyForQuery the
    client waited for.  SQLite runs in-process: every statement the library
    executes counts (its trace callback).
    """

    def __init__(self, app):
        self.app = app
        self.sqlite_statements = []
        self.trace = tempfile.TemporaryFile()

    def start(self):
        with self.app.app_context():
            engine = db.engine
            engine.dispose()
            sa.event.listen(engine, "connect", self._traced)

    def _traced(self, dbapi_connection, record):
        if hasattr(dbapi_connection, "set_trace_callback"):
            dbapi_connection.set_trace_callback(self.sqlite_statements.append)
        else:
            dbapi_connection.pgconn.trace(self.trace.fileno())

    def reset(self):
        self.sqlite_statements.clear()
        self.trace.seek(0)
        self.trace.truncate()

    def count(self) -> int:
        self.trace.seek(0)
        lines = self.trace.read().decode(errors="replace").splitlines()
        return len(self.sqlite_statements) + sum("ReadyForQuery" in line for line in lines)


@pytest.fixture
def round_trips(connected_app):
    counter = RoundTrips(connected_app)
    counter.start()
    return counter


def _open_case(app, ticket_id="T-1", **values):
    with app.app_context():
        now = utcnow()
        case = ServiceCase(ticket_id=ticket_id, state="open", idempotency_key=f"k-{ticket_id}-{time.time_ns()}",
                           code="s123-456-789", group_name="BOSS", supporter_link="https://example.com/s",
                           end_customer_link="https://example.com/c", valid_until=now + timedelta(hours=24),
                           opened_at=now, opened_by_id="agent-1", opened_by_name="Alex Morgan", **values)
        db.session.add(case)
        db.session.commit()
        return case.id


def test_a_widget_launch_makes_one_round_trip_on_postgresql_two_on_sqlite_one_more_for_a_changed_ticket(
        connected_app, client, round_trips):
    client.get("/embed/widget", query_string={"token": make_token()})  # the ticket exists from here on
    _open_case(connected_app)
    with connected_app.app_context():
        expected = 1 if db.engine.dialect.name == "postgresql" else 2
    round_trips.reset()
    response = client.get("/embed/widget", query_string={"token": make_token()})
    assert response.status_code == 200 and 'data-tvwidget-state="open"' in response.text
    # Spend, then read the view with the stored ticket (PostgreSQL: in one statement), each statement
    # its own transaction (no BEGIN or COMMIT sent on either engine).
    assert round_trips.count() == expected
    round_trips.reset()
    changed = client.get("/embed/widget", query_string={"token": make_token(ticket=ticket_claim(priority="Low"))})
    assert changed.status_code == 200
    assert round_trips.count() == expected + 1  # and the changed ticket is written


def test_the_status_poll_makes_one_round_trip(connected_app, client, round_trips):
    page = client.get("/embed/widget", query_string={"token": make_token()})
    case_id = _open_case(connected_app)
    with connected_app.app_context():  # a fresh shared cache: the poll does not ask TeamViewer
        db.session.add(CaseTracking(case_id=case_id, status_checked_at=utcnow(), remote_online=True))
        db.session.commit()
    from ..conftest import credential_of

    credential = credential_of(page.text)
    round_trips.reset()
    status = client.get("/embed/widget/status", query_string={"code": "s123-456-789"},
                        headers={"X-TVWidget-Credential": credential, "HX-Request": "true"})
    assert status.status_code == 200 and 'data-status="online"' in status.text
    assert round_trips.count() == 1  # the read alone: no BEGIN or COMMIT on either engine


def test_the_launch_and_the_poll_run_their_statements_through_sqlalchemy(connected_app, client):
    seen = []
    with connected_app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    response = client.get("/embed/widget", query_string={"token": make_token()})
    assert response.status_code == 200
    assert any("INSERT INTO tvwidget_used_launch_tokens" in statement for statement in seen), seen
    assert any("FROM tvwidget_service_cases" in statement for statement in seen), seen


def test_the_close_guard_writes_nothing_while_a_case_holds_the_ticket(connected_app, client):
    client.get("/embed/widget", query_string={"token": make_token()})
    closed = client.post("/api/v1/tickets/NEW-1/close", headers=API)
    assert closed.get_json() == {"id": "NEW-1", "status": "closed"}
    _open_case(connected_app)
    held = client.post("/api/v1/tickets/T-1/close", headers=API)
    assert held.status_code == 409 and held.get_json()["service_case"]["code"] == "s123-456-789"
    with connected_app.app_context():
        assert db.session.get(Ticket, "NEW-1").closed_at is not None
        assert db.session.get(Ticket, "NEW-1").subject == ""  # a ticket never seen: the model's defaults
        assert db.session.get(Ticket, "T-1").closed_at is None  # nothing written while the case holds it


def test_a_close_that_meets_an_overdue_case_records_its_expiry_first(connected_app, client):
    client.get("/embed/widget", query_string={"token": make_token(ticket=ticket_claim("T-9"))})
    case_id = _open_case(connected_app, ticket_id="T-9")
    with connected_app.app_context():
        db.session.get(ServiceCase, case_id).valid_until = utcnow() - timedelta(minutes=1)
        db.session.commit()
    assert client.post("/api/v1/tickets/T-9/close", headers=API).get_json() == {"id": "T-9", "status": "closed"}
    comments = client.get("/api/v1/tickets/T-9/comments", headers=API).get_json()["comments"]
    assert [comment["kind"] for comment in comments] == ["expired"]
    with connected_app.app_context():
        assert db.session.get(ServiceCase, case_id).state == "expired"
        assert db.session.get(Ticket, "T-9").closed_at is not None


def test_a_replayed_token_changes_nothing(app, client):
    older = make_token(ticket=ticket_claim(subject="Old subject", requester={"name": "A", "email": "old@example.com"}))
    assert client.get("/embed/widget", query_string={"token": older}).status_code == 200
    newer = make_token(ticket=ticket_claim(subject="New subject"))
    assert client.get("/embed/widget", query_string={"token": newer}).status_code == 200
    replay = client.get("/embed/widget", query_string={"token": older})
    assert replay.status_code == 401 and "already used" in replay.text
    with app.app_context():
        ticket = db.session.get(Ticket, "T-1")
        assert (ticket.subject, ticket.requester_email) == ("New subject", "john.doe@example.com")


def test_an_unchanged_ticket_is_not_rewritten(app, client):
    client.get("/embed/widget", query_string={"token": make_token()})
    with app.app_context():
        first = db.session.get(Ticket, "T-1").updated_at
    time.sleep(0.01)
    client.get("/embed/widget", query_string={"token": make_token()})
    with app.app_context():
        assert db.session.get(Ticket, "T-1").updated_at == first
    client.get("/embed/widget", query_string={"token": make_token(ticket=ticket_claim(priority="Low"))})
    with app.app_context():
        ticket = db.session.get(Ticket, "T-1")
        assert ticket.priority == "Low" and ticket.updated_at > first


def test_the_view_reads_what_the_orm_reads(connected_app, client):
    client.get("/embed/widget", query_string={"token": make_token()})
    case_id = _open_case(connected_app, note="Fixed <b>it</b>", outcome="resolved")
    with connected_app.app_context():
        now = utcnow()
        db.session.add(EmailMessage(case_id=case_id, recipient="john.doe@example.com", subject="s", body_text="t",
                                    body_html="h", language="ja", message_id="<m@x>", status="pending",
                                    attempts=2, last_error="421 try later", next_attempt_at=now))
        db.session.add(CaseTracking(case_id=case_id, status_checked_at=now, remote_online=False,
                                    status_error="rate_limited"))
        db.session.commit()
        view = ticket_view.view("T-1")
        case = db.session.get(ServiceCase, case_id)
        assert view.connected is True
        for key in ticket_view.CASE_SHOWN:
            assert getattr(view.case, key) == getattr(case, key), key
        assert view.case.valid_until.tzinfo is not None and view.case.is_valid(utcnow())
        assert view.case.ended_at == case.ended_at
        for key in ticket_view.EMAIL_SHOWN:
            assert getattr(view.email, key) == getattr(case.email, key), key
        assert view.case.email is view.email
        tracking = db.session.get(CaseTracking, case_id)
        for key in ticket_view.TRACKING_SHOWN:
            assert getattr(view.tracking, key) == getattr(tracking, key), key
        # What the widget does not show is not read, and never reads as None by mistake.
        for snapshot, model in ((view.case, ServiceCase), (view.email, EmailMessage), (view.tracking, CaseTracking)):
            assert set(vars(snapshot)) - {"email"} < set(model.__table__.columns.keys())
        with pytest.raises(AttributeError):
            view.case.note  # noqa: B018
        assert ticket_view.view("T-unknown") == ticket_view.View(True, None, None, None)


def test_a_pooled_connection_killed_by_a_restart_is_replaced_unnoticed(app, client, monkeypatch):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite has no server connection to lose")
    assert client.get("/embed/widget", query_string={"token": make_token()}).status_code == 200
    with app.app_context():
        url = db.engine.url
        assert db.engine.pool.checkedin() >= 1
    outside = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with outside.connect() as connection:  # the server ends the pool's sessions, as a restart does
        ended = connection.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    outside.dispose()
    assert ended >= 1
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
    time.sleep(0.05)
    for _ in range(3):
        response = client.get("/embed/widget", query_string={"token": make_token()})
        assert response.status_code == 200, response.text
        assert client.get("/api/v1/tickets/T-1/service-case", headers=API).status_code == 404
