"""The history: a ledger of runs, their artifacts, and deliveries, in SQLite (SQLAlchemy Core).

Everything goes through :class:`History`, a small storage interface, so that SQLite today and
PostgreSQL later differ only in the URL. SQLite runs in WAL mode with ``BEGIN IMMEDIATE``
transactions: a crash mid-write leaves the last committed state, and two processes that claim
the same scheduled slot cannot both win. A locked or damaged file raises
:class:`~reporter.errors.StateError`; it is never silently replaced.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
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

_MOVE_ASIDE = "move it aside, then `reporter adopt` rebuilds it from the editions on disk"

UNDELIVERED = ("pending", "sending", "failed")
"""Ledger statuses of a message the recipient does not have yet and that a scheduled retry may send."""


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
class NoticeRecord:
    report: str
    kind: str
    about: str
    recipient: str
    edition_date: str
    lang: str
    error: str
    status: str
    attempts: int
    reply: str | None
    message_id: str | None
    created_at: str
    updated_at: str
    owner: str | None = None


def check_writable(path: Path) -> None:
    """Raise :class:`StateError` unless the history at ``path`` and its folder can be written.

    SQLite opens a file it cannot write read-only without a word and fails only at the first
    write, which for ``reporter run`` is the first slot, hours later; a scheduler must find out
    at start-up. Root ignores permission bits, so this tries rather than asks ``os.access``.
    """
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError([Problem(str(path), "", f"cannot create its folder: {exc.strerror}")]) from None
    probe = None
    try:
        fd, probe = tempfile.mkstemp(prefix=".reporter-probe-", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"\0" * 4096)  # a page: an empty file would fit on a full disk
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            message = f"the state folder {folder} has no space left; free some, or set `state` in [project] to another place"
        else:
            message = (f"the state folder {folder} is not writable ({exc.strerror}); the history, its journal and the "
                       "scheduler lock live there: make it writable, or set `state` in [project] to a writable place")
        raise StateError([Problem(str(path), "", message)]) from None
    finally:
        if probe:
            Path(probe).unlink(missing_ok=True)
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.lock")):
        try:
            os.close(os.open(file, os.O_RDWR))
        except FileNotFoundError:
            continue
        except OSError as exc:
            hint = ("it is immutable or append-only (lsattr shows i or a): clear that with `chattr -i`"
                    if exc.errno == errno.EPERM else "make it writable")
            raise StateError([Problem(str(file), "", f"cannot be written ({exc.strerror}); {hint}")]) from None


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

    def check(self) -> None:
        """Read every page (``PRAGMA quick_check``); raise :class:`StateError` if any is damaged.

        SQLite reads only the pages a query needs, so a damaged page can go unnoticed for months
        until a write lands on it; a scheduler checks the whole file at start-up instead.
        """
        def quick_check(conn: sa.Connection) -> list[str]:
            return [str(row[0]) for row in conn.exec_driver_sql("PRAGMA quick_check")]
        try:
            with self._reader.begin() as conn:
                found = quick_check(conn)
        except DatabaseError as exc:
            if "locked" in str(exc.orig):
                raise self._error(exc) from None
            found = [str(exc.orig)]  # some damage stops the check itself
        if found != ["ok"]:
            # Rows read like "*** in database main ***\nPage 7: btreeInitPage() returns error code 11".
            lines = [line for row in found for line in row.splitlines() if line.strip() and not line.startswith("***")]
            more = f" and {len(lines) - 1} more" if len(lines) > 1 else ""
            raise StateError([Problem(self.where, "", f"the history database is damaged (quick_check: {lines[0]}{more}); "
                                      f"{_MOVE_ASIDE}")])

    def has_runs(self) -> bool:
        return self._run(lambda conn: conn.execute(sa.select(runs.c.id).limit(1)).first() is not None, readonly=True)

    def _error(self, exc: Exception) -> StateError:
        text = str(getattr(exc, "orig", exc))
        if "locked" in text:
            message = "the history database is locked by another process; try again"
        elif "not a database" in text or "malformed" in text:
            message = f"the history database is damaged ({text}); {_MOVE_ASIDE}"
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
                   files: Sequence[Any] = (), pending: Sequence[tuple[str, str, str]] = ()) -> None:
        """Record how a run ended and, for ``ok``, the artifacts it wrote.

        ``pending`` are (language, address, kind) of the recipients who must get the edition: each
        gets a ``pending`` ledger row in the same transaction, unless it has one already, so no
        edition is ever written without the ledger knowing who still needs it.
        """
        def finish(conn: sa.Connection) -> None:
            conn.execute(runs.update().where(runs.c.id == run_id).values(
                status=status, finished_at=_iso(now), error=error))
            conn.execute(slots.update().where(slots.c.run_id == run_id).values(state=status))
            for item in files:
                conn.execute(artifacts.insert().values(
                    run_id=run_id, path=str(item.path), lang=item.lang, format=item.format,
                    sha256=item.sha256, size=item.size))
            if pending:
                report, day = conn.execute(sa.select(runs.c.report, runs.c.edition_date).where(runs.c.id == run_id)).one()
                _add_pending(conn, report, day, pending, now)
        self._run(finish)

    def add_pending(self, report: str, edition_date: date, recipients: Sequence[tuple[str, str, str]],
                    now: datetime) -> None:
        """A ``pending`` row for each (language, address, kind) that has no row yet."""
        self._run(lambda conn: _add_pending(conn, report, edition_date.isoformat(), recipients, now))

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
                if row.status == "sent":
                    # The earlier delivery stays on record as it was (when it was sent, too);
                    # only the claim is new. A failed resend then leaves it untouched.
                    conn.execute(deliveries.update().where(*where).values(owner=_sender()))
                else:
                    conn.execute(deliveries.update().where(*where).values(status="sending", owner=_sender(),
                                                                          updated_at=_iso(now)))
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

    def undelivered(self, report: str | None = None) -> list[DeliveryRecord]:
        """Rows of messages not delivered yet that nobody is sending right now (pending, failed, or
        claimed by a process that died), oldest edition first."""
        def get(conn: sa.Connection) -> list[DeliveryRecord]:
            query = sa.select(deliveries).where(deliveries.c.status.in_(UNDELIVERED)).order_by(
                deliveries.c.edition_date, deliveries.c.report, deliveries.c.lang, deliveries.c.recipient)
            if report:
                query = query.where(deliveries.c.report == report)
            return [DeliveryRecord(**row) for row in conn.execute(query).mappings()]
        rows = self._run(get, readonly=True)
        return [row for row in rows if not (row.owner and owner_alive(row.owner))]

    def note_undelivered(self, report: str, edition_date: date, keys: Sequence[tuple[str, str]], reason: str,
                         now: datetime, *, status: str | None = None) -> None:
        """Say on the rows of (language, address) why they were not sent; ``status`` changes it too.

        A row that was ``sent`` meanwhile is left alone.
        """
        def note(conn: sa.Connection) -> None:
            values = dict(reply=reason, updated_at=_iso(now), owner=None) | ({"status": status} if status else {})
            for lang, recipient in keys:
                conn.execute(deliveries.update().where(
                    deliveries.c.report == report, deliveries.c.edition_date == edition_date.isoformat(),
                    deliveries.c.lang == lang, deliveries.c.recipient == recipient.lower(),
                    deliveries.c.status.in_(UNDELIVERED)).values(**values))
        self._run(note)

    def edition_written_at(self, report: str, edition_date: date) -> datetime | None:
        """When the first successful run of an edition finished: where its retry window starts."""
        def get(conn: sa.Connection) -> str | None:
            return conn.execute(sa.select(sa.func.min(runs.c.finished_at)).where(
                runs.c.report == report, runs.c.edition_date == edition_date.isoformat(), runs.c.status == "ok")).scalar()
        value = self._run(get, readonly=True)
        return datetime.fromisoformat(value) if value else None

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

    # --- adoption -----------------------------------------------------------------------

    def has_edition(self, report: str, edition_date: date) -> bool:
        def get(conn: sa.Connection) -> bool:
            return conn.execute(sa.select(runs.c.id).where(
                runs.c.report == report, runs.c.edition_date == edition_date.isoformat(),
                runs.c.status == "ok").limit(1)).first() is not None
        return self._run(get, readonly=True)

    def adopt_edition(self, report: str, edition_date: date, files: Sequence[Any], written_at: datetime,
                      now: datetime) -> int:
        """Record an edition found on disk as a successful run (trigger ``adopt``); return its id."""
        def adopt(conn: sa.Connection) -> int:
            run_id = conn.execute(runs.insert().values(
                report=report, edition_date=edition_date.isoformat(), slot=None, trigger="adopt",
                started_at=_iso(written_at), finished_at=_iso(written_at), status="ok", owner=owner(),
                error=f"adopted from the files on disk at {_iso(now)}")).inserted_primary_key[0]
            for item in files:
                conn.execute(artifacts.insert().values(
                    run_id=run_id, path=str(item.path), lang=item.lang, format=item.format, sha256=item.sha256, size=item.size))
            return run_id
        return self._run(adopt)

    def adopt_delivery(self, report: str, edition_date: date, lang: str, recipient: str, *, kind: str, status: str,
                       attempts: int, reply: str | None, at: datetime, message_id: str | None, sha256: str | None,
                       forced: bool, content: str | None) -> bool:
        """Add a delivery found in an edition's record, unless the ledger has a row for it; True if added."""
        key = dict(report=report, edition_date=edition_date.isoformat(), lang=lang, recipient=recipient.lower())

        def adopt(conn: sa.Connection) -> bool:
            if conn.execute(sa.select(deliveries.c.status).where(*[deliveries.c[k] == v for k, v in key.items()])).first():
                return False
            conn.execute(deliveries.insert().values(
                **key, kind=kind, status=status, attempts=attempts, reply=reply, message_id=message_id,
                sha256=sha256, updated_at=_iso(at), forced=forced, owner=None, content=content))
            return True
        return self._run(adopt)

    # --- failure notices ----------------------------------------------------------------

    def add_notice(self, report: str, kind: str, about: str, recipient: str, *, edition_date: date, lang: str,
                   error: str, now: datetime) -> bool:
        """Queue a failure notice unless this one was queued before (each is sent once); True if new."""
        def add(conn: sa.Connection) -> bool:
            key = [notices.c.report == report, notices.c.kind == kind, notices.c.about == about,
                   notices.c.recipient == recipient.lower()]
            if conn.execute(sa.select(notices.c.status).where(*key)).first():
                return False
            conn.execute(notices.insert().values(
                report=report, kind=kind, about=about, recipient=recipient.lower(), edition_date=edition_date.isoformat(),
                lang=lang, error=error, status="pending", attempts=0, created_at=_iso(now), updated_at=_iso(now)))
            return True
        return self._run(add)

    def notices(self, report: str | None = None, *, unsent: bool = False) -> list[NoticeRecord]:
        """Failure notices, newest first; with ``unsent``, those still to send that nobody is sending."""
        def get(conn: sa.Connection) -> list[NoticeRecord]:
            query = sa.select(notices).order_by(notices.c.created_at.desc(), notices.c.recipient)
            if report:
                query = query.where(notices.c.report == report)
            if unsent:
                query = query.where(notices.c.status.in_(UNDELIVERED))
            return [NoticeRecord(**row) for row in conn.execute(query).mappings()]
        rows = self._run(get, readonly=True)
        return [r for r in rows if not (unsent and r.owner and owner_alive(r.owner))]

    def claim_notice(self, notice: NoticeRecord, now: datetime) -> bool:
        """Take a notice to send it; False if it was sent or another live process has it."""
        def claim(conn: sa.Connection) -> bool:
            where = [notices.c.report == notice.report, notices.c.kind == notice.kind,
                     notices.c.about == notice.about, notices.c.recipient == notice.recipient]
            row = conn.execute(sa.select(notices.c.status, notices.c.owner).where(*where)).first()
            if row is None or row.status not in UNDELIVERED or (row.owner and row.owner != _sender() and owner_alive(row.owner)):
                return False
            conn.execute(notices.update().where(*where).values(status="sending", owner=_sender(), updated_at=_iso(now)))
            return True
        return self._run(claim)

    def record_notice(self, notice: NoticeRecord, *, status: str, attempts: int, reply: str | None, now: datetime,
                      message_id: str | None = None) -> None:
        def record(conn: sa.Connection) -> None:
            conn.execute(notices.update().where(
                notices.c.report == notice.report, notices.c.kind == notice.kind, notices.c.about == notice.about,
                notices.c.recipient == notice.recipient).values(
                status=status, attempts=attempts, reply=reply, message_id=message_id, updated_at=_iso(now), owner=None))
        self._run(record)


def _add_pending(conn: sa.Connection, report: str, day: str, recipients: Sequence[tuple[str, str, str]],
                 now: datetime) -> None:
    for lang, recipient, kind in recipients:
        key = dict(report=report, edition_date=day, lang=lang, recipient=recipient.lower())
        if not conn.execute(sa.select(deliveries.c.status).where(*[deliveries.c[k] == v for k, v in key.items()])).first():
            conn.execute(deliveries.insert().values(**key, kind=kind, status="pending", attempts=0,
                                                    updated_at=_iso(now), forced=False))
