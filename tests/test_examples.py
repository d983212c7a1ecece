"""The shipped examples: every dataset is a valid Frictionless Data Package, and every shipped
report validates and renders, in a copy of the project, into pages a reader would keep.

These tests take the example project as a whole, whatever reports it holds, so adding a report
to it adds it here; nothing else in the suite reads it. ``frictionless`` (v5), the standard's
reference implementation, is a test-only dependency.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import frictionless
import pytest

from conftest import ROOT, run_cli
from pdf_reading import pages

PACKAGES = sorted(p.parent for p in (ROOT / "data").glob("*/datapackage.json"))


def _errors(report):
    """Every error in a frictionless report as (type, resource, row, field, note)."""
    found = [(e.type, None, None, None, e.note) for e in report.errors]
    for task in report.tasks:
        for e in task.errors:
            found.append((e.type, task.name, getattr(e, "row_number", None), getattr(e, "field_name", None), e.note))
    return found


def _describe(report):
    return "\n".join(f"{t} [{res} row {row} field {field}]: {note}" for t, res, row, field, note in _errors(report))


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_package_is_valid_per_frictionless(package: Path) -> None:
    report = frictionless.validate(str(package / "datapackage.json"))
    assert report.valid, f"frictionless reports errors in {package}:\n" + _describe(report)
    descriptor = json.loads((package / "datapackage.json").read_text(encoding="utf-8"))
    # Every declared resource was actually read and checked, none skipped.
    assert sorted(task.name for task in report.tasks) == sorted(r["name"] for r in descriptor["resources"])
    assert all(task.stats["rows"] > 0 for task in report.tasks)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_descriptor_documents_every_field_and_binds_sources(package: Path) -> None:
    descriptor = json.loads((package / "datapackage.json").read_text(encoding="utf-8"))
    assert descriptor["profile"] == "tabular-data-package" and descriptor["name"] == package.name
    assert descriptor["title"] and descriptor["description"]
    for resource in descriptor["resources"]:
        schema = resource["schema"]
        for field in schema["fields"]:
            assert field.get("title") and field.get("description"), f"{resource['name']}.{field['name']} lacks title/description"
        if any(f["name"] == "source" for f in schema["fields"]):
            assert {"fields": "source", "reference": {"resource": "sources", "fields": "id"}} in schema["foreignKeys"]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_csv_files_are_utf8_lf_with_header_matching_schema(package: Path) -> None:
    # frictionless accepts CRLF line endings and a BOM (and so does reporter); the examples
    # keep to the plainest form.
    descriptor = json.loads((package / "datapackage.json").read_text(encoding="utf-8"))
    for resource in descriptor["resources"]:
        raw = (package / resource["path"]).read_bytes()
        text = raw.decode("utf-8")
        assert not text.startswith("\ufeff") and "\r" not in text and text.endswith("\n"), resource["path"]
        header = next(csv.reader(text.splitlines()))
        assert header == [f["name"] for f in resource["schema"]["fields"]], resource["path"]


def test_frictionless_sees_a_broken_foreign_key(tmp_path: Path) -> None:
    # The check above can fail: a fact citing an unknown source is invalid to frictionless.
    broken = tmp_path / "pkg"
    shutil.copytree(PACKAGES[0], broken)
    facts = broken / "facts.csv"
    rows = list(csv.reader(facts.read_text(encoding="utf-8").splitlines()))
    rows[1][rows[0].index("source")] = "no-such-source"
    with facts.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    report = frictionless.validate(str(broken / "datapackage.json"))
    fk_errors = [e for e in _errors(report) if e[0] == "foreign-key"]
    assert not report.valid and [(e[1], e[2]) for e in fk_errors] == [("facts", 2)]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped project, so rendering it writes nothing into the repository."""
    folder = tmp_path_factory.mktemp("example")
    shutil.copy(ROOT / "reports.toml", folder / "reports.toml")
    for name in ("data", "templates"):
        shutil.copytree(ROOT / name, folder / name)
    return folder / "reports.toml"


def test_the_shipped_project_validates(example: Path) -> None:
    result = run_cli("--config", str(example), "validate")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr


@pytest.mark.slow
def test_every_shipped_report_renders_pages_a_reader_would_keep(example: Path) -> None:
    import tomllib

    reports = tomllib.loads(example.read_text(encoding="utf-8"))["reports"]
    for report_id, table in reports.items():
        result = run_cli("--config", str(example), "render", report_id, "--date", "2025-11-05")
        assert result.returncode == 0, result.stderr
        assert "WeasyPrint" not in result.stderr, result.stderr  # no CSS or resource warnings either
        for lang in table["languages"]:
            path = example.parent / "output" / report_id / "2025-11-05" / f"{report_id}.{lang}.pdf"
            read = pages(path)
            last = read[-1].body()
            assert len(last) >= 3 and sum(len(line.text) for line in last) >= 80, (report_id, lang, last)
            headings = [s["title"][lang] for s in table.get("sections", [])]
            for page in read:
                body = page.body()
                assert not (body and body[-1].text in headings), f"{report_id} {lang}: {body[-1].text!r} ends page {page.number}"


def test_the_shipped_project_holds_only_its_own_files_and_uses_the_packaged_theme() -> None:
    # The example is a project like any desk's: its narratives only. The layout, CSS, fonts and
    # catalogues are the package's, so a file here with a theme file's name would hide that.
    theme = ROOT / "reporter" / "theme"
    shipped = {p.relative_to(theme) for p in theme.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    own = {p.relative_to(ROOT / "templates") for p in (ROOT / "templates").rglob("*") if p.is_file()}
    assert own and not own & shipped
    assert all(path.name.startswith("narrative.") for path in own), sorted(own)
    assert not (ROOT / "locale").exists()
