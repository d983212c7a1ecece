"""Under `make mutate` only: which lines each test runs, so a mutant is tested only by the tests
that run the line it changed.

mutmut 3 chooses tests per function: a mutant of ``config._report`` is tested by every test that
called ``_report``, about 170 of them and eight minutes in series. Most mutants change a line only
a few of those run, such as the message of one refusal. A test that never runs the changed line
behaves exactly as without the mutant, so it cannot kill it; PIT and Stryker choose tests by
line for the same reason.

The lines come from mutmut's own stats run (and from ``MUTANT_UNDER_TEST=lines``, which repeats it
on a ``mutants/`` folder whose stats exist already): a trace function notes each line of the
mutated files that runs, in the pytest process and in every subprocess a test starts
(:mod:`mutation_sitecustomize`), each first sight appended at once to the test's own file, so a
process killed by a signal has written what it ran until then. A test is kept for a mutant when
it ran a line of the statement the mutant changed, when nothing is known of it, or when the file
changed since its lines were noted; a mutant of a signature, a decorator or a clause header that
is not a statement keeps every test. Fewer lines noted than ran can only keep a test out and
let a mutant live, never kill one: errors here lower the score, they cannot raise it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import re
import sys
import textwrap
import threading
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

SOURCES = "MUTMUT_LINES_SOURCES"
"""The mutated files, ``os.pathsep``-separated, absolute: what the tracer notes."""
TARGET = "MUTMUT_LINES_FILE"
"""The file the running test's lines go to: the pytest process sets it, subprocesses inherit it."""


class LineTracer:
    """Notes each line of ``sources`` that runs, once per process, in the file it is pointed at."""

    def __init__(self, sources: Iterable[str]) -> None:
        self._sources = {os.path.realpath(path) for path in sources}
        self._names: dict[str, str | None] = {}
        self._seen: set[tuple[str, int]] = set()
        self._fd: int | None = None
        self._lock = threading.Lock()

    def point_at(self, target: str | None) -> None:
        """Send what runs from now on to ``target`` (None: nowhere), as if nothing had run yet."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
            self._fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if target else None
            self._seen = set()

    def start(self) -> None:
        threading.settrace(self._call)
        sys.settrace(self._call)

    def stop(self) -> None:
        # mutmut runs its stats in its own process, then forks a child per mutant: without
        # this, every mutant's tests would run traced.
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
        self.point_at(None)

    def _name(self, filename: str) -> str | None:
        try:
            return self._names[filename]
        except KeyError:
            real = os.path.realpath(filename)
            name = self._names[filename] = real if real in self._sources else None
            return name

    def _call(self, frame: FrameType, event: str, arg: Any) -> Any:
        return self._line if self._name(frame.f_code.co_filename) else None

    def _line(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            key = (frame.f_code.co_filename, frame.f_lineno)
            if key not in self._seen and self._fd is not None:
                self._seen.add(key)
                # One write of one short line with O_APPEND: processes and threads side by side
                # do not mix their lines.
                os.write(self._fd, f"{self._names[key[0]]}\t{key[1]}\n".encode())
        return self._line


def start_from_environment() -> None:
    """In a subprocess a test started: note its lines in the test's file (see :data:`TARGET`)."""
    tracer = LineTracer(os.environ[SOURCES].split(os.pathsep))
    tracer.point_at(os.environ[TARGET])
    tracer.start()


def read_hits(path: Path) -> dict[str, set[int]]:
    """The lines a test ran, by file, from the lines its processes appended."""
    lines: dict[str, set[int]] = {}
    for entry in path.read_text(encoding="utf-8").splitlines():
        name, _, number = entry.partition("\t")
        if number.isdigit():  # the last line of a process killed mid-write may be cut
            lines.setdefault(name, set()).add(int(number))
    return lines


_ORIGINAL = re.compile(r"^[ \t]*(?:async[ \t]+)?def (\w+)__mutmut_orig\(", re.MULTILINE)


def _digest(lines: list[str]) -> str:
    # Dedented: a method and a function of the same text are the same.
    return hashlib.sha256(textwrap.dedent("\n".join(lines)).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=8)
def originals(source: str) -> dict[str, tuple[int, int, str]]:
    """mutmut's copy of each original function in ``source``: its first and last line and a
    digest of its text. A test's lines are kept relative to these, so that a change elsewhere in
    the module leaves them true; a change to the function itself changes its digest."""
    found = {}
    text = source.splitlines()
    for match in _ORIGINAL.finditer(source):
        parsed = _function(source, match.group(1) + "__mutmut_orig")
        if parsed is None:
            continue
        before, node = parsed
        last = before + (node.end_lineno or node.lineno)
        found[match.group(1)] = (before + 1, last, _digest(text[before:last]))
    return found


def by_function(key: str, source: str, lines: set[int]) -> dict[str, dict[str, Any]]:
    """``lines`` of the module ``key`` (mutmut's ``source``) as offsets in each function that ran."""
    found: dict[str, dict[str, Any]] = {}
    for name, (first, last, function_digest) in originals(source).items():
        offsets = sorted(line - first for line in lines if first <= line <= last)
        if offsets:
            found[f"{key}:{name}"] = {"digest": function_digest, "lines": offsets}
    return found


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def save_record(folder: Path, test: str, test_file: Path, functions: dict[str, dict[str, Any]]) -> None:
    """Keep what ``test`` ran: per function, the lines and the digest of the function as it was,
    and the digest of the test's file: a test changed since may run other lines."""
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(test.encode()).hexdigest()[:24] + ".json"
    part = folder / (name + ".part")
    record = {"test": test, "test_file": file_digest(test_file), "functions": functions}
    part.write_text(json.dumps(record), encoding="utf-8")
    part.replace(folder / name)


def load_records(folder: Path) -> dict[str, dict[str, Any]]:
    records = {}
    for path in folder.glob("*.json"):
        record = json.loads(path.read_text(encoding="utf-8"))
        records[record["test"]] = record
    return records


def _function(source: str, name: str) -> tuple[int, ast.FunctionDef | ast.AsyncFunctionDef] | None:
    """The function ``name`` of ``source``, parsed alone (mutmut's files run to 100,000 lines,
    five seconds to parse whole), with the number of lines before it."""
    at = source.find(f"def {name}(")
    if at < 0:
        return None
    start = source.rfind("\n", 0, at) + 1
    indent = at - start
    if source[start:at].strip() not in ("", "async"):
        return None
    before = source.count("\n", 0, start)
    lines: list[str] = []
    while start < len(source):
        stop = source.find("\n", start)
        stop = len(source) if stop < 0 else stop
        line, start = source[start:stop], stop + 1
        body = line.lstrip()
        # The function ends at the first line as far left as its ``def`` but a closing bracket.
        if lines and body and len(line) - len(body) <= indent and not body.startswith(")"):
            break
        lines.append(line[indent:] if line[:indent].strip() == "" else line)
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    return before, node


def _statement_lines(function: ast.FunctionDef | ast.AsyncFunctionDef, line: int) -> range | None:
    """The lines of the innermost statement of ``function``'s body holding ``line``: one runs
    whenever the statement runs. For a compound statement, only its header. None when ``line``
    is outside every statement or in no header (an ``except`` or ``case`` clause)."""
    found: range | None = None
    for node in ast.walk(function):
        if node is function or not isinstance(node, ast.stmt):
            continue
        end = node.end_lineno or node.lineno
        if not node.lineno <= line <= end:
            continue
        children = [child for field in ("body", "orelse", "finalbody", "handlers", "cases")
                    for child in getattr(node, field, ()) or ()]
        if children:
            header = range(node.lineno, min(child.lineno for child in children))
            if line not in header:
                continue  # in a child, found below, or in a clause header: no statement
        else:
            header = range(node.lineno, end + 1)
        if found is None or len(header) <= len(found):
            found = header
    if found is not None and line not in found:
        return None
    return found


def changed_statements(source: str, function: str, mutant: str) -> tuple[str, dict[int, range]] | None:
    """For the mutant ``mutant`` of ``function`` in mutmut's ``source``: the digest of the
    original (``<function>__mutmut_orig``), and each line the mutant changes in it with the lines
    of the statement that holds it, all counted from its ``def``. None when it cannot tell:
    every test is then kept."""
    original, changed = _function(source, function + "__mutmut_orig"), _function(source, mutant)
    if original is None or changed is None:
        return None
    (offset, before_node), (changed_offset, after_node) = original, changed
    text = source.splitlines()
    before = text[offset:offset + (before_node.end_lineno or 0)]
    after = text[changed_offset:changed_offset + (after_node.end_lineno or 0)]
    if len(before) != len(after) or before_node.decorator_list or after_node.decorator_list:
        return None
    function_digest = _digest(before)
    before[0] = before[0].replace(function + "__mutmut_orig", "", 1)
    after[0] = after[0].replace(mutant, "", 1)
    statements: dict[int, range] = {}
    for index, (old, new) in enumerate(zip(before, after)):
        if old != new:
            lines = _statement_lines(before_node, index + 1)
            if lines is None:
                return None
            statements[index] = range(lines.start - 1, lines.stop - 1)
    return (function_digest, statements) if statements else None


def keep_tests_that_ran(tests: Iterable[str], records: dict[str, dict[str, Any]], test_files: dict[str, str],
                        function: str, function_digest: str, statements: dict[int, range]) -> list[str]:
    """Those of ``tests`` that ran a line of a statement the mutant changed, or that nothing is
    known of for this version of the test (``test_files``: the digest of each test file now) and
    of the function (``<module file>:<mangled name>``)."""
    kept = []
    for test in tests:
        record = records.get(test)
        if record is None or record["test_file"] != test_files.get(test.partition("::")[0]):
            kept.append(test)
            continue
        ran = record["functions"].get(function)
        if ran is None:
            continue  # noted with every function it ran: this one it did not
        if ran["digest"] != function_digest or any(set(ran["lines"]).intersection(lines) for lines in statements.values()):
            kept.append(test)
    return kept
