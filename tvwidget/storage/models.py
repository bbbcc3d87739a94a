"""Database tables, all prefixed ``tvwidget_`` so they can share a host's database."""
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tvwidget.extensions import db


def utcnow() -> datetime:
    """Return this server's clock as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator):
    """Store naive UTC, hand back aware UTC, on SQLite and PostgreSQL alike."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=UTC)


# A ``creating`` row older than this was abandoned mid-way (the TeamViewer call
# is bounded by the client's timeouts, far below it).
CREATING_STALE_AFTER = timedelta(seconds=60)


class CaseState:
    """The service case's states; ``creating`` and ``open`` hold the ticket's one slot."""

    CREATING = "creating"   # intent committed, TeamViewer call in flight
    OPEN = "open"           # TeamViewer session exists, links valid until valid_until
    CLOSED = "closed"       # stopped by an agent (closed at TeamViewer)
    EXPIRED = "expired"     # valid_until passed without a stop
    FAILED = "failed"       # TeamViewer refused or did not answer; no session to show
    ACTIVE = (CREATING, OPEN)
    ALL = (CREATING, OPEN, CLOSED, EXPIRED, FAILED)
    # Which state may follow which: anything else is a bug, not a race.
    TRANSITIONS = {
        CREATING: {OPEN, FAILED},
        OPEN: {CLOSED, EXPIRED},
        CLOSED: set(),
        EXPIRED: set(),
        FAILED: set(),
    }


class Ticket(db.Model):
    """The host's ticket as last seen in a launch token or the host API."""

    __tablename__ = "tvwidget_tickets"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(500), default="")
    requester_name: Mapped[str] = mapped_column(sa.String(200), default="")
    requester_email: Mapped[str] = mapped_column(sa.String(254), default="")
    requester_locale: Mapped[str | None] = mapped_column(sa.String(8))
    category: Mapped[str | None] = mapped_column(sa.String(100))
    type: Mapped[str | None] = mapped_column(sa.String(100))
    priority: Mapped[str | None] = mapped_column(sa.String(100))
    source: Mapped[str | None] = mapped_column(sa.String(100))
    status: Mapped[str | None] = mapped_column(sa.String(100))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ServiceCase(db.Model):
    """One TeamViewer session (service case) opened from a ticket."""

    __tablename__ = "tvwidget_service_cases"
    __table_args__ = (
        # The database itself allows one valid case per ticket, whatever the code does.
        sa.Index(
            "uq_tvwidget_service_cases_one_active_per_ticket", "ticket_id", unique=True,
            sqlite_where=sa.text("state IN ('creating', 'open')"),
            postgresql_where=sa.text("state IN ('creating', 'open')"),
        ),
        sa.CheckConstraint(
            "state IN ('creating', 'open', 'closed', 'expired', 'failed')", name="state_known"),
        sa.Index("ix_tvwidget_service_cases_opened_at", "opened_at"),
        # The report's per-technician edges and the sessions CSV filtered by technician.
        sa.Index("ix_tvwidget_service_cases_opened_by_id_opened_at", "opened_by_id", "opened_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[str] = mapped_column(sa.ForeignKey("tvwidget_tickets.id"), index=True)
    state: Mapped[str] = mapped_column(sa.String(16))
    idempotency_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    code: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    group_name: Mapped[str] = mapped_column(sa.String(100))
    supporter_link: Mapped[str | None] = mapped_column(sa.String(500))
    end_customer_link: Mapped[str | None] = mapped_column(sa.String(500))
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    opened_by_id: Mapped[str] = mapped_column(sa.String(100))
    opened_by_name: Mapped[str] = mapped_column(sa.String(200), default="")
    opened_by_email: Mapped[str] = mapped_column(sa.String(254), default="")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by_id: Mapped[str | None] = mapped_column(sa.String(100))
    closed_by_name: Mapped[str | None] = mapped_column(sa.String(200))
    error: Mapped[str | None] = mapped_column(sa.String(500))
    # The ticket's attributes when the case opened, so later edits do not rewrite reports.
    ticket_category: Mapped[str | None] = mapped_column(sa.String(100))
    ticket_type: Mapped[str | None] = mapped_column(sa.String(100))
    ticket_priority: Mapped[str | None] = mapped_column(sa.String(100))
    ticket_source: Mapped[str | None] = mapped_column(sa.String(100))
    # What the agent said when stopping; outcome is resolved | unresolved | unknown.
    note: Mapped[str | None] = mapped_column(sa.Text)
    outcome: Mapped[str | None] = mapped_column(sa.String(16))
    # The sum of the case's connections' seconds (from TeamViewer's connection report), kept by triggers
    # on tvwidget_connections for the report's roll-ups (``tvwidget.reports.rollup``); never written by
    # the application.
    connected_seconds: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # Whose TeamViewer the case is assigned to, kept at play time so the widget shows it without a query.
    assigned_userid: Mapped[str | None] = mapped_column(sa.String(32))
    assigned_name: Mapped[str | None] = mapped_column(sa.String(200))

    ticket: Mapped[Ticket] = relationship()
    email: Mapped["EmailMessage | None"] = relationship(back_populates="case", uselist=False)

    @property
    def ended_at(self) -> datetime | None:
        """Return when the case stopped counting: closed by an agent, or its expiry."""
        if self.state == CaseState.CLOSED:
            return self.closed_at
        if self.state == CaseState.EXPIRED:
            return self.valid_until
        return None

    def is_valid(self, now: datetime) -> bool:
        """Return whether the case still holds its ticket (open and not expired, or still being created)."""
        if self.state == CaseState.CREATING:
            return now - self.opened_at < CREATING_STALE_AFTER
        return self.state == CaseState.OPEN and (self.valid_until is None or now < self.valid_until)


# Database triggers (tvwidget.reports.rollup) keep the report's roll-ups below
# exactly in step with this table, whoever writes to it (any process, the seed, plain SQL).


class _RollupMeasures:
    """What every roll-up row sums (one definition for the four roll-up tables)."""

    sessions: Mapped[int] = mapped_column(sa.Integer)
    duration_seconds: Mapped[int] = mapped_column(sa.BigInteger)
    expired: Mapped[int] = mapped_column(sa.Integer)
    connected_seconds: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")


class ReportDay(_RollupMeasures, db.Model):
    """Closed and expired cases summed per UTC day of opening and value: the report's roll-up.

    ``dimension`` is ``technician`` (``value`` the technician's id, ``name``
    their latest name), ``category``, ``type``, ``priority``, ``source`` (an
    unknown value is ``''``), ``outcome`` (``resolved``, ``unresolved`` or
    ``unknown``, which a case without one counts as) or ``band`` (the
    duration band's lower bound in minutes; ``''`` for expired cases).
    ``connected_seconds`` sums the sessions' TeamViewer connections.  Written
    only by the triggers in ``tvwidget.reports.rollup``.
    """

    __tablename__ = "tvwidget_report_days"

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    dimension: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))


class ReportTechnicianDay(_RollupMeasures, db.Model):
    """The same roll-up per technician, for reports filtered by technician (no ``technician`` rows)."""

    __tablename__ = "tvwidget_report_technician_days"

    technician_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    dimension: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(100), primary_key=True)


class ReportHour(_RollupMeasures, db.Model):
    """``ReportDay`` per UTC hour, for the ends of a range in a time zone other than UTC."""

    __tablename__ = "tvwidget_report_hours"

    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    dimension: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))


class ReportTechnicianHour(_RollupMeasures, db.Model):
    """``ReportTechnicianDay`` per UTC hour."""

    __tablename__ = "tvwidget_report_technician_hours"

    technician_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    dimension: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(100), primary_key=True)


class Comment(db.Model):
    """A comment tvwidget adds to the host's ticket."""

    __tablename__ = "tvwidget_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[str] = mapped_column(sa.ForeignKey("tvwidget_tickets.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tvwidget_service_cases.id"))
    kind: Mapped[str] = mapped_column(sa.String(32))
    body: Mapped[str] = mapped_column(sa.Text)
    author_name: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IntegrationSettings(db.Model):
    """The single row holding the TeamViewer connection: token, account and group."""

    __tablename__ = "tvwidget_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_ciphertext: Mapped[str | None] = mapped_column(sa.Text)
    token_last4: Mapped[str | None] = mapped_column(sa.String(4))
    account_name: Mapped[str | None] = mapped_column(sa.String(200))
    account_email: Mapped[str | None] = mapped_column(sa.String(254))
    company_name: Mapped[str | None] = mapped_column(sa.String(200))
    group_name: Mapped[str] = mapped_column(sa.String(100), default="BOSS")
    connected_by_id: Mapped[str | None] = mapped_column(sa.String(100))
    connected_by_name: Mapped[str | None] = mapped_column(sa.String(200))
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by_name: Mapped[str | None] = mapped_column(sa.String(200))

    @property
    def connected(self) -> bool:
        return bool(self.token_ciphertext)


class EmailMessage(db.Model):
    """An invitation email: stored with its case, sent after commit."""

    __tablename__ = "tvwidget_email_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tvwidget_service_cases.id"), index=True)
    recipient: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(500))
    body_text: Mapped[str] = mapped_column(sa.Text)
    body_html: Mapped[str] = mapped_column(sa.Text)
    language: Mapped[str] = mapped_column(sa.String(8))
    message_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The outbox: when a pending message may be tried next, and until when a
    # sender (request or cron job, on any machine) holds it.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    case: Mapped[ServiceCase | None] = relationship(back_populates="email")


class EmailTemplate(db.Model):
    """An admin's invitation template for one language; absent means the built-in default."""

    __tablename__ = "tvwidget_email_templates"

    language: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(500))
    body: Mapped[str] = mapped_column(sa.Text)
    updated_by_id: Mapped[str | None] = mapped_column(sa.String(100))
    updated_by_name: Mapped[str | None] = mapped_column(sa.String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEvent(db.Model):
    """Who did what and when (the audit trail); rows are only ever added."""

    __tablename__ = "tvwidget_audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(sa.String(64), index=True)
    actor_id: Mapped[str | None] = mapped_column(sa.String(100))
    actor_name: Mapped[str | None] = mapped_column(sa.String(200))
    ticket_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    case_id: Mapped[int | None] = mapped_column()
    detail: Mapped[str] = mapped_column(sa.Text, default="")


class UsedLaunchToken(db.Model):
    """Launch tokens already accepted (by ``jti``, else by hash): each works once."""

    __tablename__ = "tvwidget_used_launch_tokens"

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class CaseTracking(db.Model):
    """What tvwidget last learnt from TeamViewer about a case: live status and connection sync.

    Kept out of the cases table on purpose: the status cache is written every
    15 s per watched case, and every write to the cases table runs the
    report's roll-up triggers (and, on PostgreSQL, their table-wide lock).
    """

    __tablename__ = "tvwidget_case_tracking"

    case_id: Mapped[int] = mapped_column(sa.ForeignKey("tvwidget_service_cases.id"), primary_key=True)
    # When a process last claimed the right to ask TeamViewer about the case's status.
    status_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    remote_online: Mapped[bool | None] = mapped_column(sa.Boolean)
    remote_state: Mapped[str | None] = mapped_column(sa.String(16))
    # The kind of the last failed status check (rate_limited, unavailable...): back off, show "unavailable".
    status_error: Mapped[str | None] = mapped_column(sa.String(32))
    connections_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set once TeamViewer reported the case's connections, all finished.
    connections_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Connection(db.Model):
    """One TeamViewer connection made with a case's session code, from the connection report."""

    __tablename__ = "tvwidget_connections"
    __table_args__ = (sa.UniqueConstraint("case_id", "report_id", name="uq_tvwidget_connections_case_report"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("tvwidget_service_cases.id"), index=True)
    report_id: Mapped[str] = mapped_column(sa.String(64))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    userid: Mapped[str | None] = mapped_column(sa.String(100))
    username: Mapped[str | None] = mapped_column(sa.String(200))
    deviceid: Mapped[str | None] = mapped_column(sa.String(100))
    devicename: Mapped[str | None] = mapped_column(sa.String(200))
    notes: Mapped[str | None] = mapped_column(sa.Text)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def seconds(self) -> int:
        """Return how long the connection lasted (0 while TeamViewer reports no end).

        ``rollup.connection_seconds_sql`` counts the same in SQL for the report.
        """
        return max(0, int((self.end_at - self.start_at).total_seconds())) if self.end_at else 0


# Database triggers (tvwidget.reports.rollup) keep each case's connected_seconds the sum of its connections.


class WebhookEvent(db.Model):
    """A ``service_case.*`` event for the host's webhook: stored with its change, delivered after commit."""

    __tablename__ = "tvwidget_webhook_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    ticket_id: Mapped[str | None] = mapped_column(sa.String(64))
    case_id: Mapped[int | None] = mapped_column()
    # The exact bytes signed and sent, every time.
    body: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WorkerJob(db.Model):
    """One periodic job of ``tvwidget worker``: its shared schedule and its last run, for every copy.

    A copy runs a job only after moving ``next_run_at`` on with one conditional
    UPDATE, so however many workers run, each job runs once per interval.
    ``runs`` and ``failures`` count for ``/metrics``; the last run feeds ``doctor``.
    """

    __tablename__ = "tvwidget_worker_jobs"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # "ok", or the failure's class name (never its message: a driver's may carry a URL with a password).
    last_outcome: Mapped[str | None] = mapped_column(sa.String(200))
    last_counts: Mapped[str | None] = mapped_column(sa.String(500))
    runs: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)


class DirectoryUser(db.Model):
    """A user of the company's TeamViewer directory, as last fetched; replaced whole on each refresh."""

    __tablename__ = "tvwidget_directory_users"

    userid: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    # The address lower-cased: agents are matched on it exactly, case-insensitively.
    email_key: Mapped[str | None] = mapped_column(sa.String(254), index=True)
    # None when TeamViewer did not say (counted as active).
    active: Mapped[bool | None] = mapped_column(sa.Boolean)


class DirectoryState(db.Model):
    """The one row saying when the directory was fetched and how the last try went.

    ``claimed_at`` is the claim every process races for with one conditional
    UPDATE, so the directory is fetched at most once per refresh window
    however many plays and machines want it; ``retry_at`` holds a back-off
    after TeamViewer refused (403, licence, rate limit) or failed.
    """

    __tablename__ = "tvwidget_directory_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # ok, or the TeamViewerError kind of the last failure (permission, license, rate_limited, ...).
    status: Mapped[str | None] = mapped_column(sa.String(32))
    remote_error: Mapped[str | None] = mapped_column(sa.String(64))
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    user_count: Mapped[int] = mapped_column(default=0)
    # The case group as TeamViewer last listed it (read with an admin's refresh, a share or the periodic
    # job, never on a page view): its id, and ``{userid: pending}`` for whom it is shared with.
    group_name: Mapped[str | None] = mapped_column(sa.String(100))
    group_id: Mapped[str | None] = mapped_column(sa.String(32))
    group_shares: Mapped[str | None] = mapped_column(sa.Text)
    group_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The TeamViewerError kind of the last failed look at the group, else None.
    group_error: Mapped[str | None] = mapped_column(sa.String(32))


class AgentIdentity(db.Model):
    """An agent tvwidget has seen, and which TeamViewer user their cases go to.

    ``override`` is None (match by email), ``"none"`` (don't assign) or a
    TeamViewer user id set by an admin; it always wins.  ``refused_userid``
    is a user TeamViewer refused as assignee: not assigned again until an
    admin looks at it or the match changes.
    """

    __tablename__ = "tvwidget_agents"

    id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    email: Mapped[str] = mapped_column(sa.String(254), default="")
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    override: Mapped[str | None] = mapped_column(sa.String(32))
    override_by_name: Mapped[str | None] = mapped_column(sa.String(200))
    override_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refused_userid: Mapped[str | None] = mapped_column(sa.String(32))
    refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refused_detail: Mapped[str | None] = mapped_column(sa.String(500))
