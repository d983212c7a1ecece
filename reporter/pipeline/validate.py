"""``reporter validate``: everything a render would check, without writing anything."""

from __future__ import annotations

from datetime import date

from ..config import Project
from ..errors import Problem, ReporterError
from . import charts as charts_stage
from . import i18n, render
from .build import load_datasets


def validate_project(project: Project, day: date = date(2000, 1, 1)) -> None:
    """Load every dataset and catalogue and render every report's HTML in memory.

    Collects the problems of every report and raises one :class:`ReporterError` with all of them.
    The date only fills the template; any date shows the same mistakes.
    """
    problems: list[Problem] = []
    for report in project.reports.values():
        try:
            loaded = load_datasets(project, report)
        except ReporterError as exc:
            problems.extend(exc.problems)
            continue
        by_name = {d.name: d for d in loaded}
        for code in report.languages:
            try:
                lang = i18n.language(code, project.locale_of(code))
            except ReporterError as exc:
                problems.extend(exc.problems)
                continue
            if report.narrative:
                found = render.check_template(project.templates_dir, lang, report.narrative.format(lang=code), render.SECTIONS)
                if found:
                    problems.extend(found)
                    continue
            try:
                drawn = {s.id: charts_stage.draw(s, by_name[s.dataset], lang, project.templates_dir / "fonts") for s in report.charts}
                render.html(render.context(report, lang, day, "html", loaded, drawn), project.templates_dir)
            except ReporterError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ReporterError(list(dict.fromkeys(problems)))
