"""The orchestrator: one edition of one report, from data to files on disk.

Reads like the pipeline: load and validate everything, draw, render every language and format
in memory, and only then write, atomically. A failure anywhere before the write leaves the
output folder exactly as it was.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable

from ..config import Project, Report
from ..errors import DataError, Problem, RenderError, ReporterError
from ..theme import THEME_DIR, find
from . import charts as charts_stage
from . import datasets as datasets_stage
from . import changes as changes_stage
from . import freshness, i18n, manifest, model, pdf, render, write

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
    """A complete edition: every artifact written, with where it went.

    ``unchanged``: nothing was rendered, because the edition on disk was made from the very
    same inputs (its artifacts are the files already there).
    """

    report: str
    date: date
    directory: Path
    artifacts: tuple[Artifact, ...]
    unchanged: bool = False


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
                 knowledge: model.Knowledge, drawn: dict[str, charts_stage.Chart],
                 changes: changes_stage.Changes | None = None) -> tuple[str, render.EditionContext]:
    """One language's HTML for ``medium`` (``pdf``: fonts linked for WeasyPrint; ``html``: local)."""
    ctx = render.context(report, lang, day, medium, knowledge, drawn,
                         font_url=lambda name: font_file(project, name).as_uri(), changes=changes)
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


@dataclass(frozen=True)
class Rendered:
    """An edition rendered in memory: its files, and its manifest (without the outputs' digests,
    which the host that writes the files adds)."""

    files: tuple[RenderedFile, ...]
    manifest: dict


def render_edition(
    project: Project,
    report: Report,
    day: date,
    *,
    languages: tuple[str, ...] | None = None,
    formats: tuple[str, ...] | None = None,
    directory: Path | None = None,
    previous: dict | None = None,
    inputs: manifest.Inputs | None = None,
) -> Rendered:
    """Render every file of one edition in memory; raise a :class:`ReporterError` on failure.

    Writes nothing, so a worker on another machine can render and the scheduler's host write.
    ``previous`` is the manifest of the report's previous edition (for "What changed"), read by
    whoever holds the archive; ``directory``, where the files will go if known, only names them
    in messages.
    """
    languages = languages or report.languages
    formats = formats or report.formats
    unknown = [lang for lang in languages if lang not in report.languages]
    unknown += [fmt for fmt in formats if fmt not in report.formats]
    if unknown:
        raise ReporterError([Problem(str(project.path), f"reports.{report.id}",
                                     f"not configured for this report: {', '.join(unknown)}")])
    inputs = inputs or manifest.inputs(project, report)
    log.info("%s %s: loading %s", report.id, day, ", ".join(report.datasets))
    knowledge = gather(project, report, load_datasets(project, report))
    langs = {code: language(project, code) for code in report.languages}
    facts = changes_stage.snapshot(knowledge, langs)
    ids = changes_stage.compare(previous.get("facts") if previous else None, facts)
    summary = {code: changes_stage.summary(previous.get("edition_date") if previous else None, ids, lang)
               for code, lang in langs.items()}
    old_facts = {fact.fact: fact.as_of for fact in freshness.stale(report, knowledge, day).values()}
    record = manifest.document(report, day, tuple(languages), tuple(formats), inputs, facts,
                               {"previous": previous.get("edition_date") if previous else None, **ids, "line": summary},
                               old_facts)
    if old_facts:
        log.warning("%s %s: %d fact(s) older than the report's max_age: %s", report.id, day, len(old_facts),
                    ", ".join(f"{i} ({as_of})" for i, as_of in old_facts.items()))
    attached = (pdf.Attachment("manifest.json", manifest.dumps(record), "What this edition is made of: its inputs "
                               "and their sha256, the software's versions, its facts", "Data"),
                *(pdf.Attachment(name, path.read_bytes(), f"Input data: {name}") for name, path in manifest.data_files(inputs)))
    created = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)

    files: list[RenderedFile] = []
    for lang_code in languages:
        lang = langs[lang_code]
        log.info("%s %s %s: drawing %d charts", report.id, day, lang_code, len(report.charts))
        drawn = draw_charts(project, report, knowledge, lang)
        section = changes_stage.section(previous, facts, lang)
        for fmt in formats:
            document, _ctx = edition_html(project, report, day, lang, fmt, knowledge, drawn, section)
            name = artifact_name(report.id, lang_code, fmt)
            if fmt == "pdf":
                log.info("%s %s %s: laying out the PDF", report.id, day, lang_code)
                # Derived from the inputs: the same inputs give the same /ID, so the same bytes.
                identifier = hashlib.sha256(f"{inputs.digest}:{lang_code}".encode()).hexdigest()[:32].encode()
                data = pdf.to_pdf(document, project.templates_dir, roots(project), str(directory / name if directory else name),
                                  attachments=attached, identifier=identifier, created=created)
            else:
                data = document.encode("utf-8")
            files.append(RenderedFile(name, lang_code, fmt, data))
    return Rendered(tuple(files), record)


def write_edition(directory: Path, report_id: str, day: date, rendered: Rendered) -> Edition:
    """Write an edition rendered in memory into ``directory``, atomically (see :mod:`.write`),
    with its manifest beside it listing the outputs' digests (a PDF cannot hold its own).

    A partial render (one language) keeps what the earlier manifest said of the other files, as
    long as they were made from the same inputs.
    """
    files = {directory / f.name: f.data for f in rendered.files}
    earlier = manifest.read(directory)
    same = earlier and earlier.get("inputs_digest") == rendered.manifest.get("inputs_digest")
    outputs = dict(earlier.get("outputs", {})) if same else {}
    outputs.update({f.name: hashlib.sha256(f.data).hexdigest() for f in rendered.files})
    files[directory / manifest.NAME] = manifest.dumps({**rendered.manifest, "outputs": dict(sorted(outputs.items()))})
    for stale in write.remove_stale_parts(directory):
        log.info("removed %s, left by an interrupted render", stale)
    write.write_atomically(files)
    artifacts = tuple(
        Artifact(directory / f.name, f.lang, f.format, hashlib.sha256(f.data).hexdigest(), len(f.data))
        for f in rendered.files
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
    force: bool = False,
) -> Edition:
    """Render and write one edition; raise a :class:`ReporterError` and write nothing on failure.

    When the edition on disk was made from exactly these inputs (its manifest says so and its
    files are intact), nothing is rendered, unless ``force``. ``before_write`` runs after
    everything is rendered in memory and before the first file is written; an error it raises
    leaves the output folder untouched.
    """
    root = output_dir or project.output_dir
    directory = edition_dir(root, report.id, day)
    wanted = [(lang, fmt) for lang in (languages or report.languages) for fmt in (formats or report.formats)]
    inputs = manifest.inputs(project, report)
    names = [artifact_name(report.id, lang, fmt) for lang, fmt in wanted]
    if not force and all(lang in report.languages and fmt in report.formats for lang, fmt in wanted) \
            and manifest.unchanged(directory, inputs, names):
        log.info("%s %s: unchanged since it was written (same inputs); nothing to do", report.id, day)
        return Edition(report.id, day, directory, tuple(
            Artifact(directory / name, lang, fmt, manifest.sha256((directory / name).read_bytes()),
                     (directory / name).stat().st_size) for name, (lang, fmt) in zip(names, wanted)), unchanged=True)
    rendered = render_edition(project, report, day, languages=languages, formats=formats, directory=directory,
                              previous=manifest.previous(root, report.id, day), inputs=inputs)
    if before_write:
        before_write()
    return write_edition(directory, report.id, day, rendered)
