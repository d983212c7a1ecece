"""Real servers for the tests, each started on 127.0.0.1 in a temp folder and stopped afterwards.

When a server cannot start, the test using it fails and says why: nothing is skipped in silence.
A test module takes a fixture by importing it (``from servers import redis_server``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest


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
