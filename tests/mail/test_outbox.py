"""The invitation outbox against real SMTP faults (reliability checklist 21 and 22).

Every test talks to a real aiosmtpd server on 127.0.0.1 (or to a port where
nothing listens, or to a socket that accepts and never answers).  The widget is
driven as htmx drives it; retries are run by the real ``tvwidget outbox send``
command after the message's ``next_attempt_at`` is moved into the past.
"""
import asyncio
import contextlib
import email
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from email import policy

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from tvwidget.extensions import db
from tvwidget.mail import outbox
from tvwidget.paths import PACKAGE_DIR
from tvwidget.storage import delivery
from tvwidget.storage.models import AuditEvent, EmailMessage, ServiceCase, utcnow

from ..conftest import connect, free_port, open_widget, ticket_claim

pytestmark = pytest.mark.usefixtures("free_sandbox_licences")


class Scripted:
    """An SMTP handler answering RCPT and DATA from a script (None = accept); ``messages`` holds what it took."""

    def __init__(self, rcpt=(), data=(), delay: float = 0.0):
        self.rcpt, self.data = list(rcpt), list(data)
        self.delay = delay
        self.messages = []
        self.tries = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.tries += 1
        reply = self.rcpt.pop(0) if self.rcpt else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.data.pop(0) if self.data else None
        if reply:
            return reply
        if self.delay:
            await asyncio.sleep(self.delay)
        self.messages.append(envelope)
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages


@pytest.fixture
def smtp_server():
    """Return ``start(handler, port=None)``: serve ``handler`` with aiosmtpd on 127.0.0.1."""
    controllers = []

    def start(handler, port=None):
        handler.port = port or free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
        controller.start()
        controllers.append(controller)
        return handler

    yield start
    for controller in controllers:
        controller.stop()


@contextlib.contextmanager
def stalled_smtp():
    """A TCP listener that accepts connections and never says a word; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    held = []

    def accept():
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listener.close()


@pytest.fixture
def mail_app(app_factory):
    """Return ``make(port, **config)``: a connected tvwidget app sending mail to 127.0.0.1:``port``."""
    def make(port, **config):
        app = app_factory(MAIL_PORT=port, **config)
        connect(app)
        return app
    return make


def run_outbox(app) -> str:
    result = app.test_cli_runner().invoke(args=["tvwidget", "outbox", "send"])
    assert result.exit_code == 0, result.output
    return result.output


def messages(app):
    with app.app_context():
        rows = db.session.scalars(sa.select(EmailMessage).order_by(EmailMessage.id)).all()
        db.session.expunge_all()
        db.session.remove()
    return rows


def make_due(app):
    """Move every retry time into the past (what waiting for the back-off would do)."""
    with app.app_context():
        db.session.execute(sa.update(EmailMessage).where(EmailMessage.status == "pending")
                           .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        db.session.remove()


def audit_kinds(app):
    with app.app_context():
        kinds = db.session.scalars(sa.select(AuditEvent.kind).order_by(AuditEvent.id)).all()
        db.session.remove()
    return kinds


def parsed(envelope):
    return email.message_from_bytes(envelope.content, policy=policy.default)


# --- delivery and temporary faults -------------------------------------------------------------------

def test_a_delivered_invitation_is_recorded_sent_and_the_outbox_leaves_it_alone(mail_app, smtp_server):
    server = smtp_server(Scripted())
    app = mail_app(server.port)
    widget = open_widget(app)
    widget.play()
    assert 'data-tvwidget-field="email-status" data-status="sent"' in widget.html
    assert "0 sent" in run_outbox(app)
    assert len(server.messages) == 1 and server.tries == 1
    (row,) = messages(app)
    assert (row.status, row.attempts, row.last_error, row.claimed_until) == ("sent", 1, None, None)


@pytest.mark.parametrize(("script", "reason"), [
    ({"rcpt": ["421 4.7.0 Too busy, try again later"]}, "421"),
    ({"rcpt": ["450 4.2.1 Mailbox busy"]}, "450"),
    ({"rcpt": ["451 4.3.0 Local error in processing"]}, "451"),
    ({"data": ["451 4.3.0 Try again later"]}, "451"),
    ({"data": ["452 4.3.1 Insufficient system storage"]}, "452"),
])
def test_a_temporary_refusal_is_retried_by_outbox_send_and_delivered_once(mail_app, smtp_server, script, reason):
    server = smtp_server(Scripted(**script))
    app = mail_app(server.port)
    widget = open_widget(app)
    widget.play()

    # The agent sees the case open and the email waiting for a retry, with a way to try now.
    assert widget.state() == "open"
    assert 'data-tvwidget-field="email-status" data-status="pending"' in widget.html
    assert "will try again automatically" in widget.html and reason in widget.html
    assert 'data-tvwidget-action="resend"' in widget.html
    (row,) = messages(app)
    assert (row.status, row.attempts) == ("pending", 1) and reason in row.last_error
    assert timedelta(seconds=50) < row.next_attempt_at - row.created_at < timedelta(seconds=70)

    # Not due yet: cron does nothing.
    assert "0 sent" in run_outbox(app)
    assert server.messages == []

    make_due(app)
    assert "1 sent" in run_outbox(app)
    assert "0 sent" in run_outbox(app)
    assert len(server.wait_for(1)) == 1
    (row,) = messages(app)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert parsed(server.messages[0])["Message-ID"].strip() == row.message_id
    widget.html = widget.client.get("/embed/widget/panel", headers={"X-TVWidget-Credential": widget.credential,
                                                                    "HX-Request": "true"}).text
    assert 'data-status="sent"' in widget.html
    assert [k for k in audit_kinds(app) if k.startswith("email_")] == ["email_failed", "email_sent"]


def test_temporary_failures_back_off_then_give_up(mail_app, smtp_server):
    server = smtp_server(Scripted(rcpt=["451 4.3.0 Try again later"] * 10))
    app = mail_app(server.port)
    open_widget(app).play()
    waits = []
    for _ in range(outbox.MAX_ATTEMPTS - 1):
        (row,) = messages(app)
        assert row.status == "pending"
        waits.append(round((row.next_attempt_at - utcnow()).total_seconds() / 60))
        make_due(app)
        run_outbox(app)
    (row,) = messages(app)
    assert waits == [1, 5, 15, 60, 240]
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", outbox.MAX_ATTEMPTS, None)
    assert server.tries == outbox.MAX_ATTEMPTS and server.messages == []
    with app.app_context():
        final = db.session.scalars(sa.select(AuditEvent.detail).where(AuditEvent.kind == "email_failed")
                                   .order_by(AuditEvent.id)).all()
        assert [json.loads(d)["final"] for d in final] == [False] * 5 + [True]


# --- permanent faults ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("script", "reason"), [
    ({"rcpt": ["550 5.1.1 No such user here"]}, "550"),
    ({"rcpt": ["551 5.1.6 User not local"]}, "551"),
    ({"rcpt": ["553 5.1.3 Mailbox name not allowed"]}, "553"),
    ({"data": ["554 5.7.1 Message rejected as spam"]}, "554"),
])
def test_a_permanent_refusal_fails_at_once_and_shows(mail_app, smtp_server, script, reason):
    server = smtp_server(Scripted(**script))
    app = mail_app(server.port)
    widget = open_widget(app)
    response = widget.play()
    assert response.status_code == 200 and widget.state() == "open"
    assert 'data-tvwidget-field="email-status" data-status="failed"' in widget.html
    assert 'role="alert"' in widget.html and reason in widget.html
    assert 'data-tvwidget-action="resend"' in widget.html
    make_due(app)
    assert "0 sent" in run_outbox(app)
    assert server.tries == 1 and server.messages == []
    (row,) = messages(app)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 1, None)
    assert "email_failed" in audit_kinds(app)


def test_an_agent_resends_after_a_permanent_failure_with_the_same_message_id(mail_app, smtp_server):
    server = smtp_server(Scripted(rcpt=["550 5.2.2 Mailbox full"]))
    app = mail_app(server.port)
    widget = open_widget(app)
    widget.play()
    assert 'data-status="failed"' in widget.html
    response = widget.post("resend")
    assert response.status_code == 200
    assert 'data-status="sent"' in widget.html
    (envelope,) = server.wait_for(1)
    (row,) = messages(app)
    assert parsed(envelope)["Message-ID"].strip() == row.message_id
    assert (row.status, row.attempts) == ("sent", 1)
    assert audit_kinds(app)[-2:] == ["email_resent", "email_sent"]


# --- server down, server stalled ----------------------------------------------------------------------------

def test_server_down_keeps_the_email_pending_until_the_server_is_back(mail_app, smtp_server):
    port = free_port()  # nothing listens here yet
    app = mail_app(port)
    widget = open_widget(app)
    started = time.monotonic()
    widget.play()
    assert time.monotonic() - started < 3
    assert widget.state() == "open" and 'data-status="pending"' in widget.html
    assert "refused the connection" in widget.html
    server = smtp_server(Scripted(), port=port)
    make_due(app)
    assert "1 sent" in run_outbox(app)
    assert len(server.wait_for(1)) == 1
    assert messages(app)[0].status == "sent"


def test_a_stalled_server_does_not_hold_up_the_widget(mail_app):
    with stalled_smtp() as port:
        app = mail_app(port, SMTP_TIMEOUT=1)
        widget = open_widget(app)
        started = time.monotonic()
        response = widget.play()
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 1 + 1.5, elapsed  # one SMTP_TIMEOUT, plus the sandbox's own time
    assert widget.state() == "open" and 'data-status="pending"' in widget.html
    assert "did not answer in time" in widget.html
    (row,) = messages(app)
    assert (row.status, row.claimed_until) == ("pending", None)


def test_the_outbox_command_ends_within_its_timeout_on_a_stalled_server(mail_app):
    with stalled_smtp() as port:
        app = mail_app(port, SMTP_TIMEOUT=1)
        open_widget(app).play()
        make_due(app)
        started = time.monotonic()
        output = run_outbox(app)
        assert time.monotonic() - started < 2.5
    assert "1 to retry later" in output


def test_a_server_that_stalls_after_the_data_does_not_hold_up_the_widget_and_a_retry_keeps_the_message_id(
        mail_app, smtp_server):
    """The server greets, takes the envelope and the message, then does not answer in time (checklist 21)."""
    server = smtp_server(Scripted(delay=3.0))
    app = mail_app(server.port, SMTP_TIMEOUT=1)
    widget = open_widget(app)
    started = time.monotonic()
    response = widget.play()
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and widget.state() == "open"
    assert elapsed < 1 + 1.5, elapsed  # one SMTP_TIMEOUT, plus the sandbox's own time
    assert 'data-status="pending"' in widget.html and "did not answer in time" in widget.html
    (row,) = messages(app)
    assert (row.status, row.attempts, row.claimed_until) == ("pending", 1, None)

    server.delay = 0  # the server recovers; whether it kept the stalled copy or not, the retry is the same mail
    make_due(app)
    assert "1 sent" in run_outbox(app)
    time.sleep(3.2)  # the stalled copy, if the server keeps it, lands now
    ids = {parsed(envelope)["Message-ID"].strip() for envelope in server.messages}
    assert 1 <= len(server.messages) <= 2 and ids == {messages(app)[0].message_id}
    assert messages(app)[0].status == "sent"


# --- exactly once -----------------------------------------------------------------------------------------

def test_two_concurrent_outbox_runs_send_each_message_once(mail_app, smtp_server):
    port = free_port()
    app = mail_app(port)
    for number in range(6):
        open_widget(app, ticket=ticket_claim(f"T-{number}")).play()  # mail down: all pending
    assert {row.status for row in messages(app)} == {"pending"}
    server = smtp_server(Scripted(delay=0.1), port=port)
    make_due(app)

    barrier = threading.Barrier(2)
    outcomes, errors = [], []

    def run():
        try:
            with app.app_context():
                barrier.wait(5)
                outcomes.append(outbox.send_due())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sum(outcome["sent"] for outcome in outcomes) == 6
    assert len(server.wait_for(6)) == 6
    time.sleep(0.3)
    ids = [parsed(envelope)["Message-ID"] for envelope in server.messages]
    assert len(ids) == len(set(ids)) == 6
    assert {row.status for row in messages(app)} == {"sent"}


@pytest.mark.slow
def test_two_outbox_send_commands_in_separate_processes_send_each_message_once(mail_app, smtp_server,
                                                                                database_url):
    """``flask --app wsgi tvwidget outbox send`` from cron on two machines at once (one shared database)."""
    port = free_port()
    app = mail_app(port)
    for number in range(6):
        open_widget(app, ticket=ticket_claim(f"T-{number}")).play()
    server = smtp_server(Scripted(delay=0.2), port=port)
    make_due(app)
    env = os.environ | {
        "TVWIDGET_ENV": "development", "TVWIDGET_SQLALCHEMY_DATABASE_URI": database_url,
        "TVWIDGET_MAIL_SERVER": "127.0.0.1", "TVWIDGET_MAIL_PORT": str(port),
        "TVWIDGET_MAIL_DEFAULT_SENDER": "support@helpdesk.example", "TVWIDGET_SMTP_TIMEOUT": "3",
    }
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "tvwidget", "outbox", "send"]
    runs = [subprocess.Popen(command, cwd=PACKAGE_DIR.parent, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    sent = sum(int(out.split(" sent")[0].split()[-1]) for out, _ in outputs)
    assert sent == 6, outputs
    time.sleep(0.3)
    ids = [parsed(envelope)["Message-ID"] for envelope in server.wait_for(6)]
    assert len(ids) == len(set(ids)) == 6
    assert {row.status for row in messages(app)} == {"sent"}


def test_a_crash_after_the_server_took_the_message_resends_it_with_the_same_message_id(mail_app, smtp_server,
                                                                                       monkeypatch):
    """Checklist 22: SMTP accepted, the process died before recording it; the lease runs out, cron resends."""
    server = smtp_server(Scripted())
    app = mail_app(server.port)

    def crash(*args, **kwargs):
        raise SystemExit("killed between SMTP and the database")

    monkeypatch.setattr(delivery.Delivery, "_record", crash)  # after SMTP, before the outcome is recorded
    widget = open_widget(app)
    with pytest.raises(SystemExit):
        widget.play()
    monkeypatch.undo()
    assert len(server.wait_for(1)) == 1
    assert "0 sent" in run_outbox(app)  # still leased to the dead sender
    with app.app_context():
        db.session.execute(sa.update(EmailMessage).values(claimed_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        db.session.remove()
    assert "1 sent" in run_outbox(app)
    first, second = server.wait_for(2)
    assert parsed(first)["Message-ID"].strip() == parsed(second)["Message-ID"].strip() == messages(app)[0].message_id


def test_a_later_widget_request_sends_one_due_message_after_its_response(mail_app, smtp_server):
    port = free_port()
    app = mail_app(port)
    open_widget(app, ticket=ticket_claim("T-1")).play()
    open_widget(app, ticket=ticket_claim("T-2")).play()
    server = smtp_server(Scripted(), port=port)
    make_due(app)
    other = open_widget(app, ticket=ticket_claim("T-3", requester={"name": "No Mail", "email": "nobody"}))
    response = other.play()
    assert server.messages == []  # nothing is sent while the agent waits for the widget
    response.close()  # the server has delivered the response
    assert len(server.wait_for(1)) == 1
    time.sleep(0.2)
    assert len(server.messages) == 1  # at most one per request
    assert sorted(row.status for row in messages(app)) == ["pending", "sent"]


def test_an_invitation_whose_case_closed_before_a_retry_is_not_sent(mail_app, smtp_server):
    port = free_port()
    app = mail_app(port)
    widget = open_widget(app)
    widget.play()
    widget.stop()
    server = smtp_server(Scripted(), port=port)
    make_due(app)
    assert "1 failed" in run_outbox(app)
    assert server.messages == [] and server.tries == 0
    (row,) = messages(app)
    assert row.status == "failed" and "closed or expired" in row.last_error
    with app.app_context():
        assert db.session.scalar(sa.select(ServiceCase.state)) == "closed"
