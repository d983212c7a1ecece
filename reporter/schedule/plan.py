"""Which slots of a report are due: fire times, catch-up policies, the grace period. Pure.

A *slot* is one scheduled time of one report, named by its wall-clock time in the report's
zone (``2025-11-03T08:00``). The history records every slot decided (run, failed, skipped), and
a slot is claimed in the history before it runs, so it never runs twice: not across restarts,
not when ``run-due`` is called twice, and not at a DST fall-back, where the same wall-clock time
comes round twice but it is still one slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Iterable

from ..config import Report
from ..cron import parse_schedule

ON_TIME = timedelta(minutes=2)
"""A slot seen within this long after its time is on time, whatever the catch-up policy."""
MAX_SLOTS = 1000
"""At most this many past slots are considered per report, however long the downtime was."""


@dataclass(frozen=True)
class Slot:
    report: str
    key: str
    fire_time: datetime
    edition_date: date


def slot_of(report: Report, fire_time: datetime) -> Slot:
    local = fire_time.astimezone(report.timezone)
    return Slot(report.id, local.replace(tzinfo=None).isoformat(timespec="minutes"),
                fire_time.astimezone(timezone.utc), local.date())


def _fire_time(report: Report, key: str) -> datetime:
    return datetime.fromisoformat(key).replace(tzinfo=report.timezone)


def fire_times(report: Report, after: datetime, until: datetime, limit: int = MAX_SLOTS) -> list[datetime]:
    """The report's scheduled times in ``(after, until]``, oldest first, at most ``limit`` newest."""
    trigger = parse_schedule(report.schedule, report.timezone)
    times: list[datetime] = []
    moment = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    while moment is not None and moment <= until:
        times.append(moment)
        if len(times) > limit:
            times.pop(0)
        moment = trigger.get_next_fire_time(moment, moment)
    return times


def next_runs(report: Report, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` scheduled times, in the report's zone, for ``reporter list``."""
    trigger = parse_schedule(report.schedule, report.timezone)
    out, moment = [], trigger.get_next_fire_time(None, now)
    seen: set[str] = set()
    while moment is not None and len(out) < count:
        key = slot_of(report, moment).key
        if key not in seen:  # a fall-back repeat is the same slot, not another run
            seen.add(key)
            out.append(moment.astimezone(report.timezone))
        moment = trigger.get_next_fire_time(moment, moment)
    return out


@dataclass(frozen=True)
class Plan:
    run: tuple[Slot, ...]
    skip: tuple[tuple[Slot, str], ...]


def plan(report: Report, now: datetime, since: datetime | None, abandoned: Iterable[str] = ()) -> Plan:
    """Decide which slots in ``(since, now]`` run, by the report's catch-up policy.

    ``since`` is when the report's slots were last decided; the first time ever, only an
    on-time slot counts (a new installation does not backfill). Slots older than the grace
    period are skipped. Of the others: ``latest`` runs the newest and skips the rest, ``all``
    runs each with its own edition date, ``skip`` runs only a slot that is on time. A slot
    whose run was abandoned (its process died) is undecided again.
    """
    grace = timedelta(seconds=report.grace_seconds)
    start = since if since is not None else now - ON_TIME
    candidates = {s.key: s for s in (slot_of(report, t) for t in fire_times(report, start, now))}
    for key in abandoned:
        candidates.setdefault(key, slot_of(report, _fire_time(report, key)))
    slots = sorted(candidates.values(), key=lambda s: s.key)
    expired = [s for s in slots if s.fire_time < now - grace]
    live = [s for s in slots if s.fire_time >= now - grace]
    skip = [(s, f"missed by more than the grace period ({report.grace_seconds / 3600:g} h)") for s in expired]
    if report.catch_up == "all":
        run = live
    elif report.catch_up == "latest":
        run = live[-1:]
        skip += [(s, "catch-up policy 'latest': a newer slot runs instead") for s in live[:-1]]
    else:
        run = [s for s in live[-1:] if s.fire_time >= now - ON_TIME]
        skip += [(s, "catch-up policy 'skip'") for s in live if s not in run]
    return Plan(tuple(run), tuple(skip))
