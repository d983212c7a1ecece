"""Reading PDFs back as a reader sees them: text per line and page, with positions (poppler)."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from conftest import normalise


@dataclass(frozen=True)
class Line:
    page: int
    top: float
    bottom: float
    text: str


@dataclass(frozen=True)
class Page:
    number: int
    height: float
    lines: tuple[Line, ...]

    def body(self, header: float = 60.0, footer: float = 60.0) -> list[Line]:
        """Lines outside the running header and the page-number footer (in points from the edges)."""
        return [line for line in self.lines if line.top > header and line.bottom < self.height - footer]


def pages(path: Path) -> list[Page]:
    """Every page's text lines, top to bottom, from ``pdftotext -bbox-layout``."""
    xhtml = subprocess.run(["pdftotext", "-bbox-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    root = ET.fromstring(xhtml)
    ns = {"x": "http://www.w3.org/1999/xhtml"}
    out = []
    for number, page in enumerate(root.iter("{http://www.w3.org/1999/xhtml}page"), start=1):
        lines = []
        for line in page.iterfind(".//x:line", ns):
            words = [w.text or "" for w in line.iterfind("x:word", ns)]
            lines.append(Line(number, float(line.get("yMin")), float(line.get("yMax")), normalise(" ".join(words))))
        lines.sort(key=lambda item: (item.top, item.text))
        out.append(Page(number, float(page.get("height")), tuple(lines)))
    return out


def text(path: Path) -> str:
    return normalise(subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                                    check=True).stdout)
