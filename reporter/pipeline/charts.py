"""Charts: dataset rows -> :class:`Chart` (SVG bytes) in one language.

matplotlib's object API only (``Figure``, never pyplot's global state), so charts for several
languages can be drawn in one process. Text stays text (``svg.fonttype = 'none'``) in the
document's font, and a fixed hash salt and no date make the bytes identical for identical input.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ChartSpec
from ..errors import ChartError, Problem
from .datasets import Dataset
from .i18n import N_, Language

FONT_FAMILY = "PT Sans"
FONT_FILES = ("PTSans-Regular.ttf", "PTSans-Bold.ttf")
INK, MUTED, GRID = "#1d2b3a", "#6b7785", "#d9dee4"
BASE, ACCENT = "#3f6e98", "#c8553d"
AXIS_LABELS = {"tonnes_uranium": N_("tonnes of uranium"), "percent": N_("per cent")}


@dataclass(frozen=True)
class Chart:
    """A drawn chart: SVG bytes, its title, and the source ids its numbers come from."""

    id: str
    lang: str
    title: str
    svg: bytes
    sources: tuple[str, ...]


_fonts_registered: set[Path] = set()


def _register_fonts(fonts_dir: Path) -> None:
    from matplotlib import font_manager  # noqa: PLC0415

    for name in FONT_FILES:
        path = fonts_dir / name
        if path not in _fonts_registered:
            if not path.is_file():
                raise ChartError([Problem(str(path), "", "chart font file is missing")])
            font_manager.fontManager.addfont(str(path))
            _fonts_registered.add(path)


def draw(spec: ChartSpec, dataset: Dataset, lang: Language, fonts_dir: Path) -> Chart:
    """Draw one chart; raise :class:`ChartError` when the spec names data that is not there."""
    import matplotlib  # noqa: PLC0415 - heavy, only when drawing

    _register_fonts(fonts_dir)
    style = {
        "svg.fonttype": "none",
        "svg.hashsalt": f"{spec.id}-{lang.code}",
        "font.family": FONT_FAMILY,
        "font.size": 9,
        "text.color": INK,
        "axes.labelcolor": MUTED,
        "xtick.color": MUTED,
        "ytick.color": MUTED,
        "axes.edgecolor": GRID,
    }
    drawer = {"series": _series, "shares": _shares, "timeline": _timeline}[spec.kind]
    with matplotlib.rc_context(style):
        try:
            figure, sources = drawer(spec, dataset, lang)
        except ChartError:
            raise
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            # A chart pointed at columns of the wrong kind (text where numbers belong, a
            # resource without dates, a language without labels) is the user's to fix.
            raise ChartError([Problem(str(dataset.path / "datapackage.json"), f"chart {spec.id!r}",
                                      f"does not fit the data: {type(exc).__name__}: {exc}")]) from exc
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight", pad_inches=0.05)
    return Chart(spec.id, lang.code, spec.title[lang.code], buffer.getvalue(), tuple(dict.fromkeys(sources)))


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(width, height))
    figure.patch.set_alpha(0)
    return figure


def _column(spec: ChartSpec, dataset: Dataset, resource: str, column: str) -> list[Any]:
    table = dataset.table(resource)
    if column not in {f.name for f in table.fields}:
        raise ChartError([Problem(str(table.path), "", f"chart {spec.id!r} needs a column {column!r}")])
    return [row[column] for row in table.rows]


def _series(spec: ChartSpec, dataset: Dataset, lang: Language):
    xs = _column(spec, dataset, spec.resource, spec.x)
    ys = _column(spec, dataset, spec.resource, spec.y)
    sources = [row.get("source") for row in dataset.table(spec.resource).rows if row.get("source")]
    figure = _figure(6.3, 2.7)
    ax = figure.add_subplot()
    labels = [str(x) for x in xs]
    colors = [ACCENT if x == spec.highlight else BASE for x in xs]
    bars = ax.bar(labels, ys, color=colors, width=0.62, zorder=2)
    for bar, x, y in zip(bars, xs, ys):
        ax.annotate(lang.number(y), (bar.get_x() + bar.get_width() / 2, y), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom",
                    fontweight="bold" if x == spec.highlight else "normal",
                    color=ACCENT if x == spec.highlight else INK)
    from matplotlib.ticker import FuncFormatter  # noqa: PLC0415

    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: lang.number(value)))
    ax.set_ylim(0, max(ys) * 1.15)
    if spec.unit in AXIS_LABELS:
        ax.set_ylabel(lang.gettext(AXIS_LABELS[spec.unit]))
    ax.grid(axis="y", color=GRID, linewidth=0.6, zorder=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="both", length=0)
    return figure, sources


def _facts(spec: ChartSpec, dataset: Dataset) -> list[dict]:
    facts = dataset.table("facts").by_key("id")
    missing = [fact_id for fact_id in spec.facts if fact_id not in facts]
    if missing:
        raise ChartError([Problem(str(dataset.table("facts").path), "", f"chart {spec.id!r} names unknown facts: {', '.join(missing)}")])
    return [facts[fact_id] for fact_id in spec.facts]


def _shares(spec: ChartSpec, dataset: Dataset, lang: Language):
    facts = _facts(spec, dataset)
    not_percent = [f["id"] for f in facts if f["unit"] != "percent"]
    if not_percent:
        raise ChartError([Problem(str(dataset.table("facts").path), "", f"chart {spec.id!r}: not percentages: {', '.join(not_percent)}")])
    figure = _figure(6.3, 0.55 * len(facts) + 0.4)
    ax = figure.add_subplot()
    rows = list(range(len(facts)))[::-1]
    ax.barh(rows, [100] * len(facts), color=GRID, height=0.55, zorder=1)
    ax.barh(rows, [f["value"] for f in facts], color=BASE, height=0.55, zorder=2)
    for row, fact in zip(rows, facts):
        label = textwrap.fill(fact[f"label_{lang.code}"], 38)
        ax.text(-2, row, label, ha="right", va="center", color=INK)
        ax.text(fact["value"] + 1.5, row, lang.qualified(fact["value"], "percent", fact["qualifier"]),
                ha="left", va="center", fontweight="bold", color=INK)
    ax.set_xlim(0, 118)  # room for the value label right of a bar near 100 %
    ax.set_yticks([])
    ax.xaxis.set_major_formatter(__import__("matplotlib.ticker").ticker.FuncFormatter(
        lambda value, _pos: lang.quantity(value, "percent")))
    ax.set_xticks([0, 25, 50, 75, 100])
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="both", length=0)
    return figure, [f["source"] for f in facts]


def _timeline(spec: ChartSpec, dataset: Dataset, lang: Language):
    table = dataset.table(spec.resource)
    events = sorted(table.rows, key=lambda row: row["date"])
    if not events:
        raise ChartError([Problem(str(table.path), "", f"chart {spec.id!r} has no events to draw")])
    figure = _figure(6.3, 1.5)
    ax = figure.add_subplot()
    xs = list(range(len(events)))
    ax.plot([-0.45, len(events) - 0.55], [0, 0], color=GRID, linewidth=2, zorder=1)
    ax.scatter(xs, [0] * len(events), s=50, color=BASE, edgecolor="white", linewidth=1.5, zorder=2)
    # Offsets in points, not data units, so wrapped labels never run into the line below them.
    width = max(12, int(64 / len(events)))
    for x, event in zip(xs, events):
        ax.annotate(lang.date(event["date"]), (x, 0), xytext=(0, 8), textcoords="offset points",
                    ha="center", va="bottom", fontweight="bold", color=ACCENT)
        label = textwrap.fill(event[f"label_{lang.code}"], width)
        ax.annotate(label, (x, 0), xytext=(0, -9), textcoords="offset points", ha="center", va="top",
                    color=INK, fontsize=8, linespacing=1.15)
        place = textwrap.fill(event[f"place_{lang.code}"], width)
        ax.annotate(place, (x, 0), xytext=(0, -12 - 10.5 * (label.count("\n") + 1)), textcoords="offset points",
                    ha="center", va="top", color=MUTED, fontsize=7.5, linespacing=1.15)
    ax.set_xlim(-0.5, len(events) - 0.5)
    ax.set_ylim(-1, 1)
    ax.axis("off")
    return figure, [event["source"] for event in events]
