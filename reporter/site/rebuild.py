"""Rebuilding the archive site after a manual render, prepared in a helper forked before the render.

The site reads the history, and the history costs SQLAlchemy's import: 0.2 to 0.7 s on a busy
machine, a quarter of a cold HTML render, which ``reporter render`` otherwise never pays (its run
is recorded by a forked helper, :mod:`reporter.state.recording`, for the same reason). So the
render forks this helper first; it imports what the site needs on the other core while the render
draws and lays out, then waits. Told to build, it builds and answers with the problems it met;
told nothing (the render failed, or was interrupted), it exits without building.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import traceback
from typing import TYPE_CHECKING

from ..errors import Problem, ReporterError

if TYPE_CHECKING:
    from ..config import Project

log = logging.getLogger(__name__)

_BUILD = b"b"


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class SiteRebuild:
    """A forked helper that rebuilds the project's archive site when :meth:`build` is called."""

    def __init__(self, project: "Project") -> None:
        self.project = project
        go_read, self._go = os.pipe()
        self._done, done_write = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:  # the helper
            # Ctrl-C reaches the whole group; the render decides, and closing the pipe tells this helper.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            os.close(self._go)
            os.close(self._done)
            code = 1
            try:
                code = _helper(go_read, done_write, project)
            finally:
                os._exit(code)
        os.close(go_read)
        os.close(done_write)
        self._open = True

    def build(self) -> list[Problem]:
        """Rebuild the site now and wait for it; return the problems that stopped it (none: built)."""
        if not self._open:
            return []
        try:
            _write_all(self._go, _BUILD)
            os.close(self._go)
            answer = _read_all(self._done)
        except OSError as exc:
            answer, reason = b"", exc.strerror
        else:
            reason = "it stopped without a word"
        finally:
            self._finish()
        if not answer:
            return [Problem(str(self.project.output_dir), "", f"the archive site was not built: {reason}")]
        return [Problem(*fields) for fields in pickle.loads(answer)]

    def cancel(self) -> None:
        """No rebuild: the helper sees its pipe close, and exits."""
        if self._open:
            try:
                os.close(self._go)
            except OSError:
                pass
            self._finish()

    def _finish(self) -> None:
        self._open = False
        for fd in (self._go, self._done):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.waitpid(self._pid, 0)
        except ChildProcessError:
            pass


def _helper(go: int, done: int, project: "Project") -> int:
    from ..state.history import History  # noqa: PLC0415 - the slow import, while the parent renders
    from .archive import build_site  # noqa: PLC0415

    if os.read(go, 1) != _BUILD:
        return 0
    problems: list[tuple[str, str, str]] = []
    try:
        # Opened only now: the run this render recorded is committed by the time it is told to build.
        history = History.at(project.state_path)
        try:
            build_site(project, history)
        finally:
            history.close()
    except ReporterError as exc:
        problems = [(p.file, p.place, p.message) for p in exc.problems]
    except Exception as exc:  # noqa: BLE001 - a bug: the parent says so, the log keeps the traceback
        log.error("the archive site failed:\n%s", traceback.format_exc())
        problems = [(str(project.output_dir), "", f"internal error: {exc!r}")]
    _write_all(done, pickle.dumps(problems))
    return 0
