"""Which slots of a report are due: fire times, catch-up policies, the grace period. Pure.

A *slot* is one scheduled time of one report, named by its wall-clock time in the report's
zone (``2025-11-03T08:00``). The history records every slot decided (run, failed, skipped), and
a slot is claimed in the history before it runs, so it never runs twice: not across restarts,
not when ``run-due`` is called twice, and not at a DST fall-back, where the same wall-clock time
comes round twice but it is still one slot. A time that a spring-forward skips keeps its
nominal name (``2025-03-09T02:30``) although it fires at 03:30 EDT, so its identity does not
depend on the clocks. Fire times come from :mod:`reporter.cron`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import islice
from typing import Iterable

from .. import cron
from ..config import Report

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


def slot_of(report: Report, fire: cron.Fire) -> Slot:
    """The slot of a fire: named by its nominal wall-clock time, dated by that time's day."""
    return Slot(report.id, fire.wall.isoformat(timespec="minutes"), fire.instant, fire.wall.date())


def _fire_of(report: Report, key: str) -> cron.Fire:
    wall = datetime.fromisoformat(key)
    return cron.Fire(cron.instant_of(wall, report.timezone), wall)


def fire_times(report: Report, after: datetime, until: datetime, limit: int = MAX_SLOTS) -> list[cron.Fire]:
    """The report's fires in ``(after, until]``, oldest first, at most ``limit`` newest."""
    return cron.fire_times(cron.parse(report.schedule), report.timezone, after, until, limit)


def next_runs(report: Report, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire instants after ``now``, in the report's zone, for ``reporter list``.

    These are real instants: a time skipped by a spring-forward shows when it fires (03:30 EDT).
    """
    upcoming = cron.fires(cron.parse(report.schedule), report.timezone, now)
    return [fire.instant.astimezone(report.timezone) for fire in islice(upcoming, count)]


def next_fire(report: Report, now: datetime) -> cron.Fire | None:
    """The report's first fire after ``now``; None if its schedule never fires."""
    return cron.next_fire(cron.parse(report.schedule), report.timezone, now)


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
    candidates = {s.key: s for s in (slot_of(report, fire) for fire in fire_times(report, start, now))}
    for key in abandoned:
        candidates.setdefault(key, slot_of(report, _fire_of(report, key)))
    # By instant: where a gap shifts a time, names and instants need not sort alike.
    slots = sorted(candidates.values(), key=lambda s: (s.fire_time, s.key))
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
