"""``flask --app wsgi tvwidget doctor``: check the installation and name what is wrong, one line per check.

The same checks feed the "Health" section of the admin area, whose page shows
the local ones and asks TeamViewer only when the admin presses its button.
They read settings, the database, the SMTP server (connect, EHLO, log in,
QUIT: nothing is sent) and TeamViewer (read-only calls: ping, account, one
page of sessions, a connection report for a code that cannot exist); they
change nothing and never show a secret: a key's length, a URL's host, never a
value.
"""
import dataclasses
import logging
from datetime import timedelta
from urllib.parse import urlsplit

import click
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from email_validator import EmailNotValidError, validate_email
from flask.cli import with_appcontext
from flask_babel import force_locale, gettext
from sqlalchemy.exc import SQLAlchemyError

from tvwidget import config
from tvwidget.config import setting, settings
from tvwidget.extensions import db, migrate
from tvwidget.mail import message as mail
from tvwidget.ops import worker
from tvwidget.storage.models import WorkerJob, utcnow
from tvwidget.storage.secrets import SecretUnreadable
from tvwidget.teamviewer import integration
from tvwidget.teamviewer.client import TeamViewerError, TeamViewerPermissionError

log = logging.getLogger(__name__)

VERSION_TABLE = "tvwidget_alembic_version"  # as migrations/env.py names it
NO_SUCH_CODE = "s000-000-000"  # a well-formed session code TeamViewer never hands out
# The worker counts as running when a job finished this recently (or within three of its shortest intervals).
WORKER_RECENT = timedelta(minutes=5)
SECRET_SETTINGS = (("SECRET_KEY", 32), ("EMBED_SECRET", 32), ("HOST_API_KEY", 24))
# Numbers of seconds (or counts) that must be positive.
NUMBERS = ("TEAMVIEWER_CONNECT_TIMEOUT", "TEAMVIEWER_READ_TIMEOUT", "SMTP_TIMEOUT", "WIDGET_CREDENTIAL_MAX_AGE",
           "LAUNCH_TOKEN_LEEWAY", "STATUS_POLL_SECONDS", "STATUS_CACHE_SECONDS", "STATUS_BACKOFF_SECONDS")


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the doctor's report: ``label`` names what was checked, ``message`` what was found."""

    label: str
    ok: bool
    message: str


def run(teamviewer: bool = True) -> list[Check]:
    """Run every check (in an app context); a check that cannot run reports why instead of raising.

    ``teamviewer=False`` leaves out the checks that call TeamViewer (the token and its permissions).
    """
    checks: list[Check] = []
    checks += settings_checks(settings())
    database = _safely(gettext("Database"), database_checks)
    checks += database
    checks += _safely(gettext("SMTP server"), smtp_check)
    if teamviewer and database[0].ok:  # reachable (the token is stored there)
        checks += ask_teamviewer()
    checks += frame_ancestors_checks(settings())
    if all(check.ok for check in database):  # the worker's table exists at the newest revision only
        checks += _safely(gettext("Worker"), worker_checks)
    db.session.rollback()
    return checks


def ask_teamviewer() -> list[Check]:
    """Run the checks that call TeamViewer: is the stored token valid, has it each permission (read-only calls)."""
    return _safely(gettext("TeamViewer token"), teamviewer_checks)


def _safely(label: str, make) -> list[Check]:
    try:
        return list(make())
    except SQLAlchemyError as exc:
        db.session.rollback()
        return [Check(label, False, gettext("the database stopped answering during the check (%(error)s).",
                                            error=type(exc).__name__))]
    except Exception as exc:  # noqa: BLE001 - the doctor reports every problem, its own included, as a line
        db.session.rollback()
        log.warning("doctor: the %s check failed", label, exc_info=True)
        return [Check(label, False, gettext("could not be checked (%(error)s); the server log has the details.",
                                            error=type(exc).__name__))]


# --- settings -----------------------------------------------------------------------------------------------


def settings_checks(cfg) -> list[Check]:
    """One line per setting tvwidget reads: set and well-formed, never its value if it is a secret."""
    production = cfg["ENV"] == "production"
    dev = config.development_values()
    checks = [Check("TVWIDGET_ENV", True, cfg["ENV"])]
    for key, length in SECRET_SETTINGS:
        value = cfg.get(key) or ""
        name = f"TVWIDGET_{key}"
        if not value:
            checks.append(Check(name, False, gettext("missing. Set a random value of at least %(length)d "
                                                     "characters.", length=length)))
        elif len(value) < length:
            checks.append(Check(name, False, gettext("too short (%(have)d characters, needs %(length)d). Set a "
                                                     "longer random value.", have=len(value), length=length)))
        elif value == dev.get(key):
            checks.append(Check(name, not production, gettext(
                "the public development value. Set a random value of your own.") if production else
                gettext("the development value (fine outside production).")))
        else:
            checks.append(Check(name, True, gettext("set (%(length)d characters).", length=len(value))))

    keys = [k.strip() for k in (cfg.get("ENCRYPTION_KEYS") or "").split(",") if k.strip()]
    bad = [n + 1 for n, key in enumerate(keys) if not _fernet_ok(key)]
    if not keys:
        checks.append(Check("TVWIDGET_ENCRYPTION_KEYS", False, gettext(
            "missing. Make a key with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'")))
    elif bad:
        checks.append(Check("TVWIDGET_ENCRYPTION_KEYS", False, gettext(
            "key %(positions)s is not a valid Fernet key.", positions=", ".join(map(str, bad)))))
    elif production and keys[0] == dev["ENCRYPTION_KEYS"]:
        checks.append(Check("TVWIDGET_ENCRYPTION_KEYS", False, gettext(
            "the public development key is first. Put a key of your own first.")))
    else:
        checks.append(Check("TVWIDGET_ENCRYPTION_KEYS", True, gettext("%(count)d valid key(s).", count=len(keys))))

    checks.append(_url_check("TVWIDGET_TEAMVIEWER_API_URL", cfg.get("TEAMVIEWER_API_URL"), production,
                             required=True))
    checks.append(_url_check("TVWIDGET_HOST_WEBHOOK_URL", cfg.get("HOST_WEBHOOK_URL"), production,
                             required=False))

    sender = cfg.get("MAIL_DEFAULT_SENDER")
    sender = sender[1] if isinstance(sender, (tuple, list)) else sender
    if not sender:
        checks.append(Check("TVWIDGET_MAIL_DEFAULT_SENDER", False, gettext(
            "missing: the invitation email's From address, e.g. support@example.com.")))
    elif sender == dev["MAIL_DEFAULT_SENDER"] and not production:
        checks.append(Check("TVWIDGET_MAIL_DEFAULT_SENDER", True, gettext(
            "the development value (fine outside production).")))
    else:
        try:
            validate_email(sender, check_deliverability=False)
            checks.append(Check("TVWIDGET_MAIL_DEFAULT_SENDER", True, sender))
        except EmailNotValidError:
            checks.append(Check("TVWIDGET_MAIL_DEFAULT_SENDER", False, gettext(
                "not an email address. Set the invitation's From address, e.g. support@example.com.")))

    numbers = {key: cfg.get(key) for key in NUMBERS}
    retries = cfg.get("TEAMVIEWER_RETRIES")
    wrong = [f"TVWIDGET_{key}" for key, value in numbers.items() if not _positive(value)]
    if not (_positive(retries) or retries == 0):
        wrong.append("TVWIDGET_TEAMVIEWER_RETRIES")
    checks.append(Check(gettext("Timeouts and intervals"), not wrong, gettext(
        "%(names)s must be positive numbers (seconds).", names=", ".join(wrong)) if wrong else ", ".join(
        f"{key.lower()} {value}" for key, value in numbers.items())))
    checks.append(Check("TVWIDGET_COMPANY_NAME", bool(cfg.get("COMPANY_NAME")), cfg.get("COMPANY_NAME") or gettext(
        "empty: the invitation names your company with it.")))

    locale = cfg.get("DEFAULT_LOCALE")
    checks.append(Check("TVWIDGET_DEFAULT_LOCALE", locale in ("en", "ja"),
                        locale if locale in ("en", "ja") else gettext("must be en or ja.")))

    intervals = cfg.get("WORKER_INTERVALS") or {}
    wrong = [str(name) for name, value in intervals.items() if name not in worker.JOBS
             or isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0] \
        if isinstance(intervals, dict) else ["?"]
    checks.append(Check("TVWIDGET_WORKER_INTERVALS", not wrong, gettext(
        "not understood: %(names)s. Give seconds per job, e.g. {\"outbox\": 15}; the jobs are %(jobs)s.",
        names=", ".join(wrong), jobs=", ".join(worker.JOBS)) if wrong else ", ".join(
        f"{job.name} {worker.interval(job):g} s" for job in worker.JOBS.values())))

    try:
        config.check(cfg)
    except config.ConfigError as exc:  # anything the start-up check refuses that the lines above did not name
        checks.append(Check(gettext("Settings"), False, str(exc)))
    return checks


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _fernet_ok(key: str) -> bool:
    try:
        Fernet(key)
    except (ValueError, TypeError):
        return False
    return True


def _url_check(name: str, value: str | None, production: bool, required: bool) -> Check:
    if not value:
        return Check(name, not required, gettext("missing.") if required else gettext("not set (no webhook)."))
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Check(name, False, gettext("not an http(s) URL."))
    if production and parts.scheme != "https":
        return Check(name, False, gettext("must use https in production."))
    # The host only: a path or query may carry a token.
    return Check(name, True, f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}")


def frame_ancestors_checks(cfg) -> list[Check]:
    """The origins allowed to frame the widget (CSP frame-ancestors): present and each well-formed."""
    origins = (cfg.get("FRAME_ANCESTORS") or "").split()
    label = gettext("Frame ancestors")
    if not origins:
        return [Check(label, False, gettext(
            "TVWIDGET_FRAME_ANCESTORS is empty, so no helpdesk may show the widget. Set your helpdesk's "
            "origin, e.g. https://helpdesk.example.com."))]
    bad = [origin for origin in origins if not config.ORIGIN_RE.match(origin)]
    if bad:
        return [Check(label, False, gettext(
            "%(origins)s: not an origin like https://helpdesk.example.com (scheme and host, no path).",
            origins=", ".join(bad)))]
    insecure = [o for o in origins if o.startswith("http://")] if cfg["ENV"] == "production" else []
    if insecure:
        return [Check(label, False, gettext(
            "%(origins)s: plain http in production; the helpdesk must be served over https.",
            origins=", ".join(insecure)))]
    return [Check(label, True, " ".join(origins))]


# --- database -----------------------------------------------------------------------------------------------


def database_checks():
    label = gettext("Database")
    url = sa.engine.make_url(setting("SQLALCHEMY_DATABASE_URI")).render_as_string(hide_password=True)
    try:
        db.session.execute(sa.text("SELECT 1"))
        db.session.rollback()
        with db.engine.connect() as connection:
            current = set(MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE}).get_current_heads())
    except SQLAlchemyError as exc:
        db.session.rollback()
        yield Check(label, False, gettext(
            "cannot reach %(url)s (%(error)s). Check TVWIDGET_SQLALCHEMY_DATABASE_URI and that the database "
            "server runs.", url=url, error=type(exc).__name__))
        return
    yield Check(label, True, gettext("%(url)s answers.", url=url))
    heads = set(ScriptDirectory.from_config(migrate.get_config()).get_heads())
    schema = gettext("Database schema")
    if current == heads:
        yield Check(schema, True, gettext("at the newest revision (%(revision)s).", revision=", ".join(sorted(heads))))
    else:
        yield Check(schema, False, gettext(
            "at %(current)s, the code needs %(heads)s. Run: flask --app wsgi db upgrade",
            current=", ".join(sorted(current)) or gettext("no revision (empty)"), heads=", ".join(sorted(heads))))


# --- SMTP ---------------------------------------------------------------------------------------------------


def smtp_check():
    label = gettext("SMTP server")
    cfg = settings()
    where = f"{cfg.get('MAIL_SERVER') or 'localhost'}:{cfg.get('MAIL_PORT') or 25}"
    if not _positive(cfg.get("SMTP_TIMEOUT")):
        yield Check(label, False, gettext("not tried: TVWIDGET_SMTP_TIMEOUT must be a positive number of seconds."))
        return
    if cfg.get("MAIL_SUPPRESS_SEND"):
        yield Check(label, cfg["ENV"] != "production", gettext(
            "sending is switched off (TVWIDGET_MAIL_SUPPRESS_SEND): invitations are stored, not sent."))
        return
    try:
        name = mail.greet()
    except mail.DeliveryError as exc:
        yield Check(label, False, gettext(
            "%(where)s: %(error)s. Check TVWIDGET_MAIL_SERVER, TVWIDGET_MAIL_PORT, TLS and login settings, and "
            "that the server is up. Invitations wait in the outbox meanwhile.", where=where,
            error=exc.description))
        return
    yield Check(label, True, gettext("%(where)s greets as %(name)s (nothing was sent).", where=where, name=name))


# --- TeamViewer ---------------------------------------------------------------------------------------------


def teamviewer_checks():
    label = gettext("TeamViewer token")
    row = integration.settings()
    try:
        client = integration.connected_client(row)
    except SecretUnreadable:
        yield Check(label, False, gettext(
            "the stored token cannot be decrypted with TVWIDGET_ENCRYPTION_KEYS (a key was dropped or changed). "
            "Put the old key back, or have an admin enter the script token again in the admin area."))
        return
    finally:
        db.session.rollback()
    if client is None:
        yield Check(label, False, gettext(
            "not connected. An admin must paste a script token in the tvwidget admin area."))
        return
    with client:
        try:
            valid = client.ping()
        except TeamViewerError as exc:
            yield Check(label, False, gettext(
                "TeamViewer could not be asked (%(kind)s). Check this server's internet access, its proxy and "
                "TVWIDGET_TEAMVIEWER_API_URL.", kind=exc.kind))
            return
        if not valid:
            yield Check(label, False, gettext(
                "TeamViewer rejects the stored token (revoked, expired or deleted). An admin must create a new "
                "script token and connect it in the tvwidget admin area."))
            return
        yield Check(label, True, gettext("valid."))
        untested = gettext("creating and closing cannot be checked without opening a service case")
        for name, note, call in (
                (gettext("Account management: view"), None, client.account),
                (gettext("Session management: view"), untested, client.list_sessions),
                (gettext("Connection reports: view"), None, lambda: client.connection_reports(NO_SUCH_CODE))):
            permission = gettext("TeamViewer permission")
            try:
                call()
            except TeamViewerPermissionError as exc:
                if exc.remote_error == "license_required":
                    yield Check(permission, False, gettext(
                        "%(name)s: the TeamViewer license does not include it (Premium or Corporate needed).",
                        name=name))
                else:
                    yield Check(permission, False, gettext(
                        "%(name)s: missing. In the Management Console (Edit profile ➜ Apps) edit the script "
                        "token and allow it.", name=name))
                continue
            except TeamViewerError as exc:
                yield Check(permission, False, gettext("%(name)s: could not be checked (%(kind)s).", name=name,
                                                       kind=exc.kind))
                continue
            yield Check(permission, True, f"{name} ({note})" if note else name)


# --- the worker ---------------------------------------------------------------------------------------------


def worker_checks():
    label = gettext("Worker")
    jobs = db.session.scalars(sa.select(WorkerJob).order_by(WorkerJob.name)).all()
    db.session.rollback()
    finished = [job.last_finished_at for job in jobs if job.last_finished_at is not None]
    start = gettext("Start it: flask --app wsgi tvwidget worker (the README has a systemd unit).")
    if not finished:
        yield Check(label, False, gettext("has never run. %(start)s", start=start))
        return
    shortest = min((worker.interval(job) for job in worker.JOBS.values()), default=60.0)
    recent = max(WORKER_RECENT, timedelta(seconds=3 * shortest))
    age = utcnow() - max(finished)
    seconds = int(age.total_seconds())
    if age > recent:
        yield Check(label, False, gettext("last ran %(seconds)d s ago. %(start)s", seconds=seconds, start=start))
    else:
        yield Check(label, True, gettext("ran %(seconds)d s ago.", seconds=max(seconds, 0)))
    for job in jobs:
        if job.last_outcome not in (None, "ok"):
            yield Check(gettext("Worker job %(name)s", name=job.name), False, gettext(
                "its last run failed: %(outcome)s.", outcome=job.last_outcome))


# --- the command --------------------------------------------------------------------------------------------


def line(check: Check) -> str:
    return f"{'ok  ' if check.ok else 'FAIL'}  {check.label}: {check.message}"


@click.command("doctor")
@with_appcontext
def doctor_command():
    """Check settings, database, SMTP, the TeamViewer token, frame ancestors and the worker (exit 0 when all fine)."""
    with force_locale("en"):
        checks = run()
        for check in checks:
            click.echo(line(check))
    failed = sum(not check.ok for check in checks)
    click.echo(f"{len(checks) - failed} ok, {failed} to fix.")
    click.get_current_context().exit(1 if failed else 0)
