"""``flask --app wsgi tvwidget worker``: every periodic job in one long-running process.

The jobs (outbox, webhook, expiry, connection sync, reconcile, and whatever
``register`` adds) each have an interval.  Their schedule is shared through
``tvwidget_worker_jobs``: a copy runs a job only after moving the job's
``next_run_at`` on with one conditional UPDATE, so with any number of copies
on any number of machines each job runs once per interval, and the items a
job handles keep their own claims (the outbox's lease, the webhook's, the
tracking rows') besides.  Between runs the process sleeps until the next job
is due.  Every run logs one line with its counts and is recorded (runs,
failures, last outcome) for ``/metrics`` and ``tvwidget doctor``.

A failure (the database or SMTP away, TeamViewer down) fails that run only:
it is logged and counted, and the job is tried again after
``RETRY_AFTER_FAILURE`` at the latest.  SIGTERM and SIGINT stop the process
within seconds: a job stops between two items (an invitation, a webhook
event, a case), so it never walks away holding a lease it could release.

``flask --app wsgi tvwidget run-due`` runs every due job once, for hosts
that prefer a single cron line.  No scheduler library: claiming a row and
waiting on an ``Event`` is all this needs, and the schedule must live in the
database anyway so that copies agree on it.
"""
import dataclasses
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import click
import sqlalchemy as sa
from flask.cli import with_appcontext
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from tvwidget import config
from tvwidget.cases import lifecycle as cases
from tvwidget.extensions import db
from tvwidget.host import webhook
from tvwidget.mail import outbox
from tvwidget.storage import delivery
from tvwidget.storage.models import WorkerJob, utcnow
from tvwidget.storage.secrets import SecretUnreadable
from tvwidget.teamviewer.client import TeamViewerError

log = logging.getLogger(__name__)

# After a failed run (or a failed claim) the job is tried again at most this long after.
RETRY_AFTER_FAILURE = 15.0
# The longest single sleep: a changed schedule (another copy's run) is noticed at least this often.
MAX_SLEEP = 60.0

Stopping = Callable[[], bool]


@dataclasses.dataclass(frozen=True)
class Job:
    """A periodic job: ``run(stopping)`` does one pass and returns its counts (a dict, a dataclass, a number or None).

    ``run`` should look at ``stopping()`` between items and return early once it is True.
    """

    name: str
    every: float  # seconds, unless TVWIDGET_WORKER_INTERVALS names another
    run: Callable[[Stopping], object]


JOBS: dict[str, Job] = {}


def register(name: str, every: float, run: Callable[[Stopping], object]) -> Job:
    """Add (or replace) a periodic job; every worker and ``run-due`` then runs it on its own schedule."""
    JOBS[name] = job = Job(name, float(every), run)
    return job


def interval(job: Job) -> float:
    """Return the job's interval in seconds (``TVWIDGET_WORKER_INTERVALS`` may override the default)."""
    overrides = config.setting("WORKER_INTERVALS", None) or {}
    return float(overrides.get(job.name, job.every))


# --- the jobs -----------------------------------------------------------------------------------------------


def _drain(queue: delivery.Delivery, stopping: Stopping) -> dict | None:
    """Deliver each due item of ``queue`` (claiming it first); count the outcomes and what is left."""
    if not queue.enabled():
        return None
    outcome = queue.send_due(stopping=stopping)
    return {queue.done: outcome[queue.done], "retry": outcome["pending"], "failed": outcome["failed"],
            "taken": outcome[delivery.TAKEN], "backlog": queue.backlog()}


def _outbox(stopping: Stopping) -> dict:
    return _drain(outbox.OUTBOX, stopping)


def _webhook(stopping: Stopping) -> dict | None:
    return _drain(webhook.QUEUE, stopping)


def _expiry(stopping: Stopping) -> dict:
    expired = cases.expire_overdue()
    db.session.commit()
    return {"expired": expired}


def _connections(stopping: Stopping):
    from tvwidget.cases import connections

    return connections.sync(stopping=stopping)


def _reconcile(stopping: Stopping):
    from tvwidget.cases import reconcile

    return reconcile.run()


def _directory(stopping: Stopping) -> dict:
    from tvwidget.teamviewer import directory

    # Due at most once per DIRECTORY_REFRESH_SECONDS across every process and play (directory's own claim).
    return directory.refresh_due()


register("outbox", 15, _outbox)
register("webhook", 15, _webhook)
register("expiry", 60, _expiry)
register("connections", 300, _connections)
register("reconcile", 300, _reconcile)
register("directory", 60, _directory)


# --- claiming, running and recording ------------------------------------------------------------------------


def _claim(name: str, every: float, now: datetime) -> tuple[bool, datetime | None]:
    """Take the job's run that is due now; return (claimed, when the job is next due)."""
    db.session.rollback()  # the claim is the transaction's first statement (SQLite takes its write lock there)
    due = now + timedelta(seconds=every)
    claimed = db.session.execute(
        sa.update(WorkerJob)
        .where(WorkerJob.name == name, sa.or_(WorkerJob.next_run_at.is_(None), WorkerJob.next_run_at <= now))
        .values(next_run_at=due, last_started_at=now)
        .execution_options(synchronize_session=False))
    if claimed.rowcount == 1:
        db.session.commit()
        return True, due
    row = db.session.get(WorkerJob, name, populate_existing=True)
    if row is not None:
        next_run_at = row.next_run_at
        db.session.rollback()
        return False, next_run_at
    try:
        with db.session.begin_nested():
            db.session.add(WorkerJob(name=name, next_run_at=due, last_started_at=now, runs=0, failures=0))
    except IntegrityError:
        db.session.rollback()
        return False, due  # another copy created the row (and so holds this run) first
    db.session.commit()
    return True, due


def describe(counts) -> str:
    """Return a job's counts as one short line: ``sent 2, retry 0`` (or ``nothing to do``)."""
    if counts is None:
        return "nothing to do (not configured or not connected)"
    if dataclasses.is_dataclass(counts):
        counts = dataclasses.asdict(counts)
    if isinstance(counts, dict):
        return ", ".join(f"{key} {value}" for key, value in counts.items()) or "nothing to do"
    return str(counts)


def failure_name(exc: BaseException) -> str:
    """Return what a log line and the jobs table say about a failure: never a message that may hold a secret."""
    if isinstance(exc, TeamViewerError):
        return f"TeamViewer {exc.kind}"  # kinds are fixed words; the message may quote TeamViewer
    if isinstance(exc, SecretUnreadable):
        return "stored TeamViewer token unreadable (an admin must enter it again)"
    if isinstance(exc, SQLAlchemyError):
        return f"database unavailable ({type(exc).__name__})"  # a driver's message may carry the URL
    return type(exc).__name__


@dataclasses.dataclass
class RunResult:
    name: str
    ran: bool
    ok: bool = True
    next_run_at: datetime | None = None


def run_job(job: Job, stopping: Stopping = lambda: False) -> RunResult:
    """Run ``job`` if its shared schedule says it is due; log one line and record the run."""
    every = interval(job)
    now = utcnow()
    claimed, next_run_at = _claim(job.name, every, now)
    if not claimed:
        return RunResult(job.name, False, next_run_at=next_run_at)
    started = time.monotonic()
    counts = error = None
    try:
        counts = job.run(stopping)
    except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the others or the process
        error = exc
    finally:
        db.session.rollback()
    seconds = time.monotonic() - started
    if error is None:
        log.info("job %s: %s (%.2f s)", job.name, describe(counts), seconds)
    elif isinstance(error, (TeamViewerError, SecretUnreadable, SQLAlchemyError)):
        log.warning("job %s failed after %.2f s: %s", job.name, seconds, failure_name(error))
    else:
        log.error("job %s failed after %.2f s: %s", job.name, seconds, failure_name(error),
                  exc_info=(type(error), error, error.__traceback__))
    _record(job.name, counts, error, every)
    return RunResult(job.name, True, error is None,
                     next_run_at=next_run_at if error is None
                     else utcnow() + timedelta(seconds=min(every, RETRY_AFTER_FAILURE)))


def _record(name: str, counts, error, every: float) -> None:
    finished = utcnow()
    values = {"last_finished_at": finished, "runs": WorkerJob.runs + 1,
              "last_counts": describe(counts)[:500] if error is None else None,
              "last_outcome": "ok" if error is None else failure_name(error)[:200]}
    if error is None:
        values["last_ok_at"] = finished
    else:
        values["failures"] = WorkerJob.failures + 1
        # Try again soon rather than after the whole interval.
        values["next_run_at"] = finished + timedelta(seconds=min(every, RETRY_AFTER_FAILURE))
    try:
        db.session.execute(sa.update(WorkerJob).where(WorkerJob.name == name).values(**values)
                           .execution_options(synchronize_session=False))
        db.session.commit()
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("job %s: its run could not be recorded: %s", name, failure_name(exc))


def run_safely(job: Job, stopping: Stopping = lambda: False) -> RunResult:
    """``run_job``, surviving a database that cannot even be asked whether the job is due."""
    try:
        return run_job(job, stopping)
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("job %s not run: %s", job.name, failure_name(exc))
        return RunResult(job.name, False, False, utcnow() + timedelta(seconds=min(interval(job), RETRY_AFTER_FAILURE)))
    finally:
        db.session.remove()  # a fresh session (and pooled connection) for the next run


def run_due(stopping: Stopping = lambda: False) -> list[RunResult]:
    """Run every job whose shared schedule says it is due, once; return what happened to each."""
    return [run_safely(job, stopping) for job in list(JOBS.values()) if not stopping()]


def serve(stop: threading.Event) -> None:
    """Run the jobs on their schedules until ``stop`` is set."""
    log.info("worker started: %s", ", ".join(f"{job.name} every {interval(job):g} s" for job in JOBS.values()))
    next_at = {name: 0.0 for name in JOBS}  # monotonic time each job is next worth trying here
    while not stop.is_set():
        for job in list(JOBS.values()):
            if stop.is_set() or time.monotonic() < next_at.get(job.name, 0.0):
                continue
            result = run_safely(job, stop.is_set)
            wait = (result.next_run_at - utcnow()).total_seconds() if result.next_run_at else RETRY_AFTER_FAILURE
            # A little jitter, so that copies started together do not race for every run.
            next_at[job.name] = time.monotonic() + max(0.05, wait) + random.uniform(0, 0.05)
        sleep = min(next_at.values(), default=time.monotonic() + MAX_SLEEP) - time.monotonic()
        stop.wait(min(max(sleep, 0.0), MAX_SLEEP))
    log.info("worker stopped")


# --- commands -----------------------------------------------------------------------------------------------


def _log_to_stderr() -> None:
    """Show the worker's lines (INFO and up) unless the host configured logging already."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("tvwidget").setLevel(logging.INFO)


@click.command("worker")
@with_appcontext
def worker_command():
    """Run every periodic job on its schedule until SIGTERM or SIGINT (safe to run several copies)."""
    _log_to_stderr()
    stop = threading.Event()
    first = []

    def handle(signum, frame):
        if first and time.monotonic() - first[0] > 2:
            raise SystemExit(1)  # asked again later (not the same Ctrl-C reaching every process): stop now
        if not first:
            first.append(time.monotonic())
            stop.set()
            log.info("%s received: stopping after the current item", signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    serve(stop)


@click.command("run-due")
@with_appcontext
def run_due_command():
    """Run every job that is due once and exit (for one cron line); exit 1 if a job failed."""
    _log_to_stderr()
    results = run_due()
    ran = [result.name for result in results if result.ran]
    click.echo(f"ran: {', '.join(ran) or 'nothing was due'}")
    if not all(result.ok for result in results):
        click.get_current_context().exit(1)
