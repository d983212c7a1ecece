"""The scheduling service: claims due slots in the history, renders them through an executor,
delivers, and (``reporter run``) lets APScheduler wake it at each slot.

The same :meth:`Service.due` serves the long-running ``reporter run`` (at start-up for what was
missed, then whenever APScheduler wakes it), and ``reporter run-due`` for system cron. Fire
times are computed by :mod:`reporter.cron`; APScheduler only wakes the service at them.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable, Protocol

from ..config import Project, Report
from ..execute import Executor, LostAttempt, RenderTask, RenderTimeout, WorkerCrashed, WorkerStopped
from ..state.history import History
from .plan import Slot, next_fire, plan
from .stopping import Stopping

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class Delivery(Protocol):
    """What the service does about email (:class:`reporter.deliver.scheduled.ScheduledDelivery`)."""

    def recipients_of(self, report: Report) -> list[tuple[str, str, str]]: ...

    def after_render(self, report: Report, day: date) -> Any: ...  # with ``ok`` and ``summary``, or None

    def render_failed(self, report: Report, slot: str, day: date, error: str) -> None: ...

    def retry(self) -> list[tuple[str, date, Any]]: ...


class Service:
    """Runs due slots through an :class:`Executor` and records everything in the history."""

    def __init__(self, project: Project, history: History, executor: Executor, clock: Clock,
                 delivery: Delivery | None = None, after_run: Callable[[Report, date, str], None] | None = None) -> None:
        self.project = project
        self.history = history
        self.executor = executor
        self.clock = clock
        self.delivery = delivery
        self.after_run = after_run  # told of every run that ended (report, edition date, status)
        self._threads = ThreadPoolExecutor(max_workers=max(4, len(project.reports)), thread_name_prefix="slot")
        self._report_locks = {report_id: threading.Lock() for report_id in project.reports}
        self._stop_retrying = threading.Event()
        self._retrier: threading.Thread | None = None

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
        futures = [self._threads.submit(self._execute, report, slot, run_id, trigger) for report, slot, run_id in claimed]
        return [future.result() for future in futures]

    def _execute(self, report: Report, slot: Slot, run_id: int, trigger: str) -> tuple[Slot, str]:
        fields = {"report": report.id, "slot": slot.key, "edition_date": slot.edition_date.isoformat(), "run_id": run_id}
        log.info("%s slot %s (%s): rendering the edition of %s", report.id, slot.key, report.timezone.key,
                 slot.edition_date, extra={"fields": {"event": "started", **fields}})
        task = RenderTask(str(self.project.path), report.id, slot.edition_date)
        status, error, artifacts, seconds, worker, lost = "failed", None, (), 0.0, 0, ()
        try:
            outcome = self.executor.run(task, timeout=report.timeout_seconds)
            status = "ok" if outcome.ok else "failed"
            error, artifacts, seconds, worker = outcome.error or None, outcome.artifacts, outcome.seconds, outcome.pid
            lost = outcome.lost
        except (RenderTimeout, WorkerCrashed) as exc:
            error = str(exc)
        except WorkerStopped as exc:
            status, error = "abandoned", str(exc)
        except Exception as exc:  # noqa: BLE001 - record it; the other reports go on
            log.exception("%s slot %s: the scheduler failed to run it", report.id, slot.key)
            error = f"internal error: {exc!r}"
        for attempt in lost:
            run_id = self._abandon(report, slot, run_id, trigger, attempt, fields)
            if run_id is None:
                return slot, "abandoned"
            fields = {**fields, "run_id": run_id}
        from ..pipeline.write import remove_stale_parts  # noqa: PLC0415

        if status != "ok":
            remove_stale_parts(self.project.output_dir / report.id / slot.edition_date.isoformat())
        # Who must get the edition is written with it, in one transaction: from here on the
        # ledger knows, whatever happens to the delivery.
        pending = self.delivery.recipients_of(report) if status == "ok" and self.delivery else []
        if not self.history.finish_run(run_id, status, self.clock(), error=error, files=artifacts, pending=pending):
            # Recorded as abandoned while it rendered: this scheduler lost the lead, and another
            # runs the slot again. Delivering is that one's job now.
            log.warning("%s slot %s: finished, but the slot was taken over meanwhile (this scheduler lost the lead): "
                        "left to the new leader", report.id, slot.key,
                        extra={"fields": {"event": "taken-over", **fields}})
            return slot, "abandoned"
        if status == "ok":
            log.info("%s slot %s: ok in %.1f s, %d files (worker %d)", report.id, slot.key, seconds, len(artifacts),
                     worker, extra={"fields": {"event": "ok", "seconds": round(seconds, 2), "worker": worker, **fields}})
            delivered = self.delivery.after_render(report, slot.edition_date) if self.delivery else None
            if delivered is not None and not delivered.ok:
                status = f"ok, {delivered.summary}"
                log.error("%s slot %s: %s", report.id, slot.key, status,
                          extra={"fields": {"event": "not-delivered", "summary": delivered.summary, **fields}})
        else:
            log.error("%s slot %s: %s: %s", report.id, slot.key, status, error,
                      extra={"fields": {"event": status, "error": error, **fields}})
            if status == "failed" and self.delivery:
                self.delivery.render_failed(report, slot.key, slot.edition_date, error or status)
        if self.after_run:
            try:
                self.after_run(report, slot.edition_date, status)
            except Exception:  # noqa: BLE001 - the run is recorded and delivered; this is an extra
                log.exception("%s slot %s: what follows a run failed", report.id, slot.key)
        return slot, status

    def _abandon(self, report: Report, slot: Slot, run_id: int, trigger: str, attempt: LostAttempt,
                 fields: dict[str, Any]) -> int | None:
        """Record an attempt whose worker was lost as an abandoned run, and claim the slot again
        for the attempt that followed it; ``None`` if another scheduler claimed it meanwhile."""
        self.history.finish_run(run_id, "abandoned", attempt.at, error=attempt.reason)
        log.warning("%s slot %s: abandoned: %s", report.id, slot.key, attempt.reason,
                    extra={"fields": {"event": "abandoned", "error": attempt.reason, **fields}})
        again = self.history.start_run(report.id, slot.edition_date, trigger, attempt.at, slot.key)
        if again is None:
            log.error("%s slot %s: claimed by another scheduler while its render was re-delivered; "
                      "this scheduler does not record it", report.id, slot.key,
                      extra={"fields": {"event": "lost-claim", **fields}})
        return again

    def resume_deliveries(self) -> list[tuple[str, date, Any]]:
        """Send what earlier runs left undelivered (pending, failed, or cut short by a crash) while
        their editions are inside ``[email] retry_for``; give up on older ones. One result per edition.

        The ledger knows who still lacks their copy, so only they get it now.
        """
        return self.delivery.retry() if self.delivery else []

    def start_retrying(self, every: float) -> None:
        """For ``reporter run``: also retry undelivered messages every ``every`` seconds, until :meth:`close`."""
        if not self.delivery or self._retrier is not None:
            return

        def loop() -> None:
            while not self._stop_retrying.wait(every):
                try:
                    self.resume_deliveries()
                except Exception:  # noqa: BLE001 - the next round tries again; the log says why
                    log.exception("retrying undelivered messages failed")

        self._retrier = threading.Thread(target=loop, name="retry-deliveries", daemon=True)
        self._retrier.start()

    def close(self) -> None:
        self._stop_retrying.set()
        if self._retrier is not None:
            # Not the whole time_limit: a stop must stay prompt. A message cut off here is left
            # claimed by a dead process, and the next start sends it.
            self._retrier.join(timeout=10)
        self._threads.shutdown(wait=True)


def serve(service: Service, stop_grace: float, system_clock: Clock, stopping: Stopping | None = None) -> None:
    """The long-running scheduler: catch up, then wake at each slot until SIGTERM or SIGINT.

    Each report has one one-shot APScheduler job at its next fire instant, computed here; when
    it wakes, the due slots run and the next wake is armed. ``system_clock`` is the real time,
    by which APScheduler keeps its own. ``stopping`` may be set already (a signal that came
    while the caller stood by), and is set by the signal handlers installed here.
    """
    from apscheduler.executors.pool import ThreadPoolExecutor as APSThreads  # noqa: PLC0415
    from apscheduler.schedulers.background import BackgroundScheduler  # noqa: PLC0415
    from apscheduler.triggers.date import DateTrigger  # noqa: PLC0415

    reports = service.scheduled()
    scheduler = BackgroundScheduler(
        executors={"default": APSThreads(max_workers=max(2, len(reports)))},
        # Our history decides what runs; these only stop APScheduler from piling up wake-ups.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=timezone.utc,
    )
    stopping = stopping or Stopping()
    arming = threading.Lock()
    armed: dict[str, tuple[datetime, datetime | None]] = {}  # report id: (armed after, the fire it found)

    def arm(report: Report, after: datetime) -> None:
        """Wake for the report's first fire after ``after`` (never after an earlier ``after``)."""
        with arming:
            if stopping.is_set():
                return
            previous_after, previous_fire = armed.get(report.id, (after, None))
            after = max(after, previous_after)
            fire = next_fire(report, after)
            instant = fire.instant if fire else None
            armed[report.id] = (after, instant)
            if instant is not None:
                # Our clock may be shifted (REPORTER_NOW) while APScheduler reads the real one:
                # the wake-up is as far ahead on its clock as the fire is on ours. Ours is read
                # first, so the wake-up errs late, never early.
                ahead = instant - service.clock()
                wake_at = system_clock() + ahead
                # Re-arming from inside a wake is safe: APScheduler drops the one-shot job it has
                # just submitted while holding the lock that add_job takes, so never this one.
                scheduler.add_job(wake, DateTrigger(wake_at, timezone.utc), args=[report], id=report.id,
                                  name=report.id, replace_existing=True)
        if instant == previous_fire:
            return
        if instant is None:
            log.warning("%s: schedule %r never fires", report.id, report.schedule,
                        extra={"fields": {"event": "never", "report": report.id}})
            return
        moment = instant.astimezone(report.timezone)
        log.info("%s: next run %s (%s)", report.id, moment.isoformat(timespec="minutes"), report.timezone.key,
                 extra={"fields": {"event": "next", "report": report.id, "at": moment.isoformat()}})

    def wake(report: Report) -> None:
        if stopping.is_set():
            return  # a wake in the instant before the scheduler is shut down starts no render
        checked = service.clock()
        log.debug("%s: woken at %s", report.id, checked.isoformat(timespec="seconds"),
                  extra={"fields": {"event": "woken", "report": report.id}})
        try:
            service.due([report])
        finally:
            # From before the run: a fire that passed while it rendered still wakes us, and a
            # wake that came early (the two clocks drift apart) waits for the same fire again.
            arm(report, checked)

    stopping.install()
    # Armed before the catch-up, so a slot that falls due while it renders still runs on time;
    # each wake then arms the next, so nothing needs re-arming after the catch-up.
    started = service.clock()
    for report in reports:
        arm(report, started)

    def catch_up_all() -> None:
        service.resume_deliveries()
        service.due(trigger="catch-up")

    catch_up = threading.Thread(target=catch_up_all, name="catch-up", daemon=True)
    catch_up.start()
    try:
        if not stopping.is_set():
            scheduler.start()  # wakes run on its own thread and pool
            stopping.sleep(float("inf"))
        log.info("%s: stopping; renders in progress get up to %g s to finish", stopping.reason, stop_grace)
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
        service.executor.close(grace=stop_grace)
        catch_up.join(timeout=stop_grace + 10)
        service.close()
        log.info("stopped", extra={"fields": {"event": "stopped"}})
