"""Freshness: a fact older than its report's ``max_age`` at the edition date is stale.

A fact's age runs from the end of its as-of period (``2024`` counts from 31 December 2024,
``2024-06`` from 30 June), so a yearly figure is not called stale for being dated by its year.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

from ..config import Report
from .model import Fact, Knowledge


@dataclass(frozen=True)
class Stale:
    """A stale fact: its as-of date, and the limit it passed (days)."""

    fact: str
    as_of: str
    limit_days: int
    age_days: int


def period_end(as_of: str) -> date | None:
    """The last day an as-of date (``2025``, ``2025-09``, ``2025-09-30``) stands for."""
    parts = as_of.split("-")
    try:
        if len(parts) == 1:
            return date(int(parts[0]), 12, 31)
        if len(parts) == 2:
            year, month = int(parts[0]), int(parts[1])
            return date(year, month, calendar.monthrange(year, month)[1])
        return date.fromisoformat(as_of)
    except ValueError:
        return None


def limit(report: Report, fact: Fact) -> int | None:
    """How many days the fact stays fresh: its topic's limit, else the report's default."""
    topic = str(fact.row.get("topic") or "")
    return report.max_age.get(topic, report.max_age.get("default"))


def stale(report: Report, knowledge: Knowledge, day: date) -> dict[str, Stale]:
    """The report's stale facts at ``day``, by id, in file order."""
    found = {}
    for fact in knowledge.facts.values():
        days = limit(report, fact)
        end = period_end(fact.as_of) if fact.as_of else None
        if days is None or end is None:
            continue
        age = (day - end).days
        if age > days:
            found[fact.id] = Stale(fact.id, fact.as_of, days, age)
    return found
