"""reports.toml: validated when loaded, every problem named by its key; the CLI's exit codes."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from conftest import run_cli, write_project
from projects import make_project, report_block, write_dataset, write_templates
from reporter import config
from reporter.errors import ConfigError


def test_a_report_declares_its_shape(tmp_path: Path) -> None:
    project = config.load(write_project(tmp_path))
    report = project.report("brief")
    assert report.languages == ("ru", "en")
    assert report.timezone.key == "Asia/Almaty"
    assert [s.id for s in report.sections] == ["overview", "partners"]
    assert report.sections[1].charts == ("change",) and report.sections[1].tables == ("partners",)
    assert [c.id for c in report.charts] == ["output", "partners", "change", "timeline"]
    assert report.layout == "brief.html.j2" and report.key_figures is None
    assert project.locale_of("en") == "en_GB"


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "reports.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    return [str(p) for p in caught.value.problems]


@pytest.fixture(autouse=True)
def _inputs(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data")
    write_templates(tmp_path / "templates")


GOOD = '''
[reports.r]
title = { en = "T" }
datasets = ["brief"]
narrative = "brief/narrative.{lang}.html.j2"
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


def test_missing_dataset_layout_and_narrative(tmp_path: Path) -> None:
    text = "\n".join(_problems(tmp_path, GOOD.replace('["brief"]', '["nope"]').replace("brief/narrative", "gone/narrative")
                               + 'layout = "gone.j2"\n'))
    assert "reports.r.datasets[0]: no dataset 'nope'" in text
    assert "reports.r.layout: template" in text and "gone.j2 does not exist" in text
    assert "reports.r.narrative: no en narrative:" in text and "gone/narrative.en.html.j2 does not exist" in text


def test_sections_charts_and_tables_are_checked(tmp_path: Path) -> None:
    text = "\n".join(_problems(tmp_path, GOOD + '''
[[reports.r.sections]]
id = "summary"
title = { en = "S" }
[[reports.r.sections]]
id = "a"
title = { en = "A" }
charts = ["nothing"]
[[reports.r.sections]]
id = "a"
title = { en = "again" }
[reports.r.charts.c]
kind = "pie"
title = { en = "C" }
[reports.r.charts.d]
kind = "bars"
title = { en = "D" }
[reports.r.tables.t]
resource = "facts"
columns = ["id", "value"]
headers = { en = ["Id"] }
'''))
    assert "reports.r.sections[0].id: 'summary' is placed by the layout itself" in text
    assert "reports.r.sections[1].charts[0]: no chart 'nothing' is declared" in text
    assert "reports.r.sections[2].id: section 'a' is declared twice" in text
    assert "reports.r.charts.c.kind: 'pie' is not one of bars, series, compare, shares, timeline" in text
    assert "reports.r.charts.d: a bars chart needs 'facts' or 'resource'+'label'+'value'" in text
    assert "reports.r.tables.t.headers.en: 1 headings for 2 columns" in text


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
    assert run_cli("--config", str(bad), "render", "brief", "--date", "5.11.2025").returncode == 2
    missing = run_cli("--config", str(tmp_path / "none.toml"), "list")
    assert missing.returncode == 1 and "config file not found" in missing.stderr


def test_config_from_environment_and_unknown_report(tmp_path: Path) -> None:
    path = write_project(tmp_path)
    result = run_cli("render", "nope", env={"REPORTER_CONFIG": str(path)})
    assert result.returncode == 1
    assert "no report 'nope' (known: brief)" in result.stderr


def test_list_shows_reports(tmp_path: Path) -> None:
    result = run_cli("--config", str(write_project(tmp_path)), "list")
    assert result.returncode == 0
    assert "brief" in result.stdout and "ru, en" in result.stdout and "Asia/Almaty" in result.stdout


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


@pytest.mark.parametrize(("written", "expected"), [
    ('"12MB"', 12 * 1024 ** 2), ('"1.5 mb"', 1572864), ('"512KB"', 512 * 1024), ('"2GB"', 2 * 1024 ** 3),
    ('"900 B"', 900), ('" 3MB "', 3 * 1024 ** 2),
])
def test_a_message_size_limit_is_read_in_powers_of_1024(tmp_path: Path, written: str, expected: int) -> None:
    config_path = make_project(tmp_path, [report_block("r")], email=True)
    config_path.write_text(config_path.read_text(encoding="utf-8") + f"max_size = {written}\n", encoding="utf-8")
    assert config.load(config_path).email.max_bytes == expected


@pytest.mark.parametrize("written", ['"10 megabytes"', '"MB"', '"-1MB"', '"10TB"', '"1,5MB"'])
def test_a_size_that_is_not_one_is_named(tmp_path: Path, written: str) -> None:
    config_path = make_project(tmp_path, [report_block("r")], email=True)
    config_path.write_text(config_path.read_text(encoding="utf-8") + f"max_size = {written}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config.load(config_path)
    assert [str(p) for p in caught.value.problems] == [
        f"{config_path}:email.max_size: {written.strip(chr(34))!r} is not a size like '10MB'"]


@pytest.mark.parametrize(("written", "days"), [
    ("400d", 400), ("400 days", 400), ("1 day", 1), ("6 weeks", 42), ("1w", 7), ("18 months", 558), ("1mo", 31),
    ("1 month", 31), ("2y", 732), ("1 year", 366), (" 3 years ", 1098),
])
def test_a_maximum_age_errs_on_the_side_of_fresh(tmp_path: Path, written: str, days: int) -> None:
    config_path = make_project(tmp_path, [report_block("r", extra=f'max_age = {{ default = "{written}", prices = "90d" }}')])
    assert config.load(config_path).report("r").max_age == {"default": days, "prices": 90}


@pytest.mark.parametrize("written", ["18", "6 fortnights", "2.5y", "y", "-3d", "1 month 2 days"])
def test_an_age_that_is_not_one_is_named(tmp_path: Path, written: str) -> None:
    config_path = make_project(tmp_path, [report_block("r", extra=f'max_age = "{written}"')])
    with pytest.raises(ConfigError) as caught:
        config.load(config_path)
    assert [str(p) for p in caught.value.problems] == [
        f"{config_path}:reports.r.max_age: {written!r} is not an age like '400d', '6 weeks', '18 months' or '2y'"]


@pytest.mark.parametrize(("utc", "zone", "day"), [
    ("2025-11-04T18:59:59", "Asia/Almaty", "2025-11-04"),        # 23:59:59 in Almaty (UTC+5)
    ("2025-11-04T19:00:00", "Asia/Almaty", "2025-11-05"),        # midnight there, still the 4th in UTC
    ("2025-11-05T04:59:59", "America/New_York", "2025-11-04"),   # 23:59:59 EST, the 5th in UTC
    ("2025-03-09T05:00:00", "America/New_York", "2025-03-09"),   # 00:00 EST on the day clocks go forward
])
def test_today_is_the_reports_own_date(tmp_path: Path, utc: str, zone: str, day: str) -> None:
    config_path = make_project(tmp_path, [report_block("r", timezone=zone)])
    report = config.load(config_path).report("r")
    moment = datetime.fromisoformat(utc).replace(tzinfo=timezone.utc)
    assert config.edition_date(report, lambda: moment) == date.fromisoformat(day)


# A table of two columns, then with its headings: what each refusal of a table's keys adds to.
_TABLE = '[reports.r.tables.t]\nresource = "facts"\ncolumns = ["id", "value"]\n'
_HEADED = _TABLE + 'headers = { en = ["Id", "Value"] }\n'

# Each refusal of reports.toml, as an editor sees it: (text above [reports.r], a key of GOOD and
# its new value, text below GOOD, the one problem named, a format string: {p} is the project).
REFUSALS = {
    "a chart's direction": ("", None, '[reports.r.charts.c]\nkind = "bars"\ntitle = { en = "C" }\nfacts = ["a", "b"]\n'
                            'direction = "diagonal"\n', "reports.r.charts.c.direction: expected 'horizontal' or 'vertical'"),
    "a chart's style": ("", None, '[reports.r.charts.c]\nkind = "series"\ntitle = { en = "C" }\nresource = "series"\n'
                        'x = "year"\ny = "value"\nstyle = "dots"\n', "reports.r.charts.c.style: expected 'bars' or 'line'"),
    "a comparison's facts": ("", None, '[reports.r.charts.c]\nkind = "compare"\ntitle = { en = "C" }\nfacts = [["a", "b", "c"]]\n',
                             'reports.r.charts.c.facts: expected pairs of fact ids, earlier then later: [["a_2020", "a_2024"], ...]'),
    "a comparison's periods": ("", None, '[reports.r.charts.c]\nkind = "compare"\ntitle = { en = "C" }\nfacts = [["a", "b"]]\n'
                               'periods = ["2020", "2022", "2024"]\n',
                               "reports.r.charts.c.periods: expected two labels: the earlier period, then the later"),
    "a chart that is no table": ("", None, "[reports.r.charts]\nc = 1\n", "reports.r.charts.c: expected a table, got an integer"),
    "a fact charted twice": ("", None, '[reports.r.charts.c]\nkind = "bars"\ntitle = { en = "C" }\nfacts = ["a", "a"]\n',
                             "reports.r.charts.c.facts[1]: 'a' is listed twice"),
    "a language listed twice": ("", ("languages", '["en", "en"]'), "", "reports.r.languages[1]: 'en' is listed twice"),
    "attempts": ('[email]\nfrom = "R <r@example.org>"\nattempts = 0\n', None, "",
                 "email.attempts: expected a whole number from 1 to 20"),
    "a CA file": ('[email]\nfrom = "R <r@example.org>"\nca_file = "ca.pem"\n', None, "", "email.ca_file: {p}/ca.pem does not exist"),
    "a subject's placeholder": ('[email]\nfrom = "R <r@example.org>"\nsubject = { en = "{title} on {day}" }\n', None, "",
                                "email.subject.en: unknown placeholder(s) day (use {{title}}, {{date}}, {{report}})"),
    "a timeout": ('[email]\nfrom = "R <r@example.org>"\nconnect_timeout = "0s"\n', None, "", "email.connect_timeout: at least 0.1 s"),
    "a sender that is no text": ("[email]\nfrom = 5\n", None, "",
                                 "email.from: expected an address like 'Name <name@example.org>', got an integer"),
    "a sender with no address": ('[email]\nfrom = "Reporter"\n', None, "", "email.from: 'Reporter' is not an email address"),
    # The email package would read the first address and a header would carry both.
    "two senders": ('[email]\nfrom = "desk@example.org, ops@example.org"\n', None, "",
                    "email.from: 'desk@example.org, ops@example.org' is not an email address"),
    "an address the email package refuses": ("", None, 'on_failure = ["desk..news@example.org"]\n',
                                             "reports.r.on_failure[0]: 'desk..news@example.org' is not an email address"),
    "an address too long": ("", None, f'on_failure = ["{"a" * 243}@example.org"]\n',
                            "reports.r.on_failure[0]: is 255 characters long; an address is at most 254"),
    "a locale": ('[project.locales]\nen = "English"\n', None, "",
                 "project.locales.en: 'English' does not match [a-z]{{2,3}}(_[A-Za-z0-9]+)*"),
    "recipients that are no list": ("", None, 'recipients = "everyone"\n',
                                    "reports.r.recipients: expected a list of tables ([[reports.ID.recipients]])"),
    "a recipients file that is missing": ("", None, 'recipients_file = "people.csv"\n',
                                          "reports.r.recipients_file: {p}/people.csv does not exist"),
    "a recipients file outside": ("", None, 'recipients_file = "../people.csv"\n',
                                  "reports.r.recipients_file: '../people.csv' resolves to {p.parent}/people.csv, outside the project's folder"),
    "a recipients file in Latin-1": ("", None, 'recipients_file = "latin1.csv"\n',
                                     "reports.r.recipients_file: {p}/latin1.csv is not valid UTF-8 (invalid continuation byte)"),
    "a recipients file that is a folder": ("", None, 'recipients_file = "data"\n',
                                           "reports.r.recipients_file: cannot read {p}/data: Is a directory"),
    "a recipient twice": ("", None, '[[reports.r.recipients]]\nemail = "a@example.org"\nlang = "en"\n'
                          '[[reports.r.recipients]]\nemail = "a@example.org"\nlang = "en"\n',
                          "reports.r.recipients[1].email: a@example.org is listed twice"),
    "a recipient's kind": ("", None, '[[reports.r.recipients]]\nemail = "a@example.org"\nlang = "en"\nkind = "fax"\n',
                           "reports.r.recipients[0].kind: 'fax' is not one of to, cc, bcc"),
    "a recipient's name": ("", None, '[[reports.r.recipients]]\nemail = "a@example.org"\nlang = "en"\nname = 5\n',
                           "reports.r.recipients[0].name: expected a name on one line, got an integer"),
    "an address warned twice": ("", None, 'on_failure = ["Ops@example.org", "ops@example.org"]\n',
                                "reports.r.on_failure[1]: ops@example.org is listed twice"),
    "a narrative outside": ("", ("narrative", '"../x.{lang}.html.j2"'), "",
                            "reports.r.narrative: '../x.{{lang}}.html.j2' must be a path inside the templates folder, "
                            "like 'brief/narrative.{{lang}}.html.j2'"),
    "a narrative for one language": ("", ("narrative", '"brief/narrative.en.html.j2"'), "",
                                     "reports.r.narrative: must contain '{{lang}}', e.g. 'brief/narrative.{{lang}}.html.j2'"),
    "send_if": ("", None, 'send_if = "sometimes"\n', "reports.r.send_if: 'sometimes' is not one of always, changed"),
    "stale": ("", None, 'stale = "ignore"\n', "reports.r.stale: 'ignore' is not one of mark, refuse"),
    "timeline": ("", None, 'timeline = "yes"\n',
                 "reports.r.timeline: expected true or false (show the events' timeline when there are events)"),
    "a dataset id": ("", ("datasets", '["Brief!"]'), "",
                     "reports.r.datasets[0]: 'Brief!' is not a dataset id: name a folder under {p}/data "
                     "(lower-case letters, digits, '-' and '_')"),
    "sections that are no list": ("", None, 'sections = "all"\n',
                                  "reports.r.sections: expected a list of tables ([[reports.ID.sections]])"),
    "a table without its data": ("", None, '[reports.r.tables.t]\ncolumns = ["id", "value"]\nheaders = { en = ["Id", "Value"] }\n',
                                 "reports.r.tables.t.resource: missing required key"),
    "a table's data that is no name": ("", None, '[reports.r.tables.t]\nresource = 5\ncolumns = ["id"]\nheaders = { en = ["Id"] }\n',
                                       "reports.r.tables.t.resource: expected a non-empty string, got an integer"),
    "a table's headings in no language": ("", None, '[reports.r.tables.t]\nresource = "facts"\ncolumns = ["id"]\nheaders = {}\n',
                                          "reports.r.tables.t.headers.en: missing required key"),
    "a table's headings in another language": ("", None, '[reports.r.tables.t]\nresource = "facts"\ncolumns = ["id"]\n'
                                               'headers = { en = ["Id"], fr = ["Id"] }\n',
                                               "reports.r.tables.t.headers.fr: unknown key (allowed: en)"),
    "a table's unit": ("", None, _HEADED + 'units = { price = "USD" }\n',
                       "reports.r.tables.t.units.price: 'price' is not one of the table's columns"),
    "a table's headings that are no list": ("", None, _TABLE + 'headers = { en = "Id" }\n',
                                            "reports.r.tables.t.headers.en: expected a non-empty list of strings, got a string"),
    "a table's title in no language": ("", None, _HEADED + 'title = "Facts"\n',
                                       "reports.r.tables.t.title: expected a table, got a string"),
    "a table's title in another language": ("", None, _HEADED + 'title = { en = "Facts", fr = "Faits" }\n',
                                            "reports.r.tables.t.title.fr: unknown key (allowed: en)"),
    "a table's units that are no table": ("", None, _HEADED + 'units = "USD"\n',
                                          "reports.r.tables.t.units: expected a table, got a string"),
    "a table's unit that is no name": ("", None, _HEADED + 'units = { value = 5 }\n',
                                       "reports.r.tables.t.units.value: expected a non-empty string, got an integer"),
    "a table's filter that is no table": ("", None, _HEADED + 'where = "x"\n',
                                          "reports.r.tables.t.where: expected a table, got a string"),
    "the executor": ('[project]\nexecutor = "threads"\n', None, "", "project.executor: expected one of local, celery"),
    "tasks per worker": ("[project]\nmax_tasks_per_worker = 0\n", None, "",
                         "project.max_tasks_per_worker: expected a whole number, at least 1"),
    "workers": ("[project]\nworkers = -1\n", None, "",
                "project.workers: expected a whole number of worker processes (0: one per core)"),
    "redelivery": ('[project]\nexecutor = "celery"\nredeliver_after = "10s"\n', None, "",
                   "project.redeliver_after: must be longer than the longest report timeout (600 s), "
                   "or a render still running would be handed to a second worker"),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_each_refusal_names_the_key_and_what_to_write(tmp_path: Path, case: str) -> None:
    above, change, below, expected = REFUSALS[case]
    text = GOOD
    if change:
        key, value = change
        text = "\n".join(f"{key} = {value}" if line.startswith(f"{key} = ") else line for line in text.splitlines()) + "\n"
    (tmp_path / "latin1.csv").write_bytes("email,lang\nä@example.org,en\n".encode("latin-1"))
    assert _problems(tmp_path, above + text + below) == [f"{tmp_path / 'reports.toml'}:" + expected.format(p=tmp_path)]


def test_a_table_keeps_every_key_it_was_given(tmp_path: Path) -> None:
    path = tmp_path / "reports.toml"
    path.write_text(GOOD + _HEADED + 'title = { en = "Facts" }\nunits = { value = "percent" }\nwhere = { id = "a" }\n'
                    '[reports.r.tables.bare]\nresource = "facts"\ncolumns = ["id"]\nheaders = { en = ["Id"] }\n',
                    encoding="utf-8")
    tables = config.load(path).reports["r"].tables
    assert tables == (
        config.TableSpec("t", "facts", ("id", "value"), {"en": ("Id", "Value")}, {"en": "Facts"}, {"value": "percent"},
                         {"id": "a"}),
        config.TableSpec("bare", "facts", ("id",), {"en": ("Id",)}))


def test_a_project_with_no_reports_or_a_missing_folder_or_bad_bytes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "reports.toml"
    assert _problems(tmp_path, "[reports]\n") == [f"{path}:reports: no reports defined"]
    assert _problems(tmp_path, '[project]\ndata = "nowhere"\n' + GOOD) == [
        f"{path}:project.data: folder {tmp_path}/nowhere does not exist",
        f"{path}:reports.r.datasets[0]: no dataset 'brief': {tmp_path}/nowhere/brief/datapackage.json is missing"]
    path.write_bytes(GOOD.encode() + "# Обзор\n".encode("cp1251"))
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}: not valid UTF-8 (invalid continuation byte at byte {len(GOOD.encode()) + 2})"]


def test_charts_of_facts_keep_the_facts_in_order(tmp_path: Path) -> None:
    path = tmp_path / "reports.toml"
    path.write_text(GOOD + '[reports.r.charts.c]\nkind = "bars"\ntitle = { en = "C" }\nfacts = ["b", "a"]\n'
                    '[reports.r.charts.d]\nkind = "compare"\ntitle = { en = "D" }\nfacts = [["a", "b"], ["c", "d"]]\n'
                    'periods = ["2020", "2024"]\n', encoding="utf-8")
    charts = {chart.id: chart for chart in config.load(path).report("r").charts}
    assert charts["c"].facts == ("b", "a")
    assert charts["d"].facts == (("a", "b"), ("c", "d")) and charts["d"].periods == ("2020", "2024")


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("2m", 120), ("1.5h", 5400), ("2d", 172800), (" 10m ", 600)])
def test_a_duration_is_read_in_its_unit(text: str, seconds: float) -> None:
    assert config.parse_duration(text) == seconds


def test_an_address_of_the_longest_length_is_accepted(tmp_path: Path) -> None:
    longest = "a" * 242 + "@example.org"
    assert len(longest) == config.ADDRESS_LIMIT
    path = tmp_path / "reports.toml"
    path.write_text(GOOD + f'on_failure = ["{longest}"]\n', encoding="utf-8")
    assert config.load(path).report("r").on_failure == (longest,)


@pytest.mark.parametrize(("text", "problem"), [
    ("Brief\x1fWeekly", "contains a control character (U+001F)"),  # the last C0 control
    ("Brief ~ Weekly", None),  # a space and U+007E are printable
    ("Brief\x7fWeekly", "contains a control character (U+007F)"),  # DEL
    ("Brief\x9fWeekly", "contains a control character (U+009F)"),  # the last C1 control
    ("Brief\xa0Weekly", None),  # a no-break space is text
    ("Brief\u2028Weekly", "expected a subject on one line"),
    ("x" * 120, None),  # the longest allowed
    ("x" * 121, "is 121 characters long; at most 120"),
])
def test_a_header_is_one_line_of_printable_text(text: str, problem: str | None) -> None:
    assert config.header_problem(text, "a subject", 120) == problem


def test_an_unknown_report_is_named_with_those_there_are(tmp_path: Path) -> None:
    path = make_project(tmp_path, [report_block("weekly"), report_block("daily")])
    with pytest.raises(ConfigError) as caught:
        config.load(path).report("monthly")
    assert [str(p) for p in caught.value.problems] == [f"{path}: no report 'monthly' (known: weekly, daily)"]


def test_a_table_whose_columns_are_no_list_names_its_key(tmp_path: Path) -> None:
    problems = _problems(tmp_path, GOOD + '[reports.r.tables.t]\nresource = "facts"\ncolumns = 5\nheaders = { en = ["Id"] }\n')
    assert problems[0] == f"{tmp_path / 'reports.toml'}:reports.r.tables.t.columns: expected a non-empty list of strings, got an integer"


# GOOD in two languages, so that a text short of one of them can be refused.
_TWO = GOOD.replace('title = { en = "T" }', 'title = { en = "T", ru = "Т" }').replace('["en"]', '["en", "ru"]')


def test_a_chart_short_of_its_kind_its_title_or_a_language_of_its_title_is_named(tmp_path: Path) -> None:
    problems = _problems(tmp_path, _TWO + '''
[reports.r.charts.a]
title = { en = "A", ru = "А" }
facts = ["x"]
[reports.r.charts.b]
kind = "bars"
facts = ["x"]
[reports.r.charts.c]
kind = "bars"
title = 5
facts = ["x"]
[reports.r.charts.d]
kind = "bars"
title = { en = "D" }
facts = ["x"]
''')
    where = f"{tmp_path / 'reports.toml'}:reports.r.charts"
    assert sorted(problems) == [f"{where}.a.kind: missing required key", f"{where}.b.title: missing required key",
                                f"{where}.c.title: expected a table, got an integer", f"{where}.d.title.ru: missing required key"]


def test_a_chart_keeps_every_key_it_was_given(tmp_path: Path) -> None:
    path = tmp_path / "reports.toml"
    path.write_text(GOOD + '''
[reports.r.charts.b]
kind = "bars"
title = { en = "B" }
resource = "facts"
label = "name"
value = "amount"
unit = "%"
direction = "vertical"
key = "code"
highlight = ["a", "b"]
[reports.r.charts.s]
kind = "series"
title = { en = "S" }
resource = "series"
x = "year"
y = "value"
style = "line"
highlight = 2024
[reports.r.charts.p]
kind = "compare"
title = { en = "P" }
resource = "change"
label = "name"
before = "then"
after = "now"
periods = ["2020", "2024"]
[reports.r.charts.t]
kind = "timeline"
title = { en = "T" }
[reports.r.charts.h]
kind = "shares"
title = { en = "H" }
facts = ["a", "b"]
highlight = "a"
''', encoding="utf-8")
    charts = {chart.id: chart for chart in config.load(path).report("r").charts}
    assert charts == {
        "b": config.ChartSpec("b", "bars", {"en": "B"}, resource="facts", label="name", value="amount", unit="%",
                              direction="vertical", key="code", highlight=("a", "b")),
        "s": config.ChartSpec("s", "series", {"en": "S"}, resource="series", x="year", y="value", style="line",
                              highlight=(2024,)),
        "p": config.ChartSpec("p", "compare", {"en": "P"}, resource="change", label="name", before="then", after="now",
                              periods=("2020", "2024")),
        "t": config.ChartSpec("t", "timeline", {"en": "T"}, resource="events"),
        "h": config.ChartSpec("h", "shares", {"en": "H"}, facts=("a", "b"), highlight=("a",)),
    }


def test_a_charts_texts_pairs_and_periods_are_refused_at_their_key(tmp_path: Path) -> None:
    problems = _problems(tmp_path, GOOD + '''
[reports.r.charts.b]
kind = "bars"
title = { en = "B" }
resource = "facts"
label = 5
value = "value"
[reports.r.charts.p]
kind = "compare"
title = { en = "P" }
facts = []
periods = [5, "2024"]
''')
    where = f"{tmp_path / 'reports.toml'}:reports.r.charts"
    assert problems == [f"{where}.b.label: expected a non-empty string, got an integer",
                        f'{where}.p.facts: expected pairs of fact ids, earlier then later: [["a_2020", "a_2024"], ...]',
                        f"{where}.p.periods[0]: expected a string, got an integer",
                        f"{where}.p.periods: expected two labels: the earlier period, then the later"]


def test_an_unknown_top_level_table_is_named_by_itself(tmp_path: Path) -> None:
    assert _problems(tmp_path, GOOD + "[extra]\nx = 1\n") == [
        f"{tmp_path / 'reports.toml'}:extra: unknown key (allowed: email, project, reports)"]


@pytest.mark.parametrize(("title", "extra"), [('{ en = "T" }', []), ("5", ["reports.r.title: expected a table, got an integer"])])
def test_texts_of_a_report_whose_languages_are_wrong_are_not_named_unknown(tmp_path: Path, title: str,
                                                                        extra: list[str]) -> None:
    text = GOOD.replace('languages = ["en"]', 'languages = 5').replace('title = { en = "T" }', f"title = {title}")
    where = f"{tmp_path / 'reports.toml'}:"
    assert _problems(tmp_path, text) == [where + "reports.r.languages: expected a non-empty list of strings, got an integer"] + [
        where + p for p in extra]


def test_email_settings_are_kept_as_written_and_default_when_left_out(tmp_path: Path) -> None:
    path = tmp_path / "reports.toml"
    path.write_text(_TWO, encoding="utf-8")
    assert config.load(path).email == config.EmailSettings()
    path.write_text(_TWO + '''
[email]
from = "Desk <desk@example.org>"
reply_to = "Replies <reply@example.org>"
subject = { en = "{title}, {date}: {report}", ru = "{title} — {date}" }
''', encoding="utf-8")
    assert config.load(path).email == config.EmailSettings(
        sender="Desk <desk@example.org>", reply_to="Replies <reply@example.org>",
        subject={"en": "{title}, {date}: {report}", "ru": "{title} — {date}"})


def test_email_settings_are_refused_at_their_key(tmp_path: Path) -> None:
    where = f"{tmp_path / 'reports.toml'}:"
    assert _problems(tmp_path, _TWO + '''
[email]
colour = "blue"
reply_to = "nobody"
subject = { en = "A\\nB", ru = "{x} {y} {title}" }
''') == [where + "email.colour: unknown key (allowed: attempts, backoff, ca_file, connect_timeout, from, max_size, "
         "reply_timeout, reply_to, retry_every, retry_for, subject, time_limit)",
         where + "email.reply_to: 'nobody' is not an email address",
         where + "email.subject.en: expected a subject on one line",
         where + "email.subject.ru: unknown placeholder(s) x, y (use {title}, {date}, {report})"]
    assert _problems(tmp_path, _TWO + '[email]\nsubject = { en = "{title}", ru = 5 }\n') == [
        where + "email.subject.ru: expected a non-empty string, got an integer"]
    assert _problems(tmp_path, _TWO + '[email]\nsubject = { en = "{title}" }\n') == [
        where + "email.subject.ru: missing required key"]
    assert _problems(tmp_path, "reports = 5\n") == [where + "reports: expected a table, got an integer"]


def test_email_limits_are_kept_at_their_edges(tmp_path: Path) -> None:
    path = tmp_path / "reports.toml"
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
    for attempts in (1, 20):
        path.write_text(_TWO + f'''
[email]
ca_file = "ca.pem"
attempts = {attempts}
backoff = "0s"
connect_timeout = "0.1s"
reply_timeout = "0.1s"
time_limit = "0.1s"
retry_for = "0s"
retry_every = "1s"
''', encoding="utf-8")
        assert config.load(path).email == config.EmailSettings(
            ca_file=tmp_path / "ca.pem", attempts=attempts, backoff_seconds=0, connect_timeout=0.1, reply_timeout=0.1,
            time_limit=0.1, retry_for=0, retry_every=1)


@pytest.mark.parametrize(("written", "problem"), [
    ("attempts = 0", "email.attempts: expected a whole number from 1 to 20"),
    ("attempts = 21", "email.attempts: expected a whole number from 1 to 20"),
    ("attempts = true", "email.attempts: expected a whole number from 1 to 20"),
    ('attempts = "3"', "email.attempts: expected a whole number from 1 to 20"),
    ('connect_timeout = "0.09s"', "email.connect_timeout: at least 0.1 s"),
    ('retry_every = "0.5s"', "email.retry_every: at least 1 s"),
    ('backoff = "soon"', "email.backoff: 'soon' is not a duration like '30m', '6h' or '1d'"),
    ("ca_file = 5", "email.ca_file: expected a non-empty string, got an integer"),
])
def test_email_limits_past_their_edges_are_refused(tmp_path: Path, written: str, problem: str) -> None:
    assert _problems(tmp_path, _TWO + f"[email]\n{written}\n") == [f"{tmp_path / 'reports.toml'}:" + problem]


def test_a_report_left_to_its_defaults(tmp_path: Path) -> None:
    from reporter.theme import LAYOUT

    (tmp_path / "templates" / "r").mkdir()
    (tmp_path / "templates" / "r" / "narrative.en.html.j2").write_text("<p>N</p>\n", encoding="utf-8")
    path = tmp_path / "reports.toml"
    path.write_text(GOOD.replace('narrative = "brief/narrative.{lang}.html.j2"\n', ""), encoding="utf-8")
    report = config.load(path).report("r")
    assert (report.formats, report.layout, report.narrative, report.schedule, report.charts, report.tables) == (
        ("pdf", "html"), LAYOUT, "r/narrative.{lang}.html.j2", None, (), ())


def test_a_report_names_each_key_it_lacks(tmp_path: Path) -> None:
    where = f"{tmp_path / 'reports.toml'}:reports.r."
    assert _problems(tmp_path, '[reports.r]\nnarrative = "brief/narrative.{lang}.html.j2"\n') == [
        where + f"{name}: missing required key" for name in ("datasets", "languages", "timezone", "title")]


@pytest.mark.parametrize(("line", "written", "problem"), [
    ("languages", '["EN"]', "reports.r.languages[0]: 'EN' is not a language code like 'ru'"),
    ("languages", '["en", "ru"]', "reports.r.title.ru: missing required key"),
    ("timezone", "5", "reports.r.timezone: expected a non-empty string, got an integer"),
    ("layout", "5", "reports.r.layout: expected a non-empty string, got an integer"),
    ("layout", '"/srv/brief.html.j2"', "reports.r.layout: '/srv/brief.html.j2' must be a path inside the templates "
                                       "folder, like 'brief/narrative.{lang}.html.j2'"),
    ("narrative", r'"brief\\narrative.{lang}.html.j2"', "reports.r.narrative: 'brief\\\\narrative.{lang}.html.j2' must "
                                                         "be a path inside the templates folder, like "
                                                         "'brief/narrative.{lang}.html.j2'"),
])
def test_a_reports_own_keys_are_refused_at_their_key(tmp_path: Path, line: str, written: str, problem: str) -> None:
    lines = [ln for ln in GOOD.splitlines() if not ln.startswith(f"{line} = ")]
    assert _problems(tmp_path, "\n".join(lines) + f"\n{line} = {written}\n") == [f"{tmp_path / 'reports.toml'}:{problem}"]


def test_a_sender_on_two_lines_is_refused_at_its_key(tmp_path: Path) -> None:
    assert _problems(tmp_path, GOOD + '[email]\nfrom = "Desk\\n<desk@example.org>"\n') == [
        f"{tmp_path / 'reports.toml'}:email.from: expected an address on one line"]


def test_a_report_keeps_every_key_it_was_given(tmp_path: Path) -> None:
    (tmp_path / "templates" / "own.html.j2").write_text("{{ title }}\n", encoding="utf-8")
    path = tmp_path / "reports.toml"
    path.write_text('''
[reports.r]
title = { en = "T", ru = "Т" }
short_title = { en = "S", ru = "С" }
datasets = ["brief"]
layout = "own.html.j2"
narrative = "brief/narrative.{lang}.html.j2"
languages = ["en", "ru"]
formats = ["pdf"]
timezone = "Asia/Almaty"
schedule = "0 8 * * 1"
key_figures = []
timeline = false
catch_up = "all"
grace = "2h"
timeout = "90s"
send_if = "changed"
stale = "refuse"
max_age = "2y"
on_failure = ["ops@example.org"]
recipients = [{ email = "a@example.org", name = "A", lang = "ru", kind = "cc" }]
[reports.r.charts.c]
kind = "bars"
title = { en = "C", ru = "Ч" }
facts = ["a"]
[reports.r.tables.t]
resource = "facts"
columns = ["id"]
headers = { en = ["Id"], ru = ["Код"] }
[[reports.r.sections]]
id = "s"
title = { en = "Section", ru = "Раздел" }
charts = ["c"]
tables = ["t"]
''', encoding="utf-8")
    report = config.load(path).report("r")
    assert report == config.Report(
        id="r", title={"en": "T", "ru": "Т"}, datasets=("brief",), layout="own.html.j2",
        narrative="brief/narrative.{lang}.html.j2", languages=("en", "ru"), formats=("pdf",),
        timezone=report.timezone, schedule="0 8 * * 1",
        sections=(config.SectionSpec("s", {"en": "Section", "ru": "Раздел"}, ("c",), ("t",)),),
        charts=(config.ChartSpec("c", "bars", {"en": "C", "ru": "Ч"}, facts=("a",)),),
        tables=(config.TableSpec("t", "facts", ("id",), {"en": ("Id",), "ru": ("Код",)}),),
        key_figures=(), timeline=False, catch_up="all", grace_seconds=7200, timeout_seconds=90,
        short_title={"en": "S", "ru": "С"}, recipients=(config.Recipient("a@example.org", "A", "ru", "cc"),),
        send_if="changed", max_age={"default": 732}, stale="refuse", on_failure=("ops@example.org",))
    assert report.timezone.key == "Asia/Almaty"
    path.write_text(GOOD, encoding="utf-8")
    report = config.load(path).report("r")
    assert (report.key_figures, report.timeline, report.catch_up, report.grace_seconds, report.timeout_seconds,
            report.short_title, report.send_if, report.max_age, report.stale, report.on_failure, report.recipients) == (
        None, True, "latest", 6 * 3600, 600, {"en": "T"}, "always", {}, "mark", (), ())


@pytest.mark.parametrize(("written", "problem"), [
    ('short_title = 5', "reports.r.short_title: expected a table, got an integer"),
    ('short_title = { en = "S" }', "reports.r.short_title.ru: missing required key"),
    ("tables = 5", "reports.r.tables: expected a table, got an integer"),
    ('sections = [{ id = "s", title = { en = "S" } }]', "reports.r.sections[0].title.ru: missing required key"),
])
def test_a_reports_short_title_tables_and_sections_are_refused_at_their_key(tmp_path: Path, written: str,
                                                                             problem: str) -> None:
    assert _problems(tmp_path, _TWO + written + "\n") == [f"{tmp_path / 'reports.toml'}:{problem}"]


def test_a_project_keeps_every_key_it_was_given_and_defaults_those_left_out(tmp_path: Path) -> None:
    path = tmp_path / "reports.toml"
    path.write_text(GOOD, encoding="utf-8")
    project = config.load(path)
    assert project == config.Project(
        path, tmp_path, tmp_path / "data", tmp_path / "templates", tmp_path / "output", project.reports,
        tmp_path / "locale", {}, state_path=tmp_path / "state" / "reporter.sqlite", workers=0, max_tasks_per_worker=20,
        email=config.EmailSettings(), executor="local", redeliver_after=660)
    assert list(project.reports) == ["r"]
    write_dataset(tmp_path / "d")
    write_templates(tmp_path / "t")
    path.write_text('''
[project]
data = "d"
templates = "t"
output = "o"
locale = "l"
state = "s/h.sqlite"
workers = 3
max_tasks_per_worker = 1
executor = "celery"
redeliver_after = "601s"
locales = { en = "en_GB", ru = "ru_RU" }
''' + GOOD.replace("[reports.r]", "[reports.r-2_b]") + GOOD.replace("[reports.r]", "[reports.q]"), encoding="utf-8")
    project = config.load(path)
    assert project == config.Project(
        path, tmp_path, tmp_path / "d", tmp_path / "t", tmp_path / "o", project.reports, tmp_path / "l",
        {"en": "en_GB", "ru": "ru_RU"}, state_path=tmp_path / "s" / "h.sqlite", workers=3, max_tasks_per_worker=1,
        email=config.EmailSettings(), executor="celery", redeliver_after=601)
    assert list(project.reports) == ["r-2_b", "q"] and project.report("q").datasets == ("brief",)
    path.write_text("[project]\nworkers = 0\n" + GOOD, encoding="utf-8")
    assert config.load(path).workers == 0


@pytest.mark.parametrize(("written", "problem"), [
    ("workers = true", "project.workers: expected a whole number of worker processes (0: one per core)"),
    ('workers = "2"', "project.workers: expected a whole number of worker processes (0: one per core)"),
    ("max_tasks_per_worker = true", "project.max_tasks_per_worker: expected a whole number, at least 1"),
    ('max_tasks_per_worker = "5"', "project.max_tasks_per_worker: expected a whole number, at least 1"),
    ('redeliver_after = "600s"', "project.redeliver_after: must be longer than the longest report timeout (600 s), "
                                 "or a render still running would be handed to a second worker"),
    ('redeliver_after = "later"', "project.redeliver_after: 'later' is not a duration like '30m', '6h' or '1d'"),
    ("data = 5", "project.data: expected a non-empty string, got an integer"),
    ("state = 5", "project.state: expected a non-empty string, got an integer"),
    ('data = "nowhere"', "project.data: folder {root}/nowhere does not exist"),
    ('templates = "nowhere"', "project.templates: folder {root}/nowhere does not exist"),
    ("shelf = 1", "project.shelf: unknown key (allowed: {allowed})"),
])
def test_a_projects_own_keys_are_refused_at_their_key(tmp_path: Path, written: str, problem: str) -> None:
    problems = _problems(tmp_path, f"[project]\n{written}\n" + GOOD)
    allowed = ", ".join(sorted(config.PROJECT_KEYS))
    assert problems[0] == f"{tmp_path / 'reports.toml'}:" + problem.format(root=tmp_path, allowed=allowed), problems
    # A missing folder also leaves the report's dataset or narrative missing: named after it.
    assert len(problems) == 1 or '"nowhere"' in written, problems


def test_a_report_id_that_is_not_one_is_named_as_written(tmp_path: Path) -> None:
    assert _problems(tmp_path, GOOD.replace("[reports.r]", '[reports."Ёж r"]')) == [
        f"""{tmp_path / 'reports.toml'}:reports."Ёж r": a report id is lower-case letters, digits, '-' and '_'"""]


@pytest.mark.parametrize(("written", "problems"), [
    ('max_age = { default = "2y", prices = 5, rents = "soon" }',
     ["reports.r.max_age.prices: expected an age like '18 months', got an integer",
      "reports.r.max_age.rents: 'soon' is not an age like '400d', '6 weeks', '18 months' or '2y'"]),
    ("sections = [5, { id = \"s\", title = { en = \"S\" }, charts = [\"nothing\"] }]",
     ["reports.r.sections[0]: expected a table, got an integer",
      "reports.r.sections[1].charts[0]: no chart 'nothing' is declared (declared: none)"]),
    ("sections = [{}]",
     ["reports.r.sections[0].id: missing required key", "reports.r.sections[0].title: missing required key"]),
    ('sections = [{ id = "Part one", title = { en = "S" } }, { id = "s", title = 5 }]',
     ["reports.r.sections[0].id: 'Part one' does not match [a-z][a-z0-9_]*",
      "reports.r.sections[1].title: expected a table, got an integer"]),
    ('sections = [{ id = "s", title = { en = "S" } }, { id = "s", title = { en = "S" } }, { id = "t", title = 5 }]',
     ["reports.r.sections[1].id: section 's' is declared twice",
      "reports.r.sections[2].title: expected a table, got an integer"]),
    ('sections = [{ id = "summary", title = { en = "S" } }, { id = "t", title = 5 }]',
     ["reports.r.sections[0].id: 'summary' is placed by the layout itself; choose another id",
      "reports.r.sections[1].title: expected a table, got an integer"]),
    ('sections = [{ id = "s", title = { en = "S" }, charts = ["nothing"] }]\n[reports.r.charts.b]\nkind = "bars"\n'
     'title = { en = "B" }\nfacts = ["x"]\n[reports.r.charts.a]\nkind = "bars"\ntitle = { en = "A" }\nfacts = ["y"]',
     ["reports.r.sections[0].charts[0]: no chart 'nothing' is declared (declared: a, b)"]),
])
def test_each_topic_and_section_is_checked_after_one_that_is_wrong(tmp_path: Path, written: str,
                                                                  problems: list[str]) -> None:
    assert _problems(tmp_path, GOOD + written + "\n") == [f"{tmp_path / 'reports.toml'}:{p}" for p in problems]


def test_recipients_from_tables_and_a_file_are_kept_in_order_with_their_defaults(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("email,lang,name,kind\nc@example.org,ru,,\nd@example.org,en,D,cc\n",
                                         encoding="utf-8")
    path = tmp_path / "reports.toml"
    path.write_text(_TWO + 'recipients_file = "people.csv"\nrecipients = [{ email = "a@example.org", lang = "en" }, '
                    '{ email = "b@example.org", lang = "ru", name = "B", kind = "bcc" }]\n', encoding="utf-8")
    assert config.load(path).report("r").recipients == (
        config.Recipient("a@example.org", "", "en", "to"), config.Recipient("b@example.org", "B", "ru", "bcc"),
        config.Recipient("c@example.org", "", "ru", "to"), config.Recipient("d@example.org", "D", "en", "cc"))
    path.write_text(_TWO + 'recipients_file = 5\nrecipients = [{ email = "a@example.org", lang = "de" }]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:reports.r.recipients_file: expected a non-empty string, got an integer",
        f"{path}:reports.r.recipients[0].lang: 'de' is not one of the report's languages (en, ru)"]


def test_every_recipient_is_checked_after_one_that_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("email,lang,name\nann@example.org,en,\nnobody,en,\ne@example.org,de,\n",
                                         encoding="utf-8")
    people = [('"Ann@Example.org"', "en", ""), ('"b@example"', "en", ""), ('"c@example.org"', "en", "name = 5, "),
              ('"d@example.org"', "en", 'name = "A\\tB", '), ('"e@example.org"', "de", ""),
              ('"f@example.org"', "en", 'kind = "fax", '), ("5", "en", ""), ('"g@example.org"', "en", "")]
    listed = ", ".join(f'{{ {extra}email = {email}, lang = "{lang}" }}' for email, lang, extra in people)
    problems = _problems(tmp_path, GOOD + f'recipients_file = "people.csv"\nrecipients = [{listed}, 5, {{ lang = "en" }}, {{ email = "h@example.org" }}]\n')
    toml, csv = f"{tmp_path / 'reports.toml'}:reports.r.recipients", f"{tmp_path / 'people.csv'}:line"
    assert problems == [
        f"{toml}[1].email: 'b@example' is not an email address",
        f"{toml}[2].name: expected a name on one line, got an integer",
        f"{toml}[3].name: contains a control character (U+0009)",
        f"{toml}[4].lang: 'de' is not one of the report's languages (en)",
        f"{toml}[5].kind: 'fax' is not one of to, cc, bcc",
        f"{toml}[6].email: 5 is not an email address",
        f"{toml}[8]: expected a table, got an integer",
        f"{toml}[9].email: missing required key",
        f"{toml}[10].lang: missing required key",
        f"{csv} 2.email: ann@example.org is listed twice",
        f"{csv} 3.email: 'nobody' is not an email address",
        f"{csv} 4.lang: 'de' is not one of the report's languages (en)",
    ]


def test_the_config_file_is_the_one_named_then_the_environments_then_reports_toml(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    named, from_env = tmp_path / "named.toml", tmp_path / "env.toml"
    monkeypatch.setenv("REPORTER_CONFIG", str(from_env))
    assert (config.config_path(named), config.config_path(None)) == (named, from_env)
    monkeypatch.delenv("REPORTER_CONFIG")
    assert config.config_path(None) == Path("reports.toml")


def test_a_config_file_missing_unreadable_or_empty_is_named_whole(tmp_path: Path) -> None:
    def problems(path: Path) -> list[str]:
        with pytest.raises(ConfigError) as caught:
            config.load(path)
        return [str(p) for p in caught.value.problems]

    assert problems(tmp_path / "nope.toml") == [f"{tmp_path / 'nope.toml'}: config file not found"]
    assert problems(tmp_path) == [f"{tmp_path}: cannot read the config file: Is a directory"]
    (tmp_path / "empty.toml").write_text("", encoding="utf-8")
    assert problems(tmp_path / "empty.toml") == [f"{tmp_path / 'empty.toml'}:reports: missing required key"]


def test_every_report_id_and_the_locales_are_named_where_they_are_wrong(tmp_path: Path) -> None:
    text = "[project]\nlocales = 5\n" + GOOD.replace("[reports.r]", "[reports.R]") + GOOD.replace("[reports.r]", "[reports.Q]")
    where = f"{tmp_path / 'reports.toml'}:"
    assert _problems(tmp_path, text) == [where + "project.locales: expected a table, got an integer"] + [
        where + f'reports."{r}": a report id is lower-case letters, digits, \'-\' and \'_\'' for r in "RQ"]


def test_one_address_to_tell_of_a_failure_may_be_written_alone(tmp_path: Path) -> None:
    path = tmp_path / "reports.toml"
    path.write_text(GOOD + 'on_failure = "ops@example.org"\n', encoding="utf-8")
    assert config.load(path).report("r").on_failure == ("ops@example.org",)
