"""Crontab lines with crontab's meaning, and their fire times in a report's own zone. Pure.

One parser, :func:`parse`, serves both the config check and the planner, so ``validate``
accepts exactly what ``list``, ``run-due`` and ``run`` can compute. The rules are Vixie cron's,
because that is what users copy from their existing crontabs:

- 0 and 7 are Sunday; names ``jan``-``dec`` and ``sun``-``sat`` in any case, also in ranges.
- A step applies to ``*``, to a range or to a range of names (``jan-mar/2`` is January and
  March); a step larger than its range leaves only its start. A single value with a step
  (``5/2``) is refused, as current crons refuse it, rather than guessed at.
- When neither day field starts with ``*``, a day matches if *either* matches (``0 8 1 * 1``:
  the 1st and every Monday); otherwise both must match (``0 8 */2 * 1``: odd-numbered Mondays).

Fire times are computed in wall-clock terms: every matching local date and time, in the zone
of the report, becomes one instant.

- A time that does not exist because the clocks went forward fires once, shifted by the gap
  (02:30 in New York on 9 March 2025 fires at 03:30 EDT). Its *nominal* wall time stays its
  name (``Fire.wall``), so the slot keeps a stable identity. If the shifted instant is also
  the instant of a time that does exist (``30 2,3 * * *``), that instant is listed once, under
  the time that exists.
- A time that occurs twice because the clocks went back fires once, at its first occurrence.
- So instants strictly increase, and none is listed twice.

Only ``datetime`` is used: config imports this module at start-up.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from datetime import MAXYEAR, date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Iterator, NamedTuple

PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

_UTC = timezone.utc
_DAY = timedelta(days=1)
# A field item: '*', a value or a range of values, then an optional step. ASCII only, so that
# int() never meets a digit from another script.
_ITEM = re.compile(r"(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9a-z]*))?", re.ASCII | re.IGNORECASE)
_LAST_DAY = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # the most each month can have


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    first_name: int = 0  # the number of names[0]

    def value(self, token: str, text: str) -> int:
        """The number of one value of the field ``text``: digits, or a name where names are allowed."""
        if token.isdigit():
            digits = token.lstrip("0") or "0"
            if len(digits) > 2:  # no field goes past 59; and int() of a thousand digits is slow
                raise ValueError(f"{self.name} field {text!r}: {token} is outside {self.low}-{self.high}")
            number = int(digits)
        elif token.lower() in self.names:
            number = self.names.index(token.lower()) + self.first_name
        elif self.names:
            raise ValueError(f"{self.name} field {text!r}: {token!r} is not a number "
                             f"{self.low}-{self.high} or a name like {self.names[1]!r}")
        else:
            raise ValueError(f"{self.name} field {text!r}: {token!r} is not a number {self.low}-{self.high}")
        if not self.low <= number <= self.high:
            raise ValueError(f"{self.name} field {text!r}: {number} is outside {self.low}-{self.high}")
        return number


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, MONTH_NAMES, 1),
    _Field("day of week", 0, 7, WEEKDAY_NAMES, 0),
)


def _expand(spec: _Field, text: str) -> frozenset[int]:
    """The set of values one crontab field stands for; ``ValueError`` naming the field if none."""
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if not match:
            what = "an empty entry" if not item else f"{item!r}"
            raise ValueError(f"{spec.name} field {text!r}: {what} is not crontab syntax "
                             "(a value, a range a-b, '*', each with an optional /step)")
        star, first, last, step_text = match.groups()
        if star:
            start, end = spec.low, spec.high
        else:
            start = spec.value(first, text)
            end = spec.value(last, text) if last else start
            if end < start:
                raise ValueError(f"{spec.name} field {text!r}: the range {item!r} runs backwards")
        step = 1
        if step_text is not None:
            if not step_text.isdigit():
                raise ValueError(f"{spec.name} field {text!r}: the step in {item!r} is not a whole number")
            if not star and not last:
                until = spec.names[-1] if first.lower() in spec.names else spec.high
                raise ValueError(f"{spec.name} field {text!r}: {item!r} steps from a single value; "
                                 f"write a range such as '{first}-{until}/{step_text}'")
            digits = step_text.lstrip("0")
            if not digits:
                raise ValueError(f"{spec.name} field {text!r}: the step in {item!r} must be at least 1")
            # Any step beyond the range leaves only its start; a huge one need not be converted.
            step = int(digits) if len(digits) <= 4 else spec.high + 1
        values.update(range(start, end + 1, step))
    if spec.name == "day of week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    """A parsed crontab line: the expanded values of each field, weekdays with Sunday = 0."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_restricted: bool
    """The day-of-month field does not start with ``*``."""
    weekday_restricted: bool
    """The day-of-week field does not start with ``*``."""
    clock_times: tuple[timedelta, ...] = field(init=False, repr=False, compare=False)
    """Every matching time of day, in order, as the time since midnight."""

    def __post_init__(self) -> None:
        times = tuple(timedelta(hours=h, minutes=m) for h in sorted(self.hours) for m in sorted(self.minutes))
        object.__setattr__(self, "clock_times", times)

    @property
    def either_day(self) -> bool:
        """Crontab's rule: with both day fields restricted, either one matching is enough."""
        return self.day_restricted and self.weekday_restricted

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = day.isoweekday() % 7 in self.weekdays
        return (in_month or in_week) if self.either_day else (in_month and in_week)

    @property
    def never(self) -> bool:
        """No date ever matches, e.g. ``0 0 31 2 *`` (when both day fields must match, the
        weekday always comes round: every date of the calendar falls on every weekday)."""
        if self.either_day:
            return False
        return not any(day <= _LAST_DAY[month - 1] for month in self.months for day in self.days)


@lru_cache(maxsize=256)
def parse(text: str) -> Schedule:
    """Parse a crontab line (five fields) or a preset; ``ValueError`` says what is wrong, and where."""
    line = PRESETS.get(text.strip().lower(), text.strip())
    if line.startswith("@"):
        raise ValueError(f"{text!r} is not a known preset (known: {', '.join(PRESETS)})")
    # Names match in any case, but a refusal quotes the field as it was written.
    fields = line.split()
    if len(fields) != 5:
        raise ValueError(f"{text!r} must have 5 fields (minute hour day month weekday), or be a preset")
    try:
        minutes, hours, days, months, weekdays = (_expand(spec, value) for spec, value in zip(_FIELDS, fields))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid schedule: {exc}") from None
    return Schedule(text, minutes, hours, days, months, weekdays,
                    day_restricted=not fields[2].startswith("*"), weekday_restricted=not fields[4].startswith("*"))


def check_schedule(text: str) -> Schedule:
    """Config's check of a ``schedule`` key: the very parser that the planner uses."""
    return parse(text)


class Fire(NamedTuple):
    """One fire time: the instant (UTC), and the wall-clock time that names it in its zone.

    ``wall`` is the nominal time the fields matched; it differs from the instant's local
    time only for a time in a spring-forward gap, which fires shifted by the gap.
    """

    instant: datetime
    wall: datetime


def instant_of(wall: datetime, zone: tzinfo) -> datetime:
    """The instant a nominal wall-clock time fires at: the first of two at a fall-back, and
    shifted by the gap at a spring-forward (PEP 495's ``fold=0`` reads both ways so)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(_UTC)


def _dates(schedule: Schedule, start: date) -> Iterator[date]:
    """Every date from ``start`` on whose month and day fields match, in order."""
    if schedule.never:
        return
    months = sorted(schedule.months)
    days = sorted(schedule.days)
    # The last year is left out so that the day after any date can still be computed.
    for year in range(start.year, MAXYEAR):
        for month in months:
            if (year, month) < (start.year, start.month):
                continue
            first = start.day if (year, month) == (start.year, start.month) else 1
            length = (date(year + month // 12, month % 12 + 1, 1) - date(year, month, 1)).days
            if schedule.either_day:
                candidates = range(first, length + 1)
            else:
                candidates = [d for d in days if first <= d <= length]
            for number in candidates:
                day = date(year, month, number)
                if schedule.day_matches(day):
                    yield day


def _shifted(fire: Fire, zone: tzinfo) -> bool:
    return fire.instant.astimezone(zone).replace(tzinfo=None) != fire.wall


def _unique(fires: list[Fire], zone: tzinfo) -> list[Fire]:
    """Sorted by instant, each instant once: a time that exists wins over a shifted one."""
    out: list[Fire] = []
    for fire in sorted(fires, key=lambda f: (f.instant, _shifted(f, zone))):
        if not out or out[-1].instant != fire.instant:
            out.append(fire)
    return out


def _fires_on(schedule: Schedule, zone: tzinfo, day: date) -> list[Fire]:
    """The fires whose nominal wall time is on ``day``, sorted and unique by instant."""
    midnight = datetime.combine(day, time())
    start, end = midnight.replace(tzinfo=zone), (midnight + _DAY).replace(tzinfo=zone)
    offset = start.utcoffset()
    if offset == end.utcoffset() == start.replace(fold=1).utcoffset() == end.replace(fold=1).utcoffset():
        # The same offset at both midnights, neither in a gap nor repeated: no transition within
        # the day (tzdata has no two transitions within two days of each other), so plain
        # arithmetic gives the instants, without a zone lookup per minute.
        origin = midnight.replace(tzinfo=_UTC) - offset
        return [Fire(origin + t, midnight + t) for t in schedule.clock_times]
    return _unique([Fire(instant_of(midnight + t, zone), midnight + t) for t in schedule.clock_times], zone)


def fires(schedule: Schedule, zone: tzinfo, after: datetime) -> Iterator[Fire]:
    """The schedule's fires strictly after the instant ``after``, in order, for ever (to year 9998)."""
    after = after.astimezone(_UTC)
    # Offsets are under a day, so a nominal time more than a day before `after` fires before it.
    start = (after.replace(tzinfo=None) - _DAY).date()
    pending: list[Fire] = []
    for day in _dates(schedule, start):
        batch = _fires_on(schedule, zone, day)
        if pending and batch and batch[0].instant <= pending[-1].instant:
            pending = _unique(pending + batch, zone)  # a gap shifted a time past the next day's
        else:
            pending.extend(batch)
        # Every later date starts after this one's end, and fires after that end less a day.
        settled = bisect_right(pending, datetime.combine(day, time(), _UTC), key=lambda f: f.instant)
        for fire in pending[:settled]:
            if fire.instant > after:
                yield fire
        del pending[:settled]
    yield from (fire for fire in pending if fire.instant > after)


def next_fire(schedule: Schedule, zone: tzinfo, after: datetime) -> Fire | None:
    """The first fire strictly after ``after``, or None if the schedule never fires."""
    return next(fires(schedule, zone, after), None)


def fire_times(schedule: Schedule, zone: tzinfo, after: datetime, until: datetime,
               limit: int | None = None) -> list[Fire]:
    """The fires in ``(after, until]``, oldest first; with ``limit``, only the newest ``limit``.

    With a limit, only the last days are computed when they hold enough fires: a minute-level
    schedule after three years of downtime costs a day's work, not a million fire times.
    """
    if limit is not None and limit <= 0:
        return []
    if limit is not None:
        start = _start_of_newest(schedule, zone, after, until, limit)
        if start > after:
            newest = fire_times(schedule, zone, start, until)
            if len(newest) >= limit:
                return newest[-limit:]
    out: deque[Fire] = deque(maxlen=limit)
    for fire in fires(schedule, zone, after):
        if fire.instant > until:
            break
        out.append(fire)
    return list(out)


def _start_of_newest(schedule: Schedule, zone: tzinfo, after: datetime, until: datetime, limit: int) -> datetime:
    """An instant after which the window probably holds ``limit`` fires; the caller checks."""
    per_day = len(schedule.clock_times)
    first, day = after.astimezone(zone).date(), until.astimezone(zone).date() - _DAY
    count = 0
    while day > first and count < limit + per_day:  # a day's margin for gaps and the last day
        if schedule.day_matches(day):
            count += per_day
        day -= _DAY
    return instant_of(datetime.combine(day, time()), zone)
