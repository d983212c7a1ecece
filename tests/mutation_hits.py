"""Under `make mutate` only: the reporter code that CLI subprocesses run counts for mutmut.

mutmut 3 chooses the tests it runs against a mutant from one run of the suite with
``MUTANT_UNDER_TEST=stats``, in which every call of a mutated function is noted in the pytest
process. Most of this suite runs the CLI as a subprocess (``conftest.run_cli``), as a user
would; its calls happen in another process, and a function reached only there would count as
having no test at all. So, during that run, each test names a file in ``MUTMUT_HITS_FILE``;
:mod:`mutation_sitecustomize`, which this plugin puts first on the subprocesses' path, makes
each subprocess append the functions it calls; after the test they count as the test's own.

When a mutant runs, the subprocesses inherit ``MUTANT_UNDER_TEST`` and import the mutated
package from ``mutants/`` (``PYTHONPATH`` is the suite's ROOT, which is ``mutants/`` there).
mutmut hands pytest the chosen tests in no particular order and stops at the first failure
(``-x``); this plugin puts first the tests that killed other mutants of the same function
(``mutants/mutmut-killers.txt``: mutants of one function mostly fall to the same test; each
line also holds the test's digest, for the record git keeps, :mod:`mutation_record`), then the
rest by their time in the stats run, quickest first, so that a mutant one quick test kills
does not wait on a slow one first. Of those tests it keeps only the ones that ran the line the
mutant changes, from what the stats run noted (:mod:`mutation_lines`). Outside mutmut every hook
returns at once.

A mutant of ``config.py`` runs only the tests of configuration (:data:`OWN_TESTS`): nearly every
test loads a config, so by line a survivor there would run them all, about ten minutes each.
``MUTATION_WHOLE_SUITE=1`` lifts that, for a second look at the survivors.

``scripts/mutation-postgresql`` runs a mutant once more against the PostgreSQL tests, which
mutmut's own run leaves out; with ``MUTATION_POSTGRESQL=1`` only the tests that use a
PostgreSQL server are kept.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest

import mutation_calls
import mutation_lines
import mutation_record

_HERE = Path(__file__).resolve().parent
_FILE = mutation_calls.FILE


def _collecting() -> bool:
    return os.environ.get("MUTANT_UNDER_TEST") == "stats"


def _noting_lines() -> bool:
    # "lines" notes the lines again without mutmut, when its stats exist already; mutmut's
    # trampolines treat it as no mutant at all (docs/TESTING.md).
    return os.environ.get("MUTANT_UNDER_TEST") in ("stats", "lines")


def _lines_folder() -> Path:
    return _HERE.parent / "mutation-lines"


def _mutated_sources() -> list[Path]:
    import tomllib

    settings = tomllib.loads((_HERE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    return [(_HERE.parent / path).resolve() for path in settings["tool"]["mutmut"]["only_mutate"]]


def _testing_a_mutant() -> bool:
    return "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "")


def _function_of(mutant: str) -> str:
    return re.sub(r"__mutmut_\d+$", "", mutant)


def _mutated_function() -> str:
    return _function_of(os.environ["MUTANT_UNDER_TEST"])


def _killers() -> Path:
    return _HERE.parent / "mutmut-killers.txt"


# The test files that carry a module's promises, where the module is on every test's path.
OWN_TESTS = {"reporter.config": ("tests/test_config.py", "tests/test_validate.py", "tests/test_corpus.py")}


def own_tests(mutant: str, nodeids: list[str]) -> list[str]:
    """Of ``nodeids``, those a mutant runs: its module's own tests (OWN_TESTS), else all of them."""
    files = OWN_TESTS.get(mutant.rpartition(".")[0])
    if files is None or os.environ.get("MUTATION_WHOLE_SUITE"):
        return nodeids
    return [nodeid for nodeid in nodeids if nodeid.partition("::")[0] in files]


def _keep(config: pytest.Config, items: list[pytest.Item], kept: set[str]) -> None:
    """Deselect, as pytest's -k would, every item whose id is not in ``kept``."""
    dropped = [item for item in items if item.nodeid not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item.nodeid in kept]


def _keep_own_tests(config: pytest.Config, items: list[pytest.Item]) -> None:
    _keep(config, items, set(own_tests(os.environ["MUTANT_UNDER_TEST"], [item.nodeid for item in items])))


def _uses_postgresql(item: pytest.Item) -> bool:
    # The `backend` fixture asks for the server by name at run time, so its PostgreSQL cases
    # show in their id only; the others name a PostgreSQL fixture.
    return "postgresql" in item.nodeid or bool({"postgres", "pg_backend"} & set(getattr(item, "fixturenames", ())))


def _keep_only_postgresql(config: pytest.Config, items: list[pytest.Item]) -> None:
    _keep(config, items, {item.nodeid for item in items if _uses_postgresql(item)})


def _keep_those_that_run_the_line(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _lines_folder().is_dir():
        return
    module, _, mutant = os.environ["MUTANT_UNDER_TEST"].rpartition(".")
    name = module.replace(".", "/") + ".py"
    function = _function_of(mutant)
    found = mutation_lines.changed_statements((_HERE.parent / name).read_text(encoding="utf-8"), function, mutant)
    if found is None:
        return
    test_files = {path: mutation_lines.file_digest(_HERE.parent / path) for path in {item.nodeid.partition("::")[0] for item in items}}
    kept = set(mutation_lines.keep_tests_that_ran([item.nodeid for item in items], mutation_lines.load_records(_lines_folder()),
                                                  test_files, f"{name}:{function}", *found))
    _keep(config, items, kept)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _testing_a_mutant():
        return
    from mutmut.state import state

    if os.environ.get("MUTATION_POSTGRESQL"):
        _keep_only_postgresql(config, items)
    else:
        _keep_own_tests(config, items)
    _keep_those_that_run_the_line(config, items)

    durations = state().duration_by_test
    function = _mutated_function()
    try:
        lines = _killers().read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    # A line names the mutant killed (or, written by an earlier version, its function), the test,
    # and (since the record) the test's digest.
    kills = Counter(rest.partition("\t")[0] for name, _, rest in (line.partition("\t") for line in lines)
                    if _function_of(name) == function)
    # Across files: a module-scoped fixture may then be set up more than once per mutant,
    # which costs less than running a slow test before the quick one that kills the mutant.
    items.sort(key=lambda item: (-kills[item.nodeid], durations.get(item.nodeid, float("inf"))))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report = yield
    if report.failed and _testing_a_mutant():
        # One short line per kill, appended: safe beside another mutmut child doing the same.
        # The test's digest as it killed: the record git keeps (mutation_record.py) takes the
        # kill back only while the test is the same.
        with _killers().open("a", encoding="utf-8") as killers:
            killers.write(f"{os.environ['MUTANT_UNDER_TEST']}\t{report.nodeid}\t{mutation_record.item_digest(item) or ''}\n")
    return report


_tracer: mutation_lines.LineTracer | None = None
_fixture_lines: dict[str, dict[str, set[int]]] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    global _tracer
    if _HERE.parent.name == "mutants":
        # Each CLI subprocess imports the mutated modules, which are large (config.py about
        # 120,000 lines). Where PYTHONDONTWRITEBYTECODE is set, as on these machines, each one
        # compiled them anew: 2 s per subprocess for config.py, against 0.1 s from the cache.
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if _collecting():
        # A process that a test forks (the races of two processes in test_state.py) would note
        # its calls in mutmut's memory, which ends with it: the race tests then counted for none
        # of the functions that only their processes call (claim_delivery's claim of a waiting row).
        os.register_at_fork(after_in_child=mutation_calls.note_calls_in_the_file)
    if not _noting_lines():
        return
    root = _HERE.parent
    # Only ever into mutmut's own copy of the project, never into a working tree.
    assert root.name == "mutants", f"MUTANT_UNDER_TEST={os.environ['MUTANT_UNDER_TEST']} outside mutants/: {root}"
    shutil.copyfile(_HERE / "mutation_sitecustomize.py", root / "sitecustomize.py")
    os.environ[mutation_lines.SOURCES] = os.pathsep.join(str(path) for path in _mutated_sources())
    _tracer = mutation_lines.LineTracer(os.environ[mutation_lines.SOURCES].split(os.pathsep))
    _tracer.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _tracer
    if _tracer is not None:
        _tracer.stop()
        _tracer = None
        os.environ.pop(mutation_lines.SOURCES, None)
        os.environ.pop(mutation_lines.TARGET, None)


def _note_lines_in(path: str | None) -> None:
    assert _tracer is not None
    if path is None:
        os.environ.pop(mutation_lines.TARGET, None)
    else:
        os.environ[mutation_lines.TARGET] = path
    _tracer.point_at(path)


def _new_file(prefix: str) -> str:
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".txt")
    os.close(fd)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest) -> object:
    # A fixture of a wider scope is set up once, in the first test that needs it; the lines it
    # runs then belong to every test that uses it (added in pytest_runtest_logfinish).
    if not _noting_lines() or fixturedef.scope == "function":
        yield
        return
    previous = os.environ.get(mutation_lines.TARGET)
    path = _new_file("mutmut-fixture-lines-")
    _note_lines_in(path)
    try:
        yield
    finally:
        _note_lines_in(previous)
        lines = _fixture_lines.setdefault(_fixture_key(fixturedef), {})
        for name, numbers in mutation_lines.read_hits(Path(path)).items():
            lines.setdefault(name, set()).update(numbers)
        os.unlink(path)


def _fixture_key(fixturedef: pytest.FixtureDef[object]) -> str:
    return f"{fixturedef.baseid}::{fixturedef.argname}"


_wider_fixtures: dict[str, list[str]] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if _noting_lines():
        _note_lines_in(_new_file("mutmut-lines-"))
        fixtures = getattr(item, "_fixtureinfo", None)
        _wider_fixtures[item.nodeid] = [
            _fixture_key(defs[-1]) for defs in (fixtures.name2fixturedefs.values() if fixtures else ())
            if defs and defs[-1].scope != "function"]
    if not _collecting():
        return
    os.environ[_FILE] = _new_file("mutmut-hits-")


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    path = os.environ.get(mutation_lines.TARGET)
    if not _noting_lines() or path is None:
        return
    _note_lines_in(None)
    hits = mutation_lines.read_hits(Path(path))
    os.unlink(path)
    for key in _wider_fixtures.pop(nodeid, ()):
        for name, numbers in _fixture_lines.get(key, {}).items():
            hits.setdefault(name, set()).update(numbers)
    functions = {}
    for source in _mutated_sources():
        if str(source) in hits:
            key = str(source.relative_to(_HERE.parent))
            functions.update(mutation_lines.by_function(key, _source_text(source), hits[str(source)]))
    mutation_lines.save_record(_lines_folder(), nodeid, _HERE.parent / nodeid.partition("::")[0], functions)


_texts: dict[Path, str] = {}


def _source_text(path: Path) -> str:
    if path not in _texts:
        _texts[path] = path.read_text(encoding="utf-8")
    return _texts[path]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    # tryfirst: before mutmut's own teardown hook, which files the calls under this test.
    path = os.environ.pop(_FILE, None)
    if not _collecting() or path is None:
        return
    from mutmut.state import state

    hits = Path(path)
    state()._stats.update(line for line in hits.read_text().splitlines() if line)
    hits.unlink()
