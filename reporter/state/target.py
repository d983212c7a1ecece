"""Where the history lives, and who this process is in it.

By default the history is the SQLite file named by ``state`` in ``[project]``. The environment
variable ``REPORTER_STATE_URL`` overrides it, usually with a PostgreSQL database that several
hosts share (``postgresql://user@host:5432/db``; the password may be in the URL, or in
``PGPASSWORD`` or ``~/.pgpass``, which libpq reads itself). A password never reaches a message:
every place that shows the URL shows :attr:`StateTarget.shown`, and :func:`mask` takes it out of
a driver's error text too.

``REPORTER_NODE`` names this host in the history (``node:pid`` in every ``owner`` column); it
defaults to the host name. Hosts that share a state must have different names.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import quote, unquote

from ..errors import Problem, StateError

VARIABLE = "REPORTER_STATE_URL"
NODE_VARIABLE = "REPORTER_NODE"
_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg"}
_EXPECTED = "expected postgresql://user@host:5432/database (or sqlite:////absolute/path.sqlite)"


@dataclass(frozen=True)
class StateTarget:
    """A history's address: ``url`` may hold a password and is only ever given to the driver."""

    url: str
    shown: str  # the same, as it may be printed: the file's path, or the URL with its password masked
    where: str  # what an error message names first
    path: Path | None = None  # the SQLite file
    secrets: tuple[str, ...] = ()  # what mask() takes out of any text

    @property
    def postgres(self) -> bool:
        return self.path is None

    def mask(self, text: str) -> str:
        return mask(text, self.secrets)


def sqlite_target(path: Path) -> StateTarget:
    return StateTarget(f"sqlite:///{path}", str(path), str(path), path)


def state_target(state_path: Path, environ: Mapping[str, str] = os.environ) -> StateTarget:
    """The history of a project whose ``[project] state`` is ``state_path``, unless the environment says otherwise."""
    node()  # a bad REPORTER_NODE is found before anything is written under it
    raw = environ.get(VARIABLE, "").strip()
    if not raw:
        return sqlite_target(state_path)
    return parse_url(raw)


def parse_url(raw: str) -> StateTarget:
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - only commands that use the state pay for it
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

    secrets = _secrets_in(raw)
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        # Not shown: what cannot be parsed cannot be masked either, and it may hold a password.
        raise StateError([Problem(VARIABLE, "", f"not a database URL (not shown here, as it may hold a password); "
                                  f"{_EXPECTED}")]) from None
    scheme = url.drivername
    if scheme == "sqlite":
        if not url.database or url.database == ":memory:":
            raise StateError([Problem(VARIABLE, "", f"{mask(raw, secrets)!r} names no file; {_EXPECTED}")])
        path = Path(url.database).resolve()
        return StateTarget(f"sqlite:///{path}", str(path), str(path), path)
    if scheme not in _POSTGRES_SCHEMES:
        raise StateError([Problem(VARIABLE, "", f"the scheme {scheme + '://'!r} is not supported; {_EXPECTED}")])
    try:
        url = url.set(drivername="postgresql+psycopg")
        if url.port is not None and not 0 < url.port < 65536:
            raise ValueError
    except ValueError:
        raise StateError([Problem(VARIABLE, "", f"{mask(raw, secrets)!r}: the port is not a number from 1 to 65535")]) from None
    query = dict(url.query)
    if isinstance(query.get("password"), str):
        secrets += (query["password"],)
    secrets += tuple(p for p in (url.password,) if p)
    secrets = tuple(dict.fromkeys(s for s in secrets if s))
    shown = mask(url.set(drivername="postgresql").render_as_string(hide_password=True), secrets)
    return StateTarget(url.render_as_string(hide_password=False), shown, f"{VARIABLE} ({shown})", None, secrets)


def _secrets_in(raw: str) -> tuple[str, ...]:
    # What may be a password in the raw text, before it is even parsed: user:PASSWORD@ and password=.
    found = [m.group(1) for m in re.finditer(r"://[^:/@?#]*:([^@/?#]*)@", raw)]
    found += [m.group(1) for m in re.finditer(r"[?&]password=([^&#]*)", raw)]
    return tuple(dict.fromkeys(s for s in found if s))


def mask(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with each secret (as written, URL-quoted, or unquoted) replaced by ``***``."""
    for secret in secrets:
        for form in {secret, unquote(secret), quote(secret, safe=""), quote(unquote(secret), safe="")}:
            if form:
                text = text.replace(form, "***")
    return text


_node: str | None = None


def node() -> str:
    """This host's name in the history: ``REPORTER_NODE``, or the host name."""
    global _node
    name = os.environ.get(NODE_VARIABLE, "").strip()
    if not name:
        return socket.gethostname().replace("/", "-")  # '/' separates a thread in a sender's name
    if name != _node:
        if not _NODE.fullmatch(name):
            raise StateError([Problem(NODE_VARIABLE, "", f"{name!r} is not a node name: letters, digits, '.', '_' "
                                      "and '-', at most 63, starting with a letter or digit")])
        _node = name
    return name


def owner() -> str:
    """This process, as recorded against what it is doing (``node:pid``); forks get their own."""
    return f"{node()}:{os.getpid()}"


def check_writable(path: Path) -> None:
    """Raise :class:`StateError` unless the history at ``path`` and its folder can be written.

    SQLite opens a file it cannot write read-only without a word and fails only at the first
    write, which for ``reporter run`` is the first slot, hours later; a scheduler must find out
    at start-up. Root ignores permission bits, so this tries rather than asks ``os.access``.
    """
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError([Problem(str(path), "", f"cannot create its folder: {exc.strerror}")]) from None
    probe = None
    try:
        fd, probe = tempfile.mkstemp(prefix=".reporter-probe-", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"\0" * 4096)  # a page: an empty file would fit on a full disk
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            message = f"the state folder {folder} has no space left; free some, or set `state` in [project] to another place"
        else:
            message = (f"the state folder {folder} is not writable ({exc.strerror}); the history, its journal and the "
                       "scheduler lock live there: make it writable, or set `state` in [project] to a writable place")
        raise StateError([Problem(str(path), "", message)]) from None
    finally:
        if probe:
            Path(probe).unlink(missing_ok=True)
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.lock")):
        try:
            os.close(os.open(file, os.O_RDWR))
        except FileNotFoundError:
            continue
        except OSError as exc:
            hint = ("it is immutable or append-only (lsattr shows i or a): clear that with `chattr -i`"
                    if exc.errno == errno.EPERM else "make it writable")
            raise StateError([Problem(str(file), "", f"cannot be written ({exc.strerror}); {hint}")]) from None
