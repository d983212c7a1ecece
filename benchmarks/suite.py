"""`make bench`: reporter's cost against its peers, measured side by side in one run.

Every comparison is paired: each round runs both sides, in alternating order, so that load on
this shared machine hits both alike; the ratio is taken per round, then its median and spread
(lowest-highest) are printed. Like is measured against like: one warm worker against cold
renders in series, two warm workers against two cold processes at a time.

    1. cold `reporter render` against the same work done bare (imports, charts, WeasyPrint)
    2. per edition in a warm render process against bare charts + WeasyPrint in a warm process
    3. a batch through the local pool: against cold CLIs (1 worker vs in series, 2 vs two at a
       time), and 2 workers against 1 (throughput)
    4. Celery: editions per minute with 1 worker against 2, and what it adds per edition
    5. memory of one render process over many editions: peak, and growth
    6. start-up of `--help`, `list`, `run-due` with nothing due, against a bare Python start
    7. the peer of browser-based tools: the same final HTML printed by a warm headless Chromium

Everything runs in a temp folder, on the synthetic test brief of tests/projects.py (two
languages, PDF and HTML, three charts, a table, a timeline): the repository's own project,
state and output are never read or written. Documented in docs/BENCHMARKS.md.

Usage: .venv/bin/python benchmarks/suite.py [--rounds N] [--quick] [--only 1,3,...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

DAY = date(2025, 11, 3)  # a Monday
SLOT = "2025-11-03T08:00:20+05:00"  # just after the test reports' Monday 08:00 slot (Asia/Almaty)
LATER = "2025-11-05T12:00:00+05:00"  # nothing due: the next slot is the next Monday
# The children run as a user's would: Python may cache its bytecode (the Makefile turns that off
# for the suite, to leave the clone untouched), and no reporter setting leaks in.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("REPORTER_")}

# Charts and WeasyPrint for one edition, done bare: no config validation, no templates, no
# manifest, no history. argv: project folder, the folder of the saved HTML, the report id, the
# PDF variant. Cold: once. Warm: once per line read on stdin, timing charts and layout apart.
BARE = r'''
import sys, time
from pathlib import Path
t0 = time.perf_counter()
import weasyprint
from reporter import config
from reporter.pipeline import build
root, html_dir, report_id, variant, warm = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "warm"
project = config.load(root / "reports.toml"); report = project.report(report_id)
knowledge = build.gather(project, report, build.load_datasets(project, report))
htmls = {code: (html_dir / f"{code}.html").read_text(encoding="utf-8") for code in report.languages}
def edition():
    start = time.perf_counter()
    for code in report.languages:
        build.draw_charts(project, report, knowledge, build.language(project, code))
    drawn = time.perf_counter()
    for code in report.languages:
        weasyprint.HTML(string=htmls[code], base_url=str(project.templates_dir) + "/").write_pdf(pdf_variant=variant)
    return drawn - start, time.perf_counter() - drawn
if not warm:
    edition()
else:
    for line in sys.stdin:
        charts, layout = edition()
        print(f"{charts} {layout}", flush=True)
'''


@dataclass
class Paired:
    """One comparison: per-round seconds of ours and of the baseline."""

    name: str
    ours: list[float]
    base: list[float]
    target: str  # e.g. "<= 1.10"
    unit: str = "s"

    def ratios(self) -> list[float]:
        return [o / b for o, b in zip(self.ours, self.base)]

    def line(self) -> str:
        r = self.ratios()
        if self.target == "none":
            verdict = "(reported)"
        else:
            bound = float(self.target.split()[1])
            met = statistics.median(r) <= bound if self.target.startswith("<=") else statistics.median(r) >= bound
            verdict = "meets" if met else "MISSES"
        return (f"  {self.name:58} {_fmt(self.ours, self.unit):>12} {_fmt(self.base, self.unit):>12}  "
                f"x{statistics.median(r):5.2f} [{min(r):.2f}-{max(r):.2f}]  target {self.target:8} "
                f"{verdict}")


def _fmt(values: list[float], unit: str) -> str:
    value = statistics.median(values)
    return f"{value * 1000:.0f} ms" if unit == "ms" else f"{value:.2f} {unit}"


def _spread(values: list[float], scale: float = 1.0, unit: str = "") -> str:
    return (f"median {statistics.median(values) * scale:.2f}{unit} [{min(values) * scale:.2f}-"
            f"{max(values) * scale:.2f}]")


def timed(command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd or ROOT, env={**ENV, **(env or {})}, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(command)}\n{done.stdout}{done.stderr[-3000:]}")
    return took


def alternate(round_: int, *sides: Callable[[], float]) -> list[float]:
    """Runs every side once, in an order that turns each round, and returns their times in the
    order given."""
    order = list(range(len(sides)))
    shift = round_ % len(sides)
    order = order[shift:] + order[:shift]
    found = {}
    for index in order:
        found[index] = sides[index]()
    return [found[i] for i in range(len(sides))]


class Bench:
    def __init__(self, folder: Path, rounds: int, quick: bool) -> None:
        from projects import make_project, report_block

        self.folder, self.rounds, self.quick = folder, rounds, quick
        self.size = 2 if quick else 20
        self.project_dir = folder / "project"
        self.project_dir.mkdir()
        self.config = make_project(self.project_dir, [report_block(f"b{i:02}") for i in range(self.size)])
        self.cli = [sys.executable, "-m", "reporter", "--config", str(self.config)]
        self.html_dir = folder / "html"
        self.html_dir.mkdir()
        self._save_html("b00")
        self.results: list[Paired] = []
        self.notes: list[str] = []
        self._fresh = 0

    def fresh(self) -> str:
        self._fresh += 1
        return str(self.folder / "out" / f"{self._fresh}")

    def _save_html(self, report_id: str) -> None:
        """The exact HTML each language's PDF is laid out from, for the bare and browser sides."""
        from reporter import config
        from reporter.pipeline import build

        project = config.load(self.config)
        report = project.report(report_id)
        knowledge = build.gather(project, report, build.load_datasets(project, report))
        for code in report.languages:
            lang = build.language(project, code)
            drawn = build.draw_charts(project, report, knowledge, lang)
            html, _ctx = build.edition_html(project, report, DAY, lang, "pdf", knowledge, drawn)
            (self.html_dir / f"{code}.html").write_text(html, encoding="utf-8")

    def bare(self, mode: str) -> list[str]:
        from reporter.pipeline.pdf import VARIANT

        return [sys.executable, "-c", BARE, str(self.project_dir), str(self.html_dir), "b00", VARIANT, mode]

    def reset(self) -> None:
        for name in ("state", "output"):
            shutil.rmtree(self.project_dir / name, ignore_errors=True)

    # 1 -------------------------------------------------------------------------------------
    def cold(self) -> None:
        render = lambda: timed([*self.cli, "render", "b00", "--date", DAY.isoformat(), "--output", self.fresh()])  # noqa: E731
        bare = lambda: timed(self.bare("cold"))  # noqa: E731
        if not self.quick:
            render(), bare()  # the OS file cache and bytecode, for both alike
        ours, base = [], []
        for r in range(self.rounds):
            o, b = alternate(r, render, bare)
            ours.append(o)
            base.append(b)
        self.results.append(Paired("1. cold `reporter render` (ru+en, pdf+html) / bare parts", ours, base, "<= 1.10"))

    # 2 and 7 -------------------------------------------------------------------------------
    def warm(self, chromium: bool) -> None:
        from reporter.execute import RenderTask
        from reporter.execute.pool import ProcessPool

        pool = ProcessPool(size=1, max_tasks=100_000)
        bare = subprocess.Popen(self.bare("warm"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env=ENV, cwd=ROOT)
        printer = _Chromium(self.html_dir) if chromium else None
        per_round = 1 if self.quick else 5

        def ours() -> float:
            start = time.perf_counter()
            outcome = pool.run(RenderTask(str(self.config), "b00", DAY, self.fresh()), timeout=300)
            if not outcome.ok:
                raise SystemExit(f"warm render failed: {outcome.error}")
            return time.perf_counter() - start

        parts: list[tuple[float, float]] = []

        def theirs() -> float:
            bare.stdin.write("go\n")
            bare.stdin.flush()
            charts, layout = map(float, bare.stdout.readline().split())
            parts.append((charts, layout))
            return charts + layout

        try:
            for _ in range(1 if self.quick else 2):  # warm: imports, fonts, caches, on every side
                ours(), theirs()
                if printer:
                    printer.edition()
            rows: dict[str, tuple[list[float], list[float]]] = {"warm": ([], []), "chromium": ([], [])}
            for r in range(self.rounds):
                sides = [lambda: statistics.median(ours() for _ in range(per_round)),
                         lambda: statistics.median(theirs() for _ in range(per_round))]
                if printer:
                    sides.append(lambda: statistics.median(printer.edition() for _ in range(per_round)))
                times = alternate(r, *sides)
                rows["warm"][0].append(times[0])
                rows["warm"][1].append(times[1])
                if printer:
                    rows["chromium"][0].append(times[0])
                    rows["chromium"][1].append(times[2])
        finally:
            pool.close(grace=5)
            bare.stdin.close()
            bare.wait(timeout=60)
            if printer:
                printer.close()
        ours_s, bare_s = rows["warm"]
        self.results.append(Paired("2. per edition, warm render process / warm bare charts+WeasyPrint",
                                   ours_s, bare_s, "<= 1.10", "ms"))
        charts = statistics.median(c for c, _ in parts)
        layout = statistics.median(w for _, w in parts)
        self.notes.append(f"where a warm edition's time goes: {statistics.median(ours_s) * 1000:.0f} ms in all; "
                          f"charts {charts * 1000:.0f} ms, WeasyPrint layout and PDF/A {layout * 1000:.0f} ms, the rest "
                          f"(data, templates, HTML, manifest, attachments, writing) "
                          f"{(statistics.median(ours_s) - charts - layout) * 1000:.0f} ms")
        if printer:
            ours_c, chrome = rows["chromium"]
            minute = [60 / t for t in ours_c], [60 / t for t in chrome]
            self.results.append(Paired("7. per edition, warm reporter / warm Chromium printing that HTML",
                                       ours_c, chrome, "none", "ms"))
            self.notes.append(f"7. editions per minute: reporter {_spread(minute[0])}, Chromium printing the "
                              f"finished HTML {_spread(minute[1])}; ratio reporter / Chromium "
                              f"{_spread([c / o for o, c in zip(ours_c, chrome)])} (above 1: reporter is faster). Chromium's "
                              "side only prints HTML that reporter made (no data, charts, templates, PDF/A or tags).")

    # 3 -------------------------------------------------------------------------------------
    def batch(self) -> None:
        reports = [f"b{i:02}" for i in range(self.size)]

        def cold_series() -> float:
            return sum(timed([*self.cli, "render", r, "--date", DAY.isoformat(), "--output", self.fresh()]) for r in reports)

        def cold_pairs() -> float:
            start = time.perf_counter()
            for pair in (reports[i:i + 2] for i in range(0, len(reports), 2)):
                running = [subprocess.Popen([*self.cli, "render", r, "--date", DAY.isoformat(), "--output", self.fresh()],
                                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for r in pair]
                for process in running:
                    if process.wait() != 0:
                        raise SystemExit(f"cold render failed: {process.stderr.read().decode()[-2000:]}")
            return time.perf_counter() - start

        def pool(workers: int) -> Callable[[], float]:
            def run() -> float:
                self.reset()
                took = timed([*self.cli, "run-due", "--workers", str(workers)], env={"REPORTER_NOW": SLOT})
                written = len(list((self.project_dir / "output").rglob("*.pdf")))
                if written != 2 * len(reports):
                    raise SystemExit(f"run-due --workers {workers} wrote {written} PDFs, not {2 * len(reports)}")
                return took
            return run

        if not self.quick:
            cold_series(), pool(2)()  # caches, for all alike
        series, pairs, one, two = [], [], [], []
        for r in range(self.rounds):
            s, p, o, t = alternate(r, cold_series, cold_pairs, pool(1), pool(2))
            series.append(s)
            pairs.append(p)
            one.append(o)
            two.append(t)
        n = len(reports)
        self.results.append(Paired(f"3a. batch of {n}: run-due --workers 1 / {n} cold CLIs in series", one, series, "<= 0.30"))
        self.results.append(Paired(f"3b. batch of {n}: run-due --workers 2 / {n} cold CLIs two at a time", two, pairs, "<= 0.30"))
        self.results.append(Paired(f"3c. throughput, 2 workers / 1 worker (time of 1 / time of 2), {os.cpu_count()} cores",
                                   one, two, ">= 1.80"))

    # 4 -------------------------------------------------------------------------------------
    def celery(self) -> None:
        """The batch of measure 3 through Celery, then the small project of celery_bench.py for
        what Celery adds to each edition (small editions make the overhead visible)."""
        import celery_bench
        from servers import start_redis, stop

        celery_bench.SEQUENTIAL = 2 if self.quick else 20
        folder = self.folder / "celery"
        redis = start_redis(folder / "redis")
        try:
            env = {"REPORTER_BROKER_URL": redis.url}

            def with_workers(count: int) -> Callable[[], float]:
                def run() -> float:
                    self.reset()
                    celery_bench.BURST = self.size  # what run_due counts as done
                    started = [celery_bench.start_worker(self.config, f"bench-{count}-{n}", env,
                                                         folder / f"w{count}-{n}.log") for n in range(count)]
                    try:
                        return celery_bench.run_due(self.config, env, "--executor", "celery")
                    finally:
                        celery_bench.stop_workers(started)
                return run

            one, two = [], []
            for r in range(self.rounds):
                o, t = alternate(r, with_workers(1), with_workers(2))
                one.append(o)
                two.append(t)
            each = None
            if not self.quick:  # a third worker start and a pool: the quick run proves the rest
                celery_bench.BURST = 20
                small = celery_bench.project(folder / "project")
                each = celery_bench.overheads(folder, small, env)
        finally:
            stop(redis.process)
        self.results.append(Paired(f"4a. Celery, batch of {self.size}: 2 workers / 1 worker (time of 1 / time of 2)",
                                   one, two, ">= 1.80"))
        self.notes.append(f"4a. Celery editions per minute: 1 worker {_spread([self.size / t * 60 for t in one])}, "
                          f"2 workers {_spread([self.size / t * 60 for t in two])} (wall time of `run-due --executor "
                          "celery`, with the scheduler's own work: claiming, writing, recording)")
        if each is None:
            return
        pool_extra = [w - r for w, r in zip(*each["local pool"])]
        celery_extra = [w - r for w, r in zip(*each["celery"])]
        self.notes.append(f"4b. per small edition beyond the render itself, one at a time: local pool "
                          f"{statistics.median(pool_extra) * 1000:.0f} ms, Celery {statistics.median(celery_extra) * 1000:.0f} ms:"
                          f" Celery adds {(statistics.median(celery_extra) - statistics.median(pool_extra)) * 1000:.0f} ms "
                          f"(median of {celery_bench.SEQUENTIAL}), against a render of "
                          f"{statistics.median(each['celery'][1]) * 1000:.0f} ms")

    # 5 -------------------------------------------------------------------------------------
    def memory(self) -> None:
        from reporter.execute import RenderTask
        from reporter.execute.pool import ProcessPool

        count = 3 if self.quick else 100
        pool = ProcessPool(size=1, max_tasks=100_000)
        rss: list[float] = []
        pids = set()
        peak = 0.0
        try:
            for i in range(count):
                outcome = pool.run(RenderTask(str(self.config), f"b{i % self.size:02}", DAY, self.fresh()), timeout=300)
                if not outcome.ok:
                    raise SystemExit(f"render failed: {outcome.error}")
                pids.add(outcome.pid)
                status = _status(outcome.pid)
                rss.append(status["VmRSS"])
                peak = max(peak, status["VmHWM"])
        finally:
            pool.close(grace=5)
        if len(pids) != 1:
            raise SystemExit(f"the editions ran in {len(pids)} processes, not one: the measure is void")
        early = max(count // 10, 1)
        tenth, last = rss[early - 1], rss[-1]
        verdict = "meets" if peak <= 200 and last - tenth <= 0.05 * tenth else "MISSES"
        self.notes.append(f"5. one render process over {count} editions: peak {peak:.0f} MB (target <= 200), resident "
                          f"after edition {early}: {tenth:.0f} MB, after {count}: {last:.0f} MB "
                          f"(growth {last - tenth:+.1f} MB; target: none beyond 5 %) {verdict}")

    # 6 -------------------------------------------------------------------------------------
    def startup(self) -> None:
        from projects import make_project, report_block

        folder = self.folder / "startup"
        folder.mkdir()
        config = make_project(folder, [report_block("s", languages='["en"]', formats='["html"]')])
        cli = [sys.executable, "-m", "reporter", "--config", str(config)]
        timed([*cli, "run-due"], env={"REPORTER_NOW": SLOT})  # the slot runs: from now on nothing is due
        commands = {"python -c pass (bare start)": [sys.executable, "-c", "pass"],
                    "reporter --help": [*cli, "--help"],
                    "reporter list": [*cli, "list"],
                    "reporter run-due (nothing due)": [*cli, "run-due"]}
        sides = [lambda c=c: timed(c, env={"REPORTER_NOW": LATER}) for c in commands.values()]
        for side in sides:
            side()
        found: list[list[float]] = [[] for _ in commands]
        for r in range(self.rounds * 3):
            for index, seconds in enumerate(alternate(r, *sides)):
                found[index].append(seconds)
        lines = []
        for (name, _command), times in zip(commands.items(), found):
            mark = "" if name.startswith("python") else ("  meets <= 0.30 s" if statistics.median(times) <= 0.3
                                                           else "  MISSES <= 0.30 s")
            lines.append(f"     {name:34} {_spread(times, 1000, ' ms')}{mark}")
        self.notes.append("6. start-up, wall time of the whole process:\n" + "\n".join(lines))

    def print(self) -> None:
        print(f"\nreporter benchmark suite: {self.rounds} paired round(s){', quick sizes' if self.quick else ''}, "
              f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
        print(f"  {'comparison':58} {'ours':>12} {'baseline':>12}  ratio [spread]")
        for result in self.results:
            print(result.line())
        for note in self.notes:
            print("  " + note)


def _status(pid: int) -> dict[str, float]:
    """A process's memory in MB, from the kernel (VmRSS now, VmHWM its peak)."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


class _Chromium:
    """One headless Chromium, one page reused, printing the saved HTML of each language to PDF:
    what Superset-like tools do to make a PDF."""

    def __init__(self, html_dir: Path) -> None:
        from browser import ARGS, CHROMIUM
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        self._page = self._browser.new_page()
        self._files = sorted(html_dir.glob("*.html"))

    def edition(self) -> float:
        start = time.perf_counter()
        for file in self._files:
            self._page.goto(file.as_uri(), wait_until="load")
            if not self._page.pdf(format="A4", print_background=True).startswith(b"%PDF"):
                raise SystemExit("Chromium did not print a PDF")
        return time.perf_counter() - start

    def close(self) -> None:
        self._browser.close()
        self._playwright.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds per comparison (default 3)")
    parser.add_argument("--quick", action="store_true", help="small sizes, no Celery: proves the suite runs, not the figures")
    parser.add_argument("--only", help="which measures, e.g. 1,6 (default: all; with --quick, all but Celery's)")
    args = parser.parse_args()
    # The quick run proves the suite's code in `make test` (tests/test_readme.py), where three
    # Celery worker start-ups cost more than the rest; tests/test_celery.py covers the executor.
    wanted = {int(x) for x in (args.only or ("1,2,3,5,6,7" if args.quick else "1,2,3,4,5,6,7")).split(",")}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # temp folders and servers are cleaned up
    with tempfile.TemporaryDirectory(prefix="reporter-bench-") as tmp:
        bench = Bench(Path(tmp), max(1, args.rounds), args.quick)
        steps = [(1, bench.cold), (2, lambda: bench.warm(chromium=7 in wanted)), (3, bench.batch),
                 (4, bench.celery), (5, bench.memory), (6, bench.startup)]
        if 7 in wanted and 2 not in wanted:
            steps.append((7, lambda: bench.warm(chromium=True)))
        with _children_log(Path(tmp) / "children.log"):
            for number, step in steps:
                if number in wanted:
                    start = time.perf_counter()
                    step()
                    print(f"measure {number} done in {time.perf_counter() - start:.0f} s", flush=True)
        bench.print()


@contextmanager
def _children_log(path: Path) -> Iterator[None]:
    """The render processes' log lines (they inherit this stderr) go to a file, not between the
    figures; shown if a measure fails."""
    saved = os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(target, 2)
    try:
        yield
    except BaseException:
        os.dup2(saved, 2)
        print(path.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    finally:
        os.dup2(saved, 2)
        os.close(target)
        os.close(saved)


if __name__ == "__main__":
    main()
