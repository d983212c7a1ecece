"""The history on SQLite and on PostgreSQL: where it is, its versioned schema, claims under a race,
who is alive, and what a bad REPORTER_STATE_URL says.

Each test that takes ``backend`` runs on both databases: a SQLite file, and a database of its
own on a real PostgreSQL server started for the session (tests/servers.py). Races are real:
processes released together by a barrier, many times over.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
from contextlib import closing
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

import main_schema
from conftest import DEAD_OWNER, LIVE_OWNER, _neutral_cwd, cli_env, run_cli
from projects import make_project, report_block
from reporter import config
from reporter.errors import StateError
from reporter.state import schema
from reporter.state.adopt import adopt
from reporter.state.history import ArtifactRecord, History
from reporter.state.records import SentEntry, add_to_record, read_record, record_path
from reporter.state.target import mask, node, owner, parse_url
from servers import PASSWORD, Backend

DAY = date(2025, 11, 3)
NOW = datetime(2025, 11, 3, 3, 0, 20, tzinfo=timezone.utc)
AT_SLOT = "2025-11-03T08:00:20+05:00"
FAST = dict(languages='["en"]', formats='["html"]')


def _project(folder: Path) -> Path:
    return make_project(folder, [report_block("r", schedule="0 8 * * 1", **FAST)])


def _versions(backend: Backend) -> list[tuple[int, str]]:
    return [(v, note) for v, note in backend.rows("SELECT version, note FROM schema_version ORDER BY version")]


def _indexes(backend: Backend) -> set[str]:
    engine = sa.create_engine(backend.url if backend.server is None else backend.url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            return {index["name"] for table in ("runs", "deliveries", "notices") for index in inspector.get_indexes(table)}
    finally:
        engine.dispose()


# --- the schema, versioned --------------------------------------------------------------------------


def test_a_new_history_gets_the_current_schema_and_its_version(backend):
    history = backend.history()
    assert history.upgraded == []  # a new history is no news for the log
    assert _versions(backend) == [(schema.VERSION, "created")]
    assert {"ix_runs_status", "ix_runs_report_edition", "ix_deliveries_status", "ix_notices_status"} <= _indexes(backend)
    assert backend.history().upgraded == []  # opened again: nothing to do


def _made_by_main(backend: Backend) -> None:
    """A history as the reporter before versions left it: main's tables, a run, a pending delivery."""
    url = backend.url.replace("postgresql://", "postgresql+psycopg://")
    backend.path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            main_schema.metadata.create_all(conn)
            run_id = conn.execute(main_schema.runs.insert().values(
                report="r", edition_date="2025-10-27", slot="2025-10-27T08:00", trigger="run-due",
                started_at="2025-10-27T03:00:20+00:00", finished_at="2025-10-27T03:00:25+00:00", status="ok",
                owner="old-host:42")).inserted_primary_key[0]
            conn.execute(main_schema.slots.insert().values(report="r", slot="2025-10-27T08:00", edition_date="2025-10-27",
                                                           state="ok", run_id=run_id))
            conn.execute(main_schema.cursors.insert().values(report="r", until="2025-10-27T03:00:20+00:00"))
            conn.execute(main_schema.deliveries.insert().values(
                report="r", edition_date="2025-10-27", lang="en", recipient="desk@example.org", kind="to",
                status="pending", attempts=0, updated_at="2025-10-27T03:00:25+00:00", forced=False))
    finally:
        engine.dispose()


def test_a_history_made_by_the_previous_reporter_is_upgraded_not_refused(backend, tmp_path):
    _made_by_main(backend)
    config_path = _project(tmp_path)
    # Nothing is due on that Wednesday: the scheduler opens the history, upgrades it and exits.
    result = run_cli("--config", str(config_path), "run-due", env={"REPORTER_NOW": "2025-11-05T12:00:00+05:00",
                                                                   **backend.env})
    assert result.returncode == 0, result.stderr
    assert "recognised a history without a schema version as version 1" in result.stderr
    assert f"upgraded the history to schema version 2: {schema.MIGRATIONS[2][0]}" in result.stderr
    assert _versions(backend) == [(1, "found without a version: recognised as version 1"), (2, schema.MIGRATIONS[2][0])]
    assert {"ix_runs_status", "ix_runs_report_edition", "ix_deliveries_status", "ix_notices_status"} <= _indexes(backend)
    # What the old reporter recorded is all still there, and new runs follow it.
    assert backend.rows("SELECT id, slot, status, owner FROM runs ORDER BY id")[0] == (1, "2025-10-27T08:00", "ok", "old-host:42")
    assert backend.rows("SELECT status FROM deliveries") == [("pending",)]
    history = backend.history()
    assert history.upgraded == []  # once is enough
    assert history.start_run("r", date(2025, 11, 10), "run-due", NOW, "2025-11-10T08:00") is not None
    again = run_cli("--config", str(config_path), "history", env=backend.env)
    assert "upgraded" not in again.stderr and "2025-10-27T08:00" in again.stdout
    # The old run, the slot the upgrade's run-due found past its grace, and a new one.
    assert backend.rows("SELECT slot, status FROM runs ORDER BY id") == [
        ("2025-10-27T08:00", "ok"), ("2025-11-03T08:00", "skipped"), ("2025-11-10T08:00", "running")]


def test_a_history_newer_than_this_reporter_is_a_clear_error(backend, tmp_path):
    config_path = _project(tmp_path)
    backend.history().close()
    backend.execute("INSERT INTO schema_version (version, applied_at, note) VALUES (99, '2030-01-01', 'future')")
    for command in (["run-due"], ["history"]):
        result = run_cli("--config", str(config_path), *command, env={"REPORTER_NOW": AT_SLOT, **backend.env})
        assert result.returncode == 1
        assert result.stderr == (f"error: {backend.shown}: the history database has schema version 99, newer than this "
                                 f"reporter knows (up to {schema.VERSION}): it was upgraded by a newer reporter; upgrade "
                                 "this one too\n")
    assert backend.rows("SELECT count(*) FROM runs") == [(0,)]


def test_a_history_too_old_to_recognise_is_refused_and_kept(tmp_path):
    state = tmp_path / "state" / "history.sqlite"
    state.parent.mkdir(parents=True)
    with sqlite3.connect(state) as db:
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, report TEXT, edition_date TEXT, slot TEXT, "
                   "trigger TEXT, started_at TEXT, finished_at TEXT, status TEXT, error TEXT)")  # no owner yet
    result = run_cli("--config", str(_project(tmp_path)), "run-due", env={"REPORTER_NOW": AT_SLOT})
    assert result.returncode == 1
    assert result.stderr == (f"error: {state}: the history database was made by a reporter too old to upgrade "
                             "(no column runs.owner); move it aside to start a new one\n")


def _create(url: str, node: str, barrier, out) -> None:
    try:
        barrier.wait(timeout=60)
        _open(url).close()
        out.put((node, "ok"))
    except Exception as exc:  # noqa: BLE001 - the parent shows it
        out.put((node, f"{type(exc).__name__}: {exc}"))


def test_hosts_starting_together_on_a_new_database_create_the_schema_once(postgres):
    # PostgreSQL alone: SQLite's file lock serialises this by itself.
    for _ in range(4):
        url = postgres.url(postgres.create_database())
        assert _race(_create, url) == {"alpha": "ok", "beta": "ok"}
        assert [v for (v,) in Backend("postgresql", Path("/nonexistent"), postgres, url.rsplit("/", 1)[1])
                .rows("SELECT version FROM schema_version")] == [schema.VERSION]


# --- claims under a race -------------------------------------------------------------------------------


def _open(url: str):
    return History(url)


def _as(node: str) -> None:
    # Two hosts share a PostgreSQL state; a SQLite one is one host's, whose processes share its name.
    if node in ("alpha", "beta"):
        os.environ["REPORTER_NODE"] = node


def _claim_slots(url: str, node: str, barrier, keys: list[str], out) -> None:
    _as(node)
    try:
        history = _open(url)
        won = []
        for key in keys:
            barrier.wait(timeout=60)
            if history.start_run("r", DAY, "run-due", NOW, key) is not None:
                won.append(key)
        out.put((node, won))
    except Exception as exc:  # noqa: BLE001 - the parent shows it
        out.put((node, f"{type(exc).__name__}: {exc}"))


def _race(target, url: str, *args) -> dict[str, object]:
    """Two processes doing ``target`` step by step, released together at each step by a barrier."""
    context = multiprocessing.get_context("fork")
    barrier, out = context.Barrier(2), context.Queue()
    nodes = ("alpha", "beta") if url.startswith("postgresql") else ("first", "second")
    workers = [context.Process(target=target, args=(url, node, barrier, *args, out)) for node in nodes]
    for worker in workers:
        worker.start()
    results = dict(out.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    return results


def test_two_processes_claiming_the_same_slots_run_each_once(backend):
    history = backend.history()
    keys = [f"2025-11-03T08:{minute:02d}" for minute in range(40)]
    # Half of them were abandoned by a scheduler that died: claimable again, but by one process only.
    for key in keys[::2]:
        run_id = history.start_run("r", DAY, "run-due", NOW, key)
        history.finish_run(run_id, "abandoned", NOW, error="died")
    results = _race(_claim_slots, backend.url, keys)
    assert all(isinstance(won, list) for won in results.values()), results
    assert sorted(sum(results.values(), [])) == keys  # every slot once: none twice, none lost
    running = backend.rows("SELECT slot, count(*) FROM runs WHERE status = 'running' GROUP BY slot")
    assert sorted(running) == [(key, 1) for key in keys]
    if backend.name == "postgresql":
        assert {owner.split(":")[0] for (owner,) in backend.rows("SELECT owner FROM runs WHERE status = 'running'")} == {"alpha", "beta"}


def _claim_messages(url: str, node: str, barrier, recipients: list[str], out) -> None:
    _as(node)
    try:
        history = _open(url)
        won = []
        for recipient in recipients:
            barrier.wait(timeout=60)
            if history.claim_delivery("r", DAY, "en", recipient, kind="to", now=NOW) is None:
                won.append(recipient)
        out.put((node, won))
    except Exception as exc:  # noqa: BLE001 - the parent shows it
        out.put((node, f"{type(exc).__name__}: {exc}"))


def test_two_processes_claiming_the_same_messages_send_each_once(backend):
    history = backend.history()
    recipients = [f"person{n}@example.org" for n in range(40)]
    # Half have a pending row written with the edition, half none yet (a manual send).
    run_id = history.start_run("r", DAY, "run-due", NOW, "2025-11-03T08:00")
    history.finish_run(run_id, "ok", NOW, pending=[("en", r, "to") for r in recipients[::2]])
    results = _race(_claim_messages, backend.url, recipients)
    assert all(isinstance(won, list) for won in results.values()), results
    assert sorted(sum(results.values(), [])) == sorted(recipients)
    assert backend.rows("SELECT count(*) FROM deliveries WHERE status = 'sending'") == [(40,)]


# --- who is alive ------------------------------------------------------------------------------------------


def test_a_run_is_abandoned_only_when_its_process_is_gone(backend, monkeypatch):
    monkeypatch.setenv("REPORTER_NODE", "other-host")
    renderer = backend.history()
    manual = renderer.start_run("r", DAY, "manual", NOW)  # a render in progress on another host
    monkeypatch.setenv("REPORTER_NODE", "this-host")
    scheduler = backend.history()
    crashed = scheduler.start_run("r", DAY, "run-due", NOW, "2025-11-03T08:00")
    backend.execute("UPDATE runs SET owner = 'crashed-host:4242' WHERE id = :id", {"id": crashed})
    swept = scheduler.abandon_running(datetime(2025, 11, 3, 3, 5, tzinfo=timezone.utc))  # when it was found gone
    if backend.name == "postgresql":
        # Another host's render is alive while its process holds its presence lock...
        assert [run_id for run_id, *_ in swept] == [crashed]
        renderer.close()  # ...and gone once its session ends, whatever ended it
        assert [run_id for run_id, *_ in scheduler.abandon_running(NOW)] == [manual]
    else:
        # One host per SQLite history: another host's name means a process that is gone.
        assert sorted(run_id for run_id, *_ in swept) == [manual, crashed]
    # A render that ends after its run was recorded as abandoned (its scheduler lost the lead, the
    # new leader took the slot over) does not overwrite that, nor add files or pending rows.
    assert scheduler.finish_run(crashed, "ok", NOW, pending=[("en", "desk@example.org", "to")]) is False
    assert backend.rows("SELECT status, finished_at, error FROM runs WHERE id = :id", {"id": crashed}) == [
        ("abandoned", "2025-11-03T03:05:00+00:00", "the process running it stopped before it finished")]
    assert backend.rows("SELECT count(*) FROM deliveries") == [(0,)]


def test_a_sweep_of_sqlite_leaves_a_live_manual_render_running(tmp_path):
    # The scheduler's sweep at start-up: every slot run still "running" is its own dead run, and
    # a manual render only when its process is gone; one in progress here carries on.
    state = tmp_path / "h.sqlite"
    history = History.at(state)
    live = history.start_run("r", DAY, "manual", NOW)
    dead = history.start_run("r", DAY, "manual", NOW)
    slot = history.start_run("r", DAY, "run-due", NOW, "2025-11-03T08:00")
    with closing(sqlite3.connect(state)) as db, db:
        db.execute("UPDATE runs SET owner = ? WHERE id = ?", (DEAD_OWNER.partition("/")[0], dead))
    assert sorted(run_id for run_id, *_ in history.abandon_running(NOW)) == sorted([dead, slot])
    with closing(sqlite3.connect(state)) as db:
        assert dict(db.execute("SELECT id, status FROM runs")) == {live: "running", dead: "abandoned", slot: "abandoned"}
    history.close()


def test_a_scheduler_that_lost_the_lead_cannot_claim_a_slot(pg_backend, postgres):
    # PostgreSQL's alone: with SQLite the scheduler lock is a flock, which its process cannot lose.
    backend = pg_backend
    history = backend.history()
    session = history.session()
    assert session.try_lead()
    history.lead()
    assert history.start_run("r", DAY, "schedule", NOW, "2025-11-03T08:00") is not None
    with postgres.admin() as admin:  # the connection is cut; the lock is freed once its backend has ended
        # With a timeout the call returns once the backend has ended, not when it was told to:
        # until then the server still holds the lock for it, and rightly lets it claim.
        (ended,) = admin.execute("SELECT pg_terminate_backend(%s, 30000)", (session.backend_pid,)).fetchone()
    assert ended
    with pytest.raises(StateError) as refused:
        history.start_run("r", DAY, "schedule", NOW, "2025-11-03T09:00")
    assert [str(problem) for problem in refused.value.problems] == [
        f"{history.where}: r slot 2025-11-03T09:00: not claimed, because this scheduler no longer leads "
        "(its connection to the state database was lost)"]
    assert backend.rows("SELECT slot FROM slots") == [("2025-11-03T08:00",)]


def test_a_claim_of_another_thread_stands_while_its_process_lives_even_without_its_session(pg_backend, postgres):
    # The scheduler delivers two editions side by side, one per thread. Its connection to the
    # server is cut, and with it the presence lock that tells others it lives; to itself, it
    # still lives: a thread of its own is told the other thread is sending, and sends nothing.
    history = pg_backend.history()
    session = history.session()
    first = {}
    thread = threading.Thread(target=lambda: first.setdefault(
        "claim", history.claim_delivery("r", DAY, "en", "desk@example.org", kind="to", now=NOW)))
    thread.start()
    thread.join()
    assert first == {"claim": None}
    assert history.claim_delivery("r", DAY, "en", "desk@example.org", kind="to", now=NOW) == "sending"
    with postgres.admin() as admin:
        (ended,) = admin.execute("SELECT pg_terminate_backend(%s, 30000)", (session.backend_pid,)).fetchone()
    assert ended
    assert history.claim_delivery("r", DAY, "en", "desk@example.org", kind="to", now=NOW) == "sending"
    assert pg_backend.rows("SELECT status, owner FROM deliveries") == [("sending", f"{owner()}/{thread.ident}")]


def test_a_recipient_another_process_adds_between_the_read_and_the_insert_is_not_claimed(pg_backend):
    # With PostgreSQL, a row that is not there yet cannot be locked: another process may add the
    # same recipient's row after this claim found none and before it inserts its own. A trigger
    # plays that process, at exactly that moment: the claim's insert then adds nothing, and the
    # claim goes by what the other wrote: sent already, or being sent by a live process.
    history = pg_backend.history()
    history.session()
    live = f"{owner()}/1"  # another thread of this process
    pg_backend.execute(f"""
        CREATE FUNCTION meanwhile() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF pg_trigger_depth() = 1 THEN
            INSERT INTO deliveries (report, edition_date, lang, recipient, kind, status, attempts, owner, updated_at, forced)
            VALUES (NEW.report, NEW.edition_date, NEW.lang, NEW.recipient, NEW.kind,
                    CASE WHEN NEW.recipient = 'desk@example.org' THEN 'sent' ELSE 'sending' END, 1,
                    CASE WHEN NEW.recipient = 'desk@example.org' THEN NULL ELSE '{live}' END,
                    '2025-11-03T03:00:00+00:00', false);
          END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER meanwhile BEFORE INSERT ON deliveries FOR EACH ROW EXECUTE FUNCTION meanwhile();""")
    claims = {address: history.claim_delivery("r", DAY, "en", address, kind="to", now=NOW)
              for address in ("desk@example.org", "editor@example.org")}
    assert claims == {"desk@example.org": "sent", "editor@example.org": "sending"}
    assert pg_backend.rows("SELECT recipient, status, owner FROM deliveries ORDER BY recipient") == [
        ("desk@example.org", "sent", None), ("editor@example.org", "sending", live)]


def test_a_session_whose_connection_failed_is_made_anew_though_another_history_shares_it(pg_backend, postgres):
    # One session per process, shared by each History it opens; once its connection fails, the
    # History that finds out drops it for all, and the next one asked for is a new connection.
    first, second = pg_backend.history(), pg_backend.history()
    session = first.session()
    assert second.session() is session
    with postgres.admin() as admin:
        (ended,) = admin.execute("SELECT pg_terminate_backend(%s, 30000)", (session.backend_pid,)).fetchone()
    assert ended
    first.drop_session()
    fresh = first.session()
    assert fresh is not session and fresh.backend_pid != session.backend_pid
    assert fresh.try_lead() and fresh.leader() == owner()


def test_two_projects_in_two_schemas_of_one_database_each_have_their_own_leader(postgres):
    database = postgres.create_database()
    with postgres.admin(database) as conn:
        conn.execute("CREATE SCHEMA project_b AUTHORIZATION reporter")
    project_a = _open(postgres.url(database))
    project_b = _open(postgres.url(database) + "?options=-csearch_path%3Dproject_b")
    try:
        assert project_a.session().try_lead() and project_b.session().try_lead()
        tables = Backend("postgresql", Path("/nonexistent"), postgres, database).rows(
            "SELECT table_schema, count(*) FROM information_schema.tables WHERE table_name IN ('runs', 'slots') "
            "GROUP BY table_schema ORDER BY table_schema")
        assert tables == [("project_b", 2), ("public", 2)]
    finally:
        project_a.close()
        project_b.close()


# --- the node name ------------------------------------------------------------------------------------------


def test_the_node_name_says_which_host_did_what(tmp_path):
    # On SQLite here; on PostgreSQL, tests/test_leader.py reads the node of every run.
    config_path = _project(tmp_path)
    result = run_cli("--config", str(config_path), "run-due", env={"REPORTER_NOW": AT_SLOT, "REPORTER_NODE": "host-a"})
    assert result.returncode == 0, result.stderr
    ((owner,),) = Backend("sqlite", tmp_path / "state" / "history.sqlite").rows("SELECT owner FROM runs")
    assert owner.startswith("host-a:")
    bad = run_cli("--config", str(config_path), "run-due", env={"REPORTER_NODE": "a/b c"})
    assert (bad.returncode, bad.stderr) == (1, "error: REPORTER_NODE: 'a/b c' is not a node name: letters, digits, "
                                               "'.', '_' and '-', at most 63, starting with a letter or digit\n")


# --- REPORTER_STATE_URL: the password never shows, bad input is one line --------------------------------


def test_bad_state_urls_are_one_line_naming_the_variable(postgres, tmp_path):
    config_path = _project(tmp_path)
    database = postgres.create_database()
    closed = _closed_port()
    cases = [
        ("mysql://u:hunter2@db/x", "error: REPORTER_STATE_URL: the scheme 'mysql://' is not supported; expected "
         "postgresql://user@host:5432/database (or sqlite:////absolute/path.sqlite)"),
        ("postgresql://u:hunter2@db:99999/x", "error: REPORTER_STATE_URL: 'postgresql://u:***@db:99999/x': the port is "
         "not a number from 1 to 65535"),
        ("not a url hunter2", "error: REPORTER_STATE_URL: not a database URL (not shown here, as it may hold a "
         "password); expected postgresql://user@host:5432/database (or sqlite:////absolute/path.sqlite)"),
        (f"postgresql://reporter:hunter2@127.0.0.1:{postgres.port}/{database}",
         f"error: REPORTER_STATE_URL (postgresql://reporter:***@127.0.0.1:{postgres.port}/{database}): cannot connect to "
         f"the state database: connection to server at \"127.0.0.1\", port {postgres.port} failed: FATAL: password "
         "authentication failed for user \"reporter\""),
        (f"postgresql://reporter:hunter2@127.0.0.1:{closed}/{database}",
         f"error: REPORTER_STATE_URL (postgresql://reporter:***@127.0.0.1:{closed}/{database}): cannot connect to the "
         f"state database: connection to server at \"127.0.0.1\", port {closed} failed: Connection refused"),
    ]
    for url, expected in cases:
        # Every command that opens the state says it the same way; run-due for each case, and two more for one.
        for command in (["run-due"], ["history"], ["status"]) if url == cases[3][0] else (["run-due"],):
            result = run_cli("--config", str(config_path), *command, env={"REPORTER_STATE_URL": url})
            assert result.returncode == 1, (url, command)
            assert result.stderr.splitlines()[0].startswith(expected), (url, command, result.stderr)
            assert len(result.stderr.splitlines()) == 1 and "hunter2" not in result.stderr
    # --debug shows the traceback behind it, still without the password.
    debug = run_cli("--config", str(config_path), "--debug", "history", env={"REPORTER_STATE_URL": cases[3][0]})
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "password authentication failed" in debug.stderr
    assert "hunter2" not in debug.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_password_may_come_from_pgpassword_or_pgpass_and_never_shows(postgres, tmp_path):
    config_path = _project(tmp_path)
    database = postgres.create_database()
    url = postgres.url(database, password=False)
    first = run_cli("--config", str(config_path), "run-due", env={"REPORTER_STATE_URL": url, "PGPASSWORD": PASSWORD,
                                                                  "REPORTER_NOW": AT_SLOT})
    assert first.returncode == 0, first.stderr
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{postgres.port}:{database}:reporter:{PASSWORD}\n")
    pgpass.chmod(stat.S_IRUSR | stat.S_IWUSR)  # libpq ignores a password file others can read
    second = run_cli("--config", str(config_path), "history", env={"REPORTER_STATE_URL": url, "PGPASSFILE": str(pgpass)})
    assert second.returncode == 0, second.stderr
    assert "2025-11-03T08:00" in second.stdout
    # In the URL: never in a log line, the status JSON or the history.
    status = run_cli("--config", str(config_path), "--log-json", "status", "--json",
                     env={"REPORTER_STATE_URL": postgres.url(database), "REPORTER_NOW": AT_SLOT})
    assert status.returncode == 0, status.stderr
    assert f'"state": "postgresql://reporter:***@127.0.0.1:{postgres.port}/{database}"' in status.stdout
    for text in (first.stderr, second.stderr, status.stdout, status.stderr):
        assert PASSWORD not in text
    with postgres.admin(database) as conn:
        dump = " ".join(str(row) for table in ("runs", "deliveries", "schema_version", "notices", "slots", "cursors")
                        for row in conn.execute(f"SELECT * FROM {table}").fetchall())
    assert PASSWORD not in dump


def test_masking_takes_a_password_out_in_every_spelling():
    target = parse_url("postgresql://reporter:p%40ss%3Aw%2Frd@db.example.org:5432/briefs?sslmode=require")
    assert target.shown == "postgresql://reporter:***@db.example.org:5432/briefs?sslmode=require"
    assert target.mask("failed for p@ss:w/rd and p%40ss%3Aw%2Frd") == "failed for *** and ***"
    other = parse_url("postgresql://reporter@db/briefs?password=s3cr3t&sslmode=require")
    assert "s3cr3t" not in other.shown and "s3cr3t" not in other.where
    assert mask("x s3cr3t y", ("s3cr3t",)) == "x *** y"
    # A SQLite file may be named the same way.
    assert parse_url("sqlite:////srv/briefs/state/h.sqlite").path == Path("/srv/briefs/state/h.sqlite")


# --- what does not need PostgreSQL does not load it -------------------------------------------------------


def test_commands_without_postgresql_do_not_import_its_driver(tmp_path):
    config_path = _project(tmp_path)
    for command in (["--help"], ["list"], ["run-due"]):
        result = _importtime(config_path, *command)
        assert result.returncode == 0, result.stderr
        assert "psycopg" not in result.stderr, command
    assert "nothing due" in result.stderr


def test_a_postgresql_state_does_load_it(postgres, tmp_path):
    config_path = _project(tmp_path)
    result = _importtime(config_path, "run-due", env={"REPORTER_STATE_URL": postgres.url(postgres.create_database())})
    assert result.returncode == 0, result.stderr
    assert "psycopg" in result.stderr  # the check above would see it


def _importtime(config_path: Path, *args: str, env: dict[str, str] | None = None):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "reporter", "--config", str(config_path), *args],
                          capture_output=True, text=True, timeout=120, cwd=_neutral_cwd(),
                          env=cli_env({"REPORTER_NOW": "2025-11-05T12:00:00+05:00", **(env or {})}))
    return proc


def test_send_if_changed_compares_with_what_that_recipient_last_got_of_that_report_in_that_language(tmp_path):
    """The ledger's answer to "what did this person get last time?" (send_if = "changed"): the
    newest earlier edition of the same report, in the same language, that reached them."""
    history = History.at(tmp_path / "history.sqlite")
    now = datetime(2025, 11, 5, 3, 0, tzinfo=timezone.utc)

    def got(report: str, day: int, lang: str, recipient: str, content: str, status: str = "sent") -> None:
        history.record_delivery(report, date(2025, 11, day), lang, recipient, kind="to", status=status, attempts=1,
                                reply="250 OK", now=now, content=content)

    got("brief", 2, "ru", "Ann@Example.org", "brief ru, 2 Nov")
    got("brief", 3, "ru", "ann@example.org", "brief ru, 3 Nov")
    got("brief", 5, "ru", "ann@example.org", "brief ru, 5 Nov")  # the edition being sent: not an earlier one
    got("brief", 1, "en", "ann@example.org", "brief en, 1 Nov")
    got("other", 1, "ru", "ann@example.org", "other ru, 1 Nov")
    got("brief", 1, "ru", "bob@example.org", "bob's brief, 1 Nov")
    got("brief", 1, "ru", "cat@example.org", "cat's brief, 1 Nov", status="unchanged")
    got("brief", 4, "ru", "cat@example.org", "never reached cat", status="failed")
    try:
        def last(report: str, lang: str, recipient: str, before: int = 5) -> str | None:
            return history.last_sent_content(report, lang, recipient, date(2025, 11, before))

        assert last("brief", "ru", "ANN@example.org") == "brief ru, 3 Nov"
        assert last("brief", "ru", "ann@example.org", before=3) == "brief ru, 2 Nov"
        assert last("brief", "en", "ann@example.org") == "brief en, 1 Nov"
        assert last("other", "ru", "ann@example.org") == "other ru, 1 Nov"
        assert last("brief", "ru", "bob@example.org") == "bob's brief, 1 Nov"
        assert last("brief", "ru", "cat@example.org") == "cat's brief, 1 Nov"  # unchanged counts; failed does not
        assert last("brief", "ru", "dan@example.org") is None
    finally:
        history.close()


# --- deliveries.json beside each edition (reporter/state/records.py) ---------------------------

def _entry(lang: str, recipient: str, **changes):
    return SentEntry(**{"lang": lang, "recipient": recipient, "kind": "to", "sent_at": "2025-11-05T03:00:00+00:00",
                        "message_id": f"<{lang}.{recipient}>", "sha256": "ab" * 32, "reply": "250 OK", **changes})


def test_the_delivery_record_is_the_document_an_operator_reads(tmp_path: Path) -> None:
    """What `cat deliveries.json` shows: its report and date, one entry per language and
    address in a stable order, names legible in any script, and a later send replacing only
    that recipient's entry."""
    edition = tmp_path / "brief" / "2025-11-05"
    edition.mkdir(parents=True)
    add_to_record(edition, "brief", date(2025, 11, 5), _entry("ru", "Аналитик@example.org"))
    add_to_record(edition, "brief", date(2025, 11, 5), _entry("en", "desk@example.org"))
    add_to_record(edition, "brief", date(2025, 11, 5), _entry("ru", "analyst@example.org", reply="250 queued"))
    text = record_path(edition).read_text(encoding="utf-8")
    assert text.endswith("}\n") and "\n  \"deliveries\": [\n    {\n      \"lang\": \"en\"," in text
    assert "Аналитик@example.org" in text  # not \u escapes
    document = json.loads(text)
    assert {k: v for k, v in document.items() if k != "deliveries"} == {
        "version": 1, "report": "brief", "edition_date": "2025-11-05"}
    assert [(e["lang"], e["recipient"], e["reply"]) for e in document["deliveries"]] == [
        ("en", "desk@example.org", "250 OK"),
        ("ru", "analyst@example.org", "250 queued"),
        ("ru", "Аналитик@example.org", "250 OK")]
    assert read_record(edition)[("ru", "analyst@example.org")].reply == "250 queued"
    # The same address again, in another case: it replaces that entry, not adds one.
    add_to_record(edition, "brief", date(2025, 11, 5), _entry("en", "DESK@example.org", attempts=2))
    entries = json.loads(record_path(edition).read_text(encoding="utf-8"))["deliveries"]
    assert [(e["lang"], e["recipient"], e["attempts"]) for e in entries][0] == ("en", "DESK@example.org", 2)
    assert len(entries) == 3


@pytest.mark.parametrize("how", ["no-folder", "a-folder-in-its-place", "immutable-folder"])
def test_a_delivery_record_that_cannot_be_written_is_an_error_naming_it(tmp_path: Path, how: str) -> None:
    edition = tmp_path / "brief" / "2025-11-05"
    if how != "no-folder":
        edition.mkdir(parents=True)
    if how == "a-folder-in-its-place":
        record_path(edition).mkdir()
    if how == "immutable-folder" and subprocess.run(["chattr", "+i", str(edition)], capture_output=True).returncode:
        pytest.skip("chattr +i is not supported here (needs root and a file system with attributes)")
    try:
        with pytest.raises(StateError) as caught:
            add_to_record(edition, "brief", date(2025, 11, 5), _entry("en", "desk@example.org"))
    finally:
        if how == "immutable-folder":
            subprocess.run(["chattr", "-i", str(edition)], check=True)
    (problem,) = caught.value.problems
    assert problem.file == str(record_path(edition))
    assert problem.place == ""
    expected = {"no-folder": "cannot write: No such file or directory",
                "a-folder-in-its-place": "cannot read this edition's delivery record (Is a directory)",
                "immutable-folder": "cannot write: Operation not permitted"}[how]
    assert problem.message.startswith(expected), problem.message


@pytest.mark.parametrize(("document", "reason"), [
    ('{"version": 1}', "KeyError: 'deliveries'"),
    ('{"deliveries": [{"lang": "en"}]}', "TypeError: SentEntry.__init__() missing 6 required positional arguments: "
                                          "'recipient', 'kind', 'sent_at', 'message_id', 'sha256', and 'reply'"),
    ('{"deliveries": 5}', "TypeError: 'int' object is not iterable"),
])
def test_a_delivery_record_of_another_shape_is_an_error_never_nobody_got_it(tmp_path: Path, document: str,
                                                                             reason: str) -> None:
    edition = tmp_path / "brief" / "2025-11-05"
    edition.mkdir(parents=True)
    record_path(edition).write_text(document, encoding="utf-8")
    with pytest.raises(StateError) as caught:
        read_record(edition)
    assert [str(problem) for problem in caught.value.problems] == [
        f"{record_path(edition)}: not a delivery record ({reason}); fix it, or move it aside if nobody got this edition"]


@pytest.mark.parametrize(("content", "reason"), [
    (b'{"deliveries": [', "Expecting value: line 1 column 17 (char 16)"),
    (b'{"report": "\xff"}', "'utf-8' codec can't decode byte 0xff in position 12: invalid start byte"),
])
def test_a_delivery_record_that_cannot_be_read_says_why_and_where(tmp_path: Path, content: bytes, reason: str) -> None:
    edition = tmp_path / "brief" / "2025-11-05"
    edition.mkdir(parents=True)
    record_path(edition).write_bytes(content)
    with pytest.raises(StateError) as caught:
        read_record(edition)
    assert [str(problem) for problem in caught.value.problems] == [
        f"{record_path(edition)}: cannot read this edition's delivery record ({reason}); "
        "fix it, or move it aside if nobody got this edition"]


def test_a_history_in_folders_not_made_yet_makes_them(tmp_path: Path) -> None:
    # state = "var/reporter/history.sqlite" in a project just cloned: neither folder is there.
    state = tmp_path / "var" / "reporter" / "history.sqlite"
    history = History.at(state)
    assert not history.has_runs()
    history.close()
    assert state.is_file()


def test_a_history_path_that_cannot_hold_a_database_is_named(tmp_path: Path) -> None:
    with pytest.raises(StateError) as caught:
        History.at(tmp_path)
    assert [str(p) for p in caught.value.problems] == [f"{tmp_path}: is a folder, not a history database file"]
    (tmp_path / "state").write_text("a file where the folder goes")
    with pytest.raises(StateError) as caught:
        History.at(tmp_path / "state" / "reporter.sqlite")
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'state' / 'reporter.sqlite'}: cannot create its folder: File exists"]


def test_a_history_locked_at_the_start_up_check_is_said_to_be_locked_not_damaged(tmp_path: Path) -> None:
    # "Move it aside" would be the wrong advice. Costs the 10 s that SQLite waits for a lock.
    state = tmp_path / "h.sqlite"
    history = History.at(state)
    history.close()  # its connections go; the check makes a new one
    with closing(sqlite3.connect(state, isolation_level=None)) as other:
        other.execute("PRAGMA locking_mode=EXCLUSIVE")  # held until closed: not even a reader gets in
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StateError) as caught:
            history.check()
    assert [str(p) for p in caught.value.problems] == [
        f"{state}: the history database is locked by another process; try again"]
    history.check()  # and fine once the lock is gone
    history.close()


def test_a_history_that_cannot_be_used_says_whether_it_is_damaged(tmp_path: Path) -> None:
    # In SQLite's own words, without SQLAlchemy's statement and link; "damaged" only when it is.
    damaged = tmp_path / "damaged.sqlite"
    History.at(damaged).close()
    pages = damaged.read_bytes()
    damaged.write_bytes(pages[:8192] + b"\xab" * (len(pages) - 8192))
    with pytest.raises(StateError) as caught:
        History.at(damaged)
    assert [str(p) for p in caught.value.problems] == [
        f"{damaged}: the history database is damaged (database disk image is malformed); "
        "move it aside, then `reporter adopt` rebuilds it from the editions on disk"]
    foreign = tmp_path / "foreign.sqlite"
    with closing(sqlite3.connect(foreign)) as db, db:
        db.execute("CREATE TABLE schema_version (x)")
    with pytest.raises(StateError) as caught:
        History.at(foreign)
    assert [str(p) for p in caught.value.problems] == [
        f"{foreign}: cannot use the history database: no such column: schema_version.version"]


def test_adopt_takes_every_edition_the_history_lacks_and_leaves_the_ones_it_has(tmp_path):
    # Known means a run that ended ok for that report and that date: a failed run of the same
    # edition, or an ok run of another date or another report, leaves it to adopt.
    project = config.load(make_project(tmp_path, [report_block("r", languages='["en"]', formats='["html"]'),
                                                  report_block("q", languages='["en"]', formats='["html"]')]))
    later = date(2025, 11, 10)
    written = datetime(2025, 11, 3, 3, 5, 7, tzinfo=timezone.utc)
    for report, day in [("r", DAY), ("r", later), ("q", DAY), ("q", later)]:
        folder = project.output_dir / report / day.isoformat()
        folder.mkdir(parents=True)
        (folder / f"{report}.en.html").write_text(f"<p>{report} {day}</p>", encoding="utf-8")
        os.utime(folder / f"{report}.en.html", (written.timestamp(), written.timestamp()))

    sent = SentEntry("en", "desk@example.org", "cc", "2025-11-03T03:06:00+00:00", "<m1@example.org>", "ab" * 32,
                     "250 2.0.0 OK queued as 42", attempts=2, forced=True, content="digest")
    add_to_record(project.output_dir / "q" / DAY.isoformat(), "q", DAY, sent)
    history = History.at(project.state_path)
    history.finish_run(history.start_run("r", DAY, "manual", NOW), "ok", NOW)        # known
    history.finish_run(history.start_run("r", later, "manual", NOW), "failed", NOW)  # not a finished edition
    history.finish_run(history.start_run("q", later, "manual", NOW), "ok", NOW)      # known
    done = adopt(project, history, NOW)
    assert (done.editions, done.skipped) == (2, 2)
    adopted = sorted((run.report, run.edition_date) for run in history.runs(limit=10) if run.trigger == "adopt")
    assert adopted == [("q", DAY.isoformat()), ("r", later.isoformat())]
    # What `reporter history` shows of an adopted run: written when its files were, and said so.
    run = next(run for run in history.runs("q") if run.trigger == "adopt")
    assert (run.started_at, run.finished_at, run.status) == ("2025-11-03T03:05:07+00:00",) * 2 + ("ok",)
    assert run.error == "adopted from the files on disk at 2025-11-03T03:00:20+00:00"
    assert [(a.lang, a.format, a.size) for a in run.artifacts] == [("en", "html", len("<p>q 2025-11-03</p>"))]
    # The record's delivery joins the ledger as sent, found however the address is written.
    assert done.deliveries == 1
    row = history.delivery("q", DAY, "en", "Desk@Example.org")
    assert (row.recipient, row.kind, row.status, row.attempts, row.reply, row.message_id, row.sha256, row.content,
            row.forced, row.updated_at) == (
        "desk@example.org", "cc", "sent", 2, "250 2.0.0 OK queued as 42", "<m1@example.org>", "ab" * 32, "digest",
        True, "2025-11-03T03:06:00+00:00")
    history.close()


def test_a_reason_for_not_sending_goes_on_the_rows_still_waiting_and_spares_a_live_claim(tmp_path):
    state = tmp_path / "h.sqlite"
    history = History.at(state)
    for address, status in [("sent@example.org", "sent"), ("live@example.org", "sending"),
                            ("waiting@example.org", "pending"), ("dead@example.org", "sending")]:
        history.record_delivery("r", DAY, "en", address, kind="to", status=status, attempts=1, reply="before", now=NOW)
    with closing(sqlite3.connect(state)) as db, db:
        db.execute("UPDATE deliveries SET owner = ? WHERE recipient = 'live@example.org'", (LIVE_OWNER,))
        db.execute("UPDATE deliveries SET owner = ? WHERE recipient = 'dead@example.org'", (DEAD_OWNER,))
    later = datetime(2025, 11, 3, 4, 0, tzinfo=timezone.utc)
    keys = [("en", "nobody@example.org"), ("en", "sent@example.org"), ("en", "live@example.org"),
            ("en", "Waiting@Example.org"), ("en", "dead@example.org")]
    history.note_undelivered("r", DAY, keys, "SMTP settings missing", later, status="failed")
    rows = {row.recipient: (row.status, row.reply, row.updated_at, row.owner) for row in history.deliveries("r")}
    noted = ("failed", "SMTP settings missing", "2025-11-03T04:00:00+00:00", None)
    assert rows == {
        "sent@example.org": ("sent", "before", "2025-11-03T03:00:20+00:00", None),
        "live@example.org": ("sending", "before", "2025-11-03T03:00:20+00:00", LIVE_OWNER),
        "waiting@example.org": noted, "dead@example.org": noted}
    history.close()


def test_an_edition_was_written_when_its_first_successful_run_finished(tmp_path):
    # Where the retry window and the health check start: neither a failed run, nor another
    # report's or another date's edition, nor a later re-render moves it.
    history = History.at(tmp_path / "h.sqlite")
    assert history.edition_written_at("r", DAY) is None

    def run(report: str, day: date, status: str, minute: int) -> None:
        run_id = history.start_run(report, day, "manual", NOW)
        history.finish_run(run_id, status, datetime(2025, 11, 3, 4, minute, tzinfo=timezone.utc),
                           error=None if status == "ok" else "broken")

    run("r", DAY, "failed", 1)
    assert history.edition_written_at("r", DAY) is None
    run("q", DAY, "ok", 2)
    run("r", date(2025, 11, 2), "ok", 3)
    run("r", DAY, "ok", 10)
    run("r", DAY, "ok", 20)
    assert history.edition_written_at("r", DAY) == datetime(2025, 11, 3, 4, 10, tzinfo=timezone.utc)
    assert history.edition_written_at("q", DAY) == datetime(2025, 11, 3, 4, 2, tzinfo=timezone.utc)
    history.close()


def test_a_delivery_is_looked_up_by_report_date_language_and_address(tmp_path):
    # What a delivery reads before it sends: the row of that report, edition, language and
    # recipient only, never a neighbour's, whatever the case of the address.
    history = History.at(tmp_path / "h.sqlite")
    rows = {("r", DAY, "en"): "sent", ("q", DAY, "en"): "failed", ("r", DAY, "ru"): "pending",
            ("r", date(2025, 11, 4), "en"): "unchanged"}
    for (report, day, lang), status in rows.items():
        history.record_delivery(report, day, lang, "desk@example.org", kind="to", status=status, attempts=1,
                                reply=None, now=NOW)
    for (report, day, lang), status in rows.items():
        found = history.delivery(report, day, lang, "Desk@Example.org")
        assert (found.report, found.edition_date, found.lang, found.status) == (report, day.isoformat(), lang, status)
    assert history.delivery("r", DAY, "en", "analyst@example.org") is None
    history.close()


def test_claiming_a_message_that_waits_marks_it_sending_by_this_thread_from_now(tmp_path):
    # What another sender, and `reporter history`, then read of a failed message being sent again.
    history = History.at(tmp_path / "h.sqlite")
    history.record_delivery("r", DAY, "en", "desk@example.org", kind="to", status="failed", attempts=1,
                            reply="451 4.3.0 try later", now=NOW)
    later = datetime(2025, 11, 3, 3, 5, tzinfo=timezone.utc)
    assert history.claim_delivery("r", DAY, "en", "desk@example.org", kind="to", now=later) is None
    row = history.delivery("r", DAY, "en", "desk@example.org")
    assert (row.status, row.owner, row.updated_at, row.attempts, row.reply) == (
        "sending", f"{owner()}/{threading.get_ident()}", "2025-11-03T03:05:00+00:00", 1, "451 4.3.0 try later")
    history.close()


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def test_the_pdf_a_delivery_sends_is_the_newest_successful_one_of_that_report_date_and_language(tmp_path):
    history = History.at(tmp_path / "h.sqlite")

    def run(report: str, day: date, status: str, *files: tuple[str, str, str]) -> int:
        run_id = history.start_run(report, day, "manual", NOW)
        history.finish_run(run_id, status, NOW, files=[
            ArtifactRecord(name, lang, kind, _digest(name), len(name)) for name, lang, kind in files])
        return run_id

    sent = run("r", DAY, "ok", ("r.en.pdf", "en", "pdf"), ("r.en.html", "en", "html"), ("r.ru.pdf", "ru", "pdf"))
    run("q", DAY, "ok", ("q.en.pdf", "en", "pdf"))  # another report, later
    run("r", date(2025, 11, 4), "ok", ("r-next.en.pdf", "en", "pdf"))  # another edition
    run("r", DAY, "ok", ("r-again.en.html", "en", "html"))  # a later render that wrote no PDF
    run("r", DAY, "failed", ("r-failed.en.pdf", "en", "pdf"))  # what a failed run left is never sent
    assert history.latest_pdf("r", DAY, "en") == (sent, ArtifactRecord("r.en.pdf", "en", "pdf", _digest("r.en.pdf"), 8))
    assert history.latest_pdf("r", DAY, "ru")[1].path == "r.ru.pdf"
    assert history.latest_pdf("r", DAY, "kk") is None
    newer = run("r", DAY, "ok", ("r-new.en.pdf", "en", "pdf"))
    assert history.latest_pdf("r", DAY, "en")[0] == newer
    history.close()


def test_the_slots_in_a_state_are_that_reports_slots_in_that_state_only(tmp_path):
    # What the planner is given to run again: the abandoned slots of that report, not its
    # finished ones, and not another report's abandoned ones.
    history = History.at(tmp_path / "h.sqlite")
    for report, key, status in (("r", "2025-11-03T08:00", "abandoned"), ("r", "2025-11-03T09:00", "ok"),
                                ("q", "2025-11-03T07:00", "abandoned")):
        history.finish_run(history.start_run(report, DAY, "run-due", NOW, key), status, NOW)
    assert history.slots_in_state("r", "abandoned") == ["2025-11-03T08:00"]
    assert history.slots_in_state("r", "ok") == ["2025-11-03T09:00"]
    assert history.slots_in_state("q", "ok") == []
    history.close()


def test_two_reports_with_the_same_slot_time_each_claim_their_own(tmp_path):
    # Two reports at 08:00: the slot's name is the same, the claims are not.
    history = History.at(tmp_path / "h.sqlite")
    key = "2025-11-03T08:00"
    first = history.start_run("r", DAY, "run-due", NOW, key)
    second = history.start_run("q", DAY, "run-due", NOW, key)
    assert first is not None and second is not None and first != second
    history.finish_run(first, "ok", NOW)
    assert history.start_run("q", DAY, "run-due", NOW, key) is None  # q's own claim still holds it
    assert history.slots_in_state("r", "ok") == [key]
    assert history.slots_in_state("q", "running") == [key]
    history.finish_run(second, "abandoned", NOW)
    again = history.start_run("q", DAY, "run-due", NOW, key)  # an abandoned slot is claimed again...
    assert again is not None
    assert history.slots_in_state("r", "ok") == [key]  # ...without touching r's
    assert history.start_run("r", DAY, "run-due", NOW, key) is None
    history.close()


def test_what_waits_to_be_delivered_comes_oldest_edition_first_in_a_stable_order(tmp_path):
    # The order in which the scheduler retries what it owes: by edition,
    # then report, language and address, whatever order the rows were written in.
    history = History.at(tmp_path / "h.sqlite")
    expected = [(date(2025, 11, 2), "r", "en", "b@example.org"), (DAY, "q", "ru", "c@example.org"),
                (DAY, "r", "en", "b@example.org"), (DAY, "r", "ru", "a@example.org"), (DAY, "r", "ru", "b@example.org")]
    for day, report, lang, address in reversed(expected):
        history.record_delivery(report, day, lang, address, kind="to", status="failed", attempts=1, reply=None, now=NOW)
    history.record_delivery("r", DAY, "en", "sent@example.org", kind="to", status="sent", attempts=1, reply=None, now=NOW)
    assert [(date.fromisoformat(row.edition_date), row.report, row.lang, row.recipient)
            for row in history.undelivered()] == expected
    history.close()


def test_a_slot_is_skipped_once_and_never_once_decided(tmp_path):
    # True says the skip was recorded now: the scheduler logs a "skipped" event only then.
    history = History.at(tmp_path / "h.sqlite")
    later = datetime(2025, 11, 3, 4, 0, tzinfo=timezone.utc)
    assert history.skip_slot("r", DAY, "2025-11-03T08:00", NOW, "catch-up policy 'skip'", "catch-up")
    assert not history.skip_slot("r", DAY, "2025-11-03T08:00", later, "another reason", "schedule")
    ran = history.start_run("r", date(2025, 11, 4), "schedule", NOW, "2025-11-04T08:00")
    assert ran is not None
    assert not history.skip_slot("r", date(2025, 11, 4), "2025-11-04T08:00", later, "late", "schedule")
    assert [(run.slot, run.trigger, run.status, run.error, run.finished_at) for run in history.runs("r")] == [
        ("2025-11-04T08:00", "schedule", "running", None, None),
        ("2025-11-03T08:00", "catch-up", "skipped", "catch-up policy 'skip'", NOW.isoformat())]
    history.close()


def test_failure_notices_come_newest_first_then_by_recipient(backend):
    # The order `reporter history` lists them in, and the order they are sent in.
    history = backend.history()
    queued = [("2025-11-03T08:00", "b@example.org", NOW), ("2025-11-03T08:00", "a@example.org", NOW),
              ("2025-11-04T08:00", "c@example.org", NOW + timedelta(days=1)),
              ("2025-11-02T08:00", "a@example.org", NOW - timedelta(days=1))]
    for about, address, when in queued:
        assert history.add_notice("r", "render", about, address, edition_date=DAY, lang="en", error="failed", now=when)
    assert [(n.about, n.recipient) for n in history.notices()] == [
        ("2025-11-04T08:00", "c@example.org"), ("2025-11-03T08:00", "a@example.org"),
        ("2025-11-03T08:00", "b@example.org"), ("2025-11-02T08:00", "a@example.org")]
    # Those still to send leave out one a live process is sending, and keep a dead one's.
    backend.execute("UPDATE notices SET status = 'sending', owner = :o WHERE recipient = 'c@example.org'", {"o": f"{owner()}/1"})
    backend.execute("UPDATE notices SET status = 'sending', owner = :o WHERE recipient = 'b@example.org'", {"o": DEAD_OWNER})
    backend.execute("UPDATE notices SET status = 'sent' WHERE about = '2025-11-02T08:00'")
    assert [(n.about, n.recipient) for n in history.notices(unsent=True)] == [
        ("2025-11-03T08:00", "a@example.org"), ("2025-11-03T08:00", "b@example.org")]
    history.close()


def test_deliveries_come_newest_edition_first_then_by_language_and_recipient(backend):
    # The order `reporter history` and the archive list them in.
    history = backend.history()
    for day, lang, address in [(DAY, "ru", "a@example.org"), (DAY + timedelta(days=1), "ru", "b@example.org"),
                               (DAY, "en", "b@example.org"), (DAY + timedelta(days=1), "en", "c@example.org"),
                               (DAY, "en", "a@example.org"), (DAY - timedelta(days=1), "en", "a@example.org")]:
        history.record_delivery("r", day, lang, address, kind="scheduled", status="sent", attempts=1, reply="250 OK", now=NOW)
    assert [(d.edition_date, d.lang, d.recipient) for d in history.deliveries("r")] == [
        ("2025-11-04", "en", "c@example.org"), ("2025-11-04", "ru", "b@example.org"),
        ("2025-11-03", "en", "a@example.org"), ("2025-11-03", "en", "b@example.org"),
        ("2025-11-03", "ru", "a@example.org"), ("2025-11-02", "en", "a@example.org")]
    assert [(d.lang, d.recipient) for d in history.deliveries("r", DAY)] == [
        ("en", "a@example.org"), ("en", "b@example.org"), ("ru", "a@example.org")]
    assert history.deliveries("other") == []
    history.close()


def test_a_failure_notice_is_claimed_unless_sent_or_held_by_a_live_process_and_sending_it_is_recorded(backend):
    history = backend.history()
    history.session()  # as a sender's: present before it claims
    # Alive on either database: another thread of this process (with SQLite, any live pid would do).
    live_owner = f"{owner()}/1"
    for address in ("new@example.org", "live@example.org", "dead@example.org", "sent@example.org"):
        assert history.add_notice("r", "render", "2025-11-03T08:00", address, edition_date=DAY, lang="en",
                                  error="the render failed", now=NOW)
    backend.execute("UPDATE notices SET status = 'sending', owner = :o WHERE recipient = 'live@example.org'", {"o": live_owner})
    backend.execute("UPDATE notices SET status = 'sending', owner = :o WHERE recipient = 'dead@example.org'", {"o": DEAD_OWNER})
    backend.execute("UPDATE notices SET status = 'sent' WHERE recipient = 'sent@example.org'")
    later = datetime(2025, 11, 3, 4, 0, tzinfo=timezone.utc)
    claimed = {notice.recipient: history.claim_notice(notice, later) for notice in history.notices("r")}
    assert claimed == {"new@example.org": True, "live@example.org": False, "dead@example.org": True,
                       "sent@example.org": False}
    rows = {notice.recipient: (notice.status, notice.owner, notice.updated_at) for notice in history.notices("r")}
    me = rows["new@example.org"][1]
    assert me.startswith(f"{node()}:{os.getpid()}/")
    assert rows == {"new@example.org": ("sending", me, "2025-11-03T04:00:00+00:00"),
                    "dead@example.org": ("sending", me, "2025-11-03T04:00:00+00:00"),
                    "live@example.org": ("sending", live_owner, "2025-11-03T03:00:20+00:00"),
                    "sent@example.org": ("sent", None, "2025-11-03T03:00:20+00:00")}
    # Sending it records the outcome, the Message-ID among it, and gives the claim up; the
    # notices that differ from it in one part of their key are left as they were.
    for report, kind, about in [("q", "render", "2025-11-03T08:00"), ("r", "delivery", "2025-11-03T08:00"),
                                ("r", "render", "2025-11-04T08:00")]:
        assert history.add_notice(report, kind, about, "new@example.org", edition_date=DAY, lang="en",
                                  error="the render failed", now=NOW)

    def every_notice() -> dict[tuple[str, str, str, str], object]:
        return {(n.report, n.kind, n.about, n.recipient): n for n in history.notices("r") + history.notices("q")}

    before = every_notice()
    key = ("r", "render", "2025-11-03T08:00", "new@example.org")
    sent_at = datetime(2025, 11, 3, 4, 1, tzinfo=timezone.utc)
    history.record_notice(before[key], status="sent", attempts=1, reply="250 ok", now=sent_at,
                          message_id="<n1@example.org>")
    after = every_notice()
    sent = after.pop(key)
    assert (sent.status, sent.attempts, sent.reply, sent.message_id, sent.owner, sent.updated_at) == (
        "sent", 1, "250 ok", "<n1@example.org>", None, "2025-11-03T04:01:00+00:00")
    assert after == {k: v for k, v in before.items() if k != key} and len(after) == 6
    history.close()
