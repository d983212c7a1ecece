"""Real servers for the tests, started on 127.0.0.1 in temp folders and stopped afterwards:
Redis (the Celery executor's broker) and PostgreSQL (the shared state). When a server cannot
start, the test fails and says why: nothing is skipped.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

# --- Redis ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RedisServer:
    port: int
    folder: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *words: str) -> str:
        """One command in Redis's wire protocol; its reply's first line."""
        request = f"*{len(words)}\r\n" + "".join(f"${len(w.encode())}\r\n{w}\r\n" for w in words)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(request.encode())
            return sock.makefile("rb").readline().decode().rstrip("\r\n")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # NOAUTH: up, with a password
    except OSError:
        return False


def start_redis(folder: Path, *options: str, deadline: float = 20.0) -> RedisServer:
    """``redis-server`` on a free port, with no persistence and ``options`` (``"--requirepass",
    "secret"``); ``pytest.fail`` naming the reason if it does not answer a PING in time."""
    executable = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(executable).exists():
        pytest.fail("redis-server is not installed: run scripts/system-packages (Debian package redis-server)")
    folder.mkdir(parents=True, exist_ok=True)
    reason = ""
    for _ in range(3):  # a free port may be taken by someone else before the server binds it
        port = free_port()
        log = folder / f"redis-{port}.log"
        process = subprocess.Popen(
            [executable, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--logfile", str(log), "--protected-mode", "yes", *options],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        until = time.monotonic() + deadline
        while time.monotonic() < until and process.poll() is None:
            if _answers(port):
                return RedisServer(port, folder, process)
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        reason = f"exit code {process.returncode}; log: {' | '.join(tail) or '(empty)'}"
        if "Address already in use" not in reason:
            break
    pytest.fail(f"redis-server did not start on 127.0.0.1 within {deadline:g} s: {reason}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this test's own, empty, stopped after it."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        stop(server.process)


# --- PostgreSQL -----------------------------------------------------------------------

PASSWORD = "pg-Secret-do-not-leak"
ROLE = "reporter"
ADMIN = "admin"
_counter = itertools.count()


def postgres_bin() -> Path:
    """The folder of initdb and pg_ctl: $REPORTER_TEST_PG_BIN, or the newest Debian PostgreSQL."""
    if os.environ.get("REPORTER_TEST_PG_BIN"):
        return Path(os.environ["REPORTER_TEST_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    if not found:
        pytest.fail("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run `make setup` as root, "
                    "or `apt-get install postgresql`", pytrace=False)
    return found[-1].parent


@dataclass
class Postgres:
    folder: Path
    port: int
    bin: Path
    user: str | None  # the OS user the server runs as (None: this one)

    @property
    def socket_dir(self) -> str:
        return str(self.folder)

    def url(self, database: str, *, password: bool = True) -> str:
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql://{ROLE}{secret}@127.0.0.1:{self.port}/{database}"

    def admin(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(host=self.socket_dir, port=self.port, user=ADMIN, dbname=database, autocommit=True)

    def create_database(self) -> str:
        name = f"t{os.getpid()}_{next(_counter)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} OWNER {ROLE} STRATEGY FILE_COPY")
        return name

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / args[0]), *args[1:]], capture_output=True, text=True, timeout=120,
                              check=check, user=self.user, group=None if self.user is None else
                              pwd.getpwnam(self.user).pw_gid, extra_groups=None if self.user is None else [])

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.folder / "data"), "-m", "immediate", "-w", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    @classmethod
    def start(cls) -> "Postgres":
        bin_dir = postgres_bin()
        user = "nobody" if os.geteuid() == 0 else None
        folder = Path(tempfile.mkdtemp(prefix="reporter-pg-"))
        if user:
            os.chown(folder, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
        (folder / "pw").write_text(PASSWORD + "\n")
        if user:
            os.chown(folder / "pw", pwd.getpwnam(user).pw_uid, -1)
        server = cls(folder, 0, bin_dir, user)
        step = "initdb"
        try:
            server._run("initdb", "-D", str(folder / "data"), "-U", ADMIN, f"--pwfile={folder / 'pw'}",
                        "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
            step = "pg_ctl start"
            for attempt in range(3):  # a free port may be taken between asking and listening
                server.port = free_port()
                options = (f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                           "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                           "-c shared_buffers=32MB")
                started = server._run("pg_ctl", "start", "-D", str(folder / "data"), "-l", str(folder / "log"),
                                      "-w", "-t", "60", "-o", options, check=False)
                if started.returncode == 0:
                    break
            else:
                raise subprocess.CalledProcessError(started.returncode, "pg_ctl start", started.stdout, started.stderr)
            step = "creating the role"
            with server.admin() as conn:
                conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired, ImportError) as exc:
            log = (folder / "log").read_text(errors="replace")[-2000:] if (folder / "log").exists() else ""
            output = getattr(exc, "stderr", "") or getattr(exc, "stdout", "") or ""
            server.stop()
            pytest.fail(f"PostgreSQL could not start ({step} with {bin_dir}, as {user or 'this user'}): {exc}\n"
                        f"{output}\n{log}", pytrace=False)
        return server


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    server = Postgres.start()
    yield server
    server.stop()


# --- one test's state, on either database -------------------------------------------------------


@dataclass
class Backend:
    """A test's history: the project's SQLite file, or a fresh PostgreSQL database of its own."""

    name: str  # sqlite | postgresql
    path: Path  # the project's [project] state (the history itself with SQLite)
    server: Postgres | None = None
    database: str | None = None
    _opened: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url(self.database) if self.server else f"sqlite:///{self.path}"

    @property
    def env(self) -> dict[str, str]:
        """What the CLI needs in its environment to use this state."""
        return {"REPORTER_STATE_URL": self.url} if self.server else {}

    @property
    def shown(self) -> str:
        """How reporter names this state in messages."""
        return f"REPORTER_STATE_URL ({self.server.url(self.database, password=False).replace(ROLE, ROLE + ':***', 1)})" \
            if self.server else str(self.path)

    def history(self):
        from reporter.state.history import History
        from reporter.state.target import parse_url

        history = History(parse_url(self.url)) if self.server else History.at(self.path)
        self._opened.append(history)
        return history

    def rows(self, sql: str, params: dict | None = None) -> list[tuple]:
        """Rows of a query (``:name`` parameters), read as a monitor would, outside reporter."""
        if self.server is None:
            if not self.path.exists():
                return []
            with closing(sqlite3.connect(self.path, timeout=10)) as db:
                try:
                    return [tuple(r) for r in db.execute(sql, params or {}).fetchall()]
                except sqlite3.OperationalError as exc:
                    if "no such table" in str(exc):
                        return []  # the file is there, its tables not yet: nothing recorded
                    raise
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            exists = conn.execute("SELECT to_regclass('runs') IS NOT NULL").fetchone()[0]
            if not exists and "runs" in sql:
                return []
            return [tuple(r) for r in conn.execute(_pyformat(sql), params or {}).fetchall()]

    def execute(self, sql: str, params: dict | None = None) -> None:
        if self.server is None:
            with closing(sqlite3.connect(self.path, timeout=10)) as db, db:
                db.execute(sql, params or {})
            return
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(_pyformat(sql), params or {})

    def lose(self) -> None:
        """The history is gone, as if its file were deleted or the database dropped and made again."""
        self.close()
        if self.server is None:
            for file in self.path.parent.glob(self.path.name + "*"):
                if not file.name.endswith(".lock"):
                    file.unlink()
            return
        with self.server.admin() as conn:
            conn.execute(f"DROP DATABASE {self.database} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {self.database} OWNER {ROLE} STRATEGY FILE_COPY")

    def close(self) -> None:
        for history in self._opened:
            history.close()
        self._opened.clear()


def _pyformat(sql: str) -> str:
    # The tests write :name parameters, as sqlite3 and SQLAlchemy read them; psycopg reads %(name)s.
    import re

    return re.sub(r"(?<!:):([a-z_]+)", r"%(\1)s", sql.replace("%", "%%"))


def backend_for(request: pytest.FixtureRequest, name: str, folder: Path) -> Backend:
    path = folder / "state" / "history.sqlite"
    if name == "sqlite":
        return Backend("sqlite", path)
    server = request.getfixturevalue("postgres")
    return Backend("postgresql", path, server, server.create_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The test's state on each database in turn: the same test runs on both."""
    state = backend_for(request, request.param, tmp_path)
    yield state
    state.close()


@pytest.fixture
def pg_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The test's state on PostgreSQL only: for what SQLite does not have (a leader, other hosts)."""
    state = backend_for(request, "postgresql", tmp_path)
    yield state
    state.close()
