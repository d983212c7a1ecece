"""The kz-us dataset is a valid Frictionless (tabular) Data Package.

These tests use the reference implementation, ``frictionless`` (v5), as an
independent check of data/kz-us/: the descriptor, the CSV files, their types
and constraints, and the foreign keys between resources. ``frictionless`` is a
test-only dependency; the reporter itself does not import it.
"""

import csv
import json
import shutil
from pathlib import Path

import frictionless

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO_ROOT / "data" / "kz-us"
DESCRIPTOR = PACKAGE_DIR / "datapackage.json"

EXPECTED_COLUMNS = {
    "sources": ["id", "publisher", "title", "date", "lang", "url"],
    "facts": ["id", "value", "unit", "qualifier", "as_of", "topic", "label_ru", "label_en", "source"],
    "production": ["year", "tonnes_uranium", "source", "note"],
    "sectors": ["id", "label_ru", "label_en"],
    "companies": ["name", "country", "sector", "role", "note_ru", "note_en", "source"],
    "events": ["id", "date", "label_ru", "label_en", "place_ru", "place_en", "source"],
}


def _errors(report):
    """Every error in a frictionless report as (type, resource, row, field, note)."""
    found = [(e.type, None, None, None, e.note) for e in report.errors]
    for task in report.tasks:
        for e in task.errors:
            found.append((e.type, task.name, getattr(e, "row_number", None), getattr(e, "field_name", None), e.note))
    return found


def _describe(report):
    return "\n".join(f"{t} [{res} row {row} field {field}]: {note}" for t, res, row, field, note in _errors(report))


def test_package_is_valid_per_frictionless():
    report = frictionless.validate(str(DESCRIPTOR))
    assert report.valid, "frictionless reports errors in data/kz-us:\n" + _describe(report)
    # Every declared resource was actually read and checked, none skipped.
    assert sorted(task.name for task in report.tasks) == sorted(EXPECTED_COLUMNS)
    assert all(task.stats["rows"] > 0 for task in report.tasks)


def test_descriptor_declares_the_agreed_shape():
    descriptor = json.loads(DESCRIPTOR.read_text(encoding="utf-8"))
    assert descriptor["profile"] == "tabular-data-package"
    assert descriptor["name"] == "kz-us"
    assert descriptor["title"] and descriptor["description"]

    resources = {r["name"]: r for r in descriptor["resources"]}
    assert list(resources) == list(EXPECTED_COLUMNS)
    for name, resource in resources.items():
        assert resource["path"] == f"{name}.csv"
        assert resource["profile"] == "tabular-data-resource"
        assert resource["format"] == "csv"
        assert resource["encoding"] == "utf-8"
        assert resource["mediatype"] == "text/csv"
        schema = resource["schema"]
        assert schema["missingValues"] == [""]
        assert [f["name"] for f in schema["fields"]] == EXPECTED_COLUMNS[name]
        for field in schema["fields"]:
            assert field.get("title") and field.get("description"), f"{name}.{field['name']} lacks title/description"
        # Every resource that has a `source` column binds it to sources.id.
        if "source" in EXPECTED_COLUMNS[name]:
            assert {"fields": "source", "reference": {"resource": "sources", "fields": "id"}} in schema["foreignKeys"]


def test_csv_files_are_utf8_lf_with_header_matching_schema():
    # frictionless checks header labels against the schema, but it happily
    # accepts CRLF line endings and a BOM, so check the file conventions here.
    for name, columns in EXPECTED_COLUMNS.items():
        raw = (PACKAGE_DIR / f"{name}.csv").read_bytes()
        text = raw.decode("utf-8")  # raises if not UTF-8
        assert not text.startswith("\ufeff"), f"{name}.csv has a BOM"
        assert "\r" not in text, f"{name}.csv must use \\n line endings"
        assert text.endswith("\n"), f"{name}.csv must end with a newline"
        header = next(csv.reader(text.splitlines()))
        assert header == columns, f"{name}.csv header {header} != {columns}"


def test_foreign_keys_bind_a_fact_citing_an_unknown_source_is_invalid(tmp_path):
    broken_dir = tmp_path / "kz-us"
    shutil.copytree(PACKAGE_DIR, broken_dir)
    facts_csv = broken_dir / "facts.csv"
    with facts_csv.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    source_col = header.index("source")
    bogus = "no-such-source"
    body[0][source_col] = bogus
    with facts_csv.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *body])

    report = frictionless.validate(str(broken_dir / "datapackage.json"))

    assert not report.valid, "frictionless accepted a fact citing an unknown source"
    errors = _errors(report)
    fk_errors = [e for e in errors if e[0] == "foreign-key"]
    assert fk_errors, "expected a foreign-key error, got:\n" + _describe(report)
    # The only problem is the broken reference, reported on facts row 2
    # (row numbers count the header as row 1).
    assert all(e[0] == "foreign-key" for e in errors), _describe(report)
    assert [(e[1], e[2]) for e in fk_errors] == [("facts", 2)]
    assert bogus in fk_errors[0][4]
