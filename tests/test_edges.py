"""At the edges (issue 8): no delivery lost in silence, no repeat after lost state, SMTP time
limits, failures that reach people and monitors, and bad recipients refused up front.

Real parts only: aiosmtpd on 127.0.0.1, raw sockets for servers that say nothing, SQLite files,
the CLI as a subprocess, a read-only bind mount and ``chattr +i`` where the system allows them.
Time is set with ``REPORTER_NOW``; nothing waits a fixed time, only for a file, a row or a
process, with a deadline.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest
from aiosmtpd.controller import Controller

from conftest import cli_env, normalise, run_cli
from projects import make_project
from reporter import config
from reporter.deliver import delivery
from reporter.deliver.smtp import SmtpSettings
from reporter.errors import StateError
from reporter.pipeline import build
from reporter.state.history import History
from servers import free_port
from test_deliver import Recorder, smtp_server

DAY = date(2025, 11, 3)
SLOT = "2025-11-03T08:00"
AT_SLOT = "2025-11-03T08:00:20+05:00"  # Monday 08:00:20 in Almaty, the slot's edition just due
WRITTEN = datetime(2025, 11, 3, 3, 0, 30, tzinfo=timezone.utc)  # when that edition was written

RECIPIENTS = '''
[[reports.r.recipients]]
email = "analyst@example.org"
name = "Аналитик"
lang = "ru"

[[reports.r.recipients]]
email = "desk@example.org"
name = "News desk"
lang = "en"
'''
EMAIL = '''
[email]
from = "Reporter <briefings@example.org>"
attempts = 1
'''


# --- the project: one helper, plain data, easy to move to another test set-up --------------------


def project(folder: Path, *, report: str = "", recipients: str = RECIPIENTS, email_settings: str = "",
            short_title: str = '{ ru = "Казахстан — США", en = "Kazakhstan – USA" }', broken: bool = False) -> Path:
    """A project with one scheduled report ``r`` (Mondays 08:00, Almaty) in Russian and English,
    PDF only and with one chart so that a render is quick, its data, output and state in
    ``folder`` (built from tests/projects.py; ``broken``: its dataset has a bad cell)."""
    make_project(folder, [], broken_dataset=broken)
    path = folder / "reports.toml"
    path.write_text(f'''[project]
data = "{folder / 'data'}"
templates = "{folder / 'templates'}"
output = "{folder / 'output'}"
state = "{folder / 'state' / 'history.sqlite'}"
locale = "{folder / 'locale'}"
locales = {{ en = "en_GB" }}

[reports.r]
title = {{ ru = "Казахстан — США: C5+1", en = "Kazakhstan – USA: C5+1" }}
short_title = {short_title}
datasets = ["{'broken' if broken else 'brief'}"]
narrative = "brief/narrative.{{lang}}.html.j2"
languages = ["ru", "en"]
formats = ["pdf"]
timezone = "Asia/Almaty"
schedule = "0 8 * * 1"
{report}

[[reports.r.sections]]
id = "overview"
title = {{ ru = "Обзор", en = "Overview" }}

[[reports.r.sections]]
id = "partners"
title = {{ ru = "Партнёры", en = "Partners" }}

[reports.r.charts.partners]
kind = "bars"
resource = "partners"
label = "label"
value = "share_2024"
unit = "percent"
title = {{ ru = "Доли партнёров", en = "Partners' shares" }}
{recipients}
{EMAIL}{email_settings}
''', encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def edition(tmp_path_factory: pytest.TempPathFactory) -> build.Edition:
    """The edition of 3 November rendered once; tests record copies of it."""
    folder = tmp_path_factory.mktemp("edges")
    loaded = config.load(project(folder))
    return build.build_edition(loaded, loaded.report("r"), DAY)


def record(folder: Path, edition: build.Edition, *, pending: bool = True, backend=None) -> Path:
    """As `run-due` at the slot leaves it when it rendered the edition and could not deliver yet:
    the files in output/, a successful scheduled run, a pending row for each recipient (in the
    project's SQLite file, or the test's ``backend``)."""
    target = folder / "output" / "r" / DAY.isoformat()
    target.mkdir(parents=True, exist_ok=True)
    files = []
    for artifact in edition.artifacts:
        shutil.copyfile(artifact.path, target / artifact.path.name)
        files.append(replace(artifact, path=target / artifact.path.name))
    state = folder / "state" / "history.sqlite"
    history = backend.history() if backend is not None else History.at(state)
    run_id = history.start_run("r", DAY, "run-due", WRITTEN, SLOT)
    rows = [("ru", "analyst@example.org", "to"), ("en", "desk@example.org", "to")] if pending else []
    history.finish_run(run_id, "ok", WRITTEN, files=files, pending=rows)
    history.set_evaluated_until("r", WRITTEN)
    history.close()
    return state


def env(port: int | None = None, now: str = AT_SLOT) -> dict[str, str]:
    return {"REPORTER_NOW": now, "REPORTER_SMTP_URL": f"smtp://127.0.0.1:{port}" if port else "",
            "REPORTER_SMTP_PASSWORD": ""}


# The machine's zone for every CLI call here: neither UTC nor the report's, with summer time.
# Slots, editions and every time recorded or printed must not move with it. A POSIX rule needs
# no zone file, so it cannot fall back to UTC unnoticed where one is missing.
MACHINE_ZONE = "EST5EDT,M3.2.0,M11.1.0"


def cli(config_path: Path, *args: str, env: dict[str, str] | None = None, **kwargs):
    return run_cli("--config", str(config_path), *args, env={"TZ": MACHINE_ZONE, **(env or {})}, **kwargs)


def ledger(folder: Path, backend=None) -> dict[tuple[str, str], str]:
    if backend is not None:
        return {(lang, who): status for lang, who, status in backend.rows("SELECT lang, recipient, status FROM deliveries")}
    with closing(sqlite3.connect(folder / "state" / "history.sqlite")) as db:
        return {(lang, who): status for lang, who, status in db.execute("SELECT lang, recipient, status FROM deliveries")}


def replies(folder: Path) -> dict[str, str]:
    with closing(sqlite3.connect(folder / "state" / "history.sqlite")) as db:
        return dict(db.execute("SELECT recipient, reply FROM deliveries"))


def deliveries(folder: Path) -> dict[str, tuple]:
    """Every field of each recipient's ledger row."""
    with closing(sqlite3.connect(folder / "state" / "history.sqlite")) as db:
        return {row[0]: row[1:] for row in db.execute(
            "SELECT recipient, lang, kind, status, attempts, reply, message_id, sha256, forced, content, owner, updated_at"
            " FROM deliveries")}


def columns(result) -> list[str]:
    return [" ".join(line.split()) for line in result.stdout.splitlines()]


# --- 3. No delivery is lost in silence ------------------------------------------------------------


def test_without_smtp_settings_every_recipient_waits_in_the_ledger_and_gets_it_once_it_is_set(tmp_path):
    config_path = project(tmp_path)
    first = cli(config_path, "run-due", env=env())
    assert first.returncode == 1, first.stderr
    assert first.stdout == "r 2025-11-03T08:00 ok, not delivered (REPORTER_SMTP_URL not set; 2 pending)\n"
    assert "Traceback" not in first.stderr
    assert ledger(tmp_path) == {("ru", "analyst@example.org"): "pending", ("en", "desk@example.org"): "pending"}
    shown = cli(config_path, "history", "r")
    assert "r 2025-11-03 en desk@example.org pending 0 REPORTER_SMTP_URL: not set" in " ".join(shown.stdout.split())
    waiting = json.loads(cli(config_path, "history", "r", "--json").stdout)["deliveries"]
    assert sorted((d["lang"], d["recipient"], d["kind"], d["status"], d["attempts"], d["forced"], d["message_id"])
                  for d in waiting) == [("en", "desk@example.org", "to", "pending", 0, False, None),
                                        ("ru", "analyst@example.org", "to", "pending", 0, False, None)]

    handler = Recorder()
    with smtp_server(handler) as controller:
        second = cli(config_path, "run-due", env=env(controller.port, "2025-11-03T08:01:20+05:00"))
        assert second.returncode == 0, second.stderr
        assert second.stdout == "r 2025-11-03 retry: delivered (2 sent)\n"
        third = cli(config_path, "run-due", env=env(controller.port, "2025-11-03T08:02:20+05:00"))
        assert third.returncode == 0 and third.stdout == ""
    assert sorted(handler.parsed()) == ["analyst@example.org", "desk@example.org"]
    assert set(ledger(tmp_path).values()) == {"sent"}


def test_undelivered_mail_is_retried_within_retry_for_then_given_up_and_status_says_so(tmp_path, edition):
    config_path = project(tmp_path, report='on_failure = ["ops@example.org"]', email_settings='retry_for = "1h"')
    record(tmp_path, edition)
    within = cli(config_path, "status", env=env(now="2025-11-03T08:30:00+05:00"))
    assert within.returncode == 0, within.stdout + within.stderr
    assert within.stdout.startswith("r: ok; last run 2025-11-03T08:00 ok; edition 2025-11-03: 2 pending, "
                                    "retried until 2025-11-03T04:00:30+00:00;")

    late = cli(config_path, "run-due", env=env(now="2025-11-03T09:30:00+05:00"))
    assert late.returncode == 1
    assert late.stdout == ("r 2025-11-03 retry: gave up (2 not delivered within retry_for, 1 h; "
                           "`reporter send r --date 2025-11-03` sends them)\n")
    assert set(ledger(tmp_path).values()) == {"failed"}
    assert replies(tmp_path)["desk@example.org"] == "gave up after retry_for (1 h): never sent"

    checked = cli(config_path, "status", env=env(now="2025-11-03T09:31:00+05:00"))
    assert checked.returncode == 1
    assert checked.stdout.splitlines()[1:] == [
        "  - 2 message(s) of the edition of 2025-11-03 not delivered, and retry_for (1 h) has passed: "
        "`reporter send r --date 2025-11-03` sends them"]
    handler = Recorder()
    with smtp_server(handler) as controller:
        # Given up: a later run sends the recipients nothing by itself (a person does), but it
        # does tell on_failure, whose notice had to wait for a mail server.
        again = cli(config_path, "run-due", env=env(controller.port, "2025-11-03T09:32:00+05:00"))
        assert again.returncode == 0 and again.stdout == ""
        assert list(handler.parsed()) == ["ops@example.org"]
        by_hand = cli(config_path, "send", "r", "--date", "2025-11-03", env=env(controller.port, "2025-11-03T09:33:00+05:00"))
        assert by_hand.returncode == 0, by_hand.stderr
    assert sorted(handler.parsed()) == ["analyst@example.org", "desk@example.org", "ops@example.org"]
    notice = handler.parsed()["ops@example.org"]
    text = normalise(notice.get_content())
    assert normalise(notice["Subject"]) == "Не доставлено: Казахстан — США, 3 ноября 2025 г."
    assert text.startswith("Выпуск Казахстан — США: C5+1 (r) от 3 ноября 2025 г. так и не получили все адресаты, а "
                           "срок retry_for истёк: автоматически он больше не отправляется. Ошибка: "
                           "analyst@example.org: never sent desk@example.org: never sent Чтобы повторить вручную: "
                           f"reporter --config {config_path} send r --date 2025-11-03 --")
    assert cli(config_path, "status", env=env(now="2025-11-03T09:34:00+05:00")).returncode == 0


def test_a_header_refused_while_composing_fails_that_recipient_only_until_it_is_fixed(tmp_path, edition):
    # A line break in a title is not caught when the config loads (titles may wrap in the PDF),
    # but it would end up in the Russian subject: the email package refuses it.
    bad = project(tmp_path, short_title='{ ru = "Казахстан —\\nСША", en = "Kazakhstan – USA" }')
    record(tmp_path, edition)
    handler = Recorder()
    with smtp_server(handler) as controller:
        first = cli(bad, "run-due", env=env(controller.port, "2025-11-03T08:01:00+05:00"))
        assert first.returncode == 1
        assert first.stdout == "r 2025-11-03 retry: partly delivered (1 failed, 1 sent)\n"
        assert "Traceback" not in first.stderr
        assert list(handler.parsed()) == ["desk@example.org"]
        assert ledger(tmp_path) == {("ru", "analyst@example.org"): "failed", ("en", "desk@example.org"): "sent"}
        assert replies(tmp_path)["analyst@example.org"] == (
            "cannot compose the message: reports.r.short_title.ru: the ru subject of r "
            "'Брифинг: Казахстан —\\nСША, 3 ноября 2025\\u202fг.': expected a subject on one line")

        fixed = project(tmp_path)
        second = cli(fixed, "run-due", env=env(controller.port, "2025-11-03T08:02:00+05:00"))
        assert second.returncode == 0, second.stderr
        assert second.stdout == "r 2025-11-03 retry: delivered (1 sent)\n"
    assert sorted(handler.parsed()) == ["analyst@example.org", "desk@example.org"]
    assert len(handler.messages) == 2


def test_validate_renders_every_header(tmp_path):
    long_subject = "{title}, {date}: " + "x" * 220  # under the limit as written, over it once filled in
    config_path = project(tmp_path, short_title='{ ru = "Казахстан —\\nСША", en = "Kazakhstan – USA" }',
                          email_settings=f'subject = {{ ru = "Брифинг: {{title}}", en = "{long_subject}" }}\n')
    result = cli(config_path, "validate")
    assert result.returncode == 1
    filled = f"Kazakhstan – USA, 30 September 2025: {'x' * 220}"
    assert result.stderr.splitlines() == [
        f"error: {config_path}:reports.r.short_title.ru: the ru subject of r 'Брифинг: Казахстан —\\nСША': "
        "expected a subject on one line",
        f"error: {config_path}:email.subject.en: the en subject of r '{filled}': is {len(filled)} characters long; "
        "at most 250",
    ]


@pytest.mark.parametrize(("settings", "expected"), [
    ('from = "Reporter <briefings@example.org>\\nBcc: all@example.org"', "email.from: expected an address on one line"),
    ('reply_to = "Editors <editors@example.org>\\r\\nX-Spam: 1"', "email.reply_to: expected an address on one line"),
    ('subject = { ru = "Брифинг:\\n{title}", en = "{title}" }', "email.subject.ru: expected a subject on one line"),
    ('subject = { ru = "{title}", en = "Briefing\\u0007 {title}" }', "email.subject.en: contains a control character (U+0007)"),
    (f'subject = {{ ru = "{"я" * 251}", en = "{{title}}" }}', "email.subject.ru: is 251 characters long; at most 250"),
])
def test_bad_headers_in_the_email_table_are_refused_with_the_key(tmp_path, settings, expected):
    config_path = project(tmp_path)
    text = config_path.read_text(encoding="utf-8").replace('from = "Reporter <briefings@example.org>"\n', "")
    config_path.write_text(text + ('from = "Reporter <briefings@example.org>"\n' if "from" not in settings else "")
                           + settings + "\n", encoding="utf-8")
    for command in ("list", "validate"):  # refused when the config is read, by any command
        result = cli(config_path, command)
        assert result.returncode == 1
        assert result.stderr == f"error: {config_path}:{expected}\n"


# --- 7. Recipients that cannot be mailed: the exact message, exit 1, nothing written ----------------


@pytest.mark.parametrize(("recipients", "csv", "expected"), [
    ('[[reports.r.recipients]]\nemail = "desk@"\nlang = "en"\n', None,
     "reports.r.recipients[0].email: 'desk@' is not an email address"),
    ('[[reports.r.recipients]]\nemail = "desk example.org"\nlang = "en"\n', None,
     "reports.r.recipients[0].email: 'desk example.org' is not an email address"),
    ('[[reports.r.recipients]]\nemail = "desk@example.org\\nBcc: all@example.org"\nlang = "en"\n', None,
     "reports.r.recipients[0].email: 'desk@example.org\\nBcc: all@example.org' is not an email address "
     "(expected an address on one line)"),
    ('[[reports.r.recipients]]\nemail = "desk@example.org"\nname = "News\\r\\ndesk"\nlang = "en"\n', None,
     "reports.r.recipients[0].name: expected a name on one line"),
    ('[[reports.r.recipients]]\nemail = "desk@example.org"\nname = "News\\u0000desk"\nlang = "en"\n', None,
     "reports.r.recipients[0].name: contains a control character (U+0000)"),
    ('recipients_file = "people.csv"\n', 'email,name,lang\ndesk@example.org,"News\ndesk",en\n',
     "{csv}:line 3.name: expected a name on one line"),
    ('recipients_file = "people.csv"\n', "email,name,lang\ndesk@@example.org,Desk,en\n",
     "{csv}:line 2.email: 'desk@@example.org' is not an email address"),
    ('on_failure = ["ops@example.org", "ops"]\n', None, "reports.r.on_failure[1]: 'ops' is not an email address"),
])
def test_recipients_that_cannot_be_mailed_stop_everything_with_one_line(tmp_path, recipients, csv, expected):
    if csv is not None:
        (tmp_path / "people.csv").write_text(csv, encoding="utf-8")
    where = "report" if recipients.startswith("on_failure") or recipients.startswith("recipients_file") else "recipients"
    config_path = project(tmp_path, **{where: recipients}, **({"recipients": ""} if where == "report" else {}))
    result = cli(config_path, "render", "r", "--date", "2025-11-03")
    assert result.returncode == 1
    place = expected.replace("{csv}", str(tmp_path / "people.csv"))
    prefix = "" if csv is not None else f"{config_path}:"
    assert result.stderr == f"error: {prefix}{place}\n"
    assert not (tmp_path / "output").exists() and not (tmp_path / "state").exists()


# --- 5. SMTP time limits -------------------------------------------------------------------------------


@contextmanager
def silent_server(*, backlog_full: bool = False) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never says a word; or, with
    ``backlog_full``, one whose queue is full so that a new connection is never answered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    held: list[socket.socket] = []
    stop = threading.Event()
    port = listener.getsockname()[1]
    if backlog_full:
        filler = socket.create_connection(("127.0.0.1", port))  # fills the queue; never accepted
        held.append(filler)
    else:
        def accept() -> None:
            listener.settimeout(0.05)
            while not stop.is_set():
                try:
                    held.append(listener.accept()[0])
                except TimeoutError:
                    continue
        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
    try:
        yield port
    finally:
        stop.set()
        if not backlog_full:
            thread.join()
        for sock in held:
            sock.close()
        listener.close()


def deliver_to(edition, tmp_path, smtp: SmtpSettings, **email_settings):
    tmp_path.mkdir(exist_ok=True)
    loaded = config.load(project(tmp_path))
    loaded = replace(loaded, email=replace(loaded.email, **({"attempts": 1, "backoff_seconds": 0} | email_settings)))
    report = replace(loaded.report("r"), recipients=loaded.report("r").recipients[1:])  # the desk, in English
    history = History.at(record(tmp_path, edition))
    started = time.monotonic()
    result = delivery.deliver(loaded, report, DAY, history, now=lambda: WRITTEN, smtp=smtp, sleep=lambda s: None)
    return result, time.monotonic() - started


def test_a_server_that_never_greets_is_reported_as_silent_within_the_reply_timeout(tmp_path, edition):
    with silent_server() as port:
        result, took = deliver_to(edition, tmp_path, SmtpSettings("smtp", "127.0.0.1", port, timeout=0.5), attempts=2)
    (outcome,) = result.outcomes
    assert outcome.describe() == f"failed: 127.0.0.1:{port} did not answer within 0.5 s (gave up after 2 attempts)"
    assert 0.9 <= took < 20  # two replies awaited, not 2 × 30 s (the margin is for a loaded machine)


def test_a_server_that_goes_silent_after_data_may_have_the_message_and_the_retry_has_the_same_id(tmp_path, edition):
    class HangsOnce(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((tuple(envelope.rcpt_tos), envelope.content))  # stored...
            if len(self.messages) == 1:
                await self.release.wait()  # ...and never a word about it
            return "250 2.0.0 OK"

    handler = HangsOnce()
    with smtp_server(handler) as controller:
        try:
            result, took = deliver_to(edition, tmp_path, SmtpSettings("smtp", "127.0.0.1", controller.port, timeout=0.5),
                                      attempts=2)
        finally:
            controller.loop.call_soon_threadsafe(handler.release.set)
    (outcome,) = result.outcomes
    assert outcome.status == "sent" and outcome.attempts == 2
    first, second = (email.message_from_bytes(content, policy=email.policy.default) for _to, content in handler.messages)
    assert first["Message-ID"] == second["Message-ID"] == outcome.message_id  # what lets mail systems drop the copy
    # Had it been the last attempt, the ledger would say what may have happened:
    handler = HangsOnce()
    with smtp_server(handler) as controller:
        try:
            result, _took = deliver_to(edition, tmp_path / "again",
                                       SmtpSettings("smtp", "127.0.0.1", controller.port, timeout=0.5))
        finally:
            controller.loop.call_soon_threadsafe(handler.release.set)
    assert result.outcomes[0].describe() == (
        f"failed: 127.0.0.1:{controller.port} did not answer within 0.5 s while taking the message "
        "(it may have arrived; a retry carries the same Message-ID) (gave up after 1 attempt)")


def test_a_connection_nobody_answers_is_bounded_by_the_connect_timeout(tmp_path, edition):
    with silent_server(backlog_full=True) as port:
        smtp = SmtpSettings("smtp", "127.0.0.1", port, timeout=5, connect_timeout=0.3)
        result, took = deliver_to(edition, tmp_path, smtp)
    assert result.outcomes[0].describe() == (
        f"failed: cannot connect to 127.0.0.1:{port} within 0.3 s (no answer to the connection) (gave up after 1 attempt)")
    assert took < 20  # not the 5 s reply timeout, let alone a kernel's minutes of SYN retries


def test_one_delivery_never_outlasts_the_time_limit(tmp_path, edition):
    with silent_server() as port:
        result, took = deliver_to(edition, tmp_path, SmtpSettings("smtp", "127.0.0.1", port, timeout=30),
                                  attempts=4, backoff_seconds=0, time_limit=1.0)
    assert result.outcomes[0].describe() == "failed: not sent: the time limit of 1 s ([email] time_limit) ran out"
    assert 0.9 <= took < 20  # not 4 × 30 s


def test_the_timeouts_are_set_in_the_email_table(tmp_path, edition):
    config_path = project(tmp_path, email_settings='reply_timeout = "1s"\nconnect_timeout = "2s"\n')
    record(tmp_path, edition)
    with silent_server() as port:
        result = cli(config_path, "send", "r", "--date", "2025-11-03", "--to", "desk@example.org", env=env(port))
    assert result.returncode == 1
    assert columns(result) == [f"desk@example.org en failed: 127.0.0.1:{port} did not answer within 1 s (gave up after 1 attempt)"]
    with silent_server(backlog_full=True) as port:
        result = cli(config_path, "send", "r", "--date", "2025-11-03", "--to", "desk@example.org", env=env(port))
    assert result.returncode == 1
    assert columns(result) == [f"desk@example.org en failed: cannot connect to 127.0.0.1:{port} within 2 s "
                               "(no answer to the connection) (gave up after 1 attempt)"]


# --- 4. No repeat after lost state ---------------------------------------------------------------------


def test_a_lost_history_is_an_error_until_the_editions_are_adopted_and_nobody_gets_a_second_copy(tmp_path, edition,
                                                                                                 backend):
    config_path = project(tmp_path)
    record(tmp_path, edition, backend=backend)
    handler = Recorder()

    def env_(port=None, now=AT_SLOT):
        return env(port, now) | backend.env

    with smtp_server(handler) as controller:
        sent = cli(config_path, "run-due", env=env_(controller.port, "2025-11-03T08:01:00+05:00"))
        assert sent.stdout == "r 2025-11-03 retry: delivered (2 sent)\n", sent.stderr
        backend.lose()  # the file deleted, or the database dropped and made again

        output = tmp_path / "output"
        message = (f"error: {backend.shown}: the history is empty, but {output} holds editions (such as {output}/r/2025-11-03): "
                   "was the history deleted, moved or replaced? Starting afresh could mail them again. To rebuild it from "
                   f"the editions and their delivery records, run `reporter --config {config_path} adopt`; to start "
                   f"afresh instead, move {output} aside\n")
        for command in (["run-due"], ["send", "r", "--date", "2025-11-03"], ["status"]):
            refused = cli(config_path, *command, env=env_(controller.port, "2025-11-03T08:02:00+05:00"))
            assert (refused.returncode, refused.stderr) == (1, message), command

        adopted = cli(config_path, "adopt", env=env_(now="2025-11-03T08:03:00+05:00"))
        assert adopted.returncode == 0, adopted.stderr
        assert adopted.stdout == f"adopted 1 edition(s) and 2 delivery record(s) from {output}\n"
        shown = " ".join(cli(config_path, "history", "r", env=backend.env).stdout.split())
        assert "r 2025-11-03 - adopt ok" in shown and shown.count(" sent ") == 2

        again = cli(config_path, "send", "r", "--date", "2025-11-03", env=env_(controller.port, "2025-11-03T08:04:00+05:00"))
        assert again.returncode == 0, again.stderr
        ids = {address: message["Message-ID"] for address, message in handler.parsed().items()}
        assert [re.sub(r"at 2025-11-03T03:01:\d\d\+00:00 as", "at T as", line) for line in columns(again)] == [
            f"analyst@example.org ru already sent, skipped (sent at T as {ids['analyst@example.org']})",
            f"desk@example.org en already sent, skipped (sent at T as {ids['desk@example.org']})"]
        due = cli(config_path, "run-due", env=env_(controller.port, "2025-11-03T08:05:00+05:00"))
        assert (due.returncode, due.stdout) == (0, "")
    assert len(handler.messages) == 2


def test_a_history_restored_from_an_older_copy_does_not_send_again(tmp_path, edition):
    config_path = project(tmp_path)
    state = record(tmp_path, edition)
    backup = tmp_path / "backup.sqlite"
    shutil.copyfile(state, backup)  # taken while both messages were still pending
    handler = Recorder()
    with smtp_server(handler) as controller:
        first = cli(config_path, "run-due", env=env(controller.port, "2025-11-03T08:01:00+05:00"))
        assert first.stdout == "r 2025-11-03 retry: delivered (2 sent)\n", first.stderr
        forced = cli(config_path, "send", "r", "--date", "2025-11-03", "--to", "desk@example.org", "--force",
                     env=env(controller.port, "2025-11-03T08:01:30+05:00"))
        assert forced.returncode == 0, forced.stderr
        sent = deliveries(tmp_path)

        def restore() -> None:
            for file in state.parent.glob("history.sqlite-*"):
                file.unlink()
            shutil.copyfile(backup, state)
            assert set(ledger(tmp_path).values()) == {"pending"}

        restore()
        second = cli(config_path, "run-due", env=env(controller.port, "2025-11-03T08:02:00+05:00"))
        assert second.returncode == 0, second.stderr
        rebuilt = deliveries(tmp_path)
        restore()
        by_hand = cli(config_path, "send", "r", "--date", "2025-11-03", env=env(controller.port, "2025-11-03T08:03:00+05:00"))
    assert second.stdout == "r 2025-11-03 retry: delivered (2 already sent)\n"
    # The clock set by REPORTER_NOW keeps running, so the second is whatever it was by then.
    assert re.search(r"desk@example\.org got this edition at 2025-11-03T03:01:\d\d\+00:00 \(so says "
                     + re.escape(f"{tmp_path}/output/r/2025-11-03/deliveries.json; the history did not know): not sent again"),
                     second.stderr), second.stderr
    assert len(handler.messages) == 3
    # The rows rebuilt from the edition's record say what the lost ones said: the Message-ID, the
    # PDF, the reply, the attempts, when, that the desk's copy was a forced resend, and what the
    # edition said (for send_if = "changed").
    assert rebuilt == sent and deliveries(tmp_path) == sent
    assert {row[2] for row in sent.values()} == {"sent"} and all(row[4] and row[5] and row[6] and row[8] for row in sent.values())
    assert (sent["desk@example.org"][7], sent["analyst@example.org"][7]) == (1, 0)
    # By hand, the same: each recipient is told when, and as which message, the record says they got it.
    assert by_hand.returncode == 0, by_hand.stderr
    assert columns(by_hand) == [
        f"{who} {row[0]} already sent, skipped (sent at {row[10]}, says deliveries.json as {row[5]})"
        for who, row in sorted(sent.items())]


def _history_of_runs(state: Path) -> int:
    """A history of 300 failed runs with long errors, and a cursor, all in its file (no WAL
    left); returns its page size."""
    history = History.at(state)
    for n in range(300):
        run_id = history.start_run("r", date(2020, 1, 1), "manual", WRITTEN)
        history.finish_run(run_id, "failed", WRITTEN, error=f"failure number {n} " + "x" * 200)
    history.set_evaluated_until("r", WRITTEN)
    history.close()
    with closing(sqlite3.connect(state)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return db.execute("PRAGMA page_size").fetchone()[0]


def _damaged_history(folder: Path) -> Path:
    """A history with a few hundred runs, one page in the middle of the file overwritten."""
    state = folder / "state" / "history.sqlite"
    page_size = _history_of_runs(state)
    with state.open("r+b") as handle:
        handle.seek(page_size * (state.stat().st_size // page_size // 2))
        handle.write(b"\xff" * 64)
    return state


def test_damaged_pages_are_found_at_start_up_and_nothing_runs(tmp_path):
    config_path = project(tmp_path)
    state = _damaged_history(tmp_path)
    before = state.read_bytes()
    # The newest runs and the cursors read fine: without the check, this would go unnoticed.
    assert cli(config_path, "history", "--limit", "3").returncode == 0
    for command in (["run-due"], ["status"], ["send", "r", "--date", "2025-11-03"], ["run"]):
        result = cli(config_path, *command, env=env(now="2025-11-10T08:00:20+05:00"), timeout=60)
        assert result.returncode == 1, command
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"error: {state}: the history database is damaged (quick_check: ")
        assert line.endswith("); move it aside, then `reporter adopt` rebuilds it from the editions on disk")
    assert state.read_bytes() == before
    assert not (tmp_path / "output").exists()


def _quick_check_lines(state: Path) -> list[str] | None:
    """What SQLite's own quick_check lists, line by line; None if the damage stops it."""
    with closing(sqlite3.connect(state)) as db:
        try:
            return [line for row in db.execute("PRAGMA quick_check") for line in row[0].splitlines()]
        except sqlite3.DatabaseError:
            return None


def test_the_start_up_check_names_the_first_damage_sqlite_lists_and_counts_the_rest(tmp_path):
    move_aside = "move it aside, then `reporter adopt` rebuilds it from the editions on disk"
    state = _damaged_history(tmp_path)  # the middle page: damage that stops the check itself
    with pytest.raises(StateError) as caught:
        History.at(state).check()
    assert [str(p) for p in caught.value.problems] == [
        f"{state}: the history database is damaged (quick_check: database disk image is malformed); {move_aside}"]
    # Damage that quick_check lists row by row, under a "*** in database main ***" heading that
    # is no problem: the first problem is named, the others counted. Which page gives one, two
    # or more problems depends on SQLite's layout, so each is looked for.
    page_size = _history_of_runs(whole := tmp_path / "whole.sqlite")
    pages = whole.read_bytes()
    found: dict[str, tuple[bytes, list[str]]] = {}
    for page in range(1, len(pages) // page_size):
        # A page of 65535 cells; free space that runs past the page; a first cell past its end.
        for offset in (3, 1, 8):
            at = page * page_size + offset
            damaged = pages[:at] + b"\xff\xff" + pages[at + 2:]
            state.write_bytes(damaged)
            lines = _quick_check_lines(state)
            if lines and lines[0] == "*** in database main ***":
                found.setdefault({2: "one", 3: "two"}.get(len(lines), "more"), (damaged, lines[1:]))
    assert set(found) == {"one", "two", "more"}, found
    for damaged, problems in found.values():
        state.write_bytes(damaged)
        with pytest.raises(StateError) as caught:
            History.at(state).check()
        said = problems[0] + (f" and {len(problems) - 1} more" if len(problems) > 1 else "")
        assert [str(p) for p in caught.value.problems] == [
            f"{state}: the history database is damaged (quick_check: {said}); {move_aside}"]


@contextmanager
def read_only(folder: Path) -> Iterator[str]:
    """Make ``folder`` read-only: a read-only bind mount as root (root ignores permission bits),
    file permissions otherwise. Yields the error text the system gives for a write there."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0
        if not mounted or subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True).returncode:
            if mounted:
                subprocess.run(["umount", str(folder)], check=True)
            pytest.skip("running as root without permission to mount read-only")
        try:
            yield os.strerror(30)  # EROFS
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield os.strerror(13)  # EACCES
        finally:
            folder.chmod(0o755)


def test_a_read_only_state_folder_is_a_clear_error_for_every_command_that_writes(tmp_path, edition):
    config_path = project(tmp_path)
    state = record(tmp_path, edition)
    with read_only(state.parent) as reason:
        for command in (["run-due"], ["run"], ["send", "r", "--date", "2025-11-03"], ["status"], ["adopt"]):
            result = cli(config_path, *command, env=env(now="2025-11-03T08:01:00+05:00"), timeout=60)
            assert result.returncode == 1, command
            assert result.stderr == (
                f"error: {state}: the state folder {state.parent} is not writable ({reason}); the history, its journal "
                "and the scheduler lock live there: make it writable, or set `state` in [project] to a writable place\n")
    assert set(ledger(tmp_path).values()) == {"pending"}


def test_a_state_folder_without_space_is_a_clear_error_at_start_up(tmp_path, edition):
    config_path = project(tmp_path)
    folder = tmp_path / "state"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                                           capture_output=True).returncode:
        pytest.skip("needs root to mount a small file system")
    try:
        record(tmp_path, edition)
        with (folder / "filler").open("wb", buffering=0) as filler:
            try:
                while filler.write(b"\0" * 4096):
                    pass
            except OSError:
                pass  # the disk is full
        for command in (["run-due"], ["run"], ["status"]):
            result = cli(config_path, *command, env=env(now="2025-11-03T08:01:00+05:00"), timeout=60)
            assert (result.returncode, result.stderr) == (1, (
                f"error: {folder / 'history.sqlite'}: the state folder {folder} has no space left; free some, "
                "or set `state` in [project] to another place\n")), command
        (folder / "filler").unlink()
        assert set(ledger(tmp_path).values()) == {"pending"}
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_an_immutable_history_stops_the_service_at_start_up(tmp_path, edition):
    config_path = project(tmp_path)
    state = record(tmp_path, edition)
    if subprocess.run(["chattr", "+i", str(state)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here (needs root and a file system with attributes)")
    try:
        for command in (["run"], ["run-due"]):
            started = time.monotonic()
            result = cli(config_path, *command, env=env(now="2025-11-10T08:00:20+05:00"), timeout=60)
            assert result.returncode == 1, command
            assert result.stderr == (f"error: {state}: cannot be written (Operation not permitted); it is immutable or "
                                     "append-only (lsattr shows i or a): clear that with `chattr -i`\n")
            assert time.monotonic() - started < 30
    finally:
        subprocess.run(["chattr", "-i", str(state)], check=True)
    assert not (tmp_path / "output" / "r" / "2025-11-10").exists()


# --- 6. Failures reach people and monitors ---------------------------------------------------------------


def test_a_failed_render_is_told_once_to_on_failure_in_the_reports_language(tmp_path):
    config_path = project(tmp_path, report='on_failure = ["ops@example.org"]', broken=True)
    handler = Recorder()
    with smtp_server(handler) as controller:
        result = cli(config_path, "run-due", env=env(controller.port))
        assert result.returncode == 1 and result.stdout == "r 2025-11-03T08:00 failed\n"
        again = cli(config_path, "run-due", env=env(controller.port, "2025-11-03T08:01:20+05:00"))
        assert again.returncode == 0 and again.stdout == ""
    (notice,) = handler.parsed().values()
    assert list(handler.parsed()) == ["ops@example.org"]
    assert normalise(notice["Subject"]) == "Сбой планового запуска: Казахстан — США, 3 ноября 2025 г."
    assert notice["Auto-Submitted"] == "auto-generated" and notice["Content-Language"] == "ru"
    text = notice.get_content().replace("\r\n", "\n")
    assert normalise(text).startswith("Плановый запуск 2025-11-03T08:00 отчёта Казахстан — США: C5+1 (r) завершился "
                                      "ошибкой: выпуск от 3 ноября 2025 г. не подготовлен и не отправлен. Ошибка:")
    assert "series.csv:line 3 (row 2), column 'tonnes'" in text
    assert f"Чтобы повторить вручную:\n  reporter --config {config_path} render r --date 2025-11-03 --send\n" in text
    shown = " ".join(cli(config_path, "history", "r").stdout.split())
    assert "r render 2025-11-03T08:00 ops@example.org sent 1 250 2.0.0 OK" in shown


def test_a_delivery_that_keeps_failing_is_told_to_on_failure_once(tmp_path, edition):
    import json

    config_path = project(tmp_path, report='on_failure = "ops@example.org"')
    record(tmp_path, edition)
    handler = Recorder()
    handler.refuse["desk@example.org"] = "451 4.2.1 mailbox busy, try later"
    with smtp_server(handler) as controller:
        first = cli(config_path, "run-due", env=env(controller.port, "2025-11-03T08:01:00+05:00"))
        assert (first.returncode, first.stdout) == (1, "r 2025-11-03 retry: partly delivered (1 sent, 1 failed)\n")
        second = cli(config_path, "run-due", env=env(controller.port, "2025-11-03T08:02:00+05:00"))
        assert (second.returncode, second.stdout) == (1, "r 2025-11-03 retry: not delivered (1 failed)\n")
        # Still inside retry_for: retried, so not yet a problem for a monitor.
        checked = cli(config_path, "status", "--json", env=env(now="2025-11-03T08:03:00+05:00"))
        assert checked.returncode == 0, checked.stdout
        (report,) = json.loads(checked.stdout)["reports"]
        assert report["deliveries"] == {"edition_date": "2025-11-03", "sent": 1, "unchanged": 0, "pending": 0,
                                        "sending": 0, "failed": 1, "rejected": 0,
                                        "retry_until": "2025-11-05T03:00:30+00:00", "past_window": False}
        assert report["notices"] == {"sent": 1, "pending": 0, "failed": 0, "rejected": 0}
        del handler.refuse["desk@example.org"]
        third = cli(config_path, "run-due", env=env(controller.port, "2025-11-03T08:04:00+05:00"))
        assert (third.returncode, third.stdout) == (0, "r 2025-11-03 retry: delivered (1 sent)\n")
    to = [rcpts[0] for rcpts, _content in handler.messages]
    assert to == ["analyst@example.org", "ops@example.org", "desk@example.org"]  # one notice for two failures
    notice = handler.parsed()["ops@example.org"]
    text = notice.get_content().replace("\r\n", "\n")
    assert normalise(notice["Subject"]) == "Не доставлено: Казахстан — США, 3 ноября 2025 г."
    assert "desk@example.org: failed: 451 4.2.1 mailbox busy, try later (gave up after 1 attempt)" in text
    assert f"reporter --config {config_path} send r --date 2025-11-03\n" in text
    assert "до 2025-11-05 08:00 (Asia/Almaty)" in normalise(text)  # retried automatically until then (2 days)


def test_status_for_a_monitor(tmp_path, edition):
    import json

    config_path = project(tmp_path, recipients="")
    state = record(tmp_path, edition, pending=False)
    healthy = cli(config_path, "status", env=env(now="2025-11-10T13:00:00+05:00"))
    assert (healthy.returncode, healthy.stdout) == (0, "r: ok; last run 2025-11-03T08:00 ok; next run 2025-11-17T08:00:00+05:00\n")
    # Nobody decided the slot of 10 November within its grace (6 hours): no scheduler is running.
    overdue = cli(config_path, "status", "--json", env=env(now="2025-11-10T14:00:01+05:00"))
    assert overdue.returncode == 1
    found = json.loads(overdue.stdout)
    assert set(found) == {"version", "ok", "checked_at", "state", "reports"}
    assert (found["version"], found["ok"], found["state"]) == (1, False, str(state))
    assert re.fullmatch(r"2025-11-10T09:00:0\d\+00:00", found["checked_at"])  # the clock ran on from 09:00:01 while it started
    (report,) = found["reports"]
    assert set(report) == {"report", "ok", "problems", "schedule", "last_run", "overdue_slot", "next_run", "deliveries", "notices"}
    assert report["overdue_slot"] == "2025-11-10T08:00"
    assert report["problems"] == ["overdue: the slot 2025-11-10T08:00 did not run and its grace (6 h) has passed; "
                                  "is `reporter run` up, or cron calling `reporter run-due`?"]
    # A failed scheduled run needs a person too, until a later one succeeds.
    history = History.at(state)
    run_id = history.start_run("r", date(2025, 11, 10), "run-due", WRITTEN, "2025-11-10T08:00")
    history.finish_run(run_id, "failed", WRITTEN, error="data/brief/facts.csv:line 2: broken\nmore detail")
    history.set_evaluated_until("r", datetime(2025, 11, 10, 3, 0, 30, tzinfo=timezone.utc))
    history.close()
    failed = cli(config_path, "status", env=env(now="2025-11-10T14:00:01+05:00"))
    assert failed.returncode == 1
    assert failed.stdout.splitlines() == [
        "r: ATTENTION; last run 2025-11-10T08:00 failed; next run 2025-11-17T08:00:00+05:00",
        "  - the last scheduled run (2025-11-10T08:00) failed: data/brief/facts.csv:line 2: broken"]
    # A message refused for good (5xx) needs a person too.
    history = History.at(state)
    run_id = history.start_run("r", date(2025, 11, 17), "run-due", WRITTEN, "2025-11-17T08:00")
    history.finish_run(run_id, "ok", WRITTEN)
    history.record_delivery("r", date(2025, 11, 17), "en", "desk@example.org", kind="to", status="rejected", attempts=1,
                            reply="550 5.1.1 no such user", now=WRITTEN)
    history.set_evaluated_until("r", datetime(2025, 11, 17, 3, 0, 30, tzinfo=timezone.utc))
    history.close()
    project(tmp_path)  # now with recipients
    rejected = cli(config_path, "status", env=env(now="2025-11-17T09:00:00+05:00"))
    assert rejected.returncode == 1
    assert rejected.stdout.splitlines() == [
        "r: ATTENTION; last run 2025-11-17T08:00 ok; edition 2025-11-17: 1 rejected; next run 2025-11-24T08:00:00+05:00",
        "  - 1 message(s) of the edition of 2025-11-17 rejected: desk@example.org: 550 5.1.1 no such user"]


def test_the_service_retries_between_slots_when_the_mail_server_comes_back(tmp_path, edition):
    port = free_port()  # nothing listens there yet
    config_path = project(tmp_path, email_settings='retry_every = "1s"\n')
    record(tmp_path, edition)
    service = subprocess.Popen([sys.executable, "-m", "reporter", "--config", str(config_path), "run"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=cli_env({"TZ": MACHINE_ZONE, **env(port, "2025-11-03T09:00:00+05:00")}), start_new_session=True)
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    try:
        _wait_for(lambda: set(ledger(tmp_path).values()) == {"failed"})
        controller.start()
        _wait_for(lambda: set(ledger(tmp_path).values()) == {"sent"})
    finally:
        service.send_signal(signal.SIGTERM)
        _out, err = service.communicate(timeout=60)
        controller.stop()
    assert service.returncode == 0, err
    assert sorted(handler.parsed()) == ["analyst@example.org", "desk@example.org"]
    assert f"cannot connect to 127.0.0.1:{port} (Connection refused)" in err


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except sqlite3.OperationalError:
            pass  # the service is writing; look again
        time.sleep(0.05)
    raise AssertionError("timed out waiting")
