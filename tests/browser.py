"""A real browser for the tests: Debian's chromium, driven by playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from typing import Iterator

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root chromium needs --no-sandbox; the rest keeps it off this machine's closed network.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@contextmanager
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise AssertionError(f"no chromium at {CHROMIUM}: run `make setup` (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
