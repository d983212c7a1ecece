"""Several schedulers on one PostgreSQL state, as on several hosts: one leads, the others stand by.

Each "host" is a process with its own ``REPORTER_NODE``, all on the test's database of a real
PostgreSQL server. The leader is killed with SIGKILL, or its connection is cut by the server;
a standby must take over within 30 s, and no slot or message may go twice. Nothing waits a
fixed time: every wait is for a log line, a row or a process, with a deadline.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import cli_env, render_workers, running
from projects import make_project, report_block
from servers import Backend
from test_deliver import Recorder, smtp_server

FAST = dict(languages='["en"]', formats='["html"]')
TAKE_OVER = 30.0  # the promise: a standby leads within this long after the leader dies


@dataclass
class Scheduler:
    """A ``reporter`` process on one "host", its log read as it comes."""

    node: str
    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    @classmethod
    def start(cls, config: Path, node: str, now: str, backend: Backend, *args: str, command: str = "run",
              env: dict[str, str] | None = None) -> "Scheduler":
        extra = ["--standby-interval", "1", "--workers", "1"] if command == "run" else []
        process = subprocess.Popen(
            [sys.executable, "-m", "reporter", "--config", str(config), command, *extra, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env=cli_env({"REPORTER_NOW": now, "REPORTER_NODE": node, **backend.env, **(env or {})}))
        scheduler = cls(node, process)
        threading.Thread(target=scheduler._read, daemon=True).start()
        return scheduler

    def _read(self) -> None:
        for line in self.process.stderr:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    @property
    def log(self) -> str:
        with self.changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines:
                    if found := re.search(pattern, line):
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self.changed.wait(0.2)):
                    raise AssertionError(f"{self.node}: no line matching {pattern!r} within {timeout} s:\n{self.log}")
                self.changed.wait(min(left, 0.2))

    def leads(self) -> bool:
        return any("leading: this scheduler" in line for line in list(self.lines))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_for(predicate, timeout: float = 60.0, what: str = "a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _cut(postgres, scheduler: Scheduler) -> None:
    """The network between ``scheduler`` and the server fails: the server ends its session (and
    returns once it has ended, so that its locks are free)."""
    with postgres.admin() as admin:
        cut = admin.execute("SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity WHERE application_name = %s",
                            (f"reporter {scheduler.node}:{scheduler.process.pid}",)).fetchall()
    assert cut, f"{scheduler.node} has no session to cut"


def _runs(backend: Backend) -> list[tuple[str, str, str]]:
    """(slot, status, node) of every scheduled run, in order; slots skipped by the catch-up policy left out."""
    return [(slot, status, owner.split(":")[0]) for slot, status, owner in
            backend.rows("SELECT slot, status, owner FROM runs WHERE slot IS NOT NULL AND status <> 'skipped' ORDER BY id")]


def test_one_of_two_schedulers_leads_and_a_standby_takes_over_when_it_is_killed(pg_backend, tmp_path):
    backend = pg_backend
    config = make_project(tmp_path, [report_block("r", schedule="* * * * *", **FAST)])
    # The clocks (running on in real time) place the slots: alpha starts half a minute before
    # 08:01, beta two seconds before it, so that 08:01 falls due about when beta takes over.
    alpha = Scheduler.start(config, "alpha", "2025-11-03T08:00:30+05:00", backend)
    beta = None
    try:
        alpha.wait_for("leading: this scheduler")
        beta = Scheduler.start(config, "beta", "2025-11-03T08:00:58+05:00", backend)
        _wait_for(lambda: [run[:2] for run in _runs(backend)] == [("2025-11-03T08:00", "ok")], what="the 08:00 slot to run")
        beta.wait_for(rf"standing by \(leader: alpha:{alpha.process.pid}\)")
        assert not beta.leads()

        alpha.process.kill()  # kill -9: no clean-up, no goodbye
        killed = time.monotonic()
        alpha.process.wait(timeout=10)
        beta.wait_for("leading: this scheduler", timeout=TAKE_OVER)
        took_over = time.monotonic() - killed
        assert took_over < TAKE_OVER
        _wait_for(lambda: ("2025-11-03T08:01", "ok", "beta") in _runs(backend), what="beta to run the next slot")
    finally:
        alpha.stop()
        if beta:
            beta.stop()
    # Each slot once, and the history says which host ran it.
    assert _runs(backend) == [("2025-11-03T08:00", "ok", "alpha"), ("2025-11-03T08:01", "ok", "beta")]
    print(f"took over {took_over:.1f} s after kill -9")  # for the record (pytest -s)


def test_a_leader_whose_connection_is_cut_steps_down_and_a_standby_takes_over(pg_backend, postgres, tmp_path):
    backend = pg_backend
    config = make_project(tmp_path, [report_block("r", schedule="0 8 * * 1", **FAST)])
    alpha = Scheduler.start(config, "alpha", "2025-11-03T08:00:20+05:00", backend)
    beta = None
    try:
        alpha.wait_for("leading: this scheduler")
        _wait_for(lambda: _runs(backend) == [("2025-11-03T08:00", "ok", "alpha")], what="alpha to run the slot")
        workers = render_workers(alpha.process.pid)
        assert workers
        beta = Scheduler.start(config, "beta", "2025-11-03T08:00:30+05:00", backend)
        beta.wait_for(rf"standing by \(leader: alpha:{alpha.process.pid}\)")
        _cut(postgres, alpha)
        cut_at = time.monotonic()
        assert alpha.process.wait(timeout=TAKE_OVER) == 1  # it stepped down rather than run on beside a new leader
        alpha.wait_for(r"lost the lead: the connection to the state database failed .*; stepping down")
        beta.wait_for("leading: this scheduler", timeout=TAKE_OVER)
        assert time.monotonic() - cut_at < TAKE_OVER
        _wait_for(lambda: not [pid for pid in workers if running(pid)], timeout=10,
                  what="the render workers of the leader that stepped down to die with it")
    finally:
        alpha.stop()
        if beta:
            beta.stop()
    assert _runs(backend) == [("2025-11-03T08:00", "ok", "alpha")]  # beta found the slot done
    assert "Traceback" not in alpha.log


def test_a_standby_whose_connection_is_cut_connects_again_and_still_takes_over(pg_backend, postgres, tmp_path):
    # The network between the standby and the server fails for a moment: the standby says so,
    # makes a new connection, and is still there to lead when the leader dies.
    config = make_project(tmp_path, [report_block("r", schedule="0 8 * * 1", **FAST)])
    alpha, beta = Scheduler.start(config, "alpha", "2025-11-03T08:00:20+05:00", pg_backend), None
    try:
        alpha.wait_for("leading: this scheduler")
        beta = Scheduler.start(config, "beta", "2025-11-03T08:00:30+05:00", pg_backend)
        standing_by = rf"standing by \(leader: alpha:{alpha.process.pid}\)"
        beta.wait_for(standing_by)
        _cut(postgres, beta)
        beta.wait_for(r"standing by: the state database does not answer \(.+\); trying again every 1 s")
        _wait_for(lambda: sum(bool(re.search(standing_by, line)) for line in list(beta.lines)) == 2,
                  what="beta to stand by again on a new connection")
        alpha.process.kill()
        alpha.process.wait(timeout=10)
        beta.wait_for("leading: this scheduler", timeout=TAKE_OVER)
    finally:
        alpha.stop()
        if beta:
            beta.stop()
    assert beta.process.returncode == 0 and "Traceback" not in beta.log


def test_two_schedulers_on_two_hosts_racing_for_the_same_slot_run_it_once(pg_backend, tmp_path):
    backend = pg_backend
    config = make_project(tmp_path, [report_block("r", schedule="0 8 * * 1", **FAST)])
    backend.history().close()  # the schema exists: the race is for the slot, not for creating tables
    hosts = [Scheduler.start(config, node, "2025-11-03T08:00:20+05:00", backend, command="run-due")
             for node in ("alpha", "beta")]
    for host in hosts:
        host.process.wait(timeout=120)
    outputs = {host.node: host.process.stdout.read() for host in hosts}
    assert [host.process.returncode for host in hosts] == [0, 0], [host.log for host in hosts]
    assert sorted(outputs.values()) == ["", "r 2025-11-03T08:00 ok\n"]
    winner = next(host for host in hosts if outputs[host.node])
    loser = next(host for host in hosts if host is not winner)
    assert _runs(backend) == [("2025-11-03T08:00", "ok", winner.node)]
    # The other found a scheduler leading, or, if it came after it, the slot done.
    assert re.search(rf"standing by: another scheduler leads this state \(leader: {winner.node}:\d+\)|nothing due", loser.log)


def test_two_senders_on_two_hosts_send_each_message_once(pg_backend, tmp_path):
    backend = pg_backend
    people = "".join(f'\n[[reports.brief.recipients]]\nemail = "{who}@example.org"\nlang = "en"\n'
                     for who in ("analyst", "desk", "editor"))
    config = make_project(tmp_path, [report_block("brief", languages='["en"]', formats='["pdf"]') + people
                                     + '\n[email]\nfrom = "Reporter <briefings@example.org>"\n'])
    rendered = subprocess.run([sys.executable, "-m", "reporter", "--config", str(config), "render", "brief", "--date",
                               "2025-11-03"], capture_output=True, text=True, timeout=120,
                              env=cli_env(backend.env))
    assert rendered.returncode == 0, rendered.stderr
    handler = Recorder()
    with smtp_server(handler) as controller:
        smtp = {"REPORTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}", "REPORTER_SMTP_PASSWORD": ""}
        hosts = [Scheduler.start(config, node, "2025-11-03T09:00:00+05:00", backend, "brief", "--date", "2025-11-03",
                                 command="send", env=smtp) for node in ("alpha", "beta")]
        for host in hosts:
            host.process.wait(timeout=120)
    assert [host.process.returncode for host in hosts] == [0, 0], [host.log for host in hosts]
    got = sorted(rcpt for rcpts, _content in handler.messages for rcpt in rcpts)
    assert got == ["analyst@example.org", "desk@example.org", "editor@example.org"]
    rows = backend.rows("SELECT recipient, status FROM deliveries ORDER BY recipient")
    assert rows == [("analyst@example.org", "sent"), ("desk@example.org", "sent"), ("editor@example.org", "sent")]


@pytest.mark.parametrize("command", ["run", "run-due", "adopt"])
def test_what_a_standby_run_due_and_adopt_do_while_another_leads(pg_backend, tmp_path, command):
    backend = pg_backend
    config = make_project(tmp_path, [report_block("r", schedule="0 8 * * 1", **FAST)])
    alpha = Scheduler.start(config, "alpha", "2025-11-03T09:00:00+05:00", backend)
    try:
        alpha.wait_for("leading: this scheduler")
        other = Scheduler.start(config, "beta", "2025-11-03T09:00:00+05:00", backend, command=command)
        if command == "run":
            other.wait_for(rf"standing by \(leader: alpha:{alpha.process.pid}\); trying every 1 s")
            other.stop()  # SIGTERM while standing by: a clean stop
            assert other.process.returncode == 0, other.log
        elif command == "run-due":
            other.process.wait(timeout=60)
            assert (other.process.returncode, other.process.stdout.read()) == (0, "")
            assert other.log.endswith(f"standing by: another scheduler leads this state (leader: alpha:{alpha.process.pid}); "
                                      "it runs what is due, so nothing runs here"), other.log
        else:
            other.process.wait(timeout=60)
            assert other.process.returncode == 1
            assert other.log == (f"error: {backend.shown}: a scheduler leads this state (leader: "
                                 f"alpha:{alpha.process.pid}); stop every `reporter run` first")
    finally:
        alpha.stop()
    assert alpha.process.returncode == 0, alpha.log


class Proxy:
    """A TCP relay between one scheduler and the server, whose network can go silent.

    :meth:`freeze` stops relaying without closing anything: both ends wait, and their kernels
    keep the connections up, as when a switch drops every packet. :meth:`cut` then closes the
    server's side, which is what the server's own keepalives do once they go unanswered.
    """

    def __init__(self, port: int) -> None:
        import socket

        self.upstream_port = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frozen = threading.Event()
        self.sockets: list = []
        self.upstream: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, server]
            self.upstream.append(server)
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source, target) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            while self.frozen.is_set() and data:
                time.sleep(0.05)  # held, never passed on
            if not data:
                break
            try:
                target.sendall(data)
            except OSError:
                break
        for sock in (source, target):
            try:
                sock.close()
            except OSError:
                pass

    def freeze(self) -> None:
        self.frozen.set()

    def cut(self) -> None:
        import socket

        for sock in self.upstream:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass


def test_a_leader_that_hears_nothing_steps_down_before_the_server_lets_another_lead(pg_backend, postgres, tmp_path):
    backend = pg_backend
    config = make_project(tmp_path, [report_block("r", schedule="0 8 * * 1", **FAST)])
    backend.history().close()
    proxy = Proxy(postgres.port)
    via_proxy = {"REPORTER_STATE_URL": backend.url.replace(f":{postgres.port}/", f":{proxy.port}/")}
    alpha = Scheduler.start(config, "alpha", "2025-11-03T09:00:00+05:00", backend, env=via_proxy)
    beta = None
    try:
        alpha.wait_for("leading: this scheduler")
        beta = Scheduler.start(config, "beta", "2025-11-03T09:00:00+05:00", backend)
        beta.wait_for(rf"standing by \(leader: alpha:{alpha.process.pid}\)")
        proxy.freeze()  # alpha's pings go nowhere; the server still sees its session, and its lock
        assert alpha.process.wait(timeout=TAKE_OVER) == 1
        alpha.wait_for(r"lost the lead: the state database has not answered for \d+ s; stepping down")
        assert not beta.leads(), "beta led while the server still held alpha's lock"
        proxy.cut()  # the server's keepalives give up on alpha's host
        beta.wait_for("leading: this scheduler", timeout=TAKE_OVER)
    finally:
        alpha.stop()
        if beta:
            beta.stop()
        proxy.close()
