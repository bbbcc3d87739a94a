"""Times and durations as tvwidget writes them (tvwidget.timefmt): one home for each format."""
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tvwidget import timefmt

UTC = dt.UTC


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "0:00:00"),
    (59, "0:00:59"),
    (61, "0:01:01"),
    (3600, "1:00:00"),
    (25 * 3600 + 62, "25:01:02"),  # hours keep counting past a day
    (89.4, "0:01:29"),
    (89.5, "0:01:30"),  # half rounds up, as the report's SQL rounds a duration
    (90.5, "0:01:31"),  # (Python's round() would give 0:01:30 here: ties to even)
    (3599.6, "1:00:00"),
    (-5, "0:00:00"),  # clocks disagreeing never show a negative time
])
def test_format_duration_rounds_half_up_to_whole_seconds(seconds, shown):
    assert timefmt.format_duration(seconds) == shown


def test_iso_utc_writes_utc_to_the_second_with_z():
    tokyo = dt.datetime(2026, 11, 24, 18, 30, 5, 999_999, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert timefmt.iso_utc(tokyo) == "2026-11-24T09:30:05Z"
    assert timefmt.iso_utc(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert timefmt.iso_utc(None) is None


@pytest.mark.parametrize(("name", "valid"), [
    ("UTC", True), ("Asia/Tokyo", True), ("America/Argentina/Buenos_Aires", True),
    ("Mars/Olympus", False), ("", False), (None, False), (42, False), ("../etc/passwd", False),
    ("Asia/" + "x" * 60, False),
])
def test_valid_zone_knows_iana_names_only(name, valid):
    assert timefmt.valid_zone(name) is valid


def test_day_start_is_local_midnight_in_utc():
    assert timefmt.day_start(dt.date(2026, 11, 24), "Asia/Tokyo") == dt.datetime(2026, 11, 23, 15, tzinfo=UTC)
    assert timefmt.day_start(dt.date(2026, 11, 24), "Asia/Kolkata") == dt.datetime(2026, 11, 23, 18, 30, tzinfo=UTC)
    # The day summer time starts in New York is still counted from its midnight (EST, UTC-5).
    assert timefmt.day_start(dt.date(2026, 3, 8), "America/New_York") == dt.datetime(2026, 3, 8, 5, tzinfo=UTC)


def test_local_time_names_the_zone_in_the_readers_language():
    value = dt.datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    assert timefmt.local_time(value, "en", "Asia/Tokyo") == "Nov 24, 2026, 6:30:00\u202fPM (Asia/Tokyo)"
    assert timefmt.local_time(value, "ja", "Asia/Tokyo") == "2026/11/24 18:30:00 (Asia/Tokyo)"
