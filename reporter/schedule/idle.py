"""Whether ``run-due`` has nothing at all to do, read from a SQLite history with the standard
library alone.

Cron calls ``run-due`` every few minutes, and nearly every call finds nothing due. Opening the
history through SQLAlchemy costs a quarter of a second of imports before the first query, which
is most of such a call. This module answers the one question that call asks, read-only, and
answers "nothing" only when every sign agrees: each scheduled report has been decided up to a
moment after which no fire time has come, no slot waits to be run again, no run was left
running, and no message or notice waits to be sent. On any doubt, or any error reading the
file, it answers "maybe", and the caller takes the full path, which decides, records and
reports as always. So this can only save work, never skip it.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path

from ..config import Project
from .plan import fire_times

SCHEMA = 2
"""The history schema this reading understands; tests hold it equal to ``state.schema.VERSION``."""
UNDELIVERED = ("pending", "sending", "failed")
"""A message or notice in one of these states is still to go; tests hold it equal to ``state.history``'s."""


def nothing_due(project: Project, state_path: Path, now: datetime) -> bool:
    """True when a ``run-due`` at ``now`` would decide nothing, run nothing and send nothing."""
    scheduled = [report for report in project.reports.values() if report.schedule]
    if not state_path.is_file():
        return False  # a first run, or a lost history: the full path's start-up checks decide
    try:
        with closing(sqlite3.connect(f"{state_path.resolve().as_uri()}?mode=ro", uri=True, timeout=1)) as conn:
            return _quiet(conn, scheduled, now)
    except (sqlite3.Error, ValueError, OSError):
        return False


def _quiet(conn: sqlite3.Connection, scheduled: list, now: datetime) -> bool:
    (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    if version != SCHEMA:
        return False  # an upgrade to make, or a newer history to refuse: the full path says which
    marks = ", ".join("?" * len(UNDELIVERED))
    waiting = conn.execute(
        "SELECT (SELECT count(*) FROM slots WHERE state IN ('running', 'abandoned'))"
        " + (SELECT count(*) FROM runs WHERE status = 'running')"
        f" + (SELECT count(*) FROM deliveries WHERE status IN ({marks}))"
        f" + (SELECT count(*) FROM notices WHERE status IN ({marks}))", UNDELIVERED * 2).fetchone()[0]
    if waiting:
        return False
    cursors = dict(conn.execute("SELECT report, until FROM cursors").fetchall())
    for report in scheduled:
        if report.id not in cursors:
            return False  # never decided: the full path starts its cursor
        if fire_times(report, datetime.fromisoformat(cursors[report.id]), now, limit=1):
            return False
    return True
