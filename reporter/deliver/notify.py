"""Failure notices: a short plain-text message to a report's ``on_failure`` addresses.

When a scheduled run of a report fails (its render, or the delivery of its edition, and again
when retry_for runs out with messages still undelivered), the people named in ``on_failure``
are told, in the report's first language: what failed, the error, and the exact command that
retries it. Each notice is queued in the history before it is sent and sent once; one that
could not be sent (the mail server is the problem) is retried with the undelivered editions,
and a delivery notice that is no longer true when its turn comes (the retry delivered
everything) is dropped as ``resolved``.
"""

from __future__ import annotations

import hashlib
import logging
import shlex
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Callable

from ..config import Project, Recipient, Report
from ..errors import ReporterError
from ..pipeline.i18n import N_
from ..state.history import UNDELIVERED, History, NoticeRecord
from .compose import POLICY, sender_domain
from .smtp import FAILED, SENT, Letter, Sleep, SmtpSettings, send

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

RENDER, DELIVERY, EXPIRED = "render", "delivery", "expired"

_WHAT = {RENDER: N_("Scheduled run failed"), DELIVERY: N_("Not delivered"), EXPIRED: N_("Not delivered")}
_RENDER_TEXT = N_("The scheduled run %(slot)s of %(report)s failed: the edition of %(date)s was not made and not sent.")
_DELIVERY_TEXT = N_("The edition of %(date)s of %(report)s did not reach everyone it should.")
_EXPIRED_TEXT = N_("The edition of %(date)s of %(report)s still did not reach everyone when retry_for ran out: "
                   "it is no longer sent automatically.")
_ERROR = N_("Error:")
_AUTOMATIC = N_("Undelivered messages are retried automatically until %(time)s.")
_COMMAND = N_("To retry by hand:")
_WHY = N_("You get this message because your address is in on_failure for %(report)s in %(config)s.")


def retry_command(project: Project, report: Report, day: date, kind: str) -> str:
    """The exact command that does again what failed, for the notice and the log."""
    base = f"reporter --config {shlex.quote(str(project.path))}"
    if kind == RENDER:
        return f"{base} render {report.id} --date {day.isoformat()} --send"
    return f"{base} send {report.id} --date {day.isoformat()}"


def queue(project: Project, report: Report, history: History, *, kind: str, about: str, day: date, error: str,
          now: datetime) -> int:
    """Queue a notice to each ``on_failure`` address, unless this failure was queued before; return how many."""
    added = 0
    for address in report.on_failure:
        added += history.add_notice(report.id, kind, about, address, edition_date=day, lang=report.languages[0],
                                    error=error, now=now)
    if added:
        log.info("%s %s: telling %s (on_failure)", report.id, about, ", ".join(report.on_failure))
    return added


def _message(project: Project, report: Report, notice: NoticeRecord, now: datetime, retry_until: datetime | None,
             msgid: str) -> EmailMessage:
    from ..pipeline import build  # noqa: PLC0415 - Jinja and the charts' imports, only when a notice goes out

    lang = build.language(project, notice.lang)
    day = date.fromisoformat(notice.edition_date)
    title = report.short_title.get(lang.code) or report.title[lang.code]
    named = f"{report.title[lang.code]} ({report.id})"
    lines = []
    if notice.kind == RENDER:
        lines.append(lang.gettext(_RENDER_TEXT) % {"slot": notice.about, "report": named, "date": lang.date(day)})
    else:
        text = _EXPIRED_TEXT if notice.kind == EXPIRED else _DELIVERY_TEXT
        lines.append(lang.gettext(text) % {"date": lang.date(day), "report": named})
    lines += ["", lang.gettext(_ERROR), *(f"  {line}" for line in notice.error.splitlines()), ""]
    if notice.kind == DELIVERY and retry_until is not None and retry_until > now:
        moment = retry_until.astimezone(report.timezone)
        lines += [lang.gettext(_AUTOMATIC) % {"time": f"{moment:%Y-%m-%d %H:%M} ({report.timezone.key})"}, ""]
    lines += [lang.gettext(_COMMAND), f"  {retry_command(project, report, day, notice.kind)}", "",
              "-- ", lang.gettext(_WHY) % {"report": report.id, "config": project.path}]
    message = EmailMessage(policy=POLICY)
    message["Subject"] = f"{lang.gettext(_WHAT[notice.kind])}: {title}, {lang.date(day)}"
    message["From"] = project.email.sender
    message["To"] = notice.recipient
    message["Date"] = format_datetime(now.astimezone(report.timezone))
    message["Message-ID"] = msgid
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(lines) + "\n")
    message["Content-Language"] = lang.code
    return message


def send_notices(project: Project, history: History, *, now: Clock, smtp: SmtpSettings | None,
                 smtp_error: str | None, sleep: Sleep) -> None:
    """Send every queued notice once; those whose window ran out are given up, obsolete ones resolved."""
    queued = history.notices(unsent=True)
    if not queued:
        return
    window = timedelta(seconds=project.email.retry_for)
    letters: list[tuple[Letter, NoticeRecord, Report]] = []
    for notice in queued:
        report = project.reports.get(notice.report)
        moment = now()
        if report is None:
            history.record_notice(notice, status=FAILED, attempts=notice.attempts, now=moment,
                                  reply="the report is no longer in the config")
            continue
        if moment - datetime.fromisoformat(notice.created_at) > window:
            history.record_notice(notice, status=FAILED, attempts=notice.attempts, now=moment,
                                  reply=f"gave up after retry_for: {notice.reply or 'not sent'}")
            continue
        day = date.fromisoformat(notice.edition_date)
        if notice.kind in (DELIVERY, EXPIRED) and not _still_undelivered(history, report, day):
            history.record_notice(notice, status="resolved", attempts=notice.attempts, now=moment,
                                  reply="everyone got the edition before the notice could be sent")
            continue
        if smtp is None or not project.email.sender:
            reason = smtp_error or "[email] from is not set"
            history.record_notice(notice, status="pending", attempts=notice.attempts, reply=reason, now=moment)
            log.error("%s %s: cannot tell %s that it failed: %s", report.id, notice.about, notice.recipient, reason)
            continue
        if not history.claim_notice(notice, moment):
            continue
        written = history.edition_written_at(report.id, day)
        domain = sender_domain(project.email.sender)
        digest = hashlib.sha256(f"{notice.kind}\0{notice.about}\0{notice.recipient}".encode()).hexdigest()[:16]
        msgid = f"<{report.id}.{notice.about.replace(':', '')}.{notice.kind}-failed.{digest}@{domain}>"
        try:
            data = _message(project, report, notice, moment, written + window if written else None, msgid).as_bytes()
        except (ReporterError, ValueError, LookupError) as exc:
            history.record_notice(notice, status=FAILED, attempts=notice.attempts, now=moment,
                                  reply=f"cannot compose the notice: {exc}")
            log.error("%s %s: cannot compose the notice to %s: %s", report.id, notice.about, notice.recipient, exc)
            continue
        letters.append((Letter(Recipient(notice.recipient, "", notice.lang), msgid, data, "", notice.attempts, False),
                        notice, report))
    if not letters:
        return
    by_letter = {id(letter): (notice, report) for letter, notice, report in letters}

    def record(letter: Letter) -> None:
        notice, report = by_letter[id(letter)]
        history.record_notice(notice, status=letter.status, attempts=letter.previous_attempts + letter.attempts,
                              reply=letter.reply or None, now=now(), message_id=letter.message_id)
        if letter.status == SENT:
            log.info("%s %s: told %s that it failed", report.id, notice.about, notice.recipient)

    send([letter for letter, _n, _r in letters], project, smtp, sleep, record, "failure notices")


def _still_undelivered(history: History, report: Report, day: date) -> bool:
    configured = {r.email.lower() for r in report.recipients}
    return any(row.status in (*UNDELIVERED, "rejected") and row.recipient in configured
               for row in history.deliveries(report.id, day))
