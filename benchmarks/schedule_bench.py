"""20 editions (10 reports x 2 languages) through the scheduler's warm pool, against 20 cold
`reporter render` processes in a row, measured side by side in one run.

The pool side is a whole cold `reporter run-due --workers 2` process: start-up, the workers'
imports, and every render. Target: pool time <= 0.5 x the cold renders' time.
Usage: python benchmarks/schedule_bench.py
"""

from __future__ import annotations

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

REPORTS = [f"brief{i:02d}" for i in range(10)]
NOW = "2025-11-03T08:00:20+05:00"  # a Monday, just after the reports' 08:00 slot


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def main() -> None:
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = make_project(folder, [report_block(r) for r in REPORTS])
        cli = [python, "-m", "reporter", "--config", str(config)]
        timed([*cli, "render", REPORTS[0], "--lang", "en", "--date", "2025-11-03"])  # warm the file cache
        cold = 0.0
        for report in REPORTS:
            for lang in ("ru", "en"):
                cold += timed([*cli, "render", report, "--lang", lang, "--date", "2025-11-03"])
        shutil.rmtree(folder / "output")
        pool = timed([*cli, "run-due", "--workers", "2"], env={"REPORTER_NOW": NOW})
        written = len(list((folder / "output").rglob("*.pdf")))
    print(f"20 cold `reporter render REPORT --lang L` in a row: {cold:.1f} s ({cold / 20:.2f} s each)")
    print(f"`reporter run-due --workers 2`, 10 reports x 2 languages ({written} PDFs): {pool:.1f} s")
    print(f"ratio pool / cold renders: {pool / cold:.2f}  (target <= 0.50)")


if __name__ == "__main__":
    main()
