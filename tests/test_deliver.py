"""Email delivery against a real SMTP server (aiosmtpd on 127.0.0.1), messages parsed back.

The brief edition is rendered once per session; each test records it in its own history
database, so ledgers never leak between tests.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import logging
import re
import shutil
import ssl
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from conftest import normalise, run_cli, write_project
from reporter import config
from reporter.deliver import compose, delivery
from reporter.deliver.smtp import SmtpSettings, smtp_settings
from reporter.pipeline import build
from reporter.config import Recipient
from reporter.errors import DeliveryError
from reporter.state.history import History
from servers import free_port

DAY = date(2025, 11, 5)
NOW = datetime(2025, 11, 5, 3, 0, tzinfo=timezone.utc)
PASSWORD = "s3cret-Pa55-do-not-leak"
USER = "reporter"

ANALYST = Recipient("analyst@example.org", "Аналитик", "ru")
DESK = Recipient("desk@example.org", "News desk", "en")
EDITOR = Recipient("editor@example.org", "Редактор", "ru", "cc")
ARCHIVE = Recipient("archive@example.org", "", "en", "bcc")


def clock() -> datetime:
    return NOW


def no_sleep(seconds: float) -> None:
    pass


# --- the edition ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    project: config.Project
    edition: build.Edition

    def pdf(self, lang: str) -> bytes:
        return next(a.path for a in self.edition.artifacts if a.lang == lang and a.format == "pdf").read_bytes()


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The test project (with its three recipients) and the brief edition, rendered once."""
    folder = tmp_path_factory.mktemp("deliver")
    project = config.load(write_project(folder))
    edition = build.build_edition(project, project.report("brief"), DAY)
    return Rendered(project, edition)


def record_edition(path: Path, edition: build.Edition, *, copy: bool = True, backend=None) -> History:
    """A history at ``path`` (or the test's ``backend``) that records the edition, by default a copy
    in ``output/`` beside its folder.

    A copy per test: the edition's folder also keeps its delivery record (deliveries.json).
    """
    copies = list(edition.artifacts)
    if copy:
        folder = path.parent.parent / "output" / edition.report / edition.date.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        copies = []
        for artifact in edition.artifacts:
            shutil.copyfile(artifact.path, folder / artifact.path.name)
            copies.append(replace(artifact, path=folder / artifact.path.name))
    history = backend.history() if backend is not None else History.at(path)
    run_id = history.start_run(edition.report, edition.date, "manual", NOW)
    history.finish_run(run_id, "ok", NOW, files=copies)
    return history


@pytest.fixture
def history(tmp_path: Path, rendered: Rendered) -> History:
    history = record_edition(tmp_path / "state" / "history.sqlite", rendered.edition)
    yield history
    history.close()


def variant(rendered: Rendered, recipients=None, **email_settings):
    """The project and report with other recipients or [email] settings."""
    project = rendered.project
    report = project.report("brief")
    if recipients is not None:
        report = replace(report, recipients=tuple(recipients))
    settings = {"attempts": 3, "backoff_seconds": 0.01} | email_settings
    return replace(project, email=replace(project.email, **settings)), report


def refused(project, report, history, smtp, **options) -> list[str]:
    """The lines of the DeliveryError that stops a delivery before anything is sent."""
    with pytest.raises(DeliveryError) as caught:
        delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep, **options)
    return [str(p) for p in caught.value.problems]


# --- the SMTP server -----------------------------------------------------------------


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps what it accepted and can answer from a script."""

    messages: list[tuple[tuple[str, ...], bytes]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> a reply for every RCPT
    rcpt_once: dict[str, list[str]] = field(default_factory=dict)  # address -> replies, then 250
    data_once: list[str] = field(default_factory=list)  # replies to the end of DATA, then 250
    rcpts: list[str] = field(default_factory=list)  # every RCPT address, in order

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpts.append(address)
        if address in self.refuse:
            return self.refuse[address]
        if self.rcpt_once.get(address):
            return self.rcpt_once[address].pop(0)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_once:
            return self.data_once.pop(0)
        self.messages.append((tuple(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 OK queued as 42"

    def parsed(self) -> dict[str, email.message.EmailMessage]:
        """Each accepted message by its one envelope recipient."""
        out = {}
        for rcpt_tos, content in self.messages:
            assert len(rcpt_tos) == 1, rcpt_tos
            out[rcpt_tos[0]] = email.message_from_bytes(content, policy=email.policy.default)
        return out


@contextmanager
def smtp_server(handler: Recorder, **kwargs) -> Iterator[Controller]:
    # aiosmtpd's Controller with port=0 fails its readiness check, so pick a port first.
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def plain(controller: Controller) -> SmtpSettings:
    return SmtpSettings("smtp", "127.0.0.1", controller.port, timeout=5)


@pytest.fixture
def server() -> Iterator[tuple[Recorder, SmtpSettings]]:
    handler = Recorder()
    with smtp_server(handler) as controller:
        yield handler, plain(controller)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    return AuthResult(success=(auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode()))


# --- what arrives ----------------------------------------------------------------------


def test_each_recipient_gets_one_message_in_their_language_with_the_pdf(rendered, history, server):
    handler, smtp = server
    project, report = variant(rendered)
    result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)

    assert result.ok and result.summary.startswith("delivered")
    assert [(o.recipient.email, o.status) for o in result.outcomes] == [
        ("analyst@example.org", "sent"), ("desk@example.org", "sent"), ("editor@example.org", "sent")]
    received = handler.parsed()
    assert sorted(received) == ["analyst@example.org", "desk@example.org", "editor@example.org"]

    ru, en, cc = received["analyst@example.org"], received["desk@example.org"], received["editor@example.org"]
    assert normalise(ru["Subject"]) == "Брифинг: Обзор торговли, 5 ноября 2025 г."
    assert en["Subject"] == "Briefing: Trade review, 5 November 2025"
    assert normalise(cc["Subject"]) == normalise(ru["Subject"])
    # Non-ASCII headers went over the wire as RFC 2047 encoded words, not raw UTF-8.
    raw = handler.messages[0][1]
    assert raw.isascii() and b"=?utf-8?" in raw

    assert ru["To"].addresses[0].addr_spec == "analyst@example.org"
    assert ru["To"].addresses[0].display_name == "Аналитик"
    assert en["To"].addresses[0].addr_spec == "desk@example.org"
    assert cc["Cc"].addresses[0].addr_spec == "editor@example.org" and cc["To"] is None
    for message in received.values():
        assert message["From"].addresses[0].addr_spec == "briefings@example.org"
        assert message["Reply-To"].addresses[0].addr_spec == "editors@example.org"
        assert message["Date"].datetime == NOW
        assert message["Message-ID"].startswith("<brief.2025-11-05.") and message["Message-ID"].endswith("@example.org>")
        assert message.get_content_type() == "multipart/mixed"
        assert message.get_body(("plain", "html")).get_content_type() == "text/plain"
        assert message.get_body(("plain",)).get_content_maintype() == "text"
        assert message.get_body(("html",)).get_content_type() == "text/html"
    assert len({m["Message-ID"] for m in received.values()}) == 3

    for lang, message in (("ru", ru), ("en", en), ("ru", cc)):
        (attachment,) = message.iter_attachments()
        assert attachment.get_content_type() == "application/pdf"
        assert attachment.get_filename() == f"brief_2025-11-05_{lang}.pdf"
        assert attachment.get_content() == rendered.pdf(lang)
        assert message["Content-Language"] == lang

    text, html = normalise(ru.get_body(("plain",)).get_content()), ru.get_body(("html",)).get_content()
    assert "Выпуск от 5 ноября 2025 г." in text
    assert "Ключевые цифры" in text and "более 630 компаний" in text and "23 270 т" in text and "+6,4 п. п." in text
    assert "Партнёры — Структура торговли по партнёрам изменилась с 2023 года." in text
    assert "Главное — На рынке работает более 630 компаний." in text and "\u2060" not in ru.get_body(("plain",)).get_content()
    assert "brief_2025-11-05_ru.pdf" in text and "Briefing" not in text
    en_text = normalise(en.get_body(("plain",)).get_content())
    assert "Edition of 5 November 2025" in en_text and "more than 630 companies" in en_text
    assert "Partners — The pattern of trade by partner has changed since 2023." in en_text
    assert "Брифинг" not in en_text
    for message in received.values():
        html = message.get_body(("html",)).get_content()
        assert "<style" not in html and "<link" not in html and 'style="' in html
        assert len(html.encode("utf-8")) < 100 * 1024
        assert "[1]" not in html and 'class="cite"' not in html

    rows = {row.recipient: row for row in history.deliveries("brief", DAY)}
    assert {r: (row.lang, row.kind, row.status, row.attempts) for r, row in rows.items()} == {
        "analyst@example.org": ("ru", "to", "sent", 1), "desk@example.org": ("en", "to", "sent", 1),
        "editor@example.org": ("ru", "cc", "sent", 1)}
    assert rows["desk@example.org"].reply.startswith("250 2.0.0 OK")
    assert rows["desk@example.org"].message_id == en["Message-ID"]
    assert rows["desk@example.org"].sha256 == next(a.sha256 for a in rendered.edition.artifacts if a.lang == "en" and a.format == "pdf")


def test_a_bcc_recipient_gets_a_copy_that_names_nobody(rendered, history, server):
    handler, smtp = server
    project, report = variant(rendered, [ARCHIVE])
    delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)
    message = handler.parsed()["archive@example.org"]
    raw = handler.messages[0][1]
    assert b"archive@example.org" not in raw
    assert message["Cc"] is None and message["Bcc"] is None
    assert str(message["To"]) == "undisclosed-recipients:;"


def test_the_body_stays_small_and_the_message_ascii(rendered):
    project, report = variant(rendered)
    datasets = build.load_datasets(project, report)
    for lang in ("ru", "en"):
        body = compose.summarize(project, report, DAY, lang, datasets)
        assert len(body.figures) == 9 and [s.id for s in body.sections] == ["summary", "overview", "partners"]
        message = compose.compose(project, report, ANALYST, body, b"%PDF-1.7 test", NOW, "<id@example.org>")
        assert message.as_bytes().isascii()


def test_the_default_subject_is_translated(rendered):
    project, report = variant(rendered)
    project = replace(project, email=replace(project.email, subject={}))
    datasets = build.load_datasets(project, report)
    assert normalise(compose.summarize(project, report, DAY, "ru", datasets).subject) == "Брифинг: Обзор торговли, 5 ноября 2025 г."
    assert compose.summarize(project, report, DAY, "en", datasets).subject == "Briefing: Trade review, 5 November 2025"


@pytest.mark.parametrize("fragment, expected", [
    ('<p>One. Two.</p>', "One."),
    ('<p>Uran<a class="cite" href="#src-x">[1]</a> is <strong>key</strong>. Next one.</p><p>Other.</p>', "Uran is key."),
    ("<p>В 2017 г. в Усть-Каменогорске открылся банк. Дальше.</p>", "В 2017 г. в Усть-Каменогорске открылся банк."),
    ("<p>Kazakhstan&#39;s weight: «so» much.</p>", "Kazakhstan's weight: «so» much."),
    ("<p>" + "word " * 100 + "</p>", ("word " * 56).strip() + "…"),
])
def test_first_sentence(fragment, expected):
    assert compose.first_sentence(fragment) == expected


# --- once, and only a recorded edition ---------------------------------------------------


def test_sending_again_skips_what_was_delivered_and_force_resends(rendered, history, server, caplog):
    handler, smtp = server
    project, report = variant(rendered)
    first = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)
    ids = {o.recipient.email: o.message_id for o in first.outcomes}
    assert ids == {address: message["Message-ID"] for address, message in handler.parsed().items()}
    assert [(o.status, o.attempts) for o in first.outcomes] == [("sent", 1)] * 3

    again = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)
    assert again.ok and len(handler.messages) == 3
    # When and as which message each was sent: what "I never got it" is checked against.
    assert [(o.recipient.email, o.status, o.detail, o.attempts, o.message_id, o.describe()) for o in again.outcomes] == [
        (address, "already sent", "sent at 2025-11-05T03:00:00+00:00", 0, ids[address],
         f"already sent, skipped (sent at 2025-11-05T03:00:00+00:00 as {ids[address]})")
        for address in ("analyst@example.org", "desk@example.org", "editor@example.org")]

    caplog.set_level(logging.INFO, logger="reporter")
    forced = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep,
                             to=["desk@example.org"], force=True)
    assert [(o.recipient.email, o.describe()) for o in forced.outcomes] == [("desk@example.org", "sent again (--force)")]
    assert len(handler.messages) == 4
    assert any("--force" in r.getMessage() and "desk@example.org" in r.getMessage() for r in caplog.records)
    assert forced.outcomes[0].message_id != ids["desk@example.org"]
    row = history.delivery("brief", DAY, "en", "desk@example.org")
    assert (row.status, row.forced, row.attempts) == ("sent", True, 2)


def test_to_picks_configured_recipients_only(rendered, history, server):
    handler, smtp = server
    project, report = variant(rendered)
    result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep,
                               to=["Desk@Example.org", "desk@example.org"])
    assert [o.recipient.email for o in result.outcomes] == ["desk@example.org"]
    assert list(handler.parsed()) == ["desk@example.org"]
    assert refused(project, report, history, smtp, to=["stranger@example.org", "desk@example.org"]) == [
        f"{project.path}:reports.brief.recipients: stranger@example.org is not a recipient of this report"]


def test_an_edition_that_was_not_recorded_is_not_sent(rendered, tmp_path, server):
    handler, smtp = server
    project, report = variant(rendered)
    history = History.at(tmp_path / "empty.sqlite")
    expected = [f"{tmp_path / 'empty.sqlite'}:brief 2025-11-05: no successful render of the {lang} PDF of this edition "
                "is recorded: render it first" for lang in ("ru", "en")]
    assert refused(project, report, history, smtp) == expected
    failed = history.start_run("brief", DAY, "manual", NOW)
    history.finish_run(failed, "failed", NOW, error="boom")
    assert refused(project, report, history, smtp) == expected
    assert handler.messages == [] and history.deliveries() == []


def test_a_pdf_that_differs_from_the_record_is_not_sent(rendered, tmp_path, server):
    handler, smtp = server
    project, report = variant(rendered)
    copies = []
    for artifact in rendered.edition.artifacts:
        path = tmp_path / artifact.path.name
        data = artifact.path.read_bytes()
        path.write_bytes(data + b"\n%tampered" if artifact.lang == "en" and artifact.format == "pdf" else data)
        copies.append(replace(artifact, path=path))
    history = record_edition(tmp_path / "h.sqlite", replace(rendered.edition, artifacts=tuple(copies)), copy=False)
    run_id = history.latest_pdf("brief", DAY, "en")[0]
    differs = f"{tmp_path / 'brief.en.pdf'}: differs from the PDF recorded by run {run_id}: render it first"
    assert refused(project, report, history, smtp) == [differs]
    # Only Russian recipients: the English PDF is not needed, so it does not stop them.
    assert delivery.deliver(*variant(rendered, [ANALYST]), DAY, history, now=clock, smtp=smtp).ok
    (tmp_path / "brief.ru.pdf").unlink()
    # Every language's fault at once, each naming its file.
    assert refused(project, report, history, smtp, force=True) == [
        f"{tmp_path / 'brief.ru.pdf'}: cannot read the recorded PDF (No such file or directory): render it first", differs]


def test_no_recipients_is_nothing_to_do(rendered, tmp_path):
    project, report = variant(rendered, [])
    result = delivery.deliver(project, report, DAY, History.at(tmp_path / "h.sqlite"), now=clock)
    assert result == delivery.DeliveryResult("brief", DAY, ()) and result.ok and result.summary == "no recipients"


# --- faults --------------------------------------------------------------------------


def test_server_down_then_up_is_retried(rendered, history):
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    slept = []

    def sleep_then_start(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 1:
            controller.start()

    project, report = variant(rendered, backoff_seconds=0.5)
    try:
        result = delivery.deliver(project, report, DAY, history, now=clock, sleep=sleep_then_start,
                                 smtp=SmtpSettings("smtp", "127.0.0.1", port, timeout=5))
    finally:
        controller.stop()
    assert result.ok, result.outcomes
    assert slept == [0.5]
    assert sorted(handler.parsed()) == ["analyst@example.org", "desk@example.org", "editor@example.org"]
    assert {row.attempts for row in history.deliveries()} == {2}


def test_temporary_refusals_are_retried_for_those_recipients_only(rendered, history, server):
    handler, smtp = server
    handler.rcpt_once["desk@example.org"] = ["451 4.3.0 try later"]
    handler.data_once.append("452 4.3.1 insufficient system storage")  # the first DATA: analyst's
    project, report = variant(rendered)
    result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)
    assert result.ok
    assert sorted(handler.parsed()) == ["analyst@example.org", "desk@example.org", "editor@example.org"]
    # editor was accepted in the first round and not tried again.
    assert handler.rcpts == ["analyst@example.org", "desk@example.org", "editor@example.org",
                             "analyst@example.org", "desk@example.org"]
    attempts = {o.recipient.email: o.attempts for o in result.outcomes}
    assert attempts == {"analyst@example.org": 2, "desk@example.org": 2, "editor@example.org": 1}


def test_a_421_closes_the_connection_and_is_retried(rendered, history, server):
    handler, smtp = server
    handler.rcpt_once["analyst@example.org"] = ["421 4.7.0 too busy, closing"]
    project, report = variant(rendered)
    result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)
    assert result.ok and len(handler.messages) == 3
    assert {o.recipient.email: o.attempts for o in result.outcomes} == {
        "analyst@example.org": 2, "desk@example.org": 1, "editor@example.org": 1}


def test_a_permanent_rejection_of_one_recipient_leaves_the_others_delivered(rendered, history, server):
    handler, smtp = server
    handler.refuse["desk@example.org"] = "550 5.1.1 <desk@example.org>: no such user"
    project, report = variant(rendered)
    slept = []
    result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=slept.append)
    assert not result.ok and result.summary.startswith("partly delivered")
    outcome = {o.recipient.email: o for o in result.outcomes}
    assert outcome["desk@example.org"].status == "rejected"
    assert outcome["desk@example.org"].describe() == "rejected: 550 5.1.1 <desk@example.org>: no such user"
    assert sorted(handler.parsed()) == ["analyst@example.org", "editor@example.org"]
    assert handler.rcpts.count("desk@example.org") == 1 and slept == []
    row = history.delivery("brief", DAY, "en", "desk@example.org")
    assert (row.status, row.attempts, row.reply) == ("rejected", 1, "550 5.1.1 <desk@example.org>: no such user")


def test_retries_are_bounded(rendered, history, server):
    handler, smtp = server
    handler.refuse["desk@example.org"] = "450 4.2.1 mailbox busy"
    project, report = variant(rendered, attempts=3, backoff_seconds=2)
    slept = []
    result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=slept.append)
    assert slept == [2, 4]
    outcome = {o.recipient.email: o for o in result.outcomes}["desk@example.org"]
    assert outcome.status == "failed" and outcome.attempts == 3
    assert outcome.detail == "450 4.2.1 mailbox busy (gave up after 3 attempts)"
    assert handler.rcpts.count("desk@example.org") == 3 and handler.rcpts.count("analyst@example.org") == 1
    assert history.delivery("brief", DAY, "en", "desk@example.org").status == "failed"


@pytest.mark.parametrize("stop, why", [
    (SystemExit("stopped by SIGTERM\nwhile waiting to retry"), "SystemExit: stopped by SIGTERM"),
    (KeyboardInterrupt(), "KeyboardInterrupt"),
    (SystemExit("x" * 400), "SystemExit: " + "x" * 300),
], ids=["first line", "no text", "long"])
def test_a_delivery_stopped_midway_leaves_every_claim_recorded_and_a_retry_sends_the_rest(rendered, history, server,
                                                                                          stop, why):
    # The service is stopped (SystemExit from its signal handler, or Ctrl-C) while it waits to
    # retry one recipient: no claim may be left standing, each row says why in one line of at
    # most 300 characters, and the next run sends them.
    handler, smtp = server
    handler.rcpt_once["desk@example.org"] = ["450 4.2.1 mailbox busy"]
    project, report = variant(rendered, attempts=3, backoff_seconds=2)

    def stopped(seconds: float) -> None:
        raise stop

    with pytest.raises(type(stop)):
        delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=stopped)
    rows = {row.recipient: row for row in history.deliveries()}
    unsent = sorted(email for email in ("analyst@example.org", "desk@example.org", "editor@example.org")
                    if email not in handler.parsed())
    assert "desk@example.org" in unsent and len(unsent) < 3
    for email_ in unsent:
        assert (rows[email_].status, rows[email_].reply, rows[email_].owner) == (
            "failed", f"stopped before it was sent ({why})", None)
    # What was sent before the stop stays sent: the retry must not send it twice.
    assert {email_: rows[email_].status for email_ in handler.parsed()} == dict.fromkeys(handler.parsed(), "sent")
    again = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=lambda s: None)
    assert again.ok and sorted(handler.parsed()) == ["analyst@example.org", "desk@example.org", "editor@example.org"]
    assert len(handler.messages) == 3
    assert {o.recipient.email: o.status for o in again.outcomes if o.recipient.email in unsent} == dict.fromkeys(unsent, "sent")


def test_a_restart_after_a_partial_delivery_sends_only_what_is_missing(rendered, tmp_path, server):
    handler, smtp = server
    path = tmp_path / "state.sqlite"
    record_edition(path, rendered.edition).close()
    handler.refuse["analyst@example.org"] = "451 4.3.0 try later"
    project, report = variant(rendered, attempts=1)
    first = delivery.deliver(project, report, DAY, History.at(path), now=clock, smtp=smtp, sleep=no_sleep)
    assert [o.status for o in first.outcomes] == ["failed", "sent", "sent"]

    del handler.refuse["analyst@example.org"]
    handler.messages.clear()
    restarted = History.at(path)  # as a new process would open it
    second = delivery.deliver(project, report, DAY, restarted, now=clock, smtp=smtp, sleep=no_sleep)
    assert [o.status for o in second.outcomes] == ["sent", "already sent", "already sent"]
    assert list(handler.parsed()) == ["analyst@example.org"]
    assert restarted.delivery("brief", DAY, "ru", "analyst@example.org").attempts == 2


def test_the_message_id_follows_the_pdf(rendered, tmp_path, server):
    """The same PDF to the same person carries the same Message-ID, so a copy sent again after
    a crash is dropped as a duplicate; a corrected PDF of that edition carries another, so no
    mail system drops the correction as the copy it already has."""
    handler, smtp = server
    project, report = variant(rendered, recipients=[DESK])
    ids = []
    for name, appended in (("sent", b""), ("sent-again", b""), ("corrected", b"\n% corrected\n")):
        artifacts = []
        for artifact in rendered.edition.artifacts:
            data = artifact.path.read_bytes() + (appended if artifact.format == "pdf" else b"")
            path = tmp_path / name / "render" / artifact.path.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            artifacts.append(replace(artifact, path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
        history = record_edition(tmp_path / name / "state" / "history.sqlite",
                                 replace(rendered.edition, artifacts=tuple(artifacts)))
        handler.messages.clear()
        result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)
        history.close()
        assert [o.status for o in result.outcomes] == ["sent"], result.outcomes
        ids.append(handler.parsed()["desk@example.org"]["Message-ID"])
    assert ids[0] == ids[1] != ids[2], ids


def test_an_oversized_message_fails_loudly(rendered, history, server):
    handler, smtp = server
    project, report = variant(rendered, max_bytes=50_000)
    result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)
    assert not result.ok and handler.messages == []
    for outcome in result.outcomes:
        size = len(compose.compose(project, report, outcome.recipient,
                                   compose.summarize(project, report, DAY, outcome.recipient.lang,
                                                     build.load_datasets(project, report)),
                                   rendered.pdf(outcome.recipient.lang), NOW, outcome.message_id).as_bytes())
        assert (outcome.status, outcome.detail) == (
            "failed", f"the message is {size / 2 ** 20:.1f} MB ({size} bytes), over the limit of 50000 bytes ([email] max_size)")
    assert {row.status for row in history.deliveries()} == {"failed"}


def test_a_message_of_exactly_the_size_limit_is_sent(rendered, history, server):
    handler, smtp = server
    project, report = variant(rendered, [DESK])
    pdf = next(a for a in rendered.edition.artifacts if a.lang == "en" and a.format == "pdf")
    body = compose.summarize(project, report, DAY, "en", build.load_datasets(project, report))
    msgid = compose.message_id(report, DAY, DESK, pdf.sha256, "example.org", forced=False)
    size = len(compose.compose(project, report, DESK, body, rendered.pdf("en"), NOW, msgid).as_bytes())
    over = delivery.deliver(*variant(rendered, [DESK], max_bytes=size - 1), DAY, history, now=clock, smtp=smtp,
                            sleep=no_sleep)
    assert [o.status for o in over.outcomes] == ["failed"] and handler.messages == []
    at_limit = delivery.deliver(*variant(rendered, [DESK], max_bytes=size), DAY, history, now=clock, smtp=smtp,
                                sleep=no_sleep)
    assert [(o.status, o.message_id) for o in at_limit.outcomes] == [("sent", msgid)]
    assert len(handler.messages) == 1


def test_send_if_changed_compares_what_the_edition_says_not_its_date(rendered, history, server, tmp_path):
    handler, smtp = server
    project, report = variant(rendered, [ANALYST, DESK])
    report = replace(report, send_if="changed")
    # Last week's edition from the same data: its PDFs differ (they print their date), its content does not.
    earlier = date(2025, 10, 29)
    edition = build.build_edition(project, report, earlier, output_dir=tmp_path / "out", formats=("pdf",))
    run_id = history.start_run("brief", earlier, "manual", NOW)
    history.finish_run(run_id, "ok", NOW, files=edition.artifacts)
    assert delivery.deliver(project, report, earlier, history, now=clock, smtp=smtp, sleep=no_sleep).ok
    assert len(handler.messages) == 2
    assert edition.artifacts[0].sha256 != next(a.sha256 for a in rendered.edition.artifacts if a.lang == "ru" and a.format == "pdf")
    # Pretend the desk's copy last week said something else (the data changed since).
    history.record_delivery("brief", earlier, "en", "desk@example.org", kind="to", status="sent",
                            attempts=1, reply="250 OK", now=NOW, content="0" * 64)
    result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)
    same = "says the same as the last edition sent to this recipient"
    assert [(o.recipient.email, o.status, o.detail, o.attempts, o.describe()) for o in result.outcomes] == [
        ("analyst@example.org", "unchanged", same, 0, f"unchanged, not sent ({same})"),
        ("desk@example.org", "sent", "250 2.0.0 OK queued as 42", 1, "sent")]
    assert len(handler.messages) == 3 and list(handler.parsed())[-1] == "desk@example.org"
    # The ledger keeps the reason, and what the edition said: the next edition compares with it.
    skipped = history.delivery("brief", DAY, "ru", "analyst@example.org")
    ru_pdf = next(a.sha256 for a in rendered.edition.artifacts if a.lang == "ru" and a.format == "pdf")
    assert (skipped.status, skipped.reply, skipped.attempts, skipped.sha256, skipped.forced, skipped.content) == (
        "unchanged", same, 0, ru_pdf, False, history.last_sent_content("brief", "ru", "analyst@example.org", before=DAY))
    assert skipped.content is not None
    # --force sends it all the same.
    forced = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep,
                              to=["analyst@example.org"], force=True)
    assert [(o.recipient.email, o.status) for o in forced.outcomes] == [("analyst@example.org", "sent")]
    assert len(handler.messages) == 4 and handler.messages[-1][0] == ("analyst@example.org",)


def test_what_an_edition_says_does_not_depend_on_the_order_its_datasets_are_listed(rendered):
    # send_if = "changed" compares this digest: listing a report's datasets in another order
    # changes nothing it says; another dataset's data does.
    project, report = rendered.project, rendered.project.report("brief")
    (brief,) = build.load_datasets(project, report)
    other = replace(brief, name="another", digest="0" * 64)
    said = delivery.content_digest(project, report, "en", [brief, other])
    assert delivery.content_digest(project, report, "en", [other, brief]) == said
    assert delivery.content_digest(project, report, "en", [brief, replace(other, digest="1" * 64)]) != said
    assert delivery.content_digest(project, report, "en", [brief]) != said


def test_two_deliveries_at_once_send_each_message_once(rendered, tmp_path, backend):
    import asyncio
    import threading

    # The first delivery is held inside its first DATA, every message of it claimed; the second
    # runs from start to end meanwhile. No race to win or lose: the overlap is arranged.
    reached, release = threading.Event(), threading.Event()

    class Holding(Recorder):
        async def handle_DATA(self, server, session, envelope):
            if not reached.is_set():
                reached.set()
                await asyncio.get_running_loop().run_in_executor(None, release.wait, 60)
            return await Recorder.handle_DATA(self, server, session, envelope)

    handler = Holding()
    project, report = variant(rendered, [ANALYST, DESK, EDITOR])
    state = tmp_path / "state" / "history.sqlite"
    record_edition(state, rendered.edition, backend=backend).close()
    results = {}
    with smtp_server(handler) as controller:
        smtp = plain(controller)

        def first() -> None:
            # Each its own connections to the history, as two processes would have.
            results["first"] = delivery.deliver(project, report, DAY, backend.history(), now=clock, smtp=smtp,
                                                sleep=no_sleep)

        thread = threading.Thread(target=first)
        thread.start()
        assert reached.wait(60), "the first delivery never reached DATA"
        # Each its own connection to the history, as two processes would have.
        results["second"] = delivery.deliver(project, report, DAY, backend.history(), now=clock, smtp=smtp, sleep=no_sleep)
        release.set()
        thread.join(timeout=60)
    assert sorted(rcpt for rcpts, _ in handler.messages for rcpt in rcpts) == [
        "analyst@example.org", "desk@example.org", "editor@example.org"]
    assert results["first"].ok and [o.status for o in results["first"].outcomes] == ["sent"] * 3
    assert [(o.recipient.email, o.status, o.detail, o.attempts, o.message_id, o.describe())
            for o in results["second"].outcomes] == [
        (address, "in progress elsewhere", "", 0, None, "being sent by another process, skipped")
        for address in ("analyst@example.org", "desk@example.org", "editor@example.org")]


# --- TLS, login and the password ---------------------------------------------------------


def test_starttls_and_login_with_a_trusted_private_certificate(rendered, history, certificate, caplog):
    caplog.set_level(logging.DEBUG)
    handler = Recorder()
    with smtp_server(handler, tls_context=server_context(certificate), require_starttls=True,
                     authenticator=authenticator, auth_require_tls=True) as controller:
        project, report = variant(rendered, ca_file=certificate[0])
        smtp = SmtpSettings("smtp+starttls", "127.0.0.1", controller.port, USER, PASSWORD, timeout=5)
        result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)
    assert result.ok and len(handler.messages) == 3
    assert PASSWORD not in caplog.text and PASSWORD not in repr(smtp) and PASSWORD not in str(smtp)
    for file in (history.engine.url.database, history.engine.url.database + "-wal"):
        assert PASSWORD.encode() not in Path(file).read_bytes()


def test_smtps_with_a_trusted_private_certificate(rendered, history, certificate):
    handler = Recorder()
    # aiosmtpd counts only STARTTLS as TLS for AUTH; with implicit TLS the session is encrypted anyway.
    with smtp_server(handler, ssl_context=server_context(certificate), authenticator=authenticator,
                     auth_require_tls=False) as controller:
        project, report = variant(rendered, [DESK], ca_file=certificate[0])
        smtp = SmtpSettings("smtps", "127.0.0.1", controller.port, USER, PASSWORD, timeout=5)
        result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)
    assert result.ok and list(handler.parsed()) == ["desk@example.org"]


def test_an_untrusted_certificate_is_refused_without_retrying(rendered, history, certificate):
    handler = Recorder()
    with smtp_server(handler, tls_context=server_context(certificate), require_starttls=True) as controller:
        project, report = variant(rendered, [DESK])  # no ca_file: the system's CAs only
        smtp = SmtpSettings("smtp+starttls", "127.0.0.1", controller.port, timeout=5)
        slept = []
        result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=slept.append)
    (outcome,) = result.outcomes
    assert outcome.status == "failed" and "certificate" in outcome.detail and "ca_file" in outcome.detail
    assert slept == [] and handler.messages == []


def test_the_password_is_never_logged_or_stored(rendered, tmp_path, certificate, caplog):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "state" / "history.sqlite"
    history = record_edition(path, rendered.edition)
    handler = Recorder()

    def echoing(server, session, envelope, mechanism, auth_data):
        # A careless server that quotes the attempt back in its refusal.
        return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad login {auth_data.password.decode()}")

    with smtp_server(handler, tls_context=server_context(certificate), require_starttls=True,
                     authenticator=echoing) as controller:
        project, report = variant(rendered, ca_file=certificate[0])
        smtp = SmtpSettings("smtp+starttls", "127.0.0.1", controller.port, USER, PASSWORD, timeout=5)
        result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)
    history.close()
    assert not result.ok and handler.messages == []
    for outcome in result.outcomes:
        assert "refused the login as reporter: 535" in outcome.detail and "***" in outcome.detail
    # Only reporter's records: the test server's own debug log quotes its reply verbatim.
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("reporter")]
    assert ours
    texts = [*ours, *(o.detail for o in result.outcomes), *(o.describe() for o in result.outcomes)]
    assert all(PASSWORD not in text for text in texts)
    for file in path.parent.iterdir():
        assert PASSWORD.encode() not in file.read_bytes(), file


# --- settings from the environment ---------------------------------------------------------


@pytest.mark.parametrize("url, expected", [
    ("smtp://mail.example.org:25", ("smtp", "mail.example.org", 25, "")),
    ("smtp://mail.example.org", ("smtp", "mail.example.org", 25, "")),
    ("smtp+starttls://user@mail.example.org:587", ("smtp+starttls", "mail.example.org", 587, "user")),
    ("smtp+starttls://me%40example.org@mail.example.org", ("smtp+starttls", "mail.example.org", 587, "me@example.org")),
    ("smtps://user@mail.example.org:465", ("smtps", "mail.example.org", 465, "user")),
])
def test_smtp_settings_from_the_environment(url, expected):
    env = {"REPORTER_SMTP_URL": url} | ({"REPORTER_SMTP_PASSWORD": PASSWORD} if expected[3] else {})
    smtp = smtp_settings(env)
    assert (smtp.scheme, smtp.host, smtp.port, smtp.username) == expected
    assert smtp.password == (PASSWORD if expected[3] else "") and smtp.timeout == 30
    assert PASSWORD not in repr(smtp)


@pytest.mark.parametrize("env, message", [
    ({}, "REPORTER_SMTP_URL: not set"),
    ({"REPORTER_SMTP_URL": "smtp://user:hunter2@host:25"}, "contains a password: put it in REPORTER_SMTP_PASSWORD"),
    ({"REPORTER_SMTP_URL": "http://host"}, "unknown scheme 'http'"),
    ({"REPORTER_SMTP_URL": "smtps://user@host"}, "REPORTER_SMTP_PASSWORD: not set"),
    ({"REPORTER_SMTP_URL": "smtp://user@host", "REPORTER_SMTP_PASSWORD": "x"}, "unencrypted"),
    ({"REPORTER_SMTP_URL": "smtps://host", "REPORTER_SMTP_PASSWORD": "x"}, "names no user"),
    ({"REPORTER_SMTP_URL": "smtp://host:notaport"}, "not a URL like"),
])
def test_bad_smtp_settings(env, message):
    with pytest.raises(DeliveryError, match=message) as caught:
        smtp_settings(env)
    assert "hunter2" not in str(caught.value)


def test_sending_without_smtp_settings_fails_before_anything_is_recorded(rendered, history, monkeypatch):
    monkeypatch.delenv("REPORTER_SMTP_URL", raising=False)
    project, report = variant(rendered)
    with pytest.raises(DeliveryError, match="REPORTER_SMTP_URL: not set"):
        delivery.deliver(project, report, DAY, history, now=clock)
    assert history.deliveries() == []


# --- the outbox ------------------------------------------------------------------------


def test_the_outbox_gets_one_eml_per_recipient_and_the_ledger_nothing(rendered, history, tmp_path, server, caplog):
    project, report = variant(rendered, [ANALYST, DESK, EDITOR, Recipient("o'brien/x@example.org", "", "en")])
    caplog.set_level(logging.INFO, logger="reporter")
    result = delivery.deliver(project, report, DAY, history, now=clock, outbox=tmp_path / "outbox")
    names = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert names == ["brief_2025-11-05_en_desk@example.org.eml", "brief_2025-11-05_en_o_brien_x@example.org.eml",
                     "brief_2025-11-05_ru_analyst@example.org.eml", "brief_2025-11-05_ru_editor@example.org.eml"]
    assert [o.status for o in result.outcomes] == ["written"] * 4 and result.ok
    assert result.summary == "written, not sent (4 written)"
    assert history.deliveries() == []
    message = email.message_from_bytes((tmp_path / "outbox" / names[2]).read_bytes(), policy=email.policy.default)
    assert normalise(message["Subject"]) == "Брифинг: Обзор торговли, 5 ноября 2025 г."
    assert next(message.iter_attachments()).get_content() == rendered.pdf("ru")
    # Each outcome names its file and the Message-ID inside it, and counts no attempt at sending.
    analyst = result.outcomes[0]
    assert analyst.recipient == ANALYST and analyst.describe() == f"written to {tmp_path / 'outbox' / names[2]}"
    assert (analyst.detail, analyst.path, analyst.attempts) == (str(analyst.path), tmp_path / "outbox" / names[2], 0)
    assert analyst.message_id == message["Message-ID"]
    assert (f"brief 2025-11-05: wrote the message to analyst@example.org to {analyst.path} (not sent)"
            in [r.getMessage() for r in caplog.records])
    # What the outbox holds is the message a send then delivers: the same Message-ID, so a mail
    # system that has the outbox's copy drops the sent one as a duplicate.
    handler, smtp = server
    assert delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep, to=[ANALYST.email]).ok
    assert handler.parsed()[ANALYST.email]["Message-ID"] == message["Message-ID"]


def test_a_message_the_outbox_cannot_take_fails_and_nothing_is_written(rendered, history, tmp_path):
    project, report = variant(rendered, [ANALYST, DESK], max_bytes=50_000)
    result = delivery.deliver(project, report, DAY, history, now=clock, outbox=tmp_path / "outbox")
    assert [(o.recipient.email, o.status) for o in result.outcomes] == [
        ("analyst@example.org", "failed"), ("desk@example.org", "failed")]
    assert all(re.fullmatch(r"the message is 0\.\d MB \(\d+ bytes\), over the limit of 50000 bytes \(\[email\] max_size\)",
                            o.detail) for o in result.outcomes), result.outcomes
    assert not (tmp_path / "outbox").exists() or list((tmp_path / "outbox").iterdir()) == []
    assert history.deliveries() == [] and result.summary == "not delivered (2 failed)"


def test_an_outbox_does_not_read_what_was_sent(rendered, history, tmp_path):
    # It sends nothing, so who got the edition does not matter: a damaged deliveries.json, which
    # stops a send, neither stops it nor is touched.
    record = tmp_path / "output" / "brief" / "2025-11-05" / "deliveries.json"
    record.write_text("{ damaged", encoding="utf-8")
    project, report = variant(rendered, [ANALYST, DESK])
    result = delivery.deliver(project, report, DAY, history, now=clock, outbox=tmp_path / "outbox")
    assert [(o.recipient.email, o.status) for o in result.outcomes] == [
        ("analyst@example.org", "written"), ("desk@example.org", "written")]
    assert len(list((tmp_path / "outbox").iterdir())) == 2
    assert record.read_text(encoding="utf-8") == "{ damaged"


# --- the command line -------------------------------------------------------------------


@pytest.fixture
def cli_project(tmp_path: Path, rendered: Rendered) -> Path:
    """A config whose state database holds the recorded edition."""
    config_path = write_project(tmp_path)
    record_edition(tmp_path / "state" / "history.sqlite", rendered.edition).close()
    return config_path


def lines(result) -> list[str]:
    """stdout lines with the column padding collapsed."""
    return [" ".join(line.split()) for line in result.stdout.splitlines()]


@pytest.mark.slow
def test_cli_send_through_smtp_once(cli_project, server, rendered):
    handler, smtp = server
    # On a machine whose zone is neither UTC nor the report's (a POSIX rule: no zone file needed):
    # every time it records or prints is still UTC.
    env = {"REPORTER_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "REPORTER_SMTP_PASSWORD": "",
           "TZ": "EST5EDT,M3.2.0,M11.1.0"}
    result = run_cli("--config", str(cli_project), "send", "brief", "--date", "2025-11-05", env=env)
    assert result.returncode == 0, result.stderr
    assert lines(result) == ["analyst@example.org ru sent", "desk@example.org en sent", "editor@example.org ru sent"]
    assert len(handler.messages) == 3
    # deliveries.json beside the edition: what an operator (or `reporter adopt`) reads of each message.
    record = json.loads((cli_project.parent / "output" / "brief" / "2025-11-05" / "deliveries.json").read_text(encoding="utf-8"))
    received = handler.parsed()
    digests = {lang: hashlib.sha256(rendered.pdf(lang)).hexdigest() for lang in ("ru", "en")}
    assert (record["report"], record["edition_date"]) == ("brief", "2025-11-05")
    assert [(e["lang"], e["recipient"], e["kind"], e["message_id"], e["sha256"], e["forced"], e["attempts"])
            for e in record["deliveries"]] == [
        ("en", "desk@example.org", "to", received["desk@example.org"]["Message-ID"], digests["en"], False, 1),
        ("ru", "analyst@example.org", "to", received["analyst@example.org"]["Message-ID"], digests["ru"], False, 1),
        ("ru", "editor@example.org", "cc", received["editor@example.org"]["Message-ID"], digests["ru"], False, 1)]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", e["sent_at"]) for e in record["deliveries"]), record
    again = run_cli("--config", str(cli_project), "send", "brief", "--date", "2025-11-05", env=env)
    assert again.returncode == 0, again.stderr
    ids = {address: message["Message-ID"] for address, message in handler.parsed().items()}
    assert [re.sub(r"at \S+\+00:00 as", "at T as", line) for line in lines(again)] == [
        f"{address} {lang} already sent, skipped (sent at T as {ids[address]})"
        for address, lang in (("analyst@example.org", "ru"), ("desk@example.org", "en"), ("editor@example.org", "ru"))]
    assert len(handler.messages) == 3
    forced = run_cli("--config", str(cli_project), "send", "brief", "--date", "2025-11-05",
                     "--to", "desk@example.org", "--force", env=env)
    assert forced.returncode == 0 and lines(forced) == ["desk@example.org en sent again (--force)"]
    assert "--force" in forced.stderr


@pytest.mark.slow
def test_cli_send_partly_delivered_exits_1(cli_project, server):
    handler, smtp = server
    handler.refuse["desk@example.org"] = "550 5.1.1 no such user"
    env = {"REPORTER_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "REPORTER_SMTP_PASSWORD": ""}
    result = run_cli("--config", str(cli_project), "send", "brief", "--date", "2025-11-05", env=env)
    assert result.returncode == 1
    assert "desk@example.org en rejected: 550 5.1.1 no such user" in lines(result)
    assert "partly delivered" in result.stderr
    assert len(handler.messages) == 2


@pytest.mark.slow
def test_cli_send_refuses_an_unrendered_edition(cli_project):
    result = run_cli("--config", str(cli_project), "send", "brief", "--date", "2025-11-12",
                     env={"REPORTER_SMTP_URL": "smtp://127.0.0.1:9"})
    assert result.returncode == 1 and "render it first" in result.stderr


@pytest.mark.slow
def test_cli_send_to_an_outbox(cli_project, tmp_path, rendered):
    outbox = tmp_path / "outbox"
    result = run_cli("--config", str(cli_project), "send", "brief", "--date", "2025-11-05", "--outbox", str(outbox),
                     env={"REPORTER_SMTP_URL": "", "REPORTER_SMTP_PASSWORD": ""})
    assert result.returncode == 0, result.stderr
    files = sorted(outbox.iterdir())
    assert [f.name for f in files] == ["brief_2025-11-05_en_desk@example.org.eml",
                                       "brief_2025-11-05_ru_analyst@example.org.eml",
                                       "brief_2025-11-05_ru_editor@example.org.eml"]
    assert lines(result)[0] == f"analyst@example.org ru written to {files[1]}"
    for file in files:
        message = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
        lang = file.name.split("_")[2]
        assert message["Content-Language"] == lang
        assert message.get_body(("plain",)).get_content().startswith("Брифинг" if lang == "ru" else "Briefing")
        (attachment,) = message.iter_attachments()
        assert attachment.get_filename() == f"brief_2025-11-05_{lang}.pdf"
        assert attachment.get_content() == rendered.pdf(lang)
    history = History.at(cli_project.parent / "state" / "history.sqlite")
    assert history.deliveries() == []


@pytest.mark.slow
def test_cli_render_then_send(tmp_path, server):
    handler, smtp = server
    config_path = write_project(tmp_path)
    env = {"REPORTER_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "REPORTER_SMTP_PASSWORD": ""}
    result = run_cli("--config", str(config_path), "render", "brief", "--date", "2025-11-05", "--send", env=env)
    assert result.returncode == 0, result.stderr
    assert lines(result)[-3:] == ["analyst@example.org ru sent", "desk@example.org en sent", "editor@example.org ru sent"]
    pdf = (tmp_path / "output" / "brief" / "2025-11-05" / "brief.ru.pdf").read_bytes()
    assert next(handler.parsed()["analyst@example.org"].iter_attachments()).get_content() == pdf



@pytest.mark.slow
def test_a_scheduled_run_delivers_after_rendering_and_only_once(tmp_path, server):
    handler, smtp = server
    config_path = write_project(tmp_path)  # the test brief: Mondays 08:00 Almaty, three recipients
    env = {"REPORTER_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "REPORTER_SMTP_PASSWORD": "",
           "REPORTER_NOW": "2025-11-03T08:00:20+05:00"}
    result = run_cli("--config", str(config_path), "run-due", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "brief 2025-11-03T08:00 ok"
    received = handler.parsed()
    assert sorted(received) == ["analyst@example.org", "desk@example.org", "editor@example.org"]
    pdf = (tmp_path / "output" / "brief" / "2025-11-03" / "brief.en.pdf").read_bytes()
    assert next(received["desk@example.org"].iter_attachments()).get_content() == pdf
    assert "3 ноября 2025" in str(received["analyst@example.org"]["Subject"])
    # Called again in the same minute: nothing renders, nothing is sent twice.
    again = run_cli("--config", str(config_path), "run-due", env={**env, "REPORTER_NOW": "2025-11-03T08:00:50+05:00"})
    assert again.returncode == 0 and again.stdout == ""
    assert len(handler.messages) == 3
    history = run_cli("--config", str(config_path), "history", "brief")
    assert history.stdout.count(" sent ") == 3


@pytest.mark.slow
def test_run_due_reports_a_partial_delivery(tmp_path, server):
    handler, smtp = server
    handler.refuse["desk@example.org"] = "550 5.1.1 no such user"
    config_path = write_project(tmp_path)
    env = {"REPORTER_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "REPORTER_SMTP_PASSWORD": "",
           "REPORTER_NOW": "2025-11-03T08:00:20+05:00"}
    result = run_cli("--config", str(config_path), "run-due", env=env)
    assert result.returncode == 1
    assert result.stdout.strip() == "brief 2025-11-03T08:00 ok, partly delivered (2 sent, 1 rejected)"
    assert len(handler.messages) == 2


@pytest.mark.slow
def test_a_delivery_cut_short_by_a_crash_is_finished_at_the_next_start(rendered, tmp_path, server, backend):
    handler, smtp = server
    config_path = write_project(tmp_path)
    state = tmp_path / "state" / "history.sqlite"
    history = record_edition(state, rendered.edition, backend=backend)
    # As a process killed mid-delivery leaves it: the desk got theirs, the analyst's message was
    # claimed by the dead process, the editor's not reached yet.
    history.record_delivery("brief", DAY, "en", "desk@example.org", kind="to", status="sent", attempts=1,
                            reply="250 OK", now=NOW)
    assert history.claim_delivery("brief", DAY, "ru", "analyst@example.org", kind="to", now=NOW) is None
    history.close()
    backend.execute("UPDATE deliveries SET owner = 'gone:999999/1' WHERE recipient = 'analyst@example.org'")
    env = {"REPORTER_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "REPORTER_SMTP_PASSWORD": "",
           "REPORTER_NOW": "2025-11-06T12:00:00+05:00", **backend.env}  # nothing is due then
    result = run_cli("--config", str(config_path), "run-due", env=env)
    assert result.returncode == 0, result.stderr
    assert "finishing a delivery that was interrupted" in result.stderr
    assert sorted(handler.parsed()) == ["analyst@example.org", "editor@example.org"]
    # The dead process's claim counted no attempt: the analyst's message was tried once, now.
    rows = {d.recipient: (d.status, d.attempts, d.owner) for d in backend.history().deliveries()}
    assert rows == dict.fromkeys(("analyst@example.org", "desk@example.org", "editor@example.org"), ("sent", 1, None))


def test_without_a_sender_nothing_is_claimed_or_sent(rendered, history, server):
    handler, smtp = server
    project, report = variant(rendered, sender="")
    assert refused(project, report, history, smtp) == [f"{project.path}:email.from: not set: who the briefing is from"]
    assert handler.messages == [] and history.deliveries() == []


def test_an_empty_recorded_pdf_is_not_sent(rendered, tmp_path, server):
    # Its digest matches the record (of an empty file), so only its size can stop it.
    handler, smtp = server
    project, report = variant(rendered, [DESK])
    empty = tmp_path / "brief.en.pdf"
    empty.write_bytes(b"")
    artifacts = tuple(replace(a, path=empty, sha256=hashlib.sha256(b"").hexdigest(), size=0)
                      if (a.lang, a.format) == ("en", "pdf") else a for a in rendered.edition.artifacts)
    history = record_edition(tmp_path / "h.sqlite", replace(rendered.edition, artifacts=artifacts), copy=False)
    assert refused(project, report, history, smtp) == [f"{empty}: the recorded PDF is empty: render it first"]
    assert handler.messages == [] and history.deliveries() == []


def test_a_recipient_another_process_sent_to_meanwhile_is_skipped(rendered, tmp_path, server):
    # Between reading the ledger and claiming, another sender delivered to the news desk: the
    # claim sees it, and the desk gets one message, not two.
    handler, smtp = server
    project, report = variant(rendered, [ANALYST, DESK])
    state = tmp_path / "state" / "history.sqlite"
    history = record_edition(state, rendered.edition)
    other = History.at(state)

    def meanwhile() -> datetime:
        if not other.deliveries():
            other.record_delivery("brief", DAY, "en", DESK.email, kind="to", status="sent", attempts=1,
                                  reply="250 sent elsewhere", now=NOW, message_id="<elsewhere>", sha256="ab" * 32)
        return NOW

    result = delivery.deliver(project, report, DAY, history, now=meanwhile, smtp=smtp, sleep=no_sleep)
    assert [(o.recipient.email, o.status, o.detail, o.attempts, o.describe()) for o in result.outcomes] == [
        ("analyst@example.org", "sent", "250 2.0.0 OK queued as 42", 1, "sent"),
        ("desk@example.org", "already sent", "sent by another process just now", 0,
         "already sent, skipped (sent by another process just now)")]
    assert sorted(handler.parsed()) == ["analyst@example.org"]
    assert {row.recipient: (row.status, row.reply) for row in history.deliveries()} == {
        "analyst@example.org": ("sent", "250 2.0.0 OK queued as 42"), "desk@example.org": ("sent", "250 sent elsewhere")}
    other.close()
    history.close()


def test_a_narrative_edited_after_the_render_fails_its_language_with_every_fault(rendered, history, server, tmp_path):
    # Between the render and the send, an editor adds two blocks that are no section: the
    # message is built from the narrative again, so the desk's delivery fails and names both.
    handler, smtp = server
    templates = tmp_path / "templates"
    shutil.copytree(rendered.project.templates_dir, templates)
    project, report = variant(rendered, [ANALYST, DESK])
    project = replace(project, templates_dir=templates)
    narrative = templates / report.narrative_for("en")
    narrative.write_text(narrative.read_text(encoding="utf-8") + "{% block aside %}x{% endblock %}{% block box %}y{% endblock %}",
                         encoding="utf-8")
    result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)
    declared = ", ".join(sorted({"summary", *(s.id for s in report.sections)}))
    assert [(o.recipient.email, o.status, o.detail) for o in result.outcomes] == [
        ("analyst@example.org", "sent", "250 2.0.0 OK queued as 42"),
        ("desk@example.org", "failed", "cannot compose the message: "
         + "; ".join(f"{narrative}: block {name!r} is not a section of the report (declared: {declared})"
                     for name in ("aside", "box")))]
    assert list(handler.parsed()) == ["analyst@example.org"]
    # The ledger: no message was made for the desk, so none is named, and no attempt counted.
    row = history.delivery("brief", DAY, "en", "desk@example.org")
    assert (row.status, row.message_id, row.attempts) == ("failed", None, 0)


def test_a_language_whose_body_cannot_be_written_fails_alone(rendered, history, server, tmp_path):
    # The English body's template breaks: the desk's delivery fails and says where; the
    # Russian recipients still get theirs.
    handler, smtp = server
    templates = tmp_path / "templates"
    shutil.copytree(rendered.project.templates_dir, templates)
    body = templates / "email.txt.j2"  # over the theme's own
    theme = Path(delivery.__file__).resolve().parents[1] / "theme" / "email.txt.j2"
    body.write_text('{% if lang == "en" %}{{ nothing.here }}{% endif %}' + theme.read_text(encoding="utf-8"), encoding="utf-8")
    project, report = variant(rendered)
    project = replace(project, templates_dir=templates)
    result = delivery.deliver(project, report, DAY, history, now=clock, smtp=smtp, sleep=no_sleep)
    outcomes = {o.recipient.email: (o.status, o.detail) for o in result.outcomes}
    assert outcomes["analyst@example.org"][0] == outcomes["editor@example.org"][0] == "sent"
    assert outcomes["desk@example.org"] == ("failed", f"cannot compose the message: {body}:line 1: 'nothing' is undefined")
    assert sorted(handler.parsed()) == ["analyst@example.org", "editor@example.org"]
    assert not result.ok
