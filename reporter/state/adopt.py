"""Lost history: notice it, and rebuild it from the editions on disk and their delivery records.

A history that was deleted, moved or set aside because it was damaged looks to SQLite like a new,
empty one. Starting afresh would render and mail again an edition everyone already has. So a
history without any run while ``output/`` holds editions is an error for the commands that send
(:func:`check_not_lost`), and ``reporter adopt`` (:func:`adopt`) records those editions and the
deliveries their ``deliveries.json`` lists, after which everything goes on as before.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from ..config import FORMATS, Project
from ..errors import Problem, StateError
from .history import ArtifactRecord, History
from .records import read_record

log = logging.getLogger(__name__)

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class FoundEdition:
    report: str
    date: date
    directory: Path
    files: tuple[ArtifactRecord, ...]
    written_at: datetime


def editions_on_disk(project: Project) -> list[FoundEdition]:
    """Every ``output/<report>/<YYYY-MM-DD>/`` of a configured report that holds its files."""
    found = []
    for report in project.reports.values():
        folder = project.output_dir / report.id
        if not folder.is_dir():
            continue
        for directory in sorted(folder.iterdir()):
            if not (directory.is_dir() and _DAY.match(directory.name)):
                continue
            try:
                day = date.fromisoformat(directory.name)
            except ValueError:
                continue
            files, newest = [], 0.0
            for lang in report.languages:
                for fmt in FORMATS:
                    path = directory / f"{report.id}.{lang}.{fmt}"
                    if path.is_file():
                        data = path.read_bytes()
                        files.append(ArtifactRecord(str(path), lang, fmt, hashlib.sha256(data).hexdigest(), len(data)))
                        newest = max(newest, path.stat().st_mtime)
            if files:
                found.append(FoundEdition(report.id, day, directory, tuple(files),
                                          datetime.fromtimestamp(newest, timezone.utc)))
    return found


def _adopt_command(project: Project) -> str:
    return f"reporter --config {shlex.quote(str(project.path))} adopt"


def check_not_lost(project: Project, history: History) -> None:
    """Raise :class:`StateError` if the history records no run at all while editions are on disk."""
    if history.has_runs():
        return
    found = _any_edition(project)
    if found is None:
        return
    raise StateError([Problem(
        history.where, "",
        f"the history is empty, but {project.output_dir} holds editions (such as {found}): was the history "
        f"deleted, moved or replaced? Starting afresh could mail them again. To rebuild it from the editions "
        f"and their delivery records, run `{_adopt_command(project)}`; to start afresh instead, move "
        f"{project.output_dir} aside")])


def _any_edition(project: Project) -> Path | None:
    # Cheaper than editions_on_disk: no file is read, the first edition found is enough.
    for report in project.reports.values():
        folder = project.output_dir / report.id
        if folder.is_dir():
            for directory in sorted(folder.iterdir()):
                if _DAY.match(directory.name) and any(directory.glob(f"{report.id}.*.*")):
                    return directory
    return None


@dataclass(frozen=True)
class Adopted:
    editions: int
    deliveries: int
    skipped: int  # editions the history knew already


def adopt(project: Project, history: History, now: datetime) -> Adopted:
    """Record every edition on disk the history does not know, and the deliveries in its record.

    Safe to run again: what the history has is left alone. Messages the record does not list
    get no row, so nothing old is sent by adopting. Each scheduled report's cursor starts now,
    so missed slots before this moment are not caught up.
    """
    editions = deliveries = skipped = 0
    for found in editions_on_disk(project):
        if history.has_edition(found.report, found.date):
            skipped += 1
        else:
            history.adopt_edition(found.report, found.date, found.files, found.written_at, now)
            editions += 1
            log.info("%s %s: adopted %d file(s) from %s", found.report, found.date, len(found.files), found.directory)
        for entry in read_record(found.directory).values():
            added = history.adopt_delivery(
                found.report, found.date, entry.lang, entry.recipient, kind=entry.kind, status="sent",
                attempts=entry.attempts, reply=entry.reply, at=datetime.fromisoformat(entry.sent_at),
                message_id=entry.message_id, sha256=entry.sha256, forced=entry.forced, content=entry.content)
            deliveries += added
    for report in project.reports.values():
        if report.schedule and history.evaluated_until(report.id) is None:
            history.set_evaluated_until(report.id, now)
    return Adopted(editions, deliveries, skipped)
