"""Fact datasets: Frictionless Data Packages (``datapackage.json`` + CSV) -> :class:`Dataset`.

Implements the part of the Table Schema standard our datasets use: field types ``string``,
``integer``, ``number``, ``year``, ``date`` and ``boolean``; constraints ``required``, ``unique``,
``enum``, ``pattern``, ``minimum``, ``maximum`` and the ``uri`` format; ``missingValues``;
``primaryKey``; ``foreignKeys`` between resources of one package. The test suite checks the shipped
packages against the standard's own validator (``frictionless``), so what loads here also opens in
any tool that speaks the standard.

Every problem is collected and raised together as a :class:`~reporter.errors.DataError`, each
naming the file, line, row and column and what was expected.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from ..errors import DataError, Problem

Row = dict[str, Any]


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    constraints: dict[str, Any]
    format: str = "default"


@dataclass(frozen=True)
class Table:
    """One resource: typed rows in file order, with the line each came from."""

    name: str
    path: Path
    fields: tuple[Field, ...]
    rows: tuple[Row, ...]
    lines: tuple[int, ...]

    def by_key(self, key: str) -> dict[Any, Row]:
        return {row[key]: row for row in self.rows}


@dataclass(frozen=True)
class Dataset:
    """A loaded, validated Data Package. ``digest`` changes whenever any of its files do."""

    name: str
    path: Path
    title: str
    tables: dict[str, Table]
    digest: str

    def table(self, name: str) -> Table:
        try:
            return self.tables[name]
        except KeyError:
            raise DataError([Problem(str(self.path / "datapackage.json"), "resources",
                                     f"no resource named {name!r}")]) from None


def _parse_year(text: str) -> int:
    if not re.fullmatch(r"-?\d{4}", text):
        raise ValueError
    return int(text)


def _parse_boolean(text: str) -> bool:
    if text in ("true", "True", "TRUE", "1"):
        return True
    if text in ("false", "False", "FALSE", "0"):
        return False
    raise ValueError


def _parse_integer(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError
    return int(text)


class Number(Decimal):
    """A number as the data writes it: ``Decimal`` keeps its digits (``24.10`` stays ``24.10``,
    never ``24.100000000000001``), and ``plus`` remembers an explicit ``+`` (``+6.4``), so a
    brief prints the figure exactly as its editor wrote it."""

    __slots__ = ("plus",)


def _parse_number(text: str) -> Number:
    try:
        value = Number(text.strip())
    except ArithmeticError:  # decimal.InvalidOperation
        raise ValueError from None
    if not value.is_finite() or text != text.strip():
        raise ValueError
    value.plus = text.startswith("+")
    return value


PARSERS = {
    "string": (str, "text"),
    "integer": (_parse_integer, "an integer"),
    "number": (_parse_number, "a number"),
    "year": (_parse_year, "a four-digit year"),
    "date": (date.fromisoformat, "a date as YYYY-MM-DD"),
    "boolean": (_parse_boolean, "true or false"),
}


def load(data_dir: Path, name: str) -> Dataset:
    """Load and validate ``data_dir/name/datapackage.json`` and every CSV resource in it."""
    root = data_dir / name
    descriptor_path = root / "datapackage.json"
    where = str(descriptor_path)
    problems: list[Problem] = []
    real = descriptor_path.resolve()
    if data_dir.resolve() not in real.parents:
        # A dataset folder (or its descriptor) linked from elsewhere is not the project's data.
        raise DataError([Problem(where, "", f"resolves to {real}, outside the data folder {data_dir}")])
    try:
        raw_descriptor = descriptor_path.read_bytes()
        descriptor = json.loads(raw_descriptor.decode("utf-8"))
    except FileNotFoundError:
        raise DataError([Problem(where, "", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise DataError([Problem(where, f"line {_line_of(raw_descriptor, exc.start)}",
                                 f"not valid UTF-8 (byte 0x{raw_descriptor[exc.start]:02x})")]) from None
    except json.JSONDecodeError as exc:
        raise DataError([Problem(where, f"line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}")]) from None

    digest = hashlib.sha256(raw_descriptor)
    resources = descriptor.get("resources") if isinstance(descriptor, dict) else None
    if not isinstance(resources, list) or not resources:
        raise DataError([Problem(where, "resources", "expected a non-empty list of resources")])

    tables: dict[str, Table] = {}
    schemas: dict[str, dict] = {}
    for index, resource in enumerate(resources):
        place = f"resources[{index}]"
        if not isinstance(resource, dict) or not isinstance(resource.get("name"), str) or not isinstance(resource.get("path"), str):
            problems.append(Problem(where, place, "a resource needs a 'name' and a 'path'"))
            continue
        schema = resource.get("schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
            problems.append(Problem(where, f"{place}.schema", "expected an inline Table Schema with 'fields'"))
            continue
        csv_path = (root / resource["path"]).resolve()
        if root.resolve() not in csv_path.parents:
            problems.append(Problem(where, f"{place}.path", f"{resource['path']!r} is outside the package folder"))
            continue
        try:
            fields = _fields(schema, where, f"{place}.schema", problems)
            table = _read_table(resource["name"], csv_path, fields, schema, problems, digest)
        except (TypeError, AttributeError, KeyError, ValueError, re.error) as exc:
            # A descriptor of the wrong shape (a pattern that is no regex, a minimum as text).
            problems.append(Problem(where, f"{place}.schema", f"not a valid Table Schema: {type(exc).__name__}: {exc}"))
            continue
        if table is not None:
            tables[table.name] = table
            schemas[table.name] = schema

    for table_name, table in tables.items():
        try:
            _check_foreign_keys(table, schemas[table_name], tables, problems)
        except (TypeError, AttributeError, KeyError) as exc:
            problems.append(Problem(where, f"resource {table_name!r} foreignKeys",
                                    f"not a valid foreign key: {type(exc).__name__}: {exc}"))
    if problems:
        raise DataError(problems)
    return Dataset(name=name, path=root, title=str(descriptor.get("title", name)), tables=tables,
                   digest=digest.hexdigest())


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _fields(schema: dict, where: str, place: str, problems: list[Problem]) -> tuple[Field, ...]:
    out = []
    for i, spec in enumerate(schema["fields"]):
        ftype = spec.get("type", "string") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            problems.append(Problem(where, f"{place}.fields[{i}]", "a field needs a 'name'"))
        elif ftype not in PARSERS:
            problems.append(Problem(where, f"{place}.fields[{i}].type",
                                    f"type {ftype!r} is not supported (use one of {', '.join(PARSERS)})"))
        else:
            out.append(Field(spec["name"], ftype, dict(spec.get("constraints", {})), spec.get("format", "default")))
    return tuple(out)


def _rows(path: Path, data: bytes) -> Iterator[tuple[int, list[str]]]:
    text = data.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    for cells in reader:
        yield start, cells
        start = reader.line_num + 1


def _read_table(name: str, path: Path, fields: tuple[Field, ...], schema: dict,
                problems: list[Problem], digest: Any) -> Table | None:
    where = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problems.append(Problem(where, "", f"file not found (resource {name!r})"))
        return None
    digest.update(path.name.encode() + b"\0" + data)
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(Problem(where, f"line {_line_of(data, exc.start)}",
                                f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8"))
        return None
    try:
        rows_iter = _rows(path, data)
        header_line, header = next(rows_iter, (1, []))
    except csv.Error as exc:
        problems.append(Problem(where, "line 1", f"not valid CSV: {exc}"))
        return None
    if not any(header):
        problems.append(Problem(where, "line 1", "the file is empty: expected a header row with the columns "
                                f"{', '.join(f.name for f in fields)}"))
        return None
    missing = [f.name for f in fields if f.name not in header]
    for column in missing:
        problems.append(Problem(where, f"line {header_line}", f"missing column {column!r} required by the schema"))
    for column in header:
        if column not in {f.name for f in fields}:
            problems.append(Problem(where, f"line {header_line}", f"column {column!r} is not in the schema"))
    for column in {c for c in header if header.count(c) > 1}:
        problems.append(Problem(where, f"line {header_line}", f"column {column!r} appears twice"))
    if missing:
        return None

    index = {column: i for i, column in enumerate(header)}
    missing_values = set(schema.get("missingValues", [""]))
    rows: list[Row] = []
    lines: list[int] = []
    seen: dict[str, dict[Any, int]] = {f.name: {} for f in fields if f.constraints.get("unique")}
    try:
        for number, (line, cells) in enumerate(rows_iter, start=1):
            if not any(cells):
                continue
            place = f"line {line} (row {number})"
            if len(cells) != len(header):
                problems.append(Problem(where, place, f"has {len(cells)} cells, the header has {len(header)}"))
                continue
            row: Row = {}
            for field in fields:
                text = cells[index[field.name]]
                value = _cell(text, field, missing_values, where, f"{place}, column {field.name!r}", problems)
                row[field.name] = value
                if value is not None and field.name in seen:
                    if value in seen[field.name]:
                        problems.append(Problem(where, f"{place}, column {field.name!r}",
                                                f"{text!r} is not unique (also on line {seen[field.name][value]})"))
                    seen[field.name].setdefault(value, line)
            rows.append(row)
            lines.append(line)
    except csv.Error as exc:
        problems.append(Problem(where, "", f"not valid CSV: {exc}"))
        return None

    key = schema.get("primaryKey")
    if key:
        key_fields = [key] if isinstance(key, str) else list(key)
        first: dict[tuple, int] = {}
        for row, line in zip(rows, lines):
            value = tuple(row.get(k) for k in key_fields)
            if None in value:
                problems.append(Problem(where, f"line {line}, column {key_fields[0]!r}", "primary key is empty"))
            elif value in first:
                shown = ", ".join(map(str, value))
                problems.append(Problem(where, f"line {line}, column {', '.join(map(repr, key_fields))}",
                                        f"duplicate primary key {shown!r} (first on line {first[value]})"))
            else:
                first[value] = line
    return Table(name=name, path=path, fields=fields, rows=tuple(rows), lines=tuple(lines))


def _cell(text: str, field: Field, missing_values: set[str], where: str, place: str,
          problems: list[Problem]) -> Any:
    rules = field.constraints
    if text in missing_values:
        if rules.get("required"):
            problems.append(Problem(where, place, "a value is required"))
        return None
    parse, expected = PARSERS[field.type]
    try:
        value = parse(text)
    except ValueError:
        problems.append(Problem(where, place, f"expected {expected}, got {text!r}"))
        return None
    if field.format == "uri" and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", text):
        problems.append(Problem(where, place, f"expected an absolute URI like https://..., got {text!r}"))
    if "enum" in rules and value not in rules["enum"]:
        problems.append(Problem(where, place, f"{text!r} is not one of {', '.join(map(str, rules['enum']))}"))
    if "pattern" in rules and not re.fullmatch(rules["pattern"], text):
        problems.append(Problem(where, place, f"{text!r} does not match the pattern {rules['pattern']}"))
    if "minimum" in rules and value < rules["minimum"]:
        problems.append(Problem(where, place, f"{text} is below the minimum {rules['minimum']}"))
    if "maximum" in rules and value > rules["maximum"]:
        problems.append(Problem(where, place, f"{text} is above the maximum {rules['maximum']}"))
    return value


def _check_foreign_keys(table: Table, schema: dict, tables: dict[str, Table], problems: list[Problem]) -> None:
    for fk in schema.get("foreignKeys", []):
        fields = [fk["fields"]] if isinstance(fk["fields"], str) else list(fk["fields"])
        reference = fk.get("reference", {})
        target_name = reference.get("resource") or table.name
        ref_fields = reference.get("fields")
        ref_fields = [ref_fields] if isinstance(ref_fields, str) else list(ref_fields or [])
        target = tables.get(target_name)
        if target is None:
            problems.append(Problem(str(table.path), "", f"foreign key refers to a resource {target_name!r} that did not load"))
            continue
        known = {tuple(row.get(f) for f in ref_fields) for row in target.rows}
        for row, line in zip(table.rows, table.lines):
            value = tuple(row.get(f) for f in fields)
            if None not in value and value not in known:
                shown = ", ".join(map(str, value))
                problems.append(Problem(str(table.path), f"line {line}, column {', '.join(map(repr, fields))}",
                                        f"{shown!r} matches no {'/'.join(ref_fields)} in {target.path.name} (resource {target_name!r})"))
