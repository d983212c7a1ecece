"""Copied to ``mutants/sitecustomize.py`` by :mod:`mutation_hits` during mutmut's stats run, so
that every reporter subprocess the tests start runs it first (``PYTHONPATH`` is ``mutants/``).

In that run mutmut's trampolines note each call in the process they run in, through mutmut's
configuration, which a subprocess in a temp folder cannot load: :mod:`mutation_calls` appends
them to the file the running test named instead. In that run, and in a
``MUTANT_UNDER_TEST=lines`` run, it also starts :mod:`mutation_lines`' tracer, which notes the lines
of the mutated files that run. In any other run this does nothing.
"""

import importlib.util
import os
from pathlib import Path


def _load(name: str):  # noqa: ANN202 (a module)
    # By path: the tests' folder is not put on this process's own import path.
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "tests" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    _load("mutation_calls").note_calls_in_the_file()

if os.environ.get("MUTANT_UNDER_TEST") in ("stats", "lines") and os.environ.get("MUTMUT_LINES_FILE"):
    _load("mutation_lines").start_from_environment()
