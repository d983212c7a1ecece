"""20 editions (10 reports x 2 languages) through the scheduler's warm pool, against 20 cold
`reporter render` processes in a row, measured side by side in one run.

The pool side is a whole cold `reporter run-due --workers 2` process: start-up, the workers'
imports, and every render. Target: pool time <= 0.5 x the cold renders' time.
Usage: .venv/bin/python benchmarks/schedule_bench.py [REPORTS]   (10 reports by default)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from schedule_helpers import make_project, report_block  # noqa: E402

NOW = "2025-11-03T08:00:20+05:00"  # a Monday, just after the reports' 08:00 slot


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def main() -> None:
    if importlib.util.find_spec("weasyprint") is None or importlib.util.find_spec("click") is None:
        sys.exit(f"{sys.executable} lacks reporter's dependencies: run this with the clone's "
                 f".venv/bin/python (make test sets it up)")
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    reports = [f"brief{i:02d}" for i in range(count)]
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = make_project(folder, [report_block(r) for r in reports])
        cli = [python, "-m", "reporter", "--config", str(config)]
        timed([*cli, "render", reports[0], "--lang", "en", "--date", "2025-11-03"])  # warm the file cache
        cold = 0.0
        for report in reports:
            for lang in ("ru", "en"):
                cold += timed([*cli, "render", report, "--lang", lang, "--date", "2025-11-03"])
        shutil.rmtree(folder / "output")
        pool = timed([*cli, "run-due", "--workers", "2"], env={"REPORTER_NOW": NOW})
        written = len(list((folder / "output").rglob("*.pdf")))
    editions = 2 * count
    print(f"{editions} cold `reporter render REPORT --lang L` in a row: {cold:.1f} s ({cold / editions:.2f} s each)")
    print(f"`reporter run-due --workers 2`, {count} reports x 2 languages ({written} PDFs): {pool:.1f} s")
    print(f"ratio pool / cold renders: {pool / cold:.2f}  (target <= 0.50)")


if __name__ == "__main__":
    main()
