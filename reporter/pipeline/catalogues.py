"""A project's interface catalogues: which strings its reports need, which are missing, and
``reporter i18n``, which extracts, updates and compiles them.

The theme's strings ship with the package, translated into the languages it supports, and are
listed in its ``messages.pot``. A project's own templates (a layout of its own, strings in a
narrative) bring their strings into the project's ``locale/`` folder. A string counts as
translated when a catalogue has a non-empty translation that is not marked fuzzy. Message ids
are English, so English needs no catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2
from babel.messages.catalog import Catalog

from ..config import Project, Report
from ..errors import Problem, TemplateError
from ..theme import THEME_DIR
from .i18n import SOURCE_LANGUAGE, read_catalog
from .inputs import DOMAIN, PACKAGE_CATALOGUES, catalogue_path, templates_used

THEME_TEMPLATE = PACKAGE_CATALOGUES / f"{DOMAIN}.pot"

def _environment() -> jinja2.Environment:
    return jinja2.Environment(extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)


GETTEXT_FUNCTIONS = ("_", "gettext", "ngettext", "pgettext", "npgettext")


def _messages_of(path: Path) -> list[tuple[int, str | tuple[str, ...]]]:
    env = _environment()
    try:
        source = path.read_text(encoding="utf-8")
        return [(line, message) for line, _function, message in env.extract_translations(source, GETTEXT_FUNCTIONS)
                if message]
    except (jinja2.TemplateSyntaxError, UnicodeDecodeError):
        return []


def _msgid(message: str | tuple) -> str:
    return message if isinstance(message, str) else next(m for m in message if m)


@dataclass(frozen=True)
class Needed:
    """A string an edition needs translated, and where it was found."""

    msgid: str
    where: str


def needed(project: Project, report: Report, lang: str) -> list[Needed]:
    """The interface strings of a report's edition in ``lang``: the theme's, then its own templates'."""
    found: dict[str, Needed] = {}
    theme = read_catalog(THEME_TEMPLATE)
    for message in theme:
        if message.id:
            msgid = _msgid(message.id)
            found.setdefault(msgid, Needed(msgid, "the theme"))
    for path in templates_used(project, report, lang):
        if THEME_DIR in path.resolve().parents:
            continue  # already in the theme's messages.pot
        for line, message in _messages_of(path):
            msgid = _msgid(message)
            found.setdefault(msgid, Needed(msgid, f"{path}:line {line}"))
    return list(found.values())


def _state(catalogs: list[Catalog], msgid: str) -> str:
    """``ok``, ``fuzzy`` or ``missing``: the best any of the catalogues offers for ``msgid``."""
    best = "missing"
    for catalog in catalogs:
        message = catalog.get(msgid)
        if message is None:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if strings and all(strings):
            if not message.fuzzy:
                return "ok"
            best = "fuzzy"
    return best


def problems(project: Project, report: Report) -> list[Problem]:
    """Every interface string a report's languages lack, named with the catalogue to fix."""
    out: list[Problem] = []
    for lang in report.languages:
        if lang == SOURCE_LANGUAGE:
            continue
        project_po = catalogue_path(project.locale_dir, lang) if project.locale_dir else None
        paths = [p for p in (catalogue_path(PACKAGE_CATALOGUES, lang), project_po) if p and p.is_file()]
        try:
            catalogs = [read_catalog(p) for p in paths]
        except TemplateError as exc:
            out.extend(exc.problems)
            continue
        target = str(project_po or catalogue_path(PACKAGE_CATALOGUES, lang))
        for item in needed(project, report, lang):
            state = _state(catalogs, item.msgid)
            if state == "missing":
                out.append(Problem(target, "", f"{item.msgid!r} has no {lang} translation (used by {item.where}; "
                                   "run `reporter i18n`, then translate it)"))
            elif state == "fuzzy":
                out.append(Problem(target, "", f"{item.msgid!r} is marked fuzzy in {lang}: check the translation, "
                                   "then remove the fuzzy flag"))
    return out


def update(project: Project) -> list[str]:
    """``reporter i18n``: extract the project's strings, update each language's catalogue, compile.

    Returns one line per catalogue, saying how many strings it has and how many still need a
    translation. Strings the theme already translates for a language are left out of the
    project's catalogue for it, so the project only carries what is its own or missing.
    """
    from babel.messages.pofile import write_po  # noqa: PLC0415

    template = Catalog(project="reporter project", domain=DOMAIN)
    for path in sorted(p for p in project.templates_dir.rglob("*") if p.suffix in (".j2", ".html") and p.is_file()):
        for line, message in _messages_of(path):
            template.add(message, locations=[(str(path.relative_to(project.templates_dir)), line)])
    theme = read_catalog(THEME_TEMPLATE)
    languages = sorted({lang for r in project.reports.values() for lang in r.languages} - {SOURCE_LANGUAGE})
    assert project.locale_dir is not None
    project.locale_dir.mkdir(parents=True, exist_ok=True)
    with (project.locale_dir / f"{DOMAIN}.pot").open("wb") as handle:
        write_po(handle, template, sort_output=True)
    lines = []
    for lang in languages:
        theme_po = catalogue_path(PACKAGE_CATALOGUES, lang)
        theme_catalog = read_catalog(theme_po) if theme_po.is_file() else None
        wanted = Catalog(project="reporter project", domain=DOMAIN)
        for message in [*template, *theme]:
            if not message.id or (theme_catalog is not None and _state([theme_catalog], _msgid(message.id)) == "ok"):
                continue
            wanted.add(message.id, locations=message.locations, flags=message.flags)
        path = catalogue_path(project.locale_dir, lang)
        if path.is_file():
            catalog = read_catalog(path)
            catalog.update(wanted, no_fuzzy_matching=True)
        else:
            catalog = Catalog(locale=lang, project="reporter project", domain=DOMAIN)
            catalog.update(wanted, no_fuzzy_matching=True)
        if not len(catalog) and not path.is_file():
            lines.append(f"{lang}: nothing to translate (the theme covers it)")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            write_po(handle, catalog, sort_output=True, ignore_obsolete=True)
        read_catalog(path)  # compiles it: a broken placeholder is an error now, not at render
        todo = sum(1 for m in catalog if m.id and _state([catalog], _msgid(m.id)) != "ok")
        lines.append(f"{lang}: {path} ({len(catalog)} strings, {todo} to translate)")
    return lines
