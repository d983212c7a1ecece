"""Projects built from data in the tests, in temp folders: never the shipped reports.toml or data/.

``brief`` is a small bilingual report whose facts exercise what briefs print: a count with a
qualifier and Russian plurals, a CLDR unit, a decimal percentage, a ratio, percentage points with
a sign, a range and a period; a series, category bars and a comparison of two periods, a table,
events and sources with long URLs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# Values a test may assert on, as each language prints them (normalised: no-break spaces as spaces).
PRINTED = {
    "ru": {"firms": "более 630 компаний", "output": "23 270 т", "share": "24,1 %", "growth": "в 2,8 раза",
           "shift": "+6,4 п. п.", "band": "около 20–22 %", "period": "2020–2024", "small": "0,7 %",
           "budget": "почти 50 млн долл. США"},
    "en": {"firms": "more than 630 companies", "output": "23,270 t", "share": "24.1%", "growth": "2.8 times",
           "shift": "+6.4 percentage points", "band": "about 20–22%", "period": "2020–2024", "small": "0.7%",
           "budget": "almost $50 million"},
}
TITLE = {"ru": "Обзор торговли: тестовый брифинг", "en": "Trade review: a test brief"}

SOURCES = """\
id,publisher,title,date,url
stat-2025,Statistics Office,Annual statistics 2025,2025-03-01,https://stat.example.org/publications/annual-statistics/2025-report-final
news-2024,Daily News,Trade report,2024-11,https://news.example.org/economy/trade-report
"""
UNITS = """\
id,format,cldr,length,one_ru,few_ru,many_ru,other_ru,one_en,other_en,label_ru,label_en
companies,,,,{n} компания,{n} компании,{n} компаний,{n} компании,{n} company,{n} companies,компании,companies
tonnes,,mass-tonne,short,,,,,,,тонн,tonnes
percent,percent,,,,,,,,,,
times,,,,в {n} раз,в {n} раза,в {n} раз,в {n} раза,{n} time,{n} times,,
pp,,,,{n} п. п.,{n} п. п.,{n} п. п.,{n} п. п.,{n} percentage point,{n} percentage points,,
usd_million,,,,{n} млн долл. США,{n} млн долл. США,{n} млн долл. США,{n} млн долл. США,${n} million,${n} million,,
year,plain,,,,,,,,,,
"""
FACTS = """\
id,value,value_to,unit,qualifier,as_of,label_ru,label_en,source
firms,630,,companies,more_than,2025,Компании на рынке,Companies in the market,stat-2025
output,23270,,tonnes,,2024,Выпуск за год,Output in the year,stat-2025
share,24.1,,percent,,2024,Доля крупнейшего партнёра,Share of the largest partner,news-2024
growth,2.8,,times,,2024,Рост торговли,Growth of trade,news-2024
shift,+6.4,,pp,,2024,Сдвиг доли,Shift of the share,news-2024
band,20,22,percent,about,2025,Прогноз доли,Forecast share,stat-2025
period,2020,2024,year,,2024,Период наблюдения,Period observed,stat-2025
small,0.7,,percent,,2024,Малая доля,A small share,stat-2025
budget,50,,usd_million,almost,2017,Бюджет программы,Budget of the programme,stat-2025
"""
SERIES = """\
year,tonnes,source
2019,22808,stat-2025
2020,19477,stat-2025
2021,21819,news-2024
2022,21227,news-2024
2023,21112,news-2024
2024,23270,stat-2025
"""
PARTNERS = """\
id,label_ru,label_en,share_2020,share_2024,source
cn,Китай,China,17.7,24.1,news-2024
ru,Россия,Russia,20.5,18.2,news-2024
eu,Европейский союз,European Union,21.3,19.9,news-2024
tr,Турция,Türkiye,4.2,5.6,news-2024
"""
EVENTS = """\
id,date,label_ru,label_en,place_ru,place_en,source
forum,2023-06,Торговый форум,Trade forum,Алматы,Almaty,news-2024
deal,2024-09,Подписание соглашения о транзите,Transit agreement signed,Астана,Astana,stat-2025
summit,2025,Саммит партнёров,Partners' summit,,,stat-2025
"""
CSV = {"sources": SOURCES, "units": UNITS, "facts": FACTS, "series": SERIES, "partners": PARTNERS, "events": EVENTS}

NARRATIVE = {
    "ru": """\
{% block summary %}
<p>На рынке работает {{ fact("firms") }}. Выпуск за год составил {{ fact("output") }}, а доля крупнейшего
партнёра достигла {{ fact("share") }}.</p>
{% endblock %}
{% block overview %}
<p>Торговля выросла {{ fact("growth") }}, а доля сместилась на {{ fact("shift") }} за период {{ fact("period") }}.
Прогноз доли — {{ fact("band") }}; малая доля — {{ fact("small") }}; бюджет — {{ fact("budget") }}.</p>
{% endblock %}
{% block partners %}
<p>Структура торговли по партнёрам изменилась с {{ year("forum") }} года.</p>
{{ chart("partners") }}
{% endblock %}
""",
    "en": """\
{% block summary %}
<p>There are {{ fact("firms") }} in the market. Output in the year was {{ fact("output") }}, and the largest
partner's share reached {{ fact("share") }}.</p>
{% endblock %}
{% block overview %}
<p>Trade grew {{ fact("growth") }}, and the share moved by {{ fact("shift") }} over {{ fact("period") }}.
The forecast share is {{ fact("band") }}; a small share is {{ fact("small") }}; the budget is {{ fact("budget") }}.</p>
{% endblock %}
{% block partners %}
<p>The pattern of trade by partner has changed since {{ year("forum") }}.</p>
{{ chart("partners") }}
{% endblock %}
""",
}

REPORT = """\
[reports.{id}]
title = {{ ru = "Обзор торговли: тестовый брифинг", en = "Trade review: a test brief" }}
short_title = {{ ru = "Обзор торговли", en = "Trade review" }}
datasets = ["{dataset}"]
narrative = "brief/narrative.{{lang}}.html.j2"
languages = {languages}
formats = {formats}
timezone = "{timezone}"
{schedule}{extra}

[[reports.{id}.sections]]
id = "overview"
title = {{ ru = "Обзор", en = "Overview" }}
charts = ["output"]

[[reports.{id}.sections]]
id = "partners"
title = {{ ru = "Партнёры", en = "Partners" }}
charts = ["change"]
tables = ["partners"]

[reports.{id}.charts.output]
kind = "series"
resource = "series"
x = "year"
y = "tonnes"
unit = "tonnes"
highlight = 2024
title = {{ ru = "Выпуск по годам, т", en = "Output by year, tonnes" }}

[reports.{id}.charts.partners]
kind = "bars"
resource = "partners"
label = "label"
value = "share_2024"
unit = "percent"
highlight = "cn"
title = {{ ru = "Доли партнёров в 2024 году", en = "Partners' shares in 2024" }}

[reports.{id}.charts.change]
kind = "compare"
resource = "partners"
label = "label"
before = "share_2020"
after = "share_2024"
periods = ["2020", "2024"]
unit = "percent"
title = {{ ru = "Доли партнёров: 2020 и 2024", en = "Partners' shares: 2020 and 2024" }}

[reports.{id}.charts.timeline]
kind = "timeline"
title = {{ ru = "События", en = "Events" }}

[reports.{id}.tables.partners]
resource = "partners"
columns = ["label", "share_2020", "share_2024"]
headers = {{ ru = ["Партнёр", "2020", "2024"], en = ["Partner", "2020", "2024"] }}
units = {{ share_2020 = "percent", share_2024 = "percent" }}
"""


def datapackage(name: str, tables: dict[str, str]) -> dict:
    """A Data Package descriptor for CSV texts, with types read off the column names."""
    numbers = {"value", "value_to", "share_2020", "share_2024"}
    integers = {"tonnes"}
    resources = []
    for resource, text in tables.items():
        header = text.splitlines()[0].split(",")
        fields = []
        for column in header:
            kind = "number" if column in numbers else "integer" if column in integers else "year" if column == "year" else "string"
            fields.append({"name": column, "type": kind})
        schema: dict = {"fields": fields, "missingValues": [""]}
        key = "year" if resource == "series" else "id" if "id" in header else None
        if key:
            schema["primaryKey"] = key
        if "source" in header and resource != "sources":
            schema["foreignKeys"] = [{"fields": "source", "reference": {"resource": "sources", "fields": "id"}}]
        resources.append({"name": resource, "path": f"{resource}.csv", "profile": "tabular-data-resource", "schema": schema})
    return {"profile": "tabular-data-package", "name": name, "resources": resources}


def write_dataset(data_dir: Path, name: str = "brief", tables: dict[str, str] | None = None) -> Path:
    folder = data_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    tables = dict(CSV if tables is None else tables)
    for resource, text in tables.items():
        (folder / f"{resource}.csv").write_text(text, encoding="utf-8")
    (folder / "datapackage.json").write_text(json.dumps(datapackage(name, tables), indent=1), encoding="utf-8")
    return folder


def write_templates(templates_dir: Path) -> Path:
    for lang, text in NARRATIVE.items():
        path = templates_dir / "brief" / f"narrative.{lang}.html.j2"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return templates_dir


def report_block(report_id: str = "brief", *, schedule: str | None = "0 8 * * 1", timezone: str = "Asia/Almaty",
                 languages: str = '["ru", "en"]', formats: str = '["pdf", "html"]', dataset: str = "brief",
                 extra: str = "") -> str:
    """The test report as a reports.toml table, under ``report_id``, with the given settings."""
    line = f'schedule = "{schedule}"\n' if schedule else ""
    text = REPORT.format(id=report_id, dataset=dataset, languages=languages, formats=formats, timezone=timezone,
                         schedule=line, extra=extra)
    if languages == '["en"]':
        text = text.replace('ru = "Обзор торговли: тестовый брифинг", ', "").replace('ru = "Обзор торговли", ', "")
        text = "\n".join(_only_en(line) for line in text.splitlines()) + "\n"
    return text


def _only_en(line: str) -> str:
    if "ru =" in line and "en =" in line and line.rstrip().endswith("}"):
        head, _, rest = line.partition("{")
        return head + "{ " + rest[rest.index("en ="):]
    return line


RECIPIENTS = """
[[reports.{id}.recipients]]
email = "analyst@example.org"
name = "Аналитик"
lang = "ru"

[[reports.{id}.recipients]]
email = "desk@example.org"
name = "News desk"
lang = "en"

[[reports.{id}.recipients]]
email = "editor@example.org"
name = "Редактор"
lang = "ru"
kind = "cc"
"""
EMAIL = """
[email]
from = "Reporter <briefings@example.org>"
reply_to = "Editors <editors@example.org>"
subject = { ru = "Брифинг: {title}, {date}", en = "Briefing: {title}, {date}" }
"""


def make_project(folder: Path, blocks: list[str] | None = None, *, broken_dataset: bool = False,
                 project_extra: str = "", email: bool = False, tables: dict[str, str] | None = None) -> Path:
    """A project folder with its own data, templates, output and state, holding ``blocks``."""
    data = folder / "data"
    write_dataset(data, tables=tables)
    write_templates(folder / "templates")
    if broken_dataset:
        shutil.copytree(data / "brief", data / "broken")
        series = data / "broken" / "series.csv"
        series.write_text(series.read_text(encoding="utf-8").replace("2020,19477", "2020,many"), encoding="utf-8")
    blocks = [report_block()] if blocks is None else blocks
    config = folder / "reports.toml"
    config.write_text(
        "[project]\n"
        f'data = "{data}"\ntemplates = "{folder / "templates"}"\noutput = "{folder / "output"}"\n'
        f'state = "{folder / "state" / "history.sqlite"}"\nlocale = "{folder / "locale"}"\n'
        f'locales = {{ en = "en_GB" }}\n{project_extra}\n\n'
        + "\n".join(blocks) + (EMAIL if email else ""), encoding="utf-8")
    return config


def with_recipients(report_id: str = "brief") -> str:
    return RECIPIENTS.format(id=report_id)
