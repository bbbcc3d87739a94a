"""``flask --app wsgi tvwidget seed-demo``: realistic synthetic closed cases for demos and benchmarks.

Each case comes with the outcome its agent chose at stop and the
TeamViewer connections its connection report lists.
"""
import bisect
import collections
import itertools
import math
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import click
import sqlalchemy as sa

from tvwidget.demo.commands import demo_cli
from tvwidget.extensions import db
from tvwidget.reports import rollup
from tvwidget.storage.models import CaseState, Connection, ServiceCase, Ticket

DAYS = 90
CHUNK = 10_000
EXPIRED_SHARE = 0.05
FOLLOW_UP_SHARE = 0.12  # a second session on the ticket of the session before
VALIDITY = timedelta(hours=24)
JOINED_SHARE = 0.93  # closed cases the customer joined: the rest have no connection
RECONNECT_SHARE = 0.15  # joined cases with a second connection after a drop
FORGOTTEN_SHARE = 0.4  # expired cases an agent connected to, then forgot to stop
NO_OUTCOME_SHARE = 0.04  # closed by another tool, without the stop form: counted as unknown
# (outcome, weight) when the customer joined, and when nobody did.
OUTCOMES_JOINED = (("resolved", 76), ("unresolved", 15), ("unknown", 9))
OUTCOMES_ALONE = (("unresolved", 55), ("unknown", 45))

# id, name, e-mail, time zone (their working hours), share of the sessions, pace (x the usual duration)
TECHNICIANS = (
    ("agent-2", "田中 愛子", "aiko.tanaka@helpdesk.example", "Asia/Tokyo", 20, 0.9),
    ("tech-3", "佐藤 健太", "kenta.sato@helpdesk.example", "Asia/Tokyo", 17, 1.1),
    ("agent-1", "Alex Morgan", "alex.morgan@helpdesk.example", "Europe/London", 14, 1.0),
    ("tech-6", "Priya Natarajan", "priya.natarajan@helpdesk.example", "Asia/Kolkata", 14, 0.8),
    ("tech-4", "鈴木 美咲", "misaki.suzuki@helpdesk.example", "Asia/Tokyo", 12, 1.25),
    ("tech-5", "高橋 翔", "sho.takahashi@helpdesk.example", "Asia/Tokyo", 10, 1.05),
    ("tech-7", "Lukas Becker", "lukas.becker@helpdesk.example", "Europe/Berlin", 8, 0.95),
    ("tech-8", "Maria Santos", "maria.santos@helpdesk.example", "America/New_York", 5, 1.4),
)
# The seed article's values; a few tickets have no category. (value, weight, median minutes)
CATEGORIES = (("Support", 36, 14), ("PC", 30, 22), ("Network", 18, 31), ("Printer", 13, 11), (None, 3, 16))
TYPES = (("Service request", 45), ("Incident", 40), ("Request", 15))
# (value, weight, pace)
PRIORITIES = (("Urgent", 7, 1.35), ("High", 21, 1.1), ("Medium", 47, 1.0), ("Low", 25, 0.85))
SOURCES = (("Technician portal", 33), ("User portal", 42), ("Email", 25))
SUBJECTS = {
    "Support": ("Cannot sign in to the VPN", "Teams のマイクが認識されない", "Excel macro stopped working",
                "アカウントがロックされた"),
    "PC": ("Laptop is very slow after update", "PC が起動しない", "Outlook crashes on start",
           "ブルースクリーンが頻発する"),
    "Network": ("Wi-Fi drops every few minutes", "共有フォルダに接続できない", "No internet on the 3rd floor"),
    "Printer": ("プリンターに印刷できない", "Scanner sends empty PDFs", "Printer shows offline"),
    None: ("Remote help needed", "画面を見てほしい"),
}
REQUESTERS = (("John Doe", "john.doe@example.com"), ("山田 花子", "hanako.yamada@example.jp"),
              ("Emma Wilson", "emma.wilson@example.com"), ("伊藤 大輔", "daisuke.ito@example.jp"),
              ("Carlos Ruiz", "carlos.ruiz@example.com"), ("中村 さくら", "sakura.nakamura@example.jp"))
# Local hour weights, 0-23: office hours with a lunch dip, a little in the evening.
HOURS = (0, 0, 0, 0, 0, 0, 1, 2, 6, 10, 11, 10, 5, 8, 10, 10, 9, 7, 4, 2, 1, 1, 0, 0)
WEEKDAY_WEIGHT = (1.0, 1.0, 1.0, 1.0, 0.95, 0.15, 0.08)  # Monday to Sunday


class _Weighted:
    """Draw from ``values`` with ``weights`` (bisect on the cumulative weights: cheap a million times)."""

    def __init__(self, values, weights):
        self.values = list(values)
        self.cumulative = list(itertools.accumulate(weights))
        self.total = self.cumulative[-1]

    def draw(self, rng: random.Random):
        return self.values[bisect.bisect(self.cumulative, rng.random() * self.total)]


def _insert(table: sa.Table, rows: list[dict]) -> None:
    """Insert ``rows`` (values ready for the driver) in bulk: COPY on PostgreSQL, executemany on SQLite."""
    if not rows:
        return
    connection = db.session.connection()
    names = list(rows[0])
    if connection.dialect.name == "postgresql":
        # psycopg's executemany sends one INSERT per row, each firing the roll-up's statement trigger.
        with connection.connection.cursor() as cursor:
            with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[name] for name in names])
        return
    # Untyped columns: skip per-value type processing, which would cost more than the insert.
    connection.execute(sa.table(table.name, *(sa.column(name) for name in names)).insert(), rows)


class _Generator:
    """Deterministic synthetic cases: the same seed and end day give the same rows."""

    def __init__(self, seed: int, until: datetime, dialect: str):
        self.rng = random.Random(seed)
        self.seed = seed
        self.until = until
        first = until.date() - timedelta(days=DAYS)
        days = [first + timedelta(days=i) for i in range(DAYS)]
        self.days = _Weighted(days, (WEEKDAY_WEIGHT[day.weekday()] for day in days))
        self.hours = _Weighted(range(24), HOURS)
        self.technicians = _Weighted(((t[0], t[1], t[2], ZoneInfo(t[3]), t[5]) for t in TECHNICIANS),
                                     (t[4] for t in TECHNICIANS))
        self.categories = _Weighted(CATEGORIES, (c[1] for c in CATEGORIES))
        self.types = _Weighted((t[0] for t in TYPES), (t[1] for t in TYPES))
        self.priorities = _Weighted((p[0] for p in PRIORITIES), (p[1] for p in PRIORITIES))
        self.priority_pace = {p[0]: p[2] for p in PRIORITIES}
        self.sources = _Weighted((s[0] for s in SOURCES), (s[1] for s in SOURCES))
        self.outcomes = {joined: _Weighted((o[0] for o in table), (o[1] for o in table))
                         for joined, table in ((True, OUTCOMES_JOINED), (False, OUTCOMES_ALONE))}
        # Outcomes and connections draw from their own stream, so a seed's cases stay those of earlier versions.
        self.connection_rng = random.Random(f"{seed}-connections")
        # SQLite stores datetimes as text in SQLAlchemy's format; psycopg takes naive UTC datetimes.
        if dialect == "sqlite":
            self.stamp = lambda value: value.replace(tzinfo=None).isoformat(" ", "microseconds")
        else:
            self.stamp = lambda value: value.replace(tzinfo=None)
        self.ticket, self.median = None, 0.0
        self.tickets = 0

    def _new_ticket(self, opened_at: datetime) -> tuple[dict, float]:
        rng = self.rng
        self.tickets += 1
        category, _, median = self.categories.draw(rng)
        requester_name, requester_email = rng.choice(REQUESTERS)
        return {
            "id": f"D{self.seed}-{self.tickets:07d}", "subject": rng.choice(SUBJECTS[category]),
            "requester_name": requester_name, "requester_email": requester_email, "requester_locale": None,
            "category": category, "type": self.types.draw(rng), "priority": self.priorities.draw(rng),
            "source": self.sources.draw(rng), "status": "closed", "closed_at": None,
            "updated_at": self.stamp(opened_at),
        }, median

    def cases(self, count: int) -> Iterator[tuple[dict, dict | None, list[dict]]]:
        """Yield ``count`` cases in about the order they were opened, each with its ticket when it starts one
        and its connections (without their ``case_id``, unknown before the insert).

        Days are drawn first, then each day's cases in time order, as a real
        helpdesk's rows arrive (which also keeps the inserts' index pages hot).
        """
        rng = self.rng
        per_day = collections.Counter(self.days.draw(rng) for _ in range(count))
        index = 0
        for day in self.days.values:
            opened = []
            for _ in range(per_day[day]):
                technician = self.technicians.draw(rng)
                seconds = self.hours.draw(rng) * 3600 + rng.randrange(3600)
                local = datetime(day.year, day.month, day.day, seconds // 3600, seconds // 60 % 60, seconds % 60,
                                 rng.randrange(1_000_000), tzinfo=technician[3])
                opened.append((local.astimezone(UTC), technician))
            opened.sort(key=lambda item: item[0])
            for opened_at, technician in opened:
                yield self._case(index, opened_at, technician)
                index += 1

    def _case(self, index: int, opened_at: datetime, technician) -> tuple[dict, dict | None, list[dict]]:
        rng = self.rng
        tech_id, tech_name, tech_email, _, pace = technician
        fresh = self.ticket is None or rng.random() >= FOLLOW_UP_SHARE
        if fresh:
            self.ticket, self.median = self._new_ticket(opened_at)
        ticket = self.ticket
        expired = rng.random() < EXPIRED_SHARE
        # Log-normal minutes around the category's median (slower for urgent tickets and some
        # technicians): most short, a long tail to about two hours.
        median = self.median * pace * self.priority_pace[ticket["priority"]]
        minutes = min(max(rng.lognormvariate(math.log(median), 0.75), 0.5), 150.0)
        length = VALIDITY if expired else timedelta(seconds=round(minutes * 60))
        if opened_at + length > self.until:  # keep every case in the past
            opened_at = self.until - length - timedelta(minutes=rng.randrange(1, 120))
        ended = opened_at + length
        digits = rng.randrange(100_000_000, 1_000_000_000)
        stamp = self.stamp
        spans = self._connected(opened_at, length, expired)
        outcome = None if expired or self.connection_rng.random() < NO_OUTCOME_SHARE \
            else self.outcomes[bool(spans)].draw(self.connection_rng)
        ticket["closed_at"] = stamp(ended)
        case = {
            "ticket_id": ticket["id"], "state": CaseState.EXPIRED if expired else CaseState.CLOSED,
            "idempotency_key": f"seed-{self.seed}-{index}",
            "code": f"s{digits // 1_000_000:03d}-{digits // 1000 % 1000:03d}-{digits % 1000:03d}",
            "group_name": "BOSS",
            "supporter_link": f"https://start.teamviewer.com/{digits}/{rng.getrandbits(48):012x}",
            "end_customer_link": f"https://get.teamviewer.com/s{digits}",
            "valid_until": stamp(opened_at + VALIDITY), "opened_at": stamp(opened_at),
            "opened_by_id": tech_id, "opened_by_name": tech_name, "opened_by_email": tech_email,
            "closed_at": None if expired else stamp(ended),
            "closed_by_id": None if expired else tech_id, "closed_by_name": None if expired else tech_name,
            "error": None, "ticket_category": ticket["category"], "ticket_type": ticket["type"],
            "ticket_priority": ticket["priority"], "ticket_source": ticket["source"], "outcome": outcome,
        }
        connections = [{
            "report_id": f"{digits}-{number}", "start_at": stamp(start), "end_at": stamp(end),
            "userid": f"u{tech_id}", "username": tech_name, "deviceid": f"d{tech_id}",
            "devicename": f"{tech_id.upper()}-PC", "notes": None, "fetched_at": stamp(end + timedelta(minutes=15)),
        } for number, (start, end) in enumerate(spans)]
        return case, (ticket if fresh else None), connections

    def _connected(self, opened_at: datetime, length: timedelta, expired: bool) -> list[tuple[datetime, datetime]]:
        """Return when the case's TeamViewer connections ran, in whole seconds as TeamViewer reports them.

        The customer joins a few minutes after play and the agent stops a
        little after disconnecting; some connections drop and reconnect.
        Expired cases were connected to only when an agent forgot to stop.
        """
        rng = self.connection_rng
        if expired:
            if rng.random() >= FORGOTTEN_SHARE:
                return []
            start = opened_at + timedelta(seconds=rng.uniform(60, 600))
            minutes = min(rng.lognormvariate(math.log(20), 0.6), 180.0)
            return [(start.replace(microsecond=0), (start + timedelta(minutes=minutes)).replace(microsecond=0))]
        if rng.random() >= JOINED_SHARE:
            return []
        total = length.total_seconds()
        wait, wrap_up = min(total * 0.4, rng.uniform(20, 240)), min(total * 0.2, rng.uniform(5, 120))
        start, end = opened_at + timedelta(seconds=wait), opened_at + length - timedelta(seconds=wrap_up)
        spans = [(start, end)]
        if rng.random() < RECONNECT_SHARE and total > 300:
            drop = start + (end - start) * rng.uniform(0.2, 0.8)
            spans = [(start, drop), (drop + timedelta(seconds=rng.uniform(10, 90)), end)]
        return [(a.replace(microsecond=0), b.replace(microsecond=0)) for a, b in spans if b - a >= timedelta(seconds=1)]


def seed_cases(count: int, seed: int, until: datetime, progress=None) -> None:
    """Insert ``count`` synthetic closed (about 5 % expired) cases over the ``DAYS`` days before ``until``.

    Bulk inserts in chunks, one transaction each, the report's roll-ups
    summed in with each chunk; then each chunk's connections, once its
    cases' ids are known.
    """
    connection = db.session.connection()
    dialect = connection.dialect.name
    if dialect == "sqlite":
        # Room for the indexes being filled: SQLite's 2 MB default thrashes at a million rows.
        cache_size = connection.exec_driver_sql("PRAGMA cache_size").scalar()
        connection.exec_driver_sql("PRAGMA cache_size = -262144")
    generator = _Generator(seed, until, dialect)
    rows = generator.cases(count)
    done = 0
    while done < count:
        cases, tickets, connections = [], [], {}
        for case, ticket, spans in itertools.islice(rows, CHUNK):
            cases.append(case)
            connections[case["idempotency_key"]] = spans
            if ticket is not None:
                tickets.append(ticket)
        # A follow-up in a later chunk leaves its ticket's closed_at at the earlier end; nothing reports it.
        connection = db.session.connection()
        with rollup.bulk_load(connection):
            before = connection.scalar(sa.select(sa.func.coalesce(sa.func.max(ServiceCase.id), 0)))
            _insert(Ticket.__table__, tickets)
            _insert(ServiceCase.__table__, cases)
            ids = connection.execute(sa.select(ServiceCase.idempotency_key, ServiceCase.id)
                                     .where(ServiceCase.id > before))
            _insert(Connection.__table__, [span | {"case_id": case_id} for key, case_id in ids
                                           for span in connections.get(key, ())])
        db.session.commit()
        done += len(cases)
        if progress:
            progress(done)
    if dialect == "sqlite":  # the connection goes back to the pool as it came
        db.session.connection().exec_driver_sql(f"PRAGMA cache_size = {int(cache_size)}")
        db.session.commit()


@demo_cli.command("seed-demo")
@click.option("--sessions", "count", type=click.IntRange(min=1), default=1000, show_default=True,
              help="How many closed cases to create.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed: the same seed gives the same cases.")
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The day after the last one filled (UTC); default today, so the cases span the 90 days before.")
def seed_demo(count: int, seed: int, until: datetime | None):
    """Fill the database with realistic synthetic closed service cases over the last 90 days."""
    day = until.date() if until else datetime.now(UTC).date()
    end = datetime.combine(day, datetime.min.time(), UTC)
    if db.session.scalar(sa.select(ServiceCase.id).where(ServiceCase.idempotency_key == f"seed-{seed}-0")):
        raise click.ClickException(f"Cases of seed {seed} are already in this database; choose another --seed.")
    started = time.perf_counter()
    step = max(count // 10, CHUNK)

    def progress(done: int) -> None:
        if done % step == 0 and done < count:
            click.echo(f"  {done:,} cases", err=True)

    seed_cases(count, seed, end, progress)
    click.echo(f"Seeded {count:,} closed service cases (about {EXPIRED_SHARE:.0%} expired without a stop) "
               "with outcomes and TeamViewer connections "
               f"over the {DAYS} days before {end.date().isoformat()}, seed {seed}, "
               f"in {time.perf_counter() - started:.1f} s.")
