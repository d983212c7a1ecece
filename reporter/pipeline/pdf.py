"""HTML -> PDF with WeasyPrint, reading nothing but ``data:`` URLs and the project's own files.

WeasyPrint logs problems (a missing image, a font it cannot load) rather than raising them; here
its error records become a :class:`~reporter.errors.RenderError`, so a brief is never written with
a silent blank where a chart or font should be.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import Problem, RenderError

log = logging.getLogger(__name__)


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


def to_pdf(document: str, base_dir: Path, roots: tuple[Path, ...], name: str) -> bytes:
    """Lay out the HTML with WeasyPrint and return the PDF bytes."""
    from weasyprint import HTML  # noqa: PLC0415 - 1 s import, only when writing a PDF
    from weasyprint.urls import FatalURLFetchingError  # noqa: PLC0415

    fetcher = _ProjectFetcher(roots)
    try:
        with _weasyprint_errors(name):
            return HTML(string=document, base_url=str(base_dir) + os.sep, url_fetcher=fetcher).write_pdf()
    except FatalURLFetchingError as exc:
        raise RenderError([Problem(name, "", str(exc))]) from None
