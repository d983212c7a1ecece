"""The archive site (output/index.html and a page per report), built from real renders through the
CLI and read in a real browser (Debian's chromium): every link resolves, nothing logs an error,
the pages read at 390 px and 1280 px, and the keyboard reaches every link.

The project's first report is bilingual with Russian first, so the site speaks Russian.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from browser import browser
from conftest import normalise, run_cli
from projects import make_project, report_block

pytestmark = pytest.mark.slow

BRIEF, OTHER = "brief", "other"
MANIFEST_LINE = {"ru": "Изменились 2 цифры, 1 новая", "en": "2 figures changed, 1 new"}


@dataclass
class Archive:
    folder: Path
    config: Path
    output: Path
    after_render: dict[str, str]  # the site's pages as the last successful render left them
    site_stdout: str


def _render(config: Path, *args: str) -> None:
    result = run_cli("--config", str(config), "render", *args)
    assert result.returncode == 0, result.stderr


def _manifest(edition: Path, report: str, previous: str | None, line: dict[str, str]) -> None:
    (edition / "manifest.json").write_text(json.dumps({
        "format": 1, "report": report, "edition_date": edition.name, "languages": ["ru", "en"],
        "changes": {"previous": previous, "new": ["firms"], "changed": ["output", "share"], "removed": [], "line": line},
    }, ensure_ascii=False), encoding="utf-8")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    folder = tmp_path_factory.mktemp("archive")
    config = make_project(folder, [report_block(BRIEF, schedule=None),
                                   report_block(OTHER, schedule=None, languages='["en"]', formats='["html"]')])
    output = folder / "output"
    _render(config, BRIEF, "--date", "2025-11-03", "--format", "html")
    _render(config, BRIEF, "--date", "2025-11-04", "--format", "html")
    _render(config, BRIEF, "--date", "2025-11-05", "--lang", "ru")  # the PDF edition, Russian only
    # A run that fails leaves no files, and the archive says so.
    facts = folder / "data" / "brief" / "facts.csv"
    good = facts.read_text(encoding="utf-8")
    facts.write_text(good.replace("firms,630,", "firms,many,"), encoding="utf-8")
    assert run_cli("--config", str(config), "render", OTHER, "--date", "2025-11-05").returncode == 1
    # A run that fails after an earlier one wrote the edition: its files stay, and the archive says whose they are.
    assert run_cli("--config", str(config), "render", BRIEF, "--date", "2025-11-03", "--format", "html").returncode == 1
    facts.write_text(good, encoding="utf-8")
    _render(config, OTHER, "--date", "2025-11-04")
    after_render = {name: (output / name).read_text(encoding="utf-8") for name in ("index.html", f"{OTHER}/index.html")}

    # An edition the history never saw (copied in from elsewhere), manifests old and new, and a
    # damaged one, and the delivery record an edition keeps.
    shutil.copytree(output / BRIEF / "2025-11-03", output / BRIEF / "2025-10-27")
    (output / BRIEF / "2025-10-27" / "manifest.json").unlink()  # as from a reporter older than manifests
    _manifest(output / BRIEF / "2025-11-03", BRIEF, None, {"ru": "Первый выпуск", "en": "First edition"})
    _manifest(output / BRIEF / "2025-11-04", BRIEF, "2025-11-03", MANIFEST_LINE)
    (output / BRIEF / "2025-11-05" / "manifest.json").write_text("{not json", encoding="utf-8")
    _manifest(output / OTHER / "2025-11-04", OTHER, None, {"en": "First edition"})
    sent = [{"lang": lang, "recipient": address, "kind": "to", "sent_at": "2025-11-04T03:00:00+00:00",
             "message_id": None, "sha256": None, "reply": "250 OK"}
            for lang, address in (("ru", "a@example.org"), ("en", "b@example.org"))]
    (output / BRIEF / "2025-11-04" / "deliveries.json").write_text(
        json.dumps({"version": 1, "report": BRIEF, "edition_date": "2025-11-04", "deliveries": sent}), encoding="utf-8")
    site = run_cli("--config", str(config), "site")
    assert site.returncode == 0, site.stderr
    return Archive(folder, config, output, after_render, site.stdout)


@pytest.fixture(scope="module")
def chromium():
    with browser() as opened:
        yield opened


def _rows(page) -> list[dict]:
    return page.evaluate("""() => [...document.querySelectorAll('table.editions tbody tr')].map(tr => ({
        id: tr.id,
        date: tr.querySelector('th').innerText.trim(),
        links: [...tr.querySelectorAll('a')].map(a => [a.getAttribute('hreflang'), a.innerText.trim(), a.getAttribute('href')]),
        cells: [...tr.querySelectorAll('td')].map(td => td.innerText.replace(/\\s+/g, ' ').trim()),
        changeLang: tr.querySelector('td.change').getAttribute('lang'),
    }))""")


def test_every_edition_is_listed_newest_first_with_files_status_delivery_and_change(archive: Archive, chromium) -> None:
    assert archive.site_stdout.split() == [str(archive.output / "index.html"), str(archive.output / BRIEF / "index.html"),
                                           str(archive.output / OTHER / "index.html")]
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.goto((archive.output / BRIEF / "index.html").as_uri())
    assert page.evaluate("document.documentElement.lang") == "ru"
    assert page.inner_text("h1") == "Обзор торговли: тестовый брифинг"
    rows = _rows(page)
    assert [r["id"] for r in rows] == ["edition-2025-11-05", "edition-2025-11-04", "edition-2025-11-03", "edition-2025-10-27"]
    assert normalise(rows[0]["date"]) == "5 ноября 2025 г."
    assert rows[0]["links"] == [["ru", "PDF", "2025-11-05/brief.ru.pdf"], ["ru", "HTML", "2025-11-05/brief.ru.html"]]
    assert rows[1]["links"] == [["ru", "HTML", "2025-11-04/brief.ru.html"], ["en", "HTML", "2025-11-04/brief.en.html"]]
    # run, delivery, what changed
    cells = {r["id"][8:]: r["cells"][1:] for r in rows}
    assert cells == {
        "2025-11-05": ["готово", "—", "—"],  # its manifest is damaged: nothing to say, and no failure
        "2025-11-04": ["готово", "отправлено: 2", MANIFEST_LINE["ru"]],
        "2025-11-03": ["сбой файлы от прошлого запуска", "—", "Первый выпуск"],
        "2025-10-27": ["нет в истории", "—", "—"],
    }
    assert "Русский" in rows[1]["cells"][0] and "English" in rows[1]["cells"][0]

    page.goto((archive.output / OTHER / "index.html").as_uri())
    rows = _rows(page)
    assert [r["id"] for r in rows] == ["edition-2025-11-05", "edition-2025-11-04"]
    assert rows[0]["links"] == [] and rows[0]["cells"] == ["нет файлов", "сбой", "—", "—"]
    assert rows[1]["links"] == [["en", "HTML", "2025-11-04/other.en.html"]]
    # A report without the site's language keeps its own title, marked as such for screen readers.
    assert page.inner_text("h1") == "Trade review: a test brief" and page.get_attribute("h1", "lang") == "en"
    assert rows[1]["cells"][3] == "First edition" and rows[1]["changeLang"] == "en"

    page.goto((archive.output / "index.html").as_uri())
    reports = page.evaluate("""() => [...document.querySelectorAll('.reports > li')].map(li => ({
        title: li.querySelector('h2').innerText, href: li.querySelector('h2 a').getAttribute('href'),
        text: li.innerText.replace(/\\s+/g, ' ')}))""")
    page.close()
    assert [(r["title"], r["href"]) for r in reports] == [
        ("Обзор торговли: тестовый брифинг", "brief/index.html"), ("Trade review: a test brief", "other/index.html")]
    assert "Последний выпуск: 5 ноября 2025 г. · готово" in reports[0]["text"] and "4 выпуска" in reports[0]["text"]
    assert "Последний выпуск: 5 ноября 2025 г. · сбой" in reports[1]["text"] and "2 выпуска" in reports[1]["text"]


def test_a_render_rebuilds_the_site(archive: Archive) -> None:
    # Before `reporter site` ran: the render itself had rebuilt it, newest edition included.
    assert 'href="other/index.html"' in archive.after_render["index.html"]
    assert 'href="brief/2025-11-05/brief.ru.pdf"' in archive.after_render["index.html"]
    assert 'href="2025-11-04/other.en.html"' in archive.after_render[f"{OTHER}/index.html"]


def _links(page) -> list[str]:
    return page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("name", ["index.html", f"{BRIEF}/index.html", f"{OTHER}/index.html"])
def test_the_site_reads_navigates_and_tabs_at_phone_and_desktop_widths(archive: Archive, chromium, name: str, width: int) -> None:
    phone = width < 600
    page = chromium.new_page(viewport={"width": width, "height": 844}, is_mobile=phone, has_touch=phone)
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    url = (archive.output / name).as_uri()
    page.goto(url)
    layout = page.evaluate("""() => ({
        scroll: document.documentElement.scrollWidth,
        widest: Math.max(...[...document.querySelectorAll('body *')].map(e => e.getBoundingClientRect().right)),
        font: Math.min(...[...document.querySelectorAll('a, td, p')].map(e => parseFloat(getComputedStyle(e).fontSize))),
        viewport: !!document.querySelector('meta[name=viewport]'),
        scripts: document.scripts.length,
    })""")
    assert layout["scroll"] <= width, f"{name} is {layout['scroll']} px wide in a {width} px window"
    assert layout["widest"] <= width + 1  # the visually hidden caption is 1 px
    assert layout["font"] >= 14 and layout["viewport"] and layout["scripts"] == 0

    links = _links(page)
    assert links, f"{name} has no links"
    # Relative links only, each to a file inside the output folder.
    for href in links:
        assert href.startswith("file://")
        target = Path(href.removeprefix("file://"))
        assert target.is_file(), f"{name}: {href} does not exist"
        assert archive.output in target.parents

    # The keyboard reaches every link, in order, from the top of the page.
    reached: list[str] = []
    for _ in range(len(links) + 3):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement && document.activeElement.href || ''"))
    assert [h for h in reached if h][: len(links)] == links
    # A focused link shows it (the outline), as WCAG asks.
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"

    # Every link opens in the browser.
    for href in dict.fromkeys(links):
        response = page.goto(href)
        assert response is not None and response.ok, href
    page.close()
    assert errors == []


def test_a_scheduled_run_rebuilds_the_site(tmp_path: Path) -> None:
    config = make_project(tmp_path, [report_block("r", schedule="0 8 * * 1", languages='["en"]', formats='["html"]')])
    result = run_cli("--config", str(config), "run-due", env={"REPORTER_NOW": "2025-11-03T08:00:20+05:00"})
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "output" / "r" / "index.html").read_text(encoding="utf-8")
    assert 'href="2025-11-03/r.en.html"' in page and 'status-ok">ok<' in page  # an English-only project: an English site
    assert "Newest edition" in (tmp_path / "output" / "index.html").read_text(encoding="utf-8")


def test_a_site_that_cannot_be_written_is_a_warning_and_the_render_stands(tmp_path: Path) -> None:
    config = make_project(tmp_path, [report_block("r", schedule=None, languages='["en"]', formats='["html"]')])
    (tmp_path / "output" / "index.html").mkdir(parents=True)  # where the site's first page goes
    result = run_cli("--config", str(config), "render", "r", "--date", "2025-11-03")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "output" / "r" / "2025-11-03" / "r.en.html")
    assert "the archive site was not rebuilt" in result.stderr and "Traceback" not in result.stderr
    # By hand, the same problem is the command's error: one line, exit 1.
    by_hand = run_cli("--config", str(config), "site")
    assert by_hand.returncode == 1 and "Traceback" not in by_hand.stderr
    assert [line for line in by_hand.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {tmp_path / 'output' / 'index.html'}: is a folder, where the archive site's page goes; move it aside"]


def test_a_render_elsewhere_leaves_the_archive_alone(tmp_path: Path) -> None:
    config = make_project(tmp_path, [report_block("r", schedule=None, languages='["en"]', formats='["html"]')])
    _render(config, "r", "--date", "2025-11-03", "--output", str(tmp_path / "elsewhere"))
    assert not (tmp_path / "output").exists() and not (tmp_path / "elsewhere" / "index.html").exists()
    # A project without editions gets a site that says so.
    site = run_cli("--config", str(config), "site")
    assert site.returncode == 0, site.stderr
    assert "No editions yet" in (tmp_path / "output" / "index.html").read_text(encoding="utf-8")


def test_the_site_of_two_reports_with_fifty_editions_each_lists_every_edition(tmp_path: Path) -> None:
    from reporter import config as config_module
    from reporter.site.archive import build_site
    from reporter.state.history import ArtifactRecord, History

    config = make_project(tmp_path, [report_block("a", schedule=None), report_block("b", schedule=None)])
    project = config_module.load(config)
    history = History.at(project.state_path)
    now = datetime(2025, 11, 1, tzinfo=timezone.utc)
    for report in ("a", "b"):
        for n in range(50):
            day = date.fromordinal(date(2025, 1, 1).toordinal() + n)
            folder = project.output_dir / report / day.isoformat()
            folder.mkdir(parents=True)
            files = []
            for lang in ("ru", "en"):
                for fmt in ("pdf", "html"):
                    path = folder / f"{report}.{lang}.{fmt}"
                    path.write_bytes(b"x" * 100)
                    files.append(ArtifactRecord(str(path), lang, fmt, "0" * 64, 100))
            run = history.start_run(report, day, "manual", now)
            history.finish_run(run, "ok", now, files=files)
            _manifest(folder, report, None, MANIFEST_LINE)
    pages = build_site(project, history)  # how fast: benchmarks/site_bench.py, not a timed test
    history.close()
    assert len(pages) == 3
    text = (project.output_dir / "a" / "index.html").read_text(encoding="utf-8")
    assert text.count("<tr id=") == 50 and text.count(MANIFEST_LINE["ru"]) == 50
