"""The history: a ledger of runs, their artifacts, and deliveries, in SQLite (SQLAlchemy Core).

Everything goes through :class:`History`, a small storage interface, so that SQLite today and
PostgreSQL later differ only in the URL. SQLite runs in WAL mode with ``BEGIN IMMEDIATE``
transactions: a crash mid-write leaves the last committed state, and two processes that claim
the same scheduled slot cannot both win. A locked or damaged file raises
:class:`~reporter.errors.StateError`; it is never silently replaced.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError

from ..errors import Problem, StateError
from ..liveness import pid_alive

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
    sa.Column("status", sa.String, nullable=False, doc="pending | sent | failed | rejected"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("reply", sa.Text, doc="the server's last reply, e.g. '250 OK' or '550 no such user'"),
    sa.Column("message_id", sa.String),
    sa.Column("sha256", sa.String, doc="sha256 of the attached PDF"),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.Column("forced", sa.Boolean, nullable=False, default=False),
    sa.Column("owner", sa.String, doc="host:pid of the process sending it now (status 'sending')"),
    sa.Column("content", sa.String, doc="digest of what the edition says (data and texts), for send_if"),
)

def owner() -> str:
    """This process, as recorded against what it is doing (``host:pid``); forks get their own."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _sender() -> str:
    # Per thread: the scheduler may deliver two editions of one report side by side.
    return f"{owner()}/{threading.get_ident()}"


def owner_alive(name: str) -> bool:
    """Whether the process named by :func:`owner` still runs (unknown hosts count as gone)."""
    host, _, pid = name.split("/")[0].rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and pid_alive(int(pid))


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ArtifactRecord:
    path: str
    lang: str
    format: str
    sha256: str
    size: int


@dataclass(frozen=True)
class RunRecord:
    id: int
    report: str
    edition_date: str
    slot: str | None
    trigger: str
    started_at: str
    finished_at: str | None
    status: str
    error: str | None
    owner: str
    artifacts: tuple[ArtifactRecord, ...] = ()


@dataclass(frozen=True)
class DeliveryRecord:
    report: str
    edition_date: str
    lang: str
    recipient: str
    kind: str
    status: str
    attempts: int
    reply: str | None
    message_id: str | None
    sha256: str | None
    updated_at: str
    forced: bool
    owner: str | None = None
    content: str | None = None


class History:
    """The run and delivery ledger behind a database URL (``sqlite:///path`` by default)."""

    def __init__(self, url: str, *, where: str | None = None) -> None:
        self.where = where or url
        self.engine = sa.create_engine(url, connect_args={"timeout": 10} if url.startswith("sqlite") else {})
        if url.startswith("sqlite"):
            self._sqlite_pragmas()
        self._reader = self.engine.execution_options(readonly=True)
        try:
            # Check with a read first: creating takes the write lock, which a reader must not wait for.
            with self._reader.connect() as conn:
                inspector = sa.inspect(conn)
                existing = set(inspector.get_table_names())
                outdated = [f"{name}.{column}" for name in existing & set(metadata.tables)
                            for column in metadata.tables[name].columns.keys()
                            if column not in {c["name"] for c in inspector.get_columns(name)}]
            if outdated:
                # No migrations yet: say so rather than fail later on a missing column.
                raise StateError([Problem(self.where, "", "the history database was made by an older reporter "
                                          f"(no column {', '.join(outdated)}); move it aside to start a new one")])
            if not set(metadata.tables) <= existing:
                metadata.create_all(self.engine)
        except DatabaseError as exc:
            raise self._error(exc) from None

    @classmethod
    def at(cls, path: Path) -> "History":
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError([Problem(str(path), "", f"cannot create its folder: {exc.strerror}")]) from None
        if path.is_dir():
            raise StateError([Problem(str(path), "", "is a folder, not a history database file")])
        return cls(f"sqlite:///{path}", where=str(path))

    def _sqlite_pragmas(self) -> None:
        # pysqlite's own transaction handling defers BEGIN; take control so every write
        # transaction is BEGIN IMMEDIATE (the documented SQLAlchemy recipe).
        @event.listens_for(self.engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _begin(connection: Any) -> None:
            # Writers take the write lock up front; readers use WAL's snapshot and never wait.
            readonly = connection.get_execution_options().get("readonly")
            connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    def _error(self, exc: Exception) -> StateError:
        text = str(getattr(exc, "orig", exc))
        if "locked" in text:
            message = "the history database is locked by another process; try again"
        elif "not a database" in text or "malformed" in text:
            message = f"the history database is damaged ({text}); move it aside to start a new one"
        else:
            message = f"cannot use the history database: {text}"
        return StateError([Problem(self.where, "", message)])

    def _run(self, fn, *, readonly: bool = False):
        try:
            with (self._reader if readonly else self.engine).begin() as conn:
                return fn(conn)
        except (OperationalError, DatabaseError) as exc:
            if isinstance(exc, IntegrityError):
                raise
            raise self._error(exc) from None

    def close(self) -> None:
        self.engine.dispose()

    # --- runs ---------------------------------------------------------------------------

    def start_run(self, report: str, edition_date: date, trigger: str, now: datetime,
                  slot: str | None = None) -> int | None:
        """Record a run as started and return its id.

        With a ``slot``, first claims it: returns ``None`` if that slot already ran (``ok``,
        ``failed``, ``skipped``) or is running, so a slot never runs twice. An ``abandoned``
        slot (its process died) may be claimed again.
        """
        def claim(conn: sa.Connection) -> int | None:
            slot_key = slot
            if slot_key:
                row = conn.execute(sa.select(slots.c.state).where(
                    slots.c.report == report, slots.c.slot == slot_key)).first()
                if row and row.state != "abandoned":
                    return None
            run_id = conn.execute(runs.insert().values(
                report=report, edition_date=edition_date.isoformat(), slot=slot_key, trigger=trigger,
                started_at=_iso(now), status="running", owner=owner())).inserted_primary_key[0]
            if slot_key:
                values = dict(edition_date=edition_date.isoformat(), state="running", run_id=run_id)
                updated = conn.execute(slots.update().where(
                    slots.c.report == report, slots.c.slot == slot_key).values(**values)).rowcount
                if not updated:
                    conn.execute(slots.insert().values(report=report, slot=slot_key, **values))
            return run_id
        return self._run(claim)

    def skip_slot(self, report: str, edition_date: date, slot: str, now: datetime, reason: str,
                  trigger: str = "catch-up") -> bool:
        """Record a slot as skipped (catch-up policy); False if it was already decided."""
        run_id = self.start_run(report, edition_date, trigger, now, slot)
        if run_id is None:
            return False
        self.finish_run(run_id, "skipped", now, error=reason)
        return True

    def finish_run(self, run_id: int, status: str, now: datetime, *, error: str | None = None,
                   files: Sequence[Any] = ()) -> None:
        """Record how a run ended and, for ``ok``, the artifacts it wrote."""
        def finish(conn: sa.Connection) -> None:
            conn.execute(runs.update().where(runs.c.id == run_id).values(
                status=status, finished_at=_iso(now), error=error))
            conn.execute(slots.update().where(slots.c.run_id == run_id).values(state=status))
            for item in files:
                conn.execute(artifacts.insert().values(
                    run_id=run_id, path=str(item.path), lang=item.lang, format=item.format,
                    sha256=item.sha256, size=item.size))
        self._run(finish)

    def abandon_running(self, now: datetime) -> list[tuple[int, str, str]]:
        """Mark runs whose process is gone as ``abandoned``; return (id, report, edition date) of each.

        Called at start-up by the process holding the scheduler lock. Scheduled runs are only
        ever started by that lock's holder, so any still ``running`` belong to a process that
        died (``kill -9``, power loss), even if its pid has since been reused. A manual render
        (no slot) may be in progress in another process: that one is checked with :func:`owner_alive`.
        """
        def sweep(conn: sa.Connection) -> list[tuple[int, str, str]]:
            rows = conn.execute(sa.select(runs.c.id, runs.c.owner, runs.c.slot, runs.c.report, runs.c.edition_date)
                                .where(runs.c.status == "running")).all()
            dead = [row for row in rows if row.slot is not None or not owner_alive(row.owner)]
            stale = [row.id for row in dead]
            if stale:
                conn.execute(runs.update().where(runs.c.id.in_(stale)).values(
                    status="abandoned", finished_at=_iso(now), error="the process running it stopped before it finished"))
                conn.execute(slots.update().where(slots.c.run_id.in_(stale)).values(state="abandoned"))
            return [(row.id, row.report, row.edition_date) for row in dead]
        return self._run(sweep)

    def evaluated_until(self, report: str) -> datetime | None:
        """Up to when a report's due slots were last decided; ``None`` before the first time."""
        def get(conn: sa.Connection) -> datetime | None:
            value = conn.execute(sa.select(cursors.c.until).where(cursors.c.report == report)).scalar()
            return datetime.fromisoformat(value) if value else None
        return self._run(get, readonly=True)

    def set_evaluated_until(self, report: str, moment: datetime) -> None:
        """Move the report's cursor forward to ``moment``; it never moves back."""
        def put(conn: sa.Connection) -> None:
            value = moment.astimezone(timezone.utc).isoformat()
            old = conn.execute(sa.select(cursors.c.until).where(cursors.c.report == report)).scalar()
            if old is None:
                conn.execute(cursors.insert().values(report=report, until=value))
            elif datetime.fromisoformat(old) < moment:
                conn.execute(cursors.update().where(cursors.c.report == report).values(until=value))
        self._run(put)

    def slots_in_state(self, report: str, state: str) -> list[str]:
        def get(conn: sa.Connection) -> list[str]:
            return list(conn.execute(sa.select(slots.c.slot).where(slots.c.report == report, slots.c.state == state)).scalars())
        return self._run(get, readonly=True)

    def runs(self, report: str | None = None, limit: int = 50) -> list[RunRecord]:
        """The newest runs first, each with its artifacts."""
        def get(conn: sa.Connection) -> list[RunRecord]:
            query = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
            if report:
                query = query.where(runs.c.report == report)
            rows = conn.execute(query).mappings().all()
            files: dict[int, list[ArtifactRecord]] = {}
            if rows:
                for a in conn.execute(sa.select(artifacts).where(artifacts.c.run_id.in_([r["id"] for r in rows]))).mappings():
                    files.setdefault(a["run_id"], []).append(ArtifactRecord(a["path"], a["lang"], a["format"], a["sha256"], a["size"]))
            return [RunRecord(**r, artifacts=tuple(files.get(r["id"], ()))) for r in rows]
        return self._run(get, readonly=True)

    # --- deliveries ---------------------------------------------------------------------

    def delivery(self, report: str, edition_date: date, lang: str, recipient: str) -> DeliveryRecord | None:
        def get(conn: sa.Connection) -> DeliveryRecord | None:
            row = conn.execute(sa.select(deliveries).where(
                deliveries.c.report == report, deliveries.c.edition_date == edition_date.isoformat(),
                deliveries.c.lang == lang, deliveries.c.recipient == recipient.lower())).mappings().first()
            return DeliveryRecord(**row) if row else None
        return self._run(get, readonly=True)

    def claim_delivery(self, report: str, edition_date: date, lang: str, recipient: str, *, kind: str,
                       now: datetime, force: bool = False) -> str | None:
        """Claim the right to send one recipient their message; ``None`` if this process got it.

        Otherwise says why not: ``"sent"`` (already delivered; ``force`` overrides) or
        ``"sending"`` (another live process is sending it right now). One transaction, so two
        processes delivering the same edition at once cannot both send.
        """
        key = dict(report=report, edition_date=edition_date.isoformat(), lang=lang, recipient=recipient.lower())

        def claim(conn: sa.Connection) -> str | None:
            where = [deliveries.c[k] == v for k, v in key.items()]
            row = conn.execute(sa.select(deliveries.c.status, deliveries.c.owner).where(*where)).first()
            if row and row.owner and row.owner != _sender() and owner_alive(row.owner):
                return "sending"
            if row and row.status == "sent" and not force:
                return "sent"
            if row:
                # A forced resend keeps the row "sent" while it goes: the earlier copy was delivered.
                status = row.status if row.status == "sent" else "sending"
                conn.execute(deliveries.update().where(*where).values(status=status, owner=_sender(), updated_at=_iso(now)))
            else:
                conn.execute(deliveries.insert().values(**key, kind=kind, status="sending", attempts=0,
                                                        owner=_sender(), updated_at=_iso(now)))
            return None
        return self._run(claim)

    def release_delivery(self, report: str, edition_date: date, lang: str, recipient: str) -> None:
        """Give up a claim without sending (the message could not even be built)."""
        def release(conn: sa.Connection) -> None:
            conn.execute(deliveries.update().where(
                deliveries.c.report == report, deliveries.c.edition_date == edition_date.isoformat(),
                deliveries.c.lang == lang, deliveries.c.recipient == recipient.lower(),
                deliveries.c.owner == _sender()).values(owner=None))
        self._run(release)

    def unfinished_deliveries(self, report: str) -> list[date]:
        """Editions with a message claimed by a process that died before it finished sending."""
        def get(conn: sa.Connection) -> list[tuple[str, str | None]]:
            return conn.execute(sa.select(deliveries.c.edition_date, deliveries.c.owner).where(
                deliveries.c.report == report, deliveries.c.status.in_(("sending", "pending")))).all()
        rows = self._run(get, readonly=True)
        return sorted({date.fromisoformat(day) for day, who in rows if not (who and owner_alive(who))})

    def record_delivery(self, report: str, edition_date: date, lang: str, recipient: str, *, kind: str,
                        status: str, attempts: int, reply: str | None, now: datetime,
                        message_id: str | None = None, sha256: str | None = None, forced: bool = False,
                        content: str | None = None) -> None:
        """Insert or update the one ledger row of (report, edition, language, recipient); ends any claim."""
        key = dict(report=report, edition_date=edition_date.isoformat(), lang=lang, recipient=recipient.lower())
        values = dict(kind=kind, status=status, attempts=attempts, reply=reply, message_id=message_id,
                      sha256=sha256, updated_at=_iso(now), forced=forced, owner=None, content=content)

        def upsert(conn: sa.Connection) -> None:
            where = [deliveries.c[k] == v for k, v in key.items()]
            if not conn.execute(deliveries.update().where(*where).values(**values)).rowcount:
                conn.execute(deliveries.insert().values(**key, **values))
        self._run(upsert)

    def deliveries(self, report: str | None = None, edition_date: date | None = None) -> list[DeliveryRecord]:
        def get(conn: sa.Connection) -> list[DeliveryRecord]:
            query = sa.select(deliveries).order_by(deliveries.c.edition_date.desc(), deliveries.c.lang, deliveries.c.recipient)
            if report:
                query = query.where(deliveries.c.report == report)
            if edition_date:
                query = query.where(deliveries.c.edition_date == edition_date.isoformat())
            return [DeliveryRecord(**row) for row in conn.execute(query).mappings()]
        return self._run(get, readonly=True)

    def last_sent_content(self, report: str, lang: str, recipient: str, before: date) -> str | None:
        """What the newest earlier edition delivered to this recipient said (for send_if = "changed")."""
        def get(conn: sa.Connection) -> str | None:
            row = conn.execute(sa.select(deliveries.c.content).where(
                deliveries.c.report == report, deliveries.c.lang == lang, deliveries.c.recipient == recipient.lower(),
                deliveries.c.status.in_(("sent", "unchanged")), deliveries.c.edition_date < before.isoformat())
                .order_by(deliveries.c.edition_date.desc()).limit(1)).first()
            return row.content if row else None
        return self._run(get, readonly=True)

    def latest_pdf(self, report: str, edition_date: date, lang: str) -> tuple[int, ArtifactRecord] | None:
        """The PDF in ``lang`` of the newest successful run of an edition that wrote one."""
        def get(conn: sa.Connection):
            return conn.execute(sa.select(runs.c.id, artifacts).join(artifacts, artifacts.c.run_id == runs.c.id).where(
                runs.c.report == report, runs.c.edition_date == edition_date.isoformat(), runs.c.status == "ok",
                artifacts.c.lang == lang, artifacts.c.format == "pdf").order_by(runs.c.id.desc()).limit(1)).mappings().first()
        row = self._run(get, readonly=True)
        if row is None:
            return None
        return row["id"], ArtifactRecord(row["path"], row["lang"], row["format"], row["sha256"], row["size"])
