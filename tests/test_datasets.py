"""Broken datasets: each mistake named by file, line and column; nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EDITION, REPORT, assert_untouched, earlier_edition, run_cli, write_project
from projects import write_dataset
from reporter.errors import DataError
from reporter.pipeline import datasets


def test_a_dataset_loads_typed_rows_with_numbers_as_written(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    dataset = datasets.load(tmp_path, "brief")
    facts = dataset.table("facts").by_key("id")
    assert facts["output"]["value"] == 23270
    assert str(facts["share"]["value"]) == "24.1" and facts["share"]["value"] * 10 == 241
    assert facts["shift"]["value"].plus and not facts["share"]["value"].plus
    assert facts["firms"]["qualifier"] == "more_than" and facts["output"]["qualifier"] is None
    series = dataset.table("series").by_key("year")
    assert series[2024]["tonnes"] == facts["output"]["value"]
    assert [row["year"] for row in dataset.table("series").rows] == list(range(2019, 2025))


def copy_data(folder: Path) -> Path:
    write_dataset(folder / "data")
    return folder / "data"


def _break(tmp_path: Path, resource: str, edit) -> Path:
    config = write_project(tmp_path)
    edit(tmp_path / "data" / "brief" / f"{resource}.csv")
    return config


def _replace(old: str, new: str):
    def edit(path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return edit


def _non_utf8(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data.replace("Выпуск за год".encode(), "Выпуск за год".encode("cp1251"), 1))


BROKEN = {
    "missing column": ("facts", _replace("id,value,value_to,unit,", "id,value,value_to,"),
                       ["facts.csv:line 1", "missing column 'unit'"]),
    "wrong type": ("series", _replace("2020,19477", "2020,19 477"),
                   ["series.csv:line 3 (row 2), column 'tonnes'", "expected an integer, got '19 477'"]),
    "unknown source id": ("facts", _replace("Companies in the market,stat-2025", "Companies in the market,stat-2099"),
                          ["facts.csv:line 2, column 'source'", "'stat-2099' matches no id in sources.csv"]),
    "non-UTF-8 file": ("facts", _non_utf8, ["facts.csv:line 3", "not valid UTF-8"]),
    "duplicated key": ("series", _replace("2020,19477", "2019,19477"),
                       ["series.csv:line 3", "duplicate primary key '2019' (first on line 2)"]),
    "unknown unit": ("facts", _replace("23270,,tonnes,", "23270,,tonnes_of_steel,"),
                     ["facts.csv:line 3, column 'unit': unknown unit 'tonnes_of_steel'"]),
    "unknown qualifier": ("facts", _replace(",companies,more_than,", ",companies,more_then,"),
                          ["facts.csv:line 2, column 'qualifier': 'more_then' is not one of more_than"]),
    "missing unit form": ("units", _replace("{n} компания,{n} компании,{n} компаний", "{n} компания,,{n} компаний"),
                          ["units.csv:line 2, column 'few_ru': unit 'companies' has no ru form for few"]),
    "range backwards": ("facts", _replace("band,20,22,", "band,20,18,"),
                        ["facts.csv:line 7, column 'value_to': the range 20–18 runs backwards"]),
    "empty label": ("facts", _replace(",2024,Выпуск за год,", ",2024,,"),
                    ["facts.csv:line 3, column 'label_ru': empty"]),
    "NaN": ("facts", _replace("share,24.1,", "share,NaN,"), ["facts.csv:line 4 (row 3), column 'value'", "expected a number, got 'NaN'"]),
    "infinity": ("facts", _replace("share,24.1,", "share,inf,"), ["expected a number, got 'inf'"]),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_dataset_is_named_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    resource, edit, expected = BROKEN[case]
    config = _break(tmp_path, resource, edit)
    edition = earlier_edition(tmp_path)
    result = run_cli("--config", str(config), "render", REPORT, "--date", EDITION)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    assert_untouched(edition)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = copy_data(tmp_path)
    _replace("2020,19477", "2020,lots")(data / "brief" / "series.csv")
    _replace(",Almaty,news-2024", ",Almaty,nowhere")(data / "brief" / "events.csv")
    _replace("cn,Китай,China,17.7", "cn,Китай,China,lots")(data / "brief" / "partners.csv")
    with pytest.raises(DataError) as caught:
        datasets.load(data, "brief")
    messages = [str(p) for p in caught.value.problems]
    assert len(messages) == 3, messages
    assert any("'lots'" in m and "series.csv" in m for m in messages)
    assert any("'lots'" in m and "partners.csv" in m for m in messages)
    assert any("'nowhere'" in m and "events.csv" in m for m in messages)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    config = _break(tmp_path, "facts", _replace("id,value,value_to,unit,", "id,value,value_to,"))
    result = run_cli("--config", str(config), "--debug", "render", REPORT, "--date", EDITION)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "DataError" in result.stderr


def _descriptor(tmp_path: Path, edit) -> Path:
    import json

    config = write_project(tmp_path)
    path = tmp_path / "data" / "brief" / "datapackage.json"
    descriptor = json.loads(path.read_text(encoding="utf-8"))
    edit(descriptor)
    path.write_text(json.dumps(descriptor), encoding="utf-8")
    return config


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d["resources"][1]["schema"]["fields"][0].update(constraints={"pattern": "(["}),
     "resources[1].schema: not a valid Table Schema"),
    (lambda d: d["resources"][3]["schema"]["foreignKeys"][0].update(reference="sources"),
     "resource 'series' foreignKeys: not a valid foreign key"),
    (lambda d: d["resources"][1]["schema"]["fields"][1].update(type="money"),
     "resources[1].schema.fields[1].type: type 'money' is not supported"),
])
def test_broken_descriptor_is_named(tmp_path: Path, edit, expected: str) -> None:
    result = run_cli("--config", str(_descriptor(tmp_path, edit)), "validate")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "datapackage.json:" + expected in result.stderr, result.stderr


@given(content=st.binary(max_size=400) | st.text(alphabet=st.sampled_from('ab1.,"\n\r \ufeff-+eé'), max_size=200).map(str.encode))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_bytes_give_a_dataset_or_a_clear_error(tmp_path: Path, content: bytes) -> None:
    # Whatever an editor saves into a CSV, loading it gives typed rows or DataErrors naming the
    # file, never another exception.
    folder = tmp_path / "any"
    if not (folder / "brief").exists():
        write_dataset(folder)
    (folder / "brief" / "series.csv").write_bytes(content)
    try:
        datasets.load(folder, "brief")
    except DataError as exc:
        assert exc.problems and all(p.file.endswith(("series.csv", "datapackage.json")) for p in exc.problems)


@given(descriptor=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                               lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                   st.sampled_from(["resources", "name", "path", "schema", "fields", "type",
                                                    "constraints", "primaryKey", "foreignKeys", "missingValues"]),
                                   inner, max_size=4), max_leaves=12))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_descriptor_gives_a_dataset_or_a_clear_error(tmp_path: Path, descriptor) -> None:
    import json

    folder = tmp_path / "any"
    if not (folder / "brief").exists():
        write_dataset(folder)
    (folder / "brief" / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    try:
        datasets.load(folder, "brief")
    except DataError as exc:
        assert exc.problems
