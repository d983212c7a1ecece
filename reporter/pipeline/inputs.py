"""Which files an edition is made from: what it reads besides its datasets (templates, catalogues,
fonts), for digests that say whether anything changed."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from ..config import Project, Report
from ..theme import THEME_DIR
from .catalogues import templates_used
from .i18n import catalogues


def texts(project: Project, report: Report, lang: str) -> list[Path]:
    """The templates an edition in ``lang`` reads and the catalogues of that language, in a
    stable order (resolved: a project's override, else the theme's)."""
    used = sorted(templates_used(project, report, lang), key=str)
    return [*used, *catalogues(lang, project.locale_dir)]


_file_digests: dict[Path, tuple[int, int, str]] = {}


def _file_digest(path: Path) -> str:
    # By size and mtime: a scheduler asks before every render, and the files rarely change.
    stat = path.stat()
    known = _file_digests.get(path)
    if known and known[:2] == (stat.st_size, stat.st_mtime_ns):
        return known[2]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    _file_digests[path] = (stat.st_size, stat.st_mtime_ns, digest)
    return digest


def render_digest(project: Project, report: Report) -> str:
    """A digest of what an edition of ``report`` is rendered from: its settings (less who gets it and when),
    its datasets, the project's templates and catalogues, and the theme.

    A worker on another host compares it with the scheduler's, so that an edition is never
    rendered from an older copy of the data. Paths count relative to their folder, so the
    project may live in another place there.
    """
    settings = replace(report, recipients=(), on_failure=(), send_if="always", short_title={}, schedule=None,
                       catch_up="latest", grace_seconds=0, timeout_seconds=0)
    total = hashlib.sha256(repr((settings, sorted(project.locales.items()))).encode())
    folders = [("data", project.data_dir / name) for name in report.datasets]
    folders += [("templates", project.templates_dir), ("theme", THEME_DIR)]
    if project.locale_dir is not None:
        folders.append(("locale", project.locale_dir))
    for label, folder in folders:
        for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
            if path.is_file() and "__pycache__" not in path.parts:
                total.update(f"{label}/{path.relative_to(folder).as_posix()}:{_file_digest(path)}\n".encode())
    return total.hexdigest()
