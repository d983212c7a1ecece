"""reports.toml: validated when loaded, every problem named by its key; the CLI's exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, run_cli, write_project
from reporter import config
from reporter.errors import ConfigError


def test_shipped_config_loads() -> None:
    project = config.load(ROOT / "reports.toml")
    report = project.report("kz-us")
    assert report.languages == ("ru", "en")
    assert report.timezone.key == "Asia/Almaty"
    assert [c.id for c in report.charts] == ["production", "shares", "timeline"]
    assert project.locale_of("en") == "en_GB"


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "reports.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    return [str(p) for p in caught.value.problems]


GOOD = f'''
[project]
data = "{ROOT / 'data'}"
templates = "{ROOT / 'templates'}"
[reports.r]
title = {{ en = "T" }}
datasets = ["kz-us"]
template = "brief.html.j2"
languages = ["en"]
timezone = "Europe/London"
'''


def test_unknown_and_invalid_keys_are_all_named(tmp_path: Path) -> None:
    problems = _problems(tmp_path, GOOD.replace('timezone = "Europe/London"', '''timezone = "Mars/Olympus"
colour = "blue"
formats = ["pdf", "docx"]
schedule = "0 8 * *"
catch_up = "sometimes"
grace = "6 hours"'''))
    text = "\n".join(problems)
    assert len(problems) == 6, text
    assert "reports.r.colour: unknown key" in text
    assert "reports.r.timezone: unknown time zone 'Mars/Olympus'" in text
    assert "reports.r.formats[1]: 'docx' is not one of pdf, html" in text
    assert "reports.r.schedule: '0 8 * *' must have 5 fields" in text
    assert "reports.r.catch_up: 'sometimes' is not one of skip, latest, all" in text
    assert "reports.r.grace: '6 hours' is not a duration" in text
    assert all(p.startswith(str(tmp_path / "reports.toml")) for p in problems)


def test_missing_dataset_and_template(tmp_path: Path) -> None:
    text = "\n".join(_problems(tmp_path, GOOD.replace('"kz-us"', '"nope"').replace("brief.html.j2", "gone.j2")))
    assert "reports.r.datasets[0]: no dataset 'nope'" in text
    assert "reports.r.template: template" in text and "gone.j2 does not exist" in text


def test_bad_toml_names_the_line(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, GOOD + "broken = = 1\n")
    assert "not valid TOML" in problem and f"at line {GOOD.count(chr(10)) + 1}," in problem


def test_bad_recipient_address(tmp_path: Path) -> None:
    text = "\n".join(_problems(tmp_path, GOOD + '''
[[reports.r.recipients]]
email = "not-an-address"
lang = "en"
[[reports.r.recipients]]
email = "x@example.org"
lang = "de"
'''))
    assert "reports.r.recipients[0].email: 'not-an-address' is not an email address" in text
    assert "reports.r.recipients[1].lang: 'de' is not one of the report's languages (en)" in text


def test_cli_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("languages", "langs"), encoding="utf-8")
    result = run_cli("--config", str(bad), "list")
    assert result.returncode == 1
    assert "reports.r.langs: unknown key" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli("render").returncode == 2  # usage: missing REPORT
    assert run_cli("--config", str(bad), "render", "kz-us", "--date", "5.11.2025").returncode == 2
    missing = run_cli("--config", str(tmp_path / "none.toml"), "list")
    assert missing.returncode == 1 and "config file not found" in missing.stderr


def test_config_from_environment_and_unknown_report(tmp_path: Path) -> None:
    path = write_project(tmp_path)
    result = run_cli("render", "nope", env={"REPORTER_CONFIG": str(path)})
    assert result.returncode == 1
    assert "no report 'nope' (known: kz-us)" in result.stderr


def test_list_shows_reports(tmp_path: Path) -> None:
    result = run_cli("--config", str(write_project(tmp_path)), "list")
    assert result.returncode == 0
    assert "kz-us" in result.stdout and "ru, en" in result.stdout and "Asia/Almaty" in result.stdout


@pytest.mark.parametrize(("snippet", "expected"), [
    ("[[reports.r.charts]]\nx = 1\n", "reports.r.charts: expected a table, got a list"),
    ('[project.locales]\nen = ["en_GB"]\n', "project.locales.en: expected a non-empty string, got a list"),
    ("", "reports.r.timezone: unknown time zone 'America'"),
])
def test_odd_shapes_are_errors_not_tracebacks(tmp_path: Path, snippet: str, expected: str) -> None:
    text = GOOD.replace('"Europe/London"', '"America"' if not snippet else '"Europe/London"')
    if snippet.startswith("[project"):
        text = text.replace("[reports.r]", snippet + "[reports.r]")
    else:
        text += snippet
    path = tmp_path / "reports.toml"
    path.write_text(text, encoding="utf-8")
    result = run_cli("--config", str(path), "validate")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert expected in result.stderr, result.stderr


def test_a_folder_as_config_is_an_error(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path), "list")
    assert result.returncode == 1 and "cannot read the config file: Is a directory" in result.stderr


def test_list_shows_next_runs_in_the_reports_zone(tmp_path: Path) -> None:
    result = run_cli("--config", str(write_project(tmp_path)), "list", "--next", "2",
                     env={"REPORTER_NOW": "2025-11-03T09:00:00+05:00"})
    assert result.returncode == 0, result.stderr
    assert "next:      Mon 2025-11-10 08:00 +05 (UTC+0500)" in result.stdout
    assert "next:      Mon 2025-11-17 08:00 +05 (UTC+0500)" in result.stdout


def test_recipients_from_a_csv_file_saved_by_a_spreadsheet(tmp_path: Path) -> None:
    (tmp_path / "recipients.csv").write_bytes(
        "email,name,lang,kind\nanalyst@example.org,Аналитик,en,to\nboss@example.org,Boss,en,bcc\n".encode("utf-8-sig"))
    path = tmp_path / "reports.toml"
    path.write_text(GOOD + 'recipients_file = "recipients.csv"\n', encoding="utf-8")
    report = config.load(path).report("r")
    assert [(r.email, r.name, r.lang, r.kind) for r in report.recipients] == [
        ("analyst@example.org", "Аналитик", "en", "to"), ("boss@example.org", "Boss", "en", "bcc")]


def test_recipient_addresses_and_names_that_cannot_be_sent_are_refused(tmp_path: Path) -> None:
    (tmp_path / "recipients.csv").write_text('email,name,lang\nanalyst@пример.рф,A,en\nx@example.org,"two\nlines",en\n',
                                             encoding="utf-8")
    text = "\n".join(_problems(tmp_path, GOOD + 'recipients_file = "recipients.csv"\n'))
    assert "'analyst@пример.рф' is not an email address (write a non-ASCII domain in its xn-- form)" in text
    assert "recipients.csv:line 4.name: expected a name on one line" in text
