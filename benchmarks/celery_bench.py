"""The Celery executor measured against the local pool, on a redis-server of its own.

1. Throughput: a burst of 60 small reports (PDF and HTML, one language) falls due at once;
   `reporter run-due --executor celery` with one warm `reporter worker`, then two (one render
   process each), against `reporter run-due --workers 1` and `--workers 2` (the pool, whose
   numbers include starting its processes).
2. Overhead per edition: the same editions, one at a time, through `ProcessPool.run` and
   `CeleryExecutor.run` with one warm render process each. Overhead is the call's wall time less
   the render time the worker reports; medians side by side.

Usage: python benchmarks/celery_bench.py   (from the project's venv; needs redis-server)
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from projects import make_project  # noqa: E402
from servers import start_redis, stop  # noqa: E402

BURST = 60
SEQUENTIAL = 30
NOW = "2025-11-03T08:00:20+05:00"  # a Monday, just after the reports' 08:00 slot
NARRATIVE = """\
{% block summary %}<p>The largest partner's share reached {{ fact("share") }}.</p>{% endblock %}
{% block overview %}<p>There are {{ fact("firms") }} in the market.</p>{% endblock %}
"""
REPORT = """
[reports.{id}]
title = {{ en = "Small brief {id}" }}
datasets = ["brief"]
narrative = "small/narrative.{{lang}}.html.j2"
languages = ["en"]
formats = ["pdf", "html"]
timezone = "Asia/Almaty"
schedule = "0 8 * * 1"
key_figures = ["share"]
timeline = false

[[reports.{id}.sections]]
id = "overview"
title = {{ en = "Overview" }}
"""


def project(folder: Path) -> Path:
    config = make_project(folder, [REPORT.format(id=f"s{i:03}") for i in range(BURST)])
    (folder / "templates" / "small").mkdir()
    (folder / "templates" / "small" / "narrative.en.html.j2").write_text(NARRATIVE, encoding="utf-8")
    return config


def reset(folder: Path) -> None:
    for name in ("state", "output"):
        shutil.rmtree(folder / name, ignore_errors=True)


def start_worker(config: Path, node: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "reporter", "--config", str(config), "worker", "--node", node,
                                "--concurrency", "1"], stdout=subprocess.DEVNULL, stderr=log.open("w"),
                               env={**os.environ, **env}, start_new_session=True)
    deadline = time.monotonic() + 60
    while f"worker {node} ready" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker {node} did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return process


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(timeout=60)


def run_due(config: Path, env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "reporter", "--config", str(config), "run-due", *args],
                            capture_output=True, text=True, env={**os.environ, **env, "REPORTER_NOW": NOW})
    took = time.perf_counter() - start
    if result.returncode != 0 or result.stdout.count(" ok\n") != BURST:
        raise SystemExit(f"run-due {' '.join(args)} failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return took


def throughput(folder: Path, config: Path, env: dict[str, str]) -> dict[str, float]:
    found = {}
    for workers in (1, 2):
        reset(folder)
        found[f"local pool, --workers {workers}"] = run_due(config, env, "--executor", "local", "--workers", str(workers))
    for count in (1, 2):
        reset(folder)
        started = [start_worker(config, f"bench-{n}", env, folder / f"worker-{n}.log") for n in range(count)]
        try:
            found[f"celery, {count} worker(s)"] = run_due(config, env, "--executor", "celery")
        finally:
            stop_workers(started)
    return found


def overheads(folder: Path, config: Path, env: dict[str, str]) -> dict[str, tuple[list[float], list[float]]]:
    from reporter import config as settings
    from reporter.execute import RenderTask
    from reporter.execute.celery import CeleryExecutor
    from reporter.execute.pool import ProcessPool

    loaded = settings.load(config)
    clock = lambda: datetime.now(timezone.utc)  # noqa: E731
    found = {}
    worker = start_worker(config, "bench", env, folder / "worker-overhead.log")
    executors = {"local pool": ProcessPool(size=1, max_tasks=10_000),
                 "celery": CeleryExecutor(loaded, env["REPORTER_BROKER_URL"], clock)}
    try:
        for name, executor in executors.items():
            out = folder / f"overhead-{name.replace(' ', '-')}"
            task = lambda i: RenderTask(str(config), f"s{i % BURST:03}", date(2025, 11, 3), str(out))  # noqa: E731
            for i in range(3):  # warm: imports, caches, connections
                executor.run(task(i), timeout=60)
            walls, renders = [], []
            for i in range(SEQUENTIAL):
                start = time.perf_counter()
                outcome = executor.run(task(i), timeout=60)
                walls.append(time.perf_counter() - start)
                renders.append(outcome.seconds)
                assert outcome.ok, outcome.error
            found[name] = (walls, renders)
    finally:
        for executor in executors.values():
            executor.close(grace=5)
        stop_workers([worker])
    return found


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        redis = start_redis(folder / "redis")
        try:
            env = {"REPORTER_BROKER_URL": redis.url}
            config = project(folder / "project")
            burst = throughput(folder / "project", config, env)
            each = overheads(folder, config, env)
        finally:
            stop(redis.process)
    print(f"Throughput: {BURST} small editions (PDF + HTML, English) due at once, `reporter run-due`, wall time")
    for name, seconds in burst.items():
        print(f"  {name:28} {seconds:6.1f} s  {BURST / seconds * 60:6.0f} editions/min")
    one, two = burst["celery, 1 worker(s)"], burst["celery, 2 worker(s)"]
    print(f"  celery: 2 workers / 1 worker speed-up x{one / two:.2f} on {os.cpu_count()} cores")
    print(f"Per edition, one at a time, one warm render process, medians of {SEQUENTIAL}:")
    print(f"  {'':12} {'wall':>8} {'render':>8} {'overhead':>9}")
    for name, (walls, renders) in each.items():
        overhead = [w - r for w, r in zip(walls, renders)]
        print(f"  {name:12} {statistics.median(walls) * 1000:6.0f} ms {statistics.median(renders) * 1000:6.0f} ms "
              f"{statistics.median(overhead) * 1000:7.0f} ms")
    pool_overhead = statistics.median(w - r for w, r in zip(*each["local pool"]))
    celery_overhead = statistics.median(w - r for w, r in zip(*each["celery"]))
    print(f"  Celery adds {(celery_overhead - pool_overhead) * 1000:.0f} ms per edition over the local pool")


if __name__ == "__main__":
    main()
