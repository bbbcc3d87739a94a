"""The host webhook (docs/host-contract.md): signed events, delivered from a durable queue with retries, once each."""
import hashlib
import hmac
import json
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tvwidget.extensions import db
from tvwidget.host import webhook
from tvwidget.storage.models import ServiceCase, WebhookEvent, utcnow

from ..conftest import EMBED_SECRET, Widget, connect, make_token


class Receiver:
    """The host's webhook endpoint: records each delivery, answers from a script (then 200)."""

    def __init__(self):
        self.server = HTTPServer(host="127.0.0.1", threaded=True)
        self.received = []
        self.script = []
        self.lock = threading.Lock()

    def handle(self, request):
        with self.lock:
            self.received.append({"body": request.get_data(), "headers": dict(request.headers)})
            status = self.script.pop(0) if self.script else 200
        return Response("", status)

    def wait_for(self, count, timeout=5.0):
        import time
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received


@pytest.fixture
def receiver():
    host = Receiver()
    host.server.start()
    host.server.expect_request("/hooks/tvwidget", method="POST").respond_with_handler(host.handle)
    yield host
    host.server.clear()
    host.server.stop()


@pytest.fixture
def app(app_factory, receiver):
    app = app_factory(HOST_WEBHOOK_URL=receiver.server.url_for("/hooks/tvwidget"))
    connect(app)
    return app


def _verify(delivery):
    expected = "sha256=" + hmac.new(EMBED_SECRET.encode(), delivery["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(delivery["headers"]["X-Tvwidget-Signature"], expected)
    return json.loads(delivery["body"])


def _events(app):
    with app.app_context():
        rows = db.session.scalars(sa.select(WebhookEvent).order_by(WebhookEvent.id)).all()
        db.session.expunge_all()
        return rows


def test_opened_and_closed_events_are_signed_and_carry_the_comment(app, receiver, launch):
    widget = launch()
    widget.play().close()  # the server closes the response; delivery runs then
    opened = _verify(receiver.wait_for(1)[0])
    assert opened["event"] == "service_case.opened" and opened["ticket_id"] == "T-1"
    assert opened["service_case"]["code"] == widget.field("session-code") and opened["comment"] is None
    widget.post("stop", {"outcome": "resolved", "note": "Fixed the <profile>"}).close()
    closed = _verify(receiver.wait_for(2)[1])
    assert closed["event"] == "service_case.closed"
    assert closed["service_case"]["outcome"] == "resolved" and closed["service_case"]["closed_at"]
    assert "closed by Alex Morgan" in closed["comment"] and "Note: Fixed the <profile>" in closed["comment"]
    assert receiver.received[1]["headers"]["X-Tvwidget-Event"] == "service_case.closed"
    assert [e.status for e in _events(app)] == ["delivered", "delivered"]


def test_expired_event_is_queued_with_the_expiry(app, receiver, launch):
    widget = launch()
    widget.play().close()
    receiver.wait_for(1)
    with app.app_context():
        db.session.execute(sa.update(ServiceCase).values(valid_until=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    runner = app.test_cli_runner()
    assert "1 service case(s) expired" in runner.invoke(args=["tvwidget", "expire-cases"]).output
    result = runner.invoke(args=["tvwidget", "webhook", "send"])
    assert "1 delivered" in result.output, result.output
    expired = _verify(receiver.received[-1])
    assert expired["event"] == "service_case.expired" and "expired without being stopped" in expired["comment"]


def test_a_failed_delivery_is_retried_later_with_the_same_body_and_signature(app, receiver, launch):
    receiver.script = [500]
    widget = launch()
    widget.play().close()
    receiver.wait_for(1)
    (event,) = _events(app)
    assert event.status == "pending" and event.attempts == 1 and event.last_error == "HTTP 500"
    assert event.next_attempt_at > utcnow()
    runner = app.test_cli_runner()
    assert "0 delivered" in runner.invoke(args=["tvwidget", "webhook", "send"]).output  # not due yet
    with app.app_context():
        db.session.execute(sa.update(WebhookEvent).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert "1 delivered" in runner.invoke(args=["tvwidget", "webhook", "send"]).output
    first, second = receiver.received
    assert first["body"] == second["body"]
    assert first["headers"]["X-Tvwidget-Signature"] == second["headers"]["X-Tvwidget-Signature"]
    _verify(second)
    (event,) = _events(app)
    assert event.status == "delivered" and event.attempts == 2


def test_concurrent_senders_deliver_each_event_exactly_once(app, receiver):
    with app.app_context():
        for n in range(30):
            db.session.add(WebhookEvent(event_id=f"e{n}", kind="service_case.opened", ticket_id="T-1",
                                        body=json.dumps({"n": n}), next_attempt_at=utcnow()))
        db.session.commit()
    barrier = threading.Barrier(6)

    def sender():
        with app.app_context():
            barrier.wait()
            webhook.send_due()

    threads = [threading.Thread(target=sender) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    bodies = sorted(json.loads(d["body"])["n"] for d in receiver.received)
    assert bodies == list(range(30))
    assert {e.status for e in _events(app)} == {"delivered"}


def test_without_a_webhook_url_nothing_is_queued(app_factory):
    app = app_factory()
    connect(app)
    client = app.test_client()
    widget = Widget(client, client.get("/embed/widget", query_string={"token": make_token()}).text)
    widget.play().close()
    widget.stop().close()
    assert "not set" in app.test_cli_runner().invoke(args=["tvwidget", "webhook", "send"]).output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEvent)) == 0
