"""What changed since the previous edition: new facts, changed values, removed facts.

Computed from the previous edition's manifest (its facts as they printed, in each language), so
it works from an archive alone, even after the data moved on or a unit was renamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .i18n import N_, Language
from .model import Knowledge
from .values import qualified

COMPARED = ("value", "value_to", "unit", "qualifier")
"""What makes a fact "changed". A newer as-of date alone confirms the figure; it is not a change."""


def snapshot(knowledge: Knowledge, languages: Mapping[str, Language]) -> dict[str, Any]:
    """Each fact as data and as it prints in each language: what the next edition compares with."""
    out = {}
    for fact in knowledge.facts.values():
        value = ("+" if getattr(fact.value, "plus", False) else "") + str(fact.value)
        out[fact.id] = {
            "value": value, "value_to": None if fact.upper is None else str(fact.upper),
            "unit": fact.unit.id if fact.unit else None, "qualifier": fact.qualifier, "as_of": fact.as_of,
            "label": dict(fact.labels),
            "printed": {code: qualified(fact.value, fact.unit, fact.qualifier, lang, upper=fact.upper)
                        for code, lang in languages.items()},
        }
    return out


def compare(before: Mapping[str, Any] | None, now: Mapping[str, Any]) -> dict[str, Any]:
    """Ids of new, changed and removed facts (None: there is no earlier edition)."""
    if before is None:
        return {"new": [], "changed": [], "removed": []}
    return {
        "new": [i for i in now if i not in before],
        "changed": [i for i in now if i in before and any(now[i].get(k) != before[i].get(k) for k in COMPARED)],
        "removed": [i for i in before if i not in now],
    }


def summary(previous_date: str | None, ids: Mapping[str, list[str]], lang: Language) -> str:
    """One line: "2 figures changed, 1 new" / "first edition" / "no figure changed"."""
    if previous_date is None:
        return lang.gettext(N_("First edition"))
    parts = []
    if ids["changed"]:
        parts.append(lang.ngettext("%(num)s figure changed", "%(num)s figures changed", len(ids["changed"])) % {"num": len(ids["changed"])})
    if ids["new"]:
        parts.append(lang.ngettext("%(num)s new", "%(num)s new", len(ids["new"])) % {"num": len(ids["new"])})
    if ids["removed"]:
        parts.append(lang.ngettext("%(num)s removed", "%(num)s removed", len(ids["removed"])) % {"num": len(ids["removed"])})
    return ", ".join(parts) if parts else lang.gettext(N_("No figure changed"))


@dataclass(frozen=True)
class Change:
    """One line of the "What changed" section, in one language."""

    kind: str  # new | changed | removed
    id: str
    label: str
    before: str = ""
    before_as_of: str = ""
    after: str = ""
    after_as_of: str = ""


@dataclass(frozen=True)
class Changes:
    """The "What changed" section of an edition in one language."""

    previous_date: str | None
    items: tuple[Change, ...]
    summary: str

    @property
    def first(self) -> bool:
        return self.previous_date is None


def section(previous: Mapping[str, Any] | None, now: Mapping[str, Any], lang: Language) -> Changes:
    """The section's content in ``lang`` from the previous manifest and this edition's facts."""
    before = previous.get("facts") if previous else None
    date_text = previous.get("edition_date") if previous else None
    ids = compare(before, now)
    items = []

    def printed(entry: Mapping[str, Any]) -> str:
        # An earlier edition may not have had this language: show the figure as data then.
        text = entry.get("printed", {}).get(lang.code)
        return text or " ".join(str(v) for v in (entry.get("value"), entry.get("unit")) if v)

    def label(entry: Mapping[str, Any], fact_id: str) -> str:
        return entry.get("label", {}).get(lang.code) or fact_id

    for fact_id in ids["changed"]:
        old, new = before[fact_id], now[fact_id]
        items.append(Change("changed", fact_id, label(new, fact_id), printed(old), old.get("as_of", ""),
                            printed(new), new.get("as_of", "")))
    for fact_id in ids["new"]:
        items.append(Change("new", fact_id, label(now[fact_id], fact_id), after=printed(now[fact_id]),
                            after_as_of=now[fact_id].get("as_of", "")))
    for fact_id in ids["removed"]:
        items.append(Change("removed", fact_id, label(before[fact_id], fact_id), before=printed(before[fact_id]),
                            before_as_of=before[fact_id].get("as_of", "")))
    return Changes(date_text, tuple(items), summary(date_text, ids, lang))
