"""Benchmark the TeamViewer Sessions Summary over a million sessions, on SQLite and PostgreSQL.

    .venv/bin/python bench/report.py [--sessions 1000000] [--engines sqlite,postgresql]
                                     [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/]

For each engine: a fresh database (a temporary SQLite file; a throwaway
PostgreSQL database, dropped at the end) is migrated with ``db upgrade`` and
filled by ``seed-demo``.  Then, in the same run, it times a bare
``SELECT count(*)`` over the sessions table (the baseline) and the report: the
JSON for all time, 30 days, 90 days and one technician, the admin page and its
htmx fragment, and, for comparison, the same report summed from the cases
without the roll-ups.  Each figure is the median of several runs after a
warm-up, printed with its ratio to the baseline.  The sessions CSV is streamed
in a child process, which reports rows per second and its peak RSS beside the
peak RSS of an idle child (app loaded, nothing streamed), to show memory
stays flat.

Targets: all time <= 1 s and <= 5x the bare count; 30 days <= 0.3 s.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TVWIDGET_ENV", "development")

import sqlalchemy as sa  # noqa: E402

from tvwidget.demo import create_app  # noqa: E402
from tvwidget.extensions import db  # noqa: E402
from tvwidget.reports import summary as reports  # noqa: E402

HOST_API_KEY = "bench-host-api-key-0123456789abcdef"
ADMIN = {"id": "admin-1", "name": "Bench Admin", "email": "admin@helpdesk.example", "role": "admin",
         "locale": "en", "tz": "Asia/Tokyo"}
RUNS = 9


def make_app(url: str):
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "HOST_API_KEY": HOST_API_KEY, "TESTING": True})


def admin_client(app):
    client = app.test_client()
    with client.session_transaction() as session:
        session["tvwidget_admin"] = ADMIN
    return client


def median_ms(action, runs: int = RUNS) -> float:
    action()  # warm-up: plans, caches, imports
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def get(client, url: str, **headers):
    def run():
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
        return response
    return run


def peak_rss_mb() -> float:
    """Return this process's peak RSS in MB.

    Linux carries ``ru_maxrss`` over from the parent across fork and exec, so
    a child spawned by a process that just seeded a million rows would report
    the parent's peak; the kernel's per-process high-water mark (VmHWM) does
    not, so it is preferred where it exists.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def csv_child(url: str, query: str) -> None:
    """Stream the sessions CSV and print rows, seconds and this process's peak RSS as JSON."""
    app = make_app(url)
    client = admin_client(app)
    rows = size = 0
    started = time.perf_counter()
    if query is not None:
        response = client.get(f"/embed/admin/reports/teamviewer-sessions/sessions.csv?{query}", buffered=False)
        assert response.status_code == 200
        for chunk in response.iter_encoded():
            size += len(chunk)
            rows += chunk.count(b"\r\n")
        response.close()
    print(json.dumps({"rows": max(rows - 1, 0), "bytes": size, "seconds": time.perf_counter() - started,
                      "peak_rss_mb": peak_rss_mb()}))


def run_child(url: str, query: str | None) -> dict:
    command = [sys.executable, __file__, "--csv-child", url] + ([query] if query is not None else [])
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def bench(label: str, url: str, sessions: int) -> list[str]:
    from flask_migrate import upgrade

    app = make_app(url)
    lines = [f"== {label}: {sessions:,} sessions =="]
    with app.app_context():
        upgrade()
        db.session.remove()
    started = time.perf_counter()
    result = app.test_cli_runner().invoke(args=["tvwidget", "seed-demo", "--sessions", str(sessions), "--seed", "1"])
    assert result.exit_code == 0, result.output
    seeded = time.perf_counter() - started
    lines.append(f"seed-demo: {seeded:.1f} s ({sessions / seeded:,.0f} sessions/s)")
    with app.app_context():
        db.engine.dispose()  # measure with fresh connections, as a web process has

        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")  # what autovacuum does to a settled database
        count = median_ms(lambda: db.session.execute(sa.text("SELECT count(*) FROM tvwidget_service_cases")).scalar())
        technician = db.session.scalar(sa.text("SELECT opened_by_id FROM tvwidget_service_cases LIMIT 1"))
        # seed-demo fills the 90 days before today (UTC).  Ranges end yesterday, so that in a zone
        # ahead of UTC both ends of the range fall in office hours: the most rows summed from cases.
        last = datetime.now(UTC).date() - timedelta(days=1)
        month = reports.Filters(last - timedelta(days=29), last, "Asia/Tokyo")
        everything = reports.Filters(date(2000, 1, 1), last, "Asia/Tokyo")
        built = median_ms(lambda: reports.build(everything))
        raw = median_ms(lambda: reports.build(month, use_rollup=False), runs=1)
        db.session.remove()
    api = {"Authorization": f"Bearer {HOST_API_KEY}"}
    client = app.test_client()
    admin = admin_client(app)
    t30 = (last - timedelta(days=29)).isoformat()
    t90 = (last - timedelta(days=89)).isoformat()
    end = last.isoformat()
    base = "/api/v1/reports/teamviewer-sessions"
    page = "/embed/admin/reports/teamviewer-sessions"
    cases = [
        ("JSON all time (2000-01-01 on)", f"{base}?from=2000-01-01&to={end}", client, api, "<= 1 s and <= 5x"),
        ("JSON all time (Asia/Tokyo days)", f"{base}?from=2000-01-01&to={end}&tz=Asia/Tokyo", client, api,
         "<= 1 s and <= 5x"),
        ("JSON 30 days (UTC days)", f"{base}?from={t30}&to={end}", client, api, "<= 0.3 s"),
        ("JSON 30 days (Asia/Tokyo days)", f"{base}?from={t30}&to={end}&tz=Asia/Tokyo", client, api, "<= 0.3 s"),
        ("JSON 90 days (UTC days)", f"{base}?from={t90}&to={end}", client, api, ""),
        ("JSON 90 days (Asia/Kolkata days)", f"{base}?from={t90}&to={end}&tz=Asia/Kolkata", client, api, ""),
        ("JSON one technician, all time", f"{base}?from=2000-01-01&to={end}&technician={technician}", client, api, ""),
        ("JSON one technician, 30 days (Tokyo)", f"{base}?from={t30}&to={end}&tz=Asia/Tokyo&technician={technician}",
         client, api, ""),
        ("admin page, default 30 days (Tokyo)", page, admin, {}, "<= 0.3 s"),
        ("admin page, all time (Tokyo)", f"{page}?from=2000-01-01&to={end}", admin, {}, "<= 1 s"),
        ("admin page htmx fragment, 90 days", f"{page}?from={t90}&to={end}", admin, {"HX-Request": "true"}, ""),
    ]
    lines.append(f"{'baseline: SELECT count(*) FROM tvwidget_service_cases':<58}{count:9.1f} ms")
    lines.append(f"{'what':<44}{'median':>12}{'x count':>10}  target")
    verdicts = {}
    for what, url_, who, headers, target in cases:
        took = median_ms(get(who, url_, **headers))
        verdict = ""
        if target == "<= 1 s and <= 5x":
            verdict = "OK" if took <= 1000 and took <= 5 * count else "MISSED"
        elif target == "<= 1 s":
            verdict = "OK" if took <= 1000 else "MISSED"
        elif target == "<= 0.3 s":
            verdict = "OK" if took <= 300 else "MISSED"
        verdicts[what] = verdict
        lines.append(f"{what:<44}{took:9.1f} ms{took / count:9.2f}x  {target} {verdict}".rstrip())
    lines.append(f"{'(reports.build alone, all time, Tokyo)':<44}{built:9.1f} ms{built / count:9.2f}x  "
                 "no HTTP, no JSON")
    lines.append(f"{'(no roll-ups: 30 days Tokyo summed from cases)':<44}{raw:9.1f} ms{raw / count:9.2f}x  "
                 "for comparison")
    idle = run_child(url, None)
    month_csv = run_child(url, f"from={t30}&to={end}")
    every = run_child(url, f"from=2000-01-01&to={end}")
    for what, figures in (("CSV, 30 days", month_csv), ("CSV, every session", every)):
        lines.append(f"{what:<22}{figures['rows']:>10,} rows {figures['seconds']:7.1f} s "
                     f"{figures['rows'] / figures['seconds']:>10,.0f} rows/s  {figures['bytes'] / 2**20:7.1f} MiB  "
                     f"peak RSS {figures['peak_rss_mb']:.0f} MB")
    lines.append(f"{'idle child (no CSV)':<22}{'':>46}peak RSS {idle['peak_rss_mb']:.0f} MB")
    with app.app_context():
        db.engine.dispose()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/")
    parser.add_argument("--csv-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.csv_child:
        csv_child(args.csv_child[0], args.csv_child[1] if len(args.csv_child) > 1 else None)
        return
    print(f"tvwidget report benchmark, {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, "
          f"SQLite {__import__('sqlite3').sqlite_version}", flush=True)
    for engine in args.engines.split(","):
        if engine == "sqlite":
            with tempfile.TemporaryDirectory(prefix="tvwidget-bench-") as folder:
                lines = bench("SQLite", f"sqlite:///{folder}/bench.db", args.sessions)
        elif engine == "postgresql":
            server = sa.make_url(args.postgres_url)
            admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
            name = f"tvwidget_bench_{uuid.uuid4().hex[:10]}"
            with admin.connect() as connection:
                version = connection.exec_driver_sql("SHOW server_version").scalar()
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
            try:
                url = server.set(database=name).render_as_string(hide_password=False)
                lines = bench(f"PostgreSQL {version}", url, args.sessions)
            finally:
                with admin.connect() as connection:
                    connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.dispose()
        else:
            raise SystemExit(f"unknown engine {engine!r}")
        print("\n".join(lines), flush=True)
        print(flush=True)


if __name__ == "__main__":
    main()
