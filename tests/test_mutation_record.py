"""`make mutate` starts from the results git keeps (docs/mutation-results.json, written by
tests/mutation_record.py): a result taken back that no longer holds would count a mutant as
killed that nothing kills now."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mutation_record import collect, current_digests, dumps, restore

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

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

# As tests/mutation_hits.py notes each kill: the mutant, the test that failed, its digest.
KILLERS_HOOK = '''\
import os
from pathlib import Path

import pytest

from mutation_record import item_digest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", ""):
        with (Path(__file__).resolve().parents[1] / "mutmut-killers.txt").open("a") as killers:
            killers.write(f"{os.environ['MUTANT_UNDER_TEST']}\\t{report.nodeid}\\t{item_digest(item)}\\n")
    return report
'''


def _project(folder: Path, calc: str = CALC, tests: str = CALC_TESTS) -> Path:
    (folder / "pkg").mkdir(parents=True)
    (folder / "tests").mkdir()
    (folder / "docs").mkdir()
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "pkg" / "calc.py").write_text(calc)
    (folder / "tests" / "test_calc.py").write_text(tests)
    (folder / "tests" / "conftest.py").write_text(KILLERS_HOOK)
    (folder / "pyproject.toml").write_text('[tool.mutmut]\nsource_paths = ["pkg"]\n')
    return folder


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MUTANT_UNDER_TEST", "PYTEST_"))}
    env["PYTHONPATH"] = str(HERE)
    return env


def _mutmut(folder: Path) -> dict:
    done = subprocess.run([str(Path(sys.executable).with_name("mutmut")), "run", "--max-children", "2"], cwd=folder,
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads((folder / "mutants" / "pkg" / "calc.py.meta").read_text())


def _script(name: str):
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(ROOT / "scripts" / name))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_a_new_clone_keeps_the_recorded_results_and_tests_only_what_changed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHONPATH", str(HERE))
    record_script = _script("mutation-record")
    first = _project(tmp_path / "first")
    codes = _mutmut(first)["exit_code_by_key"]
    assert record_script.main("save", root=first) == 0
    record = json.loads((first / "docs" / "mutation-results.json").read_text())
    assert record["about"]["tool.mutmut"] == {"source_paths": ["pkg"]}
    assert {key: result[:2] for key, result in record["results"].items()} == {
        key: [code, f"tests/test_calc.py::test_{key.split('x_')[1].split('__')[0]}" if code == 1 else ""]
        for key, code in codes.items()}
    assert codes["pkg.calc.x_clamp__mutmut_1"] == 0  # `a <= low`: the test never reaches the edge

    # The same project elsewhere, unchanged: every result is taken back, none runs again.
    same = _project(tmp_path / "same")
    (same / "docs" / "mutation-results.json").write_text(dumps(record))
    assert record_script.main("restore", root=same) == 0
    assert f"{len(codes)} result(s)" in capsys.readouterr().out
    assert _mutmut(same)["durations_by_key"] == {}

    # A new clone: `double` is written another way, and test_clamp checks more.
    second = _project(tmp_path / "second", calc=CALC.replace("a * 2", "a + a"),
                      tests=CALC_TESTS.replace("10) == 5\n", "10) == 5\n    assert clamp(-1, 0, 10) == 0\n"))
    (second / "docs" / "mutation-results.json").write_text(dumps(record))
    assert record_script.main("restore", root=second) == 0
    assert "4 kill(s) whose test changed" in capsys.readouterr().out  # clamp's four
    again = _mutmut(second)
    # mutmut ran what changed (double's mutants, clamp's kills) and kept the rest as recorded.
    assert set(again["durations_by_key"]) == {key for key in again["exit_code_by_key"] if "x_double" in key} | {
        f"pkg.calc.x_clamp__mutmut_{n}" for n in (2, 3, 4, 5)}
    assert again["exit_code_by_key"]["pkg.calc.x_add__mutmut_1"] == 1
    assert again["exit_code_by_key"]["pkg.calc.x_clamp__mutmut_1"] == 0

    # Made with other settings, the record gives nothing back.
    other = _project(tmp_path / "other")
    (other / "pyproject.toml").write_text('[tool.mutmut]\nsource_paths = ["pkg"]\ndo_not_mutate_patterns = ["^ *if"]\n')
    (other / "docs" / "mutation-results.json").write_text(dumps(record))
    assert record_script.main("restore", root=other) == 0
    assert "every mutant will be tested" in capsys.readouterr().out
    assert not (other / "mutants").exists()


CASES_TESTS = '''\
import tomllib
from pathlib import Path

import pytest

CASES = tomllib.loads((Path(__file__).parent / "cases.toml").read_text())["case"]
LIMIT = 10


def _limit():
    return LIMIT


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case):
    assert case["value"] < _limit()


def test_plain():
    assert True


@pytest.mark.usefixtures()
class TestGroup:
    def test_method(self):
        assert True
'''

CASES_TOML = '''\
[[case]]
name = "one"
value = 1

[[case]]
name = "two"
value = 2
'''


def test_a_tests_digest_follows_its_source_its_modules_names_and_its_cases(tmp_path, monkeypatch):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_x.py").write_text(CASES_TESTS)
    (tests / "cases.toml").write_text(CASES_TOML)
    ids = {"tests/test_x.py::test_case[one]", "tests/test_x.py::test_case[two]", "tests/test_x.py::test_plain",
           "tests/test_x.py::TestGroup::test_method", "tests/test_x.py::test_gone", "tests/test_gone.py::test_a"}

    def digests() -> dict:
        return current_digests(tmp_path, ids)

    before = digests()
    assert before["tests/test_x.py::test_gone"] is None and before["tests/test_gone.py::test_a"] is None
    known = {key: value for key, value in before.items() if value is not None}
    # scripts/mutation-score names mutants/ from the repository's root, as a relative path.
    monkeypatch.chdir(tmp_path.parent)
    assert current_digests(Path(tmp_path.name), ids) == before
    assert len(known) == 4 and len(set(known.values())) == 4

    def changed(**edits: str) -> set[str]:
        for name, text in edits.items():
            (tests / name).write_text(text)
        now = digests()
        (tests / "test_x.py").write_text(CASES_TESTS)
        (tests / "cases.toml").write_text(CASES_TOML)
        return {key.rpartition("::")[2] for key in known if now[key] != known[key]}

    assert changed(**{"cases.toml": CASES_TOML.replace("value = 2", "value = 3")}) == {"test_case[two]"}
    assert changed(**{"cases.toml": CASES_TOML.replace('name = "two"', 'name = "deux"')}) == {"test_case[two]"}
    assert changed(**{"test_x.py": CASES_TESTS.replace("LIMIT = 10", "LIMIT = 11")}) == {"test_case[one]", "test_case[two]"}
    assert changed(**{"test_x.py": CASES_TESTS.replace("< _limit()", "<= _limit()")}) == {"test_case[one]", "test_case[two]"}
    assert changed(**{"test_x.py": CASES_TESTS.replace("    assert True\n\n\n@", "    assert 1\n\n\n@")}) == {"test_plain"}
    assert changed(**{"test_x.py": CASES_TESTS.replace("usefixtures()", "usefixtures('tmp_path')")}) == {"test_method"}
    assert changed(**{"test_x.py": CASES_TESTS + "\n\ndef test_new():\n    pass\n"}) == set()
    # Tests that cannot be collected say so, rather than count as changed or gone.
    (tests / "test_x.py").write_text(CASES_TESTS + "\ndef broken(:\n")
    with pytest.raises(RuntimeError, match=r"(?s)collecting the tests under .* failed.*test_x\.py"):
        digests()


def _meta(codes: dict, hashes: dict) -> str:
    return json.dumps({"exit_code_by_key": codes, "hash_by_function_name": hashes, "type_check_error_by_key": {},
                       "durations_by_key": {}, "estimated_durations_by_key": {}})


def test_no_result_is_taken_back_into_a_function_that_changed_or_over_one_decided(tmp_path):
    project = _project(tmp_path)
    digest = current_digests(project, {"tests/test_calc.py::test_add"})["tests/test_calc.py::test_add"]
    record = {"about": {}, "functions": {"pkg/calc.py::x_add": "aaa", "pkg/calc.py::x_double": "bbb"},
              "results": {"pkg.calc.x_add__mutmut_1": [1, "tests/test_calc.py::test_add", digest],
                          "pkg.calc.x_add__mutmut_2": [0, "", ""], "pkg.calc.x_double__mutmut_1": [1, "tests/test_calc.py::test_add", digest],
                          # written by hand, or by a fault: a kill by a test that is gone, with no digest
                          "pkg.calc.x_add__mutmut_3": [1, "tests/test_calc.py::test_gone", None]},
              "postgresql": {"pkg.calc.x_add__mutmut_2": ["killed", "tests/test_calc.py::test_add", digest]}}
    meta = project / "mutants" / "pkg" / "calc.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(_meta({"pkg.calc.x_add__mutmut_1": None, "pkg.calc.x_add__mutmut_2": 1, "pkg.calc.x_add__mutmut_3": None,
                           "pkg.calc.x_double__mutmut_1": None},
                          {"x_add": "aaa", "x_double": "changed"}))
    # What mutants/ knows already (its own kills, its own PostgreSQL verdicts) stays as it is.
    killers = project / "mutants" / "mutmut-killers.txt"
    killers.write_text("pkg.calc.x_add__mutmut_2\ttests/test_calc.py::test_add\tabc\n")
    verdicts = project / "mutants" / "mutmut-postgresql.json"
    verdicts.write_text(json.dumps({"pkg.calc.x_add__mutmut_2": {"verdict": "survived", "function": "aaa"}}))
    assert restore(record, project / "mutants", project, about={}) == {"offered": 1, "changed test": 1, "other settings": 0}
    assert json.loads(meta.read_text())["exit_code_by_key"] == {
        "pkg.calc.x_add__mutmut_1": 1, "pkg.calc.x_add__mutmut_2": 1, "pkg.calc.x_add__mutmut_3": None,
        "pkg.calc.x_double__mutmut_1": None}
    assert killers.read_text() == "pkg.calc.x_add__mutmut_2\ttests/test_calc.py::test_add\tabc\n"
    assert json.loads(verdicts.read_text()) == {"pkg.calc.x_add__mutmut_2": {"verdict": "survived", "function": "aaa"}}


def test_a_kill_is_recorded_with_its_newest_test_and_never_without_one(tmp_path):
    mutants = _project(tmp_path / "mutants")
    (mutants / "pkg" / "calc.py.meta").write_text(_meta(
        {"pkg.calc.x_add__mutmut_1": 1, "pkg.calc.x_add__mutmut_2": 0, "pkg.calc.x_add__mutmut_3": 36,
         "pkg.calc.x_add__mutmut_4": 1, "pkg.calc.x_add__mutmut_5": None, "pkg.calc.x_add__mutmut_6": 1,
         "pkg.calc.x_double__mutmut_1": None,
         "pkg.calc.x_clamp__mutmut_1": 1},
        {"x_add": "aaa", "x_double": "new", "x_clamp": "ccc"}))
    # mutant 1 was killed by test_double, then (tested again) by test_add; mutant 2, killed
    # once, survives now; 3 timed out and 4 failed with no test to name: neither is kept.
    # clamp's killer was noted before kills carried a digest: it gets the digest of the copy;
    # 6's, noted so too, is gone from the copy: nothing holds that kill.
    (mutants / "mutmut-killers.txt").write_text(
        "pkg.calc.x_add__mutmut_6\ttests/test_calc.py::test_gone\n"
        "pkg.calc.x_add__mutmut_1\ttests/test_calc.py::test_double\td-old\n"
        "pkg.calc.x_add__mutmut_2\ttests/test_calc.py::test_double\td-old\n"
        "pkg.calc.x_add__mutmut_1\ttests/test_calc.py::test_add\td-add\n"
        "pkg.calc.x_clamp__mutmut_1\ttests/test_calc.py::test_clamp\n")
    earlier = {"about": {"a": 1}, "functions": {"pkg/calc.py::x_add": "aaa", "pkg/calc.py::x_double": "old"}, "postgresql": {},
               "results": {"pkg.calc.x_add__mutmut_5": [1, "tests/test_calc.py::test_add", "d5"],
                           "pkg.calc.x_double__mutmut_1": [1, "tests/test_calc.py::test_double", "d6"]}}
    record = collect(mutants, earlier, about={"a": 1})
    clamp = current_digests(mutants, {"tests/test_calc.py::test_clamp"})["tests/test_calc.py::test_clamp"]
    assert clamp is not None
    assert record["results"] == {"pkg.calc.x_add__mutmut_1": [1, "tests/test_calc.py::test_add", "d-add"],
                                 "pkg.calc.x_add__mutmut_2": [0, "", ""],
                                 "pkg.calc.x_add__mutmut_5": [1, "tests/test_calc.py::test_add", "d5"],
                                 "pkg.calc.x_clamp__mutmut_1": [1, "tests/test_calc.py::test_clamp", clamp]}
    assert record["functions"] == {"pkg/calc.py::x_add": "aaa", "pkg/calc.py::x_clamp": "ccc"}
    # Made with other settings, the earlier record is not carried over.
    assert "pkg.calc.x_add__mutmut_5" not in collect(mutants, earlier, about={"a": 2})["results"]

    # The next run puts each kill's test first: restore writes them for tests/mutation_hits.py.
    clone = _project(tmp_path / "clone")
    restore({**record, "results": {key: value for key, value in record["results"].items() if "clamp" in key}},
            clone / "mutants", clone, about={"a": 1})
    assert (clone / "mutants" / "mutmut-killers.txt").read_text() == (
        f"pkg.calc.x_clamp__mutmut_1\ttests/test_calc.py::test_clamp\t{clamp}\n")


def test_no_record_is_written_without_the_copy_of_the_tests_mutmut_ran(tmp_path):
    mutants = tmp_path / "mutants"
    (mutants / "pkg").mkdir(parents=True)
    (mutants / "pkg" / "calc.py.meta").write_text(_meta({"pkg.calc.x_add__mutmut_1": 1}, {"x_add": "aaa"}))
    with pytest.raises(RuntimeError, match="no copy of the tests"):
        collect(mutants)


def test_a_postgresql_kill_is_kept_while_its_test_is_the_same(tmp_path):
    mutants = _project(tmp_path / "mutants")
    (mutants / "pkg" / "calc.py.meta").write_text(_meta(
        {"pkg.calc.x_add__mutmut_1": 0, "pkg.calc.x_add__mutmut_2": 0, "pkg.calc.x_add__mutmut_3": 0}, {"x_add": "aaa"}))
    by = "tests/test_calc.py::test_add"
    digest = current_digests(mutants, {by})[by]
    (mutants / "mutmut-postgresql.json").write_text(json.dumps({
        "pkg.calc.x_add__mutmut_1": {"verdict": "killed", "function": "aaa", "by": by, "by_digest": digest},
        "pkg.calc.x_add__mutmut_2": {"verdict": "killed", "function": "aaa", "by": by, "by_digest": None},
        "pkg.calc.x_add__mutmut_3": {"verdict": "survived", "function": "aaa", "by": "", "by_digest": None}}))
    record = json.loads(dumps(collect(mutants)))
    assert record["postgresql"] == {"pkg.calc.x_add__mutmut_1": ["killed", by, digest],
                                    "pkg.calc.x_add__mutmut_3": ["survived", "", ""]}
    # A verdict on another version of the function, or on a mutant mutmut itself kills now, is dropped.
    meta = json.loads((mutants / "pkg" / "calc.py.meta").read_text())
    for codes, hashes in (({"pkg.calc.x_add__mutmut_1": 1}, {}), ({}, {"x_add": "changed"})):
        (mutants / "pkg" / "calc.py.meta").write_text(json.dumps({
            **meta, "exit_code_by_key": {**meta["exit_code_by_key"], **codes},
            "hash_by_function_name": {**meta["hash_by_function_name"], **hashes}}))
        assert "pkg.calc.x_add__mutmut_1" not in collect(mutants, record)["postgresql"]
    (mutants / "pkg" / "calc.py.meta").write_text(json.dumps(meta))
    (mutants / "mutmut-postgresql.json").unlink()
    assert collect(mutants, record)["postgresql"] == record["postgresql"]

    # scripts/mutation-postgresql and scripts/mutation-score count it while its test is the same.
    script = _script("mutation-postgresql")
    clone = _project(tmp_path / "clone")
    restore(record, clone / "mutants", clone, about={})
    restored = json.loads((clone / "mutants" / "mutmut-postgresql.json").read_text())
    # As mutmut copies the project into mutants/: the code beside the record's .meta, and the tests.
    (clone / "mutants" / "tests").mkdir()
    (clone / "mutants" / "tests" / "test_calc.py").write_text(CALC_TESTS)
    (clone / "mutants" / "pkg" / "__init__.py").write_text("")
    (clone / "mutants" / "pkg" / "calc.py").write_text(CALC)
    current = current_digests(clone / "mutants", script.killing_tests(restored))
    assert script.holds(restored["pkg.calc.x_add__mutmut_1"], "aaa", current)
    assert not script.holds(restored["pkg.calc.x_add__mutmut_1"], "changed", current)
    assert not script.holds(restored["pkg.calc.x_add__mutmut_1"], "aaa", {by: "other"})
    assert not script.holds({**restored["pkg.calc.x_add__mutmut_1"], "by_digest": None}, "aaa", {by: None})
    assert script.holds(restored["pkg.calc.x_add__mutmut_3"], "aaa", {})

    # A clone whose test changed is given no kill to hold.
    other = _project(tmp_path / "other", tests=CALC_TESTS.replace("add(2, 3) == 5", "add(2, 2) == 4"))
    restore(record, other / "mutants", other, about={})
    assert set(json.loads((other / "mutants" / "mutmut-postgresql.json").read_text())) == {"pkg.calc.x_add__mutmut_3"}
