"""Messages: what each recipient gets, in their language, as an :class:`~email.message.EmailMessage`.

A body says, in a few lines, what the edition says: its title and date, the key figures, and one
line per section (the first sentence of each). The PDF is attached under an ASCII name.
"""

from __future__ import annotations

import email.policy
import hashlib
import html as html_text
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

import jinja2

from ..config import HEADER_LIMIT, Project, Recipient, Report, header_problem
from ..errors import DeliveryError, Problem, ReporterError, TemplateError
from ..pipeline import build, render
from ..pipeline.datasets import Dataset
from ..pipeline.i18n import N_, Language
from ..pipeline.values import qualified

log = logging.getLogger(__name__)

# Gmail clips a message whose HTML is over about 102 KB and hides the rest behind a link.
HTML_BUDGET = 100 * 1024
# A line in the body, not a paragraph: long first sentences are cut at a word.
LINE_BUDGET = 280

# policy.SMTP (CRLF, RFC 2047 headers) made 7-bit clean, so that set_content picks
# quoted-printable or base64 for Cyrillic text instead of 8bit, which a server without
# 8BITMIME may refuse or mangle.
POLICY = email.policy.SMTP.clone(cte_type="7bit")

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
    """``weekly_2025-11-05_ru.pdf``: ASCII, so every mail client shows it as it is."""
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


_CITATION = re.compile(r'\u2060?<a class="cite"[^>]*>.*?</a>', re.S)
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


def _section_lines(report: Report, lang: Language, blocks: dict[str, str]) -> tuple[SectionLine, ...]:
    """The summary's and each section's first sentence, under its heading in ``lang``."""
    headed = [(render.SUMMARY, lang.gettext(N_("Summary")))] + [(s.id, s.title[lang.code]) for s in report.sections]
    lines = []
    for block, heading in headed:
        text = first_sentence(str(blocks.get(block, "")))
        if text:
            lines.append(SectionLine(block, heading, text))
    return tuple(lines)


def summarize(project: Project, report: Report, day: date, lang_code: str, datasets: list[Dataset]) -> Body:
    """Build one language's body: title, date, key figures and one line per section."""
    lang = build.language(project, lang_code)
    knowledge = build.gather(project, report, datasets)
    ctx = render.context(report, lang, day, "html", knowledge, charts={})
    # A chart placed in the narrative has no place in a mail body: the missing chart it leaves
    # in ctx.problems is ignored, and the text around it is what the lines take.
    blocks = render.narrative_blocks(ctx, project.templates_dir)
    figures = tuple(Figure(f.labels[lang.code], qualified(f.value, f.unit, f.qualifier, lang, upper=f.upper))
                    for f in render.key_figures(report, knowledge))
    values = dict(
        lang=lang.code, subject=subject(project, report, day, lang), title=ctx.title,
        date_text=lang.date(day), figures=figures, sections=_section_lines(report, lang, blocks),
        attachment_name=attachment_name(report.id, day, lang.code),
    )
    env = render.environment(project.templates_dir, lang)
    try:
        text = env.get_template("email.txt.j2").render(values)
        html = env.get_template("email.html.j2").render(values)
    except (jinja2.TemplateError, TemplateError) as exc:
        raise TemplateError([render.template_problem(exc, project.templates_dir)]) from exc
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


def sender_domain(address: str) -> str:
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
    """``weekly_2025-11-05_ru_analyst@example.org.eml``, with anything unsafe in a file name as ``_``."""
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", f"{report_id}_{day.isoformat()}_{lang}_{address}") + ".eml"


# --- headers checked before anything is sent ------------------------------------------------

# A date whose name is long in every language, so that a subject checked with it is as long as any.
LONG_DATE = date(2025, 9, 30)


def _subject_problem(project: Project, report: Report, lang_code: str, day: date) -> Problem | None:
    lang = build.language(project, lang_code)
    text = subject(project, report, day, lang)
    problem = header_problem(text, "a subject", HEADER_LIMIT)
    if problem is None:
        return None
    # Name the key that brought the bad character: the title used, else the subject pattern.
    if report.short_title.get(lang_code) and report.short_title is not report.title:
        title_key, title = "short_title", report.short_title[lang_code]
    else:
        title_key, title = "title", report.title.get(lang_code, "")
    key = f"email.subject.{lang_code}"
    if header_problem(title, "a title", 10**6):
        key = f"reports.{report.id}.{title_key}.{lang_code}"
    return Problem(str(project.path), key, f"the {lang_code} subject of {report.id} {text!r}: {problem}")


def header_problems(project: Project, reports: list[Report] | None = None, day: date = LONG_DATE) -> list[Problem]:
    """Every header a message of these reports would carry, rendered and checked: one line each.

    The subject in each language (with its title and a long date filled in), ``from``,
    ``reply_to`` and each recipient's name: no line break or control character, and not over
    :data:`~reporter.config.HEADER_LIMIT` characters. ``reporter validate`` calls it; a message
    that fails anyway when composed fails for its recipient only.
    """
    problems: list[Problem] = []
    where = str(project.path)
    sending = [r for r in (reports if reports is not None else project.reports.values()) if r.recipients or r.on_failure]
    if not sending:
        return problems
    if not project.email.sender:
        problems.append(Problem(where, "email.from", f"not set, but {', '.join(r.id for r in sending)} send email"))
    for key, value in (("email.from", project.email.sender), ("email.reply_to", project.email.reply_to)):
        if value and (problem := header_problem(value, "an address")):
            problems.append(Problem(where, key, problem))
    for report in sending:
        if report.recipients and "pdf" not in report.formats:
            problems.append(Problem(where, f"reports.{report.id}.formats",
                                    "recipients get the PDF edition, but the formats do not include pdf"))
        languages = dict.fromkeys([r.lang for r in report.recipients] + list(report.languages[:1] if report.on_failure else []))
        for lang in languages:
            try:
                if problem := _subject_problem(project, report, lang, day):
                    problems.append(problem)
            except ReporterError as exc:
                problems.extend(exc.problems)
        for recipient in report.recipients:
            if recipient.name and (problem := header_problem(recipient.name, "a name")):
                problems.append(Problem(where, f"reports.{report.id}.recipients", f"{recipient.email}: the name {problem}"))
    return problems


def compose_problem(project: Project, report: Report, recipient: Recipient, day: date) -> str | None:
    """Why one recipient's message cannot be composed, from its headers, in one line; or None."""
    for key, value, what in (("[email] from", project.email.sender, "an address"),
                             ("[email] reply_to", project.email.reply_to, "an address"),
                             ("the recipient's name", recipient.name, "a name")):
        if value and (problem := header_problem(value, what)):
            return f"{key}: {problem}"
    try:
        found = _subject_problem(project, report, recipient.lang, day)
    except ReporterError as exc:
        return str(exc.problems[0])
    return f"{found.place}: {found.message}" if found else None
