"""What an edition is made of, and what changed since the last one: ``manifest.json``.

Beside every edition (``output/<report>/<date>/manifest.json``) and attached inside each of its
PDFs, the manifest records:

- the report, the date, the languages and formats;
- the sha256 of every input: the datasets' files, every template and stylesheet the edition
  reads (the project's or the theme's), the catalogues of its languages, the fonts, and the
  report's own settings;
- the versions of reporter, WeasyPrint, matplotlib, Babel, Jinja2, Pango and Python;
- the facts as they printed in each language (so the next edition can say what changed, from
  the archive alone), and what changed since the previous edition;
- beside the edition only: the sha256 of every output file (a PDF cannot hold its own digest).

``reporter verify`` checks editions against their manifests; a render whose inputs all match the
manifest of an edition already on disk does no work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ..config import Project, Report
from ..errors import Problem
from ..theme import THEME_DIR, find
from .inputs import catalogues, templates_used

FORMAT = 1
NAME = "manifest.json"
FONT_FILES = ("PTSerif-Regular.ttf", "PTSerif-Italic.ttf", "PTSerif-Bold.ttf", "PTSans-Regular.ttf", "PTSans-Bold.ttf")
# Settings that change what an edition says or how it looks; the schedule, the recipients and
# the delivery settings do not, and changing them must not make an edition "changed".
EDITION_SETTINGS = ("title", "short_title", "datasets", "layout", "narrative", "languages", "formats", "sections",
                    "charts", "tables", "key_figures", "timeline", "max_age", "stale")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _name(path: Path, project: Project) -> str:
    """A stable name for an input: relative to the project, or ``reporter:theme/...``."""
    real = path.resolve()
    for base, prefix in ((project.root.resolve(), ""), (THEME_DIR, "reporter:theme/")):
        if base == real or base in real.parents:
            return prefix + real.relative_to(base).as_posix()
    return real.as_posix()


def _versions() -> dict[str, str]:
    from .. import __version__  # noqa: PLC0415

    found = {"reporter": __version__, "python": platform.python_version(), "pango": pango_version()}
    for package in ("weasyprint", "matplotlib", "babel", "jinja2"):
        found[package] = _installed_version(package)
    return found


def _installed_version(package: str) -> str:
    """A package's version from its ``.dist-info`` folder name: importlib.metadata scans every
    installed distribution on each call, and this runs before every render."""
    import sys  # noqa: PLC0415

    for entry in sys.path:
        folder = Path(entry or ".")
        if folder.is_dir():
            for info in folder.glob(f"{package}-*.dist-info"):
                return info.name[len(package) + 1:-len(".dist-info")]
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def pango_version() -> str:
    """Pango's version, read from the library itself (cheap: no WeasyPrint import)."""
    import ctypes  # noqa: PLC0415
    import ctypes.util  # noqa: PLC0415

    name = ctypes.util.find_library("pango-1.0") or "libpango-1.0.so.0"
    try:
        library = ctypes.CDLL(name)
    except OSError:
        return "unknown"
    library.pango_version_string.restype = ctypes.c_char_p
    return library.pango_version_string().decode()


def _settings(project: Project, report: Report) -> dict[str, Any]:
    values = dataclasses.asdict(report)
    chosen = {key: values.get(key) for key in EDITION_SETTINGS if key in values}
    chosen["locales"] = {lang: project.locale_of(lang) for lang in report.languages}
    return chosen


@dataclass(frozen=True)
class Inputs:
    """Every input of an edition by name with its sha256, the software's versions, one digest."""

    files: dict[str, str]
    versions: dict[str, str]
    settings: dict[str, Any]
    digest: str
    paths: dict[str, Path] = field(default_factory=dict, repr=False, compare=False)


def inputs(project: Project, report: Report) -> Inputs:
    """Hash what the edition would read. Cheap: no WeasyPrint or matplotlib import."""
    paths: dict[str, Path] = {}

    def add(path: Path) -> None:
        paths[_name(path, project)] = path

    for dataset in report.datasets:
        for path in sorted((project.data_dir / dataset).rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                add(path)
    for lang in report.languages:
        for path in templates_used(project, report, lang):
            add(path)
        for path in catalogues(lang, project.locale_dir):
            add(path)
    for font in FONT_FILES:
        if (path := find(f"fonts/{font}", project.templates_dir)) is not None:
            add(path)
    files = {name: sha256(paths[name].read_bytes()) for name in sorted(paths)}
    versions = _versions()
    settings = json.loads(json.dumps(_settings(project, report), default=str, sort_keys=True))
    digest = sha256(json.dumps({"files": files, "versions": versions, "settings": settings}, sort_keys=True).encode())
    return Inputs(files, versions, settings, digest, paths)


def data_files(inputs_: Inputs) -> list[tuple[str, Path]]:
    """The datasets' files among the inputs, as attached to the PDF (``data/<id>/<file>``)."""
    return [(name, path) for name, path in inputs_.paths.items() if name.startswith("data/")]


def read(directory: Path) -> dict[str, Any] | None:
    """The manifest of the edition in ``directory``, or None if it has none (or an unreadable one)."""
    try:
        found = json.loads((directory / NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("format") == FORMAT else None


def unchanged(directory: Path, inputs_: Inputs, wanted: list[str]) -> bool:
    """True if the edition on disk was made from these very inputs and its files ``wanted``
    are all there, byte for byte as its manifest recorded them."""
    found = read(directory)
    if found is None or found.get("inputs_digest") != inputs_.digest:
        return False
    outputs = found.get("outputs", {})
    for name in wanted:
        path = directory / name
        if name not in outputs or not path.is_file() or sha256(path.read_bytes()) != outputs[name]:
            return False
    return True


def previous(output_dir: Path, report_id: str, day: date) -> dict[str, Any] | None:
    """The manifest of the newest earlier edition of the report, if any has one."""
    folder = output_dir / report_id
    if not folder.is_dir():
        return None
    earlier = sorted((p for p in folder.iterdir() if p.is_dir() and _is_date(p.name) and p.name < day.isoformat()),
                     reverse=True)
    for candidate in earlier:
        found = read(candidate)
        if found is not None:
            return found
    return None


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def document(report: Report, day: date, languages: tuple[str, ...], formats: tuple[str, ...], inputs_: Inputs,
             facts: dict[str, Any], changes: dict[str, Any], stale: dict[str, str]) -> dict[str, Any]:
    """The manifest without outputs: what is attached inside every PDF of the edition.

    ``stale``: the facts older than the report's ``max_age`` at the edition date (id: as-of).
    """
    return {
        "format": FORMAT, "report": report.id, "edition_date": day.isoformat(), "languages": list(languages),
        "formats": list(formats), "inputs": inputs_.files, "inputs_digest": inputs_.digest,
        "versions": inputs_.versions, "settings": inputs_.settings, "facts": facts, "changes": changes,
        "stale": stale,
    }


def dumps(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")


# Files an edition folder may hold besides those its manifest lists: the manifest itself, the
# delivery record and its lock, and what a site build adds.
BESIDES = {NAME, "deliveries.json", "deliveries.json.lock", "index.html"}


def verify(path: Path) -> tuple[int, list[Problem]]:
    """Check every edition under ``path`` (one edition's folder, a report's, or a whole archive)
    against its manifest: each output there and byte for byte as recorded, nothing unrecorded.

    Returns how many editions were checked and what differs.
    """
    if not path.exists():
        return 0, [Problem(str(path), "", "no such file or folder")]
    manifests = sorted(path.rglob(NAME)) if path.is_dir() else []
    problems: list[Problem] = []
    if not manifests:
        return 0, [Problem(str(path), "", f"no {NAME} found: not an edition made by reporter 0.2 or later")]
    for found in manifests:
        folder = found.parent
        record = read(folder)
        if record is None:
            problems.append(Problem(str(found), "", "not a manifest reporter can read"))
            continue
        outputs = record.get("outputs", {})
        for name, digest in sorted(outputs.items()):
            file = folder / name
            if not file.is_file():
                problems.append(Problem(str(file), "", "missing: the manifest records it"))
            elif sha256(file.read_bytes()) != digest:
                problems.append(Problem(str(file), "", f"differs from the manifest (recorded sha256 {digest[:12]}…, "
                                        f"now {sha256(file.read_bytes())[:12]}…)"))
        for file in sorted(folder.iterdir()):
            if file.is_file() and file.name not in outputs and file.name not in BESIDES and not file.name.startswith("."):
                problems.append(Problem(str(file), "", "not in the manifest: it was not written with this edition"))
    return len(manifests), problems
