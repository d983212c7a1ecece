"""Languages: a Babel locale and the interface strings of one render, as a :class:`Language`.

Nothing here touches the process-wide locale: every format call names its ``Locale``, so one
process can render Russian and English side by side.

Interface strings ("Key figures", "Page") are gettext catalogues. The theme's own strings ship
with the package (``reporter/theme/locale``); a project's templates bring their own catalogues
(``locale/<lang>/LC_MESSAGES/messages.po`` in the project, managed by ``reporter i18n``), which
also override the theme's. Catalogues are compiled in memory when read, so an edited ``.po``
takes effect at once and a stale ``.mo`` can never shadow it. Message ids are English, so an
English edition needs no catalogue.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton
from babel.messages.catalog import Catalog
from babel.support import Translations

from ..errors import Problem, TemplateError
from .inputs import DOMAIN, catalogues

SOURCE_LANGUAGE = "en"
PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated where it is used."""
    return message


@dataclass(frozen=True)
class Language:
    """A language code (``ru``), the Babel locale that formats it, and its interface strings.

    ``catalogues`` are the ``.po`` files merged into ``translations``, theme first, so that a
    project's own translation wins.
    """

    code: str
    locale: Locale
    translations: Translations
    catalogues: tuple[Path, ...] = ()

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def date(self, value: date | str) -> str:
        """A full or partial ISO date: ``5 ноября 2025 г.``, ``сентябрь 2025 г.``, ``2017``."""
        if isinstance(value, date):
            return format_date(value, "long", locale=self.locale)
        match = PARTIAL_DATE.match(str(value))
        if not match:
            raise TemplateError(f"{value!r} is not a date like 2025, 2025-09 or 2025-09-30")
        year, month, day = match.groups()
        if day:
            return format_date(date(int(year), int(month), int(day)), "long", locale=self.locale)
        if month:
            return format_skeleton("yMMMM", date(int(year), int(month), 1), locale=self.locale)
        return year


def read_catalog(path: Path) -> Catalog:
    """Parse a ``.po`` file; raise :class:`TemplateError` naming its line on a syntax or format error."""
    from babel.messages.pofile import PoFileError, read_po  # noqa: PLC0415 - only when loading catalogues

    try:
        with path.open("rb") as handle:
            catalog = read_po(handle, abort_invalid=True)
    except FileNotFoundError:
        raise TemplateError([Problem(str(path), "", "catalogue not found (run `reporter i18n`)")]) from None
    except PoFileError as exc:
        raise TemplateError([Problem(str(path), f"line {getattr(exc, 'lineno', '?')}", str(exc))]) from None
    except UnicodeDecodeError as exc:
        raise TemplateError([Problem(str(path), "", f"not valid UTF-8 ({exc.reason})")]) from None
    problems = [
        Problem(str(path), f"line {message.lineno}", f"{message.id!r}: {error}")
        for message, errors in catalog.check() for error in errors
    ]
    if problems:
        raise TemplateError(problems)
    return catalog


def _compile(catalog: Catalog) -> Translations:
    from babel.messages.mofile import write_mo  # noqa: PLC0415

    buffer = io.BytesIO()
    write_mo(buffer, catalog)  # untranslated and fuzzy entries are left out: they fall back
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


_cache: dict[tuple, Language] = {}


def language(code: str, locale_name: str | None = None, project_locale_dir: Path | None = None) -> Language:
    """The :class:`Language` for ``code``, formatted by ``locale_name`` (default: the code).

    Cached per catalogue file and modification time, so a long-running process (the live
    preview, the scheduler) sees an edited catalogue at its next render.
    """
    paths = catalogues(code, project_locale_dir)
    key = (code, locale_name, tuple((p, p.stat().st_mtime_ns) for p in paths))
    if key not in _cache:
        try:
            locale = Locale.parse(locale_name or code)
        except (UnknownLocaleError, ValueError):
            raise TemplateError(f"unknown locale {locale_name or code!r}") from None
        compiled = [_compile(read_catalog(path)) for path in paths]
        # The first catalogue is the base: it carries the language's plural rule, which an
        # empty Translations would replace with English's.
        translations = compiled[0] if compiled else Translations(domain=DOMAIN)
        for later in compiled[1:]:
            translations.merge(later)  # a project's translation overrides the theme's
        _cache[key] = Language(code, locale, translations, paths)
    return _cache[key]
