"""Live preview: ``reporter preview REPORT`` serves one edition on 127.0.0.1 and re-renders it on change.

A watcher thread polls the modification times of everything the edition is made from (the config,
the report's datasets, the templates folder, the project's catalogues, the theme); when one
changes it renders again, in memory, exactly as ``reporter render`` would, and writes nothing.
Each result gets a version number; the page carries a small script that polls ``/version`` and
reloads when it changes. A render that fails with a :class:`ReporterError` becomes a page that
lists every problem (file, place, message), so a broken edit shows at once and the edition comes
back as soon as the file is fixed. With ``pdf=True`` the PDF is laid out and each page shown as a
PNG (``pdftoppm`` from poppler-utils), because the PDF is what readers get.

Polling, not inotify: it needs no dependency, works on every file system, and a project has at most
a few hundred files to stat a few times a second.
"""

from __future__ import annotations

import errno
import hashlib
import html
import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from ..config import Project, Report, edition_date
from ..errors import Problem, ReporterError
from ..schedule.stopping import Stopping
from ..theme import THEME_DIR

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # how often the files are checked; also about how late a change shows
RESOLUTION = 80  # dots per inch of the PDF's page images: a page about 660 px wide
HOST = "127.0.0.1"

# Reloads the page when the preview has something new. A failed poll (the preview stopped) waits
# longer and tries again, so restarting `reporter preview` brings the page back by itself.
RELOAD_SCRIPT = """<script>
(function () {
  var shown = "%s";
  function poll() {
    fetch("/version", {cache: "no-store"}).then(function (reply) { return reply.text(); }).then(function (now) {
      if (now !== shown) { location.reload(); } else { setTimeout(poll, %d); }
    }, function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, %d);
})();
</script>"""


@dataclass(frozen=True)
class Shown:
    """What the preview serves: one render's page, and its page images for ``--pdf``."""

    version: int
    status: int  # 200; 500 for a page of problems
    page: bytes
    images: dict[str, bytes] = field(default_factory=dict)
    ok: bool = True
    key: str = ""  # a digest of what it shows, whatever its version: equal keys need no reload


def with_reload(document: str, version: int) -> str:
    """The page with the reload script added before ``</body>`` (or at the end, if it has none)."""
    poll = int(POLL_SECONDS * 1000 * 2)
    script = RELOAD_SCRIPT % (version, poll, poll)
    at = document.lower().rfind("</body>")
    return document[:at] + script + document[at:] if at >= 0 else document + script


def _page(title: str, body: str, lang: str = "en", style: str = "") -> str:
    return (f'<!DOCTYPE html>\n<html lang="{html.escape(lang)}">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>\n"
            'body { font-family: "PT Sans", "Helvetica Neue", Arial, sans-serif; color: #1d2b3a; margin: 0; '
            "padding: 1.5em 1.25em; line-height: 1.5; }\n"
            ".visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); }\n"
            f"{style}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _shown_path(path: str, root: Path | None) -> str:
    """A problem's file as the editor knows it: relative to the project, when it is inside."""
    if not path or root is None:
        return path
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return path


def error_page(problems: list[Problem], root: Path | None, what: str) -> str:
    """A page listing each problem: file, place (line, row, key) and message, all escaped."""
    items = []
    for problem in problems:
        where = html.escape(_shown_path(problem.file, root)) or "(no file)"
        place = f' <span class="place">{html.escape(problem.place)}</span>' if problem.place else ""
        items.append(f'<li><code class="file">{where}</code>{place}<p class="message">{html.escape(problem.message)}</p></li>')
    count = len(problems)
    body = (f'<main role="alert">\n<p class="kicker">Preview</p>\n<h1>{html.escape(what)} could not be rendered</h1>\n'
            f"<p>{count} problem{'s' if count != 1 else ''}. Fix {'them' if count != 1 else 'it'} and save: "
            "this page reloads by itself.</p>\n"
            f'<ul class="problems">\n' + "\n".join(items) + "\n</ul>\n</main>")
    style = (".kicker { text-transform: uppercase; letter-spacing: .12em; font-size: .8em; color: #b03f27; "
             "font-weight: bold; margin: 0; }\nh1 { font-size: 1.5em; margin: .2em 0 .5em; }\n"
             ".problems { list-style: none; padding: 0; }\n.problems li { border-left: 4px solid #b03f27; "
             "background: #fdf1ee; padding: .6em .9em; margin: 0 0 .8em; overflow-wrap: anywhere; }\n"
             ".file { font-weight: bold; }\n.place { color: #5f6b78; }\n.message { margin: .3em 0 0; white-space: pre-wrap; }\n")
    return _page(f"Preview: {what}: error", body, style=style)


def _digest(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8") if isinstance(part, str) else part)
    return digest.hexdigest()


def _png_size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk, always first
    return width, height


def pages_page(title: str, lang: str, version: int, images: dict[str, bytes]) -> str:
    """The PDF as a reader gets it: each page an image, in order, on a grey desk."""
    tags = []
    for number, name in enumerate(images, 1):
        width, height = _png_size(images[name])
        tags.append(f'<img src="/pages/{version}/{name}" width="{width}" height="{height}" '
                    f'alt="Page {number} of {len(images)}">')
    body = (f'<main>\n<h1 class="visually-hidden" lang="{html.escape(lang)}">{html.escape(title)}</h1>\n'
            + "\n".join(tags) + "\n</main>")
    style = ("body { background: #5f6b78; padding: 1em .5em; }\n"
             "img { display: block; max-width: 100%; height: auto; margin: 0 auto 1em; background: #fff; "
             "box-shadow: 0 1px 6px rgba(0, 0, 0, .4); }\n")
    return _page(f"{title} (PDF)", body, style=style)


def page_images(pdf: bytes, folder: Path, resolution: int = RESOLUTION) -> dict[str, bytes]:
    """Each page of the PDF as a PNG, by ``pdftoppm`` (poppler-utils), in page order."""
    if shutil.which("pdftoppm") is None:
        raise ReporterError([Problem("pdftoppm", "", "not found: --pdf shows pages with pdftoppm; "
                                     "install poppler-utils (apt-get install poppler-utils)")])
    for old in folder.glob("*"):
        old.unlink()
    source = folder / "edition.pdf"
    source.write_bytes(pdf)
    done = subprocess.run(["pdftoppm", "-r", str(resolution), "-png", str(source), str(folder / "page")],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise ReporterError([Problem("pdftoppm", "", f"could not draw the PDF's pages: {done.stderr.strip()}")])
    # pdftoppm pads the page number to the width of the last one: page-1.png or page-01.png.
    found = sorted(folder.glob("page-*.png"), key=lambda p: int(re.sub(r"\D", "", p.stem)))
    return {f"{index}.png": path.read_bytes() for index, path in enumerate(found, 1)}


class Preview:
    """One report's edition, rendered on demand, with the files it is made from."""

    def __init__(self, config_file: Path, report_id: str, lang: str | None, day: date | None, pdf: bool,
                 clock: Callable[[], datetime]) -> None:
        self.config_file = config_file.resolve()
        self.report_id = report_id
        self.lang = lang
        self.day = day
        self.pdf = pdf
        self.clock = clock
        self.project: Project | None = None  # the last that loaded, for what to watch while broken
        self._scratch = Path(tempfile.mkdtemp(prefix="reporter-preview-"))

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)

    # --- what to watch ------------------------------------------------------------------

    def inputs(self) -> list[Path]:
        """Every file the edition may read: the config, the report's datasets, the templates folder,
        the project's catalogues, and the theme (its layout, CSS, fonts and catalogues)."""
        files = [self.config_file]
        project = self.project
        folders = [THEME_DIR]
        if project is not None:
            report = project.reports.get(self.report_id)
            datasets = report.datasets if report else ()
            folders += [project.data_dir / name for name in datasets]
            folders += [project.templates_dir] + ([project.locale_dir] if project.locale_dir else [])
        for folder in folders:
            if folder.is_dir():
                for root, dirs, names in os.walk(folder):
                    dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
                    files += [Path(root, n) for n in names if not n.endswith((".py", ".pyc", ".mo"))]
        return files

    def snapshot(self) -> dict[Path, tuple[int, int, int]]:
        found = {}
        for path in self.inputs():
            try:
                stat = path.stat()
            except OSError:
                continue  # gone since it was listed: the next snapshot says so
            found[path] = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        return found

    # --- rendering ----------------------------------------------------------------------

    def _load(self) -> tuple[Project, Report, str, date]:
        from .. import config  # noqa: PLC0415

        project = config.load(self.config_file)
        self.project = project
        report = project.report(self.report_id)
        code = self.lang or report.languages[0]
        if code not in report.languages:
            raise ReporterError([Problem(str(project.path), f"reports.{report.id}.languages",
                                         f"{code!r} is not one of this report's languages ({', '.join(report.languages)})")])
        return project, report, code, self.day or edition_date(report, self.clock)

    def check(self) -> None:
        """Raise the :class:`ReporterError` of a preview that cannot even start: a report the
        config does not have, a language the report does not have. A config that does not load
        is not one of them: the page shows its problems, and the preview waits for the fix."""
        from ..errors import ConfigError  # noqa: PLC0415

        try:
            self._load()
        except ConfigError:
            if self.project is not None:  # it loaded: the report is what is missing
                raise

    def render(self, version: int) -> Shown:
        """Render the edition now; a user's mistake becomes a page of problems, never an exception."""
        from ..pipeline.build import artifact_name, draw_charts, edition_html, gather, language, load_datasets, roots  # noqa: PLC0415

        what = f"{self.report_id} ({self.lang or 'first language'}{', PDF' if self.pdf else ''})"
        try:
            project, report, code, day = self._load()
            what = f"The {code} {'PDF' if self.pdf else 'HTML'} edition of {report.id} for {day.isoformat()}"
            knowledge = gather(project, report, load_datasets(project, report))
            lang = language(project, code)
            drawn = draw_charts(project, report, knowledge, lang)
            document, _ctx = edition_html(project, report, day, lang, "pdf" if self.pdf else "html", knowledge, drawn)
            if not self.pdf:
                return Shown(version, 200, with_reload(document, version).encode("utf-8"), key=_digest(document))
            from ..pipeline.pdf import to_pdf  # noqa: PLC0415 - WeasyPrint, only for --pdf

            data = to_pdf(document, project.templates_dir, roots(project), artifact_name(report.id, code, "pdf"))
            images = page_images(data, self._scratch)
            page = pages_page(report.title.get(code, report.id), code, version, images)
            return Shown(version, 200, with_reload(page, version).encode("utf-8"), images,
                         key=_digest(*images.values()))
        except ReporterError as exc:
            root = self.project.root if self.project else self.config_file.parent
            page = error_page(exc.problems, root, what)
            return Shown(version, 500, with_reload(page, version).encode("utf-8"), ok=False, key=_digest(page))
        except Exception as exc:  # noqa: BLE001 - a bug: say so on the page, keep the traceback in the log
            log.error("preview: the render crashed:\n%s", traceback.format_exc())
            problem = Problem("", "", f"internal error (a bug in reporter, not in your files): {exc!r}; "
                                      "the traceback is in the terminal")
            page = error_page([problem], None, what)
            return Shown(version, 500, with_reload(page, version).encode("utf-8"), ok=False, key=_digest(page))


class Watcher:
    """Keeps a :class:`Preview` current: renders at start, then again whenever an input changes."""

    def __init__(self, preview: Preview, poll: float = POLL_SECONDS) -> None:
        self.preview = preview
        self.poll = poll
        self.shown: Shown | None = None
        self.previous: Shown | None = None  # for page images a page of the last version still asks for
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="preview-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def current(self, timeout: float = 300) -> Shown | None:
        self.ready.wait(timeout)
        with self._lock:
            return self.shown

    def image(self, version: int, name: str) -> bytes | None:
        with self._lock:
            for shown in (self.shown, self.previous):
                if shown is not None and shown.version == version and name in shown.images:
                    return shown.images[name]
        return None

    def _settled(self) -> dict[Path, tuple[int, int, int]]:
        # An editor may save in steps (truncate, write, rename); wait until the files hold still,
        # but not for ever, so a file that keeps changing still gets previewed.
        before = self.preview.snapshot()
        for _ in range(8):
            if self._stop.wait(0.05):
                break
            now = self.preview.snapshot()
            if now == before:
                break
            before = now
        return before

    def _render(self, before: dict[Path, tuple[int, int, int]]) -> dict[Path, tuple[int, int, int]]:
        """Render, show the result if it differs, and return the files' state to compare with next."""
        version = (self.shown.version if self.shown else 0) + 1
        start = time.perf_counter()
        result = self.preview.render(version)
        with self._lock:
            if self.shown is not None and result.key == self.shown.key:
                log.debug("preview: rendered again, nothing changed")
            else:
                self.previous, self.shown = self.shown, result
                log.info("preview: %s (version %d, %.1f s)", "rendered" if result.ok else
                         "the render failed: the page shows the problems", version, time.perf_counter() - start)
        self.ready.set()
        # Files already watched keep their state from before the render, so an edit saved while it
        # rendered is seen next time; files first watched now (the config it loaded names another
        # dataset) start as they are.
        seen = dict(before)
        for path, state in self.preview.snapshot().items():
            seen.setdefault(path, state)
        return seen

    def _loop(self) -> None:
        seen = self._render(self.preview.snapshot())
        while not self._stop.wait(self.poll):
            now = self.preview.snapshot()
            if now != seen:
                changed = sorted(str(p) for p in set(now) | set(seen) if now.get(p) != seen.get(p))
                root = self.preview.config_file.parent
                log.info("preview: changed: %s", ", ".join(_shown_path(p, root) for p in changed[:5])
                         + (f" and {len(changed) - 5} more" if len(changed) > 5 else ""))
                seen = self._render(self._settled())


def _handler(watcher: Watcher) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "reporter-preview"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
            log.debug("preview: %s " + format, self.address_string(), *args)

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            port = self.server.server_address[1]
            if self.headers.get("Host", "") not in (f"{HOST}:{port}", f"localhost:{port}"):
                # A web page elsewhere could point a name of its own at 127.0.0.1 (DNS rebinding)
                # and read the edition before it is published; only this machine's names may ask.
                self._send(403, b"this preview answers to 127.0.0.1 and localhost only", "text/plain; charset=utf-8")
                return
            path = self.path.split("?", 1)[0]
            if path == "/":
                shown = watcher.current()
                if shown is None:
                    self._send(503, b"still rendering", "text/plain; charset=utf-8")
                else:
                    self._send(shown.status, shown.page, "text/html; charset=utf-8")
            elif path == "/version":
                shown = watcher.current()
                self._send(200, str(shown.version if shown else 0).encode(), "text/plain; charset=utf-8")
            elif match := re.fullmatch(r"/pages/(\d+)/(\d+\.png)", path):
                data = watcher.image(int(match[1]), match[2])
                if data is None:
                    self._send(404, b"no such page", "text/plain; charset=utf-8")
                else:
                    self._send(200, data, "image/png")
            elif path == "/favicon.ico":
                self._send(204, b"", "image/x-icon")
            else:
                self._send(404, b"not found", "text/plain; charset=utf-8")

        do_HEAD = do_GET

    return Handler


class PreviewServer:
    """The preview's HTTP server on 127.0.0.1, and its watcher."""

    def __init__(self, preview: Preview, port: int) -> None:
        self.preview = preview
        self.watcher = Watcher(preview)
        try:
            self.httpd = ThreadingHTTPServer((HOST, port), _handler(self.watcher))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                message = "in use; choose another port with --port (0: any free port)"
            else:
                message = f"cannot listen there: {exc.strerror}"
            raise ReporterError([Problem(f"{HOST}:{port}", "", message)]) from None
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.httpd.server_address[1]}/"

    def serve(self, ready: Callable[[], object] = lambda: None) -> None:
        """Serve until SIGINT (Ctrl-C) or SIGTERM, then stop cleanly. ``ready`` announces the
        server once a Ctrl-C would stop it cleanly: a reader who presses it at once, or a
        supervisor that signals when it reads the announcement, must not get a traceback."""
        stopping = Stopping()

        def stop_serving() -> None:
            stopping.wait()  # on its own thread: only the serving thread must not wait on it
            if stopping.signal_name:
                log.info("preview: %s, stopping", stopping.reason)
            self.httpd.shutdown()  # waits for serve_forever() to return

        previous = stopping.install()
        stopper = threading.Thread(target=stop_serving, name="preview-stop", daemon=True)
        stopper.start()
        self.watcher.start()
        try:
            ready()
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            stopping.set()  # with the handlers back: no signal can now run set() inside this one
            self.watcher.stop()
            self.httpd.server_close()
            self.preview.close()
