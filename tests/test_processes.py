"""Races across real gunicorn worker processes sharing one database (F3, F13)."""
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tvwidget import create_app
from tvwidget.extensions import db

from .conftest import EMBED_SECRET, HOST_API_KEY, connect, free_port, make_token

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SESSION_JSON = ('{"code": "s123-456-789", "state": "Open", "supporter_link": "https://tv.test/s123456789-x",'
                ' "end_customer_link": "https://tv.test/s123456789", "valid_until": "2099-01-01T00:00:00Z"}')


@pytest.fixture
def teamviewer():
    """A TeamViewer double that is slow to create sessions (a wide race window) and counts calls."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    calls = {"POST": 0, "PUT": 0}
    lock = threading.Lock()

    def create(request):
        with lock:
            calls["POST"] += 1
        time.sleep(0.5)
        return Response(SESSION_JSON, 200, content_type="application/json")

    def close(request):
        with lock:
            calls["PUT"] += 1
        time.sleep(0.2)
        return Response("", 204)

    server.expect_request("/api/v1/sessions", method="POST").respond_with_handler(create)
    server.expect_request("/api/v1/sessions/s123-456-789", method="PUT").respond_with_handler(close)
    server.calls = calls
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def gunicorn(database_url, teamviewer, smtp, tmp_path):
    """tvwidget under gunicorn with 4 worker processes, migrated with ``flask db upgrade``."""
    env = os.environ | {
        "TVWIDGET_ENV": "development",
        "TVWIDGET_SQLALCHEMY_DATABASE_URI": database_url,
        "TVWIDGET_TEAMVIEWER_API_URL": teamviewer.url_for("/api/v1"),
        "TVWIDGET_EMBED_SECRET": EMBED_SECRET,
        "TVWIDGET_HOST_API_KEY": HOST_API_KEY,
        "TVWIDGET_MAIL_SERVER": "127.0.0.1",
        "TVWIDGET_MAIL_PORT": str(smtp.port),
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    app = create_app({"ENV": "development", "SQLALCHEMY_DATABASE_URI": database_url})
    connect(app)
    with app.app_context():
        db.engine.dispose()
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "4", "--threads", "8", "-k", "gthread", "-b", f"127.0.0.1:{port}",
         "--graceful-timeout", "2", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(base + "/embed/widget", timeout=5).close()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(10)
        log.close()


class Agent:
    """One browser tab: a launched widget talking to gunicorn over HTTP."""

    def __init__(self, base: str, **claims):
        self.base = base
        self.http = requests.Session()
        self.html = self.http.get(base + "/embed/widget", params={"token": make_token(**claims)}, timeout=10).text

    def post(self, action: str):
        credential = re.search(r'"X-TVWidget-Credential": "([^"]+)"', self.html).group(1)
        key = re.search(r'"idempotency_key": "([0-9a-f]{32})"', self.html)
        response = self.http.post(self.base + f"/embed/widget/{action}", timeout=30,
                                  data={"idempotency_key": key.group(1)} if key else {},
                                  headers={"X-TVWidget-Credential": credential, "HX-Request": "true",
                                           "Sec-Fetch-Site": "same-origin"})
        self.html = response.text
        return response

    def state(self):
        return re.search(r'data-tvwidget-state="([a-z]+)"', self.html).group(1)

    def close(self):
        self.http.close()


def _all_at_once(agents, action):
    barrier = threading.Barrier(len(agents))
    results = {}

    def go(agent):
        barrier.wait()
        results[agent] = agent.post(action).status_code

    threads = [threading.Thread(target=go, args=(a,)) for a in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def _comments(base):
    return requests.get(base + "/api/v1/tickets/T-1/comments", timeout=10,
                        headers={"Authorization": f"Bearer {HOST_API_KEY}"}).json()["comments"]


def test_24_simultaneous_plays_on_4_workers_make_one_session(gunicorn, teamviewer, smtp):
    agents = [Agent(gunicorn, sub=f"agent-{n}") for n in range(24)]
    try:
        statuses = _all_at_once(agents, "play")
        assert teamviewer.calls["POST"] == 1
        assert set(statuses.values()) == {200}
        assert {a.state() for a in agents} == {"open"}
        assert all("s123-456-789" in a.html for a in agents)
        assert len(smtp.wait_for(1)) == 1
        time.sleep(0.3)
        assert len(smtp.messages) == 1  # one case, one invitation

        stoppers = agents[:6]
        statuses = _all_at_once(stoppers, "stop")
        assert all(status in (200, 409) for status in statuses.values())
        assert [c["kind"] for c in _comments(gunicorn)] == ["closed"]  # one comment, however many stops
        assert all('role="alert"' in a.html or a.state() == "idle" for a in stoppers)
    finally:
        for agent in agents:
            agent.close()


def test_stop_and_play_at_once_end_consistent(gunicorn, teamviewer):
    first, second = Agent(gunicorn), Agent(gunicorn, sub="agent-2")
    try:
        first.post("play")
        second.html = Agent(gunicorn, sub="agent-2").html  # fresh page showing the open case
        statuses = _all_at_once([first, second], "stop")
        assert sorted(statuses.values()) in ([200, 200], [200, 409])
        assert len(_comments(gunicorn)) == 1
        third, fourth = Agent(gunicorn, sub="agent-3"), Agent(gunicorn, sub="agent-4")
        _all_at_once([third, fourth], "play")
        assert teamviewer.calls["POST"] == 2
        assert third.state() == fourth.state() == "open"
        third.close()
        fourth.close()
    finally:
        first.close()
        second.close()
