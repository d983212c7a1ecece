"""Charts: a report's facts or rows -> :class:`Chart` (SVG bytes) in one language.

Kinds (see the README for each one's keys and a picture):

- ``bars``: category bars, horizontal or vertical, from facts or from a resource's rows;
- ``series``: values over an ordered axis (years), as bars or a line, with highlighted points;
- ``compare``: two periods side by side per category;
- ``shares``: percentages, each drawn against its whole (100 %), the value beside the track;
- ``timeline``: dated events, numbered to match the list printed under it.

Layout is computed, not hoped for: every label is measured with the font the document uses,
wrapped between words (never inside one), and the axes are sized so that value labels sit
beside their bars and inside the figure. :func:`layout_problems` checks the result (no text
overlaps another text or a bar, nothing leaves the figure) and a chart that fails it is an error,
not a brief with unreadable labels.

matplotlib's object API only (``Figure``, never pyplot's global state), so charts for several
languages can be drawn in one process. Text stays text (``svg.fonttype = 'none'``) in the
document's font, and a fixed hash salt and no date make the bytes identical for identical input.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

from ..config import ChartSpec
from ..errors import ChartError, Problem
from .i18n import N_, Language
from .model import Knowledge, Place
from .values import Unit, number, qualified, quantity

FONT_FAMILY = "PT Sans"
FONT_FILES = ("PTSans-Regular.ttf", "PTSans-Bold.ttf")
# WCAG AA on white for every text colour: INK 14.6:1, MUTED 4.9:1, BASE 5.4:1, ACCENT 5.5:1.
INK, MUTED, GRID, TRACK = "#1d2b3a", "#5f6b78", "#d9dee4", "#e6eaef"
BASE, ACCENT, LIGHT = "#3f6e98", "#b03f27", "#9db8d2"
PALETTE = ("#3f6e98", "#b03f27", "#4f8a5b", "#8a6d3b", "#6b5b95", "#5f6b78")
WIDTH_IN = 6.3  # the text width of an A4 page with the layout's margins, in inches
SIZE, SMALL = 9.0, 8.0  # font sizes in points
PT = 1 / 72  # inches per point
EDGE = 4.0  # points kept clear at the figure's left and right edges


@dataclass(frozen=True)
class Chart:
    """A drawn chart: SVG bytes, title, the sources of its numbers, and its data as text.

    ``rows`` is the chart's data as a reader would read it (heading row first), for a text
    alternative and for the list that complements a timeline.
    """

    id: str
    lang: str
    kind: str
    title: str
    svg: bytes
    sources: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


_fonts_registered: set[Path] = set()


def register_fonts(font_paths: Sequence[Path]) -> None:
    from matplotlib import font_manager  # noqa: PLC0415

    for path in font_paths:
        if path not in _fonts_registered:
            if not path.is_file():
                raise ChartError([Problem(str(path), "", "chart font file is missing")])
            font_manager.fontManager.addfont(str(path))
            _fonts_registered.add(path)


# --- measuring -------------------------------------------------------------------------


class _Measure:
    """Text extents in points, measured with the font the chart will be drawn in."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import RendererAgg  # noqa: PLC0415
        from matplotlib.font_manager import FontProperties  # noqa: PLC0415

        self._renderer = RendererAgg(10, 10, 72)
        self._props = FontProperties
        self._cache: dict[tuple[str, float, str], float] = {}

    def width(self, text: str, size: float = SIZE, weight: str = "normal") -> float:
        key = (text, size, weight)
        if key not in self._cache:
            prop = self._props(family=FONT_FAMILY, size=size, weight=weight)
            lines = text.split("\n") or [""]
            measured = max(self._renderer.get_text_width_height_descent(line, prop, ismath=False)[0] for line in lines)
            # The PDF's SVG renderer sets text a little wider than Agg measures it (hinting,
            # kerning): a margin keeps a right-aligned label from being clipped at the edge.
            self._cache[key] = measured * 1.04 + 1.0
        return self._cache[key]

    def wrap(self, text: str, limit: float, size: float = SIZE, weight: str = "normal") -> str:
        """Break ``text`` into lines no wider than ``limit`` points, only between words.

        A single word wider than the limit keeps its line to itself rather than being cut.
        """
        lines: list[str] = []
        for word in text.split():
            candidate = f"{lines[-1]} {word}" if lines else word
            if lines and self.width(candidate, size, weight) <= limit:
                lines[-1] = candidate
            else:
                lines.append(word)
        return "\n".join(lines)


def _line_height(size: float) -> float:
    return size * 1.25


# --- drawing ---------------------------------------------------------------------------


def _style(spec: ChartSpec, lang: Language) -> dict[str, Any]:
    return {
        "svg.fonttype": "none",
        "svg.hashsalt": f"{spec.id}-{lang.code}",
        "font.family": FONT_FAMILY,
        "font.size": SIZE,
        "text.color": INK,
        "axes.labelcolor": MUTED,
        "xtick.color": MUTED,
        "ytick.color": MUTED,
        "axes.edgecolor": GRID,
    }


def figure(spec: ChartSpec, knowledge: Knowledge, lang: Language, fonts: Sequence[Path]):
    """The chart as a matplotlib ``Figure``, its sources and its rows, laid out and checked.

    Call it inside :func:`style` (``draw`` does) so that its text is real text in the theme's font.
    """
    register_fonts(fonts)
    drawer = {"bars": _bars, "series": _series, "compare": _compare, "shares": _shares, "timeline": _timeline}[spec.kind]
    try:
        made, sources, rows = drawer(spec, knowledge, lang, _Measure())
    except ChartError:
        raise
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        # A chart pointed at columns of the wrong kind (text where numbers belong, a
        # resource without dates) is the user's to fix.
        raise ChartError([Problem(_where(spec, knowledge), f"chart {spec.id!r}",
                                  f"does not fit the data: {type(exc).__name__}: {exc}")]) from exc
    problems = layout_problems(made)
    if problems:
        raise ChartError([Problem(_where(spec, knowledge), f"chart {spec.id!r} ({lang.code})",
                                  f"its labels do not fit: {problems[0]}; shorten the labels, or draw it "
                                  "horizontally (direction = \"horizontal\")")])
    return made, sources, rows


def style(spec: ChartSpec, lang: Language):
    """matplotlib settings for one chart: text as text, the theme's font, a fixed hash salt."""
    import matplotlib  # noqa: PLC0415 - heavy, only when drawing

    return matplotlib.rc_context(_style(spec, lang))


def draw(spec: ChartSpec, knowledge: Knowledge, lang: Language, fonts: Sequence[Path]) -> Chart:
    """Draw one chart as SVG; raise :class:`ChartError` when the spec names data that is not there."""
    with style(spec, lang):
        made, sources, rows = figure(spec, knowledge, lang, fonts)
        buffer = io.BytesIO()
        made.savefig(buffer, format="svg", metadata={"Date": None})
    return Chart(spec.id, lang.code, spec.kind, spec.title[lang.code], buffer.getvalue(),
                 tuple(dict.fromkeys(s for s in sources if s)), tuple(rows))


def _where(spec: ChartSpec, knowledge: Knowledge) -> str:
    for dataset in knowledge.datasets:
        if spec.resource in dataset.tables:
            return str(dataset.tables[spec.resource].path)
    return str(knowledge.datasets[0].path / "datapackage.json") if knowledge.datasets else "charts"


def layout_problems(figure) -> list[str]:
    """What is wrong with a drawn figure's layout, as a reader would see it.

    Checked with the figure's own renderer: every text lies inside the figure; no two texts
    overlap; no text overlaps a bar (a value label running past its bar into the next one).
    """
    from matplotlib.patches import Rectangle  # noqa: PLC0415

    renderer = figure.canvas.get_renderer() if hasattr(figure.canvas, "get_renderer") else None
    if renderer is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415

        renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw_without_rendering()
    frame = figure.bbox
    texts = [t for t in figure.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent"))
             if t.get_visible() and str(t.get_text()).strip()]
    boxes = [(t, t.get_window_extent(renderer)) for t in texts]
    bars = [p.get_window_extent(renderer) for p in figure.findobj(Rectangle)
            if p.get_gid() == "bar" and p.get_visible() and p.get_width() and p.get_height()]
    problems = []
    tolerance = 0.5
    for text, box in boxes:
        if box.x0 < frame.x0 - tolerance or box.x1 > frame.x1 + tolerance or box.y0 < frame.y0 - tolerance or box.y1 > frame.y1 + tolerance:
            problems.append(f"{text.get_text()!r} runs outside the figure")
    for i, (text, box) in enumerate(boxes):
        for other, other_box in boxes[i + 1:]:
            if _overlap(box, other_box, tolerance):
                problems.append(f"{text.get_text()!r} overlaps {other.get_text()!r}")
        for bar in bars:
            if _overlap(box, bar, tolerance):
                problems.append(f"{text.get_text()!r} runs over a bar")
                break
    return problems


def _overlap(a, b, tolerance: float) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0)) > tolerance and (min(a.y1, b.y1) - max(a.y0, b.y0)) > tolerance


def _figure(width_pt: float, height_pt: float):
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(width_pt * PT, height_pt * PT), dpi=72)
    figure.patch.set_alpha(0)
    return figure


def _axes(figure, left: float, bottom: float, width: float, height: float):
    """Axes placed in points from the figure's bottom-left corner, so layout is exact."""
    fw, fh = figure.get_size_inches() * 72
    ax = figure.add_axes((left / fw, bottom / fh, width / fw, height / fh))
    ax.patch.set_alpha(0)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="both", length=0)
    return ax


# --- data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Point:
    """One bar or point: its label, value, text as printed, highlight, source, and key."""

    label: str
    value: float
    text: str
    source: str | None
    key: Any
    highlight: bool = False


def _facts(spec: ChartSpec, knowledge: Knowledge, ids: Sequence[str]):
    missing = [fact_id for fact_id in ids if fact_id not in knowledge.facts]
    if missing:
        raise ChartError([Problem(_facts_file(knowledge), f"chart {spec.id!r}", f"names unknown facts: {', '.join(missing)}")])
    return [knowledge.facts[fact_id] for fact_id in ids]


def _facts_file(knowledge: Knowledge) -> str:
    for dataset in knowledge.datasets:
        if "facts" in dataset.tables:
            return str(dataset.tables["facts"].path)
    return "facts"


def _rows(spec: ChartSpec, knowledge: Knowledge, columns: Sequence[str], lang: Language) -> list[tuple[dict, Place]]:
    """The rows of the chart's resource; every column named must be there (``label`` may be
    ``label_<lang>``)."""
    rows = knowledge.table(spec.resource)
    if not rows:
        raise ChartError([Problem(_where(spec, knowledge), f"chart {spec.id!r}",
                                  f"no resource {spec.resource!r} (or it has no rows) in the report's datasets")])
    present = set(rows[0][0])
    missing = [c for c in columns if c and c not in present and f"{c}_{lang.code}" not in present]
    if missing:
        raise ChartError([Problem(rows[0][1].file, "header", f"chart {spec.id!r} needs column(s) {', '.join(map(repr, missing))}")])
    return rows


def _label(row: dict, column: str, lang: Language) -> str:
    localised = f"{column}_{lang.code}"
    value = row.get(localised) if localised in row else row.get(column)
    return "" if value is None else str(value)


def _unit(spec: ChartSpec, knowledge: Knowledge) -> Unit | None:
    if not spec.unit:
        return None
    if spec.unit not in knowledge.units:
        raise ChartError([Problem(_where(spec, knowledge), f"chart {spec.id!r}", f"unknown unit {spec.unit!r}")])
    return knowledge.units[spec.unit]


def _numeric(value: Any, spec: ChartSpec, place: Place, column: str) -> Decimal | int:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ChartError([place.problem(column, f"chart {spec.id!r} needs a number here, got {value!r}")])
    return value


def _points(spec: ChartSpec, knowledge: Knowledge, lang: Language) -> list[_Point]:
    """Points of a ``bars`` or ``shares`` chart, from facts or from rows."""
    if spec.facts:
        return [_Point(f.labels[lang.code], float(f.value), qualified(f.value, f.unit, f.qualifier, lang, upper=f.upper),
                       f.source, f.id, f.id in spec.highlight) for f in _facts(spec, knowledge, spec.facts)]
    unit = _unit(spec, knowledge)
    points = []
    for row, place in _rows(spec, knowledge, (spec.value, spec.label), lang):
        value = row.get(spec.value)
        if value is None:
            continue
        value = _numeric(value, spec, place, spec.value)
        points.append(_Point(_label(row, spec.label, lang), float(value), quantity(value, unit, lang),
                             row.get("source"), row.get(spec.key), row.get(spec.key) in spec.highlight))
    return points


# --- horizontal bars (bars, shares, compare) -------------------------------------------


def _horizontal(rows: list[tuple[str, list[_Point]]], measure: _Measure, *, track: float | None = None,
                legend: Sequence[tuple[str, str]] = (), colors: Sequence[str] = (BASE,)):
    """Label column | bars (one per value in each row) | value labels beside each bar.

    With ``track``, every bar is drawn against a grey track to ``track`` (a whole: 100 %) and
    the value labels stand in a column right of the tracks, never over them.
    """
    width = WIDTH_IN * 72
    label_limit = width * 0.36
    labels = [measure.wrap(label, label_limit) for label, _ in rows]
    label_width = max((measure.width(label) for label in labels), default=0)
    per_row = max(1, max(len(points) for _, points in rows))
    bar_h = 11.0 if per_row == 1 else 9.0
    heights = [max(len(label.split("\n")) * _line_height(SIZE), per_row * (bar_h + 2)) + 7 for label in labels]
    legend_h = _line_height(SIZE) + 6 if legend else 0
    height = sum(heights) + 4 + legend_h
    figure = _figure(width, height)
    left = EDGE + label_width + 8
    axes_w = width - left - EDGE
    ax = _axes(figure, left, 2, axes_w, sum(heights))
    gap = 4.0
    values = [p.value for _, points in rows for p in points]
    texts = [measure.width(p.text, SIZE, "bold") for _, points in rows for p in points]
    if track is not None:
        low, high = 0.0, max([track] + values)
        right, left_room = gap + max(texts, default=0), 0.0
    else:
        low, high = min([0.0] + values), max([0.0] + values)
        right = max((gap + w for v, w in zip(values, texts) if v >= 0), default=0.0)
        left_room = max((gap + w for v, w in zip(values, texts) if v < 0), default=0.0)
    span = (high - low) or 1.0
    scale = (axes_w - right - left_room) / span  # points per unit
    if scale <= 0:
        raise ChartError("the value labels are wider than the chart")
    ax.set_xlim(low - left_room / scale, high + right / scale)
    ax.set_ylim(sum(heights), 0)
    ax.set_xticks([])
    ax.set_yticks([])
    top = 0.0
    for (label, points), wrapped, row_h in zip(rows, labels, heights):
        centre = top + row_h / 2
        ax.annotate(wrapped, (0, centre), xycoords=("axes fraction", "data"), xytext=(-8, 0),
                    textcoords="offset points", ha="right", va="center", color=INK, linespacing=1.15)
        first = centre - (len(points) - 1) * (bar_h + 2) / 2
        for index, point in enumerate(points):
            y = first + index * (bar_h + 2)
            if track is not None:
                ax.barh(y, track, height=bar_h, color=TRACK, zorder=1)
            color = ACCENT if point.highlight else colors[index % len(colors)]
            (bar,) = ax.barh(y, point.value, height=bar_h, color=color, zorder=2)
            bar.set_gid("bar")
            if track is not None:
                anchor, offset, align = high, gap, "left"
            elif point.value >= 0:
                anchor, offset, align = point.value, gap, "left"
            else:
                anchor, offset, align = point.value, -gap, "right"
            ax.annotate(point.text, (anchor, y), xytext=(offset, 0), textcoords="offset points", ha=align,
                        va="center", fontweight="bold", color=ACCENT if point.highlight else INK)
        top += row_h
    if legend:
        x = 0.0
        for color, text in legend:
            figure.patches.append(_swatch(figure, left + x, height - legend_h + 4, color))
            figure.text((left + x + 13) / width, (height - legend_h + 4 + 4.5) / height, text, va="center",
                        ha="left", color=INK, fontsize=SIZE)
            x += 13 + measure.width(text) + 16
    return figure


def _swatch(figure, x: float, y: float, color: str):
    from matplotlib.patches import Rectangle  # noqa: PLC0415

    fw, fh = figure.get_size_inches() * 72
    return Rectangle((x / fw, y / fh), 9 / fw, 9 / fh, transform=figure.transFigure, color=color, figure=figure)


# --- vertical bars and lines (bars, series, compare) -----------------------------------


def _vertical(categories: list[str], series: list[list[_Point]], measure: _Measure, *, unit_label: str = "",
              line: bool = False, tick_text=None, legend: Sequence[tuple[str, str]] = (),
              colors: Sequence[str] = (BASE,)):
    """Bars (or a line) over categories, value labels above, category labels wrapped below."""
    width, height = WIDTH_IN * 72, 190.0
    values = [p.value for points in series for p in points]
    low, high = min([0.0] + values), max([0.0] + values)
    ticks = _nice_ticks(low, high)
    tick_labels = [tick_text(t) for t in ticks] if tick_text else []
    tick_w = max((measure.width(t, SMALL) for t in tick_labels), default=0)
    left = EDGE + tick_w + 6 + (_line_height(SMALL) + 2 if unit_label else 0)
    axes_w = width - left - EDGE
    slot = axes_w / max(1, len(categories))
    size = SIZE
    wrapped = [measure.wrap(c, slot - 4, size) for c in categories]
    if any(measure.width(w, size) > slot - 2 for w in wrapped):
        size = SMALL
        wrapped = [measure.wrap(c, slot - 4, size) for c in categories]
    label_h = max((len(w.split("\n")) for w in wrapped), default=1) * _line_height(size) + 4
    legend_h = _line_height(SIZE) + 6 if legend else 0
    bottom = label_h + 2
    axes_h = height - bottom - legend_h - 2
    headroom = _line_height(SIZE) + 4
    span = (high - low) or 1.0
    scale = (axes_h - headroom * (2 if low < 0 else 1)) / span
    figure = _figure(width, height)
    ax = _axes(figure, left, bottom, axes_w, axes_h)
    ax.set_xlim(-0.5, len(categories) - 0.5)
    ax.set_ylim(low - (headroom / scale if low < 0 else 0), high + headroom / scale)
    ax.set_xticks([])
    if tick_text:
        ax.set_yticks(ticks)
        ax.set_yticklabels(tick_labels, fontsize=SMALL)
        ax.grid(axis="y", color=GRID, linewidth=0.6, zorder=0)
        if unit_label:
            ax.set_ylabel(unit_label, fontsize=SMALL)
    else:
        ax.set_yticks([])
    for index, label in enumerate(wrapped):
        ax.annotate(label, (index, 0), xycoords=("data", "axes fraction"), xytext=(0, -4), textcoords="offset points",
                    ha="center", va="top", color=INK, fontsize=size, linespacing=1.15)
    groups = len(series)
    bar_w = 0.62 / groups
    for s_index, points in enumerate(series):
        offset = (s_index - (groups - 1) / 2) * bar_w
        xs = [i + offset for i in range(len(points))]
        if line:
            ax.plot(xs, [p.value for p in points], color=colors[s_index % len(colors)], linewidth=1.8, zorder=2)
        for x, point in zip(xs, points):
            color = ACCENT if point.highlight else colors[s_index % len(colors)]
            if line:
                ax.scatter([x], [point.value], s=28 if point.highlight else 16, color=color, zorder=3)
            else:
                (bar,) = ax.bar(x, point.value, width=bar_w * 0.92, color=color, zorder=2)
                bar.set_gid("bar")
            up = point.value >= 0
            ax.annotate(point.text, (x, point.value), xytext=(0, 3 if up else -3), textcoords="offset points",
                        ha="center", va="bottom" if up else "top", fontsize=SIZE if groups == 1 else SMALL,
                        fontweight="bold" if point.highlight else "normal", color=ACCENT if point.highlight else INK)
    if legend:
        x = 0.0
        for color, text in legend:
            figure.patches.append(_swatch(figure, left + x, height - legend_h + 2, color))
            figure.text((left + x + 13) / width, (height - legend_h + 2 + 4.5) / height, text, va="center",
                        ha="left", color=INK, fontsize=SIZE)
            x += 13 + measure.width(text) + 16
    return figure


def _nice_ticks(low: float, high: float) -> list[float]:
    """Four or five round tick values covering ``low``..``high``."""
    import math  # noqa: PLC0415

    span = (high - low) or abs(high) or 1.0
    raw = span / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _tick_text(unit: Unit | None, lang: Language):
    def text(value: float) -> str:
        number_value = Decimal(str(value)).normalize()
        if number_value == number_value.to_integral():
            number_value = number_value.quantize(Decimal(1))
        if unit is not None and unit.format == "percent":
            return quantity(number_value, unit, lang)
        return number(number_value, lang)
    return text


# --- the kinds -------------------------------------------------------------------------


def _bars(spec: ChartSpec, knowledge: Knowledge, lang: Language, measure: _Measure):
    points = _points(spec, knowledge, lang)
    if not points:
        raise ChartError([Problem(_where(spec, knowledge), f"chart {spec.id!r}", "has nothing to draw")])
    rows = [(N_("Indicator"), N_("Value"))] + [(p.label, p.text) for p in points]
    if spec.direction == "vertical":
        unit = _unit(spec, knowledge) if not spec.facts else None
        figure = _vertical([p.label for p in points], [points], measure, unit_label=unit.label(lang) if unit else "")
    else:
        figure = _horizontal([(p.label, [p]) for p in points], measure)
    return figure, [p.source for p in points], _translated(rows, lang)


def _series(spec: ChartSpec, knowledge: Knowledge, lang: Language, measure: _Measure):
    unit = _unit(spec, knowledge)
    points = []
    for row, place in _rows(spec, knowledge, (spec.x, spec.y), lang):
        value = row.get(spec.y)
        if value is None:
            continue
        value = _numeric(value, spec, place, spec.y)
        x = row.get(spec.x)
        label = str(x) if isinstance(x, int) else _label(row, spec.x, lang)
        points.append(_Point(label, float(value), quantity(value, unit, lang) if unit and unit.format == "percent"
                             else number(value, lang), row.get("source"), x, x in spec.highlight))
    if not points:
        raise ChartError([Problem(_where(spec, knowledge), f"chart {spec.id!r}", "has no values to draw")])
    figure = _vertical([p.label for p in points], [points], measure, unit_label=unit.label(lang) if unit else "",
                       line=spec.style == "line", tick_text=_tick_text(unit, lang))
    heading = unit.label(lang) if unit and unit.label(lang) else N_("Value")
    rows = [("", heading)] + [(p.label, quantity(_exact(p, knowledge, spec), unit, lang) if unit else p.text) for p in points]
    return figure, [p.source for p in points], _translated(rows, lang)


def _exact(point: _Point, knowledge: Knowledge, spec: ChartSpec) -> Decimal | int:
    for row, _place in knowledge.table(spec.resource):
        if row.get(spec.x) == point.key and row.get(spec.y) is not None:
            return row[spec.y]
    return Decimal(str(point.value))


def _compare(spec: ChartSpec, knowledge: Knowledge, lang: Language, measure: _Measure):
    categories: list[str] = []
    pairs: list[tuple[_Point, _Point]] = []
    if spec.facts:
        periods = list(spec.periods)
        for earlier_id, later_id in spec.facts:
            earlier, later = _facts(spec, knowledge, (earlier_id, later_id))
            categories.append(later.labels[lang.code])
            pairs.append(tuple(_Point(f.labels[lang.code], float(f.value), qualified(f.value, f.unit, f.qualifier, lang, upper=f.upper),
                                      f.source, f.id) for f in (earlier, later)))
            if not periods:
                periods = [earlier.as_of[:4], later.as_of[:4]]
    else:
        unit = _unit(spec, knowledge)
        periods = list(spec.periods) or [spec.before, spec.after]
        for row, place in _rows(spec, knowledge, (spec.label, spec.before, spec.after), lang):
            values = [_numeric(row.get(c), spec, place, c) for c in (spec.before, spec.after)]
            categories.append(_label(row, spec.label, lang))
            pairs.append(tuple(_Point(categories[-1], float(v), quantity(v, unit, lang), row.get("source"), row.get(spec.key))
                               for v in values))
    if not pairs:
        raise ChartError([Problem(_where(spec, knowledge), f"chart {spec.id!r}", "has nothing to compare")])
    colors = (LIGHT, BASE)
    legend = list(zip(colors, periods))
    if spec.direction == "vertical":
        figure = _vertical(categories, [[a for a, _ in pairs], [b for _, b in pairs]], measure, legend=legend, colors=colors)
    else:
        figure = _horizontal([(c, list(p)) for c, p in zip(categories, pairs)], measure, legend=legend, colors=colors)
    rows = [("", *periods)] + [(c, a.text, b.text) for c, (a, b) in zip(categories, pairs)]
    return figure, [p.source for pair in pairs for p in pair], _translated(rows, lang)


def _shares(spec: ChartSpec, knowledge: Knowledge, lang: Language, measure: _Measure):
    points = _points(spec, knowledge, lang)
    if spec.facts:
        not_percent = [f.id for f in _facts(spec, knowledge, spec.facts) if not f.unit or f.unit.format != "percent"]
        if not_percent:
            raise ChartError([Problem(_facts_file(knowledge), f"chart {spec.id!r}", f"not percentages: {', '.join(not_percent)}")])
    if not points:
        raise ChartError([Problem(_where(spec, knowledge), f"chart {spec.id!r}", "has no shares to draw")])
    figure = _horizontal([(p.label, [p]) for p in points], measure, track=100.0)
    rows = [(N_("Indicator"), N_("Share"))] + [(p.label, p.text) for p in points]
    return figure, [p.source for p in points], _translated(rows, lang)


def _timeline(spec: ChartSpec, knowledge: Knowledge, lang: Language, measure: _Measure):
    if spec.resource == "events":
        events = list(knowledge.events.values())
        items = [(e.date, e.labels[lang.code], e.places.get(lang.code, ""), e.source) for e in events]
    else:
        rows = _rows(spec, knowledge, ("date",), lang)
        items = sorted(((str(r["date"]), _label(r, "label", lang), _label(r, "place", lang), r.get("source")) for r, _ in rows),
                       key=lambda item: item[0])
    if not items:
        raise ChartError([Problem(_where(spec, knowledge), f"chart {spec.id!r}", "has no events to draw")])
    width = WIDTH_IN * 72
    dates = [lang.date(day) for day, *_ in items]
    count = len(items)
    slot = (width - 8) / count
    size = SIZE
    wrapped = [measure.wrap(d, slot - 6, size, "bold") for d in dates]
    lines = max(len(w.split("\n")) for w in wrapped)
    date_h = lines * _line_height(size)
    height = date_h + 34
    figure = _figure(width, height)
    ax = _axes(figure, 4, 0, width - 8, height)
    ax.set_xlim(-0.5, count - 0.5)
    ax.set_ylim(0, height)
    ax.set_xticks([])
    ax.set_yticks([])
    line_y = 14
    ax.plot([-0.5, count - 0.5], [line_y, line_y], color=GRID, linewidth=2, zorder=1)
    ax.scatter(range(count), [line_y] * count, s=190, color=BASE, edgecolor="white", linewidth=1.5, zorder=2)
    for index, label in enumerate(wrapped):
        ax.text(index, line_y, str(index + 1), ha="center", va="center_baseline", color="white", fontsize=SMALL,
                fontweight="bold", zorder=3)
        ax.annotate(label, (index, line_y), xytext=(0, 14),
                    textcoords="offset points", ha="center", va="baseline", fontweight="bold", color=ACCENT,
                    linespacing=1.15)
    rows = [("№", N_("Date"), N_("Event"), N_("Place"))] + [
        (str(i + 1), d, label, place) for i, (d, (_day, label, place, _src)) in enumerate(zip(dates, items))]
    return figure, [source for *_, source in items], _translated(rows, lang)


def _translated(rows: list[tuple[str, ...]], lang: Language) -> list[tuple[str, ...]]:
    """The heading row's interface strings in ``lang``; data rows as they are."""
    head, *body = rows
    return [tuple(lang.gettext(cell) if cell else "" for cell in head), *body]
