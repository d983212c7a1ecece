"""The exceptions reporter raises for problems a user can fix.

Every stage raises a subclass of :class:`ReporterError`; the CLI turns them into one line per
problem and exit code 1. Anything else escaping a command is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, and where: a file and a place in it (row, column, key)."""

    file: str
    place: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.place}" if self.place else self.file
        return f"{where}: {self.message}"


class ReporterError(Exception):
    """Base of every error caused by input, configuration or the environment, not by a bug.

    Carries one or more :class:`Problem` records, so validation can report everything it found
    at once instead of stopping at the first mistake.
    """

    def __init__(self, problems: list[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("", "", problems)]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(ReporterError):
    """Raised by :mod:`reporter.config` for a missing, malformed or invalid ``reports.toml``."""


class DataError(ReporterError):
    """Raised by :mod:`reporter.datasets` for a dataset that breaks its Table Schema."""


class TemplateError(ReporterError):
    """Raised by :mod:`reporter.render` and :mod:`reporter.i18n` for templates and catalogues."""


class ChartError(ReporterError):
    """Raised by :mod:`reporter.charts` when a chart's definition does not fit its data."""


class RenderError(ReporterError):
    """Raised by :mod:`reporter.render` when WeasyPrint cannot produce a document."""


class StateError(ReporterError):
    """Raised by :mod:`reporter.history` and :mod:`reporter.lock` for an unusable state file."""


class DeliveryError(ReporterError):
    """Raised by :mod:`reporter.deliver` when a message cannot be built or sent."""


def collect(problems: list[Problem], error: type[ReporterError]) -> None:
    """Raise ``error`` with every collected problem, if there are any."""
    if problems:
        raise error(problems)
