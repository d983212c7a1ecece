"""HTML -> PDF with WeasyPrint, reading nothing but ``data:`` URLs and the project's own files.

WeasyPrint logs problems (a missing image, a font it cannot load) rather than raising them; here
its error records become a :class:`~reporter.errors.RenderError`, so a brief is never written with
a silent blank where a chart or font should be.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from ..errors import Problem, RenderError

log = logging.getLogger(__name__)
_FONT_FACE = re.compile(r"@font-face\s*\{[^}]*\}")
_FILE_URL = re.compile(r"""url\(\s*["']?file://([^"')\s]+)""")
_fonts = threading.local()  # this thread's (key, FontConfiguration): see _font_config


class _ProjectFetcher:
    """Lets WeasyPrint read ``data:`` URLs and files under the allowed folders, and nothing else.

    Anything else (the network, a file elsewhere, a file that does not exist) stops the render:
    a brief with a silent blank where a chart or font should be is worse than no brief.
    """

    def __init__(self, roots: tuple[Path, ...]) -> None:
        from weasyprint.urls import URLFetcher  # noqa: PLC0415

        self.roots = tuple(root.resolve() for root in roots)
        self.inner = URLFetcher(allowed_protocols={"data", "file"}, fail_on_errors=True)

    def __call__(self, url: str):
        return self.fetch(url)

    def fetch(self, url: str, headers: Any = None):
        from urllib.parse import unquote, urlsplit  # noqa: PLC0415

        from weasyprint.urls import FatalURLFetchingError  # noqa: PLC0415

        scheme = url.split(":", 1)[0].lower()
        if scheme == "file":
            path = Path(unquote(urlsplit(url).path)).resolve()
            if not any(root == path or root in path.parents for root in self.roots):
                raise FatalURLFetchingError(f"refused to read {path}: outside the project's folders")
            if not path.is_file():
                raise FatalURLFetchingError(f"missing resource {path}")
        elif scheme != "data":
            raise FatalURLFetchingError(f"refused to fetch {url}: only local files may be used")
        return self.inner.fetch(url, headers)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _weasyprint_errors(name: str) -> Iterator[None]:
    """Turn WeasyPrint's error log records into a :class:`RenderError` (it logs, not raises)."""
    handler = _Collect()
    logger = logging.getLogger("weasyprint")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    errors = [r for r in handler.records if r.levelno >= logging.ERROR]
    for record in handler.records:
        if record.levelno < logging.ERROR:
            log.warning("%s: WeasyPrint: %s", name, record.getMessage())
    if errors:
        raise RenderError([Problem(name, "", f"WeasyPrint: {r.getMessage()}") for r in errors])


@dataclass(frozen=True)
class Attachment:
    """A file embedded in the PDF (PDF/A-3 associated file): the edition's data and manifest."""

    name: str
    data: bytes
    description: str
    relationship: str = "Source"  # PDF/A-3 AFRelationship: Source, Data, Supplement...


VARIANT = "pdf/a-3a"
"""Archival and tagged: PDF/A-3 (files attached), level A (logical structure, Unicode text)."""


def _font_config(document: str):
    """The FontConfiguration for ``document``, the same one for as long as its ``@font-face``
    fonts stay the same files.

    A new configuration per document leaves about 0.45 MB behind in WeasyPrint's native
    libraries (fontconfig, Pango) every time: a warm render process grew by 45 MB over 100
    editions. One kept per thread keeps it flat, and gives byte-identical PDFs. It is replaced
    when a font rule or a font file changes (the preview, an edited project), so an old font is
    never used by mistake.
    """
    from urllib.parse import unquote  # noqa: PLC0415

    from weasyprint.text.fonts import FontConfiguration  # noqa: PLC0415

    key = hashlib.sha256()
    for rule in _FONT_FACE.findall(document):
        key.update(rule.encode())
        for path in _FILE_URL.findall(rule):
            try:
                stat = os.stat(unquote(path))
                key.update(f"{stat.st_mtime_ns}:{stat.st_size}".encode())
            except OSError:
                key.update(b"missing")  # the fetcher names the missing file
    digest = key.hexdigest()
    held = getattr(_fonts, "held", None)
    if held is None or held[0] != digest:
        held = _fonts.held = (digest, FontConfiguration())
    return held[1]


def to_pdf(document: str, base_dir: Path, roots: tuple[Path, ...], name: str, *,
           attachments: tuple[Attachment, ...] = (), identifier: bytes | None = None,
           created: datetime | None = None) -> bytes:
    """Lay out the HTML with WeasyPrint and return the PDF bytes: PDF/A-3a, tagged, with
    ``attachments`` embedded. ``identifier`` (the PDF's /ID) and ``created`` (the attachments'
    dates) are fixed by the caller, so the same inputs give the same bytes."""
    from .libraries import import_weasyprint  # noqa: PLC0415

    weasyprint = import_weasyprint()  # 0.3 s, only when writing a PDF
    HTML, WeasyAttachment = weasyprint.HTML, weasyprint.Attachment
    from weasyprint.urls import FatalURLFetchingError  # noqa: PLC0415

    fetcher = _ProjectFetcher(roots)
    files = [WeasyAttachment(string=item.data, name=item.name, description=item.description,
                             relationship=item.relationship, created=created, modified=created,
                             url_fetcher=fetcher)
             for item in attachments]
    try:
        with _weasyprint_errors(name):
            return HTML(string=document, base_url=str(base_dir) + os.sep, url_fetcher=fetcher).write_pdf(
                pdf_variant=VARIANT, attachments=files, pdf_identifier=identifier, font_config=_font_config(document))
    except FatalURLFetchingError as exc:
        raise RenderError([Problem(name, "", str(exc))]) from None
