"""Logging set-up: one line per event, or JSON lines. Only entry points call it (the CLI, workers)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        return f"{stamp} {record.levelname.lower():7} {record.getMessage()}"


class _JSONFormat(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
                  "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        fields.update(getattr(record, "fields", {}))
        return json.dumps(fields, ensure_ascii=False, default=str)


def configure_logging(verbose: bool, as_json: bool) -> None:
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
