"""The record of `make mutate`'s results that git keeps: docs/mutation-results.json.

mutmut keeps its results in ``mutants/``, which git ignores: a new clone, or a machine that is
replaced, starts again from nothing, and the whole run takes longer than a working session here
(docs/TESTING.md, "Time"). So after each run the decided mutants are written to a file in the
repository, and the next ``make mutate`` (in any clone) starts from them, as PIT's history files
and Stryker's incremental report do.

A result is taken back only while what decided it is the same:

- the mutated function: mutmut's hash of its source, as mutmut itself keeps a result;
- for a kill, the test that killed it: the digest of that test function's source, decorators
  (and so its parameters) included. A kill whose test changed or is gone is tested again.
  A helper or fixture that the test calls is not part of that digest, as in Stryker's: a change
  there that loses a kill goes unseen until the mutant runs again (``make mutate MUTANTS=…``).

A survivor is taken back on its function's hash alone: a new or stronger test could now kill
it, so keeping it can only understate the score, never overstate it.

The PostgreSQL pass's verdicts (scripts/mutation-postgresql) are kept the same way.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path
from typing import Any

# mutmut's exit codes of a decided mutant that a kill recorded by test explains.
_KILLED = (1, 3)
_ALIVE = (0, 5, 33)


def function_of(mutant: str) -> str:
    """``reporter.cron.x_f__mutmut_3`` -> ``x_f``: the name mutmut keys its hashes by."""
    return re.sub(r"__mutmut_\d+$", "", mutant.rpartition(".")[2])


def module_path(mutant: str) -> str:
    """``reporter.state.history.xǁHistoryǁat__mutmut_1`` -> ``reporter/state/history.py``."""
    return mutant.rpartition(".")[0].replace(".", "/") + ".py"


def digest_of_test(root: Path, nodeid: str) -> str | None:
    """The digest of the source of the test ``nodeid`` names (under ``root``), or None if it is gone."""
    path, _, rest = nodeid.partition("::")
    names = rest.partition("[")[0].split("::")
    try:
        text = (root / path).read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    source = text.splitlines(keepends=True)
    body: list[ast.stmt] = tree.body
    node: ast.AST | None = None
    for name in names:
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == name), None)
        if node is None:
            return None
        body = getattr(node, "body", [])
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return hashlib.sha256("".join(source[first - 1:node.end_lineno]).encode()).hexdigest()[:16]


def _first_killers(mutants: Path) -> dict[str, str]:
    """Each mutant's killing test, from ``mutmut-killers.txt`` (tests/mutation_hits.py)."""
    try:
        lines = (mutants / "mutmut-killers.txt").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    killers: dict[str, str] = {}
    for line in lines:
        name, _, test = line.partition("\t")
        if "__mutmut_" in name:
            # The last line wins: a mutant tested again was killed by its newest run.
            killers[name] = test
    return killers


def function_key(mutant: str) -> str:
    """The record's key of a mutant's function: ``reporter/cron.py::x_f``."""
    return f"{module_path(mutant)}::{function_of(mutant)}"


def collect(mutants: Path, earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of what ``mutants/`` holds, on top of ``earlier`` (the record it started from).

    Only decided mutants go in; a mutant that ``mutants/`` has not decided keeps the earlier
    record's result if its function is the same, so that a run stopped early loses nothing.
    """
    earlier = earlier or {"functions": {}, "results": {}, "tests": {}, "postgresql": {}}
    killers = _first_killers(mutants)
    functions: dict[str, str] = {}
    results: dict[str, list[Any]] = {}
    tests: dict[str, str] = {}
    for meta_path in sorted(mutants.rglob("*.py.meta")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        hashes = meta["hash_by_function_name"]
        for key, code in meta["exit_code_by_key"].items():
            function, fkey = function_of(key), function_key(key)
            if code is not None:
                killer = killers.get(key, "") if code in _KILLED else ""
                if killer:
                    digest = digest_of_test(mutants, killer)
                    if digest is None:
                        # Its test is gone from the copy mutmut ran: nothing to hold the kill by.
                        continue
                    tests[killer] = digest
                results[key] = [code, killer]
            elif key in earlier["results"] and earlier["functions"].get(fkey) == hashes.get(function):
                results[key] = earlier["results"][key]
                if results[key][1]:
                    tests[results[key][1]] = earlier["tests"][results[key][1]]
            else:
                continue
            functions[fkey] = hashes[function]
    postgresql = _collect_postgresql(mutants, functions, results, tests)
    for name, verdict in earlier.get("postgresql", {}).items():
        if name not in postgresql and results.get(name, [None])[0] in _ALIVE \
                and earlier["functions"].get(function_key(name)) == functions.get(function_key(name)):
            postgresql[name] = verdict
            if verdict[1]:
                tests[verdict[1]] = earlier["tests"][verdict[1]]
    return {"functions": functions, "tests": tests, "results": results, "postgresql": postgresql}


def _collect_postgresql(mutants: Path, functions: dict[str, str], results: dict[str, list[Any]],
                        tests: dict[str, str]) -> dict[str, list[str]]:
    """The PostgreSQL pass's verdicts on mutants that mutmut left alive, on the same function."""
    try:
        found = json.loads((mutants / "mutmut-postgresql.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    kept: dict[str, list[str]] = {}
    for name, result in found.items():
        if not isinstance(result, dict) or results.get(name, [None])[0] not in _ALIVE:
            continue
        if functions.get(function_key(name)) != result["function"]:
            continue
        by = result.get("by", "") if result["verdict"] == "killed" else ""
        if result["verdict"] == "killed":
            digest = digest_of_test(mutants, by) if by else None
            if digest is None or digest != result.get("by_digest"):
                continue
            tests[by] = digest
        kept[name] = [result["verdict"], by]
    return kept


def restore(record: dict[str, Any], mutants: Path, tests_root: Path) -> dict[str, int]:
    """Give mutmut the record's results for the mutants ``mutants/`` has not decided.

    Before ``mutmut run``: a module that has no results yet gets a ``.meta`` file with the
    record's hashes and results, which mutmut merges as its own (it keeps a result while the
    function's hash is the same, and tests the rest). Where ``mutants/`` has results, only its
    undecided mutants whose function has the record's hash are filled in. The PostgreSQL
    verdicts go to ``mutmut-postgresql.json`` the same way. Returns counts: ``offered`` (mutmut
    then drops those of a function whose source changed: only it computes the hash), and
    ``changed test`` (a kill whose test changed or is gone, to be tested again).
    """
    counts = {"offered": 0, "changed test": 0}
    current = {nodeid: digest_of_test(tests_root, nodeid) for nodeid in record["tests"]}

    def holds(killer: str) -> bool:
        return not killer or current[killer] == record["tests"][killer]

    by_module: dict[str, dict[str, list[Any]]] = {}
    for key, result in record["results"].items():
        by_module.setdefault(module_path(key), {})[key] = result
    for module, results in sorted(by_module.items()):
        meta_path = mutants / (module + ".meta")
        if meta_path.exists():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        else:
            meta = {"exit_code_by_key": {}, "hash_by_function_name": {}, "type_check_error_by_key": {},
                    "durations_by_key": {}, "estimated_durations_by_key": {}}
            prefix = module + "::"
            meta["hash_by_function_name"] = {key.removeprefix(prefix): value for key, value in record["functions"].items()
                                             if key.startswith(prefix)}
        codes = meta["exit_code_by_key"]
        for key, (code, killer) in sorted(results.items()):
            if codes.get(key) is not None or meta["hash_by_function_name"].get(function_of(key)) != record["functions"].get(function_key(key)):
                continue
            if not holds(killer):
                counts["changed test"] += 1
                continue
            codes[key] = code
            counts["offered"] += 1
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(json.dumps(meta, indent=4), encoding="utf-8")
    store = mutants / "mutmut-postgresql.json"
    verdicts = json.loads(store.read_text(encoding="utf-8")) if store.exists() else {}
    for name, (verdict, by) in sorted(record.get("postgresql", {}).items()):
        if name in verdicts or not holds(by):
            continue
        verdicts[name] = {"verdict": verdict, "function": record["functions"][function_key(name)], "by": by,
                          "by_digest": current.get(by) if by else None}
    if verdicts:
        store.write_text(json.dumps(verdicts, indent=1, sort_keys=True), encoding="utf-8")
    # The kills by test, for tests/mutation_hits.py to put those tests first.
    killers = [f"{key}\t{killer}\n" for key, (_, killer) in sorted(record["results"].items()) if killer and holds(killer)]
    if killers and not (mutants / "mutmut-killers.txt").exists():
        (mutants / "mutmut-killers.txt").write_text("".join(killers), encoding="utf-8")
    return counts


def dumps(record: dict[str, Any]) -> str:
    """One line per mutant, sorted: a run changes the lines of the mutants it decided, and git
    shows just those."""
    def section(items: dict[str, Any]) -> str:
        lines = [f"  {json.dumps(key, ensure_ascii=False)}: {json.dumps(value, ensure_ascii=False)}"
                 for key, value in sorted(items.items())]
        return "{\n" + ",\n".join(lines) + "\n }" if lines else "{}"

    parts = [f' "{name}": {section(record[name])}' for name in ("functions", "tests", "results", "postgresql")]
    return "{\n" + ",\n".join(parts) + "\n}\n"
