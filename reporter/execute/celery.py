"""Celery as the distributed executor: renders run on ``reporter worker`` processes on any host,
through a Redis broker, and come back to the scheduler's host as bytes.

Where the bytes go: a worker renders an edition in memory and returns its files (names, sha256,
the bytes in base64 inside JSON) as the task's result; the scheduler checks each digest, writes
the files atomically into its own output folder and records them in its history. The output
folder and the history stay on one host, workers need no shared disk, and a worker that dies
mid-render has written nothing anywhere. The price is that every edition crosses Redis twice
(stored, then read), a few hundred KB each, and lives there only until the scheduler has read it.

At-least-once: a render is acknowledged only when it has finished (``acks_late``), so a worker
that dies mid-render (its host lost, ``kill -9``, the OOM killer) leaves the message
unacknowledged and Redis hands it to another worker: at once when only the render process died
(``reject_on_worker_lost``), after ``[project] redeliver_after`` when the whole worker did. Each
attempt announces itself in a list beside the result, so the scheduler can tell the history which
attempt was lost; a task that ran twice still has one result per task id, which the scheduler
reads once, so one edition is written and recorded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Callable

from ..config import Project
from ..errors import ReporterError
from . import Calls, LostAttempt, RenderOutcome, RenderTask, WorkerStopped
from .broker import BROKER_ENV, safe_url

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

TASK = "reporter.render"
QUEUE = "reporter"
ATTEMPTS_TTL = 86400  # the attempt records of a task nobody reads again go after a day
RESULT_TTL = 3600  # a result nobody reads (its scheduler gave up on it) goes after an hour


def attempts_key(task_id: str) -> str:
    return f"reporter:attempts:{task_id}"


def given_up_key(task_id: str) -> str:
    return f"reporter:given-up:{task_id}"


def restore_every(redeliver_after: float) -> float:
    """How often a worker looks for renders whose worker died: a tenth of ``redeliver_after``,
    between 1 and 10 s, so a short setting is not drowned by kombu's default of 100 s."""
    return min(10.0, max(1.0, redeliver_after / 10))


def make_app(url: str, project: Project) -> Celery:
    """The Celery application of a scheduler or a worker, with the broker and results in ``url``."""
    from celery import Celery  # noqa: PLC0415 - a scheduler with nothing due never pays for it

    app = Celery("reporter", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        # JSON only: a message from the broker is data, never code (pickle would run whatever a
        # writer of the broker put there). The files travel as base64 inside the result.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_default_queue=QUEUE,
        # A render is acknowledged when it has finished, so a worker killed mid-render costs a
        # re-delivery, not the edition; one message at a time per render process, so a slow
        # render never holds others that an idle worker could take.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": project.redeliver_after,
            "unacked_restore_interval": restore_every(project.redeliver_after),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 5,
            # Without it a publish waits forever on a connection the network dropped silently.
            "socket_timeout": 30,
        },
        broker_connection_retry_on_startup=True,
        # Renders running when the broker connection drops are stopped and run again later, rather
        # than finishing into a result and an acknowledgement that can no longer be delivered.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        redis_socket_connect_timeout=5,
        redis_socket_timeout=30,
        result_expires=RESULT_TTL,
        result_backend_always_retry=True,
        result_backend_max_retries=10,
        worker_max_tasks_per_child=project.max_tasks_per_worker,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        broker_connection_max_retries=None,
    )
    from celery import Task  # noqa: PLC0415

    class WakingTask(Task):
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: dict[str, Any]) -> None:
            # Called once the result is stored: wakes the scheduler's reader at once, instead of
            # at its next look (a tenth of a second later, on average half of that).
            if kwargs.get("inbox"):
                self.backend.client.pipeline().rpush(kwargs["inbox"], task_id).expire(kwargs["inbox"], RESULT_TTL).execute()

    app.task(name=TASK, bind=True, base=WakingTask)(_render)
    return app


# --- the worker ---------------------------------------------------------------------------------

_worker: dict[str, Any] = {}  # node, config: set once by run_worker, before the render processes fork
_loaded: dict[str, Any] = {}  # the project a render process read last, and the config file's stat then


def _project() -> Project:
    # Reading a config of two hundred reports costs 0.1 s, as much as rendering a small one; data,
    # templates and catalogues are read afresh by every render anyway.
    from .. import config  # noqa: PLC0415

    stat = os.stat(_worker["config"])
    key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    if _loaded.get("key") != key:
        _loaded.update(key=key, project=config.load(_worker["config"]))
    return _loaded["project"]


def _render(task: Any, report: str, edition_date: str, inputs: str, inbox: str = "",
            previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The task: render one edition in memory and return its files; runs in a render process."""
    from ..pipeline.build import render_edition  # noqa: PLC0415
    from ..pipeline.inputs import render_digest  # noqa: PLC0415

    started = time.perf_counter()
    node = _worker.get("node", "?")
    attempt = {"attempt": uuid.uuid4().hex[:12], "node": node, "pid": os.getpid()}
    key = attempts_key(task.request.id)
    # Before any work: the scheduler learns from this list which attempt a lost worker made.
    given_up, *_ = (task.app.backend.client.pipeline().exists(given_up_key(task.request.id))
                    .rpush(key, json.dumps(attempt)).expire(key, ATTEMPTS_TTL).execute())
    fields = {"report": report, "edition_date": edition_date, "task": task.request.id, "node": node}
    if given_up:
        # Celery's revoke reaches only the workers up at the time; this one started later.
        log.info("%s: skipping %s %s: its scheduler gave up waiting for it", node, report, edition_date,
                 extra={"fields": {"event": "skipped", **fields}})
        return {**attempt, "ok": False, "error": "the scheduler gave up waiting for it", "seconds": 0.0}
    log.info("%s: rendering %s %s (task %s, pid %d)", node, report, edition_date, task.request.id[:8], os.getpid(),
             extra={"fields": {"event": "rendering", "pid": os.getpid(), **fields}})
    try:
        project = _project()
        settings = project.report(report)
        if render_digest(project, settings) != inputs:
            raise ReporterError(f"worker {node}: its copy of the project ({project.path}) is not the scheduler's: "
                                "deploy the same reports.toml, data, templates and reporter to every host")
        # The previous edition's manifest comes with the task: the archive is on the scheduler's host.
        rendered = render_edition(project, settings, date.fromisoformat(edition_date), previous=previous)
        files = rendered.files
    except ReporterError as exc:
        log.info("%s: %s %s failed: %s", node, report, edition_date, str(exc).splitlines()[0],
                 extra={"fields": {"event": "failed", **fields}})
        return {**attempt, "ok": False, "error": str(exc), "seconds": time.perf_counter() - started}
    except Exception as exc:  # noqa: BLE001 - a bug in one report must not look like a lost worker
        log.exception("%s: render of %s crashed", node, report)
        return {**attempt, "ok": False, "error": f"internal error: {exc!r}", "seconds": time.perf_counter() - started}
    seconds = time.perf_counter() - started
    log.info("%s: rendered %s %s in %.1f s (%d files, %d KB)", node, report, edition_date, seconds, len(files),
             sum(len(f.data) for f in files) // 1024,
             extra={"fields": {"event": "rendered", "seconds": round(seconds, 2), **fields}})
    return {**attempt, "ok": True, "seconds": seconds, "manifest": rendered.manifest, "files": [
        {"name": f.name, "lang": f.lang, "format": f.format, "sha256": hashlib.sha256(f.data).hexdigest(),
         "data": base64.b64encode(f.data).decode("ascii")} for f in files]}


def _warm_up(project: Project) -> None:
    """Pay the imports and the chart fonts once, in the worker, before it forks its render processes."""
    import matplotlib.figure  # noqa: F401, PLC0415
    from ..pipeline.libraries import import_weasyprint  # noqa: PLC0415

    import_weasyprint()

    from ..pipeline import build, charts  # noqa: PLC0415

    try:
        charts.register_fonts(build.chart_fonts(project))
    except ReporterError as exc:
        log.warning("chart fonts not preloaded: %s", exc)


def _no_celery_logging(**_kwargs: Any) -> None:
    """Connected to ``setup_logging``: Celery then leaves reporter's log format alone."""


def _ready(**_kwargs: Any) -> None:
    log.info("worker %s ready: %d render process(es), each replaced after %d renders; broker %s",
             _worker["node"], _worker["concurrency"], _worker["max_tasks"], _worker["where"],
             extra={"fields": {"event": "ready", "node": _worker["node"]}})


def _stopping(sig: str | None = None, how: str | None = None, **_kwargs: Any) -> None:
    if how == "Warm":
        log.info("worker %s stopping: renders in progress finish first%s", _worker["node"],
                 f" ({sig})" if sig else "", extra={"fields": {"event": "stopping", "node": _worker["node"]}})


def run_worker(project: Project, url: str, node: str, concurrency: int) -> int:
    """Run a worker in the foreground until SIGTERM or SIGINT (both let renders finish); its exit code.

    Its render processes die with it (Celery's prefork pool sets their parent-death signal), so a
    worker killed with -9 leaves no render running that nobody would acknowledge.
    """
    from celery import signals  # noqa: PLC0415

    app = make_app(url, project)
    concurrency = concurrency or project.workers or os.cpu_count() or 1
    _worker.update(node=node, config=str(project.path), concurrency=concurrency,
                   max_tasks=project.max_tasks_per_worker, where=safe_url(url))
    _warm_up(project)
    logging.captureWarnings(True)  # Celery's warnings (running as root, say) in reporter's format too
    signals.setup_logging.connect(_no_celery_logging, weak=False)
    signals.worker_ready.connect(_ready, weak=False)
    signals.worker_shutting_down.connect(_stopping, weak=False)
    worker = app.Worker(
        hostname=f"reporter@{node}", concurrency=concurrency, pool="prefork", queues=[QUEUE],
        loglevel="WARNING", quiet=True, redirect_stdouts=False, optimization="fair",
        max_tasks_per_child=project.max_tasks_per_worker,
        # No events: nothing reads them. Mingle stays: a new worker learns the renders revoked meanwhile.
        without_gossip=True, without_heartbeat=True,
    )
    worker.start()
    return worker.exitcode or 0


# --- the scheduler's side ----------------------------------------------------------------------


@dataclass
class _Seen:
    """What the poller last read about one task."""

    meta: bytes | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""  # the broker's error on the last read, if it failed


class _Poller:
    """One thread reads the state of every render in flight, in one round trip per tick, and wakes
    the threads waiting on them: two hundred renders waiting cost Redis ten requests a second."""

    def __init__(self, client: Any, meta_key: Callable[[str], Any], every: float, inbox: str) -> None:
        self._client, self._meta_key, self._every, self.inbox = client, meta_key, every, inbox
        self._seen: dict[str, _Seen] = {}
        self._tick = 0
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="celery-results", daemon=True)
        self._thread.start()

    def watch(self, task_id: str) -> None:
        with self._changed:
            self._seen[task_id] = _Seen()

    def forget(self, task_id: str) -> None:
        with self._changed:
            self._seen.pop(task_id, None)

    def wait(self, task_id: str, timeout: float) -> _Seen:
        """The next reading of ``task_id`` (or the last one, after ``timeout``)."""
        with self._changed:
            tick = self._tick
            self._changed.wait_for(lambda: self._tick != tick or self._stop.is_set(), timeout)
            seen = self._seen.get(task_id, _Seen())
            return _Seen(seen.meta, list(seen.attempts), seen.error)

    def _loop(self) -> None:
        import redis  # noqa: PLC0415

        while not self._stop.is_set():
            with self._changed:
                ids = list(self._seen)
            readings: dict[str, _Seen] = {}
            if ids:
                pipe = self._client.pipeline(transaction=False)
                for task_id in ids:
                    pipe.get(self._meta_key(task_id))
                    pipe.lrange(attempts_key(task_id), 0, -1)
                try:
                    values = pipe.execute()
                    for i, task_id in enumerate(ids):
                        readings[task_id] = _Seen(values[2 * i], [json.loads(a) for a in values[2 * i + 1]])
                except (redis.RedisError, OSError) as exc:
                    readings = {task_id: _Seen(error=str(exc) or type(exc).__name__) for task_id in ids}
            with self._changed:
                for task_id, reading in readings.items():
                    if task_id in self._seen:
                        old = self._seen[task_id]
                        # A failed read keeps what was known; it only adds why nothing new came.
                        self._seen[task_id] = reading if not reading.error else _Seen(old.meta, old.attempts, reading.error)
                self._tick += 1
                self._changed.notify_all()
            try:
                # Workers push here when a result is stored; otherwise look again after `every`.
                if self._client.blpop([self.inbox], timeout=self._every) is not None:
                    self._client.delete(self.inbox)
            except (redis.RedisError, OSError):
                self._stop.wait(self._every)

    def close(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join(timeout=5)


@dataclass
class _Attempt:
    node: str
    pid: int
    seen: float  # monotonic, on the scheduler's host: workers' clocks may differ
    at: datetime  # the same moment by the scheduler's clock, for the history

    def __str__(self) -> str:
        return f"worker {self.node} (pid {self.pid})"


class CeleryExecutor:
    """An :class:`~reporter.execute.Executor` that sends each render to Celery workers and writes
    what comes back. ``run`` blocks, and is safe from many threads at once.

    Time limits: a worker stops a render at the report's ``timeout`` itself and says so; if no
    answer comes by then (and a margin), its worker is taken for lost, and the render waits for
    Redis to hand it to another worker after ``redeliver_after``. A render that waits for a worker
    fails once ``timeout`` has passed (counted from its publication, or from when its re-delivery
    was due) and no render of this scheduler has started or finished for ``timeout`` either.
    It is then revoked, so a late worker discards it, and whatever one renders anyway is never
    written.
    """

    def __init__(self, project: Project, url: str, clock: Callable[[], datetime], poll: float = 0.1) -> None:
        self.project = project
        self.url = url
        self.clock = clock
        self.poll = poll
        self._where = f"{BROKER_ENV}={safe_url(url)}"
        self._lock = threading.Lock()
        self._publishing = threading.Lock()
        self._app: Celery | None = None
        self._poller: _Poller | None = None
        self._client: Any = None
        self._calls = Calls()
        self._progress = 0.0  # monotonic: when a render of this scheduler last started or finished

    def _connect(self) -> tuple[Celery, _Poller]:
        # Lazily, like the pool: only a scheduler with something due talks to the broker.
        with self._lock:
            if self._app is None:
                import redis  # noqa: PLC0415

                app = make_app(self.url, self.project)
                self._client = redis.Redis.from_url(self.url, socket_connect_timeout=5, socket_timeout=30)
                self._poller = _Poller(self._client, lambda task_id: app.backend.get_key_for_task(task_id), self.poll,
                                       inbox=f"reporter:done:{uuid.uuid4().hex}")
                self._app = app
            return self._app, self._poller

    def run(self, task: RenderTask, timeout: float) -> RenderOutcome:
        with self._calls.call():
            return self._run(task, timeout)

    def _run(self, task: RenderTask, timeout: float) -> RenderOutcome:
        from ..pipeline import manifest  # noqa: PLC0415
        from ..pipeline.inputs import render_digest  # noqa: PLC0415

        app, poller = self._connect()
        report = self.project.report(task.report)
        task_id = uuid.uuid4().hex
        poller.watch(task_id)
        margin = max(5.0, timeout / 10)  # for the worker to stop an overrunning render and say so
        began = time.monotonic()
        pickup_by = began + timeout
        attempts: dict[str, _Attempt] = {}
        order: list[str] = []
        published, presumed_lost = False, False
        broker_error = ""
        try:
            while True:
                if self._calls.stopped:
                    self._revoke(task_id)
                    raise WorkerStopped("stopped with the service before the render finished")
                if not published:
                    try:
                        with self._publishing:
                            app.send_task(TASK, task_id=task_id, queue=QUEUE, time_limit=timeout,
                                          kwargs={"report": task.report, "edition_date": task.edition_date.isoformat(),
                                                  "inputs": render_digest(self.project, report),
                                                  "inbox": poller.inbox,
                                                  "previous": manifest.previous(self._output_dir(task), task.report,
                                                                                task.edition_date)})
                        published = True
                    except Exception as exc:  # noqa: BLE001 - kombu's errors vary by what failed; all mean "not sent"
                        broker_error = str(exc) or type(exc).__name__
                        if time.monotonic() > pickup_by:
                            return self._failed(f"cannot hand the render to the broker ({self._where}): {broker_error}")
                        time.sleep(1.0)
                        continue
                seen = poller.wait(task_id, timeout=5 * self.poll + 1)
                now = time.monotonic()
                broker_error = seen.error
                for record in seen.attempts:
                    if record["attempt"] not in attempts:
                        attempts[record["attempt"]] = _Attempt(record["node"], record["pid"], now, self.clock())
                        order.append(record["attempt"])
                        presumed_lost = False
                        self._progress = now
                if seen.meta is not None:
                    meta = app.backend.decode(seen.meta)
                    if meta.get("status") in ("SUCCESS", "FAILURE", "REVOKED"):
                        self._progress = now
                        return self._finish(task, timeout, meta, attempts, order)
                current = attempts[order[-1]] if order else None
                if current is not None and not presumed_lost and now > current.seen + timeout + margin:
                    # A live worker would have stopped the render at its timeout and said so by now.
                    presumed_lost = True
                    redelivery = current.seen + self.project.redeliver_after + restore_every(self.project.redeliver_after)
                    pickup_by = redelivery + timeout
                    log.warning("%s %s: no word from %s for %.0f s; taken for lost, the broker hands the render "
                                "to another worker after redeliver_after (%g s)", task.report, task.edition_date,
                                current, now - current.seen, self.project.redeliver_after)
                # Waiting for a worker fails only when no render of this scheduler has started or
                # finished for `timeout` either: a long queue that moves is capacity, not a fault.
                if (current is None or presumed_lost) and now > max(pickup_by, self._progress + timeout):
                    self._revoke(task_id)
                    if current is None:
                        why = f"cannot reach the broker ({self._where}): {broker_error}" if broker_error else \
                            f"is a `reporter worker` running for {self._where}?"
                        return self._failed(f"no worker started the render within {timeout:g} s; {why}")
                    return self._failed(f"{current} stopped answering mid-render and no worker took the render again "
                                        f"within {timeout:g} s of its re-delivery"
                                        + (f" (broker: {broker_error})" if broker_error else ""),
                                        lost=self._lost(attempts, order[:-1], order[-1]))
        finally:
            poller.forget(task_id)
            self._discard(task_id)

    def _finish(self, task: RenderTask, timeout: float, meta: dict[str, Any], attempts: dict[str, _Attempt],
                order: list[str]) -> RenderOutcome:
        from ..errors import ReporterError  # noqa: PLC0415
        from ..pipeline.build import Rendered, RenderedFile, edition_dir, write_edition  # noqa: PLC0415

        status, result = meta.get("status"), meta.get("result")
        if status != "SUCCESS":
            lost = self._lost(attempts, order[:-1], order[-1]) if order else ()
            kind = result.get("exc_type", "") if isinstance(result, dict) else ""
            if status == "REVOKED":
                return self._failed("the render was revoked on the broker", lost=lost)
            if kind == "TimeLimitExceeded":
                return self._failed(f"render did not finish within {timeout:g} s and was stopped", lost=lost)
            message = result.get("exc_message") if isinstance(result, dict) else result
            if isinstance(message, (list, tuple)):
                message = "; ".join(str(part) for part in message)
            return self._failed(f"the worker failed: {kind or status}: {message}", lost=lost)
        winner = result.get("attempt", "")
        earlier = order[:order.index(winner)] if winner in order else []
        lost = self._lost(attempts, earlier, winner)
        where = f"worker {result.get('node')} (pid {result.get('pid')})"
        if not result.get("ok"):
            return RenderOutcome(False, error=result.get("error") or "the render failed", seconds=result.get("seconds", 0.0),
                                 pid=result.get("pid", 0), lost=lost)
        files = []
        for item in result.get("files", []):
            try:
                data = base64.b64decode(item["data"], validate=True)
            except (binascii.Error, ValueError):
                data = b""
            if hashlib.sha256(data).hexdigest() != item["sha256"] or "/" in item["name"] or item["name"].startswith("."):
                return self._failed(f"{item['name']} came back from {where} damaged; nothing was written", lost=lost)
            files.append(RenderedFile(item["name"], item["lang"], item["format"], data))
        directory = edition_dir(self._output_dir(task), task.report, task.edition_date)
        try:
            edition = write_edition(directory, task.report, task.edition_date,
                                    Rendered(tuple(files), result.get("manifest") or {}))
        except ReporterError as exc:
            return self._failed(str(exc), lost=lost)
        return RenderOutcome(True, edition.artifacts, seconds=result.get("seconds", 0.0), pid=result.get("pid", 0),
                             lost=lost)

    def _output_dir(self, task: RenderTask):
        from pathlib import Path  # noqa: PLC0415

        return Path(task.output_dir) if task.output_dir else self.project.output_dir

    def _lost(self, attempts: dict[str, _Attempt], lost: list[str], then: str) -> tuple[LostAttempt, ...]:
        """Each attempt before ``then`` as lost: its worker died, or was so late that the broker
        gave the render to another, whose result counts (the one written and recorded)."""
        sequence = [*lost, then]
        return tuple(
            LostAttempt(attempts[nxt].at if nxt in attempts else self.clock(),
                        f"{attempts[old]} did not finish the render (its worker was lost); "
                        f"the broker handed it to {attempts[nxt] if nxt in attempts else 'another worker'}")
            for old, nxt in zip(sequence, sequence[1:]) if old in attempts)

    @staticmethod
    def _failed(error: str, lost: tuple[LostAttempt, ...] = ()) -> RenderOutcome:
        return RenderOutcome(False, error=error, lost=lost)

    def _revoke(self, task_id: str) -> None:
        # So that a worker that gets the message later discards it, even one not up yet (the
        # given-up mark; Celery's revoke reaches only the workers up now); a render running stops.
        try:
            self._client.set(given_up_key(task_id), 1, ex=ATTEMPTS_TTL)
            self._app.control.revoke(task_id, terminate=True, signal="SIGKILL")
        except Exception as exc:  # noqa: BLE001 - the broker may be what failed; the result is never read anyway
            log.warning("could not revoke render %s on the broker: %s", task_id[:8], exc)

    def _discard(self, task_id: str) -> None:
        # Results are large; once read (or given up on) they have no reader left.
        try:
            self._client.delete(self._app.backend.get_key_for_task(task_id), attempts_key(task_id))
        except Exception:  # noqa: BLE001 - they expire by themselves
            pass

    def close(self, grace: float = 30.0) -> None:
        """Take no new renders; wait up to ``grace`` seconds for those in flight, then give them up
        (each revoked, recorded as abandoned)."""
        self._calls.stop(grace)
        self._calls.wait(10)  # for those it gave up to record it
        if self._poller is not None:
            self._poller.close()
        if self._client is not None:
            self._client.close()
        if self._app is not None:
            self._app.close()
