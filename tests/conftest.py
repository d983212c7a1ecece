"""Shared fixtures: the repository's paths, a CLI runner, project copies, one rendered edition."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EDITION = "2025-11-05"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120) -> Result:
    """Run ``python -m reporter ARGS`` as a user would, and return what it printed."""
    proc = subprocess.run(
        [sys.executable, "-m", "reporter", *args], capture_output=True, text=True, timeout=timeout,
        cwd=cwd or ROOT, env={**os.environ, **(env or {})},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def normalise(text: str) -> str:
    """PDF text as a reader compares it: no-break spaces as spaces, hyphenation marks removed."""
    text = text.replace("\u00a0", " ").replace("\u202f", " ").replace("\u2010", "-")
    return " ".join(unicodedata.normalize("NFC", text).split())


def write_project(folder: Path, *, data: Path | None = None, templates: Path | None = None,
                  project_extra: str = "", append: str = "") -> Path:
    """The shipped reports.toml, copied into ``folder`` with its [project] paths pointing at
    the repository's data and templates (or the given copies) and output and state in ``folder``."""
    lines = (ROOT / "reports.toml").read_text(encoding="utf-8").splitlines()
    start = lines.index("[project]")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("["))
    project = [
        "[project]",
        f'data = "{data or ROOT / "data"}"',
        f'templates = "{templates or ROOT / "templates"}"',
        f'output = "{folder / "output"}"',
        f'state = "{folder / "state" / "history.sqlite"}"',
        'locales = { en = "en_GB" }',
        project_extra,
        "",
    ]
    path = folder / "reports.toml"
    path.write_text("\n".join(lines[:start] + project + lines[end:]) + "\n" + append, encoding="utf-8")
    return path


def earlier_edition(folder: Path) -> Path:
    """An edition already on disk for EDITION, which a failed render must leave untouched."""
    edition = folder / "output" / "kz-us" / EDITION
    edition.mkdir(parents=True)
    (edition / "kz-us.ru.pdf").write_bytes(b"%PDF earlier edition")
    return edition


def assert_untouched(edition: Path) -> None:
    assert sorted(p.name for p in edition.iterdir()) == ["kz-us.ru.pdf"]
    assert (edition / "kz-us.ru.pdf").read_bytes() == b"%PDF earlier edition"


def copy_data(folder: Path) -> Path:
    target = folder / "data"
    shutil.copytree(ROOT / "data", target)
    return target


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped brief rendered once through the CLI, both languages and formats."""
    out = tmp_path_factory.mktemp("rendered")
    result = run_cli("render", "kz-us", "--date", EDITION, "--output", str(out))
    assert result.returncode == 0, result.stderr
    return out / "kz-us" / EDITION
