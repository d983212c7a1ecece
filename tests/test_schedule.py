"""The scheduler: crontab meaning, catch-up policies, exactly-once slots, real processes and SQLite."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import _neutral_cwd, cli_env, render_workers, run_cli, running
from reporter import config
from reporter import cron
from reporter.schedule.plan import next_runs, plan
from projects import SERIES
from schedule_helpers import make_project, report_block

ALMATY = ZoneInfo("Asia/Almaty")
FAST = dict(languages='["en"]', formats='["html"]')  # no WeasyPrint: a render in well under a second


def _at(text: str) -> str:
    return datetime.fromisoformat(text).isoformat()


def _fires(line: str, zone, start: datetime, count: int, fmt: str) -> list[str]:
    upcoming = cron.fires(cron.parse(line), zone, start)
    return [next(upcoming).instant.astimezone(zone).strftime(fmt) for _ in range(count)]


def _weekdays(line: str, count: int = 7) -> list[str]:
    return _fires(line, ALMATY, datetime(2025, 11, 2, tzinfo=ALMATY), count, "%a %H:%M")  # from a Sunday


@pytest.mark.parametrize(("line", "expected"), [
    ("0 8 * * 0", ["Sun 08:00"]),
    ("0 8 * * 7", ["Sun 08:00"]),
    ("0 8 * * 1", ["Mon 08:00"]),
    ("0 8 * * 6", ["Sat 08:00"]),
    ("0 8 * * 1-5", ["Mon 08:00", "Tue 08:00", "Wed 08:00", "Thu 08:00", "Fri 08:00"]),
    ("0 8 * * 5-7", ["Fri 08:00", "Sat 08:00", "Sun 08:00"]),
    ("0 8 * * sun,wed", ["Wed 08:00", "Sun 08:00"]),
    ("@weekly", ["Sun 00:00"]),
    ("0 8 * * 5-7/2", ["Fri 08:00", "Sun 08:00"]),
    ("0 8 * * MON-fri/2", ["Mon 08:00", "Wed 08:00", "Fri 08:00"]),
])
def test_crontab_weekdays_mean_what_crontab_means(line: str, expected: list[str]) -> None:
    assert sorted(set(_weekdays(line, 7))) == sorted(expected)


def _days(line: str, count: int) -> list[str]:
    return _fires(line, timezone.utc, datetime(2025, 11, 30, tzinfo=timezone.utc), count, "%a %d")


def test_crontab_day_of_month_or_weekday() -> None:
    # crontab runs "0 8 1 * 1" on the 1st AND on every Monday, not only on Mondays that are the 1st.
    assert _days("0 8 1 * 1", 3) == ["Mon 01", "Mon 08", "Mon 15"]
    assert _days("0 8 2 * 1", 3) == ["Mon 01", "Tue 02", "Mon 08"]


def test_crontab_star_prefixed_day_fields_combine_with_and() -> None:
    # A day field starting with '*' is "unrestricted" to crontab: then both must match.
    assert _days("0 8 */2 * 1", 2) == ["Mon 01", "Mon 15"]   # odd days that are Mondays
    assert _days("0 8 1 * 0-7", 3) == ["Sun 30", "Mon 01", "Tue 02"]  # every day


@pytest.mark.parametrize("line", ["0 8 * * 8", "61 8 * * *", "0 8 * *", "@fortnightly", "0 8 * * 5-2",
                                  "0 8 last * 1", "0 8 * jan-dec/0 *", "0 8 * * mon#2", "0 8 * * 5/2",
                                  "0 8 * * mon/2", "5/15 8 * * *"])
def test_bad_schedules_are_refused(line: str) -> None:
    with pytest.raises(ValueError):
        cron.parse(line)
    with pytest.raises(ValueError):
        cron.check_schedule(line)


def _report(tmp_path: Path, **settings: str):
    extra = "\n".join(f"{key} = {value!r}".replace("'", '"') for key, value in settings.items() if key not in ("schedule", "timezone"))
    path = make_project(tmp_path, [report_block("r", schedule=settings.get("schedule", "0 8 * * *"),
                                                timezone=settings.get("timezone", "Asia/Almaty"), extra=extra, **FAST)])
    return config.load(path).report("r")


def test_catch_up_policies_after_downtime(tmp_path: Path) -> None:
    now = datetime(2025, 11, 4, 9, 0, tzinfo=ALMATY)  # down since before 08:00 on 2 November
    last = datetime(2025, 11, 1, 8, 0, 30, tzinfo=ALMATY)  # when slots were last decided
    latest = plan(_report(tmp_path / "a", catch_up="latest", grace="3d"), now, last)
    assert [s.key for s in latest.run] == ["2025-11-04T08:00"]
    assert [s.key for s, _ in latest.skip] == ["2025-11-02T08:00", "2025-11-03T08:00"]
    every = plan(_report(tmp_path / "b", catch_up="all", grace="3d"), now, last)
    assert [(s.key, s.edition_date.isoformat()) for s in every.run] == [
        ("2025-11-02T08:00", "2025-11-02"), ("2025-11-03T08:00", "2025-11-03"), ("2025-11-04T08:00", "2025-11-04")]
    skip = plan(_report(tmp_path / "c", catch_up="skip", grace="3d"), now, last)
    assert skip.run == () and len(skip.skip) == 3
    # The grace period bounds how late a missed slot may still run.
    short = plan(_report(tmp_path / "d", catch_up="all", grace="6h"), now, last)
    assert [s.key for s in short.run] == ["2025-11-04T08:00"]
    assert all("grace period" in reason for _, reason in short.skip)
    # On time, even the 'skip' policy runs the slot.
    assert [s.key for s in plan(_report(tmp_path / "e", catch_up="skip"), datetime(2025, 11, 4, 8, 0, 30, tzinfo=ALMATY), last).run][-1:] == ["2025-11-04T08:00"]


def test_dst_fall_back_lists_one_slot(tmp_path: Path) -> None:
    report = _report(tmp_path, schedule="30 1 * * *", timezone="America/New_York")
    runs = next_runs(report, datetime(2025, 11, 1, 12, tzinfo=timezone.utc), 3)
    assert [m.strftime("%m-%d %H:%M") for m in runs] == ["11-02 01:30", "11-03 01:30", "11-04 01:30"]


def _env(now: str) -> dict[str, str]:
    return {"REPORTER_NOW": now}


def _history_rows(state: Path) -> list[tuple]:
    with sqlite3.connect(state) as db:
        return db.execute("SELECT report, slot, edition_date, trigger, status, error FROM runs ORDER BY id").fetchall()


def _rows(backend) -> list[tuple]:
    """The runs, on either database (tests/servers.py)."""
    return backend.rows("SELECT report, slot, edition_date, trigger, status, error FROM runs ORDER BY id")


def test_run_due_twice_runs_once(tmp_path: Path, backend) -> None:
    config_path = make_project(tmp_path, [report_block("r", schedule="0 8 * * 1", **FAST)])
    first = run_cli("--config", str(config_path), "run-due", env=_env("2025-11-03T08:00:20+05:00") | backend.env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "r 2025-11-03T08:00 ok"
    second = run_cli("--config", str(config_path), "run-due", env=_env("2025-11-03T08:00:50+05:00") | backend.env)
    assert second.returncode == 0 and second.stdout == ""
    assert "nothing due" in second.stderr
    rows = _rows(backend)
    assert rows == [("r", "2025-11-03T08:00", "2025-11-03", "run-due", "ok", None)]
    assert (tmp_path / "output" / "r" / "2025-11-03" / "r.en.html").is_file()


def test_dst_fall_back_runs_once(tmp_path: Path, backend) -> None:
    config_path = make_project(tmp_path, [report_block("ny", schedule="30 1 * * *", timezone="America/New_York",
                                                       extra='catch_up = "all"', **FAST)])
    # 01:31 EDT, then 01:31 EST an hour later: 01:30 comes round twice, but it is one slot,
    # which fires at its first occurrence.
    for now in ("2025-11-02T01:31:00-04:00", "2025-11-02T01:31:00-05:00"):
        result = run_cli("--config", str(config_path), "run-due", env=_env(now) | backend.env)
        assert result.returncode == 0, result.stderr
    rows = _rows(backend)
    assert [(r[1], r[4]) for r in rows] == [("2025-11-02T01:30", "ok")]


def test_catch_up_all_renders_each_missed_edition(tmp_path: Path, backend) -> None:
    config_path = make_project(tmp_path, [report_block("r", schedule="0 8 * * *", extra='catch_up = "all"\ngrace = "3d"', **FAST)])
    assert run_cli("--config", str(config_path), "run-due", env=_env("2025-11-01T08:00:10+05:00") | backend.env).returncode == 0
    # Down from 1 November until 4 November 09:00.
    result = run_cli("--config", str(config_path), "run-due", env=_env("2025-11-04T09:00:00+05:00") | backend.env)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "output" / "r").iterdir() if p.is_dir()) == [
        "2025-11-01", "2025-11-02", "2025-11-03", "2025-11-04"]
    assert [(r[1], r[4]) for r in _rows(backend)] == [("2025-11-01T08:00", "ok"), ("2025-11-02T08:00", "ok"),
                                                      ("2025-11-03T08:00", "ok"), ("2025-11-04T08:00", "ok")]


def test_catch_up_skip_records_skipped_slots(tmp_path: Path) -> None:
    config_path = make_project(tmp_path, [report_block("r", schedule="0 8 * * *", extra='catch_up = "skip"\ngrace = "3d"', **FAST)])
    assert run_cli("--config", str(config_path), "run-due", env=_env("2025-11-01T08:00:10+05:00")).returncode == 0
    assert run_cli("--config", str(config_path), "run-due", env=_env("2025-11-03T09:00:00+05:00")).returncode == 0
    rows = _history_rows(tmp_path / "state" / "history.sqlite")
    assert [(r[1], r[4]) for r in rows] == [("2025-11-01T08:00", "ok"), ("2025-11-02T08:00", "skipped"), ("2025-11-03T08:00", "skipped")]
    assert sorted(p.name for p in (tmp_path / "output" / "r").iterdir() if p.is_dir()) == ["2025-11-01"]
    history = run_cli("--config", str(config_path), "history", "r")
    assert "skipped" in history.stdout and "catch-up policy 'skip'" in history.stdout


def test_broken_report_does_not_stop_a_good_one(tmp_path: Path) -> None:
    config_path = make_project(tmp_path, [report_block("good", **FAST), report_block("bad", dataset="broken", **FAST)],
                               broken_dataset=True)
    result = run_cli("--config", str(config_path), "run-due", env=_env("2025-11-03T08:00:20+05:00"))
    assert result.returncode == 1
    assert sorted(result.stdout.split("\n")[:2]) == ["bad 2025-11-03T08:00 failed", "good 2025-11-03T08:00 ok"]
    rows = {r[0]: r for r in _history_rows(tmp_path / "state" / "history.sqlite")}
    assert rows["good"][4] == "ok"
    assert rows["bad"][4] == "failed" and "series.csv:line 3 (row 2), column 'tonnes'" in rows["bad"][5]
    assert "Traceback" not in result.stderr


def test_hung_render_is_stopped_by_the_timeout(tmp_path: Path) -> None:
    # A narrative that never ends (the sandbox caps each range, not their nesting): the
    # one-second timeout stops it, whatever this machine's speed.
    config_path = make_project(tmp_path, [report_block("slow", extra='timeout = "1s"', **FAST)])
    narrative = tmp_path / "templates" / "brief" / "narrative.en.html.j2"
    narrative.write_text(narrative.read_text(encoding="utf-8").replace(
        "{% block overview %}", "{% block overview %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
        encoding="utf-8")
    result = run_cli("--config", str(config_path), "run-due", env=_env("2025-11-03T08:00:20+05:00"))
    assert result.returncode == 1
    (row,) = _history_rows(tmp_path / "state" / "history.sqlite")
    assert row[4] == "failed" and "did not finish within 1 s" in row[5]
    edition = tmp_path / "output" / "slow" / "2025-11-03"
    assert not edition.exists() or not list(edition.glob(".*.part"))


def _start_service(config_path: Path, now: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    # A session of its own, as under systemd: a signal can go to its whole process group.
    return subprocess.Popen([sys.executable, "-m", "reporter", "--config", str(config_path), "run", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env({"REPORTER_NOW": now, **(env or {})}), start_new_session=True)


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def _statuses(state: Path) -> list[str]:
    if not state.exists():
        return []
    try:
        return [r[4] for r in _history_rows(state)]
    except sqlite3.OperationalError:
        return []


def test_service_renders_due_edition_and_stops_on_sigterm(tmp_path: Path) -> None:
    config_path = make_project(tmp_path, [report_block("r", **FAST)])
    state = tmp_path / "state" / "history.sqlite"
    service = _start_service(config_path, "2025-11-03T08:00:20+05:00")
    try:
        _wait_for(lambda: _statuses(state) == ["ok"])
        # A second scheduler on the same state is refused, with a clear message.
        second = run_cli("--config", str(config_path), "run")
        assert second.returncode == 1
        assert "another scheduler" in second.stderr and "already running" in second.stderr
    finally:
        service.send_signal(signal.SIGTERM)
        _out, err = service.communicate(timeout=30)
    assert service.returncode == 0, err
    assert "next run 2025-11-10T08:00+05:00" in err
    assert "received SIGTERM" in err and "stopped" in err
    assert (tmp_path / "output" / "r" / "2025-11-03" / "r.en.html").is_file()


def _held(folder: Path, **settings: str) -> tuple[Path, Path]:
    """A project whose render stops at its data: series.csv is a FIFO, read only once the
    test writes it. "Mid-render" is then a fact, not a guess about how long a render takes."""
    config_path = make_project(folder, [report_block("r", **settings)])
    series = folder / "data" / "brief" / "series.csv"
    series.unlink()
    os.mkfifo(series)
    return config_path, series


class _Log:
    """A service's log lines as they come."""

    def __init__(self, process: subprocess.Popen) -> None:
        import threading

        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(process.stderr), daemon=True).start()

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def test_kill_9_mid_render_then_restart_gives_one_complete_edition(tmp_path: Path, backend) -> None:
    config_path, fifo = _held(tmp_path)
    service = _start_service(config_path, "2025-11-03T08:00:20+05:00", env=backend.env)
    log = _Log(service)
    _wait_for(lambda: log.has("r 2025-11-03: loading brief"))  # the render is at its data, and waits
    service.kill()
    service.wait(timeout=10)
    edition = tmp_path / "output" / "r" / "2025-11-03"
    assert not edition.exists() or not list(edition.glob("*.pdf")), "killed before finishing: no edition yet"
    fifo.unlink()
    fifo.write_text(SERIES, encoding="utf-8")  # the data is there for the next start
    # The lock died with the process: a new scheduler starts without any clean-up.
    service = _start_service(config_path, "2025-11-03T08:01:00+05:00", env=backend.env)
    try:
        _wait_for(lambda: [r[4] for r in _rows(backend)][-1:] == ["ok"])
    finally:
        service.send_signal(signal.SIGTERM)
        service.communicate(timeout=30)
    rows = _rows(backend)
    assert [(r[1], r[4]) for r in rows] == [("2025-11-03T08:00", "abandoned"), ("2025-11-03T08:00", "ok")]
    assert sorted(p.name for p in edition.iterdir()) == ["manifest.json", "r.en.html", "r.en.pdf", "r.ru.html", "r.ru.pdf"]


def test_sigterm_during_a_render_abandons_it_cleanly(tmp_path: Path) -> None:
    config_path, _fifo = _held(tmp_path)
    state = tmp_path / "state" / "history.sqlite"
    service = _start_service(config_path, "2025-11-03T08:00:20+05:00", "--stop-timeout", "0")
    log = _Log(service)
    _wait_for(lambda: log.has("r 2025-11-03: loading brief"))
    service.send_signal(signal.SIGTERM)
    service.wait(timeout=30)
    assert service.returncode == 0, "".join(log.lines)
    assert _statuses(state) == ["abandoned"]
    edition = tmp_path / "output" / "r" / "2025-11-03"
    assert not edition.exists() or not [p for p in edition.iterdir()]


def test_history_json_lists_files_with_digests(tmp_path: Path) -> None:
    import hashlib
    import json

    config_path = make_project(tmp_path, [report_block("r", **FAST)])
    assert run_cli("--config", str(config_path), "run-due", env=_env("2025-11-03T08:00:20+05:00")).returncode == 0
    result = run_cli("--config", str(config_path), "history", "--json")
    (run,) = json.loads(result.stdout)["runs"]
    assert run["status"] == "ok" and run["slot"] == "2025-11-03T08:00" and run["trigger"] == "run-due"
    (artifact,) = run["artifacts"]
    assert artifact["sha256"] == hashlib.sha256(Path(artifact["path"]).read_bytes()).hexdigest()


def test_damaged_history_is_an_error_and_is_kept(tmp_path: Path) -> None:
    config_path = make_project(tmp_path, [report_block("r", **FAST)])
    state = tmp_path / "state" / "history.sqlite"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"this is not a database" * 100)
    for command in (["history"], ["run-due"], ["render", "r", "--date", "2025-11-03"]):
        result = run_cli("--config", str(config_path), *command)
        assert result.returncode == 1, command
        # SQLite's own words only: not SQLAlchemy's statement, parameters and web link.
        assert result.stderr.splitlines()[-1] == (
            f"error: {state}: the history database is damaged (file is not a database); "
            "move it aside, then `reporter adopt` rebuilds it from the editions on disk"), command
        assert "Traceback" not in result.stderr
    assert state.read_bytes() == b"this is not a database" * 100


def test_a_slot_left_running_by_a_dead_scheduler_runs_again_even_if_its_pid_is_reused(tmp_path: Path, backend) -> None:
    import socket

    config_path = make_project(tmp_path, [report_block("r", **FAST)])
    history = backend.history()
    # As a crashed scheduler would leave it: its pid (1) is alive again, in another process.
    history.start_run("r", datetime(2025, 11, 3).date(), "schedule", datetime(2025, 11, 3, 3, 0, tzinfo=timezone.utc),
                      slot="2025-11-03T08:00")
    backend.execute("UPDATE runs SET owner = :owner", {"owner": f"{socket.gethostname()}:1"})
    history.set_evaluated_until("r", datetime(2025, 11, 3, 3, 0, 10, tzinfo=timezone.utc))
    history.close()
    result = run_cli("--config", str(config_path), "run-due", env=_env("2025-11-03T08:05:00+05:00") | backend.env)
    assert result.returncode == 0, result.stderr
    assert [(r[1], r[4]) for r in _rows(backend)] == [("2025-11-03T08:00", "abandoned"), ("2025-11-03T08:00", "ok")]


def test_sigterm_lets_a_render_in_progress_finish(tmp_path: Path) -> None:
    config_path, fifo = _held(tmp_path)
    state = tmp_path / "state" / "history.sqlite"
    service = _start_service(config_path, "2025-11-03T08:00:20+05:00", "--stop-timeout", "120")
    log = _Log(service)
    _wait_for(lambda: log.has("r 2025-11-03: loading brief"))
    # A SIGTERM to the whole group, as a terminal's Ctrl-C and systemd's default KillMode send,
    # stops the service but lets the render finish: it goes on once its data arrives.
    os.killpg(service.pid, signal.SIGTERM)
    _wait_for(lambda: log.has("received SIGTERM"))
    with fifo.open("w", encoding="utf-8") as handle:
        handle.write(SERIES)
    service.wait(timeout=120)
    assert service.returncode == 0, "".join(log.lines)
    assert _statuses(state) == ["ok"], "".join(log.lines)
    assert len(list((tmp_path / "output" / "r" / "2025-11-03").glob("r.*.pdf"))) == 2


def test_a_render_process_that_dies_is_recorded_as_failed(tmp_path: Path) -> None:
    config_path, _fifo = _held(tmp_path)
    state = tmp_path / "state" / "history.sqlite"
    service = _start_service(config_path, "2025-11-03T08:00:20+05:00", "--workers", "1")
    log = _Log(service)
    try:
        _wait_for(lambda: log.has("r 2025-11-03: loading brief"))  # the worker is mid-render
        for worker in render_workers(service.pid):
            os.kill(worker, signal.SIGKILL)
        _wait_for(lambda: _statuses(state) == ["failed"])
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)
    (row,) = _history_rows(state)
    assert "the render process died (killed by SIGKILL)" in row[5]


def test_a_killed_service_leaves_no_render_process_behind(tmp_path: Path) -> None:
    # Killed mid-render (kill -9, the OOM killer): its worker, blocked in the middle of the
    # render, must not live on as an orphan holding memory and half a render.
    config_path, _fifo = _held(tmp_path)
    service = _start_service(config_path, "2025-11-03T08:00:20+05:00", "--workers", "1")
    log = _Log(service)
    _wait_for(lambda: log.has("r 2025-11-03: loading brief"))
    workers = render_workers(service.pid)
    assert workers and all(running(pid) for pid in workers)
    service.kill()
    service.wait(timeout=10)
    _wait_for(lambda: not any(running(pid) for pid in workers), timeout=30)


def test_a_worker_outlives_the_thread_that_started_it(tmp_path: Path) -> None:
    # Renders are handed to the pool from short-lived threads (a catch-up, a wake-up); the
    # worker they start serves the next render too, whichever thread asks.
    import threading

    from reporter.execute import RenderTask
    from reporter.execute.pool import ProcessPool

    config_path = make_project(tmp_path, [report_block("r", **FAST)])
    pool = ProcessPool(size=1)
    try:
        first: list = []
        starter = threading.Thread(target=lambda: first.append(
            pool.run(RenderTask(str(config_path), "r", datetime(2025, 11, 3).date()), timeout=60)))
        starter.start()
        starter.join()
        assert first[0].ok, first[0].error
        _wait_for(lambda: not Path(f"/proc/self/task/{starter.native_id}").exists())  # gone as an OS thread too
        second = pool.run(RenderTask(str(config_path), "r", datetime(2025, 11, 10).date()), timeout=60)
        assert second.ok, second.error
        assert second.pid == first[0].pid
    finally:
        pool.close(grace=0)


def test_log_json_gives_one_json_object_per_line(tmp_path: Path) -> None:
    import json

    config_path = make_project(tmp_path, [report_block("r", **FAST)])
    result = run_cli("--config", str(config_path), "--log-json", "run-due", env=_env("2025-11-03T08:00:20+05:00"))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert {"started", "ok"} <= {e.get("event") for e in events}
    ok = next(e for e in events if e.get("event") == "ok")
    assert ok["report"] == "r" and ok["slot"] == "2025-11-03T08:00" and ok["level"] == "info"


@pytest.mark.parametrize(("max_tasks", "same_worker"), [(1, False), (3, True)])
def test_workers_are_reused_then_recycled(tmp_path: Path, max_tasks: int, same_worker: bool) -> None:
    from reporter.execute import RenderTask
    from reporter.execute.pool import ProcessPool

    config_path = make_project(tmp_path, [report_block("r", **FAST)])
    pool = ProcessPool(size=1, max_tasks=max_tasks)
    try:
        outcomes = [pool.run(RenderTask(str(config_path), "r", datetime(2025, 11, day).date()), timeout=60)
                    for day in (3, 10)]
    finally:
        pool.close(grace=5)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert (outcomes[0].pid == outcomes[1].pid) is same_worker
    assert outcomes[0].pid != os.getpid()


def test_a_locked_history_is_a_clear_error_and_reads_do_not_wait(tmp_path: Path) -> None:
    config_path = make_project(tmp_path, [report_block("r", **FAST)])
    assert run_cli("--config", str(config_path), "run-due", env=_env("2025-11-03T08:00:20+05:00")).returncode == 0
    state = tmp_path / "state" / "history.sqlite"
    holder = sqlite3.connect(state, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a long write
    try:
        started = time.monotonic()
        history = run_cli("--config", str(config_path), "history")
        assert history.returncode == 0 and " ok " in history.stdout
        render = run_cli("--config", str(config_path), "render", "r", "--date", "2025-11-04")
        assert render.returncode == 1 and "Traceback" not in render.stderr
        assert render.stderr.splitlines()[-1] == (
            f"error: {state}: the history database is locked by another process; try again")
        assert not (tmp_path / "output" / "r" / "2025-11-04").exists()
        assert time.monotonic() - started < 60
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# --- run-due with nothing due: read without SQLAlchemy (reporter/schedule/idle.py) ---------------

def _imports_sqlalchemy(config_path: Path, now: str) -> tuple[bool, object]:
    """Runs ``run-due`` at ``now`` with ``-X importtime``: whether it took the full path."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "reporter", "--config", str(config_path), "run-due"],
                          capture_output=True, text=True, timeout=120, cwd=_neutral_cwd(),
                          env=cli_env(_env(now)))
    return " sqlalchemy\n" in proc.stderr, proc


DONE = "2025-11-03T08:00:20+05:00"  # the Monday slot is on time: it runs
LATER = "2025-11-05T12:00:00+05:00"  # two days on, before the next Monday: nothing is due


def _done(tmp_path: Path) -> tuple[Path, Path]:
    config_path = make_project(tmp_path, [report_block("r", schedule="0 8 * * 1", **FAST)])
    first = run_cli("--config", str(config_path), "run-due", env=_env(DONE))
    assert first.stdout.strip() == "r 2025-11-03T08:00 ok", first.stderr
    return config_path, tmp_path / "state" / "history.sqlite"


def test_run_due_with_nothing_due_answers_without_opening_the_history_through_sqlalchemy(tmp_path: Path) -> None:
    config_path, state = _done(tmp_path)
    before = state.read_bytes()
    full, proc = _imports_sqlalchemy(config_path, LATER)
    assert proc.returncode == 0 and proc.stdout == ""
    assert "nothing due" in proc.stderr
    assert not full, "run-due imported SQLAlchemy although nothing was due"
    assert state.read_bytes() == before  # read only
    # The next Monday's slot is due again: the full path runs it.
    full, proc = _imports_sqlalchemy(config_path, "2025-11-10T08:00:30+05:00")
    assert full and proc.stdout.strip() == "r 2025-11-10T08:00 ok", proc.stderr


NOW_ISO = "2025-11-05T07:00:00+00:00"


@pytest.mark.parametrize("sign", [
    "INSERT INTO deliveries (report, edition_date, lang, recipient, kind, status, attempts, updated_at, forced)"
    f" VALUES ('r', '2025-11-03', 'en', 'a@example.org', 'to', 'pending', 0, '{NOW_ISO}', 0)",
    "INSERT INTO deliveries (report, edition_date, lang, recipient, kind, status, attempts, updated_at, forced)"
    f" VALUES ('r', '2025-11-03', 'en', 'a@example.org', 'to', 'failed', 1, '{NOW_ISO}', 0)",
    "INSERT INTO notices (report, kind, about, recipient, edition_date, lang, error, status, attempts, created_at,"
    f" updated_at) VALUES ('r', 'render', 's', 'a@example.org', '2025-11-03', 'en', 'e', 'pending', 0, '{NOW_ISO}',"
    f" '{NOW_ISO}')",
    "UPDATE slots SET state = 'abandoned'",
    "UPDATE runs SET status = 'running'",
    "DELETE FROM cursors",
    f"INSERT INTO schema_version (version, applied_at, note) VALUES (99, '{NOW_ISO}', 'newer')",
], ids=["pending-message", "failed-message", "pending-notice", "abandoned-slot", "running-run", "no-cursor",
        "newer-schema"])
def test_every_sign_of_work_in_the_history_takes_the_full_path(tmp_path: Path, sign: str) -> None:
    config_path, state = _done(tmp_path)
    with sqlite3.connect(state) as conn:
        conn.execute(sign)
    conn.close()
    full, proc = _imports_sqlalchemy(config_path, LATER)
    assert full, f"run-due answered 'nothing due' at a glance although the history holds work: {sign}\n{proc.stderr}"


def test_a_report_added_since_the_last_run_takes_the_full_path(tmp_path: Path) -> None:
    config_path, _state = _done(tmp_path)
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(text + report_block("s", schedule="0 11 * * 3", **FAST), encoding="utf-8")
    full, proc = _imports_sqlalchemy(config_path, "2025-11-05T11:00:30+05:00")
    assert full and proc.stdout.strip() == "s 2025-11-05T11:00 ok", proc.stderr


def test_the_glance_refuses_a_second_scheduler_as_the_full_path_does(tmp_path: Path) -> None:
    from reporter.schedule.lock import SchedulerLock

    config_path, state = _done(tmp_path)
    with SchedulerLock(state):
        result = run_cli("--config", str(config_path), "run-due", env=_env(LATER))
    assert result.returncode == 1
    assert "another scheduler" in result.stderr and "Traceback" not in result.stderr


def test_the_glance_reads_the_schema_and_states_the_history_writes() -> None:
    from reporter.schedule import idle
    from reporter.state import history, schema

    assert idle.SCHEMA == schema.VERSION
    assert idle.UNDELIVERED == history.UNDELIVERED


def test_each_skipped_slot_says_why_as_the_history_will_show_it(tmp_path: Path) -> None:
    """The reasons are what `reporter history` prints for a skipped slot."""
    now = datetime(2025, 11, 4, 9, 0, tzinfo=ALMATY)
    last = datetime(2025, 10, 31, 8, 0, 30, tzinfo=ALMATY)
    latest = plan(_report(tmp_path / "a", catch_up="latest", grace="60h"), now, last)
    assert [(s.key, reason) for s, reason in latest.skip] == [
        ("2025-11-01T08:00", "missed by more than the grace period (60 h)"),
        ("2025-11-02T08:00", "catch-up policy 'latest': a newer slot runs instead"),
        ("2025-11-03T08:00", "catch-up policy 'latest': a newer slot runs instead")]
    skip = plan(_report(tmp_path / "b", catch_up="skip", grace="2d"), now, last)
    assert [(s.key, reason) for s, reason in skip.skip] == [
        ("2025-11-01T08:00", "missed by more than the grace period (48 h)"),
        ("2025-11-02T08:00", "missed by more than the grace period (48 h)"),
        ("2025-11-03T08:00", "catch-up policy 'skip'"),
        ("2025-11-04T08:00", "catch-up policy 'skip'")]


def test_the_grace_period_and_the_on_time_window_include_their_last_moment(tmp_path: Path) -> None:
    slot = datetime(2025, 11, 3, 8, 0, tzinfo=ALMATY)
    last = datetime(2025, 11, 2, 9, 0, tzinfo=ALMATY)
    at_grace = plan(_report(tmp_path / "a", catch_up="all", grace="6h"), slot + timedelta(hours=6), last)
    assert [s.key for s in at_grace.run] == ["2025-11-03T08:00"] and at_grace.skip == ()
    past_grace = plan(_report(tmp_path / "b", catch_up="all", grace="6h"), slot + timedelta(hours=6, seconds=1), last)
    assert past_grace.run == () and [s.key for s, _ in past_grace.skip] == ["2025-11-03T08:00"]
    on_time = plan(_report(tmp_path / "c", catch_up="skip"), slot + timedelta(minutes=2), last)
    assert [s.key for s in on_time.run] == ["2025-11-03T08:00"]
    late = plan(_report(tmp_path / "d", catch_up="skip"), slot + timedelta(minutes=2, seconds=1), last)
    assert late.run == ()


def test_with_slots_a_minute_apart_the_skip_policy_runs_only_the_newest(tmp_path: Path) -> None:
    now = datetime(2025, 11, 3, 8, 2, 0, tzinfo=ALMATY)
    decision = plan(_report(tmp_path, schedule="* * * * *", catch_up="skip"), now, now - timedelta(minutes=3))
    assert [s.key for s in decision.run] == ["2025-11-03T08:02"]
    assert [s.key for s, _ in decision.skip] == ["2025-11-03T08:00", "2025-11-03T08:01"]


def test_every_abandoned_slot_is_decided_again(tmp_path: Path) -> None:
    now = datetime(2025, 11, 4, 8, 0, 30, tzinfo=ALMATY)
    decision = plan(_report(tmp_path, catch_up="all", grace="3d"), now, now - timedelta(minutes=1),
                    abandoned=["2025-11-02T08:00", "2025-11-03T08:00"])
    assert [s.key for s in decision.run] == ["2025-11-02T08:00", "2025-11-03T08:00", "2025-11-04T08:00"]
