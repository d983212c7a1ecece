"""Cold `reporter render` against the bare cost of its parts, measured side by side in one run.

The parts, each done bare in a fresh process: importing WeasyPrint and matplotlib, drawing the
same charts, and WeasyPrint writing the same HTML to PDF. Rounds alternate between the two so
that load on this shared machine hits both alike; medians are compared. Also times `--help`.
It works on a copy of the example project, so it never writes into the repository.
Usage: .venv/bin/python benchmarks/render_bench.py [ROUNDS], or make bench ROUNDS=N
"""

from __future__ import annotations

import importlib.util
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAY = "2025-11-05"
REPORT = "kz-us"

BARE = r'''
import sys
from pathlib import Path
import matplotlib.figure, weasyprint
from reporter import config
from reporter.pipeline import build
root = Path(sys.argv[1]); html_dir = Path(sys.argv[2]); report_id = sys.argv[3]
project = config.load(root / "reports.toml"); report = project.report(report_id)
knowledge = build.gather(project, report, build.load_datasets(project, report))
for code in report.languages:
    build.draw_charts(project, report, knowledge, build.language(project, code))
for code in report.languages:
    html = (html_dir / f"{code}.html").read_text(encoding="utf-8")
    weasyprint.HTML(string=html, base_url=str(project.templates_dir) + "/").write_pdf()
'''


def copy_project(folder: Path) -> Path:
    """The example project, copied: a benchmark never writes into the repository's state/ or output/."""
    for name in ("data", "templates"):
        shutil.copytree(ROOT / name, folder / name)
    shutil.copy(ROOT / "reports.toml", folder / "reports.toml")
    return folder / "reports.toml"


def prepare(config_path: Path, folder: Path) -> None:
    """Save the exact HTML the render gives WeasyPrint, so the bare run lays out the same pages."""
    from datetime import date

    from reporter import config
    from reporter.pipeline import build

    project = config.load(config_path)
    report = project.report(REPORT)
    knowledge = build.gather(project, report, build.load_datasets(project, report))
    for code in report.languages:
        lang = build.language(project, code)
        drawn = build.draw_charts(project, report, knowledge, lang)
        html, _ctx = build.edition_html(project, report, date.fromisoformat(DAY), lang, "pdf", knowledge, drawn)
        (folder / f"{code}.html").write_text(html, encoding="utf-8")


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    if importlib.util.find_spec("weasyprint") is None or importlib.util.find_spec("click") is None:
        sys.exit(f"{sys.executable} lacks reporter's dependencies: run this with the clone's "
                 f".venv/bin/python (make test sets it up)")
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "project").mkdir()
        config_path = copy_project(folder / "project")
        prepare(config_path, folder)
        render_cmd = [python, "-m", "reporter", "--config", str(config_path), "render", REPORT, "--date", DAY,
                      "--output", str(folder / "out")]
        bare_cmd = [python, "-c", BARE, str(folder / "project"), str(folder), REPORT]
        help_cmd = [python, "-m", "reporter", "--help"]
        timed(render_cmd), timed(bare_cmd)  # warm the OS file cache for both alike
        render_times, bare_times, help_times = [], [], []
        for _ in range(rounds):
            render_times.append(timed(render_cmd))
            bare_times.append(timed(bare_cmd))
            help_times.append(timed(help_cmd))
    render_s, bare_s, help_s = (statistics.median(t) for t in (render_times, bare_times, help_times))
    print(f"rounds: {rounds} (medians; all runs: render {[round(t, 2) for t in render_times]}, bare {[round(t, 2) for t in bare_times]})")
    print(f"cold `reporter render {REPORT}` (ru+en, pdf+html): {render_s:.2f} s")
    print(f"bare parts (imports, charts, WeasyPrint on the same HTML): {bare_s:.2f} s")
    print(f"ratio render / bare parts: {render_s / bare_s:.2f}  (target <= 1.20)")
    print(f"`reporter --help`: {help_s * 1000:.0f} ms  (target < 300 ms)")


if __name__ == "__main__":
    main()
