"""The theme: the shared layout, CSS, fonts and interface catalogues that every brief uses.

They ship inside the package (``reporter/theme``). A project overrides any of them by placing a
file of the same name in its own ``templates/`` folder (``templates/brief.css``,
``templates/fonts/PTSerif-Regular.ttf``), as MkDocs themes are overridden by ``custom_dir``.

Every file read through here must resolve, symlinks included, inside the folder it was found in:
an editor's symlink to ``/etc`` is refused, not followed.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import Problem, TemplateError

THEME_DIR = Path(__file__).resolve().parent
LAYOUT = "brief.html.j2"


def search_path(templates_dir: Path) -> tuple[Path, ...]:
    """Where a template, stylesheet or font is looked for, first match wins: the project, the theme."""
    return (templates_dir, THEME_DIR)


def inside(path: Path, root: Path) -> bool:
    """True if ``path`` resolves (following every symlink) to ``root`` or below it."""
    real, base = path.resolve(), root.resolve()
    return real == base or base in real.parents


def confined(path: Path, roots: tuple[Path, ...]) -> Path:
    """``path`` resolved; :class:`TemplateError` if that leaves every one of ``roots``."""
    if not any(inside(path, root) for root in roots):
        raise TemplateError([Problem(str(path), "", f"resolves to {path.resolve()}, outside the project's folders; "
                                     "files may not link out of the project")])
    return path.resolve()


def find(name: str, templates_dir: Path) -> Path | None:
    """The file ``name`` from the project's templates or else the theme, resolved and confined."""
    for root in search_path(templates_dir):
        candidate = root / name
        if candidate.exists():
            return confined(candidate, (root,))
    return None
