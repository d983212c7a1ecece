"""The orchestrator: one edition of one report, from data to files on disk.

Reads like the pipeline: load and validate everything, draw, render every language and format
in memory, and only then write, atomically. A failure anywhere before the write leaves the
output folder exactly as it was.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Callable

from ..config import Project, Report
from ..errors import DataError, Problem, ReporterError
from . import charts as charts_stage
from . import datasets as datasets_stage
from . import i18n, pdf, render, write

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Artifact:
    """One written file of an edition."""

    path: Path
    lang: str
    format: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Edition:
    """A complete edition: every artifact written, with where it went."""

    report: str
    date: date
    directory: Path
    artifacts: tuple[Artifact, ...]


def edition_dir(output_dir: Path, report_id: str, day: date) -> Path:
    return output_dir / report_id / day.isoformat()


def artifact_name(report_id: str, lang: str, fmt: str) -> str:
    return f"{report_id}.{lang}.{fmt}"


def load_datasets(project: Project, report: Report) -> list[datasets_stage.Dataset]:
    """Load every dataset of a report, collecting the problems of all of them."""
    loaded, problems = [], []
    for name in report.datasets:
        try:
            loaded.append(datasets_stage.load(project.data_dir, name))
        except DataError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DataError(problems)
    return loaded


def build_edition(
    project: Project,
    report: Report,
    day: date,
    *,
    languages: tuple[str, ...] | None = None,
    formats: tuple[str, ...] | None = None,
    output_dir: Path | None = None,
    before_write: Callable[[], object] | None = None,
) -> Edition:
    """Render and write one edition; raise a :class:`ReporterError` and write nothing on failure.

    ``before_write`` runs after everything is rendered in memory and before the first file is
    written; an error it raises leaves the output folder untouched.
    """
    languages = languages or report.languages
    formats = formats or report.formats
    unknown = [lang for lang in languages if lang not in report.languages]
    unknown += [fmt for fmt in formats if fmt not in report.formats]
    if unknown:
        raise ReporterError([Problem(str(project.path), f"reports.{report.id}",
                                     f"not configured for this report: {', '.join(unknown)}")])
    directory = edition_dir(output_dir or project.output_dir, report.id, day)
    log.info("%s %s: loading %s", report.id, day, ", ".join(report.datasets))
    loaded = load_datasets(project, report)
    by_name = {d.name: d for d in loaded}
    fonts_dir = project.templates_dir / "fonts"
    roots = (project.templates_dir, project.data_dir)

    files: dict[Path, bytes] = {}
    meta: dict[Path, tuple[str, str]] = {}
    for lang_code in languages:
        lang = i18n.language(lang_code, project.locale_of(lang_code))
        log.info("%s %s %s: drawing %d charts", report.id, day, lang_code, len(report.charts))
        drawn = {spec.id: charts_stage.draw(spec, by_name[spec.dataset], lang, fonts_dir) for spec in report.charts}
        for fmt in formats:
            ctx = render.context(report, lang, day, fmt, loaded, drawn)
            document = render.html(ctx, project.templates_dir)
            target = directory / artifact_name(report.id, lang_code, fmt)
            if fmt == "pdf":
                log.info("%s %s %s: laying out the PDF", report.id, day, lang_code)
                files[target] = pdf.to_pdf(document, project.templates_dir, roots, str(target))
            else:
                files[target] = document.encode("utf-8")
            meta[target] = (lang_code, fmt)

    if before_write:
        before_write()
    for stale in write.remove_stale_parts(directory):
        log.info("removed %s, left by an interrupted render", stale)
    write.write_atomically(files)
    artifacts = tuple(
        Artifact(path, *meta[path], hashlib.sha256(data).hexdigest(), len(data)) for path, data in files.items()
    )
    for artifact in artifacts:
        log.info("wrote %s (%d KB)", artifact.path, artifact.size // 1024)
    return Edition(report.id, day, directory, artifacts)
