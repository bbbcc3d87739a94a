#!/usr/bin/env python3
"""Measure the CPU time tvwidget's app spends per request on each widget path, without a server.

``bench/widget.py`` measures throughput under gunicorn, and on a small shared machine its
rounds differ by up to ±30 %.  This one calls the WSGI apps directly in one thread (no
server, no test client, no network) and reads the process's CPU time, so what it prints
moves only when the code does.  It seeds the same database as ``bench/widget.py`` and,
in the same run, measures the minimal Flask app of ``bench/minimal`` as the baseline.

For each path (launch, status, guard GET, guard POST close) it prints the CPU time per
request: the least, and the median, of 8 batches; and the ratio of the minimal app's
least to this path's least, comparable to ``bench/widget.py``'s ratios.

    .venv/bin/python bench/widget_cpu.py [--db sqlite|postgresql|both] [--requests 2400]

Needs, for PostgreSQL, a server at postgresql+psycopg://postgres@127.0.0.1:5432/ (a
throw-away database is created).  To compare with another commit, run it from a
checkout of that commit (``git worktree add``) with the same venv.
"""
import argparse
import html
import importlib.util
import io
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from werkzeug.test import EnvironBuilder

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import widget as bench  # noqa: E402  (bench/widget.py: the database, the tokens, the fake TeamViewer)

BATCHES = 8


def environ(path: str, method: str = "GET", headers: dict | None = None) -> dict:
    return EnvironBuilder(path=path, method=method, headers=headers or {},
                          base_url="http://127.0.0.1:5000").get_environ()


def call(app, base: dict) -> None:
    """Run one request through ``app`` and drain its body; refuse anything but a 2xx/3xx answer."""
    def start_response(status, headers, exc_info=None):
        if status[0] not in "23":
            raise SystemExit(f"{base['PATH_INFO']} answered {status}")

    request = dict(base)
    request["wsgi.input"] = io.BytesIO(b"")
    body = app(request, start_response)
    for _ in body:
        pass
    if hasattr(body, "close"):
        body.close()


def per_request_us(app, environs: list[dict], count: int) -> tuple[float, float]:
    """Return (least, median) CPU µs per request over ``BATCHES`` batches of ``count`` requests in all."""
    size = count // BATCHES
    batches = []
    for batch in range(BATCHES):
        started = time.process_time()
        for n in range(batch * size, (batch + 1) * size):
            call(app, environs[n % len(environs)])
        batches.append((time.process_time() - started) / size * 1e6)
    batches.sort()
    return batches[0], batches[len(batches) // 2]


def minimal_app():
    spec = importlib.util.spec_from_file_location("bench_minimal_app", HERE / "minimal" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Flask finds the app's templates from its module
    spec.loader.exec_module(module)
    return module.app


def run(kind: str, count: int) -> None:
    teamviewer = bench.CountingTeamViewer()
    database_url, drop = bench.prepare_database(kind, Path(tempfile.mkdtemp(prefix=f"tvwidget-cpu-{kind}-")))
    env = bench.tvwidget_env(database_url, teamviewer.url)
    bench.seed(env)
    os.environ.update({key: value for key, value in env.items() if key.startswith("TVWIDGET_")})
    from tvwidget import create_app
    from tvwidget.extensions import db

    app = create_app()
    try:
        tokens = bench.tokens(2 * count + 40)
        warm = [environ(f"/embed/widget?token={token}") for token in tokens[count:]]
        for request in warm[:20]:
            call(app, request)
        page = app.test_client().get("/embed/widget", query_string={"token": tokens[-1]}).get_data(as_text=True)
        credential = json.loads(html.unescape(re.search(r"hx-headers='([^']+)'", page).group(1)))[
            "X-TVWidget-Credential"]
        api = {"Authorization": f"Bearer {bench.HOST_API_KEY}"}
        paths = {
            "launch": [environ(f"/embed/widget?token={token}") for token in tokens[:count]],
            "status": [environ(f"/embed/widget/status?code={bench.CASE_CODE}",
                               headers={"X-TVWidget-Credential": credential})],
            "guard GET": [environ(f"/api/v1/tickets/{bench.TICKET['id']}/service-case", headers=api)],
            "guard POST close": [environ(f"/api/v1/tickets/OTHER-{n}/close", "POST", headers=api)
                                 for n in range(1000)],
        }
        minimal = minimal_app()
        baseline = [environ("/")]
        for _ in range(200):
            call(minimal, baseline[0])
        least_minimal, median_minimal = per_request_us(minimal, baseline, count)
        print(f"\n== {kind}: CPU per request, {count} requests in {BATCHES} batches (least / median) ==")
        print(f"{'path':<18}{'least µs':>10}{'median µs':>11}{'ratio':>8}")
        print(f"{'minimal':<18}{least_minimal:>10.0f}{median_minimal:>11.0f}{1:>8.2f}")
        for name, environs in paths.items():
            for request in (warm[20:40] if name == "launch" else environs[:20]):
                call(app, request)
            least, median = per_request_us(app, environs, count)
            print(f"{name:<18}{least:>10.0f}{median:>11.0f}{least_minimal / least:>8.2f}")
    finally:
        with app.app_context():
            db.engine.dispose()
        drop()
        teamviewer.server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--requests", type=int, default=2400)
    args = parser.parse_args()
    for kind in (("sqlite", "postgresql") if args.db == "both" else (args.db,)):
        run(kind, args.requests)


if __name__ == "__main__":
    main()
