"""The shipped brief end to end: PDFs and HTML as a reader gets them, read back with real tools."""

from __future__ import annotations

import re
import subprocess
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pypdf
import pytest

from conftest import EDITION, normalise, run_cli

pytestmark = pytest.mark.slow


def pdf_text(path: Path) -> str:
    return normalise(subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                                    text=True, check=True).stdout)


def test_writes_both_languages_and_formats(rendered: Path) -> None:
    names = sorted(p.name for p in rendered.iterdir())
    assert names == ["kz-us.en.html", "kz-us.en.pdf", "kz-us.ru.html", "kz-us.ru.pdf"]
    assert not [p for p in rendered.parent.rglob("*.part")], "temporary files left behind"


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_pdf_is_a4_with_pages_and_metadata(rendered: Path, lang: str) -> None:
    reader = pypdf.PdfReader(rendered / f"kz-us.{lang}.pdf")
    assert 4 <= len(reader.pages) <= 8
    width, height = (float(v) for v in reader.pages[0].mediabox.upper_right)
    assert (round(width), round(height)) == (595, 842)  # A4 in points
    info = reader.metadata
    title = {"ru": "Казахстан — США: C5+1", "en": "Kazakhstan – USA: C5+1"}[lang]
    assert info.title.startswith(title)
    assert info.creation_date.replace(tzinfo=timezone.utc) == datetime(2025, 11, 5, tzinfo=timezone.utc)
    assert reader.trailer["/Root"]["/Lang"] == lang


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_every_font_is_embedded_and_ours(rendered: Path, lang: str) -> None:
    out = subprocess.run(["pdffonts", str(rendered / f"kz-us.{lang}.pdf")], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines()[2:] if line.strip()]
    assert rows, out
    for row in rows:
        name, emb = row[0], row[-5]
        assert emb == "yes", f"{name} not embedded:\n{out}"
        assert re.match(r"^[A-Z]{6}\+PT-(Sans|Serif)", name), f"{name} is not a shipped font:\n{out}"


def test_russian_pdf_text_in_russian_formats(rendered: Path) -> None:
    text = pdf_text(rendered / "kz-us.ru.pdf")
    for expected in ("23 270 т", "более 630 компаний", "около 14 %", "более 40 %", "до 97 %",
                     "почти 50 млн долл. США", "5 ноября 2025 г.", "Казатомпром", "Ключевые цифры",
                     "Хронология", "Источники", "сентябрь 2025 г.", "Стр. 1 / "):
        assert expected in text, expected
    # The shipped plural forms: 2 companies in oil and gas, 1 in aviation.
    assert "2 компании" in text and "1 компания" in text
    # The running header: title and edition date on pages after the first.
    reader = pypdf.PdfReader(rendered / "kz-us.ru.pdf")
    assert "Казахстан — США: C5+1" in normalise(reader.pages[1].extract_text())


def test_english_pdf_text_in_english_formats(rendered: Path) -> None:
    text = pdf_text(rendered / "kz-us.en.pdf")
    for expected in ("23,270 t", "more than 630 companies", "about 14%", "up to 97%", "almost $50 million",
                     "5 November 2025", "Key figures", "Timeline", "Sources", "September 2025"):
        assert expected in text, expected
    assert "компани" not in text


def test_citations_point_at_the_sources_section(rendered: Path) -> None:
    html = (rendered / "kz-us.en.html").read_text(encoding="utf-8")
    targets = set(re.findall(r'href="#(src-[a-z0-9-]+)"', html))
    ids = set(re.findall(r'<li id="(src-[a-z0-9-]+)"', html))
    assert targets and targets <= ids
    assert 'href="#src-trend-2025-11-05">[1]<' in html


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)
                if tag == "img":
                    self.images.append(value)
        if tag in ("link", "script"):
            self.refs.append(f"<{tag}>")


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_html_is_self_contained(rendered: Path, lang: str) -> None:
    html = (rendered / f"kz-us.{lang}.html").read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(html)
    assert len(parser.images) == 3 and all(src.startswith("data:image/svg+xml;base64,") for src in parser.images)
    external = [ref for ref in parser.refs if not ref.startswith(("#", "data:"))]
    assert external == []
    assert "url(" not in html.split("</style>")[0], "the HTML edition must not link font files"
    assert f'<html lang="{lang}">' in html


def test_same_input_gives_identical_pdfs(rendered: Path, tmp_path: Path) -> None:
    result = run_cli("render", "kz-us", "--date", EDITION, "--output", str(tmp_path), "--format", "pdf")
    assert result.returncode == 0, result.stderr
    for lang in ("ru", "en"):
        again = tmp_path / "kz-us" / EDITION / f"kz-us.{lang}.pdf"
        assert again.read_bytes() == (rendered / f"kz-us.{lang}.pdf").read_bytes()


def test_one_language_one_format(tmp_path: Path) -> None:
    result = run_cli("render", "kz-us", "--date", EDITION, "--output", str(tmp_path), "--lang", "en", "--format", "html")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "kz-us" / EDITION).iterdir()] == ["kz-us.en.html"]
    assert result.stdout.strip() == str(tmp_path / "kz-us" / EDITION / "kz-us.en.html")
