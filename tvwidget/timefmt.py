"""Times and durations as tvwidget writes them, and the check of a time-zone name.

One home for each format, so that the widget, the comments, the mails, the
host API, the webhook and the CSV exports write a time the same way.
"""
import math
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime

ZONE_NAME_MAX = 64


def iso_utc(value: datetime | None) -> str | None:
    """Return an aware datetime as ISO 8601 UTC to the second, e.g. ``2026-11-24T09:30:00Z``; None stays None."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def format_duration(seconds: float) -> str:
    """Return ``seconds`` as H:MM:SS; hours keep counting past 24, below zero is 0:00:00.

    A fraction rounds half up to whole seconds, as the report's SQL rounds a
    case's duration (``rollup.seconds_sql``), so the widget's history, the
    ticket comment and the report show one case with the same time.
    """
    seconds = math.floor(max(0.0, seconds) + 0.5)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def local_time(value: datetime, locale: str, tz: str) -> str:
    """Return ``value`` as the medium date and time of ``locale`` in zone ``tz``, the zone named after it.

    For text that leaves the page (ticket comments, invitations), where the
    reader's browser cannot say which zone a bare time is in.
    """
    return format_datetime(value, "medium", tzinfo=ZoneInfo(tz), locale=locale) + f" ({tz})"


def valid_zone(name) -> bool:
    """Return whether ``name`` is an IANA time-zone name this server knows (at most 64 characters)."""
    if not isinstance(name, str) or not name or len(name) > ZONE_NAME_MAX:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def day_start(day: date, tz: str) -> datetime:
    """Return the UTC instant at which ``day`` begins in zone ``tz``."""
    return datetime.combine(day, time.min, ZoneInfo(tz)).astimezone(UTC)
