"""Crontab lines with crontab's meaning, turned into APScheduler triggers.

APScheduler's own ``CronTrigger.from_crontab`` numbers weekdays from Monday = 0, while crontab
counts from Sunday = 0 (and 7); crontab also fires when *either* day-of-month or day-of-week
matches if both are restricted, where APScheduler requires both. This module keeps crontab's
meaning, because that is what users copy from their existing crontabs.
"""

from __future__ import annotations

import re
from datetime import tzinfo

PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_APS_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ITEM = re.compile(r"^(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]+))?$")
# What crontab itself accepts in the other fields; APScheduler also takes extensions such as
# "last" or "5th fri" that a crontab line cannot mean, so those are refused here.
_FIELD = re.compile(r"^(\*|\w+(-\w+)?)(/[1-9]\d*)?(,(\*|\w+(-\w+)?)(/[1-9]\d*)?)*$")


def _weekday(token: str) -> int:
    """Crontab weekday number (0..6, Sunday = 0) of a number 0..7 or a name."""
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    if token[:3] in _CRON_DAYS and len(token) == 3:
        return _CRON_DAYS.index(token)
    raise ValueError(f"day of week {token!r} is not 0-7 or a name like 'mon'")


def _weekdays(field: str) -> str:
    """Translate a crontab day-of-week field into APScheduler's names, as an explicit set."""
    days: set[int] = set()
    for item in field.lower().split(","):
        match = _ITEM.match(item)
        if not match:
            raise ValueError(f"day of week {item!r} is not valid")
        span, step = match.group(1), int(match.group(2) or 1)
        if step < 1:
            raise ValueError(f"day of week step in {item!r} must be at least 1")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            a, b = span.split("-")
            first = _weekday(a)
            last = 7 if b == "7" else _weekday(b)
            if last < first:
                raise ValueError(f"day of week range {item!r} runs backwards")
        else:
            first = last = _weekday(span)
            if match.group(2):
                last = 7  # crontab reads "5/2" as "5-7/2": Friday and Sunday
        days.update(d % 7 for d in range(first, last + 1, step))
    if len(days) == 7:
        return "*"
    return ",".join(_APS_DAYS[(d - 1) % 7] for d in sorted(days, key=lambda d: (d - 1) % 7))


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_RANGES = {"minute": (0, 59), "hour": (0, 23), "day of month": (1, 31), "month": (1, 12)}


def _check_field(name: str, value: str) -> None:
    low, high = _RANGES[name]
    if not _FIELD.match(value):
        raise ValueError(f"{name} field {value!r} is not crontab syntax")
    for item in value.split(","):
        span = item.split("/")[0]
        if span == "*":
            continue
        bounds = []
        for token in span.split("-"):
            if token.isdigit():
                number = int(token)
            elif name == "month" and token in _MONTHS:
                number = _MONTHS.index(token) + 1
            else:
                raise ValueError(f"{name} field {value!r}: {token!r} is not a number")
            if not low <= number <= high:
                raise ValueError(f"{name} field {value!r}: {number} is outside {low}-{high}")
            bounds.append(number)
        if len(bounds) == 2 and bounds[1] < bounds[0]:
            raise ValueError(f"{name} field {value!r}: range runs backwards")


def check_schedule(text: str) -> tuple[str, str, str, str, str]:
    """Validate a crontab line or preset without APScheduler (config loading stays fast).

    Returns the five fields, lower-cased; raises ``ValueError`` saying what crontab would reject.
    """
    line = PRESETS.get(text.strip().lower(), text.strip())
    if line.startswith("@"):
        raise ValueError(f"unknown preset {text!r} (known: {', '.join(PRESETS)})")
    fields = line.lower().split()
    if len(fields) != 5:
        raise ValueError(f"{text!r} must have 5 fields (minute hour day month weekday), or be a preset")
    try:
        for name, value in zip(_RANGES, fields[:4]):
            _check_field(name, value)
        _weekdays(fields[4])
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid schedule: {exc}") from None
    minute, hour, day, month, weekday = fields
    return minute, hour, day, month, weekday


def parse_schedule(text: str, timezone: tzinfo):
    """Return an APScheduler trigger for a crontab line or preset, evaluated in ``timezone``.

    Raises ``ValueError`` with a readable message for anything crontab would reject.
    """
    from apscheduler.triggers.combining import OrTrigger  # noqa: PLC0415 - keep CLI start fast
    from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415

    minute, hour, day, month, weekday = check_schedule(text)
    common = dict(minute=minute, hour=hour, month=month, timezone=timezone)
    day_of_week = _weekdays(weekday)
    if not day.startswith("*") and not weekday.startswith("*"):
        # crontab: when neither day field starts with '*', either one matching is enough
        return OrTrigger([CronTrigger(day=day, **common), CronTrigger(day_of_week=day_of_week, **common)])
    return CronTrigger(day=day, day_of_week=day_of_week, **common)
