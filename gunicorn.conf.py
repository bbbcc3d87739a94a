"""gunicorn's settings for tvwidget (read automatically when gunicorn starts in this directory).

``/metrics`` adds up every worker's counts through prometheus_client's
multiprocess mode, which needs ``PROMETHEUS_MULTIPROC_DIR`` set before any
worker starts.  Unless the operator set it (systemd: ``RuntimeDirectory=``),
each gunicorn run gets a fresh, private directory, removed when it exits, so
no counts of an earlier run linger.  Command-line options still win.
"""
import os
import shutil
import tempfile

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made = tempfile.mkdtemp(prefix="tvwidget-metrics-")
else:
    _made = None
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

wsgi_app = "wsgi:app"


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # public API: drops a dead worker's live gauges


def on_exit(server):
    if _made:
        shutil.rmtree(_made, ignore_errors=True)
