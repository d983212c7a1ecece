"""Figures and charts: values exactly as written, in each locale's format; charts with real text,
identical bytes for identical input, and labels that fit."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projects import CSV, PARTNERS, write_dataset
from reporter import config
from reporter.config import ChartSpec, edition_date
from reporter.errors import ChartError
from reporter.pipeline import charts, datasets, i18n, model, values
from reporter.pipeline.build import THEME_DIR
from reporter.pipeline.datasets import _parse_number

FONTS = [THEME_DIR / "fonts" / name for name in charts.FONT_FILES]
RU = i18n.language("ru")
EN = i18n.language("en", "en_GB")


def knowledge(tmp_path: Path, tables: dict[str, str] | None = None) -> model.Knowledge:
    write_dataset(tmp_path, tables=tables)
    return model.gather([datasets.load(tmp_path, "brief")], ("ru", "en"), {"en": "en_GB"})


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> model.Knowledge:
    return knowledge(tmp_path_factory.mktemp("data"))


def n(text: str) -> datasets.Number:
    return _parse_number(text)


# --- values -----------------------------------------------------------------------------

CASES = [
    # fact id, Russian, English (spaces are no-break spaces in the output)
    ("firms", "более 630 компаний", "more than 630 companies"),
    ("output", "23 270 т", "23,270 t"),
    ("share", "24,1 %", "24.1%"),
    ("growth", "в 2,8 раза", "2.8 times"),
    ("shift", "+6,4 п. п.", "+6.4 percentage points"),
    ("band", "около 20–22 %", "about 20–22%"),
    ("period", "2020–2024", "2020–2024"),
    ("small", "0,7 %", "0.7%"),
    ("budget", "почти 50 млн долл. США", "almost $50 million"),
]


@pytest.mark.parametrize(("fact_id", "ru", "en"), CASES)
def test_every_value_kind_in_both_languages(known: model.Knowledge, fact_id: str, ru: str, en: str) -> None:
    fact = known.facts[fact_id]
    for lang, expected in ((RU, ru), (EN, en)):
        printed = values.qualified(fact.value, fact.unit, fact.qualifier, lang, upper=fact.upper)
        assert printed.replace("\u00a0", " ") == expected
        assert " " not in printed, "a figure must never break across a line: no ordinary spaces"


@pytest.mark.parametrize(("text", "ru", "en"), [
    ("24.1", "24,1", "24.1"), ("0.7", "0,7", "0.7"), ("14.3", "14,3", "14.3"), ("24.10", "24,10", "24.10"),
    ("23270", "23 270", "23,270"), ("1e3", "1 000", "1,000"), ("-3.5", "-3,5", "-3.5"), ("0.1", "0,1", "0.1"),
])
def test_a_decimal_prints_exactly_as_written(text: str, ru: str, en: str) -> None:
    assert values.number(n(text), RU).replace("\u00a0", " ") == ru
    assert values.number(n(text), EN) == en


@given(st.integers(0, 6).flatmap(lambda places: st.decimals(min_value=-10**9, max_value=10**9, places=places,
                                                             allow_nan=False, allow_infinity=False)))
@settings(max_examples=200, deadline=None)
def test_any_decimal_round_trips_through_both_formats(value: Decimal) -> None:
    written = n(str(value))
    for lang, group, point in ((EN, ",", "."), (RU, "\u00a0", ",")):
        printed = values.number(written, lang)
        back = Decimal(printed.replace(group, "").replace(point, ".").replace("\u2212", "-"))
        assert back == value and printed.count(point) == (1 if values.digits(written) else 0), printed


@pytest.mark.parametrize(("count", "expected"), [(1, "1 компания"), (3, "3 компании"), (5, "5 компаний"),
                                                 (11, "11 компаний"), (21, "21 компания"), (630, "630 компаний")])
def test_russian_plural_forms_come_from_the_data(known: model.Knowledge, count: int, expected: str) -> None:
    assert values.quantity(count, known.units["companies"], RU).replace("\u00a0", " ") == expected


def test_units_from_cldr_and_currencies(known: model.Knowledge) -> None:
    years = values.Unit("years", format="cldr", cldr="duration-year", length="long")
    assert values.quantity(n("4"), years, RU).replace("\u00a0", " ") == "4 года"
    assert values.quantity(n("21"), years, RU).replace("\u00a0", " ") == "21 год"
    assert values.quantity(n("4"), years, EN).replace("\u00a0", " ") == "4 years"
    usd = values.Unit("usd", format="currency", currency="USD")
    assert values.quantity(n("50.5"), usd, i18n.language("en")) == "$50.5"
    billions = values.Unit("usd_bn", format="currency", currency="USD", scale="billion")
    assert values.quantity(n("4.25"), billions, i18n.language("en")) == "$4.25B"
    assert values.quantity(n("4"), billions, RU).replace("\u00a0", " ") == "4 млрд $"
    assert values.quantity(n("7"), None, EN) == "7"  # an empty unit is a bare number, not an error


def test_dates() -> None:
    assert EN.date(date(2025, 11, 5)) == "5 November 2025"
    assert EN.date("2025-09") == "September 2025"
    assert RU.date(date(2025, 11, 5)) == "5 ноября 2025\u202fг."
    assert RU.date("2017") == "2017"


def test_edition_date_is_today_in_the_reports_time_zone(tmp_path: Path) -> None:
    from conftest import write_project

    report = config.load(write_project(tmp_path)).report("brief")
    # 20:30 UTC on 4 November is already 5 November in Almaty (UTC+5).
    assert edition_date(report, lambda: datetime(2025, 11, 4, 20, 30, tzinfo=timezone.utc)) == date(2025, 11, 5)
    assert edition_date(report, lambda: datetime(2025, 11, 4, 18, 30, tzinfo=timezone.utc)) == date(2025, 11, 4)


def test_the_theme_catalogues_are_complete_and_current() -> None:
    from babel.messages.pofile import read_po

    from reporter.pipeline.catalogues import THEME_TEMPLATE

    template = {m.id for m in read_po(THEME_TEMPLATE.open("rb")) if m.id}
    with (THEME_DIR / "locale" / "ru" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    assert {m.id for m in catalog if m.id} == template, "run `make i18n`"
    untranslated = [m.id for m in catalog if m.id and not (all(m.string) if isinstance(m.string, tuple) else m.string)]
    assert untranslated == [] and not [m.id for m in catalog if m.fuzzy and m.id]
    assert catalog.num_plurals == 3


# --- charts -----------------------------------------------------------------------------

SPECS = {
    "series": ChartSpec("s", "series", {"ru": "Ряд", "en": "Series"}, resource="series", x="year", y="tonnes",
                        unit="tonnes", highlight=(2024,)),
    "line": ChartSpec("l", "series", {"ru": "Линия", "en": "Line"}, resource="series", x="year", y="tonnes",
                      unit="tonnes", highlight=(2024,), style="line"),
    "bars": ChartSpec("b", "bars", {"ru": "Столбцы", "en": "Bars"}, resource="partners", label="label",
                      value="share_2024", unit="percent", highlight=("cn",)),
    "vertical": ChartSpec("v", "bars", {"ru": "Столбцы", "en": "Bars"}, resource="partners", label="label",
                          value="share_2024", unit="percent", direction="vertical"),
    "facts": ChartSpec("f", "bars", {"ru": "Факты", "en": "Facts"}, facts=("share", "small", "band")),
    "compare": ChartSpec("c", "compare", {"ru": "Сравнение", "en": "Compare"}, resource="partners", label="label",
                         before="share_2020", after="share_2024", periods=("2020", "2024"), unit="percent"),
    "shares": ChartSpec("sh", "shares", {"ru": "Доли", "en": "Shares"}, facts=("share", "small", "band")),
    "timeline": ChartSpec("t", "timeline", {"ru": "События", "en": "Events"}, resource="events"),
}


@pytest.mark.parametrize("kind", SPECS)
def test_charts_are_byte_identical_for_identical_input(known: model.Knowledge, kind: str) -> None:
    first = charts.draw(SPECS[kind], known, RU, FONTS)
    second = charts.draw(SPECS[kind], known, RU, FONTS)
    assert first.svg == second.svg
    assert first.svg != charts.draw(SPECS[kind], known, EN, FONTS).svg
    assert b"<dc:date>" not in first.svg
    assert first.sources, "every chart cites the sources of its numbers"


def test_chart_text_is_real_text_in_the_document_font_and_locale(known: model.Knowledge) -> None:
    ru = charts.draw(SPECS["series"], known, RU, FONTS).svg.decode()
    en = charts.draw(SPECS["series"], known, EN, FONTS).svg.decode()
    assert "<text" in ru and "PT Sans" in ru
    assert "23\u00a0270" in ru and "тонн" in ru   # Russian group separator is a no-break space
    assert "23,270" in en and "tonnes" in en


@pytest.mark.parametrize("kind", ["series", "line", "bars"])
def test_exactly_one_highlighted_point(known: model.Knowledge, kind: str) -> None:
    svg = charts.draw(SPECS[kind], known, EN, FONTS).svg.decode()
    assert len(re.findall(r"fill: ?" + charts.ACCENT, svg)) == 2, "one bar or point, and its value label"


def test_shares_keep_their_qualifiers_and_decimals(known: model.Knowledge) -> None:
    ru = charts.draw(SPECS["shares"], known, RU, FONTS).svg.decode()
    en = charts.draw(SPECS["shares"], known, EN, FONTS).svg.decode()
    assert "24,1\u00a0%" in ru and "около\u00a020–22\u00a0%" in ru and "0,7\u00a0%" in ru
    assert "24.1%" in en and "about\u00a020–22%" in en


def test_category_labels_come_per_language(known: model.Knowledge) -> None:
    ru = charts.draw(SPECS["bars"], known, RU, FONTS)
    en = charts.draw(SPECS["bars"], known, EN, FONTS)
    assert "Европейский союз" in ru.svg.decode() and "European Union" in en.svg.decode()
    assert [row[0] for row in en.rows[1:]] == ["China", "Russia", "European Union", "Türkiye"]


def test_a_chart_without_sources_says_so(tmp_path: Path) -> None:
    tables = dict(CSV, partners=PARTNERS.replace(",source", "").replace(",news-2024", ""))
    chart = charts.draw(SPECS["bars"], knowledge(tmp_path, tables), EN, FONTS)
    assert chart.sources == ()


# Labels a reader would write: long, many words, a long word, values near the whole.
LONG = "Kazakhstan's share of Central Asian exports to the United States of America and Canada"
ADVERSE = """\
id,label_ru,label_en,share_2020,share_2024,source
a,Очень длинное название категории с низкообогащённым ураном и прочими словами,{long},99.9,97,news-2024
b,Ж,X,0.1,0.2,news-2024
c,Сверхдлиннословонеразрываемоеникогда,Supercalifragilisticexpialidocious,100,100,news-2024
d,Доля,Share,-12.5,3,news-2024
"""


@pytest.mark.parametrize("kind", ["bars", "compare", "vertical"])
@pytest.mark.parametrize("lang", ["ru", "en"])
def test_labels_fit_never_run_past_a_bar_and_never_break_inside_a_word(tmp_path: Path, kind: str, lang: str) -> None:
    tables = dict(CSV, partners=ADVERSE.format(long=LONG))
    known = knowledge(tmp_path, tables)
    language = RU if lang == "ru" else EN
    spec = SPECS[kind]
    try:
        chart = charts.draw(spec, known, language, FONTS)
    except ChartError as exc:
        # Vertical bars cannot hold these labels: that is said, not drawn badly.
        assert kind == "vertical" and "its labels do not fit" in str(exc)
        return
    svg = chart.svg.decode()
    words = {w for row in ADVERSE.format(long=LONG).splitlines()[1:] for w in row.split(",")[1 if lang == "ru" else 2].split()}
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert texts, "chart text is real text, one element per line"
    for text in texts:
        for token in text.replace("&#39;", "'").split():
            # A piece of a label's word that is not itself a whole word: a word broken in two.
            broken = token not in words and any(token in word for word in words)
            assert not broken, f"{token!r} is part of a word broken across lines"


@given(labels=st.lists(st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzабвгд "), min_size=1, max_size=70)
                       .filter(str.strip), min_size=1, max_size=8),
       shares=st.lists(st.decimals(min_value=0, max_value=100, places=1), min_size=8, max_size=8))
@settings(max_examples=25, deadline=None)
def test_any_labels_and_values_lay_out_without_overlap(tmp_path_factory: pytest.TempPathFactory, labels: list[str],
                                                        shares: list[Decimal]) -> None:
    rows = "".join(f"k{i},{label.strip()},{label.strip()},{shares[i]},{shares[-1 - i]},news-2024\n"
                   for i, label in enumerate(labels))
    known = knowledge(tmp_path_factory.mktemp("h"), dict(CSV, partners="id,label_ru,label_en,share_2020,share_2024,source\n" + rows))
    for kind in ("bars", "compare"):
        # draw() refuses any layout with overlapping text or labels over bars; none here may be refused.
        charts.draw(SPECS[kind], known, EN, FONTS)


def test_layout_problems_sees_overlaps_and_overflow() -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1), dpi=72)
    ax = figure.add_axes((0, 0, 1, 1))
    (bar,) = ax.bar([0.5], [0.8], width=0.5)
    bar.set_gid("bar")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.text(0.5, 0.5, "over the bar")
    ax.text(0.95, 0.1, "past the right edge of the figure")
    problems = charts.layout_problems(figure)
    assert any("runs over a bar" in p for p in problems)
    assert any("runs outside the figure" in p for p in problems)


def test_an_unknown_fact_in_a_chart_is_named(known: model.Knowledge) -> None:
    with pytest.raises(ChartError) as caught:
        charts.draw(replace(SPECS["facts"], facts=("share", "nope")), known, EN, FONTS)
    assert "names unknown facts: nope" in str(caught.value)


UNITS = [None, values.PERCENT, values.PLAIN,
         values.Unit("t", format="cldr", cldr="mass-tonne"),
         values.Unit("y", format="cldr", cldr="duration-year", length="long"),
         values.Unit("usd", format="currency", currency="USD"),
         values.Unit("usd_bn", format="currency", currency="USD", scale="billion"),
         values.Unit("times", format="forms", forms={"ru": {"one": "в {n} раз", "few": "в {n} раза", "many": "в {n} раз",
                                                            "other": "в {n} раза"},
                                                     "en": {"one": "{n} time", "other": "{n} times"}})]


@given(text=st.integers(0, 5).flatmap(lambda p: st.decimals(min_value=-10**12, max_value=10**12, places=p,
                                                            allow_nan=False, allow_infinity=False)).map(str),
       upper=st.none() | st.integers(0, 10**6).map(str), unit=st.sampled_from(UNITS),
       qualifier=st.none() | st.sampled_from(list(values.QUALIFIERS)), lang=st.sampled_from(["ru", "en"]))
@settings(max_examples=300, deadline=None)
def test_any_figure_formats_in_one_unbreakable_piece(text: str, upper: str | None, unit, qualifier, lang: str) -> None:
    value = n(text)
    printed = values.qualified(value, unit, qualifier, RU if lang == "ru" else EN, upper=n(upper) if upper else None)
    assert printed and " " not in printed and "\n" not in printed
    # The number is there exactly as written, whatever the unit wraps around it.
    digits = values.number(value, RU if lang == "ru" else EN, grouping=unit is not values.PLAIN)
    # (A negative amount of money may put its sign before the currency: -US$1.)
    assert digits.replace(" ", "\u00a0").lstrip("-") in printed and printed.count("-") == digits.count("-"), (digits, printed)
