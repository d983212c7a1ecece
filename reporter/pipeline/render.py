"""Templates -> HTML (Jinja2): the one template context of an edition, and the environment.

One layout serves every language: interface strings come from the gettext catalogue, the
editors' narrative from ``narrative.<lang>.html.j2`` (which extends the layout), and every figure
from data through :class:`EditionContext`, so no number is typed twice.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from .charts import Chart
from ..config import Report
from .datasets import Dataset, Row
from ..errors import Problem, TemplateError
from .i18n import Language

log = logging.getLogger(__name__)

SECTIONS = ("summary", "diplomacy", "investment", "transport", "mining", "uranium", "region")
"""Narrative blocks every ``narrative.<lang>.html.j2`` must fill, in reading order."""


@dataclass
class Citations:
    """Numbers sources in the order of the report's sources tables, and records which were cited."""

    sources: dict[str, Row]
    cited: set[str] = field(default_factory=set)

    def number(self, source_id: str) -> int:
        self.cited.add(source_id)
        return list(self.sources).index(source_id) + 1


@dataclass
class EditionContext:
    """Everything a template sees. Built in one place (:func:`context`); fields are documented.

    - ``report``: the report's settings; ``title``: its title in this language.
    - ``lang``: the :class:`~reporter.i18n.Language` (code, Babel locale, catalogue).
    - ``edition_date``: the edition's date; ``edition_date_text``: it, formatted for ``lang``.
    - ``medium``: ``"pdf"`` or ``"html"`` (fonts are linked for WeasyPrint, local in HTML).
    - ``facts``, ``events``, ``sources``: rows by id from the report's datasets.
    - ``tables``: every resource's rows, by dataset then resource name.
    - ``charts``: drawn charts by id; ``sections``: the narrative blocks in order.
    - ``layout``: the layout template the narrative extends.
    """

    report: Report
    title: str
    lang: Language
    edition_date: date
    edition_date_text: str
    medium: str
    facts: dict[str, Row]
    events: dict[str, Row]
    sources: dict[str, Row]
    tables: dict[str, dict[str, tuple[Row, ...]]]
    charts: dict[str, Chart]
    layout: str
    sections: tuple[str, ...] = SECTIONS
    citations: Citations = field(init=False)

    def __post_init__(self) -> None:
        self.citations = Citations(self.sources)

    def cite(self, source_id: str) -> Markup:
        """A numbered citation marker linking to the Sources section."""
        if source_id not in self.sources:
            raise TemplateError(f"unknown source id {source_id!r}")
        n = self.citations.number(source_id)
        return Markup('<a class="cite" href="#src-{id}">[{n}]</a>').format(id=source_id, n=n)

    def _fact(self, fact_id: str) -> Row:
        try:
            return self.facts[fact_id]
        except KeyError:
            raise TemplateError(f"unknown fact id {fact_id!r}") from None

    def fact(self, fact_id: str, cite: bool = True) -> Markup:
        """``более 630 компаний[1]``: qualifier, value and unit in the locale's format, cited."""
        row = self._fact(fact_id)
        text = escape(self.lang.qualified(row["value"], row["unit"], row["qualifier"]))
        value = Markup('<span class="fact" data-fact="{id}">{text}</span>').format(id=fact_id, text=text)
        return value + self.cite(row["source"]) if cite else value

    def value(self, fact_id: str) -> str:
        """Just the number of a fact, in the locale's format, with no qualifier or unit."""
        return self.lang.number(self._fact(fact_id)["value"])

    def event(self, event_id: str, cite: bool = True) -> Markup:
        """The date of an event (``сентябрь 2025 г.``), cited."""
        try:
            row = self.events[event_id]
        except KeyError:
            raise TemplateError(f"unknown event id {event_id!r}") from None
        text = Markup('<span class="date">{}</span>').format(self.lang.date(row["date"]))
        return text + self.cite(row["source"]) if cite else text

    def year(self, item_id: str) -> str:
        """The year of a fact's as-of date or an event's date."""
        row = self.facts.get(item_id) or self.events.get(item_id)
        if row is None:
            raise TemplateError(f"unknown fact or event id {item_id!r}")
        return str(row.get("as_of") or row.get("date"))[:4]

    def date(self, value: date | str) -> str:
        return self.lang.date(value)

    def chart(self, chart_id: str) -> Markup:
        """A chart as an inline SVG image (self-contained) with its caption and sources."""
        try:
            chart = self.charts[chart_id]
        except KeyError:
            raise TemplateError(f"unknown chart id {chart_id!r} (defined: {', '.join(self.charts)})") from None
        data = base64.b64encode(chart.svg).decode("ascii")
        cites = Markup("").join(self.cite(s) for s in sorted(chart.sources, key=list(self.sources).index))
        return Markup(
            '<figure class="chart" id="chart-{id}"><img src="data:image/svg+xml;base64,{data}" alt="{title}">'
            '<figcaption>{title} {cites}</figcaption></figure>'
        ).format(id=chart.id, data=data, title=chart.title, cites=cites)

    def rows(self, resource: str) -> list[Row]:
        """Rows of a resource across the report's datasets, in file order (empty if none has it)."""
        return [row for tables in self.tables.values() for row in tables.get(resource, ())]

    def globals(self) -> dict[str, Any]:
        names = ("fact", "value", "event", "year", "cite", "chart", "date", "rows")
        return {name: getattr(self, name) for name in names} | {
            "ctx": self, "report": self.report, "title": self.title, "lang": self.lang,
            "edition_date": self.edition_date, "edition_date_text": self.edition_date_text,
            "medium": self.medium, "facts": self.facts, "events": self.events,
            "sources": self.sources, "tables": self.tables, "sections": self.sections,
            "layout": self.layout, "number": self.lang.number,
        }


def context(report: Report, lang: Language, edition_date: date, medium: str,
            datasets: list[Dataset], charts: dict[str, Chart]) -> EditionContext:
    """Build the one template context of an edition from plain values."""
    def rows(resource: str) -> dict[str, Row]:
        merged: dict[str, Row] = {}
        for dataset in datasets:
            if resource in dataset.tables:
                merged.update(dataset.tables[resource].by_key("id"))
        return merged

    return EditionContext(
        report=report, title=report.title[lang.code], lang=lang, edition_date=edition_date,
        edition_date_text=lang.date(edition_date), medium=medium,
        facts=rows("facts"), events=rows("events"), sources=rows("sources"),
        tables={d.name: {name: t.rows for name, t in d.tables.items()} for d in datasets},
        charts=charts, layout=report.template,
    )


def css_string(value: str) -> Markup:
    """A CSS string literal. Markup, because HTML escaping inside <style> would corrupt it."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\a ")
    return Markup('"' + text.replace("<", "\\3c ") + '"')


_environments: dict[tuple[Path, str], jinja2.Environment] = {}


def environment(templates_dir: Path, lang: Language) -> jinja2.Environment:
    """A Jinja2 environment per templates folder and language, with the catalogue installed."""
    key = (templates_dir, lang.code)
    if key not in _environments:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates_dir),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.install_gettext_translations(lang.translations, newstyle=True)
        env.filters["css_string"] = css_string
        _environments[key] = env
    return _environments[key]


def _template_problem(exc: Exception, templates_dir: Path) -> Problem:
    """Name the template file and line of a Jinja error, or of the template frame that raised."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return Problem(exc.filename or exc.name or "?", f"line {exc.lineno}", exc.message or str(exc))
    if isinstance(exc, jinja2.TemplateNotFound):
        return Problem(str(templates_dir / exc.name), "", "template not found")
    tb = exc.__traceback__
    place = ("?", "")
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".j2", ".html", ".css")) and Path(filename).is_file():
            place = (filename, f"line {tb.tb_lineno}")
        tb = tb.tb_next
    message = exc.problems[0].message if isinstance(exc, TemplateError) else (
        str(exc) if isinstance(exc, jinja2.TemplateError) else f"{type(exc).__name__}: {exc}")
    return Problem(place[0], place[1], message)


def html(ctx: EditionContext, templates_dir: Path) -> str:
    """Render the edition's narrative (which extends the layout) to an HTML string."""
    env = environment(templates_dir, ctx.lang)
    name = ctx.report.narrative.format(lang=ctx.lang.code) if ctx.report.narrative else ctx.report.template
    try:
        return env.get_template(name).render(ctx.globals())
    except (jinja2.TemplateError, TemplateError) as exc:
        raise TemplateError([_template_problem(exc, templates_dir)]) from exc
    except UnicodeDecodeError as exc:
        raise TemplateError([Problem(name, "", f"template is not valid UTF-8 ({exc.reason})")]) from exc
    except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
        # An expression in a template that fails (1/0, a missing %(name)s): name its line.
        raise TemplateError([_template_problem(exc, templates_dir)]) from exc


def check_template(templates_dir: Path, lang: Language, name: str, required_blocks: tuple[str, ...]) -> list[Problem]:
    """Problems with a template that can be seen without rendering it: syntax and missing blocks."""
    env = environment(templates_dir, lang)
    try:
        template = env.get_template(name)
    except jinja2.TemplateError as exc:
        return [_template_problem(exc, templates_dir)]
    missing = [block for block in required_blocks if block not in template.blocks]
    return [Problem(str(templates_dir / name), "", f"missing {{% block {block} %}}") for block in missing]
