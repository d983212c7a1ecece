"""`make mutate` starts from the results git keeps (docs/mutation-results.json, written by
tests/mutation_record.py): a result taken back that no longer holds would count a mutant as
killed that nothing kills now."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from mutation_record import collect, dumps, restore, digest_of_test

ROOT = Path(__file__).resolve().parents[1]

CALC = '''\
def add(a, b):
    return a + b


def double(a):
    return a * 2


def clamp(a, low, high):
    if a < low:
        return low
    return min(a, high)
'''

CALC_TESTS = '''\
from pkg.calc import add, clamp, double


def test_add():
    assert add(2, 3) == 5


def test_double():
    assert double(4) == 8


def test_clamp():
    assert clamp(5, 0, 10) == 5
'''

# As tests/mutation_hits.py notes each kill: the mutant and the test that failed.
KILLERS_HOOK = '''\
import os
from pathlib import Path


def pytest_runtest_logreport(report):
    if report.failed and "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", ""):
        with (Path(__file__).resolve().parents[1] / "mutmut-killers.txt").open("a") as killers:
            killers.write(f"{os.environ['MUTANT_UNDER_TEST']}\\t{report.nodeid}\\n")
'''


def _project(folder: Path, calc: str = CALC, tests: str = CALC_TESTS) -> Path:
    (folder / "pkg").mkdir(parents=True)
    (folder / "tests").mkdir()
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "pkg" / "calc.py").write_text(calc)
    (folder / "tests" / "test_calc.py").write_text(tests)
    (folder / "tests" / "conftest.py").write_text(KILLERS_HOOK)
    (folder / "pyproject.toml").write_text('[tool.mutmut]\nsource_paths = ["pkg"]\n')
    return folder


def _mutmut(folder: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MUTANT_UNDER_TEST", "PYTEST_"))}
    done = subprocess.run([str(Path(sys.executable).with_name("mutmut")), "run", "--max-children", "2"], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads((folder / "mutants" / "pkg" / "calc.py.meta").read_text())


def test_a_new_clone_keeps_the_recorded_results_and_tests_only_what_changed(tmp_path):
    first = _mutmut(_project(tmp_path / "first"))
    record = json.loads(dumps(collect(tmp_path / "first" / "mutants")))
    codes = first["exit_code_by_key"]
    assert record["results"] == {
        key: [code, f"tests/test_calc.py::test_{key.split('x_')[1].split('__')[0]}" if code == 1 else ""]
        for key, code in codes.items()}
    assert codes["pkg.calc.x_clamp__mutmut_1"] == 0  # `a <= low`: the test never reaches the edge

    # A new clone: `double` is written another way, and test_clamp checks more.
    second = _project(tmp_path / "second", calc=CALC.replace("a * 2", "a + a"),
                      tests=CALC_TESTS.replace("10) == 5\n", "10) == 5\n    assert clamp(-1, 0, 10) == 0\n"))
    counts = restore(record, second / "mutants", second)
    assert counts["changed test"] == 4  # clamp's four kills, by a test that changed
    again = _mutmut(second)

    # mutmut ran what changed (double's mutants, clamp's kills) and kept the rest as recorded.
    ran = set(again["durations_by_key"])
    assert ran == {key for key in again["exit_code_by_key"] if "x_double" in key} | {
        f"pkg.calc.x_clamp__mutmut_{n}" for n in (2, 3, 4, 5)}
    assert again["exit_code_by_key"]["pkg.calc.x_add__mutmut_1"] == 1
    assert again["exit_code_by_key"]["pkg.calc.x_clamp__mutmut_1"] == 0


def test_no_result_is_taken_back_into_a_function_that_changed_or_over_one_decided(tmp_path):
    record = {"functions": {"pkg/calc.py::x_add": "aaa", "pkg/calc.py::x_double": "bbb"},
              "tests": {}, "postgresql": {},
              "results": {"pkg.calc.x_add__mutmut_1": [1, ""], "pkg.calc.x_add__mutmut_2": [0, ""],
                          "pkg.calc.x_double__mutmut_1": [1, ""]}}
    meta = tmp_path / "mutants" / "pkg" / "calc.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({
        "exit_code_by_key": {"pkg.calc.x_add__mutmut_1": None, "pkg.calc.x_add__mutmut_2": 1,
                             "pkg.calc.x_double__mutmut_1": None},
        "hash_by_function_name": {"x_add": "aaa", "x_double": "changed"},
        "type_check_error_by_key": {}, "durations_by_key": {}, "estimated_durations_by_key": {}}))
    # What mutants/ knows already (its own kills, its own PostgreSQL verdicts) stays as it is.
    killers = tmp_path / "mutants" / "mutmut-killers.txt"
    killers.write_text("pkg.calc.x_add__mutmut_2\ttests/test_calc.py::test_add\n")
    verdicts = tmp_path / "mutants" / "mutmut-postgresql.json"
    verdicts.write_text(json.dumps({"pkg.calc.x_add__mutmut_2": {"verdict": "survived", "function": "aaa"}}))
    record["postgresql"] = {"pkg.calc.x_add__mutmut_2": ["killed", ""]}
    record["results"]["pkg.calc.x_add__mutmut_1"] = [1, "tests/test_calc.py::test_add"]
    record["tests"] = {"tests/test_calc.py::test_add": None}  # not there, as here
    assert restore(record, tmp_path / "mutants", tmp_path) == {"offered": 1, "changed test": 0}
    assert json.loads(meta.read_text())["exit_code_by_key"] == {
        "pkg.calc.x_add__mutmut_1": 1, "pkg.calc.x_add__mutmut_2": 1, "pkg.calc.x_double__mutmut_1": None}
    assert killers.read_text() == "pkg.calc.x_add__mutmut_2\ttests/test_calc.py::test_add\n"
    assert json.loads(verdicts.read_text()) == {"pkg.calc.x_add__mutmut_2": {"verdict": "survived", "function": "aaa"}}


def test_a_run_stopped_early_loses_none_of_the_earlier_results(tmp_path):
    mutants = _project(tmp_path / "mutants")
    (mutants / "pkg" / "calc.py.meta").write_text(json.dumps({
        "exit_code_by_key": {"pkg.calc.x_add__mutmut_1": 0, "pkg.calc.x_add__mutmut_2": None,
                             "pkg.calc.x_double__mutmut_1": None, "pkg.calc.x_clamp__mutmut_1": 1},
        "hash_by_function_name": {"x_add": "aaa", "x_double": "new", "x_clamp": "ccc"},
        "type_check_error_by_key": {}, "durations_by_key": {}, "estimated_durations_by_key": {}}))
    # Killed by a test that the copy mutmut ran no longer has: nothing holds that kill.
    (mutants / "mutmut-killers.txt").write_text("pkg.calc.x_clamp__mutmut_1\ttests/test_calc.py::test_gone\n")
    earlier = {"functions": {"pkg/calc.py::x_add": "aaa", "pkg/calc.py::x_double": "old"},
               "tests": {"tests/test_calc.py::test_add": "d1"}, "postgresql": {},
               "results": {"pkg.calc.x_add__mutmut_2": [1, "tests/test_calc.py::test_add"],
                           "pkg.calc.x_double__mutmut_1": [1, ""]}}
    record = collect(mutants, earlier)
    assert record["results"] == {"pkg.calc.x_add__mutmut_1": [0, ""],
                                 "pkg.calc.x_add__mutmut_2": [1, "tests/test_calc.py::test_add"]}
    assert record["functions"] == {"pkg/calc.py::x_add": "aaa"}
    assert record["tests"] == {"tests/test_calc.py::test_add": "d1"}


def test_each_kill_is_recorded_with_its_newest_test_and_the_next_run_puts_that_test_first(tmp_path):
    mutants = _project(tmp_path / "mutants")
    (mutants / "pkg" / "calc.py.meta").write_text(json.dumps({
        "exit_code_by_key": {"pkg.calc.x_add__mutmut_1": 1, "pkg.calc.x_add__mutmut_2": 0},
        "hash_by_function_name": {"x_add": "aaa"},
        "type_check_error_by_key": {}, "durations_by_key": {}, "estimated_durations_by_key": {}}))
    # mutant 1 was killed by test_double, then (tested again) by test_add; mutant 2, killed once,
    # survives now that its function is written anew.
    (mutants / "mutmut-killers.txt").write_text(
        "pkg.calc.x_add__mutmut_1\ttests/test_calc.py::test_double\n"
        "pkg.calc.x_add__mutmut_2\ttests/test_calc.py::test_double\n"
        "pkg.calc.x_add__mutmut_1\ttests/test_calc.py::test_add\n")
    record = collect(mutants)
    assert record["results"] == {"pkg.calc.x_add__mutmut_1": [1, "tests/test_calc.py::test_add"],
                                 "pkg.calc.x_add__mutmut_2": [0, ""]}
    assert list(record["tests"]) == ["tests/test_calc.py::test_add"]

    clone = _project(tmp_path / "clone")
    restore(record, clone / "mutants", clone)
    assert (clone / "mutants" / "mutmut-killers.txt").read_text() == (
        "pkg.calc.x_add__mutmut_1\ttests/test_calc.py::test_add\n")


def test_a_tests_digest_follows_its_own_source_and_parameters_only(tmp_path):
    source = textwrap.dedent('''\
        import pytest


        @pytest.mark.parametrize("n", [1, 2])
        def test_one(n):
            assert n


        class TestGroup:
            def test_two(self):
                assert True
        ''')
    path = tmp_path / "tests" / "test_x.py"
    path.parent.mkdir()
    path.write_text(source)
    one, two = "tests/test_x.py::test_one[1]", "tests/test_x.py::TestGroup::test_two"
    before = digest_of_test(tmp_path, one), digest_of_test(tmp_path, two)
    assert None not in before and before[0] != before[1]
    assert digest_of_test(tmp_path, "tests/test_x.py::test_one[2]") == before[0]

    path.write_text(source.replace("[1, 2]", "[1, 3]"))
    assert digest_of_test(tmp_path, one) != before[0] and digest_of_test(tmp_path, two) == before[1]
    path.write_text(source.replace("assert True", "assert not False"))
    assert digest_of_test(tmp_path, one) == before[0] and digest_of_test(tmp_path, two) != before[1]
    assert digest_of_test(tmp_path, "tests/test_x.py::test_three") is None
    assert digest_of_test(tmp_path, "tests/test_gone.py::test_one") is None


def _postgresql_script():
    loader = importlib.machinery.SourceFileLoader("mutation_postgresql", str(ROOT / "scripts" / "mutation-postgresql"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_a_postgresql_kill_is_kept_while_its_test_is_the_same(tmp_path):
    mutants = _project(tmp_path / "mutants")
    (mutants / "pkg" / "calc.py.meta").write_text(json.dumps({
        "exit_code_by_key": {"pkg.calc.x_add__mutmut_1": 0, "pkg.calc.x_add__mutmut_2": 0},
        "hash_by_function_name": {"x_add": "aaa"},
        "type_check_error_by_key": {}, "durations_by_key": {}, "estimated_durations_by_key": {}}))
    by = "tests/test_calc.py::test_add"
    (mutants / "mutmut-postgresql.json").write_text(json.dumps({
        "pkg.calc.x_add__mutmut_1": {"verdict": "killed", "function": "aaa", "by": by,
                                     "by_digest": digest_of_test(mutants, by)},
        "pkg.calc.x_add__mutmut_2": {"verdict": "killed", "function": "aaa", "by": by, "by_digest": "stale"}}))
    record = json.loads(dumps(collect(mutants)))
    assert record["postgresql"] == {"pkg.calc.x_add__mutmut_1": ["killed", by]}
    # A verdict on another version of the function, or on a mutant mutmut itself kills now, is dropped.
    later = json.loads((mutants / "pkg" / "calc.py.meta").read_text())
    later["exit_code_by_key"]["pkg.calc.x_add__mutmut_1"] = 1
    (mutants / "pkg" / "calc.py.meta").write_text(json.dumps(later))
    assert collect(mutants, record)["postgresql"] == {}
    later["exit_code_by_key"]["pkg.calc.x_add__mutmut_1"] = 0
    later["hash_by_function_name"]["x_add"] = "changed"
    (mutants / "pkg" / "calc.py.meta").write_text(json.dumps(later))
    assert collect(mutants, record)["postgresql"] == {}
    later["hash_by_function_name"]["x_add"] = "aaa"
    (mutants / "pkg" / "calc.py.meta").write_text(json.dumps(later))
    (mutants / "mutmut-postgresql.json").unlink()
    assert collect(mutants, record)["postgresql"] == record["postgresql"]

    clone = _project(tmp_path / "clone")
    restore(record, clone / "mutants", clone)
    restored = json.loads((clone / "mutants" / "mutmut-postgresql.json").read_text())
    script = _postgresql_script()
    (clone / "mutants" / "tests").mkdir()
    shutil.copy(clone / "tests" / "test_calc.py", clone / "mutants" / "tests")
    assert script.holds(restored["pkg.calc.x_add__mutmut_1"], "aaa", clone / "mutants")
    assert not script.holds(restored["pkg.calc.x_add__mutmut_1"], "changed", clone / "mutants")
    (clone / "mutants" / "tests" / "test_calc.py").write_text(CALC_TESTS.replace("3) == 5\n", "3) == 5 and True\n"))
    assert not script.holds(restored["pkg.calc.x_add__mutmut_1"], "aaa", clone / "mutants")

    # A clone whose test changed is given no kill to hold.
    other = _project(tmp_path / "other", tests=CALC_TESTS.replace("add(2, 3) == 5", "add(2, 2) == 4"))
    restore(record, other / "mutants", other)
    assert not (other / "mutants" / "mutmut-postgresql.json").exists()
