"""Copied to ``mutants/sitecustomize.py`` by :mod:`mutation_hits` during mutmut's stats run, so
that every reporter subprocess the tests start runs it first (``PYTHONPATH`` is ``mutants/``).

In that run mutmut's trampolines note each call in the process they run in, through mutmut's
configuration, which a subprocess in a temp folder cannot load. Here each function's first call
is appended to the file the running test named instead, one line per function: appends of a
line are atomic, so processes side by side do not mix their lines, and a process that ends by
``os._exit`` or a signal has written what it called until then. In that run, and in a
``MUTANT_UNDER_TEST=lines`` run, it also starts :mod:`mutation_lines`' tracer, which notes the lines
of the mutated files that run. In any other run this does nothing.
"""

import os

if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    from mutmut.mutation import trampoline

    _seen: set[str] = set()

    def _record(name: str, caller: str | None = None) -> None:
        target = os.environ.get("MUTMUT_HITS_FILE")
        if name in _seen or not target:
            return
        _seen.add(name)
        with open(target, "a", encoding="utf-8") as hits:
            hits.write(name + "\n")

    trampoline.record_trampoline_hit = _record

if os.environ.get("MUTANT_UNDER_TEST") in ("stats", "lines") and os.environ.get("MUTMUT_LINES_FILE"):
    import importlib.util
    from pathlib import Path

    # Loaded by path: the tests' folder is not put on this process's own import path.
    _spec = importlib.util.spec_from_file_location("mutation_lines", Path(__file__).parent / "tests" / "mutation_lines.py")
    assert _spec is not None and _spec.loader is not None
    _lines = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_lines)
    _lines.start_from_environment()
