"""Every command in the README works as written (issue 12).

Each ```sh block runs, line by line, in a project of its own built by the test (tests/projects.py:
the report ``brief``, its three recipients, [email]), with ``.venv`` in it linked to this venv,
so that ``.venv/bin/reporter`` is typed as the README has it. HOME is the block's temp folder.
What differs from the README is listed below, explicitly: the example report's id, folders under
/tmp, the mail server (a real aiosmtpd on 127.0.0.1 with STARTTLS and a login, its certificate
named by ``ca_file``), the Redis broker and the PostgreSQL state (real servers on 127.0.0.1,
started by the test), and shorter benchmark runs. The README's ``export`` lines run too, and what
they set stays set for the rest of their "## " section, as in the shell of a reader who follows
that section (a reader who sets up Celery in "Scheduling" has no broker in "Adding a report").

Not run here: ``make run`` and ``make test`` (the first renders into the repository's own
output/, which the suite must leave alone; the second is this run), and the "Deploy" section,
which tests/test_install.py runs as the unprivileged user it is written for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from aiosmtpd.smtp import AuthResult

from conftest import EDITION, REPORT, ROOT, write_project
from readme import Command, blocks, commands
from servers import PASSWORD as PG_PASSWORD
from servers import postgres, start_redis, stop  # noqa: F401 - postgres is a fixture
from test_deliver import Recorder, certificate, server_context, smtp_server  # noqa: F401 - certificate is a fixture

pytestmark = pytest.mark.slow
PASSWORD = "readme-Pa55"
REDIS_PASSWORD = "readme-Redis-5ecret"
BROKER = "redis://:…@broker.internal:6379/0"
STATE = "postgresql://reporter@db.example.org:5432/briefs?sslmode=verify-full"

# README text -> what the test runs instead. Nothing else is changed.
SUBSTITUTE = [
    ("reporter preview kz-us", "reporter preview kz-us --port 0"),  # any free port: 8000 may be taken here
    ("kz-us", REPORT),  # the shipped example's id -> the test project's report
    ("/tmp/briefs", "{home}/briefs"),  # folders under /tmp -> under the block's own temp folder
    ("/tmp/outbox", "{home}/outbox"),
    ("briefings@mail.example.org:587", "briefings@127.0.0.1:{port}"),  # the mail server -> aiosmtpd
    (BROKER, "{broker}"),  # the broker -> a redis-server started here, with a password
    (STATE, "{state}"),  # the state database -> a PostgreSQL started here, a database of its own
    ('PGPASSWORD="…"', f'PGPASSWORD="{PG_PASSWORD}"'),
    ('"…"', f'"{PASSWORD}"'),  # the placeholder for a password -> the one aiosmtpd accepts
    ("make bench", "make bench ROUNDS=1 QUICK=1"),  # one round at small sizes: proves the command, not the figures
]
NOT_RUN = {
    "make run": "renders into the repository's own output/, which the suite leaves alone",
    "make test": "this is that run",
}
IN_THE_CLONE = ("make ", ".venv/bin/python benchmarks/")  # run in the repository, not in a project
# Long-running commands: started, waited for until they say they are up, then stopped as their
# reader would stop them (the scheduler with SIGTERM, as systemd does; the preview with Ctrl-C).
LONG_RUNNING = {".venv/bin/reporter run": ("next run", "stderr", signal.SIGTERM),
                ".venv/bin/reporter --log-json run": ("next run", "stderr", signal.SIGTERM),
                ".venv/bin/reporter worker --node render-1 --concurrency 4": ("render-1 ready", "stderr", signal.SIGTERM)}
STARTED = {".venv/bin/reporter worker --node render-1 --concurrency 4": "worker render-1 ready"}  # else "scheduler started"
PREVIEW = (".venv/bin/reporter preview", ("Previewing", "stdout", signal.SIGINT))
# A block that needs its project set up as the README's TOML beside it says (the block's first line -> [project] lines).
PROJECT = {f'export REPORTER_BROKER_URL="{BROKER}"': 'executor = "celery"'}
# The messages the README's send commands deliver: one to each of the test project's three
# recipients, or one to the address given with --to.
SENDS = {".venv/bin/reporter send kz-us --date 2025-11-05": 3,
         ".venv/bin/reporter send kz-us --date 2025-11-05 --to desk@example.org --force": 1,
         ".venv/bin/reporter render kz-us --send": 3}
PREPARE = {  # what a block needs that the README's reader did before it
    ".venv/bin/reporter send kz-us --date 2025-11-05": ["render", REPORT, "--date", EDITION],
}


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    return AuthResult(success=(auth_data.login, auth_data.password) == (b"briefings", PASSWORD.encode()))


@pytest.fixture(scope="module")
def mail(certificate) -> Iterator[tuple[Recorder, int]]:  # noqa: F811
    handler = Recorder()
    with smtp_server(handler, tls_context=server_context(certificate), require_starttls=True,
                     authenticator=authenticator, auth_require_tls=True) as controller:
        yield handler, controller.port


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_redis(tmp_path_factory.mktemp("redis"), "--requirepass", REDIS_PASSWORD)
    yield f"redis://:{REDIS_PASSWORD}@127.0.0.1:{server.port}/0"
    stop(server.process)


class Places(dict):
    """What SUBSTITUTE's replacements name; a server is started only when a line names it."""

    def __init__(self, request: pytest.FixtureRequest, home: Path, port: int) -> None:
        super().__init__(home=home, port=port)
        self.request = request

    def __missing__(self, key: str) -> str:
        if key == "broker":
            self[key] = self.request.getfixturevalue("broker")
        elif key == "state":
            server = self.request.getfixturevalue("postgres")
            self[key] = server.url(server.create_database(), password=False)
        else:
            raise KeyError(key)
        return self[key]


def _runnable(command: Command, places: Places) -> str:
    text = command.text
    for old, new in SUBSTITUTE:
        if old in text:
            text = text.replace(old, new.format_map(places))
    return text


def _exported(command: Command, places: Places, env: dict[str, str]) -> dict[str, str]:
    """The environment after an ``export`` line, run by the shell as written."""
    done = subprocess.run(["sh", "-c", f"{_runnable(command, places)} && env -0"], env=env,
                          capture_output=True, text=True, check=True)
    return dict(item.split("=", 1) for item in done.stdout.split("\0") if item)


def _environment(first: Command, places: Places) -> dict[str, str]:
    """This process's environment without reporter's variables, HOME set, and what the README's
    ``export`` lines in ``first``'s section, before its block, set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPORTER_", "PG"))} | {"HOME": str(places["home"])}
    for command in commands():
        if command.section == first.section and command.block < first.block and command.text.startswith("export "):
            env = _exported(command, places, env)
    return env


def _project(folder: Path, certificate: tuple[Path, Path]) -> Path:  # noqa: F811
    folder.mkdir()
    config = write_project(folder)
    config.write_text(config.read_text(encoding="utf-8").replace(
        "[email]\n", f'[email]\nca_file = "{certificate[0]}"\nattempts = 1\n'), encoding="utf-8")
    (folder / ".venv").symlink_to(sys.prefix)
    return config


def _service(line: str, cwd: Path, env: dict[str, str], marker: str, stream: str, stop: int) -> tuple[int, str]:
    """Starts a long-running command, waits until it says it is up (its signal handlers are in
    place by then), and stops it as its reader would."""
    process = subprocess.Popen(["sh", "-c", f"exec {line}"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    source = process.stderr if stream == "stderr" else process.stdout
    seen = []
    while not seen or marker not in seen[-1]:
        seen.append(source.readline())
        assert seen[-1], f"{line} ended before it said {marker!r}:\n{''.join(seen)}{process.stderr.read()}"
    process.send_signal(stop)
    out, err = process.communicate(timeout=60)
    return process.wait(), "".join(seen) + out + err


README_BLOCKS = blocks(exclude="Deploy")


@pytest.mark.parametrize("block", README_BLOCKS, ids=lambda b: f"line{b[0].line}:{b[0].text[:40]}")
def test_each_readme_command_exits_as_the_readme_says(block: list[Command], tmp_path: Path, mail, certificate,  # noqa: F811
                                                      request: pytest.FixtureRequest) -> None:
    handler, port = mail
    home = tmp_path
    project = home / "project"
    config = _project(project, certificate)
    if block[0].text in PROJECT:
        config.write_text(config.read_text(encoding="utf-8").replace(
            "[project]\n", f"[project]\n{PROJECT[block[0].text]}\n"), encoding="utf-8")
    places = Places(request, home, port)
    env = _environment(block[0], places)
    for command in block:
        if command.text in NOT_RUN:
            continue
        if command.text.startswith("export "):
            env = _exported(command, places, env)
            continue
        line = _runnable(command, places)
        cwd = ROOT if command.text.startswith(IN_THE_CLONE) else project
        if command.text in PREPARE:
            ready = subprocess.run([".venv/bin/reporter", *PREPARE[command.text]], cwd=project, env=env,
                                   capture_output=True, text=True)
            assert ready.returncode == 0, ready.stderr
        start = time.perf_counter()
        if command.text.startswith(PREVIEW[0]):
            code, log = _service(line, cwd, env, *PREVIEW[1])
            assert code == 0, f"{command}\n{log}"
            continue
        if command.text in LONG_RUNNING:
            code, log = _service(line, cwd, env, *LONG_RUNNING[command.text])
            assert code == 0, f"{command}\n{log}"
            assert STARTED.get(command.text, "scheduler started") in log, log
            if "--log-json" in line:
                assert json.loads(log.splitlines()[0])["message"].startswith("scheduler started")
            continue
        sent = len(handler.messages)
        done = subprocess.run(["sh", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n(ran: {line})\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr, f"{command}\n{done.stderr}"
        if SENDS.get(command.text):
            # Delivered through STARTTLS and AUTH, as the README's export lines set it up.
            assert len(handler.messages) - sent == SENDS[command.text], f"{command}: {len(handler.messages) - sent} sent"
        print(f"{time.perf_counter() - start:6.1f} s  {command}")


def test_every_readme_command_is_run_here_or_in_test_install() -> None:
    everything = commands()
    here = [c for block in README_BLOCKS for c in block]
    deploy = [c for c in everything if c.section == "Deploy"]
    assert sorted(here + deploy, key=lambda c: c.line) == everything
    assert len(everything) > 30
    # Every exception in the tables above still names a line the README has.
    texts = [c.text for c in everything]
    for name in [*NOT_RUN, *LONG_RUNNING, *PREPARE, *PROJECT, *SENDS]:
        assert name in texts, f"{name!r} is no longer in the README: update the table in {__file__}"
    for old, _new in SUBSTITUTE:
        assert any(old in text for text in texts), f"{old!r} is no longer in the README"
