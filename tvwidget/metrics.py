"""Prometheus metrics, served at ``/metrics`` with the host API key.

Two sources, each correct however many processes serve tvwidget:

- what happens inside a request (TeamViewer calls and their latency, plays
  refused, status-cache hits) is counted in the process, with
  ``prometheus_client``; under gunicorn its multiprocess mode adds up every
  worker's counts (``PROMETHEUS_MULTIPROC_DIR``, which the repository's
  ``gunicorn.conf.py`` creates and removes for each gunicorn run);
- what the database already knows (cases opened, closed and expired;
  invitations and webhook events by status and their backlogs; the worker's
  job runs and failures) is counted there when ``/metrics`` is read, so it
  covers every process and every machine.

Labels hold fixed words only (an endpoint template such as
``/sessions/{code}``, an error kind, a job name): never a session code, a
ticket, a name, an address or a token.
"""
import os
import re

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from tvwidget.storage.models import CaseState, EmailMessage, ServiceCase, WebhookEvent, WorkerJob

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Set for gunicorn but reaching another process too (the worker, a flask command): the directory must
    # exist, or the first count would fail.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

REGISTRY = CollectorRegistry()

TEAMVIEWER_REQUESTS = Counter(
    "tvwidget_teamviewer_requests", "TeamViewer Web API calls by endpoint template, method and outcome "
    "(ok or the error kind).", ("endpoint", "method", "outcome"), registry=REGISTRY)
TEAMVIEWER_SECONDS = Histogram(
    "tvwidget_teamviewer_request_seconds", "How long TeamViewer Web API calls took (retries included).",
    ("endpoint", "method"), buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0), registry=REGISTRY)
PLAYS_REFUSED = Counter(
    "tvwidget_plays_refused", "Plays (starting a service case) refused, by cause.", ("cause",), registry=REGISTRY)
STATUS_CACHE = Counter(
    "tvwidget_status_cache", "Live-status polls answered from the shared cache (hit) or that asked "
    "TeamViewer (miss).", ("result",), registry=REGISTRY)
# Bound once: a poll only adds one to a child it already holds.
STATUS_CACHE_HIT = STATUS_CACHE.labels("hit")
STATUS_CACHE_MISS = STATUS_CACHE.labels("miss")

_CODE_SEGMENT = re.compile(r"^s\d{1,3}(-\d{3}){2}$")


def endpoint(path: str) -> str:
    """Return the API path as a template: a session code becomes ``{code}``, any other id ``{id}``."""
    return "/".join("{code}" if _CODE_SEGMENT.match(part) else "{id}" if any(c.isdigit() for c in part) else part
                    for part in path.split("/"))


def teamviewer_call(method: str, path: str, outcome: str, seconds: float) -> None:
    """Count one TeamViewer call."""
    template = endpoint(path)
    TEAMVIEWER_REQUESTS.labels(template, method, outcome).inc()
    TEAMVIEWER_SECONDS.labels(template, method).observe(seconds)


class DatabaseCollector:
    """Counts read from the database at each scrape (needs an app context)."""

    def describe(self):
        return []  # computed at scrape time; nothing to check at registration

    def collect(self):
        from tvwidget.extensions import db

        try:
            yield from self._collect(db.session)
        finally:
            db.session.rollback()

    def _collect(self, session):
        counts = sa.select(ServiceCase.state, sa.func.count()).group_by(ServiceCase.state)
        by_state = dict(session.execute(counts).all())
        cases = CounterMetricFamily("tvwidget_cases", "Service cases opened, closed (by an agent or at "
                                    "TeamViewer) and expired.", labels=("event",))
        cases.add_metric(("opened",), sum(by_state.get(state, 0) for state in
                                          (CaseState.OPEN, CaseState.CLOSED, CaseState.EXPIRED)))
        cases.add_metric(("closed",), by_state.get(CaseState.CLOSED, 0))
        cases.add_metric(("expired",), by_state.get(CaseState.EXPIRED, 0))
        yield cases
        yield from _queue(session, EmailMessage, "tvwidget_invitations", "Invitation emails by status.",
                          ("pending", "sent", "failed"))
        yield from _queue(session, WebhookEvent, "tvwidget_webhook_events", "Host webhook events by status.",
                          ("pending", "delivered", "failed"))
        runs = CounterMetricFamily("tvwidget_worker_job_runs", "Worker job runs, by job.", labels=("job",))
        failures = CounterMetricFamily("tvwidget_worker_job_failures", "Worker job runs that failed, by job.",
                                       labels=("job",))
        last_ok = GaugeMetricFamily("tvwidget_worker_job_last_success_timestamp_seconds",
                                    "When each worker job last ran without failing (Unix time).", labels=("job",))
        for job in session.scalars(sa.select(WorkerJob).order_by(WorkerJob.name)):
            runs.add_metric((job.name,), job.runs)
            failures.add_metric((job.name,), job.failures)
            if job.last_ok_at is not None:
                last_ok.add_metric((job.name,), job.last_ok_at.timestamp())
        yield runs
        yield failures
        yield last_ok


def _queue(session, model, name: str, documentation: str, statuses: tuple[str, ...]):
    counts = dict(session.execute(sa.select(model.status, sa.func.count()).group_by(model.status)).all())
    family = GaugeMetricFamily(name, documentation, labels=("status",))
    for status in statuses:
        family.add_metric((status,), counts.get(status, 0))
    yield family
    backlog = GaugeMetricFamily(name + "_backlog", f"{documentation.split(' by ')[0]} waiting to be sent "
                                "(pending).")
    backlog.add_metric((), counts.get("pending", 0))
    yield backlog


DATABASE = DatabaseCollector()
_SINGLE_PROCESS = CollectorRegistry()
_SINGLE_PROCESS.register(REGISTRY)  # a registry is a collector of its metrics
_SINGLE_PROCESS.register(DATABASE)


def multiprocess_dir() -> str | None:
    """Return the multiprocess directory in use, if any (the variable must be set before the process starts)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def exposition() -> bytes:
    """Return every metric in Prometheus' text format."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(DATABASE)
        return generate_latest(registry)
    return generate_latest(_SINGLE_PROCESS)

