"""Fire times by cron's rules, in wall-clock terms, in the report's zone: hand-checked cases
across DST transitions, property-based tests against an independent reading of the fields and
a brute-force oracle, and the CLI and service on top of them.

Every expected instant in the tables was written by hand from the zone's transition dates
(New York 2025-03-09 02:00 -> 03:00 and 2025-11-02 02:00 -> 01:00; Berlin 2027-03-28 02:00 ->
03:00 and 2027-10-31 03:00 -> 02:00; Sydney 2025-04-06 03:00 -> 02:00 and 2025-10-05 02:00 ->
03:00; Santiago 2025-04-06 00:00 -> 2025-04-05 23:00 and 2025-09-07 00:00 -> 01:00; Tehran
2021-03-22 00:00 -> 01:00 and 2021-09-22 00:00 -> 2021-09-21 23:00, none since 2022; Almaty
2024-03-01 00:00 -> 2024-02-29 23:00, from UTC+6 to UTC+5 for good), which
``test_the_tables_transitions_are_the_zones`` checks against zoneinfo.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time as clock
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from itertools import islice
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import cli_env, run_cli
from reporter import cron
from reporter.config import Report
from reporter.schedule.plan import MAX_SLOTS, next_runs, plan
from schedule_helpers import make_project, report_block

UTC = timezone.utc
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
FAST = dict(languages='["en"]', formats='["html"]')  # no WeasyPrint: a render in well under a second


def _upcoming(line: str, zone: str, after: str, count: int) -> list[str]:
    """The next fires as real local times; a shifted one shows its nominal time in brackets."""
    tz = ZoneInfo(zone)
    fires = list(islice(cron.fires(cron.parse(line), tz, datetime.fromisoformat(after)), count))
    instants = [f.instant for f in fires]
    assert instants == sorted(set(instants)), "instants must strictly increase"
    out = []
    for fire in fires:
        local = fire.instant.astimezone(tz)
        shown = local.isoformat(timespec="minutes")
        if local.replace(tzinfo=None) != fire.wall:
            shown += f" ({fire.wall:%H:%M})" if local.date() == fire.wall.date() else f" ({fire.wall:%Y-%m-%dT%H:%M})"
        out.append(shown)
    return out


TABLE = [
    # The cases. After a spring-forward, midnight runs are not lost:
    ("@monthly", "Europe/Berlin", "2027-02-15T00:00+01:00",
     ["2027-03-01T00:00+01:00", "2027-04-01T00:00+02:00", "2027-05-01T00:00+02:00"]),
    ("0 0 * * *", "America/New_York", "2025-03-08T12:00-05:00",
     ["2025-03-09T00:00-05:00", "2025-03-10T00:00-04:00", "2025-03-11T00:00-04:00"]),
    ("0 0 * * 1", "America/New_York", "2025-03-02T12:00-05:00",
     ["2025-03-03T00:00-05:00", "2025-03-10T00:00-04:00", "2025-03-17T00:00-04:00"]),
    # 02:15 does not exist on 9 March: it runs once, an hour later by the clock.
    ("15 1-2 * * *", "America/New_York", "2025-03-08T12:00-05:00",
     ["2025-03-09T01:15-05:00", "2025-03-09T03:15-04:00 (02:15)", "2025-03-10T01:15-04:00", "2025-03-10T02:15-04:00"]),
    # 02:00 shifted is 03:00, which exists: the instant once, under the time that exists.
    ("0 2-3 * * *", "America/New_York", "2025-03-08T12:00-05:00",
     ["2025-03-09T03:00-04:00", "2025-03-10T02:00-04:00", "2025-03-10T03:00-04:00"]),
    ("30 2,3 * * *", "America/New_York", "2025-03-08T12:00-05:00",
     ["2025-03-09T03:30-04:00", "2025-03-10T02:30-04:00", "2025-03-10T03:30-04:00"]),
    ("30 2 * * *", "America/New_York", "2025-03-08T12:00-05:00",
     ["2025-03-09T03:30-04:00 (02:30)", "2025-03-10T02:30-04:00"]),
    # Fall-back: a repeated time runs once, at its first occurrence; so does a repeated hour.
    ("30 1 * * *", "America/New_York", "2025-11-01T12:00-04:00",
     ["2025-11-02T01:30-04:00", "2025-11-03T01:30-05:00"]),
    ("*/30 1-2 * * *", "America/New_York", "2025-11-02T00:00-04:00",
     ["2025-11-02T01:00-04:00", "2025-11-02T01:30-04:00", "2025-11-02T02:00-05:00", "2025-11-02T02:30-05:00",
      "2025-11-03T01:00-05:00"]),
    # Berlin.
    ("30 2 * * *", "Europe/Berlin", "2027-03-27T12:00+01:00",
     ["2027-03-28T03:30+02:00 (02:30)", "2027-03-29T02:30+02:00"]),
    ("30 2 * * 0", "Europe/Berlin", "2027-10-30T12:00+02:00",
     ["2027-10-31T02:30+02:00", "2027-11-07T02:30+01:00"]),
    # Sydney, southern hemisphere: back in April, forward in October.
    ("30 2 * * *", "Australia/Sydney", "2025-04-05T12:00+11:00",
     ["2025-04-06T02:30+11:00", "2025-04-07T02:30+10:00"]),
    ("30 2 * * *", "Australia/Sydney", "2025-10-04T12:00+10:00",
     ["2025-10-05T03:30+11:00 (02:30)", "2025-10-06T02:30+11:00"]),
    # Santiago changes at midnight: on 7 September 2025 midnight does not exist.
    ("0 0 * * *", "America/Santiago", "2025-09-05T12:00-04:00",
     ["2025-09-06T00:00-04:00", "2025-09-07T01:00-03:00 (00:00)", "2025-09-08T00:00-03:00"]),
    # ...and on 5 April 23:00-24:00 comes twice, while midnight of the 6th comes once.
    ("30 23 * * *", "America/Santiago", "2025-04-05T12:00-03:00",
     ["2025-04-05T23:30-03:00", "2025-04-06T23:30-04:00"]),
    ("0 0 * * *", "America/Santiago", "2025-04-04T12:00-03:00",
     ["2025-04-05T00:00-03:00", "2025-04-06T00:00-04:00", "2025-04-07T00:00-04:00"]),
    # Tehran, 2021, and no change in 2023.
    ("30 0 * * *", "Asia/Tehran", "2021-03-21T12:00+03:30",
     ["2021-03-22T01:30+04:30 (00:30)", "2021-03-23T00:30+04:30"]),
    ("30 23 * * *", "Asia/Tehran", "2021-09-21T12:00+04:30",
     ["2021-09-21T23:30+04:30", "2021-09-22T23:30+03:30"]),
    ("30 0 * * *", "Asia/Tehran", "2023-03-21T12:00+03:30",
     ["2023-03-22T00:30+03:30", "2023-03-23T00:30+03:30"]),
    ("30 23 * * *", "Asia/Tehran", "2023-09-21T12:00+03:30",
     ["2023-09-21T23:30+03:30", "2023-09-22T23:30+03:30"]),
    # Almaty left UTC+6 for UTC+5 at midnight on 1 March 2024: 23:00-24:00 on 29 February twice.
    ("30 0 * * *", "Asia/Almaty", "2024-02-28T12:00+06:00",
     ["2024-02-29T00:30+06:00", "2024-03-01T00:30+05:00", "2024-03-02T00:30+05:00"]),
    ("30 23 * * *", "Asia/Almaty", "2024-02-28T12:00+06:00",
     ["2024-02-28T23:30+06:00", "2024-02-29T23:30+06:00", "2024-03-01T23:30+05:00"]),
    # Lord Howe moves by half an hour: 02:00-02:30 does not exist on 5 October 2025, so the
    # shifted 02:15 (02:45) comes after 02:40, and a name's order is not an instant's.
    ("0,15,40 2 * * *", "Australia/Lord_Howe", "2025-10-04T12:00+10:30",
     ["2025-10-05T02:30+11:00 (02:00)", "2025-10-05T02:40+11:00", "2025-10-05T02:45+11:00 (02:15)",
      "2025-10-06T02:00+11:00"]),
    # Apia skipped 30 December 2011 (UTC-10 to UTC+14): that day's noon, shifted by the day,
    # is the noon of the 31st, which exists; a schedule for the 30th alone fires then, once.
    ("0 12 * * *", "Pacific/Apia", "2011-12-29T00:00-10:00",
     ["2011-12-29T12:00-10:00", "2011-12-31T12:00+14:00", "2012-01-01T12:00+14:00"]),
    ("0 12 30 12 *", "Pacific/Apia", "2011-12-31T06:00+14:00",
     ["2011-12-31T12:00+14:00 (2011-12-30T12:00)", "2012-12-30T12:00+14:00"]),
    # Fields: a step on month names; a step larger than its range; crontab's day rules.
    ("0 2 * jan-mar/2 *", "UTC", "2025-01-30T12:00+00:00",
     ["2025-01-31T02:00+00:00", "2025-03-01T02:00+00:00", "2025-03-02T02:00+00:00"]),
    ("0 8-9/2 * * 1", "UTC", "2025-11-30T12:00+00:00", ["2025-12-01T08:00+00:00", "2025-12-08T08:00+00:00"]),
    ("0 8 * * 5-7", "UTC", "2025-11-30T12:00+00:00",
     ["2025-12-05T08:00+00:00", "2025-12-06T08:00+00:00", "2025-12-07T08:00+00:00", "2025-12-12T08:00+00:00"]),
    ("0 8 1 * 1", "UTC", "2026-01-25T12:00+00:00",  # the 1st (a Sunday) or a Monday
     ["2026-01-26T08:00+00:00", "2026-02-01T08:00+00:00", "2026-02-02T08:00+00:00"]),
    ("0 8 */2 * 1", "UTC", "2026-01-01T12:00+00:00",  # odd days that are Mondays
     ["2026-01-05T08:00+00:00", "2026-01-19T08:00+00:00", "2026-02-09T08:00+00:00"]),
    ("0 0 29 2 */7", "UTC", "2004-03-01T00:00+00:00", ["2032-02-29T00:00+00:00"]),  # 29 Feb on a Sunday
]


@pytest.mark.parametrize(("line", "zone", "after", "expected"), TABLE, ids=[f"{c[0]} {c[1]} {c[2][:10]}" for c in TABLE])
def test_hand_checked_fire_times(line: str, zone: str, after: str, expected: list[str]) -> None:
    assert _upcoming(line, zone, after, len(expected)) == expected


@pytest.mark.parametrize(("zone", "before", "after"), [
    ("America/New_York", "2025-03-09T01:59-05:00", "2025-03-09T03:00-04:00"),
    ("America/New_York", "2025-11-02T01:59-04:00", "2025-11-02T01:00-05:00"),
    ("Europe/Berlin", "2027-03-28T01:59+01:00", "2027-03-28T03:00+02:00"),
    ("Europe/Berlin", "2027-10-31T02:59+02:00", "2027-10-31T02:00+01:00"),
    ("Australia/Sydney", "2025-04-06T02:59+11:00", "2025-04-06T02:00+10:00"),
    ("Australia/Sydney", "2025-10-05T01:59+10:00", "2025-10-05T03:00+11:00"),
    ("America/Santiago", "2025-04-05T23:59-03:00", "2025-04-05T23:00-04:00"),
    ("America/Santiago", "2025-09-06T23:59-04:00", "2025-09-07T01:00-03:00"),
    ("Asia/Tehran", "2021-03-21T23:59+03:30", "2021-03-22T01:00+04:30"),
    ("Asia/Tehran", "2021-09-21T23:59+04:30", "2021-09-21T23:00+03:30"),
    ("Asia/Almaty", "2024-02-29T23:59+06:00", "2024-02-29T23:00+05:00"),
    ("Australia/Lord_Howe", "2025-10-05T01:59+10:30", "2025-10-05T02:30+11:00"),
    ("Pacific/Apia", "2011-12-29T23:59-10:00", "2011-12-31T00:00+14:00"),
])
def test_the_tables_transitions_are_the_zones(zone: str, before: str, after: str) -> None:
    tz = ZoneInfo(zone)
    last = datetime.fromisoformat(before)
    assert last.astimezone(tz).isoformat(timespec="minutes") == before
    assert (last + MINUTE).astimezone(tz).isoformat(timespec="minutes") == after


def test_tehran_kept_one_offset_through_2023() -> None:
    tehran = ZoneInfo("Asia/Tehran")
    fires = cron.fire_times(cron.parse("0 12 * * *"), tehran, datetime(2023, 1, 1, tzinfo=tehran),
                            datetime(2024, 1, 1, tzinfo=tehran))
    assert len(fires) == 365
    assert {f.instant.astimezone(tehran).utcoffset() for f in fires} == {timedelta(hours=3, minutes=30)}


@pytest.mark.parametrize(("line", "sets"), [
    ("0 2 * jan-mar/2 *", {"months": {1, 3}}),
    ("0 8-9/2 * * 1", {"hours": {8}, "weekdays": {1}}),  # a step larger than its range: its start
    ("10-20/30 */90 * * *", {"minutes": {10}, "hours": {0}}),
    ("0 0 * * 5-7", {"weekdays": {5, 6, 0}}),
    ("0 0 * * 0,7", {"weekdays": {0}}),
    ("0 0 * * */2", {"weekdays": {0, 2, 4, 6}}),
    ("0 0 * * MON-Fri/2", {"weekdays": {1, 3, 5}}),
    ("0 0 * * sun,SAT", {"weekdays": {0, 6}}),
    ("0 0 1-31/10 OCT-dec *", {"days": {1, 11, 21, 31}, "months": {10, 11, 12}}),
    ("00 08 * * *", {"minutes": {0}, "hours": {8}}),
    ("0005 000 007 0012 0000", {"minutes": {5}, "hours": {0}, "days": {7}, "months": {12}, "weekdays": {0}}),
    ("*/99999 */00024 * * *", {"minutes": {0}, "hours": {0}}),  # a step past the range: its start
    (f"*/{'7' * 5000} 3 * * *", {"minutes": {0}, "hours": {3}}),  # longer than int() converts
    ("@ANNUALLY", {"minutes": {0}, "hours": {0}, "days": {1}, "months": {1}}),
])
def test_fields_expand_by_crontabs_rules(line: str, sets: dict[str, set[int]]) -> None:
    schedule = cron.parse(line)
    assert {name: set(getattr(schedule, name)) for name in sets} == sets


@pytest.mark.parametrize(("line", "day", "weekday"), [
    ("0 8 1 * 1", True, True), ("0 8 */2 * 1", False, True), ("0 8 1 * *", True, False), ("@weekly", False, True),
])
def test_which_day_fields_are_restricted(line: str, day: bool, weekday: bool) -> None:
    schedule = cron.parse(line)
    assert (schedule.day_restricted, schedule.weekday_restricted) == (day, weekday)


_SYNTAX = "is not crontab syntax (a value, a range a-b, '*', each with an optional /step)"


@pytest.mark.parametrize(("line", "says"), [
    ("* * * * 5/2", "day of week field '5/2': '5/2' steps from a single value; write a range such as '5-7/2'"),
    ("0 8 * * mon/2", "day of week field 'mon/2': 'mon/2' steps from a single value; write a range such as 'mon-sat/2'"),
    ("5/15 * * * *", "minute field '5/15': '5/15' steps from a single value; write a range such as '5-59/15'"),
    ("0 24 * * *", "hour field '24': 24 is outside 0-23"),
    ("0 0 0 * *", "day of month field '0': 0 is outside 1-31"),
    ("0 0 * 13 *", "month field '13': 13 is outside 1-12"),
    ("0 0 * * 8", "day of week field '8': 8 is outside 0-7"),
    ("0100 * * * *", "minute field '0100': 0100 is outside 0-59"),
    ("0 0 1-32 * *", "day of month field '1-32': 32 is outside 1-31"),
    ("0 0 * jan-mar/0 *", "month field 'jan-mar/0': the step in 'jan-mar/0' must be at least 1"),
    ("0 0 * * 1-5/00", "day of week field '1-5/00': the step in '1-5/00' must be at least 1"),
    ("0 0 * mar-jan *", "month field 'mar-jan': the range 'mar-jan' runs backwards"),
    ("0 0 * * mon-sun", "day of week field 'mon-sun': the range 'mon-sun' runs backwards"),
    ("0 0 * mon *", "month field 'mon': 'mon' is not a number 1-12 or a name like 'feb'"),
    ("0 0 * * monday", "day of week field 'monday': 'monday' is not a number 0-7 or a name like 'mon'"),
    ("0 0 jan * *", "day of month field 'jan': 'jan' is not a number 1-31"),
    ("0 0 * * 1-5/", "day of week field '1-5/': the step in '1-5/' is not a whole number"),
    ("0 0 1 1-3/x *", "month field '1-3/x': the step in '1-3/x' is not a whole number"),
    ("0 0 L * *", "day of month field 'L': 'L' is not a number 1-31"),
    ("0 0 * * MON/2", "day of week field 'MON/2': 'MON/2' steps from a single value; write a range such as 'MON-sat/2'"),
    ("0 0 * Mar-Jan *", "month field 'Mar-Jan': the range 'Mar-Jan' runs backwards"),
    ("0 0 * * Monday", "day of week field 'Monday': 'Monday' is not a number 0-7 or a name like 'mon'"),
    ("0 0 ? * *", f"day of month field '?': '?' {_SYNTAX}"),
    ("1,,2 * * * *", f"minute field '1,,2': an empty entry {_SYNTAX}"),
    ("0 0 * * mon#2", f"day of week field 'mon#2': 'mon#2' {_SYNTAX}"),
    ("*-5 * * * *", f"minute field '*-5': '*-5' {_SYNTAX}"),
    ("0 ٣ * * *", f"hour field '٣': '٣' {_SYNTAX}"),
    ("0 0 * * ²", f"day of week field '²': '²' {_SYNTAX}"),
    (f"{'9' * 5000} * * * *", f"minute field '{'9' * 5000}': {'9' * 5000} is outside 0-59"),
])
def test_refusals_name_the_field_and_the_fault(line: str, says: str) -> None:
    with pytest.raises(ValueError) as refused:
        cron.parse(line)
    assert str(refused.value) == f"{line!r} is not a valid schedule: {says}"


@pytest.mark.parametrize("line", ["0 8 * *", "0 8 * * * *", "", "@reboot", "@daily 5"])
def test_refusals_of_the_whole_line(line: str) -> None:
    with pytest.raises(ValueError, match="5 fields|preset"):
        cron.check_schedule(line)


def test_validate_refuses_what_the_planner_cannot_compute_and_only_that(tmp_path: Path) -> None:
    from reporter import config
    from reporter.errors import ConfigError

    good = make_project(tmp_path / "good", [report_block("r", schedule="0 8-9/2 * * 1", **FAST)])
    assert config.load(good).report("r").schedule == "0 8-9/2 * * 1"
    bad = make_project(tmp_path / "bad", [report_block("r", schedule="* * * * 5/2", **FAST)])
    with pytest.raises(ConfigError) as caught:
        config.load(bad)
    (problem,) = caught.value.problems
    assert problem.place == "reports.r.schedule" and "day of week field '5/2'" in problem.message


def test_a_schedule_that_never_fires_costs_nothing() -> None:
    started = clock.perf_counter()
    never = cron.parse("0 0 31 2 *")
    assert never.never
    assert cron.next_fire(never, UTC, datetime(2025, 1, 1, tzinfo=UTC)) is None
    assert cron.fire_times(never, UTC, datetime(2025, 1, 1, tzinfo=UTC), datetime(2035, 1, 1, tzinfo=UTC)) == []
    assert not cron.parse("0 0 29 2 *").never and not cron.parse("0 0 31 2 1").never  # 1: either day field
    # A bound that catches a search without end, with room for a loaded machine; how fast it
    # is belongs to a benchmark, not to a timed test.
    assert clock.perf_counter() - started < 10


def test_minute_level_schedules_over_three_years_are_fast() -> None:
    new_york = ZoneInfo("America/New_York")
    every_minute = cron.parse("* * * * *")
    start, end = datetime(2024, 1, 1, tzinfo=new_york), datetime(2027, 1, 1, tzinfo=new_york)
    started = clock.perf_counter()
    newest = cron.fire_times(every_minute, new_york, start, end, limit=1000)
    assert cron.next_fire(every_minute, new_york, start).instant == datetime(2024, 1, 1, 5, 1, tzinfo=UTC)
    assert clock.perf_counter() - started < 10  # a bound, as above
    assert len(newest) == 1000 and newest[-1].instant == end.astimezone(UTC)
    every_quarter = cron.fire_times(cron.parse("*/15 * * * *"), new_york, start, end)
    # Three years of quarter hours, less the hour each of three spring-forwards skips: the
    # times in it fire shifted, at the instants of 03:00-03:45, which fire anyway.
    assert len(every_quarter) == 1096 * 96 - 3 * 4
    assert clock.perf_counter() - started < 60  # a bound, as above


class _CountingZone(tzinfo):
    """A real zone (zoneinfo's) that counts how often it is asked for an offset: the work of
    computing fires, measured without a clock and without touching the code under test."""

    def __init__(self, key: str) -> None:
        self.zone, self.lookups = ZoneInfo(key), 0

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        self.lookups += 1
        return self.zone.utcoffset(dt)

    def dst(self, dt: datetime | None) -> timedelta | None:
        return self.zone.dst(dt)

    def tzname(self, dt: datetime | None) -> str | None:
        return self.zone.tzname(dt)

    def fromutc(self, dt: datetime) -> datetime:
        self.lookups += 1
        return self.zone.fromutc(dt.replace(tzinfo=self.zone)).replace(tzinfo=self)


@pytest.mark.parametrize(("line", "limit", "days"), [
    ("* * * * *", 1000, 1),      # 1440 a day: the last day holds them
    ("0 9 * * *", 3, 3),         # one a day
    ("0 9,21 * * 1-5", 5, 7),    # two a weekday: a weekend inside
    ("0 9 * 1 *", 3, 3),         # January only, and the window ends in March
])
def test_the_newest_fires_of_a_long_window_cost_the_last_days_only(line: str, limit: int, days: int) -> None:
    # A service back after three years computes its catch-up from the days that hold the
    # newest fires, not by walking the three years (some four thousand look-ups of the zone
    # for a daily schedule): the look-ups are counted, so that the promise holds without a
    # timed test. A plain day costs a few, at its two midnights.
    zone = _CountingZone("Asia/Almaty")
    schedule = cron.parse(line)
    after, until = datetime(2024, 1, 2, tzinfo=zone.zone), datetime(2027, 3, 15, 12, tzinfo=zone.zone)
    newest = cron.fire_times(schedule, zone, after, until, limit=limit)
    assert newest == cron.fire_times(schedule, zone.zone, until - 75 * DAY, until)[-limit:]
    assert len(newest) == limit
    assert zone.lookups <= 10 * (days + 8), f"{zone.lookups} look-ups for the newest {limit} of {line!r}"


def test_a_day_without_a_transition_costs_no_zone_lookup_per_fire() -> None:
    every_minute = cron.parse("* * * * *")
    plain = _CountingZone("America/New_York")
    fires_of_a_plain_day = cron.fire_times(every_minute, plain, datetime(2025, 3, 5, tzinfo=UTC), datetime(2025, 3, 6, tzinfo=UTC))
    assert len(fires_of_a_plain_day) == 1440 and plain.lookups <= 20
    spring_forward = _CountingZone("America/New_York")
    short_day = datetime(2025, 3, 9, 5, tzinfo=UTC), datetime(2025, 3, 10, 4, tzinfo=UTC)
    fires_of_the_short_day = cron.fire_times(every_minute, spring_forward, *short_day)
    # The skipped hour's times fire shifted, onto instants that fire anyway: 23 hours of fires,
    # each looked up in the zone on the day of a transition.
    assert len(fires_of_the_short_day) == 1380 and spring_forward.lookups >= 1440


def test_a_limit_keeps_the_newest_fires_and_no_more() -> None:
    every_minute, zone = cron.parse("* * * * *"), ZoneInfo("Europe/Berlin")
    after = datetime(2027, 5, 4, 10, tzinfo=zone)
    # A window shorter than a day, and one of days: each keeps only the newest of its fires.
    for until in (after + timedelta(hours=1), after + 3 * DAY):
        newest = cron.fire_times(every_minute, zone, after, until, limit=5)
        assert [f.instant for f in newest] == [until.astimezone(UTC) - n * MINUTE for n in range(4, -1, -1)]
        assert cron.fire_times(every_minute, zone, after, until, limit=0) == []
        assert cron.fire_times(every_minute, zone, after, until, limit=-1) == []


def test_a_repeated_wall_time_fires_at_its_first_instant_whatever_its_fold() -> None:
    new_york = ZoneInfo("America/New_York")
    # 01:30 on 2025-11-02 happens twice in New York; a schedule fires at the first (EDT).
    for fold in (0, 1):
        assert cron.instant_of(datetime(2025, 11, 2, 1, 30, fold=fold), new_york) == datetime(2025, 11, 2, 5, 30, tzinfo=UTC)


def test_fire_instants_are_in_utc_whatever_the_machines_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    # A machine zone that is neither UTC nor the report's (a POSIX rule: no zone file needed).
    monkeypatch.setenv("TZ", "EST5EDT,M3.2.0,M11.1.0")
    clock.tzset()
    try:
        zone = ZoneInfo("Asia/Tokyo")
        schedule = cron.parse("30 9 * * *")
        after = datetime(2026, 7, 1, tzinfo=zone)
        fire = cron.next_fire(schedule, zone, after)
        newest = cron.fire_times(schedule, zone, after, after + 5 * DAY, limit=2)
        for instant in [fire.instant, cron.instant_of(datetime(2026, 7, 1, 9, 30), zone), *(f.instant for f in newest)]:
            assert instant.utcoffset() == timedelta(0), instant
        assert fire.instant.isoformat() == "2026-07-01T00:30:00+00:00"
        assert [f.instant.isoformat() for f in newest] == ["2026-07-04T00:30:00+00:00", "2026-07-05T00:30:00+00:00"]
        # Fourteen hours ahead of UTC, the report eleven behind: the machine's date of an
        # instant is a day past its date in UTC, and the fire before midnight in Pago Pago
        # falls on the machine's next day but one.
        monkeypatch.setenv("TZ", "<+14>-14")
        clock.tzset()
        pago_pago = ZoneInfo("Pacific/Pago_Pago")
        fire = cron.next_fire(cron.parse("30 23 * * *"), pago_pago, datetime(2026, 7, 1, 10, tzinfo=UTC))
        assert fire.instant == datetime(2026, 7, 1, 10, 30, tzinfo=UTC) and fire.wall == datetime(2026, 6, 30, 23, 30)
    finally:
        monkeypatch.undo()
        clock.tzset()


def test_the_last_fire_of_the_calendar_comes_once() -> None:
    # Fires run to the end of year 9998; the last one, at noon on its last day, is after
    # 11:59 and not after itself.
    last = cron.parse("0 12 31 12 *")
    assert cron.next_fire(last, UTC, datetime(9998, 12, 31, 11, 59, tzinfo=UTC)).instant == datetime(9998, 12, 31, 12, tzinfo=UTC)
    assert cron.next_fire(last, UTC, datetime(9998, 12, 31, 12, tzinfo=UTC)) is None


# Plan and slots: a shifted time keeps its nominal name, and slots sort by instant.

def _report(schedule: str, zone: str, catch_up: str = "all", grace_hours: float = 72) -> Report:
    return Report(id="r", title={"en": "T"}, datasets=("brief",), layout="brief.html.j2", narrative="",
                  languages=("en",), formats=("html",), timezone=ZoneInfo(zone), schedule=schedule,
                  catch_up=catch_up, grace_seconds=grace_hours * 3600)


def test_a_long_downtime_considers_the_newest_thousand_slots_only() -> None:
    # Two days down with a schedule of every minute: 2880 slots were missed, and catch-up
    # "all" runs the newest 1000 (MAX_SLOTS), not a backlog that would take days to clear.
    report = _report("* * * * *", "Europe/Berlin", catch_up="all")
    now = datetime(2027, 5, 4, 12, tzinfo=UTC)
    decision = plan(report, now, now - 2 * DAY)
    assert len(decision.run) == MAX_SLOTS == 1000 and decision.skip == ()
    assert decision.run[-1].fire_time == now and decision.run[0].fire_time == now - 999 * MINUTE


def test_a_shifted_slot_keeps_its_nominal_name_and_date() -> None:
    report = _report("30 2 * * *", "America/New_York")
    decision = plan(report, datetime.fromisoformat("2025-03-09T03:31-04:00"), datetime.fromisoformat("2025-03-08T12:00-05:00"))
    (slot,) = decision.run
    assert (slot.key, slot.edition_date, slot.fire_time) == (
        "2025-03-09T02:30", date(2025, 3, 9), datetime(2025, 3, 9, 7, 30, tzinfo=UTC))
    # An abandoned run of that slot maps back to the same instant.
    again = plan(report, datetime.fromisoformat("2025-03-09T03:40-04:00"), datetime.fromisoformat("2025-03-09T03:31-04:00"),
                 abandoned=["2025-03-09T02:30"])
    assert [(s.key, s.fire_time) for s in again.run] == [(slot.key, slot.fire_time)]


def test_slots_are_ordered_by_instant_not_by_name() -> None:
    now, since = datetime.fromisoformat("2025-10-05T02:50+11:00"), datetime.fromisoformat("2025-10-05T01:00+10:30")
    every = plan(_report("0,15,40 2 * * *", "Australia/Lord_Howe"), now, since)
    assert [s.key[11:] for s in every.run] == ["02:00", "02:40", "02:15"]
    latest = plan(_report("0,15,40 2 * * *", "Australia/Lord_Howe", catch_up="latest"), now, since)
    assert [s.key[11:] for s in latest.run] == ["02:15"]  # the newest fires at 02:45


def test_next_runs_are_real_instants() -> None:
    runs = next_runs(_report("30 2 * * *", "America/New_York"), datetime.fromisoformat("2025-03-08T12:00-05:00"), 2)
    assert [r.strftime("%m-%d %H:%M %Z") for r in runs] == ["03-09 03:30 EDT", "03-10 02:30 EDT"]


# Property-based tests: random expressions, read independently of reporter.cron.

FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
          ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
          ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")))
ZONES = ("America/New_York", "Europe/Berlin", "Australia/Sydney", "America/Santiago", "Asia/Tehran", "Asia/Almaty", "UTC")


def _ci(examples: int) -> settings:
    """Deterministic for CI: derandomized, no example database, no deadline (CI machines vary)."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Expr:
    """A generated crontab line with what it should mean, worked out as it was built."""

    text: str
    sets: tuple[frozenset[int], ...]  # minutes, hours, days, months, weekdays (Sunday = 0)
    valid: bool

    @property
    def either_day(self) -> bool:
        fields = self.text.split()
        return not fields[2].startswith("*") and not fields[4].startswith("*")

    def day_matches(self, day: date) -> bool:
        _, _, days, months, weekdays = self.sets
        if day.month not in months:
            return False
        in_month, in_week = day.day in days, day.isoweekday() % 7 in weekdays
        return (in_month or in_week) if self.either_day else (in_month and in_week)

    def matches(self, wall: datetime) -> bool:
        return wall.minute in self.sets[0] and wall.hour in self.sets[1] and self.day_matches(wall.date())


@st.composite
def _value(draw, low: int, high: int, names: tuple[str, ...], first: int) -> tuple[str, int]:
    number = draw(st.integers(low, high))
    if names and number - first < len(names) and draw(st.booleans()):
        name = names[number - first]
        return draw(st.sampled_from([name, name.upper(), name.title()])), number
    return str(number), number


@st.composite
def _item(draw, low: int, high: int, names: tuple[str, ...], allow_invalid: bool) -> tuple[str, set[int], bool]:
    first = 1 if high == 12 else 0
    kinds = ["value", "range", "range/step", "*/step", "*"]
    if allow_invalid:
        kinds += ["value/step", "out of range", "backwards", "step 0", "foreign name", "garbage"]
    kind = draw(st.sampled_from(kinds))
    step = draw(st.integers(1, high - low + 3))  # larger than the range now and then
    a_text, a = draw(_value(low, high, names, first))
    b_text, b = draw(_value(a, high, names, first))
    if kind == "*":
        return "*", set(range(low, high + 1)), True
    if kind == "*/step":
        return f"*/{step}", set(range(low, high + 1, step)), True
    if kind == "value":
        return a_text, {a}, True
    if kind == "range":
        return f"{a_text}-{b_text}", set(range(a, b + 1)), True
    if kind == "range/step":
        return f"{a_text}-{b_text}/{step}", set(range(a, b + 1, step)), True
    if kind == "value/step":
        return f"{a_text}/{step}", set(), False
    if kind == "out of range":
        return str(draw(st.sampled_from([high + 1, high + 40] + ([low - 1] if low else [])))), set(), False
    if kind == "backwards":
        return (f"{b_text}-{a_text}", set(), False) if a < b else (f"{a_text}-{b_text}/{step}", set(range(a, b + 1, step)), True)
    if kind == "step 0":
        return draw(st.sampled_from(["*/0", f"{a_text}-{b_text}/0", "*/00"])), set(), False
    if kind == "foreign name":
        return draw(st.sampled_from(["mon", "jan", "sunday", "dec"] if not names else
                                    (["jan", "dec"] if high == 7 else ["mon", "fri"]))), set(), False
    return draw(st.sampled_from(["L", "?", "1#2", "", "*-3", "1-", "-1", "1--2", "/2", "1/", "W"])), set(), False


@st.composite
def _field(draw, index: int, allow_invalid: bool, max_items: int = 3) -> tuple[str, frozenset[int], bool]:
    _name, low, high, names = FIELDS[index]
    items = draw(st.lists(_item(low, high, names, allow_invalid), min_size=1, max_size=max_items))
    values = set().union(*(values for _, values, _ in items))
    if index == 4 and 7 in values:
        values = (values - {7}) | {0}
    return ",".join(text for text, _, _ in items), frozenset(values), all(ok for _, _, ok in items)


@st.composite
def expressions(draw, allow_invalid: bool = False, stars: tuple[int, ...] = (0, 0, 0, 0, 0),
                minute_items: int = 3, often: dict[int, tuple[int, ...]] | None = None) -> Expr:
    """Lines built from parts. Random fields alone rarely fire in a transition's hour (2 a.m.
    on a Sunday in March), so ``stars`` gives, per field, the chance in quarters of a plain
    '*', and ``often`` values that half the time join a field's list."""
    fields = []
    for index, quarters in enumerate(stars):
        if draw(st.integers(0, 3)) < quarters:
            _name, low, high, _names = FIELDS[index]
            fields.append(("*", frozenset(range(low, min(high, 6 if index == 4 else high) + 1)), True))
            continue
        text, values, ok = draw(_field(index, allow_invalid, minute_items if index == 0 else 3))
        if (often or {}).get(index) and draw(st.booleans()):
            value = draw(st.sampled_from(often[index]))
            text, values = f"{text},{value}", values | {value}
        fields.append((text, values, ok))
    return Expr(" ".join(text for text, _, _ in fields), tuple(values for _, values, _ in fields),
                all(ok for _, _, ok in fields))


@_ci(400)
@given(st.booleans().flatmap(lambda mistakes: expressions(allow_invalid=mistakes)))
def test_parse_and_check_schedule_accept_exactly_the_valid_lines(expr: Expr) -> None:
    if not expr.valid:
        with pytest.raises(ValueError):
            cron.parse(expr.text)
        with pytest.raises(ValueError):
            cron.check_schedule(expr.text)
        return
    schedule = cron.parse(expr.text)
    assert (schedule.minutes, schedule.hours, schedule.days, schedule.months, schedule.weekdays) == expr.sets
    assert schedule.either_day == expr.either_day
    assert cron.check_schedule(expr.text) == schedule


_CRONTAB_ALPHABET = st.sampled_from(list("0123456789*-/, \t") + ["jan", "mon", "SUN", "L", "#", "?", "@", "@daily"])


@_ci(300)
@given(st.text(max_size=30) | st.lists(_CRONTAB_ALPHABET, max_size=20).map("".join))
def test_any_text_gives_a_schedule_or_a_value_error(text: str) -> None:
    try:
        schedule = cron.parse(text)
    except ValueError as exc:
        assert str(exc)
        return
    for values, (_name, low, high, _names) in zip(
            (schedule.minutes, schedule.hours, schedule.days, schedule.months, schedule.weekdays), FIELDS):
        assert values and min(values) >= low and max(values) <= min(high, 6 if high == 7 else high)


@lru_cache(maxsize=4096)
def _offsets_near(zone: ZoneInfo, day: date) -> frozenset[timedelta]:
    """The zone's offsets from a day and a half before ``day`` to a day and a half after it."""
    noon = datetime.combine(day, time(12), UTC)
    return frozenset((noon + k * timedelta(hours=12)).astimezone(zone).utcoffset() for k in range(-3, 4))


def _exists(zone: ZoneInfo, wall: datetime, offsets: frozenset[timedelta]) -> bool:
    return any((wall.replace(tzinfo=UTC) - o).astimezone(zone).replace(tzinfo=None) == wall for o in offsets)


def _check_fire(zone: ZoneInfo, fire: cron.Fire) -> bool:
    """A fire is its nominal wall time, at its first occurrence, or shifted by a gap it fell in
    (then True)."""
    local = fire.instant.astimezone(zone).replace(tzinfo=None)
    offsets = _offsets_near(zone, fire.wall.date())
    if len(offsets) == 1:
        assert local == fire.wall
    elif local == fire.wall:
        for change in {abs(a - b) for a in offsets for b in offsets} - {timedelta(0)}:
            assert (fire.instant - change).astimezone(zone).replace(tzinfo=None) != fire.wall, "not the first occurrence"
    else:
        assert not _exists(zone, fire.wall, offsets), f"{fire.wall} exists but fired at {local}"
        assert local - fire.wall == max(offsets) - min(offsets), "shifted by other than the gap"
    return local != fire.wall


# The hour each zone skips or repeats in 2024-2026 (none in Tehran or UTC: any hour will do).
CHANGE_HOURS = {"America/New_York": 2, "Europe/Berlin": 2, "Australia/Sydney": 2, "America/Santiago": 0,
                "Asia/Tehran": 0, "Asia/Almaty": 23, "UTC": 12}


def _with_hours(expr: Expr, text: str, hours: set[int]) -> Expr:
    fields = expr.text.split()
    return Expr(" ".join([fields[0], text, *fields[2:]]), (expr.sets[0], frozenset(hours), *expr.sets[2:]), expr.valid)


@st.composite
def _zone_and_line(draw) -> tuple[str, Expr]:
    """A zone, and a line that half the time runs every day of the month in the zone's changing
    hour (and not the next one, which would take a shifted time's instant); months and weekdays
    often include March, September, October, November and Sunday (all of 2024-2026's changes
    but Almaty's fall on those)."""
    zone = draw(st.sampled_from(ZONES))
    changing = draw(st.booleans())
    expr = draw(expressions(stars=(0, 1, 4 if changing else 2, 2, 2), minute_items=1, often={3: (3, 9, 10, 11), 4: (0,)}))
    if changing:
        hour = CHANGE_HOURS[zone]
        other = draw(st.integers(0, 23).filter(lambda h: h != hour + 1))
        expr = _with_hours(expr, *draw(st.sampled_from([(str(hour), {hour}), (f"{hour},{other}", {hour, other})])))
    return zone, expr


@_ci(50)
@given(_zone_and_line(), st.datetimes(datetime(2024, 1, 1), datetime(2026, 12, 31)))
def test_three_years_of_fires_match_the_fields_skip_no_day_and_repeat_no_instant(
        case: tuple[str, Expr], start: datetime) -> None:
    zone_name, expr = case
    zone = ZoneInfo(zone_name)
    schedule = cron.parse(expr.text)
    after = start.replace(tzinfo=zone)
    per_day = len(expr.sets[0]) * len(expr.sets[1])
    days = min(1096, max(20, 30_000 // per_day))  # three years, or as much as 30,000 fires of a dense one
    until = after + timedelta(days=days)
    fires = cron.fire_times(schedule, zone, after, until)
    instants = [f.instant for f in fires]
    assert all(a < b for a, b in zip(instants, instants[1:])), "instants strictly increase"
    assert not fires or (after < fires[0].instant and fires[-1].instant <= until)
    walls = {f.wall for f in fires}
    assert len(walls) == len(fires), "one fire per nominal time"
    shifted = 0
    for fire in fires:
        assert expr.matches(fire.wall), f"{fire.wall} does not match {expr.text!r}"
        shifted += _check_fire(zone, fire)
    # Every matching time of every matching day, away from the window's edges, fired: under its
    # own name, or (a time a gap skipped) at its shifted instant, which a time that exists took.
    fired_at = set(instants)
    day = start.date() + 2 * DAY
    times = [time(h, m) for h in sorted(expr.sets[1]) for m in sorted(expr.sets[0])]
    while day < (start + timedelta(days=days)).date() - DAY:
        if expr.day_matches(day):
            for wall in (datetime.combine(day, t) for t in times):
                if wall not in walls:
                    offsets = _offsets_near(zone, day)
                    assert not _exists(zone, wall, offsets), f"{wall} matches {expr.text!r} but never fired"
                    assert wall.replace(tzinfo=UTC) - min(offsets) in fired_at
        day += DAY
    event(f"fires: {'none' if not fires else 'under 100' if len(fires) < 100 else '100 or more'}; "
          f"shifted by a gap: {'some' if shifted else 'none'}")


# Days of a transition, and the local hour that is skipped or repeated on it.
TRANSITIONS = [
    ("America/New_York", date(2025, 3, 9), 2), ("America/New_York", date(2025, 11, 2), 1),
    ("America/New_York", date(2024, 3, 10), 2), ("America/New_York", date(2026, 11, 1), 1),
    ("Europe/Berlin", date(2027, 3, 28), 2), ("Europe/Berlin", date(2027, 10, 31), 2),
    ("Europe/Berlin", date(2025, 3, 30), 2),
    ("Australia/Sydney", date(2025, 4, 6), 2), ("Australia/Sydney", date(2025, 10, 5), 2),
    ("America/Santiago", date(2025, 4, 5), 23), ("America/Santiago", date(2025, 9, 7), 0),
    ("Asia/Tehran", date(2021, 3, 22), 0), ("Asia/Tehran", date(2021, 9, 21), 23),
    ("Asia/Almaty", date(2024, 2, 29), 23),
    ("Australia/Lord_Howe", date(2025, 4, 6), 1), ("Australia/Lord_Howe", date(2025, 10, 5), 2),
    ("Pacific/Apia", date(2011, 12, 30), 12), ("UTC", date(2025, 1, 1), 12),
]


@st.composite
def _near_transitions(draw) -> tuple[Expr, str, date]:
    """A transition, and half the time a line that fires every day in its hour, among others."""
    zone, day, hour = draw(st.sampled_from(TRANSITIONS))
    daily = draw(st.booleans())
    expr = draw(expressions(stars=(0, 0, 4, 3, 4) if daily else (0, 1, 3, 3, 3)))
    if daily:
        low, high = draw(st.integers(max(0, hour - 2), hour)), draw(st.integers(hour, min(23, hour + 2)))
        expr = _with_hours(expr, *draw(st.sampled_from([(str(hour), {hour}), (f"{low}-{high}", set(range(low, high + 1))),
                                                        (f"{low},{hour},{high}", {low, hour, high})])))
    return expr, zone, day


def _oracle(expr: Expr, zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Brute force, from the real clock: every UTC minute in ``[start, end]``, read in the zone.

    A wall time seen for the first time and matching the fields fires then. A matching wall
    time the clock jumped over fires when the clock jumped, plus how far into the gap it lies,
    unless a wall time that exists fires at that same instant.
    """
    fires: dict[datetime, datetime] = {}
    seen: set[datetime] = set()
    jumps = []
    previous = None
    moment = start
    while moment <= end:
        wall = moment.astimezone(zone).replace(tzinfo=None)
        if previous is not None and wall - previous > MINUTE:
            jumps.append((moment, previous + MINUTE, wall))
        if wall not in seen:
            seen.add(wall)
            if expr.matches(wall):
                fires[moment] = wall
        previous = wall
        moment += MINUTE
    for jumped_at, first_skipped, resumed in jumps:
        wall = first_skipped
        while wall < resumed:
            if expr.matches(wall):
                fires.setdefault(jumped_at + (wall - first_skipped), wall)
            wall += MINUTE
    return sorted(fires.items())


@_ci(80)
@given(_near_transitions(), st.integers(2, 6))
def test_the_engine_agrees_with_a_brute_force_oracle_around_transitions(case: tuple[Expr, str, date], lead: int) -> None:
    expr, zone_name, day = case
    zone = ZoneInfo(zone_name)
    start = datetime.combine(day - timedelta(days=lead), time(), UTC)
    end = start + timedelta(days=10)
    # The oracle needs a day of history to know a first occurrence; compare well inside.
    after, until = start + DAY, end - DAY
    expected = [(i, w) for i, w in _oracle(expr, zone, start, end) if after < i <= until]
    got = [(f.instant, f.wall) for f in cron.fire_times(cron.parse(expr.text), zone, after, until)]
    assert got == expected
    shifted = sum(instant.astimezone(zone).replace(tzinfo=None) != wall for instant, wall in expected)
    event(f"fires: {'none' if not expected else 'some'}; shifted by a gap: {'some' if shifted else 'none'}")


# The CLI and the service on top: real instants, the Monday that vanished, and the wake-ups.

def test_list_shows_the_real_instant_of_a_time_a_spring_forward_skips(tmp_path: Path) -> None:
    config_path = make_project(tmp_path, [report_block("ny", schedule="30 2 * * *", timezone="America/New_York", **FAST),
                                          report_block("odd", schedule="0 8-9/2 * * 1", **FAST)])
    result = run_cli("--config", str(config_path), "list", "--next", "3", env={"REPORTER_NOW": "2025-03-08T12:00:00-05:00"})
    assert result.returncode == 0, result.stderr
    ny = result.stdout.split("\nodd")[0]
    assert [line.split("next:")[1].strip() for line in ny.splitlines() if "next:" in line] == [
        "Sun 2025-03-09 03:30 EDT (UTC-0400)", "Mon 2025-03-10 02:30 EDT (UTC-0400)", "Tue 2025-03-11 02:30 EDT (UTC-0400)"]
    assert "02:30 EST" not in result.stdout
    assert "next:      Mon 2025-03-10 08:00 +05 (UTC+0500)" in result.stdout  # 8-9/2: eight o'clock


def _history_rows(state: Path) -> list[tuple]:
    with sqlite3.connect(state) as db:
        return db.execute("SELECT slot, edition_date, status FROM runs ORDER BY id").fetchall()


def test_run_due_runs_the_monday_after_a_spring_forward(tmp_path: Path) -> None:
    config_path = make_project(tmp_path, [report_block("r", schedule="0 0 * * 1", timezone="America/New_York",
                                                       extra='catch_up = "all"\ngrace = "72h"', **FAST)])
    decided = run_cli("--config", str(config_path), "run-due", env={"REPORTER_NOW": "2025-03-09T12:00:00-04:00"})
    assert decided.returncode == 0 and decided.stdout == "", decided.stderr
    result = run_cli("--config", str(config_path), "run-due", env={"REPORTER_NOW": "2025-03-10T00:05:00-04:00"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "r 2025-03-10T00:00 ok"
    assert _history_rows(tmp_path / "state" / "history.sqlite") == [("2025-03-10T00:00", "2025-03-10", "ok")]


def test_the_service_wakes_at_the_instant_it_computed(tmp_path: Path) -> None:
    import re
    import threading

    config_path = make_project(tmp_path, [report_block("r", schedule="* * * * *", **FAST)])
    state = tmp_path / "state" / "history.sqlite"
    # Three seconds before 08:01 by the shifted clock: the catch-up runs 08:00 (on time), then
    # APScheduler, which keeps the real time, must wake the service for the next minute. Which
    # minute that is depends on how long the start took (a loaded machine can take longer than
    # those three seconds): the one the service says it armed first.
    service = subprocess.Popen([sys.executable, "-m", "reporter", "--config", str(config_path), "--verbose", "run"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env=cli_env({"REPORTER_NOW": "2025-11-03T08:00:57+05:00"}))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(service.stderr), daemon=True)
    reader.start()

    def armed() -> list[datetime]:
        return [datetime.fromisoformat(m) for line in list(lines) for m in re.findall(r"r: next run (\S+) ", line)]

    def ok_slots() -> list[str]:
        try:
            return [row[0] for row in _history_rows(state) if row[2] == "ok"]
        except sqlite3.OperationalError:
            return []

    def woken_and_rearmed() -> bool:
        fires = armed()
        return bool(fires) and f"{fires[0]:%Y-%m-%dT%H:%M}" in ok_slots() and fires[0] + timedelta(minutes=1) in fires

    try:
        deadline = clock.monotonic() + 120
        while clock.monotonic() < deadline and not woken_and_rearmed():
            clock.sleep(0.1)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)
        reader.join(timeout=10)
    err = "".join(lines)
    assert service.returncode == 0, err
    first = armed()[0]
    assert first.second == 0 and first > datetime.fromisoformat("2025-11-03T08:00:57+05:00"), err
    # The catch-up ran the newest slot due at the start (08:00, or 08:01 after a slow start;
    # 'latest' records the older ones as skipped), the wake-up the one armed first.
    assert ok_slots()[0] in ("2025-11-03T08:00", "2025-11-03T08:01") and ok_slots()[0] < f"{first:%Y-%m-%dT%H:%M}", err
    assert f"{first:%Y-%m-%dT%H:%M}" in ok_slots(), err
    # Once run, the next minute is armed; woken once for the first (twice at most, if a clock
    # adjustment woke it early and it waited again), not in a loop on APScheduler's real clock
    # until the shifted one reached it.
    assert (first + timedelta(minutes=1)) in armed(), err
    assert err.count("r: woken") in (1, 2), err
