"""Importing WeasyPrint without its slow search for the native libraries.

WeasyPrint opens Pango, HarfBuzz, fontconfig and GObject through cffi, trying several names for
each (Windows, macOS and Linux spellings) until one loads. For every name that does not load,
cffi asks ``ctypes.util.find_library``, which on Linux starts ``ldconfig``, then ``gcc``, then
``ld``: about 0.2 s of a cold render spent on names that cannot exist here. During that import
only, a name that the dynamic linker's cache (``ldconfig -p``, read once) does not know is
answered "not found" at once; WeasyPrint then goes on to the name that loads. If WeasyPrint
cannot load its libraries that way, the import is tried again with the full search, so a system
whose libraries only ``gcc`` can find still works, only slower.
"""

from __future__ import annotations

import ctypes.util
import re
import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator


def import_weasyprint():
    """``weasyprint``, imported once per process."""
    if "weasyprint" in sys.modules:
        return sys.modules["weasyprint"]
    try:
        with _cached_library_search():
            import weasyprint  # noqa: PLC0415
    except OSError:
        for name in [m for m in sys.modules if m == "weasyprint" or m.startswith("weasyprint.")]:
            del sys.modules[name]
        import weasyprint  # noqa: PLC0415 - the full search, as WeasyPrint does it
    return weasyprint


@contextmanager
def _cached_library_search() -> Iterator[None]:
    try:
        listed = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10,
                                env={"PATH": "/sbin:/usr/sbin:/bin:/usr/bin"}).stdout
    except (OSError, subprocess.SubprocessError):
        yield  # no ldconfig: the usual search
        return
    known = set(re.findall(r"^\s+lib(\S+?)\.so", listed, re.MULTILINE))
    if not known:
        yield
        return
    search = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        return search(name) if name in known else None

    ctypes.util.find_library = find_library
    try:
        yield
    finally:
        ctypes.util.find_library = search
