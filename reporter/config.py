"""``reports.toml`` -> frozen, validated :class:`Project` settings.

Every problem in the file is collected (unknown keys included) and reported at once as a
:class:`~reporter.errors.ConfigError` naming the file and the key. Paths in the file are relative
to the file, so a project folder can live anywhere.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError, Problem

DEFAULT_CONFIG = "reports.toml"
FORMATS = ("pdf", "html")
CHART_KINDS = ("series", "shares", "timeline")
REPORT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
LANG = re.compile(r"^[a-z]{2,3}$")


@dataclass(frozen=True)
class ChartSpec:
    """One chart of a report: what to draw (``kind``) from which data, with a title per language."""

    id: str
    kind: str
    title: dict[str, str]
    dataset: str
    resource: str = ""
    x: str = ""
    y: str = ""
    unit: str = ""
    highlight: Any = None
    facts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """One report as configured under ``[reports.<id>]``."""

    id: str
    title: dict[str, str]
    datasets: tuple[str, ...]
    template: str
    narrative: str
    languages: tuple[str, ...]
    formats: tuple[str, ...]
    timezone: ZoneInfo
    schedule: str | None
    charts: tuple[ChartSpec, ...] = ()


@dataclass(frozen=True)
class Project:
    """The whole configuration: folders (absolute) and reports by id, in file order."""

    path: Path
    root: Path
    data_dir: Path
    templates_dir: Path
    output_dir: Path
    reports: dict[str, Report] = field(default_factory=dict)
    locales: dict[str, str] = field(default_factory=dict)

    def locale_of(self, lang: str) -> str:
        """The Babel locale that formats ``lang`` (``en`` -> ``en_GB`` if so configured)."""
        return self.locales.get(lang, lang)

    def report(self, report_id: str) -> Report:
        try:
            return self.reports[report_id]
        except KeyError:
            known = ", ".join(self.reports) or "none"
            raise ConfigError(
                [Problem(str(self.path), "", f"no report {report_id!r} (known: {known})")]
            ) from None


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """The config file to use: ``--config``, else ``$REPORTER_CONFIG``, else ``./reports.toml``."""
    return Path(explicit or os.environ.get("REPORTER_CONFIG") or DEFAULT_CONFIG)


class _Checker:
    """Collects problems while reading nested tables, each named by its dotted key."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, key, message))

    def table(self, value: Any, key: str, allowed: set[str], required: set[str] = set()) -> dict:
        if not isinstance(value, dict):
            self.problem(key, f"expected a table, got {_kind(value)}")
            return {}
        for name in value:
            if name not in allowed:
                self.problem(_join(key, name), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for name in sorted(required - value.keys()):
            self.problem(_join(key, name), "missing required key")
        return value

    def string(self, value: Any, key: str, pattern: re.Pattern[str] | None = None) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(key, f"expected a non-empty string, got {_kind(value)}")
            return None
        if pattern and not pattern.match(value):
            self.problem(key, f"{value!r} does not match {pattern.pattern}")
            return None
        return value

    def strings(self, value: Any, key: str, check: Callable[[str, str], str | None]) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.problem(key, f"expected a non-empty list of strings, got {_kind(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.problem(f"{key}[{i}]", f"expected a string, got {_kind(item)}")
            elif item in out:
                self.problem(f"{key}[{i}]", f"{item!r} is listed twice")
            elif (checked := check(item, f"{key}[{i}]")) is not None:
                out.append(checked)
        return tuple(out)

    def per_language(self, value: Any, key: str, languages: tuple[str, ...]) -> dict[str, str]:
        table = self.table(value, key, set(languages), set(languages))
        return {lang: text for lang, v in table.items() if (text := self.string(v, _join(key, lang)))}


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _kind(value: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
             list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)


REPORT_KEYS = {
    "title", "datasets", "template", "narrative", "languages", "formats", "timezone",
    "schedule", "charts",
}
CHART_KEYS = {"kind", "title", "dataset", "resource", "x", "y", "unit", "highlight", "facts"}


def load(path: str | os.PathLike[str] | None = None) -> Project:
    """Read and validate the config file; raise :class:`ConfigError` listing every problem."""
    path = config_path(path).resolve()
    name = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([Problem(name, "", "config file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(name, "", f"not valid UTF-8 ({exc.reason} at byte {exc.start})")]) from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib puts "(at line L, column C)" in its message: that is the place.
        raise ConfigError([Problem(name, "", f"not valid TOML: {exc}")]) from None

    check = _Checker(name)
    top = check.table(raw, "", {"project", "reports"}, {"reports"})
    root = path.parent
    folders = check.table(top.get("project", {}), "project", {"data", "templates", "output", "locales"})

    def folder(key: str, default: str) -> Path:
        value = check.string(folders.get(key, default), f"project.{key}") or default
        return (root / value).resolve()

    data_dir, templates_dir, output_dir = folder("data", "data"), folder("templates", "templates"), folder("output", "output")
    for key, where in (("data", data_dir), ("templates", templates_dir)):
        if not where.is_dir():
            check.problem(f"project.{key}", f"folder {where} does not exist")

    locales = {}
    for lang, value in check.table(folders.get("locales", {}), "project.locales", set(folders.get("locales", {}) or {})).items():
        if locale_id := check.string(value, f"project.locales.{lang}", re.compile(r"^[a-z]{2,3}(_[A-Za-z0-9]+)*$")):
            locales[lang] = locale_id

    reports: dict[str, Report] = {}
    for report_id, table in check.table(top.get("reports", {}), "reports", set(top.get("reports", {}) or {})).items():
        key = f"reports.{report_id}"
        if not REPORT_ID.match(report_id):
            check.problem(key, "a report id is lower-case letters, digits, '-' and '_'")
            continue
        report = _report(check, key, report_id, table, data_dir, templates_dir)
        if report:
            reports[report_id] = report
    if not reports and not check.problems:
        check.problem("reports", "no reports defined")
    if check.problems:
        raise ConfigError(check.problems)
    return Project(path, root, data_dir, templates_dir, output_dir, reports, locales)


def _report(check: _Checker, key: str, report_id: str, raw: Any, data_dir: Path, templates_dir: Path) -> Report | None:
    before = len(check.problems)
    table = check.table(raw, key, REPORT_KEYS, {"title", "datasets", "template", "languages", "timezone"})
    if not table:
        return None

    def language(lang: str, where: str) -> str | None:
        return lang if LANG.match(lang) else check.problem(where, f"{lang!r} is not a language code like 'ru'")

    def fmt(value: str, where: str) -> str | None:
        return value if value in FORMATS else check.problem(where, f"{value!r} is not one of {', '.join(FORMATS)}")

    def dataset(name: str, where: str) -> str | None:
        if not (data_dir / name / "datapackage.json").is_file():
            return check.problem(where, f"no dataset {name!r}: {data_dir / name / 'datapackage.json'} is missing")
        return name

    languages = check.strings(table.get("languages"), f"{key}.languages", language)
    title = check.per_language(table.get("title"), f"{key}.title", languages)
    datasets = check.strings(table.get("datasets"), f"{key}.datasets", dataset)
    formats = check.strings(table.get("formats", list(FORMATS)), f"{key}.formats", fmt)
    template = check.string(table.get("template"), f"{key}.template")
    if template and not (templates_dir / template).is_file():
        check.problem(f"{key}.template", f"template {templates_dir / template} does not exist")
    narrative = table.get("narrative", "")
    if narrative:
        narrative = check.string(narrative, f"{key}.narrative") or ""
        if narrative and "{lang}" not in narrative:
            check.problem(f"{key}.narrative", "must contain '{lang}', e.g. 'kz-us/narrative.{lang}.html.j2'")
        elif narrative:
            for lang in languages:
                if not (templates_dir / narrative.format(lang=lang)).is_file():
                    check.problem(f"{key}.narrative", f"template {templates_dir / narrative.format(lang=lang)} does not exist")
    zone = None
    if tz_name := check.string(table.get("timezone"), f"{key}.timezone"):
        try:
            zone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            check.problem(f"{key}.timezone", f"unknown time zone {tz_name!r} (use an IANA name like 'Asia/Almaty')")
    schedule = None
    if "schedule" in table:
        schedule = check.string(table["schedule"], f"{key}.schedule")
        if schedule:
            from .crontab import parse_schedule  # noqa: PLC0415 - only needed with a schedule
            try:
                parse_schedule(schedule, zone or ZoneInfo("UTC"))
            except ValueError as exc:
                check.problem(f"{key}.schedule", str(exc))
    charts = tuple(
        chart for chart_id, spec in check.table(table.get("charts", {}), f"{key}.charts", set(table.get("charts", {}) or {})).items()
        if (chart := _chart(check, f"{key}.charts.{chart_id}", chart_id, spec, languages, datasets))
    )
    if len(check.problems) > before:
        return None
    return Report(
        id=report_id, title=title, datasets=datasets, template=template or "", narrative=narrative,
        languages=languages, formats=formats, timezone=zone, schedule=schedule, charts=charts,
    )


def _chart(check: _Checker, key: str, chart_id: str, raw: Any, languages: tuple[str, ...], datasets: tuple[str, ...]) -> ChartSpec | None:
    table = check.table(raw, key, CHART_KEYS, {"kind", "title"})
    if not table:
        return None
    kind = check.string(table.get("kind"), f"{key}.kind")
    if kind and kind not in CHART_KINDS:
        check.problem(f"{key}.kind", f"{kind!r} is not one of {', '.join(CHART_KINDS)}")
    title = check.per_language(table.get("title"), f"{key}.title", languages)
    dataset = table.get("dataset", datasets[0] if datasets else "")
    if dataset not in datasets:
        check.problem(f"{key}.dataset", f"{dataset!r} is not one of the report's datasets")
    needs = {"series": ("resource", "x", "y"), "shares": ("facts",), "timeline": ("resource",)}.get(kind or "", ())
    for name in needs:
        if name not in table:
            check.problem(f"{key}.{name}", f"missing required key for a {kind} chart")
    strings = {name: check.string(table[name], f"{key}.{name}") or "" for name in ("resource", "x", "y", "unit") if name in table}
    facts = check.strings(table["facts"], f"{key}.facts", lambda v, w: v) if "facts" in table else ()
    return ChartSpec(id=chart_id, kind=kind or "", title=title, dataset=dataset, facts=facts,
                     highlight=table.get("highlight"), **strings)
