"""Several schedulers on one PostgreSQL state: one leads, the others stand by.

``reporter run`` may be started on several hosts. Each tries ``pg_try_advisory_lock`` on its
session connection (:class:`reporter.state.backend.Session`); the one that gets it leads, the
others try again every ``--standby-interval`` seconds and say who leads. The server frees the
lock when the leader's session ends: at once when its process dies (``kill -9`` closes the
connection), and within 11 s when its host falls silent (the session's TCP keepalives).

A leader must never run beside a new one. It pings the server every 2 s; when a ping fails, or
none has succeeded for 7 s (before the server, at 11 s, can let another lead), it steps down:
renders in progress are killed and the process exits with status 1, for systemd to start it
again as a standby. Its slot claims are also fenced (:meth:`History.lead`): each is granted only
while the server sees its session holding the lock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import ReporterError
from ..state.backend import LEASE, PING
from ..state.history import History
from .stopping import Stopping

log = logging.getLogger(__name__)

STEPPED_DOWN = 1
"""Exit status of a scheduler that lost the lead."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ReporterError):
        return "; ".join(p.message for p in exc.problems)
    return " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]


def try_lead(history: History) -> tuple[bool, str | None]:
    """One attempt: (True, None) if this process now leads, else (False, who leads)."""
    session = history.session()
    if session.try_lead():
        return True, None
    return False, session.leader() or "unknown"


def wait_to_lead(history: History, interval: float, stopping: Stopping) -> bool:
    """Stand by until this process leads (True) or ``stopping`` is set (False).

    The database may go away while standing by: that is logged, and the next attempt makes a
    new connection.
    """
    shown = None
    while not stopping.is_set():
        try:
            leads, leader = try_lead(history)
        except Exception as exc:  # noqa: BLE001 - a standby outlives an unreachable database
            history.drop_session()
            message = f"standing by: the state database does not answer ({history.target.mask(_reason(exc))})"
            if message != shown:
                log.warning("%s; trying again every %g s", message, interval,
                            extra={"fields": {"event": "standby-unreachable"}})
                shown = message
        else:
            if leads:
                return True
            message = f"standing by (leader: {leader})"
            if message != shown:
                log.info("%s; trying every %g s", message, interval,
                         extra={"fields": {"event": "standby", "leader": leader}})
                shown = message
        stopping.sleep(interval)  # not wait(): see schedule/stopping.py
    return False


@contextmanager
def watching(history: History, step_down: Callable[[str], None]) -> Iterator[None]:
    """While leading: ping the server; call ``step_down(reason)`` once if the lead is lost.

    Two threads, because a ping can hang on a silent network: one pings, the other watches
    the time since the last success.
    """
    session = history.session()
    done = threading.Event()
    last_ok = [time.monotonic()]
    fired = threading.Lock()

    def lost(reason: str) -> None:
        if not done.is_set() and fired.acquire(blocking=False):
            step_down(reason)

    def ping() -> None:
        while not done.wait(PING):
            try:
                session.ping()
                last_ok[0] = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - any failure means the locks may be gone
                lost(f"the connection to the state database failed ({history.target.mask(_reason(exc))})")
                return

    def watch() -> None:
        while not done.wait(0.5):
            silent = time.monotonic() - last_ok[0]
            if silent > LEASE:
                lost(f"the state database has not answered for {silent:.0f} s")
                return

    threads = [threading.Thread(target=ping, name="lead-ping", daemon=True),
               threading.Thread(target=watch, name="lead-watch", daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        done.set()


def stepping_down(history: History, stop_renders: Callable[[], None]) -> Callable[[str], None]:
    """What a leader does when it loses the lead: say so, kill renders, exit :data:`STEPPED_DOWN`.

    At once and without waiting for anything that needs the database: the server may already
    have let another scheduler lead.
    """
    def step_down(reason: str) -> None:
        log.error("lost the lead: %s; stepping down: renders in progress are stopped and this scheduler exits, so "
                  "that only one scheduler ever runs slots (restarted, it stands by)", reason,
                  extra={"fields": {"event": "stepped-down", "reason": reason}})
        stopper = threading.Thread(target=stop_renders, name="step-down", daemon=True)
        stopper.start()
        stopper.join(timeout=3)  # workers also end once this process is gone (pool._die_with_parent)
        logging.shutdown()
        os._exit(STEPPED_DOWN)
    return step_down
