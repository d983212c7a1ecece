"""Worker processes that render editions, kept warm between runs.

A cold process spends about 1.3 s importing WeasyPrint and matplotlib before its first page, so
the scheduler keeps a pool of workers that import once and render many editions. Each worker is
recycled after a number of tasks to keep memory bounded, and a render that outlives its
timeout is stopped by killing its worker (threads cannot be stopped; processes can).

The pool sits behind the small :class:`Executor` interface so that a distributed task queue can
take its place later without the scheduler changing.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

from . import Calls, RenderOutcome, RenderTask, RenderTimeout, WorkerCrashed, WorkerStopped, execute

log = logging.getLogger(__name__)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _die_with_parent() -> None:
    # If the service is killed with SIGKILL its workers must not live on as orphans, even in
    # the middle of a render. Not PR_SET_PDEATHSIG: Linux sends that signal when the *thread*
    # that started the worker ends, and workers start from whichever thread renders first.
    # The parent's sentinel is a pipe made before this process was: it reads as closed once
    # the service is gone, however early that happens.
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker_main(conn: Connection, max_tasks: int, log_json: bool) -> None:
    # The service decides when workers stop. A terminal's Ctrl-C and systemd's default stop
    # signal the whole process group; leaving it, and ignoring those signals, lets a render in
    # progress have its grace period instead of dying with the first signal.
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    from ..log import configure_logging  # noqa: PLC0415 - same log format as the service

    configure_logging(verbose=False, as_json=log_json)
    import matplotlib.figure  # noqa: F401, PLC0415 - warm up: pay the imports once per worker
    from ..pipeline.libraries import import_weasyprint  # noqa: PLC0415

    import_weasyprint()

    from ..pipeline import build  # noqa: F401, PLC0415

    conn.send("ready")
    for _ in range(max_tasks):
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        conn.send(execute(task))


@dataclass(eq=False)
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    tasks: int = 0
    ready: bool = False


@dataclass
class ProcessPool:
    """A fixed number of warm worker processes; ``run`` blocks until a worker is free."""

    size: int = 0  # 0: one per core
    max_tasks: int = 20
    log_json: bool = False

    def __post_init__(self) -> None:
        self.size = self.size or os.cpu_count() or 1
        self._context = multiprocessing.get_context("spawn")
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._busy: set[_Worker] = set()
        self._lock = threading.Lock()
        self._calls = Calls()  # run() calls in progress, waiting for a worker or rendering
        self._started = False

    def _start_all(self) -> None:
        # Lazily: `run-due` from cron with nothing due must not pay for importing WeasyPrint.
        with self._lock:
            if not self._started:
                self._started = True
                for _ in range(self.size):
                    self._idle.put(self._start())

    def _start(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child, self.max_tasks, self.log_json),
                                        daemon=True, name="reporter-worker")
        process.start()
        child.close()
        return _Worker(process, parent)

    def _retire(self, worker: _Worker, kill: bool) -> None:
        if kill and worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=5)
        worker.conn.close()

    def run(self, task: RenderTask, timeout: float) -> RenderOutcome:
        with self._calls.call():
            self._start_all()
            return self._run(task, timeout)

    def _take(self) -> _Worker:
        while True:
            try:
                return self._idle.get(timeout=0.2)
            except queue.Empty:
                if self._calls.stopped:
                    raise WorkerStopped("stopped with the service before it started") from None

    def _run(self, task: RenderTask, timeout: float) -> RenderOutcome:
        worker = self._take()
        with self._lock:
            self._busy.add(worker)
        replace, kill = False, False
        try:
            if not worker.ready:
                # A fresh worker first reports that its imports are done; that time is not the task's.
                if not worker.conn.poll(120) or worker.conn.recv() != "ready":
                    replace, kill = True, True
                    raise WorkerCrashed("a render process failed to start")
                worker.ready = True
            deadline = time.monotonic() + timeout
            worker.conn.send(task)
            if not worker.conn.poll(max(0.0, deadline - time.monotonic())):
                replace, kill = True, True
                if self._calls.stopped:
                    raise WorkerStopped("stopped with the service before it finished")
                raise RenderTimeout(f"render did not finish within {timeout:g} s and was stopped")
            outcome = worker.conn.recv()
            worker.tasks += 1
            if worker.tasks >= self.max_tasks:
                replace = True  # it exits by itself after max_tasks; start a fresh one
            return outcome
        except (EOFError, OSError, BrokenPipeError):
            replace, kill = True, True
            if self._calls.stopped:
                raise WorkerStopped("stopped with the service before it finished") from None
            worker.process.join(timeout=5)
            code = worker.process.exitcode
            if code is not None and -code in _STOP_SIGNALS:
                # Signalled in the instant before it could ignore stop signals: a stop, not a crash.
                raise WorkerStopped(f"stopped by {signal.Signals(-code).name} before it finished") from None
            how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            raise WorkerCrashed(f"the render process died ({how})") from None
        finally:
            back: _Worker | None = worker
            if replace:
                self._retire(worker, kill)
                back = None
                if not self._calls.closing:
                    try:
                        back = self._start()
                    except OSError as exc:  # the pool shrinks by one rather than the service dying
                        log.error("could not start a fresh render process: %s", exc)
            # Back to idle before leaving busy, so close() always finds every worker.
            if back is not None:
                self._idle.put(back)
            with self._lock:
                self._busy.discard(worker)

    def close(self, grace: float = 30.0) -> None:
        """Take no new renders; let those in progress finish for up to ``grace`` seconds, then
        stop every worker (renders still running are abandoned)."""
        self._calls.stop(grace)
        with self._lock:
            busy = list(self._busy)
        for worker in busy:
            log.warning("stopping a render still in progress (worker pid %s)", worker.process.pid)
            worker.process.kill()
        self._calls.wait(10)
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                break
            try:
                worker.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            self._retire(worker, kill=False)
