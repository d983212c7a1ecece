"""The history: a ledger of runs, their artifacts, and deliveries, over SQLAlchemy Core.

Everything goes through :class:`History`, a small storage interface; callers do not know which
database is behind it. SQLite (the default) runs in WAL mode with ``BEGIN IMMEDIATE``
transactions: a crash mid-write leaves the last committed state, and two processes that claim
the same scheduled slot cannot both win. PostgreSQL (``REPORTER_STATE_URL``) is shared by
several hosts: there every claim locks the row it decides on, and a claim's owner is alive while
its process holds its presence lock (:mod:`.backend`). A locked, damaged or unreachable database
raises :class:`~reporter.errors.StateError`; it is never silently replaced.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, DatabaseError, IntegrityError, OperationalError

from ..errors import Problem, StateError
from ..liveness import pid_alive
from . import schema
from .backend import (Session, close_session, current_schema, engine_for, fenced, live_keys, open_session, pg_problem,
                      presence_key, serialise_upgrade)
from .schema import artifacts, cursors, deliveries, metadata, notices, runs, slots  # noqa: F401 - metadata for callers
from .target import StateTarget, node, owner, parse_url, sqlite_target

_MOVE_ASIDE = "move it aside, then `reporter adopt` rebuilds it from the editions on disk"

UNDELIVERED = ("pending", "sending", "failed")
"""Ledger statuses of a message the recipient does not have yet and that a scheduled retry may send."""


def _sender() -> str:
    # Per thread: the scheduler may deliver two editions of one report side by side.
    return f"{owner()}/{threading.get_ident()}"


def owner_alive(name: str) -> bool:
    """With SQLite: whether the process named by :func:`owner` still runs (other hosts count as gone,
    since a SQLite history has one host)."""
    host, _, pid = name.split("/")[0].rpartition(":")
    return host == node() and pid.isdigit() and pid_alive(int(pid))


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
    """The run and delivery ledger behind a database: a SQLite file, or a PostgreSQL database."""

    def __init__(self, target: StateTarget | str, *, where: str | None = None) -> None:
        if isinstance(target, str):
            target = (sqlite_target(Path(target.removeprefix("sqlite:///"))) if target.startswith("sqlite:///")
                      else parse_url(target))
        self.target = target
        self.where = where or target.where
        self.location = target.shown  # what may be printed: the file, or the URL without its password
        self.postgres = target.postgres
        self._session: Session | None = None
        self._session_lock = threading.Lock()
        self._fence = False
        self.upgraded: list[str] = []
        self.engine = engine_for(target)
        self._reader = self.engine.execution_options(readonly=True)
        try:
            # Check with a read first: an upgrade takes the write lock, which a reader must not wait for.
            with self._reader.connect() as conn:
                found, _tables = schema.current(conn)
                self.schema = current_schema(conn) if self.postgres else None
            schema.check_version(found, self.where)
            if found != schema.VERSION:
                with self.engine.begin() as conn:
                    if self.postgres:
                        serialise_upgrade(conn)
                    self.upgraded = schema.upgrade(conn, self.where)
        except DBAPIError as exc:
            self.engine.dispose()
            raise self._error(exc) from exc

    @classmethod
    def open(cls, target: StateTarget) -> "History":
        """The history at ``target``: a SQLite file (its folder made if needed), or a PostgreSQL database."""
        if target.postgres:
            return cls(target)
        return cls.at(target.path)

    @classmethod
    def at(cls, path: Path) -> "History":
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError([Problem(str(path), "", f"cannot create its folder: {exc.strerror}")]) from None
        if path.is_dir():
            raise StateError([Problem(str(path), "", "is a folder, not a history database file")])
        return cls(sqlite_target(path))

    def check(self) -> None:
        """Read every page (``PRAGMA quick_check``); raise :class:`StateError` if any is damaged.

        SQLite reads only the pages a query needs, so a damaged page can go unnoticed for months
        until a write lands on it; a scheduler checks the whole file at start-up instead. A
        PostgreSQL server checks its own pages; there, this only proves that the database answers.
        """
        if self.postgres:
            self._run(lambda conn: conn.exec_driver_sql("SELECT 1").scalar(), readonly=True)
            return

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

    def _error(self, exc: DBAPIError) -> StateError:
        if self.postgres:
            return pg_problem(self.target, exc)
        text = str(exc.orig)  # the driver's words, without SQLAlchemy's statement and link
        if "locked" in text:
            message = "the history database is locked by another process; try again"
        elif "not a database" in text or "malformed" in text:
            message = f"the history database is damaged ({text}); {_MOVE_ASIDE}"
        else:
            message = f"cannot use the history database: {text}"
        return StateError([Problem(self.where, "", message)])

    def _run(self, fn: Callable[[sa.Connection], Any], *, readonly: bool = False) -> Any:
        try:
            with (self._reader if readonly else self.engine).begin() as conn:
                return fn(conn)
        except (OperationalError, DatabaseError) as exc:
            if isinstance(exc, IntegrityError):
                raise
            raise self._error(exc) from exc

    def close(self) -> None:
        with self._session_lock:
            if self._session is not None:
                close_session(self._session)
                self._session = None
        self.engine.dispose()

    # --- who is alive, who leads (PostgreSQL) ----------------------------------------------

    def session(self) -> Session | None:
        """This process's session connection to a PostgreSQL state (made at first need); None with SQLite.

        Made before this process records itself as the owner of anything, so that others can
        tell while it lives.
        """
        if not self.postgres:
            return None
        with self._session_lock:
            if self._session is None:
                self._session = open_session(self.target)
            return self._session

    def drop_session(self) -> None:
        """Forget a session whose connection failed; the next :meth:`session` makes a new one."""
        with self._session_lock:
            if self._session is not None:
                close_session(self._session, broken=True)
                self._session = None

    def lead(self) -> None:
        """From now on, claim slots only while this process's session holds the leader lock.

        Checked inside each claim's transaction, by the server: a scheduler that lost its
        connection, and with it the lead, can never claim another slot, even before it notices.
        """
        self._fence = self.postgres

    def _alive(self, conn: sa.Connection | None = None) -> Callable[[str], bool]:
        """A test of whether the process that recorded an owner still runs, as of now (on ``conn``, if given)."""
        if not self.postgres:
            return owner_alive
        me = owner()
        held = live_keys(conn) if conn is not None else self._run(live_keys, readonly=True)
        return lambda name: name.split("/")[0] == me or presence_key(self.schema, name) in held

    # --- runs ---------------------------------------------------------------------------

    def start_run(self, report: str, edition_date: date, trigger: str, now: datetime,
                  slot: str | None = None) -> int | None:
        """Record a run as started and return its id.

        With a ``slot``, first claims it: returns ``None`` if that slot already ran (``ok``,
        ``failed``, ``skipped``) or is running, so a slot never runs twice. An ``abandoned``
        slot (its process died) may be claimed again.
        """
        session = self.session()  # present before anything is recorded under this process's name

        def claim(conn: sa.Connection) -> int | None:
            if slot:
                if self._fence and not fenced(conn, session):
                    raise StateError([Problem(self.where, "", f"{report} slot {slot}: not claimed, because this scheduler "
                                              "no longer leads (its connection to the state database was lost)")])
                # The slot's row is inserted, or locked if it exists, before it is decided: two
                # processes claiming the same slot queue here, and the second sees the first's claim.
                inserted = _added(conn, _insert(conn, slots).values(
                    report=report, slot=slot, edition_date=edition_date.isoformat(), state="running", run_id=None),
                    ["report", "slot"])
                if not inserted:
                    state = conn.execute(sa.select(slots.c.state).where(
                        slots.c.report == report, slots.c.slot == slot).with_for_update()).scalar()
                    if state != "abandoned":
                        return None
            run_id = conn.execute(runs.insert().values(
                report=report, edition_date=edition_date.isoformat(), slot=slot, trigger=trigger,
                started_at=_iso(now), status="running", owner=owner())).inserted_primary_key[0]
            if slot:
                conn.execute(slots.update().where(slots.c.report == report, slots.c.slot == slot).values(
                    edition_date=edition_date.isoformat(), state="running", run_id=run_id))
            return run_id
        return self._run(claim)

    def skip_slot(self, report: str, edition_date: date, slot: str, now: datetime, reason: str, trigger: str) -> bool:
        """Record a slot as skipped (catch-up policy); False if it was already decided."""
        run_id = self.start_run(report, edition_date, trigger, now, slot)
        if run_id is None:
            return False
        self.finish_run(run_id, "skipped", now, error=reason)
        return True

    def finish_run(self, run_id: int, status: str, now: datetime, *, error: str | None = None,
                   files: Sequence[Any] = (), pending: Sequence[tuple[str, str, str]] = ()) -> bool:
        """Record how a run ended and, for ``ok``, the artifacts it wrote; False if it was no longer running.

        ``pending`` are (language, address, kind) of the recipients who must get the edition: each
        gets a ``pending`` ledger row in the same transaction, unless it has one already, so no
        edition is ever written without the ledger knowing who still needs it.

        A run recorded as abandoned meanwhile keeps that verdict: its scheduler lost the lead, and
        the new leader took its slot over.
        """
        def finish(conn: sa.Connection) -> bool:
            if not conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "running").values(
                    status=status, finished_at=_iso(now), error=error)).rowcount:
                return False
            conn.execute(slots.update().where(slots.c.run_id == run_id).values(state=status))
            for item in files:
                conn.execute(artifacts.insert().values(
                    run_id=run_id, path=str(item.path), lang=item.lang, format=item.format,
                    sha256=item.sha256, size=item.size))
            if pending:
                report, day = conn.execute(sa.select(runs.c.report, runs.c.edition_date).where(runs.c.id == run_id)).one()
                _add_pending(conn, report, day, pending, now)
            return True
        return self._run(finish)

    def abandon_running(self, now: datetime) -> list[tuple[int, str, str]]:
        """Mark runs whose process is gone as ``abandoned``; return (id, report, edition date) of each.

        Called at start-up by the process holding the scheduler lock. Scheduled runs are only
        ever started by that lock's holder. With SQLite, that is this host's ``flock``, so any
        still ``running`` belong to a process that died (``kill -9``, power loss), even if its pid
        has since been reused; a manual render (no slot) may be in progress in another process:
        that one is checked with :func:`owner_alive`. With PostgreSQL, the runs may be any
        host's: a run is abandoned when its process holds no presence lock, which it held on the
        same connection as the leader lock, so a run of the leader before this one is always
        found abandoned, and a manual render on a live host never is.
        """
        def sweep(conn: sa.Connection) -> list[tuple[int, str, str]]:
            rows = conn.execute(sa.select(runs.c.id, runs.c.owner, runs.c.slot, runs.c.report, runs.c.edition_date)
                                .where(runs.c.status == "running")).all()
            if self.postgres:
                alive = self._alive(conn)
                dead = [row for row in rows if not alive(row.owner)]
            else:
                dead = [row for row in rows if row.slot is not None or not owner_alive(row.owner)]
            stale = [row.id for row in dead]
            if stale:
                conn.execute(runs.update().where(runs.c.id.in_(stale), runs.c.status == "running").values(
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
            if _added(conn, _insert(conn, cursors).values(report=report, until=value), ["report"]):
                return
            old = conn.execute(sa.select(cursors.c.until).where(cursors.c.report == report).with_for_update()).scalar()
            if datetime.fromisoformat(old) < moment:
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
        self.session()  # present before a row names this process as its sender

        def claim(conn: sa.Connection) -> str | None:
            where = [deliveries.c[k] == v for k, v in key.items()]
            # The row is locked while this is decided (or inserted, if there was none): a second
            # sender waits here and then sees the first one's claim.
            row = conn.execute(sa.select(deliveries.c.status, deliveries.c.owner).where(*where).with_for_update()).first()
            if row is None:
                if _added(conn, _insert(conn, deliveries).values(
                        **key, kind=kind, status="sending", attempts=0, owner=_sender(), updated_at=_iso(now)), key):
                    return None
                row = conn.execute(sa.select(deliveries.c.status, deliveries.c.owner).where(*where).with_for_update()).one()
            if row.owner and row.owner != _sender() and self._alive(conn)(row.owner):
                return "sending"
            if row.status == "sent" and not force:
                return "sent"
            if row.status == "sent":
                # A forced resend: the earlier delivery stays on record as it was (when it was
                # sent, too); only the claim is new, so a failed resend leaves it untouched.
                conn.execute(deliveries.update().where(*where).values(owner=_sender()))
            else:
                conn.execute(deliveries.update().where(*where).values(status="sending", owner=_sender(),
                                                                      updated_at=_iso(now)))
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
            conn.execute(_insert(conn, deliveries).values(**key, **values)
                         .on_conflict_do_update(index_elements=list(key), set_=values))
        self._run(upsert)

    def undelivered(self) -> list[DeliveryRecord]:
        """Rows of messages not delivered yet that nobody is sending right now (pending, failed, or
        claimed by a process that died), oldest edition first."""
        def get(conn: sa.Connection) -> list[DeliveryRecord]:
            query = sa.select(deliveries).where(deliveries.c.status.in_(UNDELIVERED)).order_by(
                deliveries.c.edition_date, deliveries.c.report, deliveries.c.lang, deliveries.c.recipient)
            return [DeliveryRecord(**row) for row in conn.execute(query).mappings()]
        rows = self._run(get, readonly=True)
        alive = self._alive()
        return [row for row in rows if not (row.owner and alive(row.owner))]

    def note_undelivered(self, report: str, edition_date: date, keys: Sequence[tuple[str, str]], reason: str,
                         now: datetime, *, status: str | None = None) -> None:
        """Say on the rows of (language, address) why they were not sent; ``status`` changes it too.

        A row that was ``sent`` meanwhile is left alone, and so is one that another live process
        is sending right now: its claim stands.
        """
        def note(conn: sa.Connection) -> None:
            values = dict(reply=reason, updated_at=_iso(now), owner=None) | ({"status": status} if status else {})
            alive = self._alive(conn)
            for lang, recipient in keys:
                where = [deliveries.c.report == report, deliveries.c.edition_date == edition_date.isoformat(),
                         deliveries.c.lang == lang, deliveries.c.recipient == recipient.lower(),
                         deliveries.c.status.in_(UNDELIVERED)]
                row = conn.execute(sa.select(deliveries.c.owner).where(*where).with_for_update()).first()
                if row is None or (row.owner and row.owner != _sender() and alive(row.owner)):
                    continue
                conn.execute(deliveries.update().where(*where).values(**values))
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
            return _added(conn, _insert(conn, deliveries).values(
                **key, kind=kind, status=status, attempts=attempts, reply=reply, message_id=message_id,
                sha256=sha256, updated_at=_iso(at), forced=forced, owner=None, content=content), key)
        return self._run(adopt)

    # --- failure notices ----------------------------------------------------------------

    def add_notice(self, report: str, kind: str, about: str, recipient: str, *, edition_date: date, lang: str,
                   error: str, now: datetime) -> bool:
        """Queue a failure notice unless this one was queued before (each is sent once); True if new."""
        def add(conn: sa.Connection) -> bool:
            return _added(conn, _insert(conn, notices).values(
                report=report, kind=kind, about=about, recipient=recipient.lower(), edition_date=edition_date.isoformat(),
                lang=lang, error=error, status="pending", attempts=0, created_at=_iso(now), updated_at=_iso(now)),
                ["report", "kind", "about", "recipient"])
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
        if not unsent:
            return rows
        alive = self._alive()
        return [r for r in rows if not (r.owner and alive(r.owner))]

    def claim_notice(self, notice: NoticeRecord, now: datetime) -> bool:
        """Take a notice to send it; False if it was sent or another live process has it."""
        self.session()

        def claim(conn: sa.Connection) -> bool:
            where = [notices.c.report == notice.report, notices.c.kind == notice.kind,
                     notices.c.about == notice.about, notices.c.recipient == notice.recipient]
            row = conn.execute(sa.select(notices.c.status, notices.c.owner).where(*where).with_for_update()).first()
            if row is None or row.status not in UNDELIVERED or (
                    row.owner and row.owner != _sender() and self._alive(conn)(row.owner)):
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
        conn.execute(_insert(conn, deliveries).values(**key, kind=kind, status="pending", attempts=0,
                                                      updated_at=_iso(now), forced=False)
                     .on_conflict_do_nothing(index_elements=list(key)))


def _added(conn: sa.Connection, insert: Any, keys: Sequence[str]) -> bool:
    """Run ``insert`` unless its row exists (by ``keys``); True if it added the row.

    Told by RETURNING, not rowcount: drivers need not count the rows of an INSERT.
    """
    return conn.execute(insert.on_conflict_do_nothing(index_elements=list(keys))
                        .returning(sa.literal_column("1"))).first() is not None


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    """An INSERT that can say ON CONFLICT: both databases have it, in their own dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert  # noqa: PLC0415 - no driver: only the SQL dialect
    else:
        from sqlalchemy.dialects.sqlite import insert  # noqa: PLC0415
    return insert(table)
