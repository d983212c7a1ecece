"""The record of `make mutate`'s results that git keeps: docs/mutation-results.json.

mutmut keeps its results in ``mutants/``, which git ignores: a new clone, or a machine that is
replaced, starts again from nothing, and the whole run takes longer than a working session here
(docs/TESTING.md, "Time"). So after each run the decided mutants are written to a file in the
repository, and the next ``make mutate`` (in any clone) starts from them, as PIT's history files
and Stryker's incremental report do.

A result is taken back only while what decided it is the same:

- mutmut's version and its settings (``[tool.mutmut]``): another version, or another pattern
  left unmutated, may number the mutants of the same function otherwise;
- the mutated function: mutmut's hash of its source, as mutmut itself keeps a result;
- for a kill, the test that killed it, as it was when it killed it (:func:`item_digest`): its
  source with its decorators, every name of its own module that it uses (helpers, constants,
  the list its cases come from), and the values of its parameters as pytest collected them
  (a case of ``corpus/cases.toml`` changed or gone is seen). A kill whose test changed or is
  gone is tested again, as Stryker reuses a kill only while "the culprit test still exists,
  and it didn't change". A helper or fixture of another module is not part of the digest: a
  change there that loses a kill goes unseen until the mutant runs again
  (``make mutate MUTANTS=…``).

A kill without a known test (a timeout, or a failure no test reported) is not recorded: it is
tested again. A survivor is taken back on its function's hash alone (Stryker also re-tests one
when a test that covers it changed): a new or stronger test could now kill it, so keeping it
can only understate the score, never overstate it.

This module is also a pytest plugin (``-p mutation_record``): with ``MUTATION_RECORD_DIGESTS``
set to a file, a collection writes each test's id and digest there, for :func:`current_digests`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

# mutmut's exit codes of a kill that a test reports, and of a mutant left alive (survived, no tests).
_KILLED = (1, 3)
ALIVE = (0, 5, 33)
DIGESTS = "MUTATION_RECORD_DIGESTS"


def function_of(mutant: str) -> str:
    """``reporter.cron.x_f__mutmut_3`` -> ``x_f``: the name mutmut keys its hashes by."""
    return re.sub(r"__mutmut_\d+$", "", mutant.rpartition(".")[2])


def module_path(mutant: str) -> str:
    """``reporter.state.history.xǁHistoryǁat__mutmut_1`` -> ``reporter/state/history.py``."""
    return mutant.rpartition(".")[0].replace(".", "/") + ".py"


def function_key(mutant: str) -> str:
    """The record's key of a mutant's function: ``reporter/cron.py::x_f``."""
    return f"{module_path(mutant)}::{function_of(mutant)}"


def settings(root: Path) -> dict[str, Any]:
    """What decides how mutmut numbers the mutants: its version and ``[tool.mutmut]``."""
    from importlib.metadata import version

    table = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")).get("tool", {}).get("mutmut", {})
    return {"mutmut": version("mutmut"), "tool.mutmut": table}


# -- what a test is -------------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _module(path: Path, stamp: tuple[int, int]) -> tuple[ast.Module, list[str], dict[str, list[ast.stmt]]]:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    names: dict[str, list[ast.stmt]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.setdefault(node.name, []).append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names.setdefault(name.id, []).append(node)
    return tree, text.splitlines(keepends=True), names


def _source(lines: list[str], node: ast.stmt) -> str:
    decorators = getattr(node, "decorator_list", [])
    first = min([node.lineno, *(d.lineno for d in decorators)])
    return "".join(lines[first - 1:node.end_lineno])


def static_digest(path: Path, qualname: str) -> str | None:
    """The digest of a test's source (``test_f`` or ``TestClass::test_f`` in ``path``) and of the
    module's own names it uses, at any depth; None if the file or the test is gone."""
    try:
        stat = path.stat()
        tree, lines, names = _module(path, (stat.st_mtime_ns, stat.st_size))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    body: list[ast.stmt] = tree.body
    node: ast.stmt | None = None
    for part in qualname.split("::"):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            return None
        body = getattr(node, "body", [])
    assert node is not None
    # A method's class is part of it: its decorators, its marks, its fixtures.
    top = next(n for n in tree.body if n.lineno <= node.lineno <= (n.end_lineno or n.lineno))
    seen: dict[int, ast.stmt] = {}
    todo = [top]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen[id(current)] = current
        for used in ast.walk(current):
            if isinstance(used, ast.Name):
                todo.extend(names.get(used.id, ()))
    text = "\0".join(_source(lines, n) for n in sorted(seen.values(), key=lambda n: n.lineno))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _parameters(item: Any) -> str:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return ""
    from _pytest._io.saferepr import saferepr

    # An object's default repr holds its address, which differs in each process.
    return re.sub(r" at 0x[0-9a-fA-F]+", "", saferepr(sorted(callspec.params.items()), maxsize=None))


def item_digest(item: Any) -> str | None:
    """The digest of a collected test: its source and its names (:func:`static_digest`), and
    its parameters' values."""
    qualname = item.nodeid.partition("::")[2].partition("[")[0]
    static = static_digest(Path(str(item.path)), qualname)
    if static is None:
        return None
    return hashlib.sha256(f"{static}\0{_parameters(item)}".encode()).hexdigest()[:16]


def pytest_collection_modifyitems(items: list[Any]) -> None:
    target = os.environ.get(DIGESTS)
    if not target:
        return
    with open(target, "a", encoding="utf-8") as out:
        for item in items:
            out.write(f"{item.nodeid}\t{item_digest(item) or ''}\n")


def current_digests(root: Path, nodeids: set[str]) -> dict[str, str | None]:
    """Each test's digest as the tests under ``root`` are now (None: gone), from a real collection."""
    root = root.resolve()
    files = sorted({nodeid.partition("::")[0] for nodeid in nodeids if (root / nodeid.partition("::")[0]).is_file()})
    found: dict[str, str] = {}
    if files:
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "digests.txt"
            here = str(Path(__file__).resolve().parent)
            env = {key: value for key, value in os.environ.items() if key != "MUTANT_UNDER_TEST"}
            env.update({DIGESTS: str(target), "PYTHONPATH": os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))})
            # --rootdir: test ids are relative to the project (or its copy), as mutmut's runs name them.
            done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly",
                                   "-p", "no:cacheprovider", "-p", "mutation_record", f"--rootdir={root}", *files],
                                  cwd=root, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"collecting the tests under {root} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
            for line in target.read_text(encoding="utf-8").splitlines():
                nodeid, _, digest = line.rpartition("\t")
                found[nodeid] = digest
    return {nodeid: found.get(nodeid) or None for nodeid in nodeids}


# -- the record -----------------------------------------------------------------------------------

def killers_of(mutants: Path) -> dict[str, tuple[str, str | None]]:
    """Each mutant's killing test and its digest then, from ``mutmut-killers.txt``."""
    try:
        lines = (mutants / "mutmut-killers.txt").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    killers: dict[str, tuple[str, str | None]] = {}
    for line in lines:
        name, _, rest = line.partition("\t")
        test, _, digest = rest.partition("\t")
        if "__mutmut_" in name and test:
            # The last line wins: a mutant tested again was killed by its newest run.
            killers[name] = (test, digest or None)
    return killers


def collect(mutants: Path, earlier: dict[str, Any] | None = None, *, about: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of what ``mutants/`` holds, on top of ``earlier`` (the record it started from).

    Only decided mutants go in, each kill with its test and that test's digest when it killed
    (noted by tests/mutation_hits.py; a line without one, from before, gets the digest of the
    test in the copy mutmut ran). A mutant ``mutants/`` has not decided keeps the earlier
    record's result if its function is the same, so that a run stopped early loses nothing.
    """
    if not (mutants / "tests").is_dir():
        raise RuntimeError(f"{mutants} holds no copy of the tests: no kill could be tied to its test")
    about = about or {}
    earlier = earlier if earlier and earlier.get("about", {}) == about else {"functions": {}, "results": {}, "postgresql": {}}
    killers = killers_of(mutants)
    undated = {test for test, digest in killers.values() if digest is None}
    dated = current_digests(mutants, undated) if undated else {}
    functions: dict[str, str] = {}
    results: dict[str, list[Any]] = {}
    for meta_path in sorted(mutants.rglob("*.py.meta")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        hashes = meta["hash_by_function_name"]
        for key, code in meta["exit_code_by_key"].items():
            function, fkey = function_of(key), function_key(key)
            if code in ALIVE:
                results[key] = [code, "", ""]
            elif code in _KILLED and key in killers:
                test, digest = killers[key]
                digest = digest or dated.get(test)
                if digest is None:
                    continue
                results[key] = [code, test, digest]
            elif code is None and key in earlier["results"] and earlier["functions"].get(fkey) == hashes.get(function):
                results[key] = earlier["results"][key]
            else:
                # A timeout, a kill no test reported, a segfault: tested again next time.
                continue
            functions[fkey] = hashes[function]
    postgresql = _postgresql(mutants, functions, results)
    for name, verdict in earlier.get("postgresql", {}).items():
        if name not in postgresql and results.get(name, [None])[0] in ALIVE \
                and earlier["functions"].get(function_key(name)) == functions.get(function_key(name)):
            postgresql[name] = verdict
    return {"about": about, "functions": functions, "results": results, "postgresql": postgresql}


def _postgresql(mutants: Path, functions: dict[str, str], results: dict[str, list[Any]]) -> dict[str, list[str]]:
    """The PostgreSQL pass's verdicts on mutants that mutmut left alive, on the same function."""
    try:
        found = json.loads((mutants / "mutmut-postgresql.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    kept: dict[str, list[str]] = {}
    for name, result in found.items():
        if not isinstance(result, dict) or results.get(name, [None])[0] not in ALIVE:
            continue
        if functions.get(function_key(name)) != result["function"]:
            continue
        if result["verdict"] == "killed":
            if not result.get("by") or not result.get("by_digest"):
                continue
            kept[name] = ["killed", result["by"], result["by_digest"]]
        else:
            kept[name] = [result["verdict"], "", ""]
    return kept


def restore(record: dict[str, Any], mutants: Path, root: Path, *, about: dict[str, Any] | None = None) -> dict[str, int]:
    """Give mutmut the record's results for the mutants ``mutants/`` has not decided.

    Before ``mutmut run``: a module that has no results yet gets a ``.meta`` file with the
    record's hashes and results, which mutmut merges as its own (it keeps a result while the
    function's hash is the same, and tests the rest). Where ``mutants/`` has results, only its
    undecided mutants whose function has the record's hash are filled in. The PostgreSQL
    verdicts go to ``mutmut-postgresql.json`` the same way. ``root`` holds the tests as they
    are now. Returns counts: ``offered`` (mutmut then drops those of a function whose source
    changed: only it computes the hash), ``changed test`` (a kill whose test changed or is
    gone, to be tested again) and ``other settings`` (every result, when the record was made
    with another mutmut or other settings).
    """
    counts = {"offered": 0, "changed test": 0, "other settings": 0}
    if record.get("about", {}) != (about or {}):
        counts["other settings"] = len(record["results"])
        return counts
    killers = {result[1] for result in (*record["results"].values(), *record["postgresql"].values()) if result[1]}
    current = current_digests(root, killers) if killers else {}

    def holds(result: list[Any]) -> bool:
        return not result[1] or (current.get(result[1]) is not None and current[result[1]] == result[2])

    by_module: dict[str, dict[str, list[Any]]] = {}
    for key, result in record["results"].items():
        by_module.setdefault(module_path(key), {})[key] = result
    for module, results in sorted(by_module.items()):
        meta_path = mutants / (module + ".meta")
        if meta_path.exists():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        else:
            prefix = module + "::"
            meta = {"exit_code_by_key": {}, "type_check_error_by_key": {}, "durations_by_key": {},
                    "estimated_durations_by_key": {},
                    "hash_by_function_name": {key.removeprefix(prefix): value for key, value in record["functions"].items()
                                              if key.startswith(prefix)}}
        codes = meta["exit_code_by_key"]
        for key, result in sorted(results.items()):
            if codes.get(key) is not None or meta["hash_by_function_name"].get(function_of(key)) != record["functions"].get(function_key(key)):
                continue
            if not holds(result):
                counts["changed test"] += 1
                continue
            codes[key] = result[0]
            counts["offered"] += 1
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(json.dumps(meta, indent=4), encoding="utf-8")
    store = mutants / "mutmut-postgresql.json"
    verdicts = json.loads(store.read_text(encoding="utf-8")) if store.exists() else {}
    for name, result in sorted(record["postgresql"].items()):
        if name in verdicts or not holds(result):
            continue
        verdicts[name] = {"verdict": result[0], "function": record["functions"][function_key(name)],
                          "by": result[1], "by_digest": result[2] or None}
    if verdicts:
        store.write_text(json.dumps(verdicts, indent=1, sort_keys=True), encoding="utf-8")
    # The kills by test, for tests/mutation_hits.py to put those tests first.
    lines = [f"{key}\t{result[1]}\t{result[2]}\n" for key, result in sorted(record["results"].items())
             if result[1] and holds(result)]
    if lines and not (mutants / "mutmut-killers.txt").exists():
        (mutants / "mutmut-killers.txt").write_text("".join(lines), encoding="utf-8")
    return counts


def dumps(record: dict[str, Any]) -> str:
    """One line per mutant, sorted: a run changes the lines of the mutants it decided, and git
    shows just those."""
    def section(items: dict[str, Any]) -> str:
        lines = [f"  {json.dumps(key, ensure_ascii=False)}: {json.dumps(value, ensure_ascii=False, sort_keys=True)}"
                 for key, value in sorted(items.items())]
        return "{\n" + ",\n".join(lines) + "\n }" if lines else "{}"

    parts = [f' "{name}": {section(record[name])}' for name in ("about", "functions", "results", "postgresql")]
    return "{\n" + ",\n".join(parts) + "\n}\n"
