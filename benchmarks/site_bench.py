"""What the archive site costs: 2 reports x 50 editions, built in-process and by a cold `reporter site`,
and what rebuilding it adds to a cold `reporter render --format html`.

It works on a copy of the example project in a temp folder (editions made of small stand-in files,
their runs recorded in the history), so it never writes into the repository. Medians of ROUNDS.
Usage: python benchmarks/site_bench.py [ROUNDS]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reporter import config  # noqa: E402
from reporter.site.archive import build_site  # noqa: E402
from reporter.state.history import ArtifactRecord, History  # noqa: E402


def cli(project: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reporter", "--config", str(project / "reports.toml"), *args], check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - start


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / "project"
        shutil.copytree(ROOT, folder, ignore=shutil.ignore_patterns(".*", "output", "state", "tests", "benchmarks", "docs",
                                                                    "*.egg-info", "__pycache__"))
        project = config.load(folder / "reports.toml")
        history = History.at(project.state_path)
        now = datetime.now(timezone.utc)
        for report in list(project.reports.values())[:2]:
            for n in range(50):
                day = date.fromordinal(date(2024, 1, 1).toordinal() + 7 * n)
                edition = project.output_dir / report.id / day.isoformat()
                edition.mkdir(parents=True)
                files = []
                for lang in report.languages:
                    for fmt in report.formats:
                        path = edition / f"{report.id}.{lang}.{fmt}"
                        path.write_bytes(b"%PDF stand-in" if fmt == "pdf" else b"<!DOCTYPE html>")
                        files.append(ArtifactRecord(str(path), lang, fmt, "0" * 64, path.stat().st_size))
                run = history.start_run(report.id, day, "schedule", now)
                history.finish_run(run, "ok", now, files=files)
                (edition / "manifest.json").write_text(json.dumps({"format": 1, "changes": {
                    "previous": None, "line": {"ru": "Изменились 2 цифры", "en": "2 figures changed"}}}), encoding="utf-8")
        warm = []
        for _ in range(rounds):
            start = time.perf_counter()
            build_site(project, history)
            warm.append(time.perf_counter() - start)
        history.close()
        cold = [cli(folder, "site") for _ in range(rounds)]
        report = next(iter(project.reports))
        # A render into another folder skips the rebuild: the difference is what the rebuild adds.
        # Alternating, so that load on a shared machine hits both alike.
        with_site, without = [], []
        for _ in range(rounds):
            with_site.append(cli(folder, "render", report, "--date", "2025-11-05", "--format", "html"))
            without.append(cli(folder, "render", report, "--date", "2025-11-05", "--format", "html",
                               "--output", str(Path(temp) / "elsewhere")))
    print(f"build_site, 2 reports x 50 editions, in-process: median {statistics.median(warm) * 1000:.0f} ms")
    print(f"`reporter site`, cold process:                   median {statistics.median(cold) * 1000:.0f} ms")
    print(f"`reporter render --format html`, with the rebuild: median {statistics.median(with_site):.2f} s; "
          f"into another folder, without it: {statistics.median(without):.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
