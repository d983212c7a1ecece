"""Scheduled editions: which slots are due, the catch-up policy, and the APScheduler wiring.

A *slot* is one scheduled time of one report, named by its wall-clock time in the report's
zone (``2025-11-03T08:00``). The history records every slot decided (run, failed, skipped), and
a slot is claimed in the history before it runs, so it never runs twice: not across restarts,
not when ``run-due`` is called twice, and not at a DST fall-back, where APScheduler fires the
same wall-clock time twice but it is still one slot.

The same :meth:`Service.due` serves the long-running ``reporter run`` (at start-up for what was
missed, then whenever APScheduler wakes it), and ``reporter run-due`` for system cron.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterable

from .build import Clock
from .config import Project, Report
from .crontab import parse_schedule
from .history import History
from .pool import Executor, RenderTask, RenderTimeout, WorkerCrashed, WorkerStopped

log = logging.getLogger(__name__)

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


Deliver = Callable[[Report, date], object]
"""Delivers an edition after its render; returns something with ``ok`` and ``summary``, or None."""


class Service:
    """Runs due slots through an :class:`Executor` and records everything in the history."""

    def __init__(self, project: Project, history: History, executor: Executor, clock: Clock,
                 deliver: Deliver | None = None) -> None:
        self.project = project
        self.history = history
        self.executor = executor
        self.clock = clock
        self.deliver = deliver
        self._threads = ThreadPoolExecutor(max_workers=max(4, len(project.reports)), thread_name_prefix="slot")
        self._report_locks = {report_id: threading.Lock() for report_id in project.reports}

    def scheduled(self) -> list[Report]:
        return [r for r in self.project.reports.values() if r.schedule]

    def due(self, reports: Iterable[Report] | None = None, trigger: str = "schedule") -> list[tuple[Slot, str]]:
        """Run every due slot of ``reports`` (default: all scheduled), in parallel; wait for all.

        Returns each slot run with its final status.
        """
        now = self.clock()
        claimed: list[tuple[Report, Slot, int]] = []
        for report in reports if reports is not None else self.scheduled():
            with self._report_locks[report.id]:
                decision = plan(report, now, self.history.evaluated_until(report.id),
                                self.history.slots_in_state(report.id, "abandoned"))
                for slot, reason in decision.skip:
                    if self.history.skip_slot(report.id, slot.edition_date, slot.key, now, reason, trigger):
                        log.info("%s slot %s: skipped (%s)", report.id, slot.key, reason,
                                 extra={"fields": {"event": "skipped", "report": report.id, "slot": slot.key}})
                for slot in decision.run:
                    run_id = self.history.start_run(report.id, slot.edition_date, trigger, now, slot.key)
                    if run_id is not None:
                        claimed.append((report, slot, run_id))
                self.history.set_evaluated_until(report.id, now)
        futures = [self._threads.submit(self._execute, report, slot, run_id) for report, slot, run_id in claimed]
        return [future.result() for future in futures]

    def _execute(self, report: Report, slot: Slot, run_id: int) -> tuple[Slot, str]:
        fields = {"report": report.id, "slot": slot.key, "edition_date": slot.edition_date.isoformat(), "run_id": run_id}
        log.info("%s slot %s (%s): rendering the edition of %s", report.id, slot.key, report.timezone.key,
                 slot.edition_date, extra={"fields": {"event": "started", **fields}})
        task = RenderTask(str(self.project.path), report.id, slot.edition_date)
        status, error, artifacts, seconds, worker = "failed", None, (), 0.0, 0
        try:
            outcome = self.executor.run(task, timeout=report.timeout_seconds)
            status = "ok" if outcome.ok else "failed"
            error, artifacts, seconds, worker = outcome.error or None, outcome.artifacts, outcome.seconds, outcome.pid
        except (RenderTimeout, WorkerCrashed) as exc:
            error = str(exc)
        except WorkerStopped as exc:
            status, error = "abandoned", str(exc)
        except Exception as exc:  # noqa: BLE001 - record it; the other reports go on
            log.exception("%s slot %s: the scheduler failed to run it", report.id, slot.key)
            error = f"internal error: {exc!r}"
        from .render import remove_stale_parts  # noqa: PLC0415

        if status != "ok":
            remove_stale_parts(self.project.output_dir / report.id / slot.edition_date.isoformat())
        self.history.finish_run(run_id, status, self.clock(), error=error, files=artifacts)
        if status == "ok":
            log.info("%s slot %s: ok in %.1f s, %d files (worker %d)", report.id, slot.key, seconds, len(artifacts),
                     worker, extra={"fields": {"event": "ok", "seconds": round(seconds, 2), "worker": worker, **fields}})
            delivered = self.deliver(report, slot.edition_date) if self.deliver else None
            if delivered is not None and not delivered.ok:
                status = f"ok, {delivered.summary}"
        else:
            log.error("%s slot %s: %s: %s", report.id, slot.key, status, error,
                      extra={"fields": {"event": status, "error": error, **fields}})
        return slot, status

    def resume_deliveries(self) -> None:
        """Finish deliveries that a stopped process left half done (claimed, never recorded).

        The ledger knows who still lacks their copy, so only they get it now.
        """
        if not self.deliver:
            return
        for report in self.project.reports.values():
            if report.recipients:
                for day in self.history.unfinished_deliveries(report.id):
                    log.info("%s %s: finishing a delivery that was interrupted", report.id, day,
                             extra={"fields": {"event": "resume-delivery", "report": report.id, "edition_date": day.isoformat()}})
                    self.deliver(report, day)

    def close(self) -> None:
        self._threads.shutdown(wait=True)


def serve(service: Service, stop_grace: float) -> None:
    """The long-running scheduler: catch up, then wake at each slot until SIGTERM or SIGINT."""
    import signal  # noqa: PLC0415

    from apscheduler.executors.pool import ThreadPoolExecutor as APSThreads  # noqa: PLC0415
    from apscheduler.schedulers.blocking import BlockingScheduler  # noqa: PLC0415

    reports = service.scheduled()
    scheduler = BlockingScheduler(
        executors={"default": APSThreads(max_workers=max(2, len(reports)))},
        # Our history decides what runs; these only stop APScheduler from piling up wake-ups.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=timezone.utc,
    )
    for report in reports:
        scheduler.add_job(service.due, parse_schedule(report.schedule, report.timezone), args=[[report]],
                          id=report.id, name=report.id)

    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("received %s: stopping; renders in progress get up to %g s to finish",
                     signal.Signals(signum).name, stop_grace)
            if scheduler.running:
                scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for report in reports:
        for moment in next_runs(report, service.clock(), 1):
            log.info("%s: next run %s (%s)", report.id, moment.isoformat(timespec="minutes"), report.timezone.key,
                     extra={"fields": {"event": "next", "report": report.id, "at": moment.isoformat()}})
    # A signal that lands just before start() finds the scheduler not yet running; this
    # watchdog then stops it from inside, so the service can never miss its stop.
    scheduler.add_job(lambda: stopping.is_set() and scheduler.shutdown(wait=False), "interval", seconds=1,
                      id="stop-watch", name="stop-watch")

    def catch_up_all() -> None:
        service.resume_deliveries()
        service.due(trigger="catch-up")

    catch_up = threading.Thread(target=catch_up_all, name="catch-up", daemon=True)
    catch_up.start()
    try:
        if not stopping.is_set():
            scheduler.start()  # blocks until stop() shuts it down
    finally:
        service.executor.close(grace=stop_grace)
        catch_up.join(timeout=stop_grace + 10)
        service.close()
        log.info("stopped", extra={"fields": {"event": "stopped"}})
