"""Recording a manual render in the history from a forked helper process.

Opening the history costs about 0.15 s of imports (SQLAlchemy), which would be a tenth of a
cold ``reporter render``. The helper is forked before the heavy imports, so it pays that on the
other core while this process renders. The render waits for the helper's word that the run is
recorded before it writes any file, so a damaged history still stops it with nothing written.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import traceback
from datetime import date, datetime
from typing import Any, Sequence

from ..errors import Problem, StateError
from .target import StateTarget


def _send(fd: int, value: Any) -> None:
    data = pickle.dumps(value)
    os.write(fd, struct.pack("!I", len(data)) + data)


def _receive(fd: int) -> Any:
    def read(n: int) -> bytes:
        chunks = b""
        while len(chunks) < n:
            chunk = os.read(fd, n - len(chunks))
            if not chunk:
                raise EOFError
            chunks += chunk
        return chunks

    (size,) = struct.unpack("!I", read(4))
    return pickle.loads(read(size))


class RunRecorder:
    """Records one run: started now, finished later, written by a forked helper."""

    def __init__(self, state: StateTarget, report: str, edition_date: date, trigger: str, now: datetime) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:  # the helper
            # Ctrl-C reaches the whole group: the render reports it, and this helper records it.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            os.close(self._to_child)
            os.close(self._from_child)
            code = 1
            try:
                code = _helper(to_child_r, from_child_w, state, report, edition_date, trigger, now)
            finally:
                os._exit(code)
        os.close(to_child_r)
        os.close(from_child_w)
        self._run_id: int | None = None
        self._failure: StateError | None = None
        self._where = state.where

    def wait_started(self) -> int:
        """Block until the run is recorded; raise the helper's :class:`StateError` if it was not."""
        if self._failure:
            raise self._failure
        if self._run_id is None:
            try:
                kind, value = _receive(self._from_child)
            except EOFError:
                kind, value = "error", [Problem(self._where, "", "the history could not be written")]
            if kind == "error":
                self._reap()
                self._failure = StateError(value)
                raise self._failure
            self._run_id = value
        return self._run_id

    def finish(self, status: str, now: datetime, *, error: str | None = None, files: Sequence[Any] = ()) -> None:
        """Record how the run ended and wait until it is committed."""
        try:
            self.wait_started()
        except StateError:
            if status == "ok":
                raise
            return  # the render failed anyway; its own error is the one to show
        _send(self._to_child, (status, now, error, [(str(f.path), f.lang, f.format, f.sha256, f.size) for f in files]))
        kind, value = _receive(self._from_child)
        self._reap()
        if kind == "error":
            raise StateError(value)

    def _reap(self) -> None:
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        os.waitpid(self._pid, 0)


def _helper(inbox: int, outbox: int, state: StateTarget, report: str, edition_date: date, trigger: str,
            now: datetime) -> int:
    from .history import ArtifactRecord, History  # noqa: PLC0415 - the import this process exists for

    try:
        history = History.open(state)
        run_id = history.start_run(report, edition_date, trigger, now)
    except StateError as exc:
        _send(outbox, ("error", exc.problems))
        return 1
    except Exception:  # noqa: BLE001 - a bug here must reach the user, not vanish with the fork
        _send(outbox, ("error", [Problem(state.where, "", state.mask(traceback.format_exc(limit=3)))]))
        return 1
    _send(outbox, ("ok", run_id))
    try:
        status, finished, error, files = _receive(inbox)
    except EOFError:
        # The render process died without a word (Ctrl-C, kill): the run did not finish.
        history.finish_run(run_id, "abandoned", now, error="the render process stopped before it finished")
        return 1
    try:
        history.finish_run(run_id, status, finished, error=error, files=[ArtifactRecord(*f) for f in files])
    except StateError as exc:
        _send(outbox, ("error", exc.problems))
        return 1
    _send(outbox, ("ok", run_id))
    return 0
