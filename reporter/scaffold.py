"""``reporter init`` and ``reporter new``: a project folder, and a working report in it.

``new`` writes a report that validates and renders straight away, in every language asked for:
a Data Package with sources, facts, units and one series; a narrative per language with two
sections and a chart placed; and its table appended to ``reports.toml``. It is a starting point
to edit, not a template to keep: every file it writes says what to change.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from .config import DEFAULT_CONFIG, LANG, REPORT_ID
from .errors import ConfigError, Problem

GITIGNORE = "/output/\n/state/\n*.mo\n"

PROJECT_TOML = """\
# A reporter project. Paths are relative to this file. Add a report with `reporter new ID`.

[project]
data = "data"            # one folder per dataset (a Data Package)
templates = "templates"  # narratives, and any theme file you override (brief.css, fonts/...)
output = "output"        # output/<report>/<YYYY-MM-DD>/
locale = "locale"        # your templates' interface strings, managed by `reporter i18n`
# Which Babel locale formats each language: en_GB writes "5 November 2025".
locales = {{ en = "en_GB" }}

[reports]
"""

# Texts of the example, per language. Languages without their own fall back to English, with a
# note in the narrative to translate it.
TEXTS = {
    "en": {
        "title": "New brief", "short": "New brief",
        "sections": ("Overview", "The trend"),
        "labels": ("Items counted", "Share of the total", "Growth since the first year", "Range of estimates"),
        "units": ("{n} item", "{n} items", "{n} time", "{n} times", "items"),
        "chart": "Example series, items per year",
        "summary": 'This brief was made by <code>reporter new</code>. Replace its data in {data} and its text here. '
                   'Every figure comes from the data: the count is {{{{ fact("total") }}}}, and its share is '
                   '{{{{ fact("share") }}}}.',
        "overview": 'Estimates put the share at {{{{ fact("range") }}}}. Each figure carries its unit, its '
                    'qualifier and a citation, formatted for the language of the edition.',
        "trend": 'The series grew {{{{ fact("growth") }}}} from its first year to its last.',
    },
    "ru": {
        "title": "Новый брифинг", "short": "Новый брифинг",
        "sections": ("Обзор", "Динамика"),
        "labels": ("Число учтённых единиц", "Доля в общем объёме", "Рост с первого года", "Диапазон оценок"),
        "units": ("{n} единица", "{n} единицы", "{n} единиц", "{n} единицы", "в {n} раз", "в {n} раза", "в {n} раз",
                  "в {n} раза", "единиц"),
        "chart": "Пример ряда, единиц в год",
        "summary": 'Этот брифинг создан командой <code>reporter new</code>. Замените его данные в {data} и текст '
                   'здесь. Каждая цифра берётся из данных: учтено {{{{ fact("total") }}}}, их доля составляет '
                   '{{{{ fact("share") }}}}.',
        "overview": 'По оценкам, доля составляет {{{{ fact("range") }}}}. У каждой цифры есть единица измерения, '
                    'оговорка и ссылка на источник, а формат соответствует языку выпуска.',
        "trend": 'За период ряд вырос {{{{ fact("growth") }}}}.',
    },
}


def _texts(lang: str) -> dict:
    return TEXTS.get(lang, TEXTS["en"])


def init(folder: Path) -> list[Path]:
    """Create a project folder: ``reports.toml``, ``data/``, ``templates/``, ``.gitignore``."""
    config = folder / DEFAULT_CONFIG
    if config.exists():
        raise ConfigError([Problem(str(config), "", "already exists: this folder is a project already")])
    folder.mkdir(parents=True, exist_ok=True)
    written = [config, folder / ".gitignore"]
    config.write_text(PROJECT_TOML.format(), encoding="utf-8")
    if not (folder / ".gitignore").exists():
        (folder / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    else:
        written.remove(folder / ".gitignore")
    for name in ("data", "templates"):
        (folder / name).mkdir(exist_ok=True)
        written.append(folder / name)
    return written


def _field(name: str, kind: str = "string", description: str = "", **constraints) -> dict:
    out = {"name": name, "type": kind, "description": description}
    if constraints:
        out["constraints"] = constraints
    return out


def _resource(name: str, title: str, fields: list[dict], key: str | None, foreign: list[dict] = ()) -> dict:
    schema: dict = {"fields": fields, "missingValues": [""]}
    if key:
        schema["primaryKey"] = key
    if foreign:
        schema["foreignKeys"] = list(foreign)
    return {"name": name, "path": f"{name}.csv", "profile": "tabular-data-resource", "title": title,
            "format": "csv", "encoding": "utf-8", "mediatype": "text/csv", "schema": schema}


def _cites(resource: str = "sources") -> dict:
    return {"fields": "source", "reference": {"resource": resource, "fields": "id"}}


def _csv(rows: list[list[str]]) -> str:
    import csv  # noqa: PLC0415
    import io  # noqa: PLC0415

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _datapackage(report_id: str, languages: tuple[str, ...]) -> dict:
    labels = [_field(f"label_{lang}", description=f"What the fact is, in {lang}.", required=True) for lang in languages]
    forms = [_field(f"{c}_{lang}", description=f"The {lang} words for plural category '{c}'; {{n}} is the number.")
             for lang in languages for c in ("one", "few", "many", "other")]
    unit_labels = [_field(f"label_{lang}", description=f"What the unit is called in {lang}.") for lang in languages]
    return {
        "profile": "tabular-data-package",
        "name": report_id,
        "title": f"{report_id}: example data made by reporter new (replace it with yours)",
        "resources": [
            _resource("sources", "Sources", [
                _field("id", description="Short stable id, cited by the other resources.", required=True, unique=True),
                _field("publisher", required=True), _field("title", required=True),
                _field("date", description="YYYY, YYYY-MM or YYYY-MM-DD.", required=True),
                {"name": "url", "type": "string", "format": "uri"},
            ], "id"),
            _resource("units", "Units", [
                _field("id", required=True, unique=True), _field("format"), _field("cldr"), *forms, *unit_labels,
            ], "id"),
            _resource("facts", "Facts", [
                _field("id", required=True, unique=True), _field("value", "number", required=True),
                _field("value_to", "number", description="The upper end of a range; empty for one value."),
                _field("unit", required=True), _field("qualifier"),
                _field("as_of", description="YYYY, YYYY-MM or YYYY-MM-DD.", required=True),
                *labels, _field("source", required=True),
            ], "id", [_cites(), {"fields": "unit", "reference": {"resource": "units", "fields": "id"}}]),
            _resource("series", "Series", [
                _field("year", "year", required=True, unique=True), _field("value", "integer", required=True),
                _field("source", required=True),
            ], "year", [_cites()]),
        ],
    }


def _data_files(report_id: str, languages: tuple[str, ...]) -> dict[str, str]:
    units_header = ["id", "format", "cldr"] + [f"{c}_{lang}" for lang in languages for c in ("one", "few", "many", "other")] \
        + [f"label_{lang}" for lang in languages]
    item_forms, time_forms, names = [], [], []
    for lang in languages:
        words = _texts(lang)["units"]
        if len(words) == 9:  # one, few, many, other for items, then for times, then the name
            item_forms += list(words[0:4])
            time_forms += list(words[4:8])
            names.append(words[8])
        else:  # one and other
            item_forms += [words[0], "", "", words[1]]
            time_forms += [words[2], "", "", words[3]]
            names.append(words[4])
    units = [units_header, ["items", "", ""] + item_forms + names, ["times", "", ""] + time_forms + [""] * len(languages),
             ["percent", "percent", ""] + [""] * (5 * len(languages))]
    labels = [_texts(lang)["labels"] for lang in languages]
    facts = [["id", "value", "value_to", "unit", "qualifier", "as_of"] + [f"label_{lang}" for lang in languages] + ["source"]]
    for index, (fact_id, value, upper, unit, qualifier) in enumerate([
        ("total", "1250", "", "items", "more_than"), ("share", "24.1", "", "percent", ""),
        ("growth", "2.8", "", "times", ""), ("range", "20", "22", "percent", "about"),
    ]):
        facts.append([fact_id, value, upper, unit, qualifier, "2025"] + [label[index] for label in labels] + ["example"])
    return {
        "sources.csv": _csv([["id", "publisher", "title", "date", "url"],
                             ["example", "Example publisher", "Replace with the publication your figures come from",
                              "2025", "https://example.org/"]]),
        "units.csv": _csv(units),
        "facts.csv": _csv(facts),
        "series.csv": _csv([["year", "value", "source"]] + [[str(y), str(v), "example"] for y, v in
                                                             ((2021, 446), (2022, 610), (2023, 790), (2024, 1020), (2025, 1250))]),
        "datapackage.json": json.dumps(_datapackage(report_id, languages), ensure_ascii=False, indent=2) + "\n",
    }


def _narrative(report_id: str, lang: str, data: str) -> str:
    texts = _texts(lang)
    note = "" if lang in TEXTS else "    This language has no example text of its own yet: translate the English below.\n"
    return (
        f"{{#- Narrative of {report_id}, {lang}. Each block fills the section of the same id in reports.toml;\n"
        f"    figures come from {data} by id: fact(\"id\"), chart(\"id\"), cite(\"source\"), event(\"id\").\n{note}-#}}\n"
        f"{{% block summary %}}\n<p>{texts['summary'].format(data=data)}</p>\n{{% endblock %}}\n"
        f"{{% block overview %}}\n<p>{texts['overview'].format()}</p>\n{{% endblock %}}\n"
        f"{{% block trend %}}\n<p>{texts['trend'].format()}</p>\n{{{{ chart(\"trend\") }}}}\n{{% endblock %}}\n"
    )


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _per_language(values: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{lang} = {_toml_string(text)}" for lang, text in values.items()) + " }"


def _report_toml(report_id: str, languages: tuple[str, ...], timezone: str) -> str:
    def each(key: str, index: int | None = None) -> str:
        return _per_language({lang: _texts(lang)[key] if index is None else _texts(lang)[key][index] for lang in languages})

    return f"""
[reports.{report_id}]
title = {each("title")}
short_title = {each("short")}
datasets = ["{report_id}"]
narrative = "{report_id}/narrative.{{lang}}.html.j2"
languages = [{", ".join(_toml_string(lang) for lang in languages)}]
formats = ["pdf", "html"]
timezone = "{timezone}"
# schedule = "0 8 * * 1"     # crontab, in the time zone above: Mondays at 08:00
# key_figures = ["total", "share"]   # which facts the key-figures table shows (default: all)

[[reports.{report_id}.sections]]
id = "overview"
title = {each("sections", 0)}

[[reports.{report_id}.sections]]
id = "trend"
title = {each("sections", 1)}

[reports.{report_id}.charts.trend]
kind = "series"
resource = "series"
x = "year"
y = "value"
unit = "items"
highlight = 2025
title = {each("chart")}
"""


def new_report(config: Path, report_id: str, languages: tuple[str, ...], timezone: str | None = None) -> list[Path]:
    """Add a working report ``report_id`` to the project of ``config``; return the files written.

    Refuses, writing nothing, if the id is taken or any file it would write exists.
    """
    where = str(config)
    if not REPORT_ID.fullmatch(report_id):
        raise ConfigError([Problem(where, "", f"{report_id!r} is not a report id: lower-case letters, digits, '-' and '_'")])
    bad = [lang for lang in languages if not LANG.fullmatch(lang)]
    if bad or not languages:
        raise ConfigError([Problem(where, "", f"{', '.join(bad) or 'no language'}: give language codes like ru,en")])
    try:
        text = config.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError([Problem(where, "", "no project here: run `reporter init DIR` first, or pass --config")]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(where, "", f"not valid TOML: {exc}")]) from None
    if report_id in raw.get("reports", {}):
        raise ConfigError([Problem(where, f"reports.{report_id}", "a report with this id exists already")])
    folders = raw.get("project", {}) if isinstance(raw.get("project"), dict) else {}
    root = config.parent
    data_dir = (root / str(folders.get("data", "data"))).resolve()
    templates_dir = (root / str(folders.get("templates", "templates"))).resolve()
    if timezone is None:
        zones = [r.get("timezone") for r in raw.get("reports", {}).values() if isinstance(r, dict)]
        timezone = next((z for z in zones if isinstance(z, str)), "UTC")
    data = data_dir / report_id
    files = {data / name: content for name, content in _data_files(report_id, languages).items()}
    shown = f"{data.relative_to(root) if root in data.parents else data}"
    for lang in languages:
        files[templates_dir / report_id / f"narrative.{lang}.html.j2"] = _narrative(report_id, lang, shown)
    taken = [path for path in files if path.exists()]
    if taken:
        raise ConfigError([Problem(str(path), "", "exists already: `reporter new` never overwrites") for path in taken])
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    block = _report_toml(report_id, languages, timezone)
    if "[reports]" in text and not raw.get("reports"):
        text = re.sub(r"(?m)^\[reports\]\s*\n", "", text)  # `init` leaves an empty table to show where they go
    with config.open("w", encoding="utf-8") as handle:
        handle.write(text.rstrip("\n") + "\n" + block)
    return [config, *files]
