"""Logging set-up: one line per event, or JSON lines. Only entry points call it (the CLI, workers).

Logs go to stderr (the journal, under systemd) or, with ``--log-file``, appended to a file.
The file's name travels to render workers in ``REPORTER_LOG_FILE``, so that what they log lands
in the same file: they are separate processes that set up their own logging.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from .errors import Problem, ReporterError

LOG_FILE_VARIABLE = "REPORTER_LOG_FILE"


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        return f"{stamp} {record.levelname.lower():7} {record.getMessage()}"


class _FileFormat(logging.Formatter):
    # A file outlives a day and has no journal to stamp it: the date and the process belong in it.
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="seconds")
        return f"{stamp} [{record.process}] {record.levelname.lower():7} {record.getMessage()}"


class _JSONFormat(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
                  "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        fields.update(getattr(record, "fields", {}))
        return json.dumps(fields, ensure_ascii=False, default=str)


def file_handler(path: str | os.PathLike[str]) -> logging.Handler:
    """A handler appending to ``path``, its folder created; one clear error if that cannot be done.

    WatchedFileHandler reopens the file when logrotate has moved it, so a long-running
    ``reporter run`` keeps logging into the new one.
    """
    path = Path(path).absolute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise ReporterError([Problem(str(path), "", f"cannot write the log file: {exc.strerror}")]) from None


def configure_logging(verbose: bool, as_json: bool, log_file: str | os.PathLike[str] | None = None) -> None:
    log_file = log_file or os.environ.get(LOG_FILE_VARIABLE) or None
    if log_file:
        handler = file_handler(log_file)
        handler.setFormatter(_JSONFormat() if as_json else _FileFormat())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JSONFormat() if as_json else _Format())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("reporter").setLevel(logging.DEBUG if verbose else logging.INFO)
    # fontTools and matplotlib chatter is noise; WeasyPrint's records are collected by the PDF
    # stage and logged again under reporter, so they must not also reach the handler directly.
    for noisy in ("fontTools", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    logging.getLogger("weasyprint").propagate = False
