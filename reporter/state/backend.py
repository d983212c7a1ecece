"""The two databases a history can live in, and what differs between them.

SQLite (the default, one machine): WAL mode and ``BEGIN IMMEDIATE`` for every write, so that
writers queue on the file's lock and readers never wait; the scheduler's exclusivity is a
``flock`` beside the file (:mod:`reporter.schedule.lock`), and a claim's owner is alive while
its pid is.

PostgreSQL (shared by several hosts, through psycopg 3): transactions at READ COMMITTED, and
every claim locks the one row it decides on (``SELECT … FOR UPDATE``, or ``INSERT … ON CONFLICT
DO NOTHING`` when the row may not exist yet), so two hosts deciding the same slot or message
queue on that row and the second sees what the first decided. No retry loop is needed, as it
would be with SERIALIZABLE. Besides its pool, a process that claims anything keeps one
*session* connection (:class:`Session`), on which it holds advisory locks:

- its *presence* lock, keyed by ``node:pid``, for as long as it lives: a claim whose owner holds
  no presence lock was left by a process that died, on whatever host (the server ends a dead
  client's session, and so its locks, when its connection closes or its keepalives go
  unanswered);
- the *leader* lock, keyed by the state (database and schema), while it is the scheduler.

Both on one connection, so that they end together: a new leader never finds the old leader's
runs looking alive.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import NullPool

from ..errors import Problem, StateError
from .target import StateTarget, owner

# How a dead client is noticed. The server checks a silent session's connection after IDLE
# seconds, every INTERVAL, and ends it after COUNT unanswered probes: 5 + 3 × 2 = 11 s. A leader
# pings every PING seconds and steps down when none has succeeded for LEASE seconds, which is
# shorter, so that it has stopped before the server lets anyone else lead.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 5, 2, 3
SERVER_NOTICES = KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT
PING = 2.0
LEASE = 7.0
CONNECT_TIMEOUT = 10


def advisory_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for ``parts`` (the ``reporter`` namespace first)."""
    digest = hashlib.sha256("\0".join(("reporter", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _halves(key: int) -> tuple[int, int]:
    # pg_locks shows a bigint advisory key as two oids: its high and low 32 bits.
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def engine_for(target: StateTarget) -> sa.Engine:
    if not target.postgres:
        engine = sa.create_engine(target.url, connect_args={"timeout": 10})
        _sqlite_pragmas(engine)
        return engine
    return sa.create_engine(target.url, connect_args=_pg_connect_args(target), pool_pre_ping=True)


def _pg_connect_args(target: StateTarget, *, session: bool = False) -> dict[str, Any]:
    query = sa.engine.make_url(target.url).query
    args: dict[str, Any] = {"application_name": f"reporter {owner()}"[:63]}
    if "connect_timeout" not in query:
        args["connect_timeout"] = CONNECT_TIMEOUT  # an unreachable server is an error, not a hang
    if session:
        # The client's side: a leader blocked on a silent network finds out too.
        args |= {"keepalives": 1, "keepalives_idle": KEEPALIVE_IDLE, "keepalives_interval": KEEPALIVE_INTERVAL,
                 "keepalives_count": KEEPALIVE_COUNT, "tcp_user_timeout": int(LEASE * 1000)}
    return args


def _sqlite_pragmas(engine: sa.Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN; take control so every write
    # transaction is BEGIN IMMEDIATE (the documented SQLAlchemy recipe).
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # Writers take the write lock up front; readers use WAL's snapshot and never wait.
        readonly = connection.get_execution_options().get("readonly")
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def pg_problem(target: StateTarget, exc: BaseException) -> StateError:
    """One line for a PostgreSQL error, naming the variable, the password masked."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    # psycopg's connection errors say "connection failed: connection to server at … failed: why".
    for prefix in ("connection failed: ",):
        text = text.removeprefix(prefix)
    if getattr(exc, "connection_invalidated", False) or "connection" in text.lower() and "failed" in text.lower():
        message = f"cannot connect to the state database: {text}"
    else:
        message = f"the state database refused: {text}"
    return StateError([Problem(target.where, "", target.mask(message))])


def serialise_upgrade(conn: sa.Connection) -> None:
    """Inside a PostgreSQL transaction: wait until no other process is creating or upgrading the schema."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key("schema", current_schema(conn))})


def live_keys(conn: sa.Connection) -> set[tuple[int, int]]:
    """The advisory locks held in this database, as (high, low) halves."""
    rows = conn.exec_driver_sql(
        "SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
    return {(int(hi), int(lo)) for hi, lo in rows}


def presence_key(schema: str, name: str) -> tuple[int, int]:
    """The presence lock, in the state kept in ``schema``, of the process that recorded ``name``
    (``node:pid``, maybe ``/thread``)."""
    return _halves(advisory_key("presence", schema, name.split("/")[0]))


def current_schema(conn: sa.Connection) -> str:
    """Where the tables are: the first schema of the search path. Locks are per database, so
    their keys name it too, and projects kept in two schemas of one database do not meet."""
    return conn.exec_driver_sql("SELECT current_schema()").scalar() or "public"


class Session:
    """A process's own connection to a PostgreSQL state, holding its presence and, when it leads, the leader lock.

    Not pooled: the locks live exactly as long as this connection. Thread-safe.
    """

    def __init__(self, target: StateTarget) -> None:
        self.target = target
        self.owner = owner()
        self._lock = threading.Lock()
        self._engine = sa.create_engine(target.url, connect_args=_pg_connect_args(target, session=True),
                                        poolclass=NullPool)
        try:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            for setting, value in (("tcp_keepalives_idle", KEEPALIVE_IDLE), ("tcp_keepalives_interval", KEEPALIVE_INTERVAL),
                                   ("tcp_keepalives_count", KEEPALIVE_COUNT),
                                   ("tcp_user_timeout", int(SERVER_NOTICES * 1000))):
                # The server's side of the same: it ends this session, and frees its locks, once
                # this host stops answering. Ignored on a Unix socket, where there is no network.
                self._conn.exec_driver_sql(f"SET {setting} = {int(value)}")
            self.backend_pid = int(self._conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
            self.schema = current_schema(self._conn)
            self.leader_key = advisory_key("leader", self.schema)
            got = self._conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"),
                                     {"key": advisory_key("presence", self.schema, self.owner)}).scalar()
        except sa.exc.DBAPIError as exc:
            self._engine.dispose()
            raise pg_problem(target, exc) from exc
        if not got:
            self.close()
            raise StateError([Problem(target.where, "", f"another process is registered as {self.owner} in this state: "
                                      "each host needs its own name (set REPORTER_NODE)")])
        self.leading = False

    def try_lead(self) -> bool:
        """Take the leader lock if nobody holds it; True if this process leads (now or already)."""
        with self._lock:
            if not self.leading:
                self.leading = bool(self._conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"),
                                                       {"key": self.leader_key}).scalar())
            return self.leading

    def leader(self) -> str | None:
        """Who leads: the ``node:pid`` in the holder's application name; None if nobody, "unknown" if not visible."""
        hi, lo = _halves(self.leader_key)
        with self._lock:
            row = self._conn.execute(sa.text(
                "SELECT a.application_name FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid::bigint = :hi "
                "AND l.objid::bigint = :lo AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"hi": hi, "lo": lo}).first()
        if row is None:
            return None
        name = row[0] or ""
        return name.removeprefix("reporter ") if name.startswith("reporter ") else "unknown"

    def ping(self) -> None:
        """Raise if the connection, and with it every lock it holds, is gone."""
        with self._lock:
            self._conn.exec_driver_sql("SELECT 1").scalar()

    def close(self) -> None:
        with self._lock:
            try:
                # Freed before the connection closes: the server frees them by itself only once
                # the backend has ended, a moment later, and until then others would still find
                # this process alive, and a standby would still find it leading.
                self._conn.exec_driver_sql("SELECT pg_advisory_unlock_all()")
            except Exception:  # noqa: BLE001 - a connection that failed holds no lock any more
                pass
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - a dead connection closes as well as it can
                pass
            self._engine.dispose()
            self.leading = False


_sessions: dict[tuple[str, str], list] = {}  # (node:pid, url): [session, how many histories use it]
_sessions_lock = threading.Lock()


def open_session(target: StateTarget) -> Session:
    """This process's session on ``target``, shared by every :class:`History` it opens there.

    One per process, because the presence lock is keyed by the process (``node:pid``): a second
    session would find it taken. A forked child, with its own pid, makes its own.
    """
    key = (owner(), target.url)
    with _sessions_lock:
        entry = _sessions.get(key)
        if entry is None:
            entry = _sessions[key] = [Session(target), 0]
        entry[1] += 1
        return entry[0]


def close_session(session: Session, *, broken: bool = False) -> None:
    """One user fewer; the last closes it (``broken``: close it now, for everyone)."""
    key = (session.owner, session.target.url)
    with _sessions_lock:
        entry = _sessions.get(key)
        if entry is None or entry[0] is not session:
            return
        entry[1] -= 1
        if entry[1] > 0 and not broken:
            return
        del _sessions[key]
    session.close()


def fenced(conn: sa.Connection, session: Session) -> bool:
    """Inside a claim's transaction: whether ``session`` holds the leader lock at this moment."""
    hi, lo = _halves(session.leader_key)
    return conn.execute(sa.text(
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid = :pid "
        "AND classid::bigint = :hi AND objid::bigint = :lo"), {"pid": session.backend_pid, "hi": hi, "lo": lo}).first() is not None
