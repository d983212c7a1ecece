"""The stop of a long-running command (``run``, ``preview``): SIGTERM or SIGINT.

A Python signal handler runs on the main thread between any two of its bytecodes, maybe while
that thread holds a lock: starting a thread, submitting to a thread pool and ``Event.wait`` all
take locks that cannot be taken twice. A handler that then took the same lock (to shut a
scheduler down, start a thread, or even set an event the main thread is waiting on) would wait
for ever; `reporter run` did, once in a few hundred stops. So the handler here only records the
signal and sets the flag, and the main thread never waits on the flag's lock: it polls.
"""

from __future__ import annotations

import signal
import threading
import time

POLL = 0.2  # seconds: how soon the main thread notices a stop


class Stopping(threading.Event):
    """Set by :meth:`handle` (install it for SIGTERM and SIGINT) or by :meth:`set`."""

    def __init__(self) -> None:
        super().__init__()
        self.signal_name = ""

    def handle(self, signum: int, _frame: object) -> None:
        if not self.signal_name:
            self.signal_name = signal.Signals(signum).name
        self.set()

    def install(self) -> dict[int, object]:
        """Handle SIGTERM and SIGINT from now on; returns the handlers this replaced."""
        return {sig: signal.signal(sig, self.handle) for sig in (signal.SIGTERM, signal.SIGINT)}

    def sleep(self, seconds: float) -> bool:
        """For the main thread, where :meth:`wait` could hold the lock that a handler's
        :meth:`set` takes: sleep up to ``seconds``, less if stopped; True if stopped."""
        deadline = time.monotonic() + seconds
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL, left))
        return True

    @property
    def reason(self) -> str:
        return f"received {self.signal_name}" if self.signal_name else "asked to stop"
