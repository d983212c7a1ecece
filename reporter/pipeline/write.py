"""Atomic files: an edition is written whole or not at all, never half a PDF that could be emailed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import Problem, RenderError
from ..liveness import pid_alive

PART_SUFFIX = ".part"


def remove_stale_parts(directory: Path) -> list[Path]:
    """Delete temporary files left by a writer that died (killed mid-write); keep live ones.

    Temporary names carry the writer's pid (``.weekly.ru.pdf.<pid>.<random>.part``), so a
    concurrent render's file in progress is never touched.
    """
    removed = []
    if directory.is_dir():
        for part in directory.glob(f".*{PART_SUFFIX}"):
            fields = part.name.rsplit(".", 3)
            pid = int(fields[1]) if len(fields) == 4 and fields[1].isdigit() else None
            if pid is None or not pid_alive(pid):
                part.unlink(missing_ok=True)
                removed.append(part)
    return removed


def write_atomically(files: dict[Path, bytes]) -> None:
    """Write an edition's files so that none is ever seen half-written.

    Every file is first written to a temporary file beside its target, flushed and synced;
    only when all are staged are they renamed into place, one ``os.replace`` each. A failure
    while staging leaves every target as it was. (A crash between two renames can leave a
    new PDF beside an old HTML of the same edition; each file is whole, and the history
    records the run as not finished, so it runs again.)
    """
    staged: list[tuple[str, Path]] = []
    target = next(iter(files), Path())
    try:
        for target, data in files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=PART_SUFFIX, dir=target.parent)
            staged.append((tmp, target))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
        for tmp, target in staged:
            os.replace(tmp, target)
        staged.clear()
    except OSError as exc:
        # The file the user knows, not its temporary part (".brief.en.pdf.4242.x1y2.part"),
        # which is gone by the time they read the message.
        raise RenderError([Problem(str(target), "", f"cannot write: {exc.strerror}")]) from None
    finally:
        for tmp, _target in staged:
            Path(tmp).unlink(missing_ok=True)
