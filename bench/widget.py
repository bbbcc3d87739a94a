#!/usr/bin/env python3
"""Measure what the widget costs against Flask's own minimal response (issue: widget speed).

Starts gunicorn (2 workers, gthread) serving tvwidget with a connected integration
and, under the same settings, a minimal Flask app rendering a small template; drives
both with wrk in alternating rounds and prints requests/s, p50/p99 latency and the
ratio tvwidget / minimal for:

- launch: GET /embed/widget?token=… (token verification, ticket upsert, jti record,
  case lookup, full render — what one ticket view costs), each request a fresh token;
- status: GET /embed/widget/status?code=… with the widget's credential header (the live-status
  poll an open widget sends every 15 s; at most one poll per case per 15 s asks TeamViewer);
- guard: GET /api/v1/tickets/<id>/service-case and POST /api/v1/tickets/<id>/close
  (the host API calls a helpdesk makes around closing a ticket);

on SQLite and PostgreSQL. Also counts TeamViewer calls during the run (none on launch and
guard; the status poll's shared cache allows one per 15 s) and worker memory after 200 and
after the whole run.

    .venv/bin/python bench/widget.py [--db sqlite|postgresql|both] [--duration 8] [--rounds 3] [--paths launch,status]

Needs wrk (Debian: apt-get install wrk) and, for PostgreSQL, a server at
postgresql+psycopg://postgres@127.0.0.1:5432/ (a throw-away database is created).
"""
import argparse
import html
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EMBED_SECRET = "bench-embed-secret-0123456789abcdef-0123456789"
HOST_API_KEY = "bench-host-api-key-0123456789abcdef"
CASE_CODE = "s119-457-589"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TICKET = {"id": "BENCH-1", "subject": "Outlook crashes on start",
          "requester": {"name": "John Doe", "email": "john.doe@example.com"},
          "category": "PC", "type": "Incident", "priority": "High", "source": "Email", "status": "open"}

WRK_SCRIPT = r"""
local paths = {}
local method = os.getenv("BENCH_METHOD") or "GET"
local headers = {}
headers[os.getenv("BENCH_AUTH_HEADER") or "Authorization"] = os.getenv("BENCH_AUTH")
local next_id = 0
setup = function(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
init = function(args)
  local n = 0
  for line in io.lines(os.getenv("BENCH_PATHS")) do n = n + 1; paths[n] = line end
  -- each thread walks its own stretch of the list so a token is never sent twice
  local threads = tonumber(os.getenv("BENCH_THREADS"))
  counter = math.floor(n / threads) * id
end
request = function()
  counter = counter + 1
  local path = paths[(counter - 1) % #paths + 1]
  if os.getenv("BENCH_AUTH") == nil or os.getenv("BENCH_AUTH") == "" then
    return wrk.format(method, path)
  end
  return wrk.format(method, path, headers)
end
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CountingTeamViewer:
    """Stands in for TeamViewer and counts every call; the open case's session reads as waiting."""

    def __init__(self):
        counter = self
        self.calls = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                counter.calls += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                if self.path.startswith("/api/v1/sessions/"):
                    self.wfile.write(json.dumps({"code": CASE_CODE, "state": "open", "online": False}).encode())
                else:
                    self.wfile.write(b'{"token_valid": true}')

            do_POST = do_PUT = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def prepare_database(kind: str, workdir: Path) -> tuple[str, callable]:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}", lambda: None
    name = f"tvwidget_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop():
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False), drop


def tvwidget_env(database_url: str, teamviewer_url: str) -> dict:
    return os.environ | {
        "TVWIDGET_ENV": "development", "TVWIDGET_SQLALCHEMY_DATABASE_URI": database_url,
        "TVWIDGET_TEAMVIEWER_API_URL": teamviewer_url, "TVWIDGET_EMBED_SECRET": EMBED_SECRET,
        "TVWIDGET_HOST_API_KEY": HOST_API_KEY, "PYTHONPATH": str(ROOT),
    }


def seed(env: dict) -> None:
    """Migrate, connect the integration and open a case on the ticket (the heavier widget view)."""
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    from datetime import timedelta

    from tvwidget import create_app
    from tvwidget.extensions import db
    from tvwidget.host.tokens import parse_ticket, save_ticket
    from tvwidget.storage import secrets
    from tvwidget.storage.models import IntegrationSettings, ServiceCase, utcnow

    app = create_app({"ENV": "development", "SQLALCHEMY_DATABASE_URI": env["TVWIDGET_SQLALCHEMY_DATABASE_URI"]})
    with app.app_context():
        db.session.merge(IntegrationSettings(id=1, token_ciphertext=secrets.encrypt("sandbox-bench-token"),
                                             token_last4="oken", group_name="BOSS"))
        save_ticket(parse_ticket(TICKET))
        now = utcnow()
        db.session.add(ServiceCase(
            ticket_id=TICKET["id"], state="open", idempotency_key=uuid.uuid4().hex, code=CASE_CODE,
            group_name="BOSS", supporter_link="https://get.teamviewer.com/v15/s119457589-AEG8iPEEzz96",
            end_customer_link="https://get.teamviewer.com/v15/s119457589", valid_until=now + timedelta(hours=24),
            opened_at=now, opened_by_id="agent-1", opened_by_name="Alex Morgan"))
        db.session.commit()
        db.engine.dispose()


def tokens(count: int) -> list[str]:
    now = int(time.time())
    base = {"aud": "tvwidget", "iat": now, "exp": now + 3600, "sub": "agent-1", "name": "Alex Morgan",
            "email": "alex@helpdesk.example", "role": "agent", "locale": "en", "tz": "Asia/Tokyo", "ticket": TICKET}
    return [jwt.encode(base | {"jti": uuid.uuid4().hex}, EMBED_SECRET, algorithm="HS256") for _ in range(count)]


def gunicorn(app: str, port: int, env: dict, cwd: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "4", "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", app], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            return process
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{app} did not start: {process.stderr.read().decode()[-2000:]}")


def workers_rss_kib(master: subprocess.Popen) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout.split()
    sizes = []
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        sizes.append(int(re.search(r"VmRSS:\s+(\d+)", status).group(1)))
    return sizes


def wrk(url_base: str, paths_file: Path, script: Path, duration: int, connections: int, threads: int,
        method: str = "GET", auth: str = "", auth_header: str = "Authorization") -> dict:
    env = os.environ | {"BENCH_PATHS": str(paths_file), "BENCH_METHOD": method, "BENCH_AUTH": auth,
                        "BENCH_AUTH_HEADER": auth_header, "BENCH_THREADS": str(threads)}
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--latency",
                          "-s", str(script), url_base], capture_output=True, text=True, env=env).stdout
    def latency_ms(label):
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": latency_ms("50"),
            "p99": latency_ms("99"), "non2xx": int(errors.group(1)) if errors else 0,
            "requests": int(re.search(r"(\d+) requests in", out).group(1))}


def run(kind: str, args) -> list[dict]:
    workdir = Path(tempfile.mkdtemp(prefix=f"tvwidget-bench-{kind}-"))
    teamviewer = CountingTeamViewer()
    database_url, drop = prepare_database(kind, workdir)
    env = tvwidget_env(database_url, teamviewer.url)
    seed(env)
    script = workdir / "bench.lua"
    script.write_text(WRK_SCRIPT)
    # Every round gets tokens of its own: a token works once.
    launch_paths = [workdir / f"launch-{n}.txt" for n in range(args.rounds)]
    for path in launch_paths:
        path.write_text("\n".join(f"/embed/widget?token={t}" for t in tokens(args.duration * 4000)) + "\n")
    status_paths = workdir / "status.txt"
    status_paths.write_text(f"/embed/widget/status?code={CASE_CODE}\n")
    guard_get = workdir / "guard_get.txt"
    guard_get.write_text(f"/api/v1/tickets/{TICKET['id']}/service-case\n")
    guard_close = workdir / "guard_close.txt"
    guard_close.write_text("\n".join(f"/api/v1/tickets/OTHER-{n}/close" for n in range(1000)) + "\n")
    minimal_paths = workdir / "minimal.txt"
    minimal_paths.write_text("/\n")

    tv_port, minimal_port = free_port(), free_port()
    tv = gunicorn("wsgi:app", tv_port, env, ROOT)
    minimal = gunicorn("app:app", minimal_port, os.environ.copy(), ROOT / "bench" / "minimal")
    auth = f"Bearer {HOST_API_KEY}"
    try:
        for _ in range(200):  # warm both up: 200 requests spread over the workers
            requests.get(f"http://127.0.0.1:{minimal_port}/", timeout=5)
        launch_warm = tokens(200)
        for token in launch_warm:
            page = requests.get(f"http://127.0.0.1:{tv_port}/embed/widget", params={"token": token}, timeout=5).text
        credential = json.loads(html.unescape(re.search(r"hx-headers='([^']+)'", page).group(1)))[
            "X-TVWidget-Credential"]
        rss_after_200 = workers_rss_kib(tv)
        calls_before = teamviewer.calls
        started = time.monotonic()
        tv_base = f"http://127.0.0.1:{tv_port}"
        measured = {
            "minimal": lambda round_: wrk(f"http://127.0.0.1:{minimal_port}", minimal_paths, script, args.duration,
                                          args.connections, args.threads),
            "launch": lambda round_: wrk(tv_base, launch_paths[round_], script, args.duration, args.connections,
                                         args.threads),
            "status": lambda round_: wrk(tv_base, status_paths, script, args.duration, args.connections, args.threads,
                                         auth=credential, auth_header="X-TVWidget-Credential"),
            "guard GET": lambda round_: wrk(tv_base, guard_get, script, args.duration, args.connections, args.threads,
                                            auth=auth),
            "guard POST close": lambda round_: wrk(tv_base, guard_close, script, args.duration, args.connections,
                                                   args.threads, method="POST", auth=auth),
        }
        results = {name: [] for name in measured if name == "minimal" or name in args.paths}
        for round_ in range(args.rounds):
            for name in results:
                results[name].append(measured[name](round_))
        served = sum(r["requests"] for name, rs in results.items() if name != "minimal" for r in rs)
        rss_after = workers_rss_kib(tv)
        elapsed = time.monotonic() - started
    finally:
        tv.terminate()
        minimal.terminate()
        tv.wait(10)
        minimal.wait(10)
        drop()
    best = {name: max(rs, key=lambda r: r["rps"]) for name, rs in results.items()}
    rows = []
    for name, result in best.items():
        rows.append({"db": kind, "path": name, **result,
                     "ratio": result["rps"] / best["minimal"]["rps"]})
    print(f"\n== {kind}: {args.rounds} rounds x {args.duration}s, {args.connections} connections, "
          f"wrk -t{args.threads}; best round per path ==")
    print(f"{'path':<18}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'ratio':>8}")
    for row in rows:
        print(f"{row['path']:<18}{row['rps']:>10.0f}{row['p50']:>9.2f}{row['p99']:>9.2f}{row['non2xx']:>9}"
              f"{row['ratio']:>8.2f}")
    print(f"TeamViewer calls during the measured run: {teamviewer.calls - calls_before} in {elapsed:.0f} s "
          f"(status polls of one case; at most {elapsed / 15 + 1:.0f} allowed)")
    print(f"tvwidget worker RSS KiB after 200 requests: {rss_after_200}; after {served + 200} requests: "
          f"{rss_after} ({(sum(rss_after) / sum(rss_after_200) - 1) * 100:+.1f} %)")
    teamviewer.server.shutdown()
    return rows


PATHS = ["launch", "status", "guard GET", "guard POST close"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--paths", type=lambda value: value.split(","), default=PATHS,
                        help=f"comma-separated, of: {','.join(PATHS)} (default: all)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    rows = []
    for kind in (("sqlite", "postgresql") if args.db == "both" else (args.db,)):
        rows += run(kind, args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
