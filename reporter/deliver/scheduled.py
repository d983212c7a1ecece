"""Delivery for the scheduler: after each render, retries within a window, and failure notices.

A scheduled edition with recipients has a ``pending`` ledger row for each of them from the
moment it is written (the history does that with the run's artifacts). From then on a row can
only end ``sent``, ``unchanged``, ``rejected`` (a 5xx for that address), or ``failed``; a
``pending`` or ``failed`` row is sent by every later ``run``/``run-due`` until it goes through
or ``[email] retry_for`` has passed since the edition was written, and then it stays ``failed``
("gave up") for ``reporter status`` and ``history`` to show. Nothing here raises: what stops a
delivery is logged, written on the rows, and returned as a summary for the slot's line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable, Sequence

from ..config import Project, Report
from ..errors import Problem, ReporterError
from ..state.history import UNDELIVERED, DeliveryRecord, History
from . import notify
from .delivery import DeliveryResult, deliver
from .smtp import Sleep, SmtpSettings, smtp_settings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

GAVE_UP = "gave up"


@dataclass(frozen=True)
class Undelivered:
    """A delivery that could not start at all (no SMTP settings, a PDF that changed): all still pending."""

    report: str
    date: date
    reason: str  # short, for the slot's line
    pending: int
    detail: str = ""  # every problem, one a line, for the rows and the failure notice
    ok: bool = False

    @property
    def summary(self) -> str:
        return f"not delivered ({self.reason}; {self.pending} pending)"


@dataclass(frozen=True)
class GaveUp:
    """Messages still undelivered when ``retry_for`` ran out: they stay ``failed``; a person must act."""

    report: str
    date: date
    count: int
    window: str
    ok: bool = False

    @property
    def summary(self) -> str:
        return f"gave up ({self.count} not delivered within retry_for, {self.window}; `reporter send {self.report} --date {self.date.isoformat()}` sends them)"


def brief(problem: Problem) -> str:
    """``REPORTER_SMTP_URL not set``: a problem in a few words, for a one-line summary."""
    head = problem.message.split(": ")[0]
    if problem.place:
        return f"{problem.place} {head}"
    if problem.file.isupper():  # an environment variable
        return f"{problem.file} {head}"
    return f"{Path(problem.file).name} {head}".strip()


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if value >= size and value % size == 0:
            return f"{value / size:g} {unit}"
    return f"{value:g} s"


class ScheduledDelivery:
    """What ``run`` and ``run-due`` do about email: deliver, retry, give up, and tell ``on_failure``."""

    def __init__(self, project: Project, history: History, *, now: Clock, sleep: Sleep = time.sleep) -> None:
        self.project = project
        self.history = history
        self.now = now
        self.sleep = sleep

    @staticmethod
    def recipients_of(report: Report) -> list[tuple[str, str, str]]:
        """(language, address, kind) of everyone who must get an edition: the rows written with it."""
        return [(r.lang, r.email, r.kind) for r in report.recipients]

    def after_render(self, report: Report, day: date) -> DeliveryResult | Undelivered | None:
        """Deliver a freshly written edition; None if the report has no recipients."""
        if not report.recipients:
            return None
        result = self._deliver(report, day)
        if not result.ok:
            self._failed_delivery(report, day, result)
        self._send_notices()
        return result

    def render_failed(self, report: Report, slot: str, day: date, error: str) -> None:
        """Tell ``on_failure`` that a scheduled render failed (once per slot)."""
        if report.on_failure:
            notify.queue(self.project, report, self.history, kind=notify.RENDER, about=slot, day=day,
                         error=error, now=self.now())
            self._send_notices()

    def retry(self) -> list[tuple[str, date, DeliveryResult | Undelivered | GaveUp]]:
        """Send what is still undelivered within the window; give up on the rest. One result per edition tried."""
        window = timedelta(seconds=self.project.email.retry_for)
        groups: dict[tuple[str, str], list[DeliveryRecord]] = {}
        for row in self.history.undelivered():
            groups.setdefault((row.report, row.edition_date), []).append(row)
        results = []
        for (report_id, day_text), rows in groups.items():
            report = self.project.reports.get(report_id)
            configured = {r.email.lower() for r in report.recipients} if report else set()
            rows = [row for row in rows if row.recipient in configured]
            if not rows or report is None:
                continue  # a recipient no longer configured keeps their row, for history to show
            day = date.fromisoformat(day_text)
            written = self.history.edition_written_at(report.id, day)
            if written is None or self.now() - written > window:
                if gave_up := self._give_up(report, day, rows):
                    results.append((report.id, day, gave_up))
                continue
            wanted = {row.recipient for row in rows}
            if any(row.status == "sending" for row in rows):
                # A process died mid-delivery: finish it for everyone it had not reached either.
                known = {row.recipient for row in self.history.deliveries(report.id, day)}
                wanted |= configured - known
                log.info("%s %s: finishing a delivery that was interrupted", report.id, day,
                         extra={"fields": {"event": "resume-delivery", "report": report.id, "edition_date": day_text}})
            targets = [r.email for r in report.recipients if r.email.lower() in wanted]  # in the config's order
            log.info("%s %s: retrying the delivery to %d recipient(s)", report.id, day, len(targets),
                     extra={"fields": {"event": "retry-delivery", "report": report.id, "edition_date": day_text}})
            result = self._deliver(report, day, to=targets)
            results.append((report.id, day, result))
            if not result.ok:
                self._failed_delivery(report, day, result)
        self._send_notices()
        return results

    # --- inside ----------------------------------------------------------------------------

    def _smtp(self) -> tuple[SmtpSettings | None, str | None]:
        try:
            return smtp_settings(timeout=self.project.email.reply_timeout,
                                 connect_timeout=self.project.email.connect_timeout), None
        except ReporterError as exc:
            return None, "; ".join(str(p) for p in exc.problems)

    def _deliver(self, report: Report, day: date, to: Sequence[str] = ()) -> DeliveryResult | Undelivered:
        label = f"{report.id} {day.isoformat()}"
        try:
            return deliver(self.project, report, day, self.history, now=self.now, to=to, sleep=self.sleep)
        except ReporterError as exc:
            for problem in exc.problems:
                log.error("%s: not delivered: %s", label, problem)
            reason, detail = brief(exc.problems[0]), "\n".join(str(p) for p in exc.problems)
        except Exception as exc:  # noqa: BLE001 - a bug in delivery must not stop the scheduler or other reports
            log.exception("%s: delivery failed", label)
            reason, detail = "internal error, see the log", f"internal error: {exc!r}"
        wanted = {a.lower() for a in to} or {r.email.lower() for r in report.recipients}
        rows = [row for row in self.history.deliveries(report.id, day) if row.recipient in wanted]
        waiting = [(row.lang, row.recipient) for row in rows if row.status in UNDELIVERED]
        # The reason goes on the rows, so that `history` says why they are still pending.
        self.history.note_undelivered(report.id, day, waiting, detail.replace("\n", "; "), self.now())
        return Undelivered(report.id, day, reason, len(waiting), detail)

    def _failed_delivery(self, report: Report, day: date, result: DeliveryResult | Undelivered) -> None:
        if not report.on_failure:
            return
        if isinstance(result, Undelivered):
            error = result.detail or result.summary
        else:
            error = "\n".join(f"{o.recipient.email}: {o.describe()}" for o in result.outcomes if not o.ok)
        notify.queue(self.project, report, self.history, kind=notify.DELIVERY, about=day.isoformat(), day=day,
                     error=error, now=self.now())

    def _give_up(self, report: Report, day: date, rows: list[DeliveryRecord]) -> GaveUp | None:
        window = _seconds(self.project.email.retry_for)
        fresh = [row for row in rows if not (row.status == "failed" and (row.reply or "").startswith(GAVE_UP))]
        for row in fresh:
            self.history.note_undelivered(report.id, day, [(row.lang, row.recipient)],
                                          f"{GAVE_UP} after retry_for ({window}): {row.reply or 'never sent'}",
                                          self.now(), status="failed")
        if fresh and report.on_failure:
            notify.queue(self.project, report, self.history, kind=notify.EXPIRED, about=day.isoformat(), day=day,
                         error="\n".join(f"{row.recipient}: {row.reply or 'never sent'}" for row in _in_order(report, fresh)),
                         now=self.now())
        if fresh:
            log.error("%s %s: gave up on %d undelivered message(s): retry_for (%s) has passed since the edition was "
                      "written; `reporter send %s --date %s` sends them by hand", report.id, day, len(fresh), window,
                      report.id, day, extra={"fields": {"event": "gave-up", "report": report.id,
                                                        "edition_date": day.isoformat()}})
            return GaveUp(report.id, day, len(fresh), window)
        return None

    def _send_notices(self) -> None:
        smtp, error = self._smtp()
        try:
            notify.send_notices(self.project, self.history, now=self.now, smtp=smtp, smtp_error=error, sleep=self.sleep)
        except ReporterError as exc:
            log.error("failure notices not sent: %s", exc)
        except Exception:  # noqa: BLE001 - telling about a failure must not become one
            log.exception("failure notices not sent")


def _in_order(report: Report, rows: list[DeliveryRecord]) -> list[DeliveryRecord]:
    """Rows in the order the config lists their recipients."""
    order = {r.email.lower(): i for i, r in enumerate(report.recipients)}
    return sorted(rows, key=lambda row: order.get(row.recipient, len(order)))
