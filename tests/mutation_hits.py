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
(``mutants/mutmut-killers.txt``: mutants of one function mostly fall to the same test), then
the rest by their time in the stats run, quickest first, so that a mutant one quick test kills
does not wait on a slow one first. Outside mutmut every hook returns at once.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
_FILE = "MUTMUT_HITS_FILE"


def _collecting() -> bool:
    return os.environ.get("MUTANT_UNDER_TEST") == "stats"


def _testing_a_mutant() -> bool:
    return "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "")


def _mutated_function() -> str:
    return re.sub(r"__mutmut_\d+$", "", os.environ["MUTANT_UNDER_TEST"])


def _killers() -> Path:
    return _HERE.parent / "mutmut-killers.txt"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not _testing_a_mutant():
        return
    from mutmut.state import state

    durations = state().duration_by_test
    function = _mutated_function()
    try:
        lines = _killers().read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    kills = Counter(test for name, _, test in (line.partition("\t") for line in lines) if name == function)
    # Across files: a module-scoped fixture may then be set up more than once per mutant,
    # which costs less than running a slow test before the quick one that kills the mutant.
    items.sort(key=lambda item: (-kills[item.nodeid], durations.get(item.nodeid, float("inf"))))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed and _testing_a_mutant():
        # One short line per kill, appended: safe beside another mutmut child doing the same.
        with _killers().open("a", encoding="utf-8") as killers:
            killers.write(f"{_mutated_function()}\t{report.nodeid}\n")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not _collecting():
        return
    root = _HERE.parent
    # Only ever into mutmut's own copy of the project, never into a working tree.
    assert root.name == "mutants", f"MUTANT_UNDER_TEST=stats outside mutants/: {root}"
    shutil.copyfile(_HERE / "mutation_sitecustomize.py", root / "sitecustomize.py")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _collecting():
        return
    fd, path = tempfile.mkstemp(prefix="mutmut-hits-", suffix=".txt")
    os.close(fd)
    os.environ[_FILE] = path


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
