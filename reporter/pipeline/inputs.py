"""Which files an edition reads besides its data: the templates (the project's, else the theme's)
and the catalogues of its languages. Light on purpose (Jinja2's parser only, no Babel, no
WeasyPrint): ``render`` asks it first, to know whether anything changed at all.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path

from ..config import Project, Report
from ..errors import Problem, TemplateError
from ..theme import THEME_DIR, search_path

DOMAIN = "messages"
PACKAGE_CATALOGUES = THEME_DIR / "locale"


def catalogue_path(locale_dir: Path, code: str) -> Path:
    return locale_dir / code / "LC_MESSAGES" / f"{DOMAIN}.po"


def _find(name: str, templates_dir: Path) -> Path | None:
    for root in search_path(templates_dir):
        if (root / name).is_file():
            return root / name
    return None


# A template's references to other templates, by literal name. Scanned, not parsed: Jinja's
# parser costs 5 ms a template, and this runs before every render to see if anything changed.
# A name built at render time cannot be known here (nor by Jinja's own meta.find_referenced_templates).
_REFERENCE = re.compile(r"""{%-?\s*(?:extends|include|import|from)\s+(?:\[\s*)?((?:["'][^"']+["']\s*,?\s*)+)""")
_NAME = re.compile(r"""["']([^"']+)["']""")


def templates_used(project: Project, report: Report, lang: str) -> list[Path]:
    """Every template file an edition in ``lang`` reads: narrative, layout, and what they
    extend, include or import (from the project first, else the theme)."""
    pending = [report.narrative_for(lang), report.layout, "email.txt.j2", "email.html.j2"]
    seen: dict[str, Path] = {}
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = _find(name, project.templates_dir)
        if path is None:
            continue
        seen[name] = path
        try:
            source = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # the render reports it, with its place
        pending += [found for names in _REFERENCE.findall(source) for found in _NAME.findall(names)]
    return list(seen.values())


def catalogues(code: str, project_locale_dir: Path | None) -> tuple[Path, ...]:
    """The ``.po`` files that exist for ``code``: the theme's, then the project's.

    A project's catalogue must resolve, symlinks included, inside its locale folder.
    """
    found = [catalogue_path(PACKAGE_CATALOGUES, code)]
    if project_locale_dir is not None:
        own = catalogue_path(project_locale_dir, code)
        if own.is_file() and project_locale_dir.resolve() not in own.resolve().parents:
            raise TemplateError([Problem(str(own), "", f"resolves to {own.resolve()}, outside the project's locale folder")])
        found.append(own)
    return tuple(path for path in found if path.is_file())


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
