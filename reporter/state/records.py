"""The delivery record beside each edition: ``output/<report>/<date>/deliveries.json``.

The history database says who got which edition, but a history can be deleted, moved, or
replaced by an old backup. The edition's own folder therefore keeps a second record of every
message a server accepted, written the moment it accepts it; a delivery reads it before
sending, and ``reporter adopt`` rebuilds the history from it. Losing the database then never
means a second copy for anyone.

The file is small JSON, rewritten whole and atomically (temporary file, fsync, rename) under an
exclusive lock on the edition's folder, so two processes delivering the same edition at once do
not lose each other's entries.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Iterator

from ..errors import Problem, ReporterError, StateError
from ..pipeline.write import write_atomically

RECORD_NAME = "deliveries.json"
VERSION = 1


@dataclass(frozen=True)
class SentEntry:
    """One message a server accepted: to whom, in which language, when, and what it carried."""

    lang: str
    recipient: str
    kind: str
    sent_at: str  # UTC, ISO 8601
    message_id: str | None
    sha256: str | None  # of the attached PDF
    reply: str | None  # the server's reply, e.g. "250 2.0.0 OK queued as 42"
    attempts: int = 1
    forced: bool = False
    content: str | None = None  # what the edition says in this language (send_if = "changed")

    @property
    def key(self) -> tuple[str, str]:
        return self.lang, self.recipient.lower()


def record_path(directory: Path) -> Path:
    return directory / RECORD_NAME


def read_record(directory: Path) -> dict[tuple[str, str], SentEntry]:
    """The entries of an edition's record by (language, lower-case address); empty if there is none.

    A record that cannot be read is an error, never "nobody got it": that would send again.
    """
    path = record_path(directory)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise StateError([Problem(str(path), "", f"cannot read this edition's delivery record ({reason}); "
                                  "fix it, or move it aside if nobody got this edition")]) from None
    try:
        entries = [SentEntry(**item) for item in raw["deliveries"]]
    except (KeyError, TypeError) as exc:
        raise StateError([Problem(str(path), "", f"not a delivery record ({type(exc).__name__}: {exc}); "
                                  "fix it, or move it aside if nobody got this edition")]) from None
    return {entry.key: entry for entry in entries}


@contextmanager
def _folder_lock(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def add_to_record(directory: Path, report: str, edition_date: date, entry: SentEntry) -> None:
    """Add (or replace) one recipient's entry; raise :class:`StateError` if it cannot be written."""
    try:
        with _folder_lock(directory):
            entries = read_record(directory)
            entries[entry.key] = entry
            document = {
                "version": VERSION,
                "report": report,
                "edition_date": edition_date.isoformat(),
                "deliveries": [asdict(e) for _key, e in sorted(entries.items())],
            }
            text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
            write_atomically({record_path(directory): text.encode("utf-8")})
    except OSError as exc:
        raise StateError([Problem(str(record_path(directory)), "", f"cannot write: {exc.strerror}")]) from None
    except ReporterError as exc:
        raise StateError(exc.problems) from None
