"""``reports.toml`` -> frozen, validated :class:`Project` settings.

Every problem in the file is collected (unknown keys included) and reported at once as a
:class:`~reporter.errors.ConfigError` naming the file and the key. Paths in the file are relative
to the file, so a project folder can live anywhere.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError, Problem

DEFAULT_CONFIG = "reports.toml"
FORMATS = ("pdf", "html")
CATCH_UP = ("skip", "latest", "all")
SEND_IF = ("always", "changed")
STALE = ("mark", "refuse")
AGE = re.compile(r"(\d+)\s*(d|days?|w|weeks?|mo|months?|y|years?)")
RECIPIENT_KINDS = ("to", "cc", "bcc")
EXECUTORS = ("local", "celery")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)$", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"6h"``, ``"1d"`` -> seconds; ``ValueError`` otherwise."""
    match = DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like '30m', '6h' or '1d'")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def parse_size(text: str) -> int:
    """``"10MB"`` -> bytes (powers of 1024); ``ValueError`` otherwise."""
    match = SIZE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size like '10MB'")
    return int(float(match.group(1)) * 1024 ** ("B", "KB", "MB", "GB").index(match.group(2).upper()))


def valid_address(text: str) -> bool:
    """True for a plain addr-spec (``name@example.org``) that the email package accepts."""
    from email.headerregistry import Address  # noqa: PLC0415
    from email.errors import HeaderParseError  # noqa: PLC0415

    # ASCII only: smtplib cannot put an internationalised address on the wire without
    # SMTPUTF8; a domain like пример.рф is written in its xn-- form.
    if not text.isascii() or not re.fullmatch(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+", text):
        return False
    try:
        Address(addr_spec=text)
    except (HeaderParseError, ValueError, IndexError):
        return False
    return True


# Header values. RFC 5322 allows 998 characters on a line; mail clients cut a subject or a name
# long before that, and an address is at most 254 characters on the SMTP envelope (RFC 5321).
HEADER_LIMIT = 250
ADDRESS_LIMIT = 254
_LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def header_problem(text: str, what: str, limit: int = HEADER_LIMIT) -> str | None:
    """Why ``text`` cannot be a header value (``what``: "a subject", "a name"), or None.

    A line break would end the header and start another (header injection), and Python's email
    package refuses it with an exception at send time; other control characters are garbled by
    mail clients. Checked when the config is loaded and again on the rendered subject.
    """
    if any(c in _LINE_BREAKS for c in text):
        return f"expected {what} on one line"
    control = next((c for c in text if ord(c) < 32 or 127 <= ord(c) < 160), None)
    if control is not None:
        return f"contains a control character (U+{ord(control):04X})"
    if len(text) > limit:
        return f"is {len(text)} characters long; at most {limit}"
    return None


CHART_KINDS = ("bars", "series", "compare", "shares", "timeline")
# Whole-string rules (fullmatch): "weekly\n" is not an id, and an id never names a path.
REPORT_ID = re.compile(r"[a-z0-9][a-z0-9_-]*")
DATASET_ID = REPORT_ID
SECTION_ID = re.compile(r"[a-z][a-z0-9_]*")
LANG = re.compile(r"[a-z]{2,3}")
RESERVED_BLOCKS = ("summary",)
"""Narrative blocks the layout places itself; a section may not take these ids."""


@dataclass(frozen=True)
class ChartSpec:
    """One chart of a report: what to draw (``kind``) from which data, with a title per language.

    Data comes either from facts (``facts``: ids, or pairs of ids for ``compare``) or from rows of
    a resource (``resource`` with the columns each kind names). See the README for every kind.
    """

    id: str
    kind: str
    title: dict[str, str]
    resource: str = ""
    facts: tuple = ()
    label: str = ""
    value: str = ""
    x: str = ""
    y: str = ""
    before: str = ""
    after: str = ""
    periods: tuple[str, ...] = ()
    unit: str = ""
    highlight: tuple = ()
    direction: str = "horizontal"
    style: str = "bars"
    key: str = "id"


@dataclass(frozen=True)
class TableSpec:
    """A table of rows from a resource, with the columns and headings per language that it shows."""

    id: str
    resource: str
    columns: tuple[str, ...]
    headers: dict[str, tuple[str, ...]]
    title: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    where: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SectionSpec:
    """A section of a report: its id (the narrative's block), heading per language, what it places."""

    id: str
    title: dict[str, str]
    charts: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipient:
    """Someone who gets a report's edition by email, in one language."""

    email: str
    name: str
    lang: str
    kind: str = "to"  # to | cc | bcc


@dataclass(frozen=True)
class EmailSettings:
    """``[email]``: sender, reply-to, subject per language, size limit and TLS trust."""

    sender: str = ""
    reply_to: str = ""
    subject: dict[str, str] = field(default_factory=dict)
    max_bytes: int = 10 * 1024 * 1024
    ca_file: Path | None = None
    attempts: int = 4
    backoff_seconds: float = 2.0
    connect_timeout: float = 10.0  # to open the connection (and finish TLS for smtps)
    reply_timeout: float = 30.0  # for each reply of the server, and to take each block of the message
    time_limit: float = 600.0  # one delivery of one edition, every attempt and pause included
    retry_for: float = 2 * 86400.0  # scheduled retries of undelivered messages, from when the edition was written
    retry_every: float = 600.0  # how often ``reporter run`` retries them between slots


@dataclass(frozen=True)
class Report:
    """One report as configured under ``[reports.<id>]``: its shape (sections, charts, tables,
    key figures) is data here, so a new brief needs no Python and no layout of its own."""

    id: str
    title: dict[str, str]
    datasets: tuple[str, ...]
    layout: str
    narrative: str
    languages: tuple[str, ...]
    formats: tuple[str, ...]
    timezone: ZoneInfo
    schedule: str | None
    sections: tuple[SectionSpec, ...] = ()
    charts: tuple[ChartSpec, ...] = ()
    tables: tuple[TableSpec, ...] = ()
    key_figures: tuple[str, ...] | None = None  # None: every fact, in file order
    timeline: bool = True
    catch_up: str = "latest"
    grace_seconds: float = 6 * 3600
    timeout_seconds: float = 600
    short_title: dict[str, str] = field(default_factory=dict)
    recipients: tuple[Recipient, ...] = ()
    send_if: str = "always"
    max_age: dict[str, int] = field(default_factory=dict)  # topic (or "default") -> days a fact stays fresh
    stale: str = "mark"  # mark | refuse: what a stale fact does to the edition's delivery
    on_failure: tuple[str, ...] = ()  # told when a scheduled run of this report fails

    def narrative_for(self, lang: str) -> str:
        return self.narrative.replace("{lang}", lang)


@dataclass(frozen=True)
class Project:
    """The whole configuration: folders (absolute) and reports by id, in file order."""

    path: Path
    root: Path
    data_dir: Path
    templates_dir: Path
    output_dir: Path
    reports: dict[str, Report] = field(default_factory=dict)
    locale_dir: Path | None = None
    locales: dict[str, str] = field(default_factory=dict)
    state_path: Path | None = None
    workers: int = 0
    max_tasks_per_worker: int = 20
    email: EmailSettings = field(default_factory=EmailSettings)
    executor: str = "local"  # local: a process pool here | celery: workers on any host, through Redis
    redeliver_after: float = 0.0  # celery: an unacknowledged render goes to another worker after this long

    def locale_of(self, lang: str) -> str:
        """The Babel locale that formats ``lang`` (``en`` -> ``en_GB`` if so configured)."""
        return self.locales.get(lang, lang)

    def report(self, report_id: str) -> Report:
        try:
            return self.reports[report_id]
        except KeyError:
            known = ", ".join(self.reports)  # never empty: a project without reports is refused
            raise ConfigError(
                [Problem(str(self.path), "", f"no report {report_id!r} (known: {known})")]
            ) from None


def edition_date(report: Report, clock: Callable[[], datetime]) -> date:
    """Today in the report's own time zone: a Monday 01:00 in Almaty is still Sunday in UTC."""
    return clock().astimezone(report.timezone).date()


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

    def parsed(self, table: dict, name: str, key: str, parse: Callable[[str], Any], default: Any) -> Any:
        """``table[name]`` through ``parse`` (a duration, a size), or ``default`` if absent."""
        if name not in table:
            return default
        try:
            return parse(str(table[name]))
        except ValueError as exc:
            self.problem(key, str(exc))
            return default

    def mapping(self, value: Any, key: str) -> dict:
        """A table whose keys are names the user chooses (report ids, chart ids, languages)."""
        return self.table(value, key, set(value) if isinstance(value, dict) else set())

    # TOML has no null: None means the key is missing, which the enclosing table already reported.

    def table(self, value: Any, key: str, allowed: set[str], required: set[str] = set()) -> dict:
        if value is None:
            return {}
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
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(key, f"expected a non-empty string, got {_kind(value)}")
            return None
        if pattern and not pattern.fullmatch(value):
            self.problem(key, f"{value!r} does not match {pattern.pattern}")
            return None
        return value

    def strings(self, value: Any, key: str, check: Callable[[str, str], str | None]) -> tuple[str, ...]:
        if value is None:
            return ()
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
        if value is None:
            return {}
        if not languages:
            # The languages themselves were wrong, and that is reported: naming every text
            # "unknown" as well would bury it.
            table = self.table(value, key, set(value) if isinstance(value, dict) else set())
            return {lang: v for lang, v in table.items() if isinstance(v, str)}
        table = self.table(value, key, set(languages), set(languages))
        return {lang: text for lang, v in table.items() if (text := self.string(v, _join(key, lang)))}


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _kind(value: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
             list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)


REPORT_KEYS = {
    "title", "datasets", "layout", "narrative", "languages", "formats", "timezone",
    "schedule", "sections", "charts", "tables", "key_figures", "timeline", "catch_up", "grace",
    "timeout", "short_title", "recipients", "recipients_file", "send_if", "on_failure", "max_age", "stale",
}
PROJECT_KEYS = {"data", "templates", "output", "locale", "locales", "state", "workers", "max_tasks_per_worker",
                "executor", "redeliver_after"}
EMAIL_KEYS = {"from", "reply_to", "subject", "max_size", "ca_file", "attempts", "backoff", "connect_timeout",
              "reply_timeout", "time_limit", "retry_for", "retry_every"}
RECIPIENT_KEYS = {"email", "name", "lang", "kind"}
SECTION_KEYS = {"id", "title", "charts", "tables"}
TABLE_KEYS = {"resource", "columns", "headers", "title", "units", "where"}
# What each chart kind reads; anything else under a chart of that kind is an unknown key.
CHART_COMMON = {"kind", "title", "unit", "highlight"}
CHART_KINDS_KEYS = {
    "bars": ({"facts", "resource", "label", "value", "direction", "key"}, ("facts", ("resource", "label", "value"))),
    "series": ({"resource", "x", "y", "style"}, (("resource", "x", "y"),)),
    "compare": ({"facts", "resource", "label", "before", "after", "periods", "direction", "key"},
                ("facts", ("resource", "label", "before", "after"))),
    "shares": ({"facts", "resource", "label", "value", "key"}, ("facts", ("resource", "label", "value"))),
    "timeline": ({"resource"}, ()),
}


def load(path: str | os.PathLike[str] | None = None) -> Project:
    """Read and validate the config file; raise :class:`ConfigError` listing every problem."""
    path = config_path(path).resolve()
    name = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([Problem(name, "", "config file not found")]) from None
    except OSError as exc:
        raise ConfigError([Problem(name, "", f"cannot read the config file: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(name, "", f"not valid UTF-8 ({exc.reason} at byte {exc.start})")]) from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib puts "(at line L, column C)" in its message: that is the place.
        raise ConfigError([Problem(name, "", f"not valid TOML: {exc}")]) from None

    check = _Checker(name)
    top = check.table(raw, "", {"project", "reports", "email"}, {"reports"})
    root = path.parent
    folders = check.table(top.get("project", {}), "project", PROJECT_KEYS)

    def folder(key: str, default: str) -> Path:
        value = check.string(folders.get(key, default), f"project.{key}") or default
        return (root / value).resolve()

    data_dir, templates_dir, output_dir = folder("data", "data"), folder("templates", "templates"), folder("output", "output")
    locale_dir = folder("locale", "locale")
    for key, where in (("data", data_dir), ("templates", templates_dir)):
        if not where.is_dir():
            check.problem(f"project.{key}", f"folder {where} does not exist")

    locales = {}
    for lang, value in check.mapping(folders.get("locales", {}), "project.locales").items():
        if locale_id := check.string(value, f"project.locales.{lang}", re.compile(r"[a-z]{2,3}(_[A-Za-z0-9]+)*")):
            locales[lang] = locale_id

    reports: dict[str, Report] = {}
    for report_id, table in check.mapping(top.get("reports", {}), "reports").items():
        key = f"reports.{report_id}"
        if not REPORT_ID.fullmatch(report_id):
            check.problem(f"reports.{json.dumps(report_id, ensure_ascii=False)}",
                          "a report id is lower-case letters, digits, '-' and '_'")
            continue
        report = _report(check, key, report_id, table, data_dir, templates_dir)
        if report:
            reports[report_id] = report
    if not reports and not check.problems:
        check.problem("reports", "no reports defined")
    state = folders.get("state", "state/reporter.sqlite")
    state_path = (root / (check.string(state, "project.state") or "state/reporter.sqlite")).resolve()
    workers = folders.get("workers", 0)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        check.problem("project.workers", "expected a whole number of worker processes (0: one per core)")
    max_tasks = folders.get("max_tasks_per_worker", 20)
    if not isinstance(max_tasks, int) or isinstance(max_tasks, bool) or max_tasks < 1:
        check.problem("project.max_tasks_per_worker", "expected a whole number, at least 1")
    executor = folders.get("executor", "local")
    if executor not in EXECUTORS:
        check.problem("project.executor", f"expected one of {', '.join(EXECUTORS)}")
    # Redis hands a render nobody acknowledged to another worker after this long, even while the
    # first still works on it: shorter than a render may take, and every long render runs twice.
    longest = max((r.timeout_seconds for r in reports.values()), default=Report.timeout_seconds)
    redeliver_after = check.parsed(folders, "redeliver_after", "project.redeliver_after", parse_duration, longest + 60)
    if redeliver_after <= longest:
        check.problem("project.redeliver_after", f"must be longer than the longest report timeout ({longest:g} s), "
                      "or a render still running would be handed to a second worker")
    email = _email(check, top.get("email", {}), root, _declared_languages(top.get("reports")))
    if check.problems:
        raise ConfigError(check.problems)
    return Project(path, root, data_dir, templates_dir, output_dir, reports, locale_dir, locales,
                   state_path=state_path, workers=workers, max_tasks_per_worker=max_tasks, email=email,
                   executor=executor, redeliver_after=redeliver_after)



def _declared_languages(reports: Any) -> set[str]:
    """Languages as declared, even by reports with other mistakes, so [email] is not blamed too."""
    tables = reports.values() if isinstance(reports, dict) else ()
    lists = [t["languages"] for t in tables if isinstance(t, dict) and isinstance(t.get("languages"), list)]
    return {lang for langs in lists for lang in langs if isinstance(lang, str)}


def _email(check: _Checker, raw: Any, root: Path, languages: set[str]) -> EmailSettings:
    table = check.table(raw, "email", EMAIL_KEYS)
    sender = _mailbox(check, table.get("from", ""), "email.from")
    reply_to = _mailbox(check, table.get("reply_to", ""), "email.reply_to")
    subject = {}
    if "subject" in table:
        subject = check.per_language(table["subject"], "email.subject", tuple(sorted(languages)))
        for lang, text in list(subject.items()):
            if problem := header_problem(text, "a subject"):
                check.problem(f"email.subject.{lang}", problem)
                del subject[lang]
                continue
            unknown = set(re.findall(r"{(\w*)}", text)) - {"title", "date", "report"}
            if unknown:
                check.problem(f"email.subject.{lang}", f"unknown placeholder(s) {', '.join(sorted(unknown))} (use {{title}}, {{date}}, {{report}})")
    max_bytes = check.parsed(table, "max_size", "email.max_size", parse_size, EmailSettings.max_bytes)
    ca_file = None
    if "ca_file" in table and (name := check.string(table["ca_file"], "email.ca_file")):
        ca_file = (root / name).resolve()
        if not ca_file.is_file():
            check.problem("email.ca_file", f"{ca_file} does not exist")
    attempts = table.get("attempts", EmailSettings.attempts)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 20:
        check.problem("email.attempts", "expected a whole number from 1 to 20")
        attempts = EmailSettings.attempts
    durations = {}
    for name, attribute, low in (("backoff", "backoff_seconds", 0), ("connect_timeout", "connect_timeout", 0.1),
                                 ("reply_timeout", "reply_timeout", 0.1), ("time_limit", "time_limit", 0.1),
                                 ("retry_for", "retry_for", 0), ("retry_every", "retry_every", 1)):
        default = getattr(EmailSettings, attribute)
        value = check.parsed(table, name, f"email.{name}", parse_duration, default)
        if value < low:
            check.problem(f"email.{name}", f"at least {low:g} s")
            value = default
        durations[attribute] = value
    return EmailSettings(sender=sender, reply_to=reply_to, subject=subject, max_bytes=max_bytes,
                         ca_file=ca_file, attempts=attempts, **durations)


def _mailbox(check: _Checker, value: Any, key: str) -> str:
    """``from`` or ``reply_to``: "Name <address>" or a bare address, on one line; "" if absent or wrong."""
    if not value:
        return ""
    if not isinstance(value, str):
        check.problem(key, f"expected an address like 'Name <name@example.org>', got {_kind(value)}")
        return ""
    # Before parsing: parseaddr stops at a line break and would accept what comes before it.
    if problem := header_problem(value, "an address", HEADER_LIMIT):
        check.problem(key, problem)
        return ""
    if not valid_address(_addr_spec(value)):
        check.problem(key, f"{value!r} is not an email address")
        return ""
    return value


def _addr_spec(text: str) -> str:
    from email.utils import parseaddr  # noqa: PLC0415

    return parseaddr(text)[1] if "<" in text else text


def _relative_template(check: _Checker, value: Any, where: str) -> str | None:
    """A template name: relative, inside the templates folder (no ``..``, no absolute path)."""
    name = check.string(value, where)
    if name and (name.startswith("/") or ".." in Path(name).parts or "\\" in name):
        return check.problem(where, f"{name!r} must be a path inside the templates folder, like 'brief/narrative.{{lang}}.html.j2'")
    return name


def _report(check: _Checker, key: str, report_id: str, raw: Any, data_dir: Path, templates_dir: Path) -> Report | None:
    from .theme import LAYOUT, search_path  # noqa: PLC0415

    before = len(check.problems)
    table = check.table(raw, key, REPORT_KEYS, {"title", "datasets", "languages", "timezone"})
    if not table:
        return None

    def language(lang: str, where: str) -> str | None:
        return lang if LANG.fullmatch(lang) else check.problem(where, f"{lang!r} is not a language code like 'ru'")

    def fmt(value: str, where: str) -> str | None:
        return value if value in FORMATS else check.problem(where, f"{value!r} is not one of {', '.join(FORMATS)}")

    def dataset(name: str, where: str) -> str | None:
        if not DATASET_ID.fullmatch(name):
            return check.problem(where, f"{name!r} is not a dataset id: name a folder under {data_dir} "
                                 "(lower-case letters, digits, '-' and '_')")
        if not (data_dir / name / "datapackage.json").is_file():
            return check.problem(where, f"no dataset {name!r}: {data_dir / name / 'datapackage.json'} is missing")
        return name

    def exists(name: str) -> bool:
        return any((root / name).is_file() for root in search_path(templates_dir))

    languages = check.strings(table.get("languages"), f"{key}.languages", language)
    title = check.per_language(table.get("title"), f"{key}.title", languages)
    datasets = check.strings(table.get("datasets"), f"{key}.datasets", dataset)
    formats = check.strings(table.get("formats", list(FORMATS)), f"{key}.formats", fmt)
    layout = _relative_template(check, table.get("layout", LAYOUT), f"{key}.layout") or ""
    if layout and not exists(layout):
        check.problem(f"{key}.layout", f"template {templates_dir / layout} does not exist")
    narrative = _relative_template(check, table.get("narrative", f"{report_id}/narrative.{{lang}}.html.j2"),
                                   f"{key}.narrative") or ""
    if narrative and "{lang}" not in narrative:
        check.problem(f"{key}.narrative", "must contain '{lang}', e.g. 'brief/narrative.{lang}.html.j2'")
    elif narrative:
        for lang in languages:
            if not (templates_dir / narrative.replace("{lang}", lang)).is_file():
                check.problem(f"{key}.narrative", f"no {lang} narrative: {templates_dir / narrative.replace('{lang}', lang)} does not exist")
    zone = None
    if tz_name := check.string(table.get("timezone"), f"{key}.timezone"):
        try:
            zone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            check.problem(f"{key}.timezone", f"unknown time zone {tz_name!r} (use an IANA name like 'Asia/Almaty')")
    schedule = None
    if "schedule" in table:
        schedule = check.string(table["schedule"], f"{key}.schedule")
        if schedule:
            from .cron import check_schedule  # noqa: PLC0415 - only needed with a schedule
            try:
                check_schedule(schedule)
            except ValueError as exc:
                check.problem(f"{key}.schedule", str(exc))
    charts = tuple(
        chart for chart_id, spec in check.mapping(table.get("charts", {}), f"{key}.charts").items()
        if (chart := _chart(check, f"{key}.charts.{chart_id}", chart_id, spec, languages))
    )
    tables = tuple(
        item for table_id, spec in check.mapping(table.get("tables", {}), f"{key}.tables").items()
        if (item := _table(check, f"{key}.tables.{table_id}", table_id, spec, languages))
    )
    sections = _sections(check, key, table.get("sections", []), languages, {c.id for c in charts}, {t.id for t in tables})
    key_figures = None
    if "key_figures" in table:
        raw_figures = table["key_figures"]
        if raw_figures == []:
            key_figures = ()
        else:
            key_figures = check.strings(raw_figures, f"{key}.key_figures", lambda v, w: v)
    timeline = table.get("timeline", True)
    if not isinstance(timeline, bool):
        check.problem(f"{key}.timeline", "expected true or false (show the events' timeline when there are events)")
    catch_up = table.get("catch_up", "latest")
    if catch_up not in CATCH_UP:
        check.problem(f"{key}.catch_up", f"{catch_up!r} is not one of {', '.join(CATCH_UP)}")
    durations = {name: check.parsed(table, name, f"{key}.{name}", parse_duration, default)
                 for name, default in (("grace", Report.grace_seconds), ("timeout", Report.timeout_seconds))}
    send_if = table.get("send_if", "always")
    if send_if not in SEND_IF:
        check.problem(f"{key}.send_if", f"{send_if!r} is not one of {', '.join(SEND_IF)}")
    short_title = check.per_language(table["short_title"], f"{key}.short_title", languages) if "short_title" in table else title
    recipients = _recipients(check, key, table, languages)
    on_failure = _addresses(check, table.get("on_failure"), f"{key}.on_failure")
    max_age = _max_age(check, table.get("max_age"), f"{key}.max_age")
    stale = table.get("stale", "mark")
    if stale not in STALE:
        check.problem(f"{key}.stale", f"{stale!r} is not one of {', '.join(STALE)}")
    if len(check.problems) > before:
        return None
    return Report(
        id=report_id, title=title, datasets=datasets, layout=layout, narrative=narrative,
        languages=languages, formats=formats, timezone=zone, schedule=schedule, sections=sections,
        charts=charts, tables=tables, key_figures=key_figures, timeline=timeline,
        catch_up=catch_up, grace_seconds=durations["grace"], timeout_seconds=durations["timeout"],
        short_title=short_title, recipients=recipients, send_if=send_if, on_failure=on_failure,
        max_age=max_age, stale=stale,
    )


def parse_age(text: str) -> int:
    """``"400d"``, ``"6 weeks"``, ``"18 months"``, ``"2y"`` -> days (a month is 31, a year 366:
    a limit errs on the side of calling a figure fresh); ``ValueError`` otherwise."""
    match = AGE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an age like '400d', '6 weeks', '18 months' or '2y'")
    count, unit = int(match.group(1)), match.group(2)
    return count * {"d": 1, "w": 7, "m": 31, "y": 366}[unit[0]]


def _max_age(check: _Checker, raw: Any, key: str) -> dict[str, int]:
    """``max_age = "2y"`` (every fact) or ``max_age = { default = "2y", prices = "90d" }`` (per topic)."""
    if raw is None:
        return {}
    entries = {"default": raw} if not isinstance(raw, dict) else check.mapping(raw, key)
    out = {}
    for topic, value in entries.items():
        where = key if not isinstance(raw, dict) else f"{key}.{topic}"
        if not isinstance(value, str):
            check.problem(where, f"expected an age like '18 months', got {_kind(value)}")
            continue
        try:
            out[topic] = parse_age(value)
        except ValueError as exc:
            check.problem(where, str(exc))
    return out


def _sections(check: _Checker, key: str, raw: Any, languages: tuple[str, ...], charts: set[str],
              tables: set[str]) -> tuple[SectionSpec, ...]:
    if not isinstance(raw, list):
        check.problem(f"{key}.sections", "expected a list of tables ([[reports.ID.sections]])")
        return ()
    out: list[SectionSpec] = []
    for index, item in enumerate(raw):
        where = f"{key}.sections[{index}]"
        item = check.table(item, where, SECTION_KEYS, {"id", "title"})
        if not item:
            continue
        section_id = check.string(item.get("id"), f"{where}.id", SECTION_ID)
        if section_id in RESERVED_BLOCKS:
            check.problem(f"{where}.id", f"{section_id!r} is placed by the layout itself; choose another id")
            continue
        if section_id and section_id in {s.id for s in out}:
            check.problem(f"{where}.id", f"section {section_id!r} is declared twice")
            continue
        title = check.per_language(item.get("title"), f"{where}.title", languages)
        placed = {}
        for name, known in (("charts", charts), ("tables", tables)):
            placed[name] = check.strings(item[name], f"{where}.{name}", lambda v, w, known=known, name=name: v if v in known else
                                         check.problem(w, f"no {name[:-1]} {v!r} is declared (declared: {', '.join(sorted(known)) or 'none'})")) \
                if name in item else ()
        if section_id:
            out.append(SectionSpec(section_id, title, placed["charts"], placed["tables"]))
    return tuple(out)


def _table(check: _Checker, key: str, table_id: str, raw: Any, languages: tuple[str, ...]) -> TableSpec | None:
    table = check.table(raw, key, TABLE_KEYS, {"resource", "columns", "headers"})
    if not table:
        return None
    resource = check.string(table.get("resource"), f"{key}.resource") or ""
    columns = check.strings(table.get("columns"), f"{key}.columns", lambda v, w: v)
    headers: dict[str, tuple[str, ...]] = {}
    given = check.table(table.get("headers"), f"{key}.headers", set(languages), set(languages)) if languages \
        else check.mapping(table.get("headers", {}), f"{key}.headers")
    for lang, value in given.items():
        names = check.strings(value, f"{key}.headers.{lang}", lambda v, w: v)
        if names and len(names) != len(columns):
            check.problem(f"{key}.headers.{lang}", f"{len(names)} headings for {len(columns)} columns")
        headers[lang] = names
    title = check.per_language(table["title"], f"{key}.title", languages) if "title" in table else {}
    units = check.mapping(table.get("units", {}), f"{key}.units")
    for column, unit in units.items():
        if column not in columns:
            check.problem(f"{key}.units.{column}", f"{column!r} is not one of the table's columns")
        check.string(unit, f"{key}.units.{column}")
    where = check.mapping(table.get("where", {}), f"{key}.where")
    return TableSpec(table_id, resource, columns, headers, title, dict(units), dict(where))


def _recipients(check: _Checker, key: str, table: dict, languages: tuple[str, ...]) -> tuple[Recipient, ...]:
    """Recipients from ``recipients`` tables and an optional ``recipients_file`` CSV.

    A problem in the CSV file is named by that file and its line, not by reports.toml.
    """
    entries: list[tuple[_Checker, str, dict]] = []
    raw = table.get("recipients", [])
    if not isinstance(raw, list):
        check.problem(f"{key}.recipients", "expected a list of tables ([[reports.ID.recipients]])")
        raw = []
    entries += [(check, f"{key}.recipients[{i}]", item) for i, item in enumerate(raw)]
    in_file: _Checker | None = None
    if "recipients_file" in table and (name := check.string(table["recipients_file"], f"{key}.recipients_file")):
        path = (Path(check.file).parent / name).resolve()
        in_file = _Checker(str(path))
        project_root = Path(check.file).parent.resolve()
        if project_root not in path.parents:
            # Recipients are edited by the desk: the list must live in the project, not anywhere
            # a symlink or a '../' could point.
            check.problem(f"{key}.recipients_file", f"{name!r} resolves to {path}, outside the project's folder")
            return ()
        try:
            import csv  # noqa: PLC0415

            with path.open(encoding="utf-8-sig", newline="") as handle:  # -sig: as spreadsheets save it
                reader = csv.DictReader(handle)
                for row in reader:
                    entries.append((in_file, f"line {reader.line_num}", {k: v for k, v in row.items() if v not in ("", None)}))
        except FileNotFoundError:
            check.problem(f"{key}.recipients_file", f"{path} does not exist")
        except UnicodeDecodeError as exc:
            check.problem(f"{key}.recipients_file", f"{path} is not valid UTF-8 ({exc.reason})")
        except OSError as exc:
            check.problem(f"{key}.recipients_file", f"cannot read {path}: {exc.strerror}")
    out: list[Recipient] = []
    seen: set[str] = set()
    for checker, where, item in entries:
        item = checker.table(item, where, RECIPIENT_KEYS, {"email", "lang"})
        if not item.keys() >= {"email", "lang"}:
            # A missing key is named once, above: not again as "None is not an email address".
            continue
        email = item.get("email")
        if problem := _address_problem(email):
            checker.problem(f"{where}.email", problem)
            continue
        name = item.get("name", "")
        if not isinstance(name, str):
            checker.problem(f"{where}.name", f"expected a name on one line, got {_kind(name)}")
            continue
        if problem := header_problem(name, "a name"):
            checker.problem(f"{where}.name", problem)
            continue
        lang = item.get("lang")
        if languages and lang not in languages:
            checker.problem(f"{where}.lang", f"{lang!r} is not one of the report's languages ({', '.join(languages)})")
            continue
        kind = item.get("kind", "to")
        if kind not in RECIPIENT_KINDS:
            checker.problem(f"{where}.kind", f"{kind!r} is not one of {', '.join(RECIPIENT_KINDS)}")
            continue
        if email.lower() in seen:
            checker.problem(f"{where}.email", f"{email} is listed twice")
            continue
        seen.add(email.lower())
        out.append(Recipient(email=email, name=str(item.get("name", "")), lang=lang, kind=kind))
    if in_file is not None:
        check.problems.extend(in_file.problems)
    return tuple(out)


def _address_problem(email: Any) -> str | None:
    """Why ``email`` is not an address a message can go to, or None."""
    if isinstance(email, str) and any(c in _LINE_BREAKS for c in email):
        return f"{email!r} is not an email address (expected an address on one line)"
    if isinstance(email, str) and len(email) > ADDRESS_LIMIT:
        return f"is {len(email)} characters long; an address is at most {ADDRESS_LIMIT}"
    if not isinstance(email, str) or not valid_address(email):
        hint = " (write a non-ASCII domain in its xn-- form)" if isinstance(email, str) and not email.isascii() else ""
        return f"{email!r} is not an email address{hint}"
    return None


def _addresses(check: _Checker, value: Any, key: str) -> tuple[str, ...]:
    """``on_failure``: a list of addresses, or one address as a string."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        check.problem(key, f"expected a list of email addresses, got {_kind(value)}")
        return ()
    out: list[str] = []
    for i, item in enumerate(value):
        if problem := _address_problem(item):
            check.problem(f"{key}[{i}]", problem)
        elif item.lower() in (o.lower() for o in out):
            check.problem(f"{key}[{i}]", f"{item} is listed twice")
        else:
            out.append(item)
    return tuple(out)


def _chart(check: _Checker, key: str, chart_id: str, raw: Any, languages: tuple[str, ...]) -> ChartSpec | None:
    kind = raw.get("kind") if isinstance(raw, dict) else None
    if kind not in CHART_KINDS_KEYS:
        if isinstance(raw, dict):
            check.problem(f"{key}.kind", f"{kind!r} is not one of {', '.join(CHART_KINDS)}" if kind else "missing required key")
        else:
            check.table(raw, key, set())
        return None
    own, sources = CHART_KINDS_KEYS[kind]
    table = check.table(raw, key, CHART_COMMON | own, {"kind", "title"})
    title = check.per_language(table.get("title"), f"{key}.title", languages)
    if sources and not any(all(k in table for k in ((s,) if isinstance(s, str) else s)) for s in sources):
        ways = " or ".join(f"'{s}'" if isinstance(s, str) else "+".join(f"'{k}'" for k in s) for s in sources)
        check.problem(key, f"a {kind} chart needs {ways}")
    strings = {name: check.string(table[name], f"{key}.{name}") or "" for name in
               ("resource", "label", "value", "x", "y", "before", "after", "unit", "direction", "style", "key") if name in table}
    if strings.get("direction", "horizontal") not in ("horizontal", "vertical"):
        check.problem(f"{key}.direction", "expected 'horizontal' or 'vertical'")
    if strings.get("style", "bars") not in ("bars", "line"):
        check.problem(f"{key}.style", "expected 'bars' or 'line'")
    facts: tuple = ()
    if "facts" in table:
        if kind == "compare":
            raw_pairs = table["facts"]
            if not isinstance(raw_pairs, list) or not raw_pairs or not all(
                    isinstance(p, list) and len(p) == 2 and all(isinstance(i, str) for i in p) for p in raw_pairs):
                check.problem(f"{key}.facts", "expected pairs of fact ids, earlier then later: [[\"a_2020\", \"a_2024\"], ...]")
            else:
                facts = tuple(tuple(p) for p in raw_pairs)
        else:
            facts = check.strings(table["facts"], f"{key}.facts", lambda v, w: v)
    periods = check.strings(table["periods"], f"{key}.periods", lambda v, w: v) if "periods" in table else ()
    if periods and len(periods) != 2:
        check.problem(f"{key}.periods", "expected two labels: the earlier period, then the later")
    highlight = table.get("highlight", ())
    highlight = tuple(highlight) if isinstance(highlight, list) else (highlight,) if highlight != () else ()
    if kind == "timeline":
        strings.setdefault("resource", "events")
    return ChartSpec(id=chart_id, kind=kind, title=title, facts=facts, periods=periods, highlight=highlight, **strings)
