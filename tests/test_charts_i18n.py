"""Charts and locale formats: deterministic SVG with real text; Babel formats and plural forms."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

import pytest

from conftest import ROOT
from reporter import config
from reporter.pipeline import charts, datasets, i18n
from reporter.config import edition_date

PROJECT = config.load(ROOT / "reports.toml")
REPORT = PROJECT.report("kz-us")
DATASET = datasets.load(ROOT / "data", "kz-us")
FONTS = ROOT / "templates" / "fonts"


def lang(code: str) -> i18n.Language:
    return i18n.language(code, PROJECT.locale_of(code))


@pytest.mark.parametrize("spec", REPORT.charts, ids=lambda s: s.id)
def test_charts_are_byte_identical_for_identical_input(spec: config.ChartSpec) -> None:
    first = charts.draw(spec, DATASET, lang("ru"), FONTS)
    second = charts.draw(spec, DATASET, lang("ru"), FONTS)
    assert first.svg == second.svg
    assert first.svg != charts.draw(spec, DATASET, lang("en"), FONTS).svg
    assert b"<dc:date>" not in first.svg


def test_chart_text_is_real_text_in_the_document_font_and_locale() -> None:
    spec = next(s for s in REPORT.charts if s.id == "production")
    ru = charts.draw(spec, DATASET, lang("ru"), FONTS).svg.decode()
    en = charts.draw(spec, DATASET, lang("en"), FONTS).svg.decode()
    assert "<text" in ru and "PT Sans" in ru and "<path d=" in ru
    assert "23\u00a0270" in ru and "тонн урана" in ru   # Russian group separator is a no-break space
    assert "23,270" in en and "tonnes of uranium" in en
    # 2024 is highlighted: the accent colour fills exactly one bar.
    assert len(re.findall(r"fill: ?#c8553d", ru)) >= 1


def test_shares_chart_keeps_qualifiers() -> None:
    spec = next(s for s in REPORT.charts if s.id == "shares")
    ru = charts.draw(spec, DATASET, lang("ru"), FONTS).svg.decode()
    en = charts.draw(spec, DATASET, lang("en"), FONTS).svg.decode()
    assert "более 40\u00a0%" in ru and "до 97\u00a0%" in ru and "около 14\u00a0%" in ru
    assert "more than 40%" in en and "up to 97%" in en


@pytest.mark.parametrize(("n", "expected"), [(1, "1 компания"), (3, "3 компании"), (5, "5 компаний"),
                                             (11, "11 компаний"), (21, "21 компания"), (630, "630 компаний")])
def test_russian_plural_forms(n: int, expected: str) -> None:
    assert lang("ru").quantity(n, "companies") == expected


def test_english_forms() -> None:
    en = lang("en")
    assert en.quantity(1, "companies") == "1 company"
    assert en.qualified(630, "companies", "more_than") == "more than 630 companies"
    assert en.qualified(4, "usd_billion", "more_than") == "more than $4 billion"
    assert en.date(date(2025, 11, 5)) == "5 November 2025"
    assert en.date("2025-09") == "September 2025"


def test_russian_forms() -> None:
    ru = lang("ru")
    assert ru.quantity(23270, "tonnes_uranium") == "23\u00a0270 т"
    assert ru.qualified(50, "usd_million", "almost") == "почти 50 млн долл. США"
    assert ru.date(date(2025, 11, 5)) == "5 ноября 2025\u202fг."
    assert ru.date("2017") == "2017"


def test_edition_date_is_today_in_the_reports_time_zone() -> None:
    # 20:30 UTC on 4 November is already 5 November in Almaty (UTC+5).
    assert edition_date(REPORT, lambda: datetime(2025, 11, 4, 20, 30, tzinfo=timezone.utc)) == date(2025, 11, 5)
    assert edition_date(REPORT, lambda: datetime(2025, 11, 4, 18, 30, tzinfo=timezone.utc)) == date(2025, 11, 4)


def test_catalogues_are_complete() -> None:
    from babel.messages.pofile import read_po

    with (ROOT / "reporter" / "pipeline" / "locale" / "ru" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    untranslated = [m.id for m in catalog if m.id and not (all(m.string) if isinstance(m.string, tuple) else m.string)]
    assert untranslated == []
    assert catalog.num_plurals == 3
