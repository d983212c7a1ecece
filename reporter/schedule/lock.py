"""One scheduler per state: an exclusive ``flock`` on a file beside the history database.

The kernel releases the lock when its holder dies, however it dies, so a crash never needs
manual clean-up; the holder's pid is written into the file only to name it in the message.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from ..errors import Problem, StateError


class SchedulerLock:
    def __init__(self, state_path: Path) -> None:
        self.path = state_path.with_name(state_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> "SchedulerLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateError([Problem(str(self.path), "", f"cannot open the scheduler lock: {exc.strerror}")]) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateError([Problem(str(self.path), "", f"another scheduler (pid {holder}) is already running "
                                      "for this state; stop it first, or use another state file")]) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError as exc:  # a full disk: the lock holds, only the name of its holder is missing
            if exc.errno != errno.ENOSPC:
                os.close(fd)
                raise StateError([Problem(str(self.path), "", f"cannot write the scheduler lock: {exc.strerror}")]) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "SchedulerLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
