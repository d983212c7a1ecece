"""Executors: where renders run. The scheduler hands a :class:`RenderTask` to an :class:`Executor`
and gets a :class:`RenderOutcome` back; the local process pool is one executor, Celery workers on
other hosts (:mod:`.celery`) another, and the scheduler does not change.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # workers import this module first thing: keep it light
    from ..pipeline.build import Artifact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderTask:
    """One edition to render: everything a worker needs, as plain picklable values."""

    config: str
    report: str
    edition_date: date
    output_dir: str | None = None


@dataclass(frozen=True)
class LostAttempt:
    """An attempt at a render that a worker began and never finished, before another attempt took
    over (a distributed queue re-delivers a task whose worker died)."""

    at: datetime  # when the next attempt began, by the scheduler's clock
    reason: str


@dataclass(frozen=True)
class RenderOutcome:
    ok: bool
    artifacts: tuple["Artifact", ...] = ()
    error: str = ""
    seconds: float = 0.0
    pid: int = 0  # the process that rendered it
    lost: tuple[LostAttempt, ...] = ()  # earlier attempts of this render, oldest first


class RenderTimeout(Exception):
    """The render did not finish within its timeout; its worker was killed."""


class WorkerStopped(Exception):
    """The service is stopping and stopped the worker before the render finished."""


class WorkerCrashed(Exception):
    """The worker died on its own (out of memory, a crash in a C library) mid-render."""


class Calls:
    """The ``run`` calls an executor has in flight, and how it stops taking them: closed, no new
    call starts; stopped (once the grace is over), calls still waiting for a worker give up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self.closing = False
        self.stopped = False

    @contextmanager
    def call(self) -> Iterator[None]:
        with self._lock:
            if self.closing:
                raise WorkerStopped("the service is stopping")
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1

    def stop(self, grace: float) -> None:
        """Take no new call; wait up to ``grace`` seconds for those in flight, then stop."""
        with self._lock:
            self.closing = True
        self.wait(grace)
        self.stopped = True

    def wait(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the calls in flight to end."""
        deadline = time.monotonic() + seconds
        while True:
            with self._lock:
                if not self._active:
                    return
            if time.monotonic() >= deadline:
                return
            time.sleep(0.05)


class Executor(Protocol):
    """Runs render tasks somewhere else; blocking per call, safe to call from many threads."""

    def run(self, task: RenderTask, timeout: float) -> RenderOutcome: ...

    def close(self, grace: float) -> None: ...


def execute(task: RenderTask) -> RenderOutcome:
    """Render one edition in this process; a :class:`ReporterError` becomes a failed outcome."""
    from .. import config  # noqa: PLC0415
    from ..pipeline.build import build_edition  # noqa: PLC0415
    from ..errors import ReporterError  # noqa: PLC0415

    start = time.perf_counter()
    try:
        project = config.load(task.config)
        edition = build_edition(project, project.report(task.report), task.edition_date,
                                output_dir=Path(task.output_dir) if task.output_dir else None)
    except ReporterError as exc:
        return RenderOutcome(False, error=str(exc), seconds=time.perf_counter() - start, pid=os.getpid())
    except Exception as exc:  # noqa: BLE001 - a bug in one report must not take the worker down silently
        log.exception("render of %s crashed", task.report)
        return RenderOutcome(False, error=f"internal error: {exc!r}", seconds=time.perf_counter() - start, pid=os.getpid())
    return RenderOutcome(True, edition.artifacts, seconds=time.perf_counter() - start, pid=os.getpid())
