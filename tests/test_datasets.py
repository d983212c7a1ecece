"""Broken datasets: each mistake named by file, line and column; nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import EDITION, ROOT, assert_untouched, copy_data, earlier_edition, run_cli, write_project
from reporter.pipeline import datasets
from reporter.errors import DataError


def test_shipped_dataset_loads_typed_rows() -> None:
    dataset = datasets.load(ROOT / "data", "kz-us")
    facts = dataset.table("facts").by_key("id")
    assert facts["kazatomprom_output_2024"]["value"] == 23270
    assert facts["us_companies_in_kz"]["qualifier"] == "more_than"
    assert facts["kazatomprom_output_2024"]["qualifier"] is None
    production = dataset.table("production").by_key("year")
    assert production[2024]["tonnes_uranium"] == facts["kazatomprom_output_2024"]["value"]
    assert [row["year"] for row in dataset.table("production").rows] == list(range(2019, 2025))


def _break(tmp_path: Path, resource: str, edit) -> Path:
    data = copy_data(tmp_path)
    path = data / "kz-us" / f"{resource}.csv"
    edit(path)
    return data


def _replace(old: str, new: str):
    def edit(path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return edit


def _non_utf8(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data.replace("Стоимость".encode(), "Стоимость".encode("cp1251"), 1))


BROKEN = {
    "missing column": ("facts", _replace("id,value,unit,", "id,value,"),
                       ["facts.csv:line 1", "missing column 'unit'"]),
    "wrong type": ("production", _replace("2020,19477", "2020,19 477"),
                   ["production.csv:line 3 (row 2), column 'tonnes_uranium'", "expected an integer, got '19 477'"]),
    "unknown source id": ("facts", _replace("us_companies_in_kz,630,companies,more_than,2025,investment,\"Американские компании, работающие в Казахстане\",American companies operating in Kazakhstan,trend-2025-11-05",
                                            "us_companies_in_kz,630,companies,more_than,2025,investment,\"Американские компании, работающие в Казахстане\",American companies operating in Kazakhstan,trend-2099"),
                          ["facts.csv:line 2, column 'source'", "'trend-2099' matches no id in sources.csv"]),
    "non-UTF-8 file": ("facts", _non_utf8, ["facts.csv:line 3", "not valid UTF-8"]),
    "duplicated key": ("production", _replace("2020,19477", "2019,19477"),
                       ["production.csv:line 3", "duplicate primary key '2019' (first on line 2)"]),
    "enum": ("facts", _replace(",more_than,2025,investment", ",more_then,2025,investment"),
             ["facts.csv:line 2 (row 1), column 'qualifier'", "'more_then' is not one of more_than, about"]),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_dataset_is_named_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    resource, edit, expected = BROKEN[case]
    data = _break(tmp_path, resource, edit)
    config = write_project(tmp_path, data=data)
    edition = earlier_edition(tmp_path)
    result = run_cli("--config", str(config), "render", "kz-us", "--date", EDITION)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    assert_untouched(edition)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = copy_data(tmp_path)
    _replace("2020,19477", "2020,lots")(data / "kz-us" / "production.csv")
    _replace("2021,21819", "2021,-5")(data / "kz-us" / "production.csv")
    _replace(",trend-2025-11-05\n", ",nowhere\n")(data / "kz-us" / "events.csv")
    with pytest.raises(DataError) as caught:
        datasets.load(data, "kz-us")
    messages = [str(p) for p in caught.value.problems]
    assert len(messages) == 3, messages
    assert any("'lots'" in m for m in messages)
    assert any("below the minimum 0" in m for m in messages)
    assert any("'nowhere'" in m and "events.csv" in m for m in messages)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    data = _break(tmp_path, "facts", _replace("id,value,unit,", "id,value,"))
    result = run_cli("--config", str(write_project(tmp_path, data=data)), "--debug", "render", "kz-us", "--date", EDITION)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "DataError" in result.stderr


def _descriptor(tmp_path: Path, edit) -> Path:
    import json

    data = copy_data(tmp_path)
    path = data / "kz-us" / "datapackage.json"
    descriptor = json.loads(path.read_text(encoding="utf-8"))
    edit(descriptor)
    path.write_text(json.dumps(descriptor), encoding="utf-8")
    return data


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d["resources"][1]["schema"]["fields"][0]["constraints"].update(pattern="(["),
     "resources[1].schema: not a valid Table Schema"),
    (lambda d: d["resources"][2]["schema"]["foreignKeys"][0].update(reference="sources"),
     "resource 'production' foreignKeys: not a valid foreign key"),
    (lambda d: d["resources"][1]["schema"]["fields"][1].update(type="money"),
     "resources[1].schema.fields[1].type: type 'money' is not supported"),
])
def test_broken_descriptor_is_named(tmp_path: Path, edit, expected: str) -> None:
    data = _descriptor(tmp_path, edit)
    result = run_cli("--config", str(write_project(tmp_path, data=data)), "validate")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "datapackage.json:" + expected in result.stderr, result.stderr
