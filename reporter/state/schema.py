"""The history's tables, and the numbered migrations that bring any older database up to them.

``schema_version`` holds one row per version applied (when, and what it did); the highest is the
database's version. At start-up :func:`ensure` reads it and, when the database is behind,
applies the missing migrations in one transaction, serialised between processes (SQLite's write
lock, or a PostgreSQL advisory lock held for that transaction), so that two hosts starting
together upgrade it once. A fresh database gets the current tables and the current version at
once. A database made before versions were kept (reporter up to the edges work: the six tables,
no ``schema_version``) is recognised by its columns as version 1 and upgraded. A database newer
than this reporter is refused: an older program must not write a shape it does not know.

Every migration is idempotent (``IF NOT EXISTS``), so a table created at today's shape by an
earlier step of the same upgrade does not make a later step fail.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

import sqlalchemy as sa

from ..errors import Problem, StateError

metadata = sa.MetaData()

slots = sa.Table(
    "slots", metadata,
    sa.Column("report", sa.String, primary_key=True),
    sa.Column("slot", sa.String, primary_key=True,
              doc="scheduled time as wall-clock time in the report's zone, e.g. 2025-11-03T08:00;"
                  " a time that occurs twice at a DST fall-back is one slot"),
    sa.Column("edition_date", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False, doc="running | ok | failed | skipped | abandoned"),
    sa.Column("run_id", sa.Integer),
)
runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("report", sa.String, nullable=False, index=True),
    sa.Column("edition_date", sa.String, nullable=False),
    sa.Column("slot", sa.String, doc="the slot (see slots.slot), or NULL for a manual render"),
    sa.Column("trigger", sa.String, nullable=False, doc="manual | schedule | catch-up | run-due"),
    sa.Column("started_at", sa.String, nullable=False),
    sa.Column("finished_at", sa.String),
    sa.Column("status", sa.String, nullable=False, doc="running | ok | failed | skipped | abandoned"),
    sa.Column("error", sa.Text),
    sa.Column("owner", sa.String, nullable=False, doc="host:pid of the process that ran it"),
)
cursors = sa.Table(
    "cursors", metadata,
    sa.Column("report", sa.String, primary_key=True),
    sa.Column("until", sa.String, nullable=False, doc="UTC time up to which due slots were decided"),
)
artifacts = sa.Table(
    "artifacts", metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("path", sa.String, nullable=False),
    sa.Column("lang", sa.String, nullable=False),
    sa.Column("format", sa.String, nullable=False),
    sa.Column("sha256", sa.String, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
)
deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("report", sa.String, primary_key=True),
    sa.Column("edition_date", sa.String, primary_key=True),
    sa.Column("lang", sa.String, primary_key=True),
    sa.Column("recipient", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False,
              doc="pending (to send) | sending (claimed) | sent | failed (retried while in the window) | rejected (5xx)"
                  " | unchanged (send_if)"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("reply", sa.Text, doc="the server's last reply, e.g. '250 OK' or '550 no such user'"),
    sa.Column("message_id", sa.String),
    sa.Column("sha256", sa.String, doc="sha256 of the attached PDF"),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.Column("forced", sa.Boolean, nullable=False, default=False),
    sa.Column("owner", sa.String, doc="host:pid of the process sending it now (status 'sending')"),
    sa.Column("content", sa.String, doc="digest of what the edition says (data and texts), for send_if"),
)

notices = sa.Table(
    "notices", metadata,
    sa.Column("report", sa.String, primary_key=True),
    sa.Column("kind", sa.String, primary_key=True, doc="render (a scheduled render failed) | delivery (not delivered to everyone)"
              " | expired (still not, when retry_for ran out)"),
    sa.Column("about", sa.String, primary_key=True, doc="the slot (render) or the edition date (delivery)"),
    sa.Column("recipient", sa.String, primary_key=True, doc="an on_failure address"),
    sa.Column("edition_date", sa.String, nullable=False),
    sa.Column("lang", sa.String, nullable=False),
    sa.Column("error", sa.Text, nullable=False, doc="what failed, as the notice tells it"),
    sa.Column("status", sa.String, nullable=False, doc="pending | sending | sent | failed | resolved"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("reply", sa.Text),
    sa.Column("message_id", sa.String),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.Column("owner", sa.String),
)

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.String, nullable=False, doc="UTC"),
    sa.Column("note", sa.Text, nullable=False, doc="what the migration did"),
)

# Version 2: what every scheduler reads on every wake-up or retry, indexed, so that a history
# of years on a shared server stays quick: runs still running (the start-up sweep), the runs of
# one edition (delivery, the retry window), undelivered messages and unsent notices.
V2_INDEXES = (
    sa.Index("ix_runs_status", runs.c.status),
    sa.Index("ix_runs_report_edition", runs.c.report, runs.c.edition_date),
    sa.Index("ix_deliveries_status", deliveries.c.status),
    sa.Index("ix_notices_status", notices.c.status),
)

# The columns of version 1, frozen: how a database from before versions were kept is recognised.
V1_COLUMNS = {
    "slots": ("report", "slot", "edition_date", "state", "run_id"),
    "runs": ("id", "report", "edition_date", "slot", "trigger", "started_at", "finished_at", "status", "error", "owner"),
    "cursors": ("report", "until"),
    "artifacts": ("run_id", "path", "lang", "format", "sha256", "size"),
    "deliveries": ("report", "edition_date", "lang", "recipient", "kind", "status", "attempts", "reply", "message_id",
                   "sha256", "updated_at", "forced", "owner", "content"),
    "notices": ("report", "kind", "about", "recipient", "edition_date", "lang", "error", "status", "attempts", "reply",
                "message_id", "created_at", "updated_at", "owner"),
}


def _v2(conn: sa.Connection) -> None:
    for index in V2_INDEXES:
        index.create(conn, checkfirst=True)


MIGRATIONS: dict[int, tuple[str, Callable[[sa.Connection], None]]] = {
    2: ("indexes on runs by status and by edition, on deliveries and notices by status", _v2),
}
VERSION = max(MIGRATIONS)
"""The schema this reporter reads and writes."""

_HISTORY_TABLES = set(V1_COLUMNS)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def current(conn: sa.Connection) -> tuple[int | None, set[str]]:
    """The database's version (None: not kept) and its tables."""
    tables = set(sa.inspect(conn).get_table_names())
    if schema_version.name not in tables:
        return None, tables
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar(), tables


def check_version(found: int | None, where: str) -> None:
    if found is not None and found > VERSION:
        raise StateError([Problem(where, "", f"the history database has schema version {found}, newer than this "
                                  f"reporter knows (up to {VERSION}): it was upgraded by a newer reporter; upgrade this "
                                  "one too")])


def upgrade(conn: sa.Connection, where: str) -> list[str]:
    """Bring the database on ``conn`` (inside a write transaction that serialises upgrades) up to
    :data:`VERSION`; return each step of an upgrade, one line each, for the log."""
    found, tables = current(conn)
    check_version(found, where)
    done: list[str] = []
    if found is None:
        if tables & _HISTORY_TABLES:
            inspector = sa.inspect(conn)
            missing = [f"{name}.{column}" for name in sorted(tables & _HISTORY_TABLES)
                       for column in V1_COLUMNS[name]
                       if column not in {c["name"] for c in inspector.get_columns(name)}]
            if missing:
                raise StateError([Problem(where, "", "the history database was made by a reporter too old to upgrade "
                                          f"(no column {', '.join(missing)}); move it aside to start a new one")])
            # The tables a version-1 database may lack were added by version 1 itself; make them now.
            metadata.create_all(conn, tables=[metadata.tables[name] for name in sorted(_HISTORY_TABLES - tables)])
            schema_version.create(conn)
            conn.execute(schema_version.insert().values(
                version=1, applied_at=_now(), note="found without a version: recognised as version 1"))
            found = 1
            done.append("recognised a history without a schema version as version 1")
        else:
            metadata.create_all(conn)
            conn.execute(schema_version.insert().values(version=VERSION, applied_at=_now(), note="created"))
            return []  # a new history is no news
    for version in range(found + 1, VERSION + 1):
        note, step = MIGRATIONS[version]
        step(conn)
        conn.execute(schema_version.insert().values(version=version, applied_at=_now(), note=note))
        done.append(f"upgraded the history to schema version {version}: {note}")
    return done
