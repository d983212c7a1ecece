"""Under `make mutate`'s stats run only: each function a process calls, appended to the file the
running test names (``MUTMUT_HITS_FILE``), in place of mutmut's own record of it.

mutmut notes the calls of its stats run in the memory of the process they run in. Two kinds of
process lose them: a reporter subprocess a test starts (it cannot load mutmut's configuration
from its temp folder; :mod:`mutation_sitecustomize` installs this there) and a process a test
forks (its memory ends with it; :mod:`mutation_hits` installs this at each fork). One line per
function, at its first call: appends of a line are atomic, so processes side by side do not mix
their lines, and a process that ends by ``os._exit`` or a signal has written what it called.
"""

from __future__ import annotations

import os
from typing import Callable

FILE = "MUTMUT_HITS_FILE"


def calls_to_the_file() -> Callable[..., None]:
    """A stand-in for mutmut's ``record_trampoline_hit`` that appends each function's first call
    to the file the running test names."""
    seen: set[str] = set()

    def record(name: str, caller: str | None = None) -> None:
        target = os.environ.get(FILE)
        if name in seen or not target:
            return
        seen.add(name)
        with open(target, "a", encoding="utf-8") as hits:
            hits.write(name + "\n")

    return record


def note_calls_in_the_file() -> None:
    """From now on, this process's calls go to the test's file instead of mutmut's memory."""
    from mutmut.mutation import trampoline

    trampoline.record_trampoline_hit = calls_to_the_file()
