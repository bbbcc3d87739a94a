"""``tvwidget worker`` as real processes: SMTP coming back, two copies, SIGTERM, the shared schedule."""
import asyncio
import email
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from email import policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from tvwidget.demo.sandbox import create_sandbox_app
from tvwidget.extensions import db
from tvwidget.ops import worker
from tvwidget.storage.models import EmailMessage, WorkerJob, utcnow

from ..conftest import EMBED_SECRET, HOST_API_KEY, Mailbox, connect, free_port, open_widget, ticket_claim
from ..live import serve
from ..storage.test_outage import CuttableProxy

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
ENCRYPTION_KEYS = "Ws0dQ7C4Ho3T9pvf9_kS7OTZHJxmRvqm2JhTn2v9h3E="  # as conftest's app_factory


@pytest.fixture(scope="module")
def sandbox_url():
    """This module's own TeamViewer sandbox: its plays leave sessions open, so they count against no one else's
    limit."""
    with serve(create_sandbox_app()) as base_url:
        yield base_url + "/api/v1"


class SlowMailbox(Mailbox):
    """A mailbox that takes ``delay`` seconds to accept each message (``started`` counts DATA commands seen)."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay, self.started = delay, 0

    async def handle_DATA(self, server, session, envelope):
        self.started += 1
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


class SMTPServer:
    """aiosmtpd on a fixed loopback port that can be down and come back."""

    def __init__(self, handler=None):
        self.port = free_port()
        self.handler = handler or Mailbox()
        self.controller = None

    def up(self):
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def down(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def mail_server():
    server = SMTPServer()
    yield server
    server.down()


@pytest.fixture
def make_app(app_factory):
    def make(port: int):
        app = app_factory(MAIL_PORT=port)
        connect(app)
        return app
    return make


class Worker:
    """``flask --app wsgi tvwidget worker`` in its own process; ``log()`` is what it wrote so far."""

    def __init__(self, database_url: str, sandbox_url: str, smtp_port: int, tmp_path: Path, name: str = "worker",
                 intervals: str = '{"outbox": 0.3, "webhook": 1, "expiry": 1, "connections": 60, "reconcile": 60}'):
        self.path = tmp_path / f"{name}.log"
        env = os.environ | {
            "TVWIDGET_ENV": "development",
            "TVWIDGET_SQLALCHEMY_DATABASE_URI": database_url,
            "TVWIDGET_TEAMVIEWER_API_URL": sandbox_url,
            "TVWIDGET_EMBED_SECRET": EMBED_SECRET,
            "TVWIDGET_HOST_API_KEY": HOST_API_KEY,
            "TVWIDGET_ENCRYPTION_KEYS": ENCRYPTION_KEYS,
            "TVWIDGET_MAIL_SERVER": "127.0.0.1",
            "TVWIDGET_MAIL_PORT": str(smtp_port),
            "TVWIDGET_MAIL_DEFAULT_SENDER": "support@helpdesk.example",
            "TVWIDGET_SMTP_TIMEOUT": "5",
            "TVWIDGET_WORKER_INTERVALS": intervals,
            "PYTHONPATH": str(ROOT),
        }
        self.file = open(self.path, "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "tvwidget", "worker"],
                                        cwd=ROOT, env=env, stdout=self.file, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log())
            if found:
                return found
            assert self.process.poll() is None, f"the worker died:\n{self.log()}"
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not in the worker's log:\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.file.close()


@pytest.fixture
def workers(database_url, sandbox_url, tmp_path):
    started = []

    def start(smtp_port: int, **kwargs):
        started.append(Worker(database_url, sandbox_url, smtp_port, tmp_path, name=f"worker{len(started)}",
                              **kwargs))
        return started[-1]

    yield start
    for each in started:
        each.stop()


def _messages(app):
    with app.app_context():
        rows = db.session.execute(sa.select(EmailMessage.__table__).order_by(EmailMessage.id)).all()
        db.session.rollback()
        return rows  # plain rows: they outlive the session


def _make_due(app):
    """Move the outbox's first retry (a minute after the failed try) to now: the test does not wait that minute."""
    with app.app_context():
        db.session.execute(sa.update(EmailMessage).where(EmailMessage.status == "pending")
                           .values(next_attempt_at=utcnow()))
        db.session.commit()


def _play(app, ticket: str) -> None:
    widget = open_widget(app, ticket=ticket_claim(ticket))
    widget.play()
    assert widget.state() == "open", widget.html


def _message_ids(mailbox) -> list[str]:
    return [email.message_from_bytes(envelope.content, policy=policy.default)["Message-ID"].strip().strip("<>")
            for envelope in mailbox.messages]


def test_a_mail_queued_while_smtp_was_down_goes_out_once_smtp_is_back(make_app, mail_server, workers):
    app = make_app(mail_server.port)
    _play(app, "T-1")  # the play's own try meets a closed port
    [message] = _messages(app)
    assert (message.status, message.attempts) == ("pending", 1) and message.last_error

    process = workers(mail_server.port)
    process.wait_for(r"job outbox: sent 0")  # SMTP still down: the message is not due before its retry time
    _make_due(app)
    process.wait_for(r"job outbox: sent 0, retry 1")  # tried again while SMTP is down: retried later, alive
    assert process.process.poll() is None

    mail_server.up()
    _make_due(app)
    process.wait_for(r"job outbox: sent 1")
    assert mail_server.handler.wait_for(1) and len(mail_server.handler.messages) == 1
    assert _message_ids(mail_server.handler) == [message.message_id.strip("<>")]
    [sent] = _messages(app)
    assert (sent.status, sent.attempts) == ("sent", 3)
    time.sleep(1.0)  # more outbox runs: nothing is sent again
    assert len(mail_server.handler.messages) == 1
    assert process.stop() == 0


def test_two_workers_never_send_a_message_twice(make_app, workers):
    server = SMTPServer(SlowMailbox(0.05))
    app = make_app(server.port)
    tickets = [f"T-{n}" for n in range(12)]
    for ticket in tickets:
        _play(app, ticket)  # SMTP down: every invitation waits in the outbox
    queued = [message.message_id.strip("<>") for message in _messages(app)]
    assert len(queued) == len(tickets)

    server.up()
    try:
        _make_due(app)
        first, second = workers(server.port), workers(server.port)
        deadline = time.monotonic() + 60
        while len(server.handler.messages) < len(tickets) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # both keep running their outbox job for a while
        received = Counter(_message_ids(server.handler))
        assert sorted(received) == sorted(queued)
        assert set(received.values()) == {1}
        assert {message.status for message in _messages(app)} == {"sent"}
        # The two logs together account for every message exactly once.
        assert sum(int(n) for each in (first, second) for n in re.findall(r"job outbox: sent (\d+)", each.log())) \
            == len(tickets)
        assert first.stop() == 0 and second.stop() == 0
    finally:
        server.down()


def test_sigterm_stops_an_idle_worker_at_once_and_a_busy_one_after_its_current_message(make_app, workers):
    server = SMTPServer(SlowMailbox(3.0))
    app = make_app(server.port)
    idle = workers(server.port)
    idle.wait_for(r"job outbox: sent 0")
    started = time.monotonic()
    assert idle.stop() == 0
    assert time.monotonic() - started < 3
    assert "SIGTERM received" in idle.log() and "worker stopped" in idle.log()

    _play(app, "T-1")
    _play(app, "T-2")
    server.up()
    try:
        _make_due(app)
        busy = workers(server.port)
        deadline = time.monotonic() + 30
        while server.handler.started < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.handler.started == 1  # the first message is in the middle of its DATA
        started = time.monotonic()
        assert busy.stop() == 0
        assert time.monotonic() - started < 10
        log = busy.log()
        assert "job outbox: sent 1, retry 0, failed 0, taken 0" in log and "worker stopped" in log
        # It finished the message it held and left the other unclaimed for the next worker.
        first, second = _messages(app)
        assert (first.status, second.status) == ("sent", "pending")
        assert second.claimed_until is None
        assert len(server.handler.messages) == 1
    finally:
        server.down()


def test_copies_share_each_jobs_schedule(app):
    """However many copies ask, a job runs once per interval."""
    ran = []
    job = worker.Job("probe", 3600, lambda stopping: ran.append(1) or {"probed": 1})
    with app.app_context():
        worker.JOBS["probe"] = job
        try:
            results = [worker.run_safely(job) for _ in range(3)]
            assert [result.ran for result in results] == [True, False, False] and ran == [1]
            row = db.session.get(WorkerJob, "probe")
            assert (row.runs, row.failures, row.last_outcome, row.last_counts) == (1, 0, "ok", "probed 1")
        finally:
            del worker.JOBS["probe"]


def test_a_failing_job_is_counted_and_retried_soon_while_the_others_run(app, caplog):
    def broken(stopping):
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("postgresql://u:secret@db/x is down"))

    with app.app_context():
        worker.JOBS["broken"] = worker.Job("broken", 3600, broken)
        try:
            results = worker.run_due()
            assert {result.name: result.ok for result in results}["broken"] is False
            assert all(result.ok for result in results if result.name != "broken")
            row = db.session.get(WorkerJob, "broken")
            assert (row.runs, row.failures) == (1, 1)
            assert row.last_outcome == "database unavailable (OperationalError)"
            assert (row.next_run_at - utcnow()).total_seconds() <= worker.RETRY_AFTER_FAILURE
        finally:
            del worker.JOBS["broken"]
    assert "secret" not in caplog.text
    assert "job broken failed" in caplog.text


@pytest.mark.postgres
def test_the_worker_survives_a_database_outage_and_recovers_by_itself(database_url, sandbox_url, make_app,
                                                                     mail_server, tmp_path):
    if not database_url.startswith("postgresql"):
        pytest.skip("the outage is cut between the worker and PostgreSQL's TCP port")
    url = sa.engine.make_url(database_url)
    proxy = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    app = make_app(mail_server.port)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    process = Worker(through_proxy, sandbox_url, mail_server.port, tmp_path)
    try:
        process.wait_for(r"job outbox: sent 0")
        proxy.cut()
        process.wait_for(r"job outbox (failed after [0-9.]+ s|not run): database unavailable", timeout=60)
        time.sleep(2)
        assert process.process.poll() is None  # still running, trying again
        assert "Traceback" not in process.log()

        _play(app, "T-1")  # meanwhile a play (the web side has its own connection) meets SMTP down too
        mail_server.up()
        _make_due(app)
        proxy.restore()
        process.wait_for(r"job outbox: sent 1", timeout=60)
        assert len(mail_server.handler.wait_for(1)) == 1
        assert [m.status for m in _messages(app)] == ["sent"]
        assert process.stop() == 0
    finally:
        proxy.close()
        if process.process.poll() is None:
            process.stop()
