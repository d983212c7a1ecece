"""The secrets file (``--env-file``): ``KEY=VALUE`` lines read into the environment at start-up.

The same file serves the systemd unit and the crontab line, so reporter checks it itself rather
than leaving it to systemd's ``EnvironmentFile=`` (which cron does not have). The syntax is
systemd's: ``KEY=VALUE`` per line, blank lines and lines starting with ``#`` or ``;`` ignored,
a value optionally in single quotes (taken as written) or double quotes (``\\"``, ``\\\\``,
``\\n`` and ``\\$`` escaped). Errors name the file and the line, never a value: the values are
passwords.

The file must be a regular file owned by the user running reporter (or root), and readable by
its owner only (mode 0600 or stricter); anything else is refused before a value is read.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from .errors import Problem, ReporterError

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "$": "$", "`": "`"}


class EnvFileError(ReporterError):
    """The secrets file is missing, unsafe or malformed."""


def _owner(uid: int) -> str:
    import pwd  # noqa: PLC0415 - POSIX only, and only needed to word an error

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def check(path: Path, uid: int | None = None) -> list[str]:
    """What is wrong with ``path`` as a secrets file for user ``uid`` (default: this process's)."""
    uid = os.geteuid() if uid is None else uid
    try:
        info = path.stat()
    except FileNotFoundError:
        return [f"not found: create it with `install -m 600 /dev/null {path}`, then write KEY=VALUE lines into it"]
    except OSError as exc:
        return [f"cannot be read: {exc.strerror}"]
    problems = []
    if not stat.S_ISREG(info.st_mode):
        return ["is not a regular file"]
    if info.st_uid not in (uid, 0):
        problems.append(f"is owned by {_owner(info.st_uid)}, not by {_owner(uid)} who runs reporter (or root): "
                        f"chown {_owner(uid)} {path}")
    if info.st_mode & 0o077:
        problems.append(f"can be read or written by others (mode {stat.S_IMODE(info.st_mode):04o}): it holds "
                        f"secrets; chmod 600 {path}")
    return problems


def parse(text: str, name: str) -> dict[str, str]:
    """The variables of an environment file's text; :class:`EnvFileError` naming each bad line."""
    values: dict[str, str] = {}
    problems = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, rest = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            problems.append(Problem(name, f"line {number}", "drop `export`: systemd and reporter read this file, not a shell"))
            continue
        if not sep or not KEY.fullmatch(key):
            problems.append(Problem(name, f"line {number}", "expected KEY=VALUE (a name of letters, digits and _)"))
            continue
        value = _value(rest.strip())
        if value is None:
            problems.append(Problem(name, f"line {number}", f"{key}: the value's quote is not closed"))
            continue
        values[key] = value
    if problems:
        raise EnvFileError(problems)
    return values


def _value(text: str) -> str | None:
    if not text or text[0] not in "'\"":
        return text
    quote, out, index = text[0], [], 1
    while index < len(text):
        char = text[index]
        if char == quote:
            return "".join(out)
        if quote == '"' and char == "\\" and index + 1 < len(text):
            index += 1
            out.append(_ESCAPES.get(text[index], "\\" + text[index]))
        else:
            out.append(char)
        index += 1
    return None


def load(path: str | os.PathLike[str], environ: dict[str, str] | os._Environ = os.environ) -> list[str]:
    """Check ``path`` and set its variables in ``environ``, replacing inherited ones; return their names.

    The file wins over the inherited environment: it is this installation's configuration,
    while a stale variable in an administrator's shell is an accident.
    """
    path = Path(path).absolute()
    problems = check(path)
    if problems:
        raise EnvFileError([Problem(str(path), "", problem) for problem in problems])
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvFileError([Problem(str(path), "", f"cannot be read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise EnvFileError([Problem(str(path), "", "is not UTF-8 text")]) from None
    values = parse(text, str(path))
    environ.update(values)
    return list(values)
