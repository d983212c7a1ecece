"""`reporter validate` finds what a render would lose silently, each named with its place."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import EDITION, REPORT, run_cli, write_project
from projects import write_dataset


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _validate(config_path: Path):
    result = run_cli("--config", str(config_path), "validate")
    assert "Traceback" not in result.stderr
    return result


def test_a_chart_or_table_never_placed_is_an_error(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    _edit(tmp_path / "templates" / "brief" / "narrative.en.html.j2", '{{ chart("partners") }}', "")
    _edit(config_path, 'tables = ["partners"]', "")
    result = _validate(config_path)
    assert result.returncode == 1
    assert (f"{config_path}:reports.brief.charts.partners: declared but never placed in the en edition: "
            'add {{ chart("partners") }} to the narrative, or charts = ["partners"] to a section') in result.stderr
    assert f"{config_path}:reports.brief.tables.partners: declared but never placed in the ru edition" in result.stderr


def test_a_section_empty_in_a_language_is_an_error(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    narrative = tmp_path / "templates" / "brief" / "narrative.ru.html.j2"
    text = narrative.read_text(encoding="utf-8")
    start = text.index("{% block overview %}") + len("{% block overview %}")
    narrative.write_text(text[:start] + "\n" + text[text.index("{% endblock %}", start):], encoding="utf-8")
    _edit(config_path, 'charts = ["output"]', "")
    _edit(tmp_path / "templates" / "brief" / "narrative.en.html.j2", "{% block partners %}", "{% block partners %}{% if false %}")
    _edit(tmp_path / "templates" / "brief" / "narrative.en.html.j2", '{{ chart("partners") }}\n{% endblock %}',
          '{{ chart("partners") }}{% endif %}\n{% endblock %}')
    _edit(config_path, 'charts = ["change"]', 'charts = ["change", "partners"]')
    result = _validate(config_path)
    assert result.returncode == 1
    assert f"{narrative}: section 'overview' is empty in ru: fill {{% block overview %}}" in result.stderr
    assert "block 'overview' is filled in en but empty in ru: every edition says the same" in result.stderr
    assert "block 'partners' is filled in ru but empty in en" in result.stderr


def test_every_unknown_id_in_every_template_is_named(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    for lang in ("ru", "en"):
        narrative = tmp_path / "templates" / "brief" / f"narrative.{lang}.html.j2"
        _edit(narrative, 'fact("firms")', 'fact("firmz")')
        _edit(narrative, 'fact("band")', 'fact("bandz")')
        _edit(narrative, "{% block partners %}", '{% block partners %}{{ cite("nowhere") }}{{ quantity(3, "parsecs") }}')
    result = _validate(config_path)
    assert result.returncode == 1
    for lang in ("ru", "en"):
        lines = [line for line in result.stderr.splitlines() if f"narrative.{lang}.html.j2:line" in line]
        assert [re.sub(r".*: unknown ", "", line).split(" (known")[0] for line in lines] == [
            "fact 'firmz'", "fact 'bandz'", "source 'nowhere'", "unit 'parsecs'"], lines


def test_unknown_units_and_sources_in_the_data_are_named_by_file_and_row(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    facts = tmp_path / "data" / "brief" / "facts.csv"
    _edit(facts, "23270,,tonnes,", "23270,,tons,")
    _edit(facts, "2.8,,times,", "2.8,,timez,")
    events = tmp_path / "data" / "brief" / "events.csv"
    _edit(events, "Trade forum,Алматы,Almaty,news-2024", "Trade forum,Алматы,Almaty,news-2099")
    # Without foreign keys in the schema, reporter still checks every reference itself.
    descriptor_path = tmp_path / "data" / "brief" / "datapackage.json"
    descriptor = json.loads(descriptor_path.read_text(encoding="utf-8"))
    for resource in descriptor["resources"]:
        resource["schema"].pop("foreignKeys", None)
    descriptor_path.write_text(json.dumps(descriptor), encoding="utf-8")
    result = _validate(config_path)
    assert result.returncode == 1
    assert f"{facts}:line 3, column 'unit': unknown unit 'tons'" in result.stderr
    assert f"{facts}:line 5, column 'unit': unknown unit 'timez'" in result.stderr
    assert f"{events}:line 2, column 'source': 'news-2099' is no id in any sources resource" in result.stderr


def test_key_figures_are_chosen_and_ordered(tmp_path: Path) -> None:
    config_path = write_project(tmp_path, extra='key_figures = ["share", "firms"]')
    result = run_cli("--config", str(config_path), "render", REPORT, "--date", EDITION, "--format", "html", "--lang", "en")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "output" / REPORT / EDITION / f"{REPORT}.en.html").read_text(encoding="utf-8")
    table = html[html.index('id="key-figures"'):html.index("</table>", html.index('id="key-figures"'))]
    assert re.findall(r'data-fact="(\w+)"', table) == ["share", "firms"]
    _edit(config_path, 'key_figures = ["share", "firms"]', 'key_figures = ["share", "nope"]')
    bad = _validate(config_path)
    assert bad.returncode == 1 and f"{config_path}:reports.brief.key_figures[1]: no fact 'nope'" in bad.stderr


def test_a_dataset_no_report_uses_and_a_chart_without_sources_are_warnings(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    write_dataset(tmp_path / "data", "spare")
    partners = tmp_path / "data" / "brief" / "partners.csv"
    partners.write_text(partners.read_text(encoding="utf-8").replace(",source", ",origin").replace(",news-2024", ",n"),
                        encoding="utf-8")
    descriptor_path = tmp_path / "data" / "brief" / "datapackage.json"
    descriptor = json.loads(descriptor_path.read_text(encoding="utf-8"))
    partners_schema = next(r for r in descriptor["resources"] if r["name"] == "partners")["schema"]
    partners_schema["fields"][-1]["name"] = "origin"
    partners_schema.pop("foreignKeys")
    descriptor_path.write_text(json.dumps(descriptor), encoding="utf-8")
    result = _validate(config_path)
    assert result.returncode == 0, result.stderr
    assert f"warning: {tmp_path / 'data' / 'spare'}: no report uses this dataset yet" in result.stderr
    assert "reports.brief.charts.partners: its numbers cite no source" in result.stderr
    rendered = run_cli("--config", str(config_path), "render", REPORT, "--date", EDITION, "--format", "html", "--lang", "en")
    assert rendered.returncode == 0, rendered.stderr
    html = (tmp_path / "output" / REPORT / EDITION / f"{REPORT}.en.html").read_text(encoding="utf-8")
    assert "Partners&#39; shares in 2024 <span class=\"unsourced\">(source not given)</span>" in html
