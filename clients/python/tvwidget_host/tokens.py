"""Launch tokens: the JWT a host signs for each ticket view (SPEC "Host contract", launch token)."""
from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jwt

AUDIENCE = "tvwidget"
MAX_TTL = 3600          # tvwidget refuses a token whose exp is more than an hour after its iat
MIN_SECRET_LENGTH = 32  # tvwidget refuses a shorter TVWIDGET_EMBED_SECRET in production
ROLES = ("agent", "admin")
LOCALES = ("en", "ja")
TICKET_FIELDS = ("category", "type", "priority", "source", "status")
TICKET_KEYS = frozenset(("id", "subject", "requester", *TICKET_FIELDS))
REQUESTER_KEYS = frozenset(("name", "email", "locale"))


def _string(value: Any, what: str, *, limit: int, required: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise ValueError(f"{what} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{what} is longer than {limit} characters (tvwidget would cut it)")
    return value


def _optional_string(value: Any, what: str, *, limit: int) -> str | None:
    return None if value is None else _string(value, what, limit=limit)


def ticket_claim(ticket: Mapping[str, Any]) -> dict:
    """Return the token's ``ticket`` claim for ``ticket``, or raise ValueError naming the problem."""
    if not isinstance(ticket, Mapping):
        raise ValueError(f"ticket must be a dict, not {type(ticket).__name__}")
    unknown = sorted(set(ticket) - TICKET_KEYS)
    if unknown:
        raise ValueError(f"ticket has unknown keys {unknown}; the contract's keys are {sorted(TICKET_KEYS)}")
    ticket_id = ticket.get("id")
    if isinstance(ticket_id, int) and not isinstance(ticket_id, bool):
        ticket_id = str(ticket_id)
    ticket_id = _string(ticket_id, "ticket['id']", limit=64, required=True)
    if not ticket_id.isprintable():
        raise ValueError("ticket['id'] must be printable characters only")
    claim: dict[str, Any] = {"id": ticket_id,
                             "subject": _string(ticket.get("subject", ""), "ticket['subject']", limit=500)}
    requester = ticket.get("requester")
    if requester is not None:
        if not isinstance(requester, Mapping):
            raise ValueError(f"ticket['requester'] must be a dict with name and email, not {type(requester).__name__}")
        unknown = sorted(set(requester) - REQUESTER_KEYS)
        if unknown:
            raise ValueError(f"ticket['requester'] has unknown keys {unknown}; it takes {sorted(REQUESTER_KEYS)}")
        claim["requester"] = {
            "name": _string(requester.get("name", ""), "ticket['requester']['name']", limit=200),
            "email": _string(requester.get("email", ""), "ticket['requester']['email']", limit=254),
        }
        if requester.get("locale") is not None:
            if requester["locale"] not in LOCALES:
                raise ValueError(f"ticket['requester']['locale'] must be one of {LOCALES}")
            claim["requester"]["locale"] = requester["locale"]
    for name in TICKET_FIELDS:
        value = _optional_string(ticket.get(name), f"ticket[{name!r}]", limit=100)
        if value is not None:
            claim[name] = value
    return claim


def _zone(tz: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    _string(tz, "tz", limit=64, required=True)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"tz {tz!r} is not an IANA time zone such as 'Asia/Tokyo' or 'Europe/London'") from None
    return tz


def _timestamp(now: datetime | float | int | None) -> int:
    if now is None:
        return int(time.time())
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime (e.g. datetime.now(timezone.utc))")
        return int(now.timestamp())
    if isinstance(now, (int, float)) and not isinstance(now, bool):
        return int(now)
    raise ValueError(f"now must be a datetime or a Unix timestamp, not {type(now).__name__}")


def sign_launch_token(secret: str | bytes, *, sub: str, name: str, email: str, role: str = "agent",
                      ticket: Mapping[str, Any] | None = None, locale: str | None = None, tz: str | None = None,
                      ttl: int = 600, jti: str | None = None, now: datetime | float | None = None) -> str:
    """Return a launch token for tvwidget (HS256 with ``secret``, tvwidget's TVWIDGET_EMBED_SECRET).

    ``sub``, ``name`` and ``email`` say who the agent is (``sub`` is a stable id
    as a string, e.g. ``str(user.pk)``); ``role`` is ``"agent"`` or ``"admin"``
    (admin tokens open tvwidget's admin area and need no ticket); ``ticket`` is
    ``{"id", "subject", "requester": {"name", "email"}, "category", "type",
    "priority", "source", "status"}`` (all but ``id`` optional); ``locale`` is
    ``"en"`` or ``"ja"``; ``tz`` an IANA zone.  The token lives ``ttl`` seconds
    (at most 3600) and carries a fresh ``jti`` unless one is given: tvwidget
    accepts each token once, so sign one per ticket view.

    Raises ValueError naming the first argument that tvwidget would refuse.
    """
    if isinstance(secret, str):
        secret_bytes = secret.encode()
    elif isinstance(secret, bytes):
        secret_bytes = secret
    else:
        raise ValueError(f"secret must be a string (TVWIDGET_EMBED_SECRET), not {type(secret).__name__}")
    if len(secret_bytes) < MIN_SECRET_LENGTH:
        raise ValueError(f"secret is shorter than {MIN_SECRET_LENGTH} characters; use tvwidget's "
                         "TVWIDGET_EMBED_SECRET")
    claims: dict[str, Any] = {
        "aud": AUDIENCE,
        "sub": _string(sub, "sub", limit=100, required=True),
        "name": _string(name, "name", limit=200),
        "email": _string(email, "email", limit=254),
    }
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    claims["role"] = role
    if ticket is not None:
        claims["ticket"] = ticket_claim(ticket)
    if locale is not None:
        if locale not in LOCALES:
            raise ValueError(f"locale must be one of {LOCALES} or None, not {locale!r}")
        claims["locale"] = locale
    if tz is not None:
        claims["tz"] = _zone(tz)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
        raise ValueError(f"ttl must be whole seconds from 1 to {MAX_TTL} (tvwidget refuses longer tokens), not {ttl!r}")
    issued = _timestamp(now)
    claims["iat"], claims["exp"] = issued, issued + ttl
    claims["jti"] = uuid.uuid4().hex if jti is None else _string(jti, "jti", limit=255, required=True)
    return jwt.encode(claims, secret_bytes, algorithm="HS256")
