"""Languages: Babel locale formats and gettext catalogues, one :class:`Language` per render.

Nothing here touches the process-wide locale: every format call names its ``Locale``, so one
process can render Russian and English side by side. Catalogues are ``.po`` files maintained
with Babel's tools (``make i18n`` extracts, updates and compiles them); they are compiled in
memory when loaded, so an edited ``.po`` can never be shadowed by a stale ``.mo``.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton
from babel.numbers import format_decimal, format_percent
from babel.support import Translations
from babel.units import format_unit

from ..errors import Problem, TemplateError

CATALOGUES = Path(__file__).parent / "locale"
DOMAIN = "messages"
PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated where it is used."""
    return message


def Np_(singular: str, plural: str) -> tuple[str, str]:
    """Mark a plural pair for extraction; ``ngettext`` picks the form where it is used."""
    return singular, plural


# How a qualified figure reads; %(value)s is the formatted number with its unit.
QUALIFIERS = {
    "more_than": N_("more than %(value)s"),
    "about": N_("about %(value)s"),
    "almost": N_("almost %(value)s"),
    "up_to": N_("up to %(value)s"),
}
# Units that read as words take plural forms; pairs are (singular, plural) msgids.
COUNT_UNITS = {
    "companies": Np_("%(num)s company", "%(num)s companies"),
}
MONEY_UNITS = {
    "usd_billion": N_("$%(num)s billion"),
    "usd_million": N_("$%(num)s million"),
}
CLDR_UNITS = {"tonnes_uranium": "mass-tonne"}
UNITS = (*COUNT_UNITS, *MONEY_UNITS, *CLDR_UNITS, "percent")


@dataclass(frozen=True)
class Language:
    """A language code (``ru``), the Babel locale that formats it, and its interface strings."""

    code: str
    locale: Locale
    translations: Translations

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def number(self, value: float) -> str:
        return format_decimal(value, locale=self.locale)

    def quantity(self, value: float, unit: str) -> str:
        """``23 270 т`` / ``23,270 t``, ``630 компаний`` / ``630 companies``, ``40 %`` / ``40%``."""
        if unit == "percent":
            return format_percent(value / 100, locale=self.locale, decimal_quantization=False)
        if unit in CLDR_UNITS:
            return format_unit(value, CLDR_UNITS[unit], length="short", locale=self.locale)
        if unit in COUNT_UNITS:
            singular, plural = COUNT_UNITS[unit]
            count = int(value) if float(value).is_integer() else 2
            return self.ngettext(singular, plural, count) % {"num": self.number(value)}
        if unit in MONEY_UNITS:
            return self.gettext(MONEY_UNITS[unit]) % {"num": self.number(value)}
        raise TemplateError(f"unknown unit {unit!r} (known: {', '.join(UNITS)})")

    def qualified(self, value: float, unit: str, qualifier: str | None) -> str:
        """A figure as a reader should see it: ``более 630 компаний`` / ``more than 630 companies``."""
        text = self.quantity(value, unit)
        if not qualifier:
            return text
        return self.gettext(QUALIFIERS[qualifier]) % {"value": text}

    def date(self, value: date | str) -> str:
        """A full or partial ISO date: ``5 ноября 2025 г.``, ``сентябрь 2025 г.``, ``2017``."""
        if isinstance(value, date):
            return format_date(value, "long", locale=self.locale)
        match = PARTIAL_DATE.match(value)
        if not match:
            raise TemplateError(f"{value!r} is not a date like 2025, 2025-09 or 2025-09-30")
        year, month, day = match.groups()
        if day:
            return format_date(date(int(year), int(month), int(day)), "long", locale=self.locale)
        if month:
            return format_skeleton("yMMMM", date(int(year), int(month), 1), locale=self.locale)
        return year


def read_catalogue(path: Path) -> Translations:
    """Compile a ``.po`` file in memory; raise :class:`TemplateError` naming its line on errors."""
    from babel.messages.mofile import write_mo  # noqa: PLC0415 - only when loading catalogues
    from babel.messages.pofile import PoFileError, read_po  # noqa: PLC0415

    try:
        with path.open("rb") as handle:
            catalog = read_po(handle, abort_invalid=True)
    except FileNotFoundError:
        raise TemplateError([Problem(str(path), "", "catalogue not found (run `make i18n`)")]) from None
    except PoFileError as exc:
        raise TemplateError([Problem(str(path), f"line {getattr(exc, 'lineno', '?')}", str(exc))]) from None
    problems = [
        Problem(str(path), f"line {message.lineno}", f"{message.id!r}: {error}")
        for message, errors in catalog.check() for error in errors
    ]
    if problems:
        raise TemplateError(problems)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


@lru_cache(maxsize=None)
def language(code: str, locale_name: str | None = None) -> Language:
    """The :class:`Language` for ``code``, formatted by ``locale_name`` (default: the code)."""
    try:
        locale = Locale.parse(locale_name or code)
    except (UnknownLocaleError, ValueError):
        raise TemplateError(f"unknown locale {locale_name or code!r}") from None
    return Language(code, locale, read_catalogue(CATALOGUES / code / "LC_MESSAGES" / f"{DOMAIN}.po"))
