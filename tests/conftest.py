"""Shared fixtures: a CLI runner, projects built in temp folders, one rendered edition.

No test reads the shipped reports.toml or data/: projects come from tests/projects.py, so the
shipped project can gain reports and data without breaking the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

from projects import make_project, report_block, with_recipients
from reporter.state.target import node
from servers import backend, pg_backend, postgres  # noqa: F401 - fixtures: a real PostgreSQL, and each test's state on either database

# `make mutate` needs the CLI subprocesses' calls counted; outside mutmut the plugin does nothing.
pytest_plugins = ["mutation_hits"]

# The suite chooses each test's state itself; a state or node name in the caller's environment
# must not leak into the CLI subprocesses.
for _variable in ("REPORTER_STATE_URL", "REPORTER_NODE", "PGPASSWORD", "PGPASSFILE", "PGSERVICE"):
    os.environ.pop(_variable, None)

ROOT = Path(__file__).resolve().parents[1]
EDITION = "2025-11-05"
REPORT = "brief"

# Claim owners ("node:pid/thread") as another process on this host writes them: pid 1 always
# runs, and no process has a pid this high.
LIVE_OWNER = f"{node()}:1/1"
DEAD_OWNER = f"{node()}:4999999/1"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120) -> Result:
    """Run ``python -m reporter ARGS`` as a user would, and return what it printed.

    It runs in a temp folder unless told otherwise, so that a command without ``--config``
    can never find (or write into) the repository's own project.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "reporter", *args], capture_output=True, text=True, timeout=timeout,
        cwd=cwd or _neutral_cwd(), env=cli_env(env or {}),
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def cli_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of every reporter process a test starts: the package is the suite's own
    (under `make mutate`, the mutated copy in mutants/), never whatever is installed."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def _neutral_cwd() -> Path:
    folder = Path(os.environ.get("REPORTER_TEST_CWD", "/tmp")) / "reporter-tests-cwd"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def normalise(text: str) -> str:
    """PDF text as a reader compares it: no-break spaces as spaces, hyphenation marks and
    invisible joiners removed."""
    text = text.replace("\u00a0", " ").replace("\u202f", " ").replace("\u2010", "-")
    text = text.replace("\u2060", "").replace("\u200b", "")
    return " ".join(unicodedata.normalize("NFC", text).split())


def write_project(folder: Path, *, recipients: bool = True, extra: str = "", project_extra: str = "",
                  languages: str = '["ru", "en"]', formats: str = '["pdf", "html"]') -> Path:
    """The test project with one report, ``brief``, its three recipients and [email] settings."""
    block = report_block(REPORT, languages=languages, formats=formats, extra=extra)
    return make_project(folder, [block + (with_recipients(REPORT) if recipients else "")], email=recipients,
                        project_extra=project_extra)


def earlier_edition(folder: Path) -> Path:
    """An edition already on disk for EDITION, which a failed render must leave untouched."""
    edition = folder / "output" / REPORT / EDITION
    edition.mkdir(parents=True)
    (edition / f"{REPORT}.ru.pdf").write_bytes(b"%PDF earlier edition")
    return edition


def assert_untouched(edition: Path) -> None:
    assert sorted(p.name for p in edition.iterdir()) == [f"{REPORT}.ru.pdf"]
    assert (edition / f"{REPORT}.ru.pdf").read_bytes() == b"%PDF earlier edition"


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test brief rendered once through the CLI, both languages and formats."""
    folder = tmp_path_factory.mktemp("rendered")
    config = write_project(folder)
    result = run_cli("--config", str(config), "render", REPORT, "--date", EDITION)
    assert result.returncode == 0, result.stderr
    return folder / "output" / REPORT / EDITION


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}


@pytest.fixture(scope="session", autouse=True)
def _the_repository_stays_untouched():
    """Fails the run if any test, fixture or helper wrote into the repository's state/ or output/."""
    before = {name: _snapshot(ROOT / name) for name in ("state", "output")}
    yield
    after = {name: _snapshot(ROOT / name) for name in ("state", "output")}
    assert after == before, "the test run changed the repository's state/ or output/"


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread or process that just ended
    return found


def render_workers(pid: int) -> list[int]:
    """The render workers of a reporter process (started from its threads: every thread's children)."""
    found = []
    for child in _children(pid):
        try:
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except (FileNotFoundError, ProcessLookupError):
            continue  # a child that just ended
    return found


def running(pid: int) -> bool:
    """Whether a process still runs (a zombie has ended; its parent just has not reaped it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _reporter_children() -> set[int]:
    """This pytest process's child processes that run reporter (a service, a worker, a preview)."""
    found = set()
    for child in _children(os.getpid()):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if b"reporter" in argv[1:3] or any(arg.endswith(b"/bin/reporter") for arg in argv[:2]):
            found.add(child)
    return found


@pytest.fixture(autouse=True)
def _no_reporter_process_outlives_its_test():
    """A test that fails before it stops its service must not leave it running into the next
    tests, holding a CPU, a port or a worker blocked on a FIFO. Whatever reporter process the
    test started and left running goes, with its own children (render workers, which lead
    their own process groups), and is reaped."""
    before = _reporter_children()
    yield
    left = _reporter_children() - before
    doomed, queue = set(), list(left)
    while queue:
        pid = queue.pop()
        doomed.add(pid)
        queue += [child for child in _children(pid) if child not in doomed]
    for pid in doomed:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    for pid in left:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # its Popen reaped it
