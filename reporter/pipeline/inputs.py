"""Which files an edition is made from: what it reads besides its datasets (templates, catalogues,
fonts), for digests that say whether anything changed."""

from __future__ import annotations

from pathlib import Path

from ..config import Project, Report
from .catalogues import templates_used
from .i18n import catalogues


def texts(project: Project, report: Report, lang: str) -> list[Path]:
    """The templates an edition in ``lang`` reads and the catalogues of that language, in a
    stable order (resolved: a project's override, else the theme's)."""
    used = sorted(templates_used(project, report, lang), key=str)
    return [*used, *catalogues(lang, project.locale_dir)]
