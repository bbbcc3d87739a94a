"""Verify and parse tvwidget's webhook deliveries (SPEC "Webhook").

tvwidget POSTs each ``service_case.opened|closed|expired`` event as JSON with
``X-TVWidget-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with
TVWIDGET_EMBED_SECRET>`` and ``X-TVWidget-Delivery: <event id>``.  Delivery is
at least once: tvwidget retries (30 s, 2 min, 10 min, 1 h, then every 6 h, for
7 days) until the host answers 2xx, and every retry carries the same body,
signature and id.  So a host de-duplicates on the event id.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Union

from .errors import DuplicateDelivery, InvalidPayload, InvalidSignature, StaleDelivery

WEBHOOK_SIGNATURE_HEADER = "X-TVWidget-Signature"
WEBHOOK_DELIVERY_HEADER = "X-TVWidget-Delivery"
WEBHOOK_EVENT_HEADER = "X-TVWidget-Event"
# How long tvwidget keeps retrying one event: 7 days, plus its longest back-off (6 h), plus slack.
# A max_age shorter than this can refuse a genuine retry after the host was down.
RETRY_WINDOW = timedelta(days=7, hours=7)
# An occurred_at this far ahead of the host's clock is refused when max_age is given (clock skew).
FUTURE_SKEW = timedelta(minutes=5)

Seen = Union[Callable[[str], bool], Container[str]]


@dataclass(frozen=True)
class WebhookEvent:
    """One verified event.  ``id`` is stable across retries (it is also X-TVWidget-Delivery)."""

    id: str
    type: str                      # "service_case.opened", "service_case.closed" or "service_case.expired"
    ticket_id: str
    occurred_at: datetime          # aware, UTC
    service_case: dict             # code, state, opened_at, valid_until, closed_at, ended_at, opened_by, closed_by,
                                   # outcome, note
    comment: str | None            # the comment tvwidget wrote (closed/expired), else None
    raw: dict = field(repr=False)  # the whole payload as sent


def signature(body: bytes, secret: str | bytes) -> str:
    """Return the ``X-TVWidget-Signature`` value tvwidget sends for ``body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidPayload("The event's occurred_at is missing.", code="invalid_payload")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidPayload(f"The event's occurred_at {value!r} is not an ISO 8601 time.",
                             code="invalid_payload") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _event(body: bytes) -> WebhookEvent:
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidPayload("The webhook body is not JSON.", code="invalid_payload") from None
    if not isinstance(raw, dict):
        raise InvalidPayload("The webhook body is not a JSON object.", code="invalid_payload")
    for key in ("id", "event", "ticket_id"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise InvalidPayload(f"The event has no {key}.", code="invalid_payload")
    service_case = raw.get("service_case")
    comment = raw.get("comment")
    if not isinstance(service_case, dict):
        raise InvalidPayload("The event has no service_case object.", code="invalid_payload")
    if comment is not None and not isinstance(comment, str):
        raise InvalidPayload("The event's comment is not text.", code="invalid_payload")
    return WebhookEvent(id=raw["id"], type=raw["event"], ticket_id=raw["ticket_id"],
                        occurred_at=_parse_time(raw.get("occurred_at")), service_case=service_case,
                        comment=comment, raw=raw)


def _already_seen(seen: Seen, event_id: str) -> bool:
    return bool(seen(event_id)) if callable(seen) else event_id in seen


def _max_age(value) -> timedelta:
    if isinstance(value, timedelta):
        age = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        age = timedelta(seconds=value)
    else:
        raise ValueError(f"max_age must be seconds or a timedelta, not {value!r}")
    if age <= timedelta(0):
        raise ValueError("max_age must be positive")
    return age


def verify_webhook(body: bytes, signature_header: str | None, secret: str | bytes, *,
                   max_age: timedelta | float | None = None, seen: Seen | None = None,
                   now: datetime | None = None) -> WebhookEvent:
    """Check one delivery and return its event.

    ``body`` is the raw request body exactly as received (bytes: Django's
    ``request.body``, Flask's ``request.get_data()``), ``signature_header`` the
    ``X-TVWidget-Signature`` header's value, ``secret`` TVWIDGET_EMBED_SECRET.
    The signature is compared in constant time before the body is parsed.

    - ``max_age`` (seconds or timedelta): refuse an event whose ``occurred_at``
      is older (``StaleDelivery``).  Off by default, because ``occurred_at`` is
      when the event happened and stays the same on every retry: a host that
      was down for a day receives day-old events, and they are genuine.  If you
      set it, keep it at least ``RETRY_WINDOW`` (7 days 7 hours) or you will
      drop events tvwidget is still retrying; replays are better stopped with
      ``seen``.
    - ``seen``: a container of (``id in seen``) or a callable returning
      whether the event id was already processed; if so ``DuplicateDelivery``.
      Record the id only after processing the event succeeded, ideally in the
      same transaction, under a unique constraint (two deliveries of one event
      may arrive at once).
    - ``now``: the current time, for tests.

    Raises ``InvalidSignature``, ``InvalidPayload``, ``StaleDelivery`` or
    ``DuplicateDelivery`` (all ``WebhookError``); the last two carry ``.event``.
    """
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    if not isinstance(body, bytes):
        raise TypeError("body must be the raw request body as bytes (Django: request.body, "
                        "Flask: request.get_data()), not a decoded or re-serialised copy")
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes) or not secret:
        raise ValueError("secret must be tvwidget's TVWIDGET_EMBED_SECRET")
    age = None if max_age is None else _max_age(max_age)

    presented = (signature_header or "").strip()
    if not presented:
        raise InvalidSignature(f"The delivery has no {WEBHOOK_SIGNATURE_HEADER} header.", code="invalid_signature")
    expected = signature(body, secret)
    if not hmac.compare_digest(expected.encode(), presented.encode("utf-8", "replace")):
        raise InvalidSignature("The webhook signature does not match the body (forged, altered, or signed with "
                               "another TVWIDGET_EMBED_SECRET).", code="invalid_signature")

    event = _event(body)
    if age is not None:
        current = now or datetime.now(UTC)
        if current.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        if event.occurred_at < current - age:
            raise StaleDelivery(f"The event {event.id} occurred at {event.occurred_at:%Y-%m-%dT%H:%M:%SZ}, "
                                f"more than {age} ago.", event=event)
        if event.occurred_at > current + FUTURE_SKEW:
            raise StaleDelivery(f"The event {event.id} claims to occur at {event.occurred_at:%Y-%m-%dT%H:%M:%SZ}, "
                                "in the future: check the servers' clocks.", event=event)
    if seen is not None and _already_seen(seen, event.id):
        raise DuplicateDelivery(f"The event {event.id} was already processed.", event=event)
    return event
