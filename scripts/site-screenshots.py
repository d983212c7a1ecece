"""Screenshots of the archive site for the README, from the shipped example project.

The project is copied to a temp folder and rendered there for a few dates through the CLI, so
nothing is written into the repository's own output/ or state/. Chromium (Debian's, through
playwright, as in the tests) takes each page at 1280 px.

Usage: .venv/bin/python scripts/site-screenshots.py   (writes docs/site-index.png, docs/site-report.png)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser import browser  # noqa: E402

EDITIONS = [("kz-us", "2025-10-20", "html"), ("kz-us", "2025-10-27", "html"), ("kz-us", "2025-11-03", "pdf,html"),
            ("kz-uranium", "2025-11-03", "pdf,html")]


def reporter(config: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "reporter", "--config", str(config), *args], check=True, cwd=config.parent,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        project = Path(temp) / "project"
        project.mkdir()
        for name in ("reports.toml", "data", "templates"):
            source = ROOT / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, project / name)
        config = project / "reports.toml"
        for report, day, formats in EDITIONS:
            reporter(config, "render", report, "--date", day, "--format", formats)
        reporter(config, "site")
        with browser() as chromium:
            page = chromium.new_page(viewport={"width": 1280, "height": 640})
            for name, shot in (("index.html", "site-index.png"), ("kz-us/index.html", "site-report.png")):
                page.goto((project / "output" / name).as_uri())
                page.screenshot(path=str(ROOT / "docs" / shot), full_page=True)
                print(ROOT / "docs" / shot)


if __name__ == "__main__":
    main()
