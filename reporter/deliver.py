"""Email delivery: one message per recipient, in their language, with the edition's PDF, once.

The pipeline of :func:`deliver`: check that the edition was rendered and recorded and that its
PDFs on disk are the ones recorded; decide per recipient from the delivery ledger (already sent,
unchanged, to send); build each language's body from data; compose one
:class:`~email.message.EmailMessage` per recipient; then send over SMTP with bounded retries, or
write ``.eml`` files to an outbox instead.

A recipient's ledger row becomes ``sent`` only after the server accepted that message (a 2xx
reply to the end of DATA), and is written at once, before the next recipient, so a restart sends
only what is still missing. Transient failures (no connection, timeouts, 4xx) are retried with
exponential backoff for the recipients that failed and no others; a permanent rejection (5xx) of
one recipient is recorded as ``rejected`` and the others still get theirs.

The SMTP server and its password come from the environment only (:func:`smtp_settings`). The
password is never logged, stored or put in an exception: smtplib's exceptions are caught and
every message here is built from the reply code and the server's text.
"""

from __future__ import annotations

import email.policy
import hashlib
import html as html_text
import logging
import os
import re
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Callable, Mapping, Sequence
from urllib.parse import unquote, urlsplit

import jinja2

from . import i18n, render
from .build import load_datasets
from .config import Project, Recipient, Report
from .datasets import Dataset
from .errors import DeliveryError, Problem, ReporterError, TemplateError
from .history import History
from .i18n import N_, Language

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], None]

URL_VARIABLE = "REPORTER_SMTP_URL"
PASSWORD_VARIABLE = "REPORTER_SMTP_PASSWORD"
DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
DEFAULT_TIMEOUT = 30.0

# Gmail clips a message whose HTML is over about 102 KB and hides the rest behind a link.
HTML_BUDGET = 100 * 1024
# A line in the body, not a paragraph: long first sentences are cut at a word.
LINE_BUDGET = 280

# policy.SMTP (CRLF, RFC 2047 headers) made 7-bit clean, so that set_content picks
# quoted-printable or base64 for Cyrillic text instead of 8bit, which a server without
# 8BITMIME may refuse or mangle.
POLICY = email.policy.SMTP.clone(cte_type="7bit")

# The layout's section headings (templates/brief.html.j2), msgids shared with it.
SECTION_HEADINGS = {
    "summary": N_("Summary"),
    "diplomacy": N_("Diplomacy: the C5+1 format"),
    "investment": N_("Investment and companies"),
    "transport": N_("Transport and logistics"),
    "mining": N_("Mining and critical minerals"),
    "uranium": N_("Uranium and nuclear security"),
    "region": N_("Kazakhstan's weight in the region"),
}

# Outcome statuses; the first four are also ledger statuses.
SENT, REJECTED, FAILED, UNCHANGED = "sent", "rejected", "failed", "unchanged"
ALREADY_SENT, WRITTEN, IN_PROGRESS = "already sent", "written", "in progress elsewhere"
PENDING = "pending"


# --- SMTP settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to connect: from ``REPORTER_SMTP_URL`` and ``REPORTER_SMTP_PASSWORD``.

    ``scheme`` is ``smtp`` (plain), ``smtp+starttls`` or ``smtps`` (TLS from the start).
    The password is left out of ``repr`` and ``str`` so that it cannot slip into a log line.
    """

    scheme: str
    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = DEFAULT_TIMEOUT

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}"


def smtp_settings(environ: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> SmtpSettings:
    """Read the SMTP settings from the environment; raise :class:`DeliveryError` naming the variable.

    The URL is never echoed back in an error: a user may have put a password in it.
    """
    env = os.environ if environ is None else environ
    url = env.get(URL_VARIABLE, "").strip()
    example = "smtp://host:25, smtp+starttls://user@host:587 or smtps://user@host:465"
    if not url:
        raise DeliveryError([Problem(URL_VARIABLE, "", f"not set: set it to {example}, or preview with --outbox DIR")])
    problems: list[Problem] = []
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DeliveryError([Problem(URL_VARIABLE, "", f"not a URL like {example}")]) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        problems.append(Problem(URL_VARIABLE, "", f"unknown scheme {scheme!r}: use {example}"))
    if parts.password is not None:
        problems.append(Problem(URL_VARIABLE, "", f"contains a password: put it in {PASSWORD_VARIABLE} instead"))
    if not parts.hostname:
        problems.append(Problem(URL_VARIABLE, "", f"names no host: use {example}"))
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        problems.append(Problem(URL_VARIABLE, "", f"has a path or query; expected only {example}"))
    username = unquote(parts.username or "")
    password = env.get(PASSWORD_VARIABLE, "")
    if username and not password:
        problems.append(Problem(PASSWORD_VARIABLE, "", f"not set, and {URL_VARIABLE} logs in as {username}"))
    if password and not username:
        problems.append(Problem(URL_VARIABLE, "", f"names no user, but {PASSWORD_VARIABLE} is set (smtp+starttls://user@host:587)"))
    if scheme == "smtp" and username:
        problems.append(Problem(URL_VARIABLE, "", "smtp:// would send the password unencrypted: use smtp+starttls:// or smtps://"))
    if problems:
        raise DeliveryError(problems)
    return SmtpSettings(scheme, parts.hostname or "", port or DEFAULT_PORTS[scheme], username, password, timeout)


# --- the message -----------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A key figure as the body shows it: its label and qualified value in one language."""

    label: str
    value: str


@dataclass(frozen=True)
class SectionLine:
    """One line per narrative section: its translated heading and its first sentence."""

    id: str
    heading: str
    text: str


@dataclass(frozen=True)
class Body:
    """What a message says in one language, built from data and rendered to text and HTML."""

    lang: str
    subject: str
    title: str
    date_text: str
    figures: tuple[Figure, ...]
    sections: tuple[SectionLine, ...]
    attachment_name: str
    text: str
    html: str


def attachment_name(report_id: str, day: date, lang: str) -> str:
    """``kz-us_2025-11-05_ru.pdf``: ASCII, so every mail client shows it as it is."""
    return f"{report_id}_{day.isoformat()}_{lang}.pdf"


def subject(project: Project, report: Report, day: date, lang: Language) -> str:
    """The subject in ``lang``: ``[email].subject``, else "Briefing: {title}, {date}" translated."""
    pattern = project.email.subject.get(lang.code) or lang.gettext("Briefing") + ": {title}, {date}"
    values = {
        "title": report.short_title.get(lang.code) or report.title[lang.code],
        "date": lang.date(day),
        "report": report.id,
    }
    # Not str.format: a brace in a configured subject must not be able to reach attributes.
    return re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), m.group(0)), pattern)


_CITATION = re.compile(r'<a class="cite"[^>]*>.*?</a>', re.S)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"[ \t\r\n]+")  # not \s: no-break spaces inside figures must stay
_SENTENCE_END = re.compile(r"[.!?…][»”\"')]*(?= )")


def first_sentence(fragment: str) -> str:
    """The first sentence of the first paragraph of an HTML fragment, as plain text."""
    paragraph = re.split(r"</p\s*>", fragment, maxsplit=1)[0]
    text = html_text.unescape(_TAG.sub("", _CITATION.sub("", paragraph)))
    text = _SPACE.sub(" ", text).strip()
    for match in _SENTENCE_END.finditer(text):
        following = text[match.end() + 1:match.end() + 2]
        # A sentence ends where the next word starts with a capital; "г. в" and "e.g. the" go on.
        if following.isupper() or following in "«“\"(":
            text = text[:match.end()]
            break
    if len(text) > LINE_BUDGET:
        text = text[:LINE_BUDGET].rsplit(" ", 1)[0].rstrip(",;:—–-") + "…"
    return text


def _section_lines(project: Project, report: Report, lang: Language, ctx: render.EditionContext) -> tuple[SectionLine, ...]:
    if not report.narrative:
        return ()
    name = report.narrative.format(lang=lang.code)
    env = render.environment(project.templates_dir, lang)
    lines = []
    try:
        template = env.get_template(name)
        context = template.new_context(ctx.globals())
        for section in render.SECTIONS:
            block = template.blocks.get(section)
            if block is None:
                continue
            text = first_sentence("".join(block(context)))
            if text:
                heading = lang.gettext(SECTION_HEADINGS.get(section, section))
                lines.append(SectionLine(section, heading, text))
    except (jinja2.TemplateError, TemplateError) as exc:
        raise TemplateError([render._template_problem(exc, project.templates_dir)]) from exc
    return tuple(lines)


def summarize(project: Project, report: Report, day: date, lang_code: str, datasets: list[Dataset]) -> Body:
    """Build one language's body: title, date, key figures and one line per section."""
    lang = i18n.language(lang_code, project.locale_of(lang_code))
    ctx = render.context(report, lang, day, "html", datasets, charts={})
    figures = tuple(
        Figure(str(row.get(f"label_{lang.code}") or row["id"]), lang.qualified(row["value"], row["unit"], row.get("qualifier")))
        for row in ctx.facts.values()
    )
    values = dict(
        lang=lang.code, subject=subject(project, report, day, lang), title=ctx.title,
        date_text=ctx.edition_date_text, figures=figures, sections=_section_lines(project, report, lang, ctx),
        attachment_name=attachment_name(report.id, day, lang.code),
    )
    env = render.environment(project.templates_dir, lang)
    try:
        text = env.get_template("email.txt.j2").render(values)
        html = env.get_template("email.html.j2").render(values)
    except (jinja2.TemplateError, TemplateError) as exc:
        raise TemplateError([render._template_problem(exc, project.templates_dir)]) from exc
    if not text.strip() or not html.strip():
        raise DeliveryError([Problem(str(project.templates_dir / "email.txt.j2"), "", f"the {lang.code} body is empty")])
    if len(html.encode("utf-8")) > HTML_BUDGET:
        log.warning("%s %s %s: the HTML body is %d KB; mail clients clip bodies over 100 KB",
                    report.id, day, lang.code, len(html.encode("utf-8")) // 1024)
    return Body(text=text, html=html, **values)


def message_id(report: Report, day: date, recipient: Recipient, pdf_sha256: str, domain: str, *, forced: bool) -> str:
    """The Message-ID: the same for the same edition, PDF and recipient, unless forced.

    A resend after a crash between the server's acceptance and the ledger write then carries
    the same id, so mail systems that drop duplicates by Message-ID drop it. ``--force`` is a
    deliberate second copy and gets a fresh id.
    """
    if forced:
        return make_msgid(idstring=report.id, domain=domain)
    digest = hashlib.sha256(f"{pdf_sha256}\0{recipient.email.lower()}".encode()).hexdigest()[:24]
    return f"<{report.id}.{day.isoformat()}.{recipient.lang}.{digest}@{domain}>"


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"


def compose(project: Project, report: Report, recipient: Recipient, body: Body, pdf: bytes,
            moment: datetime, msgid: str) -> EmailMessage:
    """One recipient's message: headers, text and HTML alternatives, the PDF attached."""
    settings = project.email
    message = EmailMessage(policy=POLICY)
    message["Subject"] = body.subject
    message["From"] = settings.sender
    address = Address(display_name=recipient.name, addr_spec=recipient.email)
    if recipient.kind == "cc":
        message["Cc"] = address
    elif recipient.kind == "bcc":
        # Nobody else is on the message, and a bare Bcc would still name the address.
        message["To"] = "undisclosed-recipients:;"
    else:
        message["To"] = address
    if settings.reply_to:
        message["Reply-To"] = settings.reply_to
    message["Date"] = format_datetime(moment.astimezone(report.timezone))
    message["Message-ID"] = msgid
    # RFC 3834: out-of-office robots must not answer a scheduled mailing.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body.text)
    message.add_alternative(body.html, subtype="html")
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=body.attachment_name)
    # Last: making the message multipart moves every Content-* header into the first part.
    message["Content-Language"] = body.lang
    return message


def outbox_name(report_id: str, day: date, lang: str, address: str) -> str:
    """``kz-us_2025-11-05_ru_analyst@example.org.eml``, with anything unsafe in a file name as ``_``."""
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", f"{report_id}_{day.isoformat()}_{lang}_{address}") + ".eml"


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What happened for one recipient in one delivery."""

    recipient: Recipient
    status: str  # sent | already sent | unchanged | rejected | failed | written
    detail: str = ""  # the server's reply, the reason of a failure, or when it was sent before
    attempts: int = 0
    message_id: str | None = None
    path: Path | None = None
    forced: bool = False

    @property
    def ok(self) -> bool:
        return self.status not in (REJECTED, FAILED)

    def describe(self) -> str:
        """``sent`` / ``already sent, skipped`` / ``rejected: 550 …`` / ``written to PATH``."""
        if self.status == SENT:
            return "sent again (--force)" if self.forced else "sent"
        if self.status == ALREADY_SENT:
            return "already sent, skipped"
        if self.status == IN_PROGRESS:
            return "being sent by another process, skipped"
        if self.status == UNCHANGED:
            return "unchanged, not sent"
        if self.status == WRITTEN:
            return f"written to {self.path}"
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


def content_digest(project: Project, report: Report, lang: str, datasets: Sequence[Dataset]) -> str:
    """A digest of what an edition says in ``lang``: its data and its texts, not its date.

    The PDF itself differs from one edition to the next (it prints its date), so
    ``send_if = "changed"`` compares this instead.
    """
    digest = hashlib.sha256()
    for dataset in sorted(datasets, key=lambda d: d.name):
        digest.update(f"{dataset.name}:{dataset.digest}\n".encode())
    names = [report.template] + ([report.narrative.format(lang=lang)] if report.narrative else [])
    for name in names:
        digest.update(name.encode() + b"\0" + (project.templates_dir / name).read_bytes())
    digest.update(i18n.CATALOGUES.joinpath(lang, "LC_MESSAGES", f"{i18n.DOMAIN}.po").read_bytes())
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
    return tuple(by_address[a.lower()] for a in dict.fromkeys(a.lower() for a in to))


# --- sending ---------------------------------------------------------------------------


class _Transient(Exception):
    """A failure worth retrying: no connection, a timeout, a 4xx reply."""


class _Permanent(Exception):
    """A failure that retrying cannot fix: an untrusted certificate, a refused login."""


@dataclass
class _Letter:
    """One recipient's message on its way, with what happened to it so far."""

    recipient: Recipient
    message_id: str
    data: bytes
    sha256: str
    previous_attempts: int
    forced: bool  # sent again over a ``sent`` row: a failure must not erase that it was delivered
    content: str = ""  # content_digest of the edition in this language
    attempts: int = 0
    status: str = PENDING
    reply: str = ""


def _reply_text(code: int, text: bytes | str, password: str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return _scrub(f"{code} {_SPACE.sub(' ', text).strip()}".strip(), password)


def _scrub(text: str, password: str) -> str:
    # A server that echoes a login attempt must not get the password into the ledger, not even
    # in the base64 of AUTH PLAIN or LOGIN.
    if not password:
        return text
    import base64  # noqa: PLC0415

    for secret in (password, base64.b64encode(password.encode()).decode()):
        text = text.replace(secret, "***")
    return re.sub(r"[A-Za-z0-9+/]{16,}={0,2}", lambda m: "***" if _hides(m.group(), password) else m.group(), text)


def _hides(token: str, password: str) -> bool:
    import base64  # noqa: PLC0415
    import binascii  # noqa: PLC0415

    try:
        return password.encode() in base64.b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return False


def _connect(smtp: SmtpSettings, ca_file: Path | None) -> smtplib.SMTP:
    """An open, greeted, encrypted-if-asked and logged-in connection, or :class:`_Transient`/:class:`_Permanent`."""
    where = f"{smtp.host}:{smtp.port}"
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    conn: smtplib.SMTP | None = None
    try:
        if smtp.scheme == "smtps":
            conn = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
        else:
            conn = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        conn.ehlo()
        if smtp.scheme == "smtp+starttls":
            conn.starttls(context=context)
            conn.ehlo()
        if smtp.username:
            conn.login(smtp.username, smtp.password)
        return conn
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if not isinstance(exc, Exception):
            raise
        raise _classify_connection_error(exc, smtp, where, ca_file) from None


def _classify_connection_error(exc: Exception, smtp: SmtpSettings, where: str, ca_file: Path | None) -> Exception:
    # Ordered from specific to general: smtplib's and ssl's exceptions are OSErrors too.
    if isinstance(exc, ssl.SSLCertVerificationError):
        hint = f"is {ca_file} the right CA?" if ca_file else "for a private CA, set [email] ca_file"
        return _Permanent(f"the certificate of {where} could not be verified ({exc.verify_message}; {hint})")
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return _Transient(f"{where} closed the connection during the TLS handshake")
    if isinstance(exc, ssl.SSLError):
        return _Permanent(f"TLS with {where} failed ({exc.reason or type(exc).__name__})")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # 454 "temporary authentication failure" is worth another try; 535 "bad credentials" is not.
        kind = _Transient if 400 <= exc.smtp_code < 500 else _Permanent
        return kind(f"{where} refused the login as {smtp.username}: {_reply_text(exc.smtp_code, exc.smtp_error, smtp.password)}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        # smtplib's own fixed text: "SMTP AUTH extension not supported by server." and the like.
        return _Permanent(f"{where}: {str(exc).rstrip('.')} (check {URL_VARIABLE})")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return _Transient(f"{where} closed the connection")
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = _reply_text(exc.smtp_code, exc.smtp_error, smtp.password)
        return (_Transient if 400 <= exc.smtp_code < 500 else _Permanent)(f"{where} answered {reply}")
    if isinstance(exc, smtplib.SMTPException):
        return _Transient(f"{where}: {type(exc).__name__}")
    if isinstance(exc, TimeoutError):
        return _Transient(f"{where} did not answer within {smtp.timeout:g} s")
    if isinstance(exc, OSError):
        return _Transient(f"cannot connect to {where} ({exc.strerror or type(exc).__name__})")
    return _Transient(f"{where}: {type(exc).__name__}")


def _transmit(conn: smtplib.SMTP, sender: str, letter: _Letter, password: str) -> tuple[int, str]:
    """MAIL, RCPT and DATA for one letter; the first reply that is not a success, else DATA's."""
    options = [f"SIZE={len(letter.data)}"] if conn.has_extn("size") else []
    code, text = conn.mail(sender, options)
    if code == 250:
        code, text = conn.rcpt(letter.recipient.email)
        if code in (250, 251):
            try:
                code, text = conn.data(letter.data)
            except smtplib.SMTPDataError as exc:  # DATA itself refused (no 354)
                code, text = exc.smtp_code, exc.smtp_error
    if code // 100 != 2 and code != 421:
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            pass  # the reply above is what counts; a dead connection shows on the next letter
    return code, _reply_text(code, text, password)


def _send(letters: list[_Letter], project: Project, smtp: SmtpSettings, sleep: Sleep,
          record: Callable[[_Letter], None], label: str) -> None:
    """Send every letter, retrying transient failures in rounds; ``record`` each final outcome at once."""
    settings = project.email
    sender = parseaddr(settings.sender)[1]
    pending = list(letters)
    for round_number in range(1, settings.attempts + 1):
        if round_number > 1:
            delay = settings.backoff_seconds * 2 ** (round_number - 2)
            log.warning("%s: %d message(s) not delivered yet; attempt %d of %d in %g s",
                        label, len(pending), round_number, settings.attempts, delay)
            sleep(delay)
        try:
            conn = _connect(smtp, settings.ca_file)
        except _Transient as exc:
            log.warning("%s: %s", label, exc)
            for letter in pending:
                letter.attempts += 1
                letter.reply = str(exc)
            continue
        except _Permanent as exc:
            log.error("%s: %s", label, exc)
            for letter in pending:
                letter.attempts += 1
                letter.status, letter.reply = FAILED, str(exc)
                record(letter)
            return
        try:
            for letter in pending:
                letter.attempts += 1
                try:
                    code, reply = _transmit(conn, sender, letter, smtp.password)
                except smtplib.SMTPServerDisconnected:
                    letter.reply = f"{smtp.host}:{smtp.port} closed the connection"
                    log.warning("%s: %s: %s", label, letter.recipient.email, letter.reply)
                    break
                except (smtplib.SMTPException, OSError) as exc:
                    letter.reply = str(_classify_connection_error(exc, smtp, f"{smtp.host}:{smtp.port}", None))
                    log.warning("%s: %s: %s", label, letter.recipient.email, letter.reply)
                    break
                except (UnicodeError, ValueError) as exc:
                    # This letter cannot be sent at all (an address smtplib cannot encode);
                    # the others still go.
                    letter.status, letter.reply = FAILED, f"cannot be sent: {type(exc).__name__}: {exc}"
                    log.error("%s: %s: %s", label, letter.recipient.email, letter.reply)
                    record(letter)
                    continue
                letter.reply = reply
                if code // 100 == 2:
                    letter.status = SENT
                    log.info("%s: sent to %s%s (%s)", label, letter.recipient.email,
                             " again, forced" if letter.forced else "", reply)
                    record(letter)
                elif 500 <= code < 600:
                    letter.status = REJECTED
                    log.error("%s: %s rejected %s: %s", label, smtp.host, letter.recipient.email, reply)
                    record(letter)
                else:
                    log.warning("%s: %s: %s (will retry)", label, letter.recipient.email, reply)
                    if code == 421:  # the server is closing this connection
                        break
        finally:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()
        pending = [letter for letter in pending if letter.status == PENDING]
        if not pending:
            return
    for letter in pending:
        letter.status = FAILED
        letter.reply = f"{letter.reply} (gave up after {letter.attempts} attempt{'s' if letter.attempts != 1 else ''})"
        log.error("%s: not delivered to %s: %s", label, letter.recipient.email, letter.reply)
        record(letter)


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
    ``sent`` is skipped unless ``force``. With ``send_if = "changed"``, a recipient is skipped
    when the PDF is the same as the last one sent in that language. With ``outbox``, every
    selected recipient's message is written there as ``.eml`` instead, and nothing is recorded.
    ``smtp`` defaults to :func:`smtp_settings` (the environment), read only if something is sent.

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
                                          previous.attempts, previous.message_id)
            continue
        if report.send_if == "changed" and not force and not was_sent:
            last = history.last_sent_content(report.id, recipient.lang, recipient.email, before=day)
            if last == contents[recipient.lang]:
                reason = "says the same as the last edition sent to this recipient"
                log.info("%s: %s unchanged, not sent (the edition %s)", label, recipient.email, reason)
                history.record_delivery(report.id, day, recipient.lang, recipient.email, kind=recipient.kind,
                                        status=UNCHANGED, attempts=earlier, reply=reason, now=now(),
                                        sha256=pdfs[recipient.lang].sha256, content=last)
                outcomes[recipient] = Outcome(recipient, UNCHANGED, reason, earlier)
                continue
        candidates.append((recipient, earlier, force and was_sent))

    to_send = candidates
    if candidates and outbox is None:
        smtp = smtp or smtp_settings()  # before anything is claimed: bad settings stop it all
        to_send = []
        for recipient, earlier, again in candidates:
            held = history.claim_delivery(report.id, day, recipient.lang, recipient.email, kind=recipient.kind,
                                          now=now(), force=force)
            if held == "sending":
                log.info("%s: %s is being sent by another process right now, skipped", label, recipient.email)
                outcomes[recipient] = Outcome(recipient, IN_PROGRESS, "another process is sending it", earlier)
            elif held == "sent":
                outcomes[recipient] = Outcome(recipient, ALREADY_SENT, "sent by another process", earlier)
            else:
                if again:
                    log.warning("%s: --force: sending again to %s", label, recipient.email)
                to_send.append((recipient, earlier, again))

    if to_send:
        bodies = {lang: summarize(project, report, day, lang, datasets) for lang in dict.fromkeys(r.lang for r, _, _ in to_send)}
        domain = _domain(project.email.sender)
        letters: list[_Letter] = []
        for recipient, earlier, again in to_send:
            pdf = pdfs[recipient.lang]
            msgid = message_id(report, day, recipient, pdf.sha256, domain, forced=again)
            data = compose(project, report, recipient, bodies[recipient.lang], pdf.data, now(), msgid).as_bytes()
            letter = _Letter(recipient, msgid, data, pdf.sha256, earlier, again, contents[recipient.lang])
            if len(data) > project.email.max_bytes:
                letter.status = FAILED
                letter.reply = (f"the message is {len(data) / 1048576:.1f} MB ({len(data)} bytes), over the limit of "
                                f"{project.email.max_bytes} bytes ([email] max_size)")
                log.error("%s: not sent to %s: %s", label, recipient.email, letter.reply)
                if outbox is None:
                    _record(history, report, day, letter, now)
                outcomes[recipient] = _outcome(letter)
            else:
                letters.append(letter)
        if outbox is not None:
            outcomes.update(_write_outbox(letters, report, day, outbox, label))
        elif letters:
            log.info("%s: sending %d message(s) through %s", label, len(letters), smtp)
            _send(letters, project, smtp, sleep, lambda letter: _record(history, report, day, letter, now), label)
            outcomes.update((letter.recipient, _outcome(letter)) for letter in letters)

    result = DeliveryResult(report.id, day, tuple(outcomes[r] for r in recipients))
    (log.info if result.ok else log.error)("%s: %s", label, result.summary)
    return result


def _outcome(letter: _Letter) -> Outcome:
    return Outcome(letter.recipient, letter.status, letter.reply, letter.attempts, letter.message_id, forced=letter.forced)


def _record(history: History, report: Report, day: date, letter: _Letter, now: Clock) -> None:
    if letter.forced and letter.status != SENT:
        # The recipient has an earlier copy; the ledger keeps saying so. The failure is logged.
        history.release_delivery(report.id, day, letter.recipient.lang, letter.recipient.email)
        return
    history.record_delivery(
        report.id, day, letter.recipient.lang, letter.recipient.email, kind=letter.recipient.kind,
        status=letter.status, attempts=letter.previous_attempts + letter.attempts, reply=letter.reply or None,
        now=now(), message_id=letter.message_id, sha256=letter.sha256, forced=letter.forced, content=letter.content,
    )


def _write_outbox(letters: list[_Letter], report: Report, day: date, outbox: Path, label: str) -> dict[Recipient, Outcome]:
    files = {outbox / outbox_name(report.id, day, l.recipient.lang, l.recipient.email): l for l in letters}
    render.write_atomically({path: letter.data for path, letter in files.items()})
    outcomes = {}
    for path, letter in files.items():
        log.info("%s: wrote the message to %s to %s (not sent)", label, letter.recipient.email, path)
        outcomes[letter.recipient] = Outcome(letter.recipient, WRITTEN, str(path), 0, letter.message_id, path)
    return outcomes


def deliver_scheduled(project: Project, report: Report, day: date, history: History, *, now: Clock,
                      sleep: Sleep = time.sleep) -> DeliveryResult | None:
    """For the scheduler, after a successful render: :func:`deliver`, with errors logged, not raised.

    A report without recipients is left alone. Anything that stops the delivery (no SMTP
    settings, a PDF that changed since it was recorded) is logged as an error and returns None;
    failures per recipient are in the ledger, so the next run or ``reporter send`` retries them.
    """
    if not report.recipients:
        return None
    try:
        return deliver(project, report, day, history, now=now, sleep=sleep)
    except ReporterError as exc:
        for problem in exc.problems:
            log.error("%s %s: not delivered: %s", report.id, day.isoformat(), problem)
    except Exception:  # noqa: BLE001 - a bug in delivery must not stop the scheduler or other reports
        log.exception("%s %s: delivery failed", report.id, day.isoformat())
    return None

