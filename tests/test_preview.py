"""The live preview, as an editor uses it: `reporter preview` runs as a process, the page is open in a
real browser (Debian's chromium), and files change on disk. The page must follow by itself:
this test never reloads it, it only waits (with a deadline) for what the page shows.
"""

from __future__ import annotations

import http.client
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

from browser import browser
from conftest import cli_env, normalise, run_cli
from projects import make_project, report_block

pytestmark = pytest.mark.slow

DEADLINE = 30.0  # seconds for a change to show; a render takes about one on this machine


@contextmanager
def preview(config: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`reporter preview` on a free port: yields its URL and the process; stops it with Ctrl-C."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reporter", "--config", str(config), "preview", *args, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=config.parent,
        env=cli_env({}))
    try:
        line = proc.stdout.readline()  # the URL, printed once it listens
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, f"no URL in {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        yield match[0], proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(page, check: Callable[[str], bool], what: str) -> str:
    """Poll the page's text until ``check`` holds; the page may be reloading meanwhile."""
    deadline = time.monotonic() + DEADLINE
    text = ""
    while time.monotonic() < deadline:
        try:
            text = normalise(page.inner_text("body", timeout=2000))
        except Exception:  # noqa: BLE001 - mid-reload: the document is being replaced
            text = ""
        if check(text):
            return text
        page.wait_for_timeout(100)
    raise AssertionError(f"the page did not show {what} within {DEADLINE:.0f} s; it shows:\n{text[:1500]}")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in line)


@pytest.fixture(scope="module")
def chromium():
    with browser() as opened:
        yield opened


CATALOGUE = """\
msgid ""
msgstr ""
"Content-Type: text/plain; charset=utf-8\\n"
"Language: en\\n"

msgid "Key figures"
msgstr "Headline figures"
"""


def test_the_page_follows_edits_shows_a_broken_edit_and_recovers(tmp_path: Path, chromium) -> None:
    config = make_project(tmp_path, [report_block("brief", schedule=None)])
    narrative = tmp_path / "templates" / "brief" / "narrative.en.html.j2"
    with preview(config, "brief", "--lang", "en", "--date", "2025-11-05") as (url, proc):
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        wait_for(page, lambda t: "There are more than 630 companies" in t, "the edition")
        assert "5 November 2025" in page.inner_text("header")

        # A template: a sentence rewritten.
        edit(narrative, "There are", "Today there are")
        wait_for(page, lambda t: "Today there are more than 630 companies" in t, "the edited sentence")
        # Data: a figure changed.
        edit(tmp_path / "data" / "brief" / "facts.csv", "firms,630,", "firms,640,")
        wait_for(page, lambda t: "Today there are more than 640 companies" in t, "the edited figure")
        # The config: the title.
        edit(config, 'en = "Trade review: a test brief"', 'en = "Trade review: an edited brief"')
        wait_for(page, lambda t: "Trade review: an edited brief" in t, "the edited title")
        # A catalogue of the project's own, new: it overrides the theme's string.
        catalogue = tmp_path / "locale" / "en" / "LC_MESSAGES" / "messages.po"
        catalogue.parent.mkdir(parents=True)
        catalogue.write_text(CATALOGUE, encoding="utf-8")
        wait_for(page, lambda t: "Headline figures" in t and "Key figures" not in t, "the translated heading")

        # Broken: an unknown fact id. The page names the file, the line and the mistake.
        edit(narrative, 'fact("output")', 'fact("outptu")')
        shown = wait_for(page, lambda t: "could not be rendered" in t, "the error")
        assert f"templates/brief/narrative.en.html.j2 line {line_of(narrative, 'outptu')}" in shown
        assert "unknown fact 'outptu'" in shown
        assert "Today there are" not in shown  # no stale edition under the error
        # Broken worse: Jinja's syntax, on another line.
        edit(narrative, "{% block overview %}", "{% block overview %}{{ fact( }}")
        where = f"templates/brief/narrative.en.html.j2 line {line_of(narrative, 'fact( }}')}"
        shown = wait_for(page, lambda t: where in t, "the syntax error")
        assert "unknown fact" not in shown and "expected" in shown
        # Fixed: the edition is back.
        edit(narrative, "{% block overview %}{{ fact( }}", "{% block overview %}")
        edit(narrative, 'fact("outptu")', 'fact("output")')
        shown = wait_for(page, lambda t: "Today there are more than 640 companies" in t, "the edition, recovered")
        assert "could not be rendered" not in shown and "Headline figures" in shown
        page.close()
    assert proc.returncode == 0, proc.stderr.read()
    # The only console errors: the browser noting that the error page came with status 500.
    assert [e for e in errors if "status of 500" not in e] == []


def test_pdf_shows_the_pages_as_images(tmp_path: Path, chromium) -> None:
    config = make_project(tmp_path, [report_block("brief", schedule=None)])
    with preview(config, "brief", "--lang", "ru", "--date", "2025-11-05", "--pdf") as (url, proc):
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.goto(url)
        page.wait_for_function("document.images.length > 0 && [...document.images].every(i => i.complete)",
                               timeout=DEADLINE * 1000)
        images = page.evaluate("[...document.images].map(i => [i.naturalWidth, i.naturalHeight, i.alt])")
        assert len(images) >= 2 and images[0][2] == f"Page 1 of {len(images)}"
        # A4 at 80 dpi, upright.
        assert all(abs(width - 662) <= 2 and abs(height - 936) <= 2 for width, height, _ in images), images
        page.close()
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=15) == 0
        stderr = proc.stderr.read()
    assert "Traceback" not in stderr and "stopping" in stderr
    assert errors == []


def test_a_mistake_in_the_command_is_one_line(tmp_path: Path) -> None:
    config = make_project(tmp_path, [report_block("brief", schedule=None)])
    unknown = run_cli("--config", str(config), "preview", "nope", "--port", "0")
    assert unknown.returncode == 1 and unknown.stderr.strip() == f"error: {config}: no report 'nope' (known: brief)"
    language = run_cli("--config", str(config), "preview", "brief", "--lang", "de", "--port", "0")
    assert language.returncode == 1 and language.stderr.strip() == (
        f"error: {config}:reports.brief.languages: 'de' is not one of this report's languages (ru, en)")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli("--config", str(config), "preview", "brief", "--port", str(port))
    assert busy.returncode == 1 and busy.stderr.strip() == (
        f"error: 127.0.0.1:{port}: in use; choose another port with --port (0: any free port)")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8")


def test_a_config_that_does_not_load_is_shown_and_waited_for(tmp_path: Path) -> None:
    config = make_project(tmp_path, [report_block("brief", schedule=None, languages='["en"]', formats='["html"]')])
    good = config.read_text(encoding="utf-8")
    config.write_text(good.replace("[reports.brief]", "[reports.brief"), encoding="utf-8")
    with preview(config, "brief") as (url, proc):
        status, page = _get(url)
        assert status == 500 and "reports.toml" in page and "not valid TOML" in page
        config.write_text(good, encoding="utf-8")
        deadline = time.monotonic() + DEADLINE
        while (status := _get(url)[0]) != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status == 200
        page = _get(url)[1]
        assert "Trade review: a test brief" in page and "could not be rendered" not in page
        # Only this machine's names: a page elsewhere that rebinds its own name to 127.0.0.1 gets nothing.
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/", headers={"Host": f"rebound.example:{port}"})
        refused = connection.getresponse()
        assert refused.status == 403 and b"Trade review" not in refused.read()
        connection.close()
        assert _get(url.replace("127.0.0.1", "localhost"))[0] == 200
