"""``reporter status``: does any report need a person? For a monitoring check or a cron ``MAILTO``.

A report needs attention when its last scheduled run failed, when the newest edition with
deliveries has a message that was rejected or is still undelivered after ``[email] retry_for``,
or when it is overdue: a slot whose grace period has passed was never decided, which means no
scheduler looked at it (``reporter run`` is down, or cron stopped calling ``run-due``). Messages
still inside their retry window are shown but are not a problem yet: the next run sends them.

The JSON form is stable: fields are only ever added (``version`` says which set is there).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Any

from ..config import Project, Report
from ..state.history import UNDELIVERED, History
from .plan import fire_times, next_runs, slot_of

VERSION = 1


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds") if moment else None


def _hours(seconds: float) -> str:
    return f"{seconds / 86400:g} d" if seconds >= 86400 and seconds % 86400 == 0 else f"{seconds / 3600:g} h"


def status(project: Project, history: History, now: datetime) -> dict[str, Any]:
    """Every report's state, and ``ok`` only if none needs attention."""
    reports = [_report_status(project, report, history, now) for report in project.reports.values()]
    return {"version": VERSION, "ok": all(r["ok"] for r in reports), "checked_at": _iso(now),
            "state": history.location, "reports": reports}


def _report_status(project: Project, report: Report, history: History, now: datetime) -> dict[str, Any]:
    problems: list[str] = []
    runs = history.runs(report.id, limit=500)
    scheduled = [r for r in runs if r.slot is not None and r.status != "skipped"]
    last = scheduled[0] if scheduled else None
    if last is not None and last.status == "failed":
        error = (last.error or "").strip().splitlines()[:1]
        problems.append(f"the last scheduled run ({last.slot}) failed" + (f": {error[0]}" if error else ""))

    deliveries = _deliveries(project, report, history, now, problems)

    overdue = None
    if report.schedule:
        decided = history.evaluated_until(report.id)
        if decided is not None:
            missed = fire_times(report, decided, now - timedelta(seconds=report.grace_seconds))
            if missed:
                # The slot's name: its wall-clock time in the report's zone, as the history keys slots.
                overdue = slot_of(report, missed[0]).key
                problems.append(f"overdue: the slot {overdue} did not run and its grace ({_hours(report.grace_seconds)}) "
                                "has passed; is `reporter run` up, or cron calling `reporter run-due`?")
    upcoming = next_runs(report, now, 1) if report.schedule else []
    notices = history.notices(report.id)
    return {
        "report": report.id,
        "ok": not problems,
        "problems": problems,
        "schedule": report.schedule,
        "last_run": None if last is None else {k: v for k, v in asdict(last).items() if k != "artifacts" and k != "owner"},
        "overdue_slot": overdue,
        "next_run": upcoming[0].isoformat() if upcoming else None,
        "deliveries": deliveries,
        "notices": {state: sum(n.status == state for n in notices) for state in ("sent", "pending", "failed", "rejected")},
    }


def _deliveries(project: Project, report: Report, history: History, now: datetime,
                problems: list[str]) -> dict[str, Any] | None:
    configured = {r.email.lower() for r in report.recipients}
    rows = [row for row in history.deliveries(report.id) if row.recipient in configured]
    if not rows:
        return None
    newest = max(row.edition_date for row in rows)
    rows = [row for row in rows if row.edition_date == newest]
    counts = {state: sum(row.status == state for row in rows)
              for state in ("sent", "unchanged", "pending", "sending", "failed", "rejected")}
    written = history.edition_written_at(report.id, datetime.fromisoformat(newest).date())
    until = written + timedelta(seconds=project.email.retry_for) if written else None
    undelivered = [row for row in rows if row.status in UNDELIVERED]
    past = bool(undelivered) and (until is None or now > until)
    command = f"`reporter send {report.id} --date {newest}`"
    if past:
        problems.append(f"{len(undelivered)} message(s) of the edition of {newest} not delivered, and retry_for "
                        f"({_hours(project.email.retry_for)}) has passed: {command} sends them")
    rejected = [row for row in rows if row.status == "rejected"]
    if rejected:
        problems.append(f"{len(rejected)} message(s) of the edition of {newest} rejected: "
                        f"{rejected[0].recipient}: {rejected[0].reply or ''}".rstrip(": "))
    return {"edition_date": newest, **counts, "retry_until": _iso(until), "past_window": past}


def describe(report: dict[str, Any]) -> list[str]:
    """The text form: a line per report, and a line per problem under it."""
    parts = []
    last = report["last_run"]
    parts.append(f"last run {last['slot']} {last['status']}" if last else "no scheduled run yet")
    if report["deliveries"]:
        d = report["deliveries"]
        counts = ", ".join(f"{d[state]} {state}" for state in ("sent", "unchanged", "pending", "sending", "failed", "rejected")
                           if d[state])
        waiting = d["pending"] + d["sending"] + d["failed"]
        retry = f", retried until {d['retry_until']}" if waiting and not d["past_window"] and d["retry_until"] else ""
        parts.append(f"edition {d['edition_date']}: {counts}{retry}")
    if report["next_run"]:
        parts.append(f"next run {report['next_run']}")
    lines = [f"{report['report']}: {'ok' if report['ok'] else 'ATTENTION'}; " + "; ".join(parts)]
    lines += [f"  - {problem}" for problem in report["problems"]]
    return lines
