"""`make mutate` tests a mutant only with the tests that ran the line it changes
(tests/mutation_lines.py): a wrong line, or a line left unnoted, would let a mutant live."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mutation_lines import by_function, changed_statements, keep_tests_that_ran, load_records, read_hits, save_record

HERE = Path(__file__).resolve().parent

# The shape mutmut 3 writes: the original under ``<name>__mutmut_orig``, each mutant beside it.
ORIGINAL = '''\
def x_f__mutmut_orig(a, b=1):
    """Doc."""
    total = a + b
    if (a >
            b):
        total = compute(
            a,
            b)
    try:
        total += 1
    except ValueError:
        pass
    def inner():
        return total * 2
    return inner()
'''
CHANGES = {1: ("b=1", "b=2"), 2: ("a + b", "a - b"), 3: ("b)\n    try", "None)\n    try"), 4: ("(a >", "(a >="),
           5: ("ValueError", "TypeError"), 6: ("total * 2", "total / 2"),
           7: ("    return inner()", "    return (\n        inner())"), 8: ("", "")}
MUTANTS = ORIGINAL + "".join("\n\n" + ORIGINAL.replace("__mutmut_orig", f"__mutmut_{n}").replace(old, new, 1)
                             for n, (old, new) in CHANGES.items())


@pytest.mark.parametrize(("mutant", "expected"), [
    # Lines are counted from the ``def``, so that a change elsewhere in the module leaves them true.
    ("x_f__mutmut_2", {2: range(2, 3)}),
    # The changed line is the last of a statement over three: any of the three says it ran.
    ("x_f__mutmut_3", {7: range(5, 8)}),
    # A compound statement: its header only, not its body.
    ("x_f__mutmut_4", {3: range(3, 5)}),
    ("x_f__mutmut_6", {13: range(13, 14)}),
    # A signature runs when the module is imported, an except clause is no statement, a mutant
    # of another length cannot be lined up, and one that changes nothing visible says nothing:
    # every test is kept.
    ("x_f__mutmut_1", None),
    ("x_f__mutmut_5", None),
    ("x_f__mutmut_7", None),
    ("x_f__mutmut_8", None),
    ("x_f__mutmut_99", None),
])
def test_a_mutant_is_matched_to_the_statement_it_changes(mutant: str, expected: dict[int, range] | None) -> None:
    found = changed_statements(MUTANTS, "x_f", mutant)
    assert (found and found[1]) == expected
    # The same function moved down, in a class, gives the same lines and the same digest.
    moved = "import os\n\n\nclass C:\n" + textwrap.indent(MUTANTS, "    ")
    assert changed_statements(moved, "x_f", mutant) == found


def test_a_test_is_kept_when_it_ran_the_statement_or_nothing_is_known_of_it(tmp_path: Path) -> None:
    folder, test_file = tmp_path / "lines", tmp_path / "test_m.py"
    test_file.write_text("def test(): pass\n")
    other = "def x_g__mutmut_orig():\n    return 1\n"

    def noted(test: str, lines: set[int], source: str = MUTANTS) -> None:
        save_record(folder, test, test_file, by_function("m.py", source, lines) | by_function("o.py", other, {2}))

    noted("test_m.py::ran_line_6", {3, 6, 10})
    noted("test_m.py::ran_line_8", {8})
    noted("test_m.py::ran_only_line_3", {3, 10})
    noted("test_m.py::ran_only_other_functions", set())
    # Lines noted when the function read otherwise: they say nothing of it now.
    noted("test_m.py::ran_an_earlier_version", {3}, MUTANTS.replace("total = a + b", "total = b + a"))
    tests = ["test_m.py::ran_line_6", "test_m.py::ran_line_8", "test_m.py::ran_only_line_3",
             "test_m.py::ran_only_other_functions", "test_m.py::ran_an_earlier_version", "test_m.py::unknown"]
    found = changed_statements(MUTANTS, "x_f", "x_f__mutmut_3")
    assert found is not None
    now = {"test_m.py": hashlib.sha256(test_file.read_bytes()).hexdigest()[:16]}
    assert keep_tests_that_ran(tests, load_records(folder), now, "m.py:x_f", *found) == [
        "test_m.py::ran_line_6", "test_m.py::ran_line_8", "test_m.py::ran_an_earlier_version", "test_m.py::unknown"]
    # A test whose file changed since may run other lines now.
    assert keep_tests_that_ran(tests, load_records(folder), {"test_m.py": "changed"}, "m.py:x_f", *found) == tests


def test_lines_are_noted_in_subprocesses_forks_and_threads_and_survive_a_kill(tmp_path: Path) -> None:
    module = tmp_path / "traced.py"
    module.write_text(textwrap.dedent("""\
        import os, signal, threading

        def branch(x):
            if x:
                return "yes"
            return "no"

        def in_thread():
            return "thread"

        def main():
            branch(True)
            t = threading.Thread(target=in_thread)
            t.start(); t.join()
            pid = os.fork()
            if pid == 0:
                branch(False)
                os._exit(0)
            os.waitpid(pid, 0)
            print("about to be killed", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
            print("never runs")

        def never_called():
            return 1
        """))
    hits = tmp_path / "hits.txt"
    script = (f"import sys; sys.path[:0] = [{str(HERE)!r}, {str(tmp_path)!r}]\n"
              "import mutation_lines; mutation_lines.start_from_environment()\n"
              "import traced; traced.main()\n")
    env = {**os.environ, "MUTMUT_LINES_SOURCES": str(module), "MUTMUT_LINES_FILE": str(hits)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout == "about to be killed\n"
    lines = read_hits(hits)
    assert set(lines) == {str(module.resolve())}
    # 1-11: the module's own lines as it is imported; 6, 17 and 18 ran only in the fork, 9 only
    # in the thread, 21 just before the kill; 22 and 25 never ran.
    assert sorted(lines[str(module.resolve())]) == [1, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 24]


def test_a_forked_process_notes_each_function_it_calls_in_the_tests_file(tmp_path: Path) -> None:
    # What a process that a test forks records under `make mutate`'s stats run, where mutmut's
    # own record would stay in the fork's memory.
    from mutation_calls import calls_to_the_file

    hits = tmp_path / "hits.txt"
    pid = os.fork()
    if pid == 0:
        # Only in the fork: in this process the variable would feed these names to mutmut.
        os.environ["MUTMUT_HITS_FILE"] = str(hits)
        try:
            record = calls_to_the_file()
            for name in ("reporter.state.history.xǁHistoryǁclaim_delivery", "reporter.cron.x_parse",
                         "reporter.state.history.xǁHistoryǁclaim_delivery"):
                record(name, caller=None)
        except BaseException:
            os._exit(1)
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert hits.read_text(encoding="utf-8").splitlines() == [
        "reporter.state.history.xǁHistoryǁclaim_delivery", "reporter.cron.x_parse"]


def test_a_config_mutant_runs_the_tests_of_configuration_unless_the_whole_suite_is_asked_for(monkeypatch) -> None:
    from mutation_hits import own_tests

    nodeids = ["tests/test_config.py::test_a", "tests/test_corpus.py::test_b[x]", "tests/test_deliver.py::test_c",
               "tests/test_validate.py::test_d", "tests/test_config_extra.py::test_e"]
    monkeypatch.delenv("MUTATION_WHOLE_SUITE", raising=False)
    assert own_tests("reporter.config.x__report__mutmut_5", nodeids) == [
        "tests/test_config.py::test_a", "tests/test_corpus.py::test_b[x]", "tests/test_validate.py::test_d"]
    assert own_tests("reporter.config.xǁProjectǁreport__mutmut_1", nodeids) == own_tests("reporter.config.x_f__mutmut_1", nodeids)
    assert own_tests("reporter.cron.x_parse__mutmut_1", nodeids) == nodeids
    assert own_tests("reporter.state.history.xǁHistoryǁcheck__mutmut_2", nodeids) == nodeids
    monkeypatch.setenv("MUTATION_WHOLE_SUITE", "1")
    assert own_tests("reporter.config.x__report__mutmut_5", nodeids) == nodeids
