"""Templates -> HTML (Jinja2): the one template context of an edition, and its environment.

A report's shape is data (:class:`~reporter.config.Report`): its sections, charts, tables and key
figures. Its narrative, one file per language, is a set of blocks named after the sections
(``{% block summary %}``, ``{% block <section id> %}``); each block is rendered on its own, then
one shared layout (``brief.html.j2`` from the theme, or a project's own that extends it) places
the masthead, summary, key figures, the sections in order with their charts and tables, the
timeline, the sources and the colophon.

Templates are written by editors, not developers: they run in Jinja's immutable sandbox, and
every template file must resolve, symlinks included, inside the project's templates folder or
the theme. Every figure comes from data through the helpers of :class:`EditionContext`, so no
number is typed twice; an unknown id is collected with its template and line, and all of them
are reported together.
"""

from __future__ import annotations

import base64
import logging
import sys
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from ..config import Report, TableSpec
from ..errors import Problem, TemplateError
from ..theme import confined, search_path
from .changes import Changes
from .charts import Chart
from .freshness import Stale, stale
from .i18n import N_, Language
from .model import Fact, Knowledge
from .values import NBSP, WORD_JOINER, number, qualified, quantity

log = logging.getLogger(__name__)

SUMMARY = "summary"
"""The narrative block the layout prints under the masthead, before the key figures."""


@dataclass(frozen=True)
class Section:
    """A section as the layout places it: id, heading in this language, narrative HTML, and the
    charts and tables its config places after the text."""

    id: str
    title: str
    html: Markup
    charts: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()


def _template_place() -> tuple[str, str]:
    """The template file and line being rendered right now (for messages about an id in it)."""
    frame = sys._getframe(1)
    while frame is not None:
        template = frame.f_globals.get("__jinja_template__")
        if template is not None:
            return template.filename or template.name or "?", f"line {template.get_corresponding_lineno(frame.f_lineno)}"
        frame = frame.f_back
    return "?", ""


@dataclass
class EditionContext:
    """Everything a template sees; built in one place (:func:`context`).

    Helpers (callable from any template):

    - ``fact(id, cite=True)``: a figure with its qualifier and unit, and its citation mark;
    - ``value(id)``: just the number; ``label(id)``: the fact's label in this language;
    - ``event(id, cite=True)``: an event's date, cited; ``year(id)``: the year of a fact or event;
    - ``date(value)``: a full or partial ISO date in this language;
    - ``cite(source_id)``: a numbered citation mark linking to the sources list;
    - ``chart(id)``, ``table(id)``: place a declared chart or table here;
    - ``rows(resource)``: rows of any resource of the report's datasets, for loops of your own;
    - ``number(x)``, ``quantity(x, unit_id)``: format a number, or a number with a declared unit.

    Variables: ``report``, ``title``, ``lang`` (``lang.code``), ``edition_date``,
    ``edition_date_text``, ``medium`` (``pdf`` or ``html``), ``facts``, ``events``, ``sources``,
    ``key_figures``, ``sections``, ``summary``, ``timeline``, ``timeline_chart``.
    """

    report: Report
    lang: Language
    edition_date: date
    medium: str
    knowledge: Knowledge
    charts: dict[str, Chart]
    font_url: Callable[[str], str]
    changes: Changes | None = None
    stale: dict[str, Stale] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    placed_charts: set[str] = field(default_factory=set)
    chart_order: list[str] = field(default_factory=list)  # placed charts, in reading order
    placed_tables: set[str] = field(default_factory=set)
    cited: set[str] = field(default_factory=set)
    cited_facts: list[str] = field(default_factory=list)  # in the order the text cites them
    narrative_facts: list[str] = field(default_factory=list)  # those the narrative cites
    blocks: dict[str, Markup] = field(default_factory=dict)  # the narrative's, once rendered

    @property
    def title(self) -> str:
        return self.report.title[self.lang.code]

    # --- ids that may be wrong: collected with their place, reported together -----------

    def _missing(self, what: str, item_id: str, known: Any) -> Markup:
        file, place = _template_place()
        names = ", ".join(list(known)[:12]) or "none"
        self.problems.append(Problem(file, place, f"unknown {what} {item_id!r} (known: {names})"))
        return Markup('<span class="missing">?</span>')

    def _fact(self, fact_id: str) -> Fact | None:
        return self.knowledge.facts.get(fact_id)

    # --- helpers -----------------------------------------------------------------------

    def cite(self, source_id: str) -> Markup:
        """A numbered citation mark, glued to the word before it (no line break between)."""
        if source_id not in self.knowledge.sources:
            return self._missing("source", source_id, self.knowledge.sources)
        self.cited.add(source_id)
        n = list(self.knowledge.sources).index(source_id) + 1
        return Markup(WORD_JOINER) + Markup('<a class="cite" href="#src-{id}">[{n}]</a>').format(id=source_id, n=n)

    def fact(self, fact_id: str, cite: bool = True) -> Markup:
        """``более 630 компаний[1]``: qualifier, value (or range) and unit, unbreakable, cited."""
        row = self._fact(fact_id)
        if row is None:
            return self._missing("fact", fact_id, self.knowledge.facts)
        text = qualified(row.value, row.unit, row.qualifier, self.lang, upper=row.upper)
        value = Markup('<span class="fact" data-fact="{id}">{text}</span>').format(id=fact_id, text=text)
        self.cited_facts.append(fact_id)
        return value + self.stale_mark(fact_id) + (self.cite(row.source) if cite else Markup(""))

    def stale_mark(self, fact_id: str) -> Markup:
        """† after a fact older than the report's limit at the edition date (the colophon says so)."""
        if fact_id not in self.stale:
            return Markup("")
        item = self.stale[fact_id]
        title = self.lang.gettext(N_("as of %(date)s: older than the limit for this brief")) % {"date": self.lang.date(item.as_of)}
        return Markup(WORD_JOINER) + Markup('<span class="stale" title="{}">†</span>').format(title)

    def value(self, fact_id: str) -> str:
        """Just the number of a fact, exactly as written, in the locale's format."""
        row = self._fact(fact_id)
        return self._missing("fact", fact_id, self.knowledge.facts) if row is None else number(row.value, self.lang)

    def label(self, fact_id: str) -> str:
        row = self._fact(fact_id)
        return self._missing("fact", fact_id, self.knowledge.facts) if row is None else row.labels[self.lang.code]

    def event(self, event_id: str, cite: bool = True) -> Markup:
        """The date of an event (``сентябрь 2025 г.``), cited."""
        row = self.knowledge.events.get(event_id)
        if row is None:
            return self._missing("event", event_id, self.knowledge.events)
        text = Markup('<span class="date">{}</span>').format(self.lang.date(row.date).replace(" ", NBSP))
        return text + self.cite(row.source) if cite else text

    def year(self, item_id: str) -> str:
        """The year of a fact's as-of date or an event's date."""
        fact, event = self._fact(item_id), self.knowledge.events.get(item_id)
        if fact is None and event is None:
            return self._missing("fact or event", item_id, [*self.knowledge.facts, *self.knowledge.events])
        return (fact.as_of if fact else event.date)[:4]

    def date(self, value: date | str) -> str:
        return self.lang.date(value).replace(" ", NBSP)

    def number(self, value: Any) -> str:
        return number(value, self.lang)

    def quantity(self, value: Any, unit_id: str = "") -> str:
        unit = self.knowledge.units.get(unit_id) if unit_id else None
        if unit_id and unit is None:
            return self._missing("unit", unit_id, self.knowledge.units)
        return quantity(value, unit, self.lang)

    def rows(self, resource: str) -> list[dict[str, Any]]:
        """Rows of a resource across the report's datasets, in file order (empty if none has it)."""
        return self.knowledge.rows(resource)

    def _cites(self, sources: tuple[str, ...]) -> Markup:
        order = list(self.knowledge.sources)
        known = sorted((s for s in sources if s in self.knowledge.sources), key=order.index)
        if not known:
            return Markup('<span class="unsourced">({})</span>').format(self.lang.gettext(N_("source not given")))
        return Markup("").join(self.cite(s) for s in known)

    def chart(self, chart_id: str) -> Markup:
        """A chart as an inline SVG image (self-contained), captioned with its title and sources.

        Its text alternative carries its data: the image's alt text says what it shows, value by
        value, and its numbers follow as a real table (in HTML a collapsible block under the
        chart; in the PDF, the "Data behind the charts" section the layout adds).
        """
        chart = self.charts.get(chart_id)
        if chart is None:
            return self._missing("chart", chart_id, self.charts)
        if chart_id not in self.placed_charts:
            self.chart_order.append(chart_id)
        self.placed_charts.add(chart_id)
        data = base64.b64encode(chart.svg).decode("ascii")
        table = Markup("")
        if self.medium == "html" and chart.kind != "timeline":
            table = Markup('<details class="chart-data"><summary>{}</summary>{}</details>').format(
                self.lang.gettext(N_("The chart's numbers")), self.chart_table(chart_id))
        return Markup(
            '<figure class="chart chart-{kind}" id="chart-{id}"><img src="data:image/svg+xml;base64,{data}" alt="{alt}">'
            '<figcaption>{title} {cites}</figcaption></figure>{table}'
        ).format(kind=chart.kind, id=chart.id, data=data, alt=self.alt(chart), title=chart.title,
                 cites=self._cites(chart.sources), table=table)

    def alt(self, chart: Chart) -> str:
        """The chart in words: its title, then each of its values (the first twelve)."""
        if chart.kind == "timeline":
            return self.lang.gettext(N_("%(title)s: %(num)s dated events, numbered as in the list below")) % {
                "title": chart.title, "num": len(chart.rows) - 1}
        head, *rows = chart.rows
        parts = ["; ".join(" ".join(cell for cell in row if cell) for row in rows[:12])]
        if len(rows) > 12:
            parts.append(self.lang.gettext(N_("and %(num)s more in the table")) % {"num": len(rows) - 12})
        return f"{chart.title}: " + " ".join(parts)

    def chart_table(self, chart_id: str) -> Markup:
        """The chart's numbers as a table: a heading row, then one row per bar, point or period."""
        chart = self.charts[chart_id]
        head, *rows = chart.rows
        header = Markup("").join(Markup('<th scope="col">{}</th>').format(cell) for cell in head)
        body = Markup("").join(
            Markup("<tr>{}</tr>").format(Markup('<th scope="row">{}</th>').format(row[0]) + Markup("").join(
                Markup('<td class="num">{}</td>').format(cell) for cell in row[1:]))
            for row in rows)
        return Markup('<table class="data chart-table"><caption>{}</caption><thead><tr>{}</tr></thead>'
                      '<tbody>{}</tbody></table>').format(chart.title, header, body)

    def table(self, table_id: str) -> Markup:
        """A declared table: its rows (filtered by ``where``), columns in this language, cited."""
        spec = next((t for t in self.report.tables if t.id == table_id), None)
        if spec is None:
            return self._missing("table", table_id, [t.id for t in self.report.tables])
        self.placed_tables.add(table_id)
        return _table_html(self, spec)

    def globals(self) -> dict[str, Any]:
        names = ("fact", "value", "label", "event", "year", "cite", "chart", "table", "date", "rows", "number", "quantity")
        return {name: getattr(self, name) for name in names} | {
            "report": self.report, "title": self.title, "lang": self.lang, "edition_date": self.edition_date,
            "edition_date_text": self.lang.date(self.edition_date), "medium": self.medium,
            "facts": self.knowledge.facts, "events": self.knowledge.events, "sources": self.knowledge.sources,
            "key_figures": key_figures(self.report, self.knowledge), "font_url": self.font_url,
            "changes": self.changes, "placed_charts": self.chart_order, "chart_table": self.chart_table,
            "stale": self.stale, "stale_mark": self.stale_mark,
            "ctx_kind": lambda chart_id: self.charts[chart_id].kind,
            "url_text": url_text,
        }


def key_figures(report: Report, knowledge: Knowledge) -> list[Fact]:
    """The facts of the key-figures table, in the report's order (default: all, in file order)."""
    if report.key_figures is None:
        return list(knowledge.facts.values())
    return [knowledge.facts[i] for i in report.key_figures if i in knowledge.facts]


def url_text(url: str) -> Markup:
    """A URL as text that may break only after ``/``, ``.`` or ``-`` (never "http / s://")."""
    out = []
    for index, char in enumerate(url):
        out.append(escape(char))
        after_scheme = url[:index + 1].endswith("://")
        if char in "/.-" and index + 1 < len(url) and not after_scheme and url[index + 1] != "/":
            out.append(Markup("<wbr>"))
    return Markup("").join(out)


def _cell(ctx: EditionContext, spec: TableSpec, row: dict[str, Any], column: str) -> Markup | str:
    localised = f"{column}_{ctx.lang.code}"
    value = row.get(localised) if localised in row else row.get(column)
    if value is None:
        return ""
    if column == "source":
        return ctx.cite(str(value))
    if column in spec.units:
        unit = ctx.knowledge.units.get(spec.units[column])
        if unit is None:
            return ctx._missing("unit", spec.units[column], ctx.knowledge.units)
        return quantity(value, unit, ctx.lang)
    if isinstance(value, date):
        return ctx.date(value)
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return number(value, ctx.lang)
    return str(value)


def _table_html(ctx: EditionContext, spec: TableSpec) -> Markup:
    rows = [row for row, _ in ctx.knowledge.table(spec.resource)
            if all(str(row.get(k)) == str(v) for k, v in spec.where.items())]
    if not rows:
        file, place = _template_place()
        ctx.problems.append(Problem(file, place, f"table {spec.id!r}: resource {spec.resource!r} has no rows"
                                    f"{' matching ' + str(spec.where) if spec.where else ''}"))
        return Markup("")
    missing = [c for c in spec.columns if c not in rows[0] and f"{c}_{ctx.lang.code}" not in rows[0]]
    if missing:
        file, place = _template_place()
        ctx.problems.append(Problem(file, place, f"table {spec.id!r}: resource {spec.resource!r} has no column(s) "
                                    f"{', '.join(map(repr, missing))}"))
        return Markup("")
    def raw(row: dict[str, Any], column: str) -> Any:
        localised = f"{column}_{ctx.lang.code}"
        return row.get(localised) if localised in row else row.get(column)

    def is_number(value: Any) -> bool:
        return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)

    # Numbers align right, as in any table a reader compares down a column.
    numeric = {c for c in spec.columns if c in spec.units or (
        any(raw(r, c) is not None for r in rows) and all(is_number(raw(r, c)) for r in rows if raw(r, c) is not None))}
    head = Markup("").join(Markup('<th class="{cls}">{}</th>').format(h, cls="num" if c in numeric else "")
                           for c, h in zip(spec.columns, spec.headers[ctx.lang.code]))
    body = Markup("").join(
        Markup("<tr>{}</tr>").format(Markup("").join(
            Markup('<td class="{cls}">{}</td>').format(_cell(ctx, spec, row, c), cls="num" if c in numeric else "")
            for c in spec.columns))
        for row in rows)
    caption = Markup("")
    sources = tuple(dict.fromkeys(str(r["source"]) for r in rows if r.get("source")))
    title = spec.title.get(ctx.lang.code, "")
    if title or ("source" not in spec.columns):
        cites = ctx._cites(sources) if "source" not in spec.columns else Markup("")
        if not title:  # never a caption of citation marks alone
            title = ctx.lang.ngettext("Source:", "Sources:", len(sources))
        caption = Markup("<caption>{} {}</caption>").format(title, cites)
    return Markup('<table class="data" id="table-{id}">{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>').format(
        id=spec.id, caption=caption, head=head, body=body)


def context(report: Report, lang: Language, edition_date: date, medium: str, knowledge: Knowledge,
            charts: dict[str, Chart], font_url: Callable[[str], str] = lambda name: name,
            changes: Changes | None = None) -> EditionContext:
    """Build the one template context of an edition from plain values."""
    return EditionContext(report, lang, edition_date, medium, knowledge, charts, font_url, changes,
                          stale(report, knowledge, edition_date))


def css_string(value: str) -> Markup:
    """A CSS string literal. Markup, because HTML escaping inside <style> would corrupt it."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\a ")
    return Markup('"' + text.replace("<", "\\3c ") + '"')


class _ConfinedLoader(jinja2.BaseLoader):
    """Templates from the project's folder, then the theme; a file that resolves outside the
    folder it was found in (a symlink to /etc) is refused, not read."""

    def __init__(self, templates_dir: Path) -> None:
        self.roots = search_path(templates_dir)

    def get_source(self, environment: jinja2.Environment, template: str):
        parts = [p for p in template.replace("\\", "/").split("/") if p not in ("", ".")]
        if ".." in parts:
            raise jinja2.TemplateNotFound(template)
        for root in self.roots:
            path = root.joinpath(*parts)
            if path.is_file() or path.is_symlink():
                real = confined(path, (root,))
                mtime = real.stat().st_mtime_ns
                try:
                    source = real.read_text(encoding="utf-8")
                except UnicodeDecodeError as exc:
                    raise TemplateError([Problem(str(path), "", f"template is not valid UTF-8 ({exc.reason})")]) from None
                return source, str(path), lambda real=real, mtime=mtime: real.is_file() and real.stat().st_mtime_ns == mtime
        raise jinja2.TemplateNotFound(template)


_environments: dict[tuple[Path, int], tuple[Language, jinja2.Environment]] = {}


def environment(templates_dir: Path, lang: Language) -> jinja2.Environment:
    """A sandboxed Jinja2 environment per templates folder and language, catalogue installed."""
    key = (templates_dir, id(lang))
    if key not in _environments:
        env = ImmutableSandboxedEnvironment(
            loader=_ConfinedLoader(templates_dir),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.install_gettext_translations(lang.translations, newstyle=True)
        env.filters["css_string"] = css_string
        _environments[key] = (lang, env)  # keeps lang alive, so its id stays its own
    return _environments[key][1]


def template_problem(exc: BaseException, templates_dir: Path) -> Problem:
    """Name the template file and line of a Jinja error, or of the template frame that raised."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return Problem(exc.filename or exc.name or "?", f"line {exc.lineno}", exc.message or str(exc))
    if isinstance(exc, jinja2.TemplateNotFound):
        return Problem(str(templates_dir / exc.name), "", "template not found")
    tb = exc.__traceback__
    place = ("?", "")
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if template is not None:
            place = (template.filename or template.name or "?", f"line {template.get_corresponding_lineno(tb.tb_lineno)}")
        elif "__jinja_exception__" in tb.tb_frame.f_globals:
            # Template.render() rewrites the traceback: each template frame becomes a stand-in
            # whose file and line are the template's own.
            place = (tb.tb_frame.f_code.co_filename, f"line {tb.tb_lineno}")
        tb = tb.tb_next
    if isinstance(exc, jinja2.sandbox.SecurityError):
        message = f"not allowed in a template: {exc}"
    elif isinstance(exc, TemplateError):
        message = exc.problems[0].message
    elif isinstance(exc, jinja2.TemplateError):
        message = str(exc)
    else:
        message = f"{type(exc).__name__}: {exc}"
    return Problem(place[0], place[1], message)


def _rendering(templates_dir: Path, what: Callable[[], Any]) -> Any:
    try:
        return what()
    except TemplateError as exc:
        if exc.problems and exc.problems[0].file not in ("", "?"):
            raise
        raise TemplateError([template_problem(exc, templates_dir)]) from exc
    except jinja2.TemplateError as exc:
        raise TemplateError([template_problem(exc, templates_dir)]) from exc
    except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
        # An expression in a template that fails (1/0, a missing %(name)s): name its line.
        raise TemplateError([template_problem(exc, templates_dir)]) from exc


def narrative_blocks(ctx: EditionContext, templates_dir: Path) -> dict[str, Markup]:
    """Each block of the report's narrative in ``ctx.lang``, rendered; unknown blocks are errors."""
    env = environment(templates_dir, ctx.lang)
    name = ctx.report.narrative_for(ctx.lang.code)

    def render() -> dict[str, Markup]:
        template = env.get_template(name)
        declared = {SUMMARY, *(s.id for s in ctx.report.sections)}
        unknown = sorted(set(template.blocks) - declared)
        if unknown:
            raise TemplateError([Problem(template.filename or name, "", f"block {b!r} is not a section of the report "
                                         f"(declared: {', '.join(sorted(declared))})") for b in unknown])
        jinja_context = template.new_context(ctx.globals())
        return {block: Markup("".join(render_block(jinja_context)).strip())
                for block, render_block in template.blocks.items()}

    return _rendering(templates_dir, render)


def sections(ctx: EditionContext, blocks: dict[str, Markup]) -> list[Section]:
    return [Section(spec.id, spec.title[ctx.lang.code], blocks.get(spec.id, Markup("")), spec.charts, spec.tables)
            for spec in ctx.report.sections]


def timeline_chart(ctx: EditionContext) -> str | None:
    """The timeline chart the layout places in its timeline section, unless a section has it."""
    placed_by_sections = {c for s in ctx.report.sections for c in s.charts}
    for spec in ctx.report.charts:
        if spec.kind == "timeline" and spec.id not in ctx.placed_charts and spec.id not in placed_by_sections:
            return spec.id
    return None


def html(ctx: EditionContext, templates_dir: Path) -> str:
    """Render the edition: narrative blocks first, then the layout that places them."""
    blocks = ctx.blocks = narrative_blocks(ctx, templates_dir)
    ctx.narrative_facts = list(ctx.cited_facts)  # before the layout cites the key figures
    env = environment(templates_dir, ctx.lang)
    show_timeline = ctx.report.timeline and bool(ctx.knowledge.events)
    values = ctx.globals() | {
        "summary": blocks.get(SUMMARY, Markup("")),
        "sections": sections(ctx, blocks),
        "timeline": list(ctx.knowledge.events.values()) if show_timeline else [],
        "timeline_chart": timeline_chart(ctx) if show_timeline else None,
    }
    document = _rendering(templates_dir, lambda: env.get_template(ctx.report.layout).render(values))
    if ctx.problems:
        raise TemplateError(list(dict.fromkeys(ctx.problems)))
    return document

