"""A corpus of broken inputs (tests/corpus/cases.toml): for each, the exact message, exit 1,
and nothing written; and the inputs that must be accepted are."""

from __future__ import annotations

import sqlite3
import tomllib
from contextlib import closing
from pathlib import Path

import pytest

from conftest import EDITION, REPORT, assert_untouched, earlier_edition, run_cli, write_project

CASES = tomllib.loads((Path(__file__).parent / "corpus" / "cases.toml").read_text(encoding="utf-8"))["case"]


def _apply(project: Path, case: dict) -> None:
    path = project / case["file"]
    if "replace" in case:
        old, new = case["replace"]
        text = path.read_text(encoding="utf-8")
        assert old in text, (case["name"], old)
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    elif "write" in case:
        path.write_text(case["write"], encoding="utf-8")
    elif "bytes" in case:
        path.write_bytes(bytes.fromhex(case["bytes"]))
    elif case.get("crlf_bom"):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))


def _runs(project: Path) -> list[tuple]:
    path = project / "state" / "history.sqlite"
    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as db:
        runs = db.execute("SELECT id, report, status FROM runs ORDER BY id").fetchall()
        files = db.execute("SELECT count(*) FROM artifacts").fetchone()[0]
        sent = db.execute("SELECT count(*) FROM deliveries").fetchone()[0]
    return [*runs, ("artifacts", files), ("deliveries", sent)]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_a_broken_input_gets_its_exact_message_and_nothing_is_written(tmp_path: Path, case: dict) -> None:
    config_path = write_project(tmp_path, formats='["html"]')
    previous = earlier_edition(tmp_path)
    _apply(tmp_path, case)
    before = _runs(tmp_path)
    command = case.get("command", ["render", REPORT, "--date", EDITION])
    result = run_cli("--config", str(config_path), *command)
    if case.get("ok"):
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    expected = [line.format(project=tmp_path) for line in case["expect"]]
    assert expected and errors[:len(expected)] == expected, result.stderr
    assert_untouched(previous)
    # The history keeps what it had; a manual render that failed is recorded as such, with no files.
    after = _runs(tmp_path)
    added = [row for row in after if row not in before]
    assert all(row[2] == "failed" for row in added if isinstance(row[0], int)), added
    assert [r for r in after if not isinstance(r[0], int)] in ([], [("artifacts", 0), ("deliveries", 0)])
