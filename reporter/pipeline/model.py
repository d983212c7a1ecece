"""What a report knows: its datasets' facts, units, sources and events, merged and cross-checked.

The conventions a brief relies on (every reporter dataset may hold any of these resources):

=========== ==========================================================================================
``sources`` ``id``, ``publisher``, ``title``, ``date``, ``url`` (optional): what a citation points to
``facts``   ``id``, ``value``, ``value_to`` (optional, a range), ``unit``, ``qualifier``, ``as_of``,
            ``label_<lang>`` for each language, ``source``
``units``   ``id``; one way to format it: ``cldr`` (+ ``length``), ``currency`` (+ ``scale``),
            ``format`` (``percent``, ``plain``) or forms ``<category>_<lang>`` with ``{n}``
            (``one_ru``, ``few_ru``, ``many_ru``, ``other_ru``, ``one_en``, ``other_en``); ``label_<lang>``
``events``  ``id``, ``date``, ``label_<lang>``, ``place_<lang>`` (optional), ``source``
=========== ==========================================================================================

Every problem (an unknown unit, source or qualifier, a missing label, a range that runs
backwards, a fact id used twice across datasets) is collected and named by file, line and
column, then raised together as a :class:`~reporter.errors.DataError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping

from babel import Locale

from ..errors import DataError, Problem
from .datasets import Dataset, Row, Table
from .values import BUILTIN_UNITS, PLURAL_CATEGORIES, QUALIFIERS, SCALES, UNIT_FORMATS, Unit

PARTIAL_DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")
CLDR_LENGTHS = ("short", "long", "narrow")


@dataclass(frozen=True)
class Place:
    """Where a row came from, for messages: ``data/x/facts.csv:line 4``."""

    file: str
    line: int

    def problem(self, column: str, message: str) -> Problem:
        return Problem(self.file, f"line {self.line}, column {column!r}" if column else f"line {self.line}", message)


@dataclass(frozen=True)
class Source:
    id: str
    publisher: str
    title: str
    date: str
    url: str | None
    place: Place


@dataclass(frozen=True)
class Fact:
    """A figure: value (or range ``value``–``upper``), unit, qualifier, as-of date, labels, source."""

    id: str
    value: Decimal | int
    upper: Decimal | int | None
    unit: Unit | None
    qualifier: str | None
    as_of: str
    labels: Mapping[str, str]
    source: str
    place: Place
    row: Row = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class Event:
    id: str
    date: str
    labels: Mapping[str, str]
    places: Mapping[str, str]
    source: str
    place: Place


@dataclass(frozen=True)
class Knowledge:
    """Everything a report's datasets say, by id, in file order."""

    facts: dict[str, Fact]
    units: dict[str, Unit]
    sources: dict[str, Source]
    events: dict[str, Event]
    datasets: tuple[Dataset, ...]

    def rows(self, resource: str) -> list[Row]:
        """Rows of a resource across the report's datasets, in file order (empty if none has it)."""
        return [row for dataset in self.datasets for row in (dataset.tables[resource].rows if resource in dataset.tables else ())]

    def table(self, resource: str) -> list[tuple[Row, Place]]:
        return [(row, Place(str(table.path), line)) for dataset in self.datasets if (table := dataset.tables.get(resource))
                for row, line in zip(table.rows, table.lines)]


def _entries(datasets: tuple[Dataset, ...], resource: str) -> list[tuple[Table, Row, Place]]:
    return [(table, row, Place(str(table.path), line)) for dataset in datasets if (table := dataset.tables.get(resource))
            for row, line in zip(table.rows, table.lines)]


def _columns(table: Table) -> set[str]:
    return {f.name for f in table.fields}


def _text(row: Row, column: str) -> str:
    value = row.get(column)
    return "" if value is None else str(value).strip()


def _per_language(table: Table, row: Row, place: Place, prefix: str, languages: tuple[str, ...],
                  problems: list[Problem], required: bool = True) -> dict[str, str]:
    found = {}
    for lang in languages:
        column = f"{prefix}_{lang}"
        if column not in _columns(table):
            if required:
                problems.append(Problem(str(table.path), "header", f"no column {column!r}: every {prefix} needs a "
                                        f"text in each of the report's languages ({', '.join(languages)})"))
            continue
        text = _text(row, column)
        if text:
            found[lang] = text
        elif required:
            problems.append(place.problem(column, f"empty: a {prefix} is needed in every language of the report"))
    return found


def _unit(table: Table, row: Row, place: Place, languages: tuple[str, ...], locales: Mapping[str, str],
          problems: list[Problem]) -> Unit:
    unit_id = _text(row, "id")
    forms: dict[str, dict[str, str]] = {}
    for lang in languages:
        given = {c: _text(row, f"{c}_{lang}") for c in PLURAL_CATEGORIES if _text(row, f"{c}_{lang}")}
        if given:
            forms[lang] = given
    ways = [name for name, on in (("cldr", _text(row, "cldr")), ("currency", _text(row, "currency")),
                                  ("forms", forms)) if on]
    fmt = _text(row, "format")
    if fmt and fmt not in UNIT_FORMATS:
        problems.append(place.problem("format", f"{fmt!r} is not one of {', '.join(f for f in UNIT_FORMATS if f)}"))
    if fmt in ("percent", "plain"):
        ways.append(fmt)
    if len(ways) > 1:
        problems.append(place.problem("", f"unit {unit_id!r} is declared {len(ways)} ways ({', '.join(ways)}); choose one"))
    kind = ways[0] if ways else ""
    length = _text(row, "length") or "short"
    if length not in CLDR_LENGTHS:
        problems.append(place.problem("length", f"{length!r} is not one of {', '.join(CLDR_LENGTHS)}"))
    if kind == "cldr":
        from babel.units import get_unit_name  # noqa: PLC0415

        try:
            known = get_unit_name(_text(row, "cldr"), locale="en")
        except Exception:  # noqa: BLE001 - Babel raises several kinds for an unknown unit
            known = None
        if not known:
            problems.append(place.problem("cldr", f"{_text(row, 'cldr')!r} is not a CLDR unit (e.g. mass-tonne, duration-year)"))
    scale = _text(row, "scale")
    if scale and scale not in SCALES:
        problems.append(place.problem("scale", f"{scale!r} is not one of {', '.join(SCALES)}"))
    if kind == "currency" and not re.fullmatch(r"[A-Z]{3}", _text(row, "currency")):
        problems.append(place.problem("currency", f"{_text(row, 'currency')!r} is not an ISO 4217 code like USD"))
    if kind == "forms":
        for lang in languages:
            needed = _plural_categories(locales.get(lang, lang))
            have = forms.get(lang, {})
            missing = [c for c in needed if c not in have]
            if missing:
                problems.append(place.problem(f"{missing[0]}_{lang}", f"unit {unit_id!r} has no {lang} form for "
                                              f"{', '.join(missing)} (columns {', '.join(f'{c}_{lang}' for c in missing)})"))
            for category, pattern in have.items():
                if "{n}" not in pattern:
                    problems.append(place.problem(f"{category}_{lang}", f"{pattern!r} has no {{n}} for the number"))
    labels = {lang: _text(row, f"label_{lang}") for lang in languages if _text(row, f"label_{lang}")}
    return Unit(unit_id, kind, _text(row, "cldr"), length, _text(row, "currency"), scale, forms, labels)


def _plural_categories(locale_name: str) -> tuple[str, ...]:
    """The plural categories a language's words need: Russian one, few, many, other; English one, other."""
    tags = Locale.parse(locale_name).plural_form.tags | {"other"}
    return tuple(c for c in PLURAL_CATEGORIES if c in tags)


def gather(datasets: list[Dataset] | tuple[Dataset, ...], languages: tuple[str, ...],
           locales: Mapping[str, str] | None = None) -> Knowledge:
    """Merge a report's datasets into :class:`Knowledge`; raise :class:`DataError` with every problem."""
    datasets = tuple(datasets)
    locales = locales or {}
    problems: list[Problem] = []
    first_seen: dict[tuple[str, str], Place] = {}

    def once(kind: str, item_id: str, place: Place) -> bool:
        if (kind, item_id) in first_seen:
            earlier = first_seen[(kind, item_id)]
            problems.append(place.problem("id", f"{kind} {item_id!r} is also defined in {earlier.file}:line {earlier.line}"))
            return False
        first_seen[(kind, item_id)] = place
        return True

    units: dict[str, Unit] = dict(BUILTIN_UNITS)
    for table, row, place in _entries(datasets, "units"):
        unit_id = _text(row, "id")
        if unit_id and once("unit", unit_id, place):
            units[unit_id] = _unit(table, row, place, languages, locales, problems)

    sources: dict[str, Source] = {}
    for table, row, place in _entries(datasets, "sources"):
        source_id = _text(row, "id")
        if source_id and once("source", source_id, place):
            url = _text(row, "url") or None
            sources[source_id] = Source(source_id, _text(row, "publisher"), _text(row, "title"), _text(row, "date"), url, place)

    def cited(row: Row, place: Place) -> str:
        source = _text(row, "source")
        if not source:
            problems.append(place.problem("source", "empty: every figure and event cites a source"))
        elif source not in sources:
            problems.append(place.problem("source", f"{source!r} is no id in any sources resource of the report's datasets"))
        return source

    facts: dict[str, Fact] = {}
    for table, row, place in _entries(datasets, "facts"):
        fact_id = _text(row, "id")
        if not fact_id or not once("fact", fact_id, place):
            continue
        value, upper = row.get("value"), row.get("value_to")
        if not isinstance(value, (Decimal, int)) or isinstance(value, bool):
            problems.append(place.problem("value", f"expected a number, got {value!r} (declare the field as type number)"))
            continue
        if upper is not None and (not isinstance(upper, (Decimal, int)) or upper < value):
            problems.append(place.problem("value_to", f"the range {value}–{upper} runs backwards or is not a number"))
        unit_id = _text(row, "unit")
        unit = None
        if unit_id:
            unit = units.get(unit_id)
            if unit is None:
                declared = ", ".join(sorted(u for u in units if u not in BUILTIN_UNITS)) or "none"
                problems.append(place.problem("unit", f"unknown unit {unit_id!r} (declared in units: {declared}; "
                                              f"built in: {', '.join(BUILTIN_UNITS)})"))
        qualifier = _text(row, "qualifier") or None
        if qualifier and qualifier not in QUALIFIERS:
            problems.append(place.problem("qualifier", f"{qualifier!r} is not one of {', '.join(QUALIFIERS)}"))
        as_of = _text(row, "as_of")
        if as_of and not PARTIAL_DATE.match(as_of):
            problems.append(place.problem("as_of", f"{as_of!r} is not a date like 2025, 2025-09 or 2025-09-30"))
        labels = _per_language(table, row, place, "label", languages, problems)
        facts[fact_id] = Fact(fact_id, value, upper, unit, qualifier, as_of, labels, cited(row, place), place, row)

    events: dict[str, Event] = {}
    for table, row, place in _entries(datasets, "events"):
        event_id = _text(row, "id")
        if not event_id or not once("event", event_id, place):
            continue
        day = _text(row, "date")
        if not PARTIAL_DATE.match(day):
            problems.append(place.problem("date", f"{day!r} is not a date like 2025, 2025-09 or 2025-09-30"))
        labels = _per_language(table, row, place, "label", languages, problems)
        places = _per_language(table, row, place, "place", languages, problems, required=False)
        events[event_id] = Event(event_id, day, labels, places, cited(row, place), place)
    events = dict(sorted(events.items(), key=lambda item: item[1].date))

    if problems:
        raise DataError(list(dict.fromkeys(problems)))
    return Knowledge(facts, units, sources, events, datasets)
