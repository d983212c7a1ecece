"""Celery as the executor, on real servers: a redis-server of each test's own, real `reporter worker`
processes with different node names (a host each, as far as reporter can tell), and real
`reporter run-due` and `reporter run` schedulers. Waits are on log lines, rows and exits, each
with a deadline; no test sleeps to let something happen.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

import pytest
from aiosmtpd.controller import Controller

from conftest import _neutral_cwd, cli_env, run_cli
from projects import make_project, report_block
from servers import RedisServer, free_port, redis_server, start_redis, stop  # noqa: F401 - redis_server is a fixture

pytestmark = pytest.mark.slow

NOW = "2025-11-03T08:00:20+05:00"  # a Monday, 20 s after every test report's slot
FAST = dict(languages='["en"]', formats='["html"]')
CELERY = 'executor = "celery"'
# The sandbox caps each range, not their nesting: about 1.5 s of template work on this machine,
# long enough to be stopped mid-way by a test that waits for its start, whatever the load.
LONG = "{% for i in range(15000) %}{% for j in range(2000) %}{% endfor %}{% endfor %}"
ENDLESS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def lengthen(folder: Path, loop: str, template: str = "brief") -> None:
    narrative = folder / "templates" / template / "narrative.en.html.j2"
    narrative.write_text(narrative.read_text(encoding="utf-8").replace(
        "{% block overview %}", "{% block overview %}" + loop), encoding="utf-8")


def wait_for(what: str, predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def runs(folder: Path) -> list[tuple]:
    with closing(sqlite3.connect(folder / "state" / "history.sqlite")) as db:
        return db.execute("SELECT report, slot, status, error FROM runs ORDER BY id").fetchall()


@dataclass
class Worker:
    """A `reporter worker` in a session of its own, as on a host of its own; its log in a file."""

    node: str
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, needle: str, timeout: float = 60.0) -> None:
        def found() -> bool:
            if needle in self.text():
                return True
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.node} exited ({self.process.returncode}):\n{self.text()}")
            return False
        wait_for(f"{needle!r} in worker {self.node}'s log", found, timeout)

    def rendered(self) -> list[str]:
        """The reports this worker began to render, in order."""
        return re.findall(rf"^\S+ info +{self.node}: rendering (\S+) ", self.text(), re.M)

    def finished(self) -> list[str]:
        return re.findall(rf"^\S+ info +{self.node}: rendered (\S+) ", self.text(), re.M)

    def render_pid(self) -> int:
        return int(re.findall(rf"{self.node}: rendering \S+ \S+ \(task \w+, pid (\d+)\)", self.text())[-1])

    def alive(self, pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return not Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"


@dataclass
class Cluster:
    """The workers and schedulers a test starts, all stopped when it ends."""

    folder: Path
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)
    others: list[subprocess.Popen] = field(default_factory=list)

    def worker(self, config: Path, node: str, concurrency: int = 1, ready: bool = True) -> Worker:
        log = self.folder / f"worker-{node}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "reporter", "--config", str(config), "worker", "--node", node,
             "--concurrency", str(concurrency)],
            stdout=subprocess.DEVNULL, stderr=log.open("w"), cwd=_neutral_cwd(), start_new_session=True,
            env=cli_env(self.env))
        worker = Worker(node, process, log)
        self.workers.append(worker)
        if ready:
            worker.wait_for(f"worker {node} ready")
        return worker

    def pair(self, config: Path, *nodes: str) -> list[Worker]:
        """Workers started side by side, then waited for."""
        started = [self.worker(config, node, ready=False) for node in nodes]
        for worker in started:
            worker.wait_for(f"worker {worker.node} ready")
        return started

    def scheduler(self, config: Path, *args: str, now: str = NOW, **env: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "reporter", "--config", str(config), *args], cwd=_neutral_cwd(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env=cli_env({**self.env, "REPORTER_NOW": now, **env}))
        self.others.append(process)
        return process

    # A bound on a hang, not a speed target: 200 renders take about 90 s beside the rest of the
    # suite, and more than 180 s on a machine running two suites at once.
    def run_due(self, config: Path, now: str = NOW, timeout: float = 480, **env: str):
        return run_cli("--config", str(config), "run-due", env={**self.env, "REPORTER_NOW": now, **env}, timeout=timeout)

    def stop(self) -> None:
        for process in [*self.others, *(w.process for w in self.workers)]:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:  # noqa: F811
    started = Cluster(tmp_path, {"REPORTER_BROKER_URL": redis_server.url})
    try:
        yield started
    finally:
        started.stop()


def test_two_workers_share_a_burst_and_render_each_edition_once(tmp_path: Path, cluster: Cluster) -> None:
    ids = [f"r{i:02}" for i in range(12)]
    config = make_project(tmp_path, [report_block(i, **FAST) for i in ids], project_extra=CELERY)
    lengthen(tmp_path, "{% for i in range(3000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}")  # ~0.15 s
    a, b = cluster.pair(config, "node-a", "node-b")
    result = cluster.run_due(config)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [f"{i} 2025-11-03T08:00 ok" for i in ids]
    assert sorted(a.rendered() + b.rendered()) == ids, "each edition rendered once, by one worker or the other"
    assert a.rendered() and b.rendered(), "both nodes took part"
    assert sorted((r[0], r[2]) for r in runs(tmp_path)) == [(i, "ok") for i in ids]
    for report in ids:
        assert (tmp_path / "output" / report / "2025-11-03" / f"{report}.en.html").is_file()
    assert "Traceback" not in a.text() + b.text() + result.stderr


def test_a_worker_killed_mid_render_costs_a_redelivery_to_the_other(tmp_path: Path, cluster: Cluster) -> None:
    # timeout < redeliver_after: Redis hands the render on 10 s after the dead worker took it.
    config = make_project(tmp_path, [report_block("slow", extra='timeout = "8s"', **FAST)],
                          project_extra=CELERY + '\nredeliver_after = "10s"')
    lengthen(tmp_path, LONG)
    a, b = cluster.pair(config, "node-a", "node-b")
    scheduler = cluster.scheduler(config, "run-due")
    wait_for("a worker to start the render", lambda: a.rendered() or b.rendered())
    first, second = (a, b) if a.rendered() else (b, a)
    first.process.kill()  # kill -9 of the worker: its render process must not live on and finish for it
    first.process.wait(timeout=10)
    wait_for("the render process to die with its worker", lambda: not first.alive(first.render_pid()), timeout=10)
    out, err = scheduler.communicate(timeout=90)
    assert scheduler.returncode == 0, err
    assert out == "slow 2025-11-03T08:00 ok\n"
    assert first.finished() == [] and second.finished() == ["slow"], "the other node rendered it, once"
    rows = runs(tmp_path)
    assert [(r[1], r[2]) for r in rows] == [("2025-11-03T08:00", "abandoned"), ("2025-11-03T08:00", "ok")]
    assert f"worker {first.node} (pid {first.render_pid()}) did not finish the render" in rows[0][3]
    assert f"the broker handed it to worker {second.node}" in rows[0][3]
    # Handed on because the worker died, not sooner: a live render is never given out twice.
    with closing(sqlite3.connect(tmp_path / "state" / "history.sqlite")) as db:
        ((began, handed_on),) = db.execute("SELECT started_at, finished_at FROM runs WHERE status = 'abandoned'")
    assert (datetime.fromisoformat(handed_on) - datetime.fromisoformat(began)).total_seconds() >= 9
    edition = tmp_path / "output" / "slow" / "2025-11-03"
    assert sorted(p.name for p in edition.iterdir()) == ["manifest.json", "slow.en.html"]
    history = run_cli("--config", str(config), "history", "slow")
    assert "abandoned" in history.stdout and " ok " in history.stdout


def test_a_render_process_killed_mid_render_is_redelivered_at_once(tmp_path: Path, cluster: Cluster) -> None:
    # The OOM killer's way: the worker survives and gives the render back straight away
    # (reject_on_worker_lost); no waiting for redeliver_after, which is left at its default.
    config = make_project(tmp_path, [report_block("slow", **FAST)], project_extra=CELERY)
    lengthen(tmp_path, LONG)
    a = cluster.worker(config, "node-a")
    scheduler = cluster.scheduler(config, "run-due")
    a.wait_for("node-a: rendering slow")
    victim = a.render_pid()
    os.kill(victim, signal.SIGKILL)
    out, err = scheduler.communicate(timeout=60)
    assert scheduler.returncode == 0, err
    assert out == "slow 2025-11-03T08:00 ok\n"
    assert a.rendered() == ["slow", "slow"] and a.finished() == ["slow"]
    rows = runs(tmp_path)
    assert [r[2] for r in rows] == ["abandoned", "ok"]
    assert f"worker node-a (pid {victim}) did not finish the render" in rows[0][3]
    assert a.render_pid() != victim


def test_a_render_over_its_timeout_is_stopped_and_recorded_as_failed(tmp_path: Path, cluster: Cluster) -> None:
    fine = report_block("fine", **FAST).replace("brief/narrative", "fine/narrative")
    config = make_project(tmp_path, [report_block("hung", extra='timeout = "2s"', **FAST), fine], project_extra=CELERY)
    shutil.copytree(tmp_path / "templates" / "brief", tmp_path / "templates" / "fine")
    lengthen(tmp_path, ENDLESS)
    a = cluster.worker(config, "node-a")  # one render process: `fine` renders on it after `hung` is stopped, or before
    result = cluster.run_due(config, timeout=60)
    assert result.returncode == 1
    assert sorted(result.stdout.splitlines()) == ["fine 2025-11-03T08:00 ok", "hung 2025-11-03T08:00 failed"]
    statuses = {r[0]: (r[2], r[3]) for r in runs(tmp_path)}
    assert statuses["hung"] == ("failed", "render did not finish within 2 s and was stopped")
    assert statuses["fine"] == ("ok", None)
    assert "Hard time limit (2.0s) exceeded" in a.text()
    assert not list((tmp_path / "output" / "hung").glob("20*")), "no edition"  # the archive's page may be there
    assert a.rendered().count("hung") == 1, "a timed-out render is not handed out again"


@dataclass
class Mailbox:
    messages: list[tuple[tuple[str, ...], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((tuple(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 OK"


TINY_NARRATIVE = """\
{% block summary %}<p>The largest partner's share reached {{ fact("share") }}.</p>{% endblock %}
{% block overview %}<p>There are {{ fact("firms") }} in the market.</p>{% endblock %}
"""
TINY = """
[reports.{id}]
title = {{ en = "Tiny brief {id}" }}
datasets = ["brief"]
narrative = "tiny/narrative.{{lang}}.html.j2"
languages = ["en"]
formats = ["pdf"]
timezone = "Asia/Almaty"
schedule = "0 8 * * 1"
key_figures = ["share"]
timeline = false

[[reports.{id}.sections]]
id = "overview"
title = {{ en = "Overview" }}

[[reports.{id}.recipients]]
email = "{id}@example.org"
name = "Reader of {id}"
lang = "en"
"""
TINY_EMAIL = """
[email]
from = "Reporter <briefings@example.org>"
subject = { en = "Briefing: {title}, {date}" }
"""


def test_200_reports_due_in_one_minute_are_each_rendered_and_delivered_once(tmp_path: Path, cluster: Cluster) -> None:
    ids = [f"t{i:03}" for i in range(200)]
    config = make_project(tmp_path, [TINY.format(id=i) for i in ids], project_extra=CELERY)
    config.write_text(config.read_text(encoding="utf-8") + TINY_EMAIL, encoding="utf-8")
    (tmp_path / "templates" / "tiny").mkdir()
    (tmp_path / "templates" / "tiny" / "narrative.en.html.j2").write_text(TINY_NARRATIVE, encoding="utf-8")
    a, b = cluster.pair(config, "node-a", "node-b")
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        started = time.monotonic()
        result = cluster.run_due(config, REPORTER_SMTP_URL=f"smtp://127.0.0.1:{controller.port}", REPORTER_SMTP_PASSWORD="")
        took = time.monotonic() - started
    finally:
        controller.stop()
    print(f"200 editions (PDF) through 2 workers, rendered and delivered in {took:.1f} s "
          f"({len(a.rendered())} on node-a, {len(b.rendered())} on node-b)")
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(result.stdout.splitlines()) == [f"{i} 2025-11-03T08:00 ok" for i in ids]
    assert sorted(a.rendered() + b.rendered()) == ids
    assert a.rendered() and b.rendered()
    received = sorted(rcpt for rcpts, _content in mailbox.messages for rcpt in rcpts)
    assert received == [f"{i}@example.org" for i in ids], "each delivered once"
    for rcpts, content in mailbox.messages[:3]:
        message = email.message_from_bytes(content, policy=email.policy.default)
        report = rcpts[0].split("@")[0]
        assert message["Subject"] == f"Briefing: Tiny brief {report}, 3 November 2025"
        (attachment,) = list(message.iter_attachments())
        assert attachment.get_content() == (tmp_path / "output" / report / "2025-11-03" / f"{report}.en.pdf").read_bytes()
    assert sorted(r[0] for r in runs(tmp_path) if r[2] == "ok") == ids and len(runs(tmp_path)) == 200


def test_a_broker_that_cannot_be_reached_is_one_line_without_the_password(tmp_path: Path) -> None:
    config = make_project(tmp_path, [report_block("r", **FAST)], project_extra=CELERY)
    closed = f"redis://:hunter2secret@127.0.0.1:{free_port()}/0"
    for command in (["run-due"], ["worker", "--node", "a"], ["run"]):
        result = run_cli("--config", str(config), *command, env={"REPORTER_BROKER_URL": closed, "REPORTER_NOW": NOW})
        assert result.returncode == 1, (command, result.stderr)
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: REPORTER_BROKER_URL: cannot reach the broker at redis://:***@127.0.0.1:"), line
        assert "hunter2secret" not in result.stderr + result.stdout
    unset = run_cli("--config", str(config), "run-due", env={"REPORTER_BROKER_URL": "", "REPORTER_NOW": NOW})
    assert unset.returncode == 1 and unset.stderr.startswith("error: REPORTER_BROKER_URL: not set")
    # Nothing was claimed: the slot is still due for the first run that reaches the broker.
    assert not (tmp_path / "state" / "history.sqlite").exists() or runs(tmp_path) == []


def test_the_brokers_password_never_shows(tmp_path: Path) -> None:
    secret = "s3cret-Passw0rd"
    server = start_redis(tmp_path / "redis", "--requirepass", secret)
    cluster = Cluster(tmp_path, {"REPORTER_BROKER_URL": f"redis://:{secret}@127.0.0.1:{server.port}/0"})
    try:
        config = make_project(tmp_path / "project", [report_block("r", **FAST)], project_extra=CELERY)
        a = cluster.worker(config, "node-a")
        result = cluster.run_due(config)
        assert result.returncode == 0 and result.stdout == "r 2025-11-03T08:00 ok\n", result.stderr
        assert f"broker redis://:***@127.0.0.1:{server.port}/0" in a.text()
        wrong = run_cli("--config", str(config), "run-due", env={
            "REPORTER_BROKER_URL": f"redis://:not-{secret}@127.0.0.1:{server.port}/0", "REPORTER_NOW": NOW})
        assert wrong.returncode == 1
        assert wrong.stderr.startswith(f"error: REPORTER_BROKER_URL: cannot reach the broker at "
                                       f"redis://:***@127.0.0.1:{server.port}/0: ") and len(wrong.stderr.splitlines()) == 1
        history = run_cli("--config", str(config), "history", "--json")
        for text in (a.text(), result.stdout, result.stderr, wrong.stdout, wrong.stderr, history.stdout):
            assert secret not in text
    finally:
        cluster.stop()
        stop(server.process)


def test_with_no_worker_a_render_fails_after_its_timeout_and_says_why(tmp_path: Path, cluster: Cluster) -> None:
    config = make_project(tmp_path, [report_block("r", extra='timeout = "1s"', **FAST)], project_extra=CELERY)
    result = cluster.run_due(config)
    assert result.returncode == 1 and result.stdout == "r 2025-11-03T08:00 failed\n"
    ((_r, _slot, status, error),) = runs(tmp_path)
    assert error == ("no worker started the render within 1 s; is a `reporter worker` running for "
                     f"REPORTER_BROKER_URL={cluster.env['REPORTER_BROKER_URL']}?")
    # Revoked: a worker that comes up later discards it rather than render for nobody.
    late = cluster.worker(config, "late")
    late.wait_for("late: skipping r 2025-11-03: its scheduler gave up waiting for it", timeout=30)
    assert late.rendered() == []


def test_the_commands_that_need_no_broker_do_not_import_celery(tmp_path: Path, cluster: Cluster) -> None:
    config = make_project(tmp_path, [report_block("r", **FAST)], project_extra=CELERY)
    for command in (["--help"], ["list"], ["run-due"]):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "reporter", "--config", str(config), *command],
                              capture_output=True, text=True, cwd=_neutral_cwd(), timeout=60,
                              env=cli_env({**cluster.env, "REPORTER_NOW": "2025-11-03T09:00:00+05:00"}))  # nothing due then
        assert proc.returncode == 0, proc.stderr[-2000:]
        imported = [line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
        assert not [m for m in imported if m.split(".")[0] in ("celery", "kombu", "billiard")], command
    assert "nothing due" in proc.stderr


def test_a_worker_with_another_copy_of_the_project_refuses_to_render(tmp_path: Path, cluster: Cluster) -> None:
    config = make_project(tmp_path / "scheduler", [report_block("r", **FAST)], project_extra=CELERY)
    stale = make_project(tmp_path / "worker", [report_block("r", **FAST)], project_extra=CELERY)
    facts = tmp_path / "worker" / "data" / "brief" / "facts.csv"
    facts.write_text(facts.read_text(encoding="utf-8").replace("share,24.1,", "share,23.9,"), encoding="utf-8")
    cluster.worker(stale, "old-host")
    result = cluster.run_due(config)
    assert result.returncode == 1 and result.stdout == "r 2025-11-03T08:00 failed\n"
    ((_r, _slot, status, error),) = runs(tmp_path / "scheduler")
    assert status == "failed" and "worker old-host: its copy of the project" in error and "is not the scheduler's" in error
    assert not list((tmp_path / "scheduler" / "output" / "r").glob("20*")), "no edition"


def test_the_service_with_celery_and_a_worker_stopped_mid_render_lets_it_finish(tmp_path: Path, cluster: Cluster) -> None:
    config = make_project(tmp_path, [report_block("slow", **FAST)], project_extra=CELERY)
    lengthen(tmp_path, LONG)
    a = cluster.worker(config, "node-a")
    service = cluster.scheduler(config, "run")
    a.wait_for("node-a: rendering slow")
    a.process.send_signal(signal.SIGTERM)  # systemd's stop with KillMode=mixed: the worker's main process
    assert a.process.wait(timeout=60) == 0, a.text()
    assert a.finished() == ["slow"], "a warm shutdown finishes the render in progress"
    wait_for("the run to be recorded", lambda: [r[2] for r in runs(tmp_path)] == ["ok"])
    service.send_signal(signal.SIGTERM)
    _out, err = service.communicate(timeout=30)
    assert service.returncode == 0, err
    assert "next run 2025-11-10T08:00+05:00" in err and "stopped" in err
    assert (tmp_path / "output" / "slow" / "2025-11-03" / "slow.en.html").is_file()


@pytest.mark.parametrize(("project_extra", "expected"), [
    ('executor = "kubernetes"', "project.executor: expected one of local, celery"),
    ('redeliver_after = "5m"', "project.redeliver_after: must be longer than the longest report timeout (600 s)"),
    ('redeliver_after = "soon"', "project.redeliver_after: 'soon' is not a duration"),
])
def test_executor_settings_are_checked(tmp_path: Path, project_extra: str, expected: str) -> None:
    config = make_project(tmp_path, [report_block("r", **FAST)], project_extra=project_extra)
    result = run_cli("--config", str(config), "validate")
    assert result.returncode == 1 and expected in result.stderr, result.stderr


def test_redeliver_after_defaults_to_the_longest_timeout_and_a_minute(tmp_path: Path) -> None:
    from reporter import config as settings

    config = make_project(tmp_path, [report_block("r", extra='timeout = "20m"', **FAST), report_block("s", **FAST)])
    loaded = settings.load(config)
    assert (loaded.executor, loaded.redeliver_after) == ("local", 21 * 60)
