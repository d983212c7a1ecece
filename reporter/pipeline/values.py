"""Figures as a reader sees them: a number exactly as the data writes it, with its unit, range,
sign and qualifier, in one language's format, never split across a line end.

Units are declared by the data, not by this package (see :mod:`reporter.pipeline.model`). A unit
is formatted one of four ways, each from a mature source of locale data:

- ``cldr``: a CLDR measurement unit (``mass-tonne``, ``duration-year``) through Babel's
  ``format_unit``, with the locale's own plural rules and words;
- ``currency``: an ISO 4217 code, optionally with a ``scale`` (``million``, ``billion``) through
  Babel's currency and compact formats;
- ``percent``: the locale's percent pattern (``24,1 %`` in Russian, ``24.1%`` in English);
- ``forms``: words the data gives per language and plural category (``one``/``few``/``many``/
  ``other``), for what CLDR has no unit for: ``в {n} раза`` / ``{n} times``, ``{n} п. п.``.

A unit with none of these prints the bare number; ``plain`` prints it without digit grouping
(years: ``2020``, never ``2 020``).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping

from babel.numbers import get_currency_symbol
from babel.units import format_unit, get_unit_name

from .i18n import N_, Language

NBSP = "\u00a0"
WORD_JOINER = "\u2060"  # no line break here, and no visible space (UAX #14)
RANGE = "\u2013"  # en dash, the CLDR range separator of the locales we format

PLURAL_CATEGORIES = ("zero", "one", "two", "few", "many", "other")
SCALES = {"thousand": 3, "million": 6, "billion": 9, "trillion": 12}
UNIT_FORMATS = ("", "plain", "percent", "cldr", "currency", "forms")

# How a qualified figure reads; %(value)s is the formatted number with its unit.
QUALIFIERS = {
    "more_than": N_("more than %(value)s"),
    "at_least": N_("at least %(value)s"),
    "about": N_("about %(value)s"),
    "almost": N_("almost %(value)s"),
    "up_to": N_("up to %(value)s"),
    "less_than": N_("less than %(value)s"),
}


@dataclass(frozen=True)
class Unit:
    """A unit of measure as a dataset declares it (one row of its ``units`` resource)."""

    id: str
    format: str = ""  # one of UNIT_FORMATS
    cldr: str = ""
    length: str = "short"
    currency: str = ""
    scale: str = ""
    forms: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # lang -> category -> pattern
    labels: Mapping[str, str] = field(default_factory=dict)  # lang -> what the unit is called

    def label(self, lang: Language) -> str:
        """What the unit is called, for an axis or a column heading ("tonnes of steel")."""
        if lang.code in self.labels:
            return self.labels[lang.code]
        if self.format == "cldr":
            return get_unit_name(self.cldr, length="long", locale=lang.locale) or ""
        return ""


PERCENT = Unit("percent", format="percent")
PLAIN = Unit("year", format="plain")
BUILTIN_UNITS = {"percent": PERCENT, "year": PLAIN}
"""Units every dataset may use without declaring them."""


def digits(value: Decimal | int | float) -> int:
    """How many digits the data wrote after the decimal point (``24.10`` -> 2)."""
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if isinstance(value, float) and not value.is_integer():
        return len(repr(value).split(".")[1]) if "e" not in repr(value) else 6
    return 0


def number(value: Decimal | int | float, lang: Language, *, grouping: bool = True, places: int | None = None) -> str:
    """The number in the locale's format with exactly the digits it was written with."""
    pattern = copy.copy(lang.locale.decimal_formats[None])
    fraction = digits(value) if places is None else places
    pattern.frac_prec = (fraction, fraction)
    text = pattern.apply(Decimal(str(value)) if isinstance(value, float) else value, lang.locale,
                         group_separator=grouping)
    return text


def _range(low: Decimal | int, high: Decimal | int | None, lang: Language, grouping: bool = True) -> str:
    first = number(low, lang, grouping=grouping)
    return first if high is None else first + RANGE + number(high, lang, grouping=grouping)


def _category(value: Decimal | int, lang: Language) -> str:
    return lang.locale.plural_form(value)


def quantity(value: Decimal | int, unit: Unit | None, lang: Language, *, upper: Decimal | int | None = None) -> str:
    """``23 270 т``, ``24,1 %``, ``в 2,8 раза``, ``20–22 %``, ``2020–2024``: value (or range) and unit.

    A range takes the plural form of its upper end, as CLDR's plural ranges do for these
    locales. The result has no breakable space in it.
    """
    unit = unit or Unit("")
    end = upper if upper is not None else value
    if unit.format == "plain":
        text = _range(value, upper, lang, grouping=False)
    elif unit.format == "percent":
        pattern = lang.locale.percent_formats[None]
        text = pattern.prefix[0] + _range(value, upper, lang) + pattern.suffix[0]
    elif unit.format == "cldr":
        # Babel formats one number; the range replaces it in the locale's own unit pattern.
        whole = format_unit(end, unit.cldr, length=unit.length, locale=lang.locale,
                            format=_format_of(end, lang))
        text = whole.replace(number(end, lang), _range(value, upper, lang), 1)
    elif unit.format == "currency":
        text = _currency(value, upper, unit, lang)
    elif unit.format == "forms":
        patterns = unit.forms[lang.code]
        pattern = patterns.get(_category(end, lang)) or patterns["other"]
        text = pattern.replace("{n}", _range(value, upper, lang))
    else:
        text = _range(value, upper, lang)
    if getattr(value, "plus", False) and not text.startswith(("+", "-", "\u2212")):
        text = lang.locale.number_symbols["latn"]["plusSign"] + text
    return text.replace(" ", NBSP)


def _format_of(value: Decimal | int, lang: Language) -> str:
    pattern = lang.locale.decimal_formats[None].pattern.split(";")[0]
    places = digits(value)
    integer = pattern.split(".")[0]
    return integer + ("." + "0" * places if places else "")


def _currency(value: Decimal | int, upper: Decimal | int | None, unit: Unit, lang: Language) -> str:
    end = upper if upper is not None else value
    if unit.scale:
        # The data writes the number in the unit's scale ("1000" billion): it prints as written,
        # in the locale's compact pattern for that scale, not rescaled to "1 trillion".
        magnitude = str(10 ** SCALES[unit.scale])
        formats = lang.locale.compact_currency_formats["short"]
        pattern = (formats.get(_category(end, lang)) or formats["other"])[magnitude].pattern
        symbol = get_currency_symbol(unit.currency, locale=lang.locale)
        return _fill(pattern, _range(value, upper, lang), symbol)
    pattern = copy.copy(lang.locale.currency_formats["standard"])
    pattern.frac_prec = (digits(end), digits(end))
    whole = pattern.apply(end, lang.locale, currency=unit.currency, currency_digits=False)
    return whole.replace(number(end, lang), _range(value, upper, lang), 1)


def _fill(pattern: str, number_text: str, symbol: str) -> str:
    """A CLDR compact pattern (``0\u00a0млрд\u00a0¤``, ``¤0B``) with the number and the symbol put in."""
    pattern = pattern.split(";")[0]
    out, quoted, placed = [], False, False
    for char in re.split(r"('|0+|¤)", pattern):
        if char == "'":
            quoted = not quoted
        elif quoted:
            out.append(char)
        elif char.startswith("0"):
            if not placed:
                out.append(number_text)
                placed = True
        elif char == "¤":
            out.append(symbol)
        else:
            out.append(char)
    return "".join(out)


def qualified(value: Decimal | int, unit: Unit | None, qualifier: str | None, lang: Language, *,
              upper: Decimal | int | None = None) -> str:
    """A figure as a reader should see it: ``более 630 компаний`` / ``more than 630 companies``."""
    text = quantity(value, unit, lang, upper=upper)
    if qualifier:
        text = (lang.gettext(QUALIFIERS[qualifier]) % {"value": text}).replace(" ", NBSP)
    return text
