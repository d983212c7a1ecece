"""The archive site: ``output/index.html`` and ``output/<report>/index.html``, every edition listed.

Built from what is on disk (each edition's files, its ``manifest.json`` and ``deliveries.json``)
and what the history says about the runs, so it shows editions the history never saw and runs
that left no files. Static HTML with inline CSS and relative links only: the output folder can be
opened from a disk, copied, or served by any web server, offline. It is rebuilt after each render
and each scheduled run, so it must stay cheap: no WeasyPrint, no matplotlib, one history query per
report.

The pages speak one language, the site's: the first language of the project's first report. Its
strings are the theme's catalogue entries (a project's own catalogue overrides them, as for a brief).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import jinja2
from babel import Locale, UnknownLocaleError

from ..config import FORMATS, Project, Report
from ..errors import Problem, ReporterError, StateError
from ..pipeline import render
from ..pipeline.build import language
from ..pipeline.i18n import N_, Language
from ..pipeline.write import write_atomically
from ..state.history import DeliveryRecord, History, RunRecord
from ..state.records import read_record

log = logging.getLogger(__name__)

INDEX = "index.html"
MANIFEST = "manifest.json"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# What a run's status reads as on the site (msgids; translated where they are printed).
RUN_STATUS = {
    "ok": N_("ok"),
    "failed": N_("failed"),
    "abandoned": N_("abandoned"),
    "running": N_("running"),
    None: N_("not recorded"),
}
# Delivery ledger statuses as the site groups them, in this order.
DELIVERY_STATUS = {
    "sent": N_("sent"),
    "pending": N_("waiting"),
    "sending": N_("waiting"),
    "failed": N_("failed"),
    "rejected": N_("rejected"),
    "unchanged": N_("not sent: unchanged"),
}


@dataclass(frozen=True)
class FileLink:
    lang: str
    format: str
    href: str  # relative to the report's page
    size: int


@dataclass(frozen=True)
class EditionRow:
    """One edition as the site lists it."""

    date: date
    files: tuple[FileLink, ...]
    status: str | None  # the newest run's: ok | failed | abandoned | running; None: not in the history
    kept: bool  # the newest run did not finish well, and the files on disk are from an earlier one
    delivery: tuple[tuple[str, int], ...]  # (label msgid, count), in DELIVERY_STATUS order
    change: str | None  # what changed, in one line, from the manifest
    change_lang: str | None  # that line's language, when it is not the site's

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.lang for f in self.files))

    def files_in(self, lang: str) -> tuple[FileLink, ...]:
        return tuple(f for f in self.files if f.lang == lang)


@dataclass(frozen=True)
class ReportPage:
    id: str
    title: str
    title_lang: str | None  # set when the title is not in the site's language
    editions: tuple[EditionRow, ...]  # newest first

    @property
    def href(self) -> str:
        return f"{quote(self.id)}/{INDEX}"


def site_language(project: Project) -> str:
    """The language of the site's pages: the first language of the project's first report."""
    first = next(iter(project.reports.values()), None)
    return first.languages[0] if first and first.languages else "en"


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """An edition's ``manifest.json``, or None if it has none or it cannot be read.

    The site only shows what the manifest says; a damaged one costs the "what changed" column of
    one edition, never the site, so it is logged and left out.
    """
    path = directory / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s: not read for the archive site (%s)", path, exc)
        return None
    if not isinstance(raw, dict):
        log.warning("%s: not read for the archive site (not a JSON object)", path)
        return None
    return raw


def change_line(manifest: dict[str, Any] | None, lang: str) -> tuple[str | None, str | None]:
    """The manifest's one-line summary of what changed, in ``lang`` if it has it, else in the
    first language it has (then that language is returned too, for the ``lang`` attribute)."""
    changes = manifest.get("changes") if manifest else None
    lines = changes.get("line") if isinstance(changes, dict) else None
    if not isinstance(lines, dict):
        return None, None
    if isinstance(lines.get(lang), str) and lines[lang].strip():
        return lines[lang].strip(), None
    for other, text in lines.items():
        if isinstance(text, str) and text.strip():
            return text.strip(), str(other)
    return None, None


def _files(report: Report, directory: Path) -> tuple[FileLink, ...]:
    """The edition's PDF and HTML files, the report's languages first (then any it no longer has)."""
    pattern = re.compile(rf"^{re.escape(report.id)}\.([A-Za-z0-9_-]+)\.({'|'.join(FORMATS)})$")
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            match = pattern.match(entry.name)
            if match and entry.is_file():
                found.append(FileLink(match[1], match[2], f"{quote(directory.name)}/{quote(entry.name)}",
                                      entry.stat().st_size))
    order = {lang: index for index, lang in enumerate(report.languages)}
    return tuple(sorted(found, key=lambda f: (order.get(f.lang, len(order)), f.lang, FORMATS.index(f.format))))


def _newest_run(runs: list[RunRecord], directory: Path) -> RunRecord | None:
    """The run that speaks for an edition: the newest of its date that wrote into this folder or
    wrote nothing (failed, abandoned, running). Skipped slots made nothing and say nothing, and a
    render sent elsewhere (``--output``) says nothing about these files."""
    for run in runs:  # newest first
        if run.status == "skipped":
            continue
        if not run.artifacts or any(Path(a.path).parent == directory for a in run.artifacts):
            return run
    return None


def _delivery(records: list[DeliveryRecord], directory: Path) -> tuple[tuple[str, int], ...]:
    counts: Counter[str] = Counter(DELIVERY_STATUS.get(r.status, r.status) for r in records)
    if not records:
        # No ledger rows (a lost history, or a folder copied from elsewhere): the edition's own
        # record still says who got it.
        try:
            sent = len(read_record(directory))
        except StateError as exc:
            log.warning("%s", exc)
            sent = 0
        if sent:
            counts[DELIVERY_STATUS["sent"]] = sent
    order = list(dict.fromkeys(DELIVERY_STATUS.values()))
    return tuple(sorted(counts.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))


def report_page(project: Project, report: Report, history: History | None, lang: str) -> ReportPage:
    """Every edition of ``report``, newest first, from the disk and the history."""
    folder = project.output_dir / report.id
    runs: dict[str, list[RunRecord]] = {}
    deliveries: dict[str, list[DeliveryRecord]] = {}
    if history is not None:
        for run in history.runs(report.id, limit=1_000_000):
            runs.setdefault(run.edition_date, []).append(run)
        for record in history.deliveries(report.id):
            deliveries.setdefault(record.edition_date, []).append(record)

    days = set()
    if folder.is_dir():
        days |= {entry.name for entry in os.scandir(folder) if entry.is_dir() and _DAY.match(entry.name)}
    # A run that made nothing (it failed, or was cut short) is part of the record too.
    days |= {day for day, found in runs.items() if any(r.status in ("failed", "abandoned", "running") for r in found)}

    editions = []
    for day in sorted(days, reverse=True):
        try:
            when = date.fromisoformat(day)
        except ValueError:
            continue
        directory = folder / day
        files = _files(report, directory) if directory.is_dir() else ()
        run = _newest_run(runs.get(day, []), directory)
        if not files and (run is None or run.status == "ok"):
            continue  # nothing here, and nothing went wrong: not an edition
        text, text_lang = change_line(read_manifest(directory), lang)
        editions.append(EditionRow(
            date=when, files=files, status=run.status if run else None,
            kept=bool(files) and run is not None and run.status not in ("ok", "running"),
            delivery=_delivery(deliveries.get(day, []), directory), change=text, change_lang=text_lang))
    title = report.title.get(lang)
    title_lang = None
    if not title:
        title_lang, title = next(iter(report.title.items()), (None, report.id))
    return ReportPage(report.id, title, title_lang, tuple(editions))


def language_name(code: str) -> str:
    """A language by its own name ("Русский", "English"), as language menus name them: the reader
    looking for their language finds it in that language."""
    try:
        name = Locale.parse(code).get_display_name(code) or code
    except (ValueError, TypeError, UnknownLocaleError):
        return code
    return name[:1].upper() + name[1:]


def _template_globals(lang: Language) -> dict[str, Any]:
    return {
        "lang": lang,
        "language_name": language_name,
        "run_status": lambda status: lang.gettext(RUN_STATUS.get(status, status or RUN_STATUS[None])),
        "date_text": lambda day: lang.date(day),
    }


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    # Renders, the scheduler and `reporter site` may rebuild at once: one at a time, so the last
    # one writes what it read last. flock on the folder: no lock file to show up in the archive.
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def pages(project: Project, history: History | None) -> dict[Path, str]:
    """The site's pages as text, by path; nothing written."""
    code = site_language(project)
    lang = language(project, code)
    env = render.environment(project.templates_dir, lang)
    values = _template_globals(lang)
    reports = [report_page(project, report, history, code) for report in project.reports.values()]
    out = {project.output_dir / INDEX: env.get_template("site-index.html.j2").render(values | {"reports": reports})}
    for page in reports:
        out[project.output_dir / page.id / INDEX] = env.get_template("site-report.html.j2").render(
            values | {"page": page, "up": f"../{INDEX}"})
    return out


def build_site(project: Project, history: History | None) -> list[Path]:
    """Write ``output/index.html`` and a page per report; return their paths.

    Pages whose text has not changed are not rewritten. Raises a :class:`ReporterError` (a
    template, catalogue or history that cannot be used, a folder that cannot be written).
    """
    start = time.perf_counter()
    output = project.output_dir
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReporterError([Problem(str(output), "", f"cannot create the output folder: {exc.strerror}")]) from None
    with _locked(output):
        try:
            found = pages(project, history)
        except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
            # A project's own site template (it may override the theme's) that fails: name its line.
            raise ReporterError([render.template_problem(exc, project.templates_dir)]) from exc
        taken = [path for path in found if path.is_dir()]
        if taken:
            raise ReporterError([Problem(str(path), "", "is a folder, where the archive site's page goes; "
                                         "move it aside") for path in taken])
        changed = {}
        for path, text in found.items():
            data = text.encode("utf-8")
            try:
                same = path.read_bytes() == data
            except OSError:
                same = False
            if not same:
                changed[path] = data
        write_atomically(changed)
    log.info("archive site: %d page(s), %d rewritten, in %.2f s", len(found), len(changed), time.perf_counter() - start)
    return list(found)
