"""Email delivery: one message per recipient, in their language, with the edition's PDF, once.

The pipeline of :func:`deliver`: check that the edition was rendered and recorded and that its
PDFs on disk are the ones recorded; decide per recipient from the delivery ledger (already sent,
unchanged, to send); build each language's body from data; compose one
:class:`~email.message.EmailMessage` per recipient; then send over SMTP with bounded retries, or
write ``.eml`` files to an outbox instead.

A recipient's ledger row becomes ``sent`` only after the server accepted that message (a 2xx
reply to the end of DATA), and is written at once, before the next recipient, so a restart sends
only what is still missing. Just before it, the acceptance is added to the edition's own record
(``deliveries.json`` beside its files), which is read before sending: a history that was lost
or restored from an old backup cannot make anyone get a second copy.

Transient failures (no connection, timeouts, 4xx) are retried with exponential backoff for the
recipients that failed and no others; a permanent rejection (5xx) of one recipient is recorded
as ``rejected`` and the others still get theirs. A message that cannot be composed (a header the
email package refuses, a template error in one language) fails for its recipients only, with a
one-line reason in the ledger; no claim is left ``sending`` by a process that goes on living.

The SMTP server and its password come from the environment only (:func:`smtp_settings`). The
password is never logged, stored or put in an exception: smtplib's exceptions are caught and
every message here is built from the reply code and the server's text.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from ..config import Project, Recipient, Report
from ..errors import DeliveryError, Problem, ReporterError
from ..pipeline import inputs
from ..pipeline.datasets import Dataset
from ..pipeline.write import write_atomically
from ..state.history import History
from ..state.records import RECORD_NAME, SentEntry, add_to_record, read_record
from .compose import compose, compose_problem, message_id, outbox_name, sender_domain, summarize
from .smtp import (ALREADY_SENT, FAILED, IN_PROGRESS, REJECTED, SENT, UNCHANGED, WRITTEN, Letter,
                   Sleep, SmtpSettings, send, smtp_settings)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What happened for one recipient in one delivery."""

    recipient: Recipient
    status: str  # sent | already sent | unchanged | rejected | failed | written
    detail: str = ""  # the server's reply, the reason of a failure or a skip, or when it was sent before
    attempts: int = 0  # made by this delivery: none for a recipient skipped
    message_id: str | None = None
    path: Path | None = None
    forced: bool = False

    @property
    def ok(self) -> bool:
        return self.status not in (REJECTED, FAILED)

    def describe(self) -> str:
        """``sent`` / ``already sent, skipped (sent at …)`` / ``rejected: 550 …`` / ``written to PATH``."""
        if self.status == SENT:
            return "sent again (--force)" if self.forced else "sent"
        if self.status == ALREADY_SENT:
            # When and as which message: what a recipient's "I never got it" is checked against.
            sent_as = f" as {self.message_id}" if self.message_id else ""
            return f"already sent, skipped ({self.detail}{sent_as})"
        if self.status == IN_PROGRESS:
            return "being sent by another process, skipped"
        if self.status == UNCHANGED:
            return f"unchanged, not sent ({self.detail})"
        if self.status == WRITTEN:
            return f"written to {self.path}"
        if self.forced:
            # The recipient already has the edition; only the extra copy failed.
            return f"not sent again ({self.status}: {self.detail}); the copy sent before stands"
        return f"{self.status}: {self.detail}"


@dataclass(frozen=True)
class DeliveryResult:
    """Every recipient's outcome of one delivery of one edition, in the config's order."""

    report: str
    date: date
    outcomes: tuple[Outcome, ...]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def summary(self) -> str:
        """``delivered``, ``partly delivered``, ``not delivered``, ``written, not sent`` or ``no recipients``, with counts."""
        if not self.outcomes:
            return "no recipients"
        failed = sum(not o.ok for o in self.outcomes)
        verdict = "delivered" if not failed else "not delivered" if failed == len(self.outcomes) else "partly delivered"
        if not failed and all(o.status == WRITTEN for o in self.outcomes):
            verdict = "written, not sent"
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return f"{verdict} ({', '.join(f'{n} {status}' for status, n in counts.items())})"


# --- the edition and the recipients ----------------------------------------------------


@dataclass(frozen=True)
class EditionPdf:
    """A recorded edition's PDF in one language, read from disk and checked against the ledger."""

    lang: str
    path: Path
    sha256: str
    data: bytes


def recorded_pdfs(history: History, report: Report, day: date, languages: Sequence[str]) -> dict[str, EditionPdf]:
    """Each language's PDF from the newest successful run that wrote it; raise :class:`DeliveryError` otherwise.

    Only a complete, recorded edition is sent: a PDF missing, or different from the recorded
    digest (re-rendered by hand, half-copied, edited), is refused.
    """
    problems, found = [], {}
    for lang in languages:
        recorded = history.latest_pdf(report.id, day, lang)
        if recorded is None:
            problems.append(Problem(history.where, f"{report.id} {day.isoformat()}",
                                    f"no successful render of the {lang} PDF of this edition is recorded: render it first"))
            continue
        run_id, artifact = recorded
        path = Path(artifact.path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            problems.append(Problem(str(path), "", f"cannot read the recorded PDF ({exc.strerror}): render it first"))
            continue
        if hashlib.sha256(data).hexdigest() != artifact.sha256:
            problems.append(Problem(str(path), "", f"differs from the PDF recorded by run {run_id}: render it first"))
        elif not data:
            problems.append(Problem(str(path), "", "the recorded PDF is empty: render it first"))
        else:
            found[lang] = EditionPdf(lang, path, artifact.sha256, data)
    if problems:
        raise DeliveryError(problems)
    return found


def refuse_stale(report: Report, day: date, edition: Path) -> None:
    """With ``stale = "refuse"``: raise :class:`DeliveryError` if the edition holds stale facts.

    The edition says so itself (its manifest lists them), so a delivery later, by another
    process or host, refuses the same edition for the same reason.
    """
    from ..pipeline import manifest  # noqa: PLC0415

    record = manifest.read(edition)
    old = (record or {}).get("stale") or {}
    if old:
        listed = ", ".join(f"{fact_id} (as of {as_of})" for fact_id, as_of in old.items())
        raise DeliveryError([Problem(str(edition / manifest.NAME), f"{report.id} {day.isoformat()}",
                                     f"not delivered: {len(old)} fact(s) older than max_age ({listed}), and the "
                                     "report refuses stale figures (stale = \"refuse\"): update the data and render again")])


def content_digest(project: Project, report: Report, lang: str, datasets: Sequence[Dataset]) -> str:
    """A digest of what an edition says in ``lang``: its data and its texts, not its date.

    The PDF itself differs from one edition to the next (it prints its date), so
    ``send_if = "changed"`` compares this instead: the datasets, every template the edition
    reads and the catalogues of its language.
    """
    digest = hashlib.sha256()
    for dataset in sorted(datasets, key=lambda d: d.name):
        digest.update(f"{dataset.name}:{dataset.digest}\n".encode())
    for path in inputs.texts(project, report, lang):
        digest.update(str(path.name).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def select_recipients(project: Project, report: Report, to: Sequence[str] = ()) -> tuple[Recipient, ...]:
    """The report's recipients, or only those named in ``to``; an unknown address is an error.

    Ad-hoc addresses are refused so that a typo cannot mail a brief to a stranger; add the
    address to reports.toml (with its language) instead.
    """
    if not to:
        return report.recipients
    by_address = {r.email.lower(): r for r in report.recipients}
    unknown = [a for a in to if a.lower() not in by_address]
    if unknown:
        raise DeliveryError([Problem(str(project.path), f"reports.{report.id}.recipients",
                                     f"{a} is not a recipient of this report") for a in unknown])
    return tuple(dict.fromkeys(by_address[a.lower()] for a in to))


# --- the stage -------------------------------------------------------------------------


def deliver(
    project: Project,
    report: Report,
    day: date,
    history: History,
    *,
    now: Clock,
    to: Sequence[str] = (),
    force: bool = False,
    outbox: Path | None = None,
    smtp: SmtpSettings | None = None,
    sleep: Sleep = time.sleep,
) -> DeliveryResult:
    """Email the recorded edition ``day`` of ``report`` to its recipients (or to ``to`` only).

    Each recipient gets one message in their language, once: a recipient whose ledger row is
    ``sent``, or whom the edition's delivery record lists, is skipped unless ``force``. With
    ``send_if = "changed"``, a recipient is skipped when the PDF is the same as the last one sent
    in that language. With ``outbox``, every selected recipient's message is written there as
    ``.eml`` instead, and nothing is recorded. ``smtp`` defaults to :func:`smtp_settings` (the
    environment, with ``[email]``'s timeouts), read only if something is sent.

    Raises :class:`DeliveryError` for what stops every message (no recorded edition, a PDF that
    differs from the record, no sender, bad SMTP settings); a failure for one recipient is in
    the result (``ok`` is False) and the ledger, and the others still get theirs.
    """
    recipients = select_recipients(project, report, to)
    label = f"{report.id} {day.isoformat()}"
    if not recipients:
        log.info("%s: no recipients configured, nothing to send", label)
        return DeliveryResult(report.id, day, ())
    if not project.email.sender:
        raise DeliveryError([Problem(str(project.path), "email.from", "not set: who the briefing is from")])
    pdfs = recorded_pdfs(history, report, day, tuple(dict.fromkeys(r.lang for r in recipients)))
    if report.stale == "refuse":
        refuse_stale(report, day, next(iter(pdfs.values())).path.parent)
    records = {} if outbox is not None else {pdf.path.parent: read_record(pdf.path.parent) for pdf in pdfs.values()}

    from ..pipeline.build import load_datasets  # noqa: PLC0415 - the render pipeline's imports, only when sending

    datasets = load_datasets(project, report)
    contents = {lang: content_digest(project, report, lang, datasets) for lang in pdfs}
    outcomes: dict[Recipient, Outcome] = {}
    candidates: list[tuple[Recipient, int, bool]] = []  # recipient, earlier attempts, sent again over a sent row
    for recipient in recipients:
        if outbox is not None:
            candidates.append((recipient, 0, False))
            continue
        previous = history.delivery(report.id, day, recipient.lang, recipient.email)
        earlier = previous.attempts if previous else 0
        was_sent = bool(previous and previous.status == SENT)
        if was_sent and not force:
            log.info("%s: %s already sent at %s, skipped", label, recipient.email, previous.updated_at)
            outcomes[recipient] = Outcome(recipient, ALREADY_SENT, f"sent at {previous.updated_at}",
                                          message_id=previous.message_id)
            continue
        entry = records[pdfs[recipient.lang].path.parent].get((recipient.lang, recipient.email.lower()))
        if entry is not None and not force:
            # The history lost it (deleted, moved, an old backup); the edition's own record did not.
            log.warning("%s: %s got this edition at %s (so says %s; the history did not know): not sent again",
                        label, recipient.email, entry.sent_at, pdfs[recipient.lang].path.parent / RECORD_NAME)
            history.record_delivery(report.id, day, recipient.lang, recipient.email, kind=entry.kind, status=SENT,
                                    attempts=entry.attempts, reply=entry.reply, now=datetime.fromisoformat(entry.sent_at),
                                    message_id=entry.message_id, sha256=entry.sha256, forced=entry.forced,
                                    content=entry.content)
            outcomes[recipient] = Outcome(recipient, ALREADY_SENT, f"sent at {entry.sent_at}, says {RECORD_NAME}",
                                          message_id=entry.message_id)
            continue
        was_sent = was_sent or entry is not None
        if report.send_if == "changed" and not force and not was_sent:
            last = history.last_sent_content(report.id, recipient.lang, recipient.email, before=day)
            if last == contents[recipient.lang]:
                reason = "says the same as the last edition sent to this recipient"
                log.info("%s: %s unchanged, not sent (the edition %s)", label, recipient.email, reason)
                history.record_delivery(report.id, day, recipient.lang, recipient.email, kind=recipient.kind,
                                        status=UNCHANGED, attempts=earlier, reply=reason, now=now(),
                                        sha256=pdfs[recipient.lang].sha256, content=last)
                outcomes[recipient] = Outcome(recipient, UNCHANGED, reason)
                continue
        candidates.append((recipient, earlier, force and was_sent))

    to_send = candidates
    if candidates and outbox is None:
        # Before anything is claimed: bad settings stop it all, and the rows stay as they were.
        smtp = smtp or smtp_settings(timeout=project.email.reply_timeout, connect_timeout=project.email.connect_timeout)
        to_send = []
        for recipient, earlier, again in candidates:
            held = history.claim_delivery(report.id, day, recipient.lang, recipient.email, kind=recipient.kind,
                                          now=now(), force=force)
            if held == "sending":
                log.info("%s: %s is being sent by another process right now, skipped", label, recipient.email)
                outcomes[recipient] = Outcome(recipient, IN_PROGRESS)
            elif held == "sent":
                outcomes[recipient] = Outcome(recipient, ALREADY_SENT, "sent by another process just now")
            else:
                if again:
                    log.warning("%s: --force: sending again to %s", label, recipient.email)
                to_send.append((recipient, earlier, again))

    if to_send:
        outcomes.update(_compose_and_send(project, report, day, history, to_send, pdfs, contents, datasets,
                                          now=now, outbox=outbox, smtp=smtp, sleep=sleep, label=label))

    result = DeliveryResult(report.id, day, tuple(outcomes[r] for r in recipients))
    (log.info if result.ok else log.error)("%s: %s", label, result.summary)
    return result


def _compose_and_send(project: Project, report: Report, day: date, history: History,
                      to_send: list[tuple[Recipient, int, bool]], pdfs: dict[str, EditionPdf], contents: dict[str, str],
                      datasets: list[Dataset], *, now: Clock, outbox: Path | None, smtp: SmtpSettings | None,
                      sleep: Sleep, label: str) -> dict[Recipient, Outcome]:
    """Compose each claimed letter and send it; every claim ends recorded, whatever happens."""
    letters = [Letter(recipient, "", b"", pdfs[recipient.lang].sha256, earlier, again, contents[recipient.lang])
               for recipient, earlier, again in to_send]
    recorded: set[Recipient] = set()

    def record(letter: Letter) -> None:
        if outbox is None:
            _record(history, report, day, letter, now, pdfs[letter.recipient.lang].path.parent, label)
        recorded.add(letter.recipient)

    def fail(letter: Letter, reason: str) -> None:
        letter.status, letter.reply = FAILED, reason
        log.error("%s: not sent to %s: %s", label, letter.recipient.email, reason)
        record(letter)

    try:
        bodies, broken = {}, {}
        for lang in dict.fromkeys(letter.recipient.lang for letter in letters):
            try:
                bodies[lang] = summarize(project, report, day, lang, datasets)
            except ReporterError as exc:
                broken[lang] = "; ".join(str(p) for p in exc.problems)
        domain = sender_domain(project.email.sender)
        ready: list[Letter] = []
        for letter in letters:
            recipient = letter.recipient
            if recipient.lang in broken:
                fail(letter, f"cannot compose the message: {broken[recipient.lang]}")
                continue
            pdf = pdfs[recipient.lang]
            letter.message_id = message_id(report, day, recipient, pdf.sha256, domain, forced=letter.forced)
            try:
                letter.data = compose(project, report, recipient, bodies[recipient.lang], pdf.data, now(),
                                      letter.message_id).as_bytes()
            except Exception as exc:  # noqa: BLE001 - the email package refuses a header with ValueError and others
                reason = compose_problem(project, report, recipient, day) or f"{type(exc).__name__}: {_first_line(exc)}"
                log.debug("%s: composing the message to %s failed", label, recipient.email, exc_info=True)
                fail(letter, f"cannot compose the message: {reason}")
                continue
            if len(letter.data) > project.email.max_bytes:
                fail(letter, f"the message is {len(letter.data) / 2 ** 20:.1f} MB ({len(letter.data)} bytes), over the "
                             f"limit of {project.email.max_bytes} bytes ([email] max_size)")
                continue
            ready.append(letter)
        if outbox is not None:
            return {**{l.recipient: _outcome(l) for l in letters if l.status == FAILED},
                    **_write_outbox(ready, report, day, outbox, label)}
        if ready:
            log.info("%s: sending %d message(s) through %s", label, len(ready), smtp)
            send(ready, project, smtp, sleep, record, label)
    except BaseException as exc:
        # Whatever stopped it, no claim is left standing: the rows say so, and a retry sends them.
        for letter in letters:
            if letter.recipient not in recorded and outbox is None:
                why = ": ".join(filter(None, (type(exc).__name__, _first_line(exc))))
                letter.status, letter.reply = FAILED, f"stopped before it was sent ({why})"
                try:
                    record(letter)
                except Exception:  # noqa: BLE001 - the first error is the one to report
                    log.exception("%s: could not record that %s was not sent", label, letter.recipient.email)
        raise
    return {letter.recipient: _outcome(letter) for letter in letters}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _outcome(letter: Letter) -> Outcome:
    return Outcome(letter.recipient, letter.status, letter.reply, letter.attempts, letter.message_id, forced=letter.forced)


def _record(history: History, report: Report, day: date, letter: Letter, now: Clock, folder: Path, label: str) -> None:
    moment = now()
    if letter.status == SENT:
        # First beside the edition, then the history: if the process dies between the two, the
        # next delivery finds the record and does not send again.
        entry = SentEntry(letter.recipient.lang, letter.recipient.email.lower(), letter.recipient.kind,
                          moment.astimezone(timezone.utc).isoformat(timespec="seconds"), letter.message_id,
                          letter.sha256, letter.reply or None, letter.previous_attempts + letter.attempts,
                          letter.forced, letter.content)
        try:
            add_to_record(folder, report.id, day, entry)
        except ReporterError as exc:
            log.error("%s: sent to %s, but the edition's delivery record was not updated: %s", label,
                      letter.recipient.email, exc)
    if letter.forced and letter.status != SENT:
        # The recipient has an earlier copy; the ledger keeps saying so. The failure is logged.
        history.release_delivery(report.id, day, letter.recipient.lang, letter.recipient.email)
        return
    history.record_delivery(
        report.id, day, letter.recipient.lang, letter.recipient.email, kind=letter.recipient.kind,
        status=letter.status, attempts=letter.previous_attempts + letter.attempts, reply=letter.reply or None,
        now=moment, message_id=letter.message_id or None, sha256=letter.sha256, forced=letter.forced,
        content=letter.content,
    )


def _write_outbox(letters: list[Letter], report: Report, day: date, outbox: Path, label: str) -> dict[Recipient, Outcome]:
    files = {outbox / outbox_name(report.id, day, l.recipient.lang, l.recipient.email): l for l in letters}
    write_atomically({path: letter.data for path, letter in files.items()})
    outcomes = {}
    for path, letter in files.items():
        log.info("%s: wrote the message to %s to %s (not sent)", label, letter.recipient.email, path)
        outcomes[letter.recipient] = Outcome(letter.recipient, WRITTEN, str(path), 0, letter.message_id, path)
    return outcomes
