"""Promises tested directly, each reached on purpose (no timing assumptions).

- a slot that has finished is never claimed again (the claim itself, not the cursor or the
  engine in front of it);
- the cursor of decided slots never moves back;
- a failed forced resend keeps the earlier "sent" record and says what happened;
- ``--stop-timeout`` is honoured both ways: a render in progress finishes within it, and one
  that outlives it is abandoned when it runs out.

A render is held at a known point by a named pipe (FIFO) in place of a data file: it blocks
reading it until the test writes, so "in the middle of a render" is a fact, not a guess.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import LIVE_OWNER, cli_env, run_cli, write_project
from projects import SERIES, make_project, report_block
from reporter.deliver import delivery
from reporter.deliver.smtp import SmtpSettings
from reporter.state.history import History
from test_deliver import Recorder, record_edition, smtp_server

AT = datetime(2025, 11, 3, 3, 0, 20, tzinfo=timezone.utc)  # Monday 08:00:20 in Almaty


@pytest.mark.parametrize("status", ["ok", "failed", "skipped", "rejected-by-nobody"])
def test_a_finished_slot_is_never_claimed_again(tmp_path: Path, status: str) -> None:
    history = History.at(tmp_path / "h.sqlite")
    run = history.start_run("r", date(2025, 11, 3), "schedule", AT, "2025-11-03T08:00")
    assert run is not None
    if status == "rejected-by-nobody":
        # Still running in another process: not claimable either.
        assert history.start_run("r", date(2025, 11, 3), "schedule", AT, "2025-11-03T08:00") is None
        return
    history.finish_run(run, status, AT)
    for _ in range(2):  # a repeated call, on time
        assert history.start_run("r", date(2025, 11, 3), "run-due", AT + timedelta(seconds=5), "2025-11-03T08:00") is None
    # Only an abandoned slot (its process died: swept as such at the next start) is claimed again.
    other = history.start_run("r", date(2025, 11, 4), "schedule", AT, "2025-11-04T08:00")
    assert other is not None and history.abandon_running(AT + timedelta(days=1))
    assert history.start_run("r", date(2025, 11, 4), "run-due", AT + timedelta(days=1), "2025-11-04T08:00") is not None


def test_at_a_fall_back_the_repeated_wall_time_is_the_same_finished_slot(tmp_path: Path) -> None:
    history = History.at(tmp_path / "h.sqlite")
    first = datetime(2025, 11, 2, 5, 30, tzinfo=timezone.utc)   # 01:30 EDT, New York
    second = datetime(2025, 11, 2, 6, 30, tzinfo=timezone.utc)  # 01:30 EST, an hour later
    run = history.start_run("ny", date(2025, 11, 2), "schedule", first, "2025-11-02T01:30")
    history.finish_run(run, "ok", first)
    assert history.start_run("ny", date(2025, 11, 2), "schedule", second, "2025-11-02T01:30") is None


def test_run_due_twice_on_time_runs_once_even_without_the_cursor(tmp_path: Path) -> None:
    config_path = make_project(tmp_path, [report_block("r", languages='["en"]', formats='["html"]')])
    state = tmp_path / "state" / "history.sqlite"
    env = {"REPORTER_NOW": "2025-11-03T08:00:20+05:00"}
    assert run_cli("--config", str(config_path), "run-due", env=env).stdout.strip() == "r 2025-11-03T08:00 ok"
    # Forget when slots were last decided: the planner proposes the on-time slot again, and
    # only the claim in the history can stop it.
    with closing(sqlite3.connect(state)) as db, db:
        db.execute("DELETE FROM cursors")
    again = run_cli("--config", str(config_path), "run-due", env={"REPORTER_NOW": "2025-11-03T08:00:40+05:00"})
    assert again.returncode == 0 and again.stdout == ""
    with closing(sqlite3.connect(state)) as db:
        assert db.execute("SELECT count(*) FROM runs WHERE slot = '2025-11-03T08:00'").fetchone()[0] == 1


def test_the_cursor_never_moves_back(tmp_path: Path) -> None:
    history = History.at(tmp_path / "h.sqlite")
    history.set_evaluated_until("r", AT)
    history.set_evaluated_until("r", AT - timedelta(hours=1))
    assert history.evaluated_until("r") == AT
    history.set_evaluated_until("r", AT + timedelta(minutes=1))
    assert history.evaluated_until("r") == AT + timedelta(minutes=1)


@pytest.mark.parametrize("record", ["kept", "lost"])
def test_a_failed_forced_resend_keeps_the_sent_record_and_says_so(tmp_path: Path, rendered_edition, record: str) -> None:
    # Also when the edition's own record of it is gone (written by a version without one, or
    # removed): the ledger alone says it was sent.
    project, report, edition = rendered_edition
    history = record_edition(tmp_path / "state" / "history.sqlite", edition)
    handler = Recorder()
    with smtp_server(handler) as controller:
        smtp = SmtpSettings("smtp", "127.0.0.1", controller.port, timeout=5)
        first = delivery.deliver(project, report, edition.date, history, now=lambda: AT, smtp=smtp, sleep=lambda s: None,
                                 to=["desk@example.org"])
        assert first.ok
        sent = history.delivery(report.id, edition.date, "en", "desk@example.org")
        if record == "lost":
            (tmp_path / "output" / report.id / edition.date.isoformat() / "deliveries.json").unlink()
        handler.refuse["desk@example.org"] = "550 5.1.1 mailbox full"
        handler.refuse["analyst@example.org"] = "550 5.1.1 no such user"
        forced = delivery.deliver(project, report, edition.date, history, now=lambda: AT + timedelta(hours=1),
                                  smtp=smtp, sleep=lambda s: None, to=["desk@example.org", "analyst@example.org"],
                                  force=True)
    desk, analyst = sorted(forced.outcomes, key=lambda o: o.recipient.email != "desk@example.org")
    assert not forced.ok
    assert desk.describe() == "not sent again (rejected: 550 5.1.1 mailbox full); the copy sent before stands"
    after = history.delivery(report.id, edition.date, "en", "desk@example.org")
    # The whole row as it was, the claim given up too: another sender is not told it is in progress.
    assert after == sent and (after.status, after.owner) == ("sent", None)
    # --force to someone never sent: an ordinary rejection, recorded as one.
    assert analyst.describe() == "rejected: 550 5.1.1 no such user"
    failed = history.delivery(report.id, edition.date, "ru", "analyst@example.org")
    assert (failed.status, failed.attempts, failed.reply, failed.owner) == ("rejected", 1, "550 5.1.1 no such user", None)


def _claim_from_another_process(state: Path, report: str, day: date, lang: str, recipient: str) -> str:
    """What a second live process is told when it claims that message with --force."""
    code = ("import sys; from datetime import date, datetime, timezone; from pathlib import Path; "
            "from reporter.state.history import History; "
            "h = History.at(Path(sys.argv[1])); print(h.claim_delivery(sys.argv[2], date.fromisoformat(sys.argv[3]), "
            "sys.argv[4], sys.argv[5], kind='to', now=datetime(2025, 11, 5, tzinfo=timezone.utc), force=True))")
    done = subprocess.run([sys.executable, "-c", code, str(state), report, day.isoformat(), lang, recipient],
                          capture_output=True, text=True, env=cli_env({}), timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_claim_given_up_is_free_for_another_process_and_only_that_claim(tmp_path: Path) -> None:
    # What a failed forced resend does: the recipient's "sent" row stays, and so that the next
    # sender (the CLI, while this scheduler lives on) is not told "another process is sending
    # it", the claim is given up: that row's, not a neighbour's that differs in one part of its
    # key, and never a claim another live process holds on the same row.

    state, day = tmp_path / "h.sqlite", date(2025, 11, 5)
    history = History.at(state)
    given_up = ("r", day, "en", "desk@example.org")
    neighbours = [("r", day, "ru", "desk@example.org"), ("q", day, "en", "desk@example.org"),
                  ("r", date(2025, 11, 6), "en", "desk@example.org"), ("r", day, "en", "editor@example.org")]
    for report, edition, lang, address in [given_up, *neighbours]:
        history.record_delivery(report, edition, lang, address, kind="to", status="sent", attempts=1, reply="250 ok", now=AT)
        assert history.claim_delivery(report, edition, lang, address.title(), kind="to", now=AT, force=True) is None
    history.release_delivery("r", day, "en", "Desk@Example.org")
    assert _claim_from_another_process(state, *given_up) == "None"
    assert [_claim_from_another_process(state, *key) for key in neighbours] == ["sending"] * 4
    kept = history.delivery(*given_up)
    assert (kept.status, kept.attempts, kept.reply) == ("sent", 1, "250 ok")
    # A row that another live process has claimed stays claimed.
    history.record_delivery("r", day, "en", "third@example.org", kind="to", status="sent", attempts=1, reply=None, now=AT)
    with closing(sqlite3.connect(state)) as db, db:
        db.execute("UPDATE deliveries SET owner = ? WHERE recipient = 'third@example.org'", (LIVE_OWNER,))
    history.release_delivery("r", day, "en", "third@example.org")
    assert _claim_from_another_process(state, "r", day, "en", "third@example.org") == "sending"


@pytest.fixture
def rendered_edition(tmp_path: Path):
    from reporter import config
    from reporter.pipeline import build

    project = config.load(write_project(tmp_path / "project", formats='["pdf"]'))
    report = project.report("brief")
    from dataclasses import replace

    project = replace(project, email=replace(project.email, attempts=1, backoff_seconds=0.01))
    return project, report, build.build_edition(project, report, date(2025, 11, 5))


# --- --stop-timeout, both ways ---------------------------------------------------------------


def _held_project(folder: Path) -> tuple[Path, Path]:
    """A project whose render blocks reading series.csv (a FIFO) until the test writes it."""
    config_path = make_project(folder, [report_block("r", languages='["en"]', formats='["html"]')])
    series = folder / "data" / "brief" / "series.csv"
    series.unlink()
    os.mkfifo(series)
    return config_path, series


def _service(config_path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "reporter", "--config", str(config_path), "run", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
                            env=cli_env({"REPORTER_NOW": "2025-11-03T08:00:20+05:00"}), start_new_session=True)


def _statuses(state: Path) -> list[str]:
    try:
        with closing(sqlite3.connect(state)) as db:
            return [row[0] for row in db.execute("SELECT status FROM runs ORDER BY id")]
    except sqlite3.Error:
        return []


def _wait(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class _Log:
    """The service's log lines as they come (stderr, read by a thread)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(process.stderr), daemon=True).start()

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def test_a_render_in_progress_finishes_within_the_stop_timeout(tmp_path: Path) -> None:
    config_path, fifo = _held_project(tmp_path)
    state = tmp_path / "state" / "history.sqlite"
    service = _service(config_path, "--stop-timeout", "120")
    log = _Log(service)
    try:
        # The render has started loading its data: it cannot get past the FIFO until we write.
        _wait(lambda: log.has("r 2025-11-03: loading brief"), "the render to reach its data")
        service.send_signal(signal.SIGTERM)
        # The stop is under way (the scheduler said so) while the render still waits for its data.
        _wait(lambda: log.has("received SIGTERM"), "the stop to begin")
        assert _statuses(state) == ["running"]
        with fifo.open("w", encoding="utf-8") as handle:  # now the render may go on
            handle.write(SERIES)
        service.wait(timeout=120)
    finally:
        if service.poll() is None:
            service.kill()
    assert service.returncode == 0
    assert _statuses(state) == ["ok"]
    assert (tmp_path / "output" / "r" / "2025-11-03" / "r.en.html").is_file()


def test_a_render_that_outlives_the_stop_timeout_is_abandoned_when_it_runs_out(tmp_path: Path) -> None:
    config_path, fifo = _held_project(tmp_path)
    state = tmp_path / "state" / "history.sqlite"
    service = _service(config_path, "--stop-timeout", "2")
    log = _Log(service)
    try:
        _wait(lambda: log.has("r 2025-11-03: loading brief"), "the render to reach its data")
        started = time.monotonic()
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=60)
        took = time.monotonic() - started
    finally:
        if service.poll() is None:
            service.kill()
    # It waited for the render (at least the grace), then gave up on it rather than waiting on.
    assert service.returncode == 0 and 2 <= took < 30, took
    assert _statuses(state) == ["abandoned"]
    assert not list((tmp_path / "output").rglob("r.en.html"))


def test_a_stop_keeps_the_first_signal_and_ends_the_main_threads_sleep() -> None:
    from reporter.schedule.stopping import Stopping

    stopping = Stopping()
    previous = stopping.install()
    try:
        assert stopping.sleep(0.01) is False and stopping.reason == "asked to stop"
        # From another thread, whenever it comes: before or during the sleep, it ends it.
        threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT)).start()
        assert stopping.sleep(60) is True
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)  # to this thread: handled before the next line
        assert stopping.reason == "received SIGINT"
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_only_the_temporary_files_of_writers_that_died_are_removed(tmp_path: Path) -> None:
    # A render in progress beside a restarted scheduler keeps its file; a killed one's goes.
    from reporter.pipeline.write import remove_stale_parts

    names = {
        ".brief.ru.pdf.4999999.k2x9.part": "removed",  # its writer is gone
        f".brief.en.pdf.{os.getpid()}.a81q.part": "kept",  # its writer is alive
        ".brief.en.html.worker.zz1.part": "removed",  # no pid to ask about
        ".brief.part": "removed",  # not a name this writer gives
        "brief.ru.pdf": "kept",  # the edition itself
        "notes.part": "kept",  # not hidden: not ours
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    removed = remove_stale_parts(tmp_path)
    assert sorted(path.name for path in removed) == sorted(name for name, fate in names.items() if fate == "removed")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(name for name, fate in names.items() if fate == "kept")
    assert remove_stale_parts(tmp_path / "no-such-edition") == []


def test_a_writer_killed_mid_write_leaves_parts_beside_their_files_that_the_next_run_removes(tmp_path: Path) -> None:
    # A real crash at a known point: the second file goes past the process's file-size limit,
    # and the kernel kills it (SIGXFSZ, which Python ignores unless told) with the first staged.
    import re

    from reporter.pipeline.write import PART_SUFFIX, remove_stale_parts

    edition = tmp_path / "brief" / "2025-11-05"
    # A first write, before the limit: under `make mutate` this process notes the lines and calls
    # it runs in files of its own (tests/mutation_sitecustomize.py), which the limit would stop
    # before the edition's write began; it notes each only at first sight, so the second write
    # adds nothing there.
    writer = subprocess.run([sys.executable, "-c", f"""
import resource, signal, sys
from pathlib import Path
from reporter.pipeline.write import write_atomically
write_atomically({{Path({str(tmp_path / "warm-up")!r}) / "a.pdf": b"%PDF", Path({str(tmp_path / "warm-up")!r}) / "a.html": b"<p>"}})
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
print(__import__("os").getpid(), flush=True)
edition = Path({str(edition)!r})
write_atomically({{edition / "brief.en.pdf": b"%PDF" * 100, edition / "brief.en.html": b"<p>" * 5000}})
"""], capture_output=True, text=True, timeout=60, env=cli_env({}))
    assert writer.returncode == -signal.SIGXFSZ, writer.stderr
    pid = int(writer.stdout)
    left = sorted(path.name for path in edition.iterdir())
    assert len(left) == 2, left  # neither file took its place; each part is beside its file, hidden
    for name, target in zip(left, ("brief.en.html", "brief.en.pdf")):
        assert re.fullmatch(rf"\.{re.escape(target)}\.{pid}\.[^./]+{re.escape(PART_SUFFIX)}", name), name
    assert sorted(path.name for path in remove_stale_parts(edition)) == left
    assert list(edition.iterdir()) == []


def test_written_files_can_be_read_by_everyone_and_written_by_their_owner(tmp_path: Path) -> None:
    # A temporary file is made 0600; the edition's files are served and mailed by other users.
    from reporter.pipeline.write import write_atomically

    write_atomically({tmp_path / "brief.en.pdf": b"%PDF", tmp_path / "brief.en.html": b"<html>"})
    assert {path.name: path.stat().st_mode & 0o7777 for path in tmp_path.iterdir()} == {
        "brief.en.pdf": 0o644, "brief.en.html": 0o644}


def test_a_file_that_cannot_take_its_place_leaves_no_temporary_file_and_names_itself(tmp_path: Path) -> None:
    # The second file's place is taken by a folder: its rename fails after the first file's
    # rename has been done. The error names the file the user knows, and no ".part" is left.
    from reporter.errors import RenderError
    from reporter.pipeline.write import write_atomically

    (tmp_path / "brief.en.html").mkdir()
    with pytest.raises(RenderError) as caught:
        write_atomically({tmp_path / "brief.en.pdf": b"%PDF-new", tmp_path / "brief.en.html": b"<html>"})
    assert [str(p) for p in caught.value.problems] == [f"{tmp_path / 'brief.en.html'}: cannot write: Is a directory"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["brief.en.html", "brief.en.pdf"]
    assert (tmp_path / "brief.en.pdf").read_bytes() == b"%PDF-new"
