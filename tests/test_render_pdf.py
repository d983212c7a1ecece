"""A brief end to end: PDFs and HTML as a reader gets them, read back with real tools."""

from __future__ import annotations

import re
import subprocess
import threading
from datetime import date, datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pypdf
import pytest

from conftest import EDITION, REPORT, normalise, run_cli, write_project
from pdf_reading import pages, text
from projects import PRINTED, TITLE, make_project, report_block
from reporter import config
from reporter.pipeline import build

pytestmark = pytest.mark.slow


def test_writes_both_languages_and_formats(rendered: Path) -> None:
    names = sorted(p.name for p in rendered.iterdir())
    assert names == [f"{REPORT}.en.html", f"{REPORT}.en.pdf", f"{REPORT}.ru.html", f"{REPORT}.ru.pdf", "manifest.json"]
    assert not [p for p in rendered.parent.rglob("*.part")], "temporary files left behind"


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_pdf_is_a4_with_pages_and_metadata(rendered: Path, lang: str) -> None:
    reader = pypdf.PdfReader(rendered / f"{REPORT}.{lang}.pdf")
    assert 2 <= len(reader.pages) <= 5
    width, height = (float(v) for v in reader.pages[0].mediabox.upper_right)
    assert (round(width), round(height)) == (595, 842)  # A4 in points
    info = reader.metadata
    assert info.title.startswith(TITLE[lang])
    assert info.creation_date.replace(tzinfo=timezone.utc) == datetime(2025, 11, 5, tzinfo=timezone.utc)
    assert reader.trailer["/Root"]["/Lang"] == lang
    # The running header: title and edition date on pages after the first.
    assert TITLE[lang] in normalise(reader.pages[1].extract_text())


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_every_font_is_embedded_and_ours(rendered: Path, lang: str) -> None:
    out = subprocess.run(["pdffonts", str(rendered / f"{REPORT}.{lang}.pdf")], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines()[2:] if line.strip()]
    assert rows, out
    for row in rows:
        name, emb = row[0], row[-5]
        assert emb == "yes", f"{name} not embedded:\n{out}"
        assert re.match(r"^[A-Z]{6}\+PT-(Sans|Serif)", name), f"{name} is not a theme font:\n{out}"


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_every_value_kind_prints_in_the_languages_format(rendered: Path, lang: str) -> None:
    found = text(rendered / f"{REPORT}.{lang}.pdf")
    for name, expected in PRINTED[lang].items():
        assert expected in found, (name, expected)
    assert "000000" not in found, "float noise in a decimal"
    assert ("компани" in found) is (lang == "ru")


def test_russian_dates_and_interface(rendered: Path) -> None:
    found = text(rendered / f"{REPORT}.ru.pdf")
    for expected in ("5 ноября 2025 г.", "Ключевые цифры", "Хронология", "Источники", "сентябрь 2024 г.", "Стр. 1 / "):
        assert expected in found, expected


def test_sections_come_from_the_config_in_order(rendered: Path) -> None:
    found = text(rendered / f"{REPORT}.en.pdf")
    order = [found.index(heading) for heading in ("Summary", "Key figures", "Overview", "Partners", "Timeline", "Sources")]
    assert order == sorted(order)


def test_citations_point_at_the_sources_and_urls_are_links(rendered: Path) -> None:
    html = (rendered / f"{REPORT}.en.html").read_text(encoding="utf-8")
    targets = set(re.findall(r'href="#(src-[a-z0-9-]+)"', html))
    ids = set(re.findall(r'<li id="(src-[a-z0-9-]+)"', html))
    assert targets and targets <= ids
    links = re.findall(r'<a class="url" href="([^"]+)">(.*?)</a>', html)
    assert [href for href, _ in links] == ["https://stat.example.org/publications/annual-statistics/2025-report-final",
                                           "https://news.example.org/economy/trade-report"]
    for href, shown in links:
        assert shown.replace("<wbr>", "") == href
        # A break only after '/', '.' or '-', and never inside "https://".
        assert all(before in "/.-" for before in re.findall(r"(.)<wbr>", shown)), shown
        assert shown.startswith("https://") and "<wbr>" not in shown.split("//", 1)[0] + "//"
    links_in_pdf = [a["/URI"] for page in pypdf.PdfReader(rendered / f"{REPORT}.en.pdf").pages
                    for a in (x.get_object() for x in page.get("/Annots", [])) if a.get("/A") and "/URI" in a["/A"]
                    for a in [a["/A"]]]
    assert "https://news.example.org/economy/trade-report" in links_in_pdf


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.images: list[str] = []
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and values.get("name"):
            self.meta[values["name"]] = values.get("content") or ""
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)
                if tag == "img":
                    self.images.append(value)
        if tag in ("link", "script"):
            self.refs.append(f"<{tag}>")


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_html_is_self_contained_and_reads_on_a_phone(rendered: Path, lang: str) -> None:
    html = (rendered / f"{REPORT}.{lang}.html").read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(html)
    assert len(parser.images) == 4 and all(src.startswith("data:image/svg+xml;base64,") for src in parser.images)
    external = [ref for ref in parser.refs if not ref.startswith(("#", "data:", "https://"))]
    assert external == []
    assert "url(" not in html.split("</style>")[0], "the HTML edition must not link font files"
    assert f'<html lang="{lang}">' in html
    assert parser.meta.get("viewport") == "width=device-width, initial-scale=1"
    assert "max-width: 40em" in html  # the phone layout rule is in the HTML (and not in the PDF's CSS)


def test_same_input_gives_identical_files(rendered: Path, tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    result = run_cli("--config", str(config_path), "render", REPORT, "--date", EDITION)
    assert result.returncode == 0, result.stderr
    for name in (f"{REPORT}.ru.pdf", f"{REPORT}.en.pdf", f"{REPORT}.en.html"):
        assert (tmp_path / "output" / REPORT / EDITION / name).read_bytes() == (rendered / name).read_bytes(), name


def test_one_language_one_format(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    result = run_cli("--config", str(config_path), "render", REPORT, "--date", EDITION, "--output", str(tmp_path / "o"),
                     "--lang", "en", "--format", "html")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "o" / REPORT / EDITION).iterdir()) == [f"{REPORT}.en.html", "manifest.json"]
    assert result.stdout.strip() == str(tmp_path / "o" / REPORT / EDITION / f"{REPORT}.en.html")


def test_the_timeline_is_drawn_once(rendered: Path) -> None:
    # The chart shows the dates with numbers; the list under it says what happened, once.
    found = text(rendered / f"{REPORT}.en.pdf")
    assert found.count("Transit agreement signed") == 1
    assert found.count("Trade forum") == 1


# --- pages a reader would keep ----------------------------------------------------------

NARROW = """{% extends "brief.html.j2" %}
{% block style %}main, .masthead, .end { width: 36mm; } p { orphans: 1; widows: 1; }{% endblock %}
"""


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test brief in a very narrow column, so nearly every figure meets a line end."""
    folder = tmp_path_factory.mktemp("narrow")
    config_path = make_project(folder, [report_block(REPORT, extra='layout = "narrow.html.j2"', formats='["pdf"]')])
    (folder / "templates" / "narrow.html.j2").write_text(NARROW, encoding="utf-8")
    result = run_cli("--config", str(config_path), "render", REPORT, "--date", EDITION)
    assert result.returncode == 0, result.stderr
    return folder / "output" / REPORT / EDITION


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_a_figure_never_parts_from_its_unit_or_qualifier(narrow: Path, lang: str) -> None:
    lines = [line.text for page in pages(narrow / f"{REPORT}.{lang}.pdf") for line in page.lines]
    for name, expected in PRINTED[lang].items():
        assert any(expected in line for line in lines), f"{expected!r} ({name}) is split across lines"


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_a_citation_mark_never_stands_alone_on_a_line(narrow: Path, lang: str) -> None:
    alone = []
    for page in pages(narrow / f"{REPORT}.{lang}.pdf"):
        body = page.body()
        for line in body:
            if re.fullmatch(r"(\[\d+\])+\.?,?;?", line.text):
                # Raised marks come out as a line of their own; on the page they sit beside text.
                beside = [o for o in body if o is not line and o.top < line.bottom and o.bottom > line.top]
                if not beside:
                    alone.append(line.text)
    assert alone == []


def _headings(project: config.Project, lang: str) -> list[str]:
    report = project.report(REPORT)
    standard = {"ru": ["Главное", "Ключевые цифры", "Хронология", "Источники"],
                "en": ["Summary", "Key figures", "Timeline", "Sources"]}[lang]
    return standard + [s.title[lang] for s in report.sections]


def _page_problems(path: Path, headings: list[str], captions: list[str]) -> list[str]:
    problems = []
    read = pages(path)
    for page in read:
        body = page.body()
        for index, line in enumerate(body):
            if line.text in headings and index == len(body) - 1:
                problems.append(f"heading {line.text!r} ends page {page.number}")
            if any(line.text.startswith(caption) for caption in captions) and index == 0:
                problems.append(f"caption {line.text!r} starts page {page.number}, its chart on the page before")
    last = read[-1].body()
    if len(last) < 3 or sum(len(line.text) for line in last) < 80:
        problems.append(f"the last page holds only {[line.text for line in last]}")
    return problems


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> config.Project:
    folder = tmp_path_factory.mktemp("sweep")
    return config.load(make_project(folder, [report_block(REPORT, formats='["pdf"]', languages='["en"]')]))


@pytest.mark.parametrize("filler", range(0, 40))
def test_no_heading_ends_a_page_and_no_page_holds_a_stray_line(sweep: config.Project, tmp_path: Path, filler: int) -> None:
    # One more line at the end of the last section, each time, moves the page breaks after it
    # a line at a time: the timeline's heading and chart, the sources and the colophon each
    # meet a page's foot (the last page held only the colophon at 20 lines without the fix).
    narrative = sweep.templates_dir / "brief" / "narrative.en.html.j2"
    original = narrative.read_text(encoding="utf-8")
    lines = "".join(f"<p>Line {n} moves the page breaks.</p>\n" for n in range(filler))
    end = original.index("{% endblock %}", original.index("{% block partners %}"))
    narrative.write_text(original[:end] + lines + original[end:], encoding="utf-8")
    try:
        edition = build.build_edition(sweep, sweep.report(REPORT), date(2025, 11, 5), output_dir=tmp_path)
    finally:
        narrative.write_text(original, encoding="utf-8")
    captions = [spec.title["en"] for spec in sweep.report(REPORT).charts]
    assert _page_problems(edition.artifacts[0].path, _headings(sweep, "en"), captions) == []


def _fonts_in(pdf_bytes: bytes, folder: Path) -> str:
    path = folder / "fonts.pdf"
    path.write_bytes(pdf_bytes)
    return subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout


def test_a_render_process_keeps_its_fonts_until_a_font_file_changes(tmp_path: Path) -> None:
    """One FontConfiguration per process keeps a warm worker's memory flat (docs/BENCHMARKS.md);
    it must still give the same bytes, and never an old font once the file has changed."""
    from reporter.pipeline import pdf
    from reporter.theme import THEME_DIR

    font = tmp_path / "Brand.ttf"
    font.write_bytes((THEME_DIR / "fonts" / "PTSerif-Regular.ttf").read_bytes())
    document = (f'<html lang="en"><head><title>t</title><style>@font-face {{ font-family: Brand; '
                f'src: url("{font.as_uri()}") }} body {{ font-family: Brand }}</style></head>'
                "<body><p>Kazakhstan – USA</p></body></html>")

    def render() -> bytes:
        return pdf.to_pdf(document, tmp_path, (tmp_path, THEME_DIR), "t.pdf", identifier=b"0" * 32,
                          created=datetime(2025, 11, 5, tzinfo=timezone.utc))

    def in_a_new_thread() -> bytes:  # a thread of its own starts with no fonts kept
        found = []
        worker = threading.Thread(target=lambda: found.append(render()))
        worker.start()
        worker.join()
        return found[0]

    first, second = render(), render()
    assert first == second == in_a_new_thread()
    assert "Brand" in _fonts_in(first, tmp_path)  # the font is embedded
    font.write_bytes((THEME_DIR / "fonts" / "PTSans-Regular.ttf").read_bytes())
    changed = render()
    assert changed != first
    assert changed == in_a_new_thread()
