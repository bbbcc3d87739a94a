"""The host contract: launch tokens, the widget credential and ticket snapshots."""
import hashlib
import hmac
import itertools
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import jwt
import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.dialects import postgresql, sqlite

from tvwidget import timefmt
from tvwidget.after_response import after_response
from tvwidget.config import setting
from tvwidget.extensions import db
from tvwidget.storage.database import upsert
from tvwidget.storage.models import Ticket, UsedLaunchToken, utcnow

AUDIENCE = "tvwidget"
MAX_TOKEN_BYTES = 8192
MAX_LIFETIME = 3600
SWEEP_EVERY = 100
_launches = itertools.count(1)
TICKET_FIELDS = ("category", "type", "priority", "source", "status")
LOCALES = ("en", "ja")


class LaunchError(Exception):
    """The launch token or widget credential is not acceptable (401/403 to the user)."""

    def __init__(self, message, status: int = 401):
        super().__init__(str(message))
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Agent:
    """The person in front of the widget, as the host vouched for them."""

    id: str
    name: str
    email: str
    role: str
    locale: str | None = None
    tz: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class TicketData:
    """A ticket as the host describes it (launch token or host API)."""

    id: str
    subject: str = ""
    requester_name: str = ""
    requester_email: str = ""
    requester_locale: str | None = None
    category: str | None = None
    type: str | None = None
    priority: str | None = None
    source: str | None = None
    status: str | None = None


class TicketDataError(ValueError):
    """The host sent a ticket that does not fit the contract."""


_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _text(value, limit: int, field: str, allow_int: bool = False) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) and not (allow_int and isinstance(value, int) and not isinstance(value, bool)):
        raise TicketDataError(f"{field} must be a string")
    # Control characters have no place in ticket text (and PostgreSQL refuses NUL).
    return _CONTROL_RE.sub("", str(value)).strip()[:limit]


def parse_ticket(data) -> TicketData:
    """Return the ticket described by ``data`` (the token's ``ticket`` or the host API's body)."""
    if not isinstance(data, dict):
        raise TicketDataError("ticket must be an object")
    ticket_id = _text(data.get("id"), 65, "id", allow_int=True)
    if not ticket_id or len(ticket_id) > 64:
        raise TicketDataError("id must be 1 to 64 characters")
    requester = data.get("requester") or {}
    if not isinstance(requester, dict):
        raise TicketDataError("requester must be an object")
    fields = {name: (_text(data.get(name), 100, name) or None) for name in TICKET_FIELDS}
    return TicketData(
        id=ticket_id,
        subject=_text(data.get("subject"), 500, "subject"),
        requester_name=_text(requester.get("name"), 200, "requester.name"),
        requester_email=_text(requester.get("email"), 254, "requester.email"),
        requester_locale=requester.get("locale") if requester.get("locale") in LOCALES else None,
        **fields,
    )


def save_ticket(data: TicketData, connection=None) -> None:
    """Insert or update the ticket snapshot in one statement (safe under concurrent launches).

    On ``connection`` if given (a Core connection), else in the session.
    """
    upsert(Ticket, asdict(data) | {"updated_at": utcnow()}, ("id",), connection=connection)


@dataclass(frozen=True)
class LaunchClaims:
    """A launch token that passed every check but the last: it has not been spent yet."""

    agent: Agent
    ticket: TicketData | None
    key: str                 # what spends it: its jti, else the token's hash
    expires_at: datetime


def check_launch_token(raw: str, *, want_ticket: bool) -> LaunchClaims:
    """Check a host-signed launch token (signature, audience, lifetime, claims); no database work."""
    if not raw:
        raise LaunchError(_l("No launch token was given. Open the widget from the helpdesk's ticket page."))
    if len(raw) > MAX_TOKEN_BYTES:
        raise LaunchError(_l("The launch token is too large."))
    leeway = setting("LAUNCH_TOKEN_LEEWAY")
    try:
        claims = jwt.decode(
            raw, setting("EMBED_SECRET"), algorithms=["HS256"], audience=AUDIENCE,
            leeway=leeway,
            options={"require": ["exp", "iat", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise LaunchError(_l("The launch token has expired. Reload the ticket page to get a new one.")) from None
    except jwt.ImmatureSignatureError:
        raise LaunchError(_l("The launch token is not valid yet. Check the helpdesk server's clock.")) from None
    except jwt.InvalidAudienceError:
        raise LaunchError(_l("The launch token was issued for another application.")) from None
    except jwt.PyJWTError:
        raise LaunchError(_l("The launch token is not valid. Reload the ticket page; if it keeps happening, "
                             "the helpdesk's TVWIDGET_EMBED_SECRET does not match.")) from None
    now = int(utcnow().timestamp())
    if not all(isinstance(claims.get(k), int) for k in ("exp", "iat")) \
            or claims["exp"] - claims["iat"] > MAX_LIFETIME \
            or claims["iat"] > now + leeway:
        raise LaunchError(_l("The launch token's lifetime is not acceptable (at most one hour)."))
    role = claims.get("role")
    if role not in ("agent", "admin") or not isinstance(claims["sub"], str) or not claims["sub"]:
        raise LaunchError(_l("The launch token does not say who you are or what your role is."))
    locale = claims.get("locale") if claims.get("locale") in LOCALES else None
    try:
        agent = Agent(
            id=_text(claims["sub"], 100, "sub"), name=_text(claims.get("name"), 200, "name"),
            email=_text(claims.get("email"), 254, "email"), role=role, locale=locale,
            tz=claims["tz"] if timefmt.valid_zone(claims.get("tz")) else None,
        )
        ticket = parse_ticket(claims.get("ticket")) if want_ticket else None
    except TicketDataError as exc:
        raise LaunchError(_l("The launch token's ticket is malformed (%(problem)s).", problem=str(exc))) from None
    jti = claims.get("jti")
    key = f"jti:{jti}" if isinstance(jti, str) and jti else "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
    return LaunchClaims(agent, ticket, key[:255], datetime.fromtimestamp(claims["exp"], UTC))


ALREADY_USED = _l("This launch token was already used. Reload the ticket page to open the widget again.")


def _spend_statement(dialect_name: str):
    spent = UsedLaunchToken.__table__
    values = {key: sa.bindparam(key, type_=spent.c[key].type) for key in ("key", "expires_at")}
    if dialect_name == "postgresql":
        # Committed without waiting for the disk: set_config(..., true) is SET LOCAL synchronous_commit
        # for the transaction that spends the token (a statement of its own at a widget launch, the
        # admin launch's only write).  A crash may forget the last fraction of a second of spent
        # tokens, as SQLite's WAL with synchronous=NORMAL may; everything else commits durably.
        # It spares a launch the wait for the WAL flush (bench/RESULTS-i19.md).
        values = sa.select(*values.values()).where(sa.func.set_config("synchronous_commit", "off", True) == "off")
        insert = postgresql.insert(spent).from_select(["key", "expires_at"], values)
    else:
        insert = sqlite.insert(spent).values(values)
    return insert.on_conflict_do_nothing().returning(spent.c.key)


# Built once per dialect, so a launch only binds its values instead of building an insert
# (measured in bench/RESULTS-i19.md).  ``key`` and ``expires_at`` are its parameters; it returns
# the key if it spent the token, no row if the token was spent already.
SPEND = {name: _spend_statement(name) for name in ("postgresql", "sqlite")}


def spend_launch_token(connection, claims: LaunchClaims) -> bool:
    """Record the token of ``claims`` spent on ``connection`` (a session or a Core connection); False if it already was.

    One statement, safe under concurrent launches: of two launches with one
    token, exactly one inserts its key.
    """
    spent = connection.execute(SPEND[db.engine.dialect.name],
                               {"key": claims.key, "expires_at": claims.expires_at}).scalar_one_or_none()
    return spent is not None


def verify_launch_token(raw: str, *, want_ticket: bool) -> tuple[Agent, TicketData | None]:
    """Check a host-signed launch token and spend it in the session; return who and which ticket.

    The caller commits, which makes the token spent for good.
    """
    claims = check_launch_token(raw, want_ticket=want_ticket)
    if not spend_launch_token(db.session, claims):
        raise LaunchError(ALREADY_USED)
    return claims.agent, claims.ticket


def sweep_spent_tokens_after(response):
    """On one launch in ``SWEEP_EVERY`` (per process), forget expired spent tokens once ``response`` has gone out.

    Spent tokens are only needed until they would have expired anyway; the
    sweep runs after the response so the ticket view never waits for it.
    """
    if next(_launches) % SWEEP_EVERY:
        return response

    def sweep():
        db.session.execute(sa.delete(UsedLaunchToken).where(UsedLaunchToken.expires_at < utcnow()))
        db.session.commit()

    return after_response(response, sweep, "sweeping spent launch tokens")


def _serializer() -> URLSafeTimedSerializer:
    """Return the serializer that signs and checks widget credentials with the app's secret key."""
    return URLSafeTimedSerializer(setting("SECRET_KEY"), salt="tvwidget.widget-credential")


@dataclass(frozen=True)
class Credential:
    """What a widget credential vouches for: who, which ticket, since when, and the host page it may talk to."""

    agent: Agent
    ticket_id: str | None
    issued: datetime
    host_origin: str | None = None  # checked against FRAME_ANCESTORS at launch; None: a plain iframe


def issue_credential(agent: Agent, ticket_id: str | None, host_origin: str | None = None) -> str:
    """Return the short-lived credential the widget sends in ``X-TVWidget-Credential``."""
    data = {"a": vars(agent), "t": ticket_id}  # flat fields: no deep-copying asdict
    if host_origin:
        data["o"] = host_origin
    return _serializer().dumps(data)


def read_credential(raw: str | None) -> Credential:
    """Return what a widget credential is bound to: the agent, the ticket, when it was issued, the host origin."""
    if not raw:
        raise LaunchError(_l("This request did not come from the widget. Reload the ticket page."), 403)
    try:
        data, issued = _serializer().loads(raw, max_age=setting("WIDGET_CREDENTIAL_MAX_AGE"),
                                           return_timestamp=True)
    except SignatureExpired:
        raise LaunchError(_l("The widget has been open too long without use. Reload the ticket page.")) from None
    except BadSignature:
        raise LaunchError(_l("The widget's credential is not valid. Reload the ticket page."), 403) from None
    return Credential(Agent(**data["a"]), data["t"], issued, data.get("o"))


def host_key_matches(presented: str | None) -> bool:
    """Return whether the host API's bearer key is right, in constant time."""
    expected = setting("HOST_API_KEY")
    return bool(presented) and hmac.compare_digest(presented.encode(), expected.encode())
