"""WeasyPrint imported without its slow library search (reporter/pipeline/libraries.py) loads the
very same native libraries as a plain import, and leaves ctypes as it found it."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

PROBE = r"""
import ctypes.util, json, sys
before = ctypes.util.find_library
if sys.argv[1] == "reporter":
    from reporter.pipeline.libraries import import_weasyprint
    weasyprint = import_weasyprint()
else:
    import weasyprint
from weasyprint.text.ffi import pango
maps = open("/proc/self/maps").read().split()
libraries = sorted({word.rsplit("/", 1)[-1] for word in maps
                    if any(k in word for k in ("pango", "harfbuzz", "fontconfig", "gobject"))})
print(json.dumps({"libraries": libraries, "pango": pango.pango_version(), "restored": ctypes.util.find_library is before,
                  "pdf": weasyprint.HTML(string="<p>ok</p>").write_pdf()[:5].decode()}))
"""


def _probe(how: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, how], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, check=True)
    return json.loads(done.stdout)


def test_the_quick_import_loads_the_same_libraries_as_weasyprints_own_search() -> None:
    plain, quick = _probe("plain"), _probe("reporter")
    assert quick["libraries"] == plain["libraries"]
    assert any(name.startswith("libpango-1.0.so") for name in quick["libraries"])
    assert quick["pango"] == plain["pango"] > 0
    assert quick["pdf"] == "%PDF-"
    assert quick["restored"], "ctypes.util.find_library was left replaced"
