"""``reporter validate``: everything a render would check, and what a render would lose silently.

Renders every report's HTML in every language in memory (the date only fills the templates; any
date shows the same mistakes), then checks what a render alone would not complain about:

- charts and tables declared but never placed;
- sections declared but empty in a language, or filled in one language and not another;
- interface strings untranslated or fuzzy in a report's language;
- a fact cited in one language's narrative and not in another's (bilingual parity);
- key figures that name no fact;
- charts whose numbers cite no source, datasets that no report uses yet, and facts older than
  their report's ``max_age`` today (warnings).

Problems are collected across every report and raised together; warnings are returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from ..config import Project, Report
from ..errors import Problem, ReporterError
from . import catalogues
from .build import draw_charts, edition_html, gather, language, load_datasets
from .freshness import stale


@dataclass
class Findings:
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def _check_report(project: Project, report: Report, day: date, found: Findings, today: date | None) -> None:
    where = str(project.path)
    key = f"reports.{report.id}"
    try:
        knowledge = gather(project, report, load_datasets(project, report))
    except ReporterError as exc:
        found.problems.extend(exc.problems)
        return
    if report.key_figures:
        for index, fact_id in enumerate(report.key_figures):
            if fact_id not in knowledge.facts:
                found.problems.append(Problem(where, f"{key}.key_figures[{index}]", f"no fact {fact_id!r} in the report's datasets"))
    if today is not None:
        for item in stale(report, knowledge, today).values():
            fact = knowledge.facts[item.fact]
            found.warnings.append(fact.place.problem("as_of", f"{item.fact!r} is as of {item.as_of}, older than "
                                                     f"the report's max_age ({item.limit_days} days) on {today}"
                                                     + (": the report will not deliver it (stale = \"refuse\")"
                                                        if report.stale == "refuse" else "")))
    texts: dict[str, dict[str, str]] = {}
    cited: dict[str, set[str]] = {}
    for code in report.languages:
        try:
            lang = language(project, code)
            drawn = draw_charts(project, report, knowledge, lang)
            _html, ctx = edition_html(project, report, day, lang, "html", knowledge, drawn)
        except ReporterError as exc:
            found.problems.extend(exc.problems)
            continue
        narrative = str(project.templates_dir / report.narrative_for(code))
        for spec in report.charts:
            if spec.id not in ctx.placed_charts:
                found.problems.append(Problem(where, f"{key}.charts.{spec.id}", f"declared but never placed in the {code} "
                                              f"edition: add {{{{ chart(\"{spec.id}\") }}}} to the narrative, or "
                                              f"charts = [\"{spec.id}\"] to a section"))
            elif not drawn[spec.id].sources:
                found.warnings.append(Problem(where, f"{key}.charts.{spec.id}", "its numbers cite no source: the "
                                              "caption says so (add a 'source' column, or draw it from facts)"))
        for spec in report.tables:
            if spec.id not in ctx.placed_tables:
                found.problems.append(Problem(where, f"{key}.tables.{spec.id}", f"declared but never placed in the {code} "
                                              f"edition: add {{{{ table(\"{spec.id}\") }}}} to the narrative, or "
                                              f"tables = [\"{spec.id}\"] to a section"))
        texts[code] = {name: str(html).strip() for name, html in ctx.blocks.items()}
        cited[code] = set(ctx.narrative_facts)
        for spec in report.sections:
            if not texts[code].get(spec.id) and not (spec.charts or spec.tables):
                found.problems.append(Problem(narrative, "", f"section {spec.id!r} is empty in {code}: fill "
                                              f"{{% block {spec.id} %}}, or place a chart or table in it"))
    if len(texts) > 1:
        for block in sorted({name for blocks in texts.values() for name in blocks} | {s.id for s in report.sections} | {"summary"}):
            filled = sorted(code for code, blocks in texts.items() if blocks.get(block))
            if filled and len(filled) < len(texts):
                empty = sorted(set(texts) - set(filled))
                found.problems.append(Problem(str(project.templates_dir / report.narrative_for(empty[0])), "",
                                              f"block {block!r} is filled in {', '.join(filled)} but empty in "
                                              f"{', '.join(empty)}: every edition says the same"))
    # Bilingual parity: the editions of one date cite the same facts, whatever their language.
    for fact_id in sorted(set().union(*cited.values()) if cited else ()):
        missing = sorted(code for code, facts in cited.items() if fact_id not in facts)
        if missing:
            having = sorted(set(cited) - set(missing))
            found.problems.append(Problem(str(project.templates_dir / report.narrative_for(missing[0])), "",
                                          f"fact {fact_id!r} is cited in {', '.join(having)} but not in "
                                          f"{', '.join(missing)}: every edition gives the same figures"))
    found.problems.extend(catalogues.problems(project, report))


def validate_project(project: Project, day: date = date(2000, 1, 1), today: date | None = None) -> list[Problem]:
    """Check every report; raise one :class:`ReporterError` with every problem; return warnings.

    ``today`` (the clock's date) is what stale facts are measured against; without it, none are.
    """
    found = Findings()
    for report in project.reports.values():
        _check_report(project, report, day, found, today)
    used = {name for report in project.reports.values() for name in report.datasets}
    if project.data_dir.is_dir():
        for folder in sorted(project.data_dir.iterdir()):
            if (folder / "datapackage.json").is_file() and folder.name not in used:
                found.warnings.append(Problem(str(folder), "", "no report uses this dataset yet "
                                              "(add it to a report's datasets)"))
    if found.problems:
        raise ReporterError(list(dict.fromkeys(found.problems)))
    return found.warnings
