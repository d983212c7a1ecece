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
from ..errors import DataError, Problem, RenderError, ReporterError
from ..theme import THEME_DIR, find
from . import charts as charts_stage
from . import datasets as datasets_stage
from . import i18n, model, pdf, render, write

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


def gather(project: Project, report: Report, loaded: list[datasets_stage.Dataset]) -> model.Knowledge:
    """What the report's datasets say, merged and cross-checked for its languages."""
    return model.gather(loaded, report.languages, {lang: project.locale_of(lang) for lang in report.languages})


def language(project: Project, code: str) -> i18n.Language:
    return i18n.language(code, project.locale_of(code), project.locale_dir)


def font_file(project: Project, name: str) -> Path:
    """A font file from the project's ``templates/fonts`` if it overrides it, else the theme's."""
    found = find(f"fonts/{name}", project.templates_dir)
    if found is None:
        raise RenderError([Problem(str(project.templates_dir / "fonts" / name), "", "font file not found "
                                   "(neither in the project's templates/fonts nor in the theme)")])
    return found


def chart_fonts(project: Project) -> list[Path]:
    return [font_file(project, name) for name in charts_stage.FONT_FILES]


def draw_charts(project: Project, report: Report, knowledge: model.Knowledge,
                lang: i18n.Language) -> dict[str, charts_stage.Chart]:
    fonts = chart_fonts(project)
    return {spec.id: charts_stage.draw(spec, knowledge, lang, fonts) for spec in report.charts}


def edition_html(project: Project, report: Report, day: date, lang: i18n.Language, medium: str,
                 knowledge: model.Knowledge, drawn: dict[str, charts_stage.Chart]) -> tuple[str, render.EditionContext]:
    """One language's HTML for ``medium`` (``pdf``: fonts linked for WeasyPrint; ``html``: local)."""
    ctx = render.context(report, lang, day, medium, knowledge, drawn,
                         font_url=lambda name: font_file(project, name).as_uri())
    return render.html(ctx, project.templates_dir), ctx


def roots(project: Project) -> tuple[Path, ...]:
    """The folders a render may read: the project's templates and data, and the theme."""
    return (project.templates_dir, project.data_dir, THEME_DIR)


@dataclass(frozen=True)
class RenderedFile:
    """One file of an edition rendered in memory and not yet written: what a remote worker sends back."""

    name: str
    lang: str
    format: str
    data: bytes


def render_edition(
    project: Project,
    report: Report,
    day: date,
    *,
    languages: tuple[str, ...] | None = None,
    formats: tuple[str, ...] | None = None,
    directory: Path | None = None,
) -> tuple[RenderedFile, ...]:
    """Render every file of one edition in memory; raise a :class:`ReporterError` on failure.

    Writes nothing, so a worker on another machine can render and the scheduler's host write.
    ``directory``, where the files will go if known, only names them in messages.
    """
    languages = languages or report.languages
    formats = formats or report.formats
    unknown = [lang for lang in languages if lang not in report.languages]
    unknown += [fmt for fmt in formats if fmt not in report.formats]
    if unknown:
        raise ReporterError([Problem(str(project.path), f"reports.{report.id}",
                                     f"not configured for this report: {', '.join(unknown)}")])
    log.info("%s %s: loading %s", report.id, day, ", ".join(report.datasets))
    knowledge = gather(project, report, load_datasets(project, report))

    files: list[RenderedFile] = []
    for lang_code in languages:
        lang = language(project, lang_code)
        log.info("%s %s %s: drawing %d charts", report.id, day, lang_code, len(report.charts))
        drawn = draw_charts(project, report, knowledge, lang)
        for fmt in formats:
            document, _ctx = edition_html(project, report, day, lang, fmt, knowledge, drawn)
            name = artifact_name(report.id, lang_code, fmt)
            if fmt == "pdf":
                log.info("%s %s %s: laying out the PDF", report.id, day, lang_code)
                data = pdf.to_pdf(document, project.templates_dir, roots(project), str(directory / name if directory else name))
            else:
                data = document.encode("utf-8")
            files.append(RenderedFile(name, lang_code, fmt, data))
    return tuple(files)


def write_edition(directory: Path, report_id: str, day: date, files: tuple[RenderedFile, ...]) -> Edition:
    """Write an edition rendered in memory into ``directory``, atomically (see :mod:`.write`)."""
    for stale in write.remove_stale_parts(directory):
        log.info("removed %s, left by an interrupted render", stale)
    write.write_atomically({directory / f.name: f.data for f in files})
    artifacts = tuple(
        Artifact(directory / f.name, f.lang, f.format, hashlib.sha256(f.data).hexdigest(), len(f.data)) for f in files
    )
    for artifact in artifacts:
        log.info("wrote %s (%d KB)", artifact.path, artifact.size // 1024)
    return Edition(report_id, day, directory, artifacts)


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
    directory = edition_dir(output_dir or project.output_dir, report.id, day)
    files = render_edition(project, report, day, languages=languages, formats=formats, directory=directory)
    if before_write:
        before_write()
    return write_edition(directory, report.id, day, files)
