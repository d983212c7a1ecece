"""``reporter deploy systemd|cron``: a unit or a crontab line for this installation and project.

Both are filled with real paths, so nothing is left to adjust by hand: the absolute path of the
``reporter`` being run, the project's ``reports.toml``, the user, the secrets file read with
``--env-file`` (checked by reporter itself at every start, under systemd and cron alike), and,
for cron, a log file in the user's home written with ``--log-file``, so that no shell
redirection can fail before reporter starts.

Along with the text come warnings about what would fail at run time as that user: an
executable, an interpreter or a package it cannot reach (a venv built by root with a Python
under ``/root``), a project it cannot write, a secrets file it cannot use. Permissions are
judged from owners and mode bits; ACLs are not read.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .config import Project
from .envfile import check as check_env_file
from .errors import Problem, ReporterError

UNIT_NAME = "reporter.service"
STOP_MARGIN = 15  # seconds beyond --stop-timeout before systemd kills what is left


@dataclass(frozen=True)
class Target:
    """What a unit or a crontab line runs: which reporter, for which project, as whom."""

    command: tuple[str, ...]  # the executable, or python -m reporter
    project: Project
    user: pwd.struct_passwd
    env_file: Path

    @property
    def folder(self) -> Path:
        return self.project.path.parent

    def argv(self, *options: str) -> list[str]:
        return [*self.command, "--config", str(self.project.path), "--env-file", str(self.env_file), *options]


def executable() -> tuple[str, ...]:
    """This installation's reporter, as an absolute path a service can run.

    The console script beside the running interpreter (a venv's ``bin/``) is preferred; run as
    ``python -m reporter``, it is that. Symlinks are kept, not resolved: a venv's ``bin/python``
    is the path that selects the venv.
    """
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "reporter" and argv0.is_file():
        return (os.path.abspath(argv0),)
    beside = Path(sys.executable).parent / "reporter"
    if (argv0 is None or argv0.name != "__main__.py") and beside.is_file():
        return (os.path.abspath(beside),)
    return (os.path.abspath(sys.executable), "-m", "reporter")


def user_named(name: str | None) -> pwd.struct_passwd:
    """The account ``name``, or the one running this command; one clear error if there is none."""
    try:
        return pwd.getpwnam(name) if name else pwd.getpwuid(os.geteuid())
    except KeyError:
        raise ReporterError([Problem("--user", "", f"no user {name!r} on this machine: create it first "
                                     f"(useradd --system --create-home {name})")]) from None


def default_env_file(user: pwd.struct_passwd) -> Path:
    return Path(user.pw_dir) / ".config" / "reporter" / "smtp.env"


def default_log_file(user: pwd.struct_passwd) -> Path:
    return Path(user.pw_dir) / ".local" / "state" / "reporter" / "reporter.log"


def _group_name(user: pwd.struct_passwd) -> str:
    import grp  # noqa: PLC0415

    try:
        return grp.getgrgid(user.pw_gid).gr_name
    except KeyError:
        return str(user.pw_gid)


# --- the files ---------------------------------------------------------------------------

def _unit_word(word: str) -> str:
    """One word of a unit's ExecStart=: specifiers and variables escaped, quoted if it has to be."""
    word = word.replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(target: Target, *, workers: int | None = None, stop_timeout: float = 30.0) -> str:
    """A unit for ``reporter run``: logs to the journal, stops gracefully, restarts after a failure."""
    run = ["run", "--stop-timeout", f"{stop_timeout:g}"] + (["--workers", str(workers)] if workers else [])
    exec_start = " ".join(_unit_word(w) for w in target.argv(*run))
    folder = str(target.folder).replace("%", "%%")
    user = target.user.pw_name
    return f"""\
# {UNIT_NAME}: made by `reporter deploy systemd` (reporter {__version__}) for {target.project.path}
# Install it as root:
#   cp {UNIT_NAME} /etc/systemd/system/ && systemctl daemon-reload && systemctl enable --now reporter
# Logs: journalctl -u reporter. The SMTP settings are KEY=VALUE lines in {target.env_file},
# owned by {user} with mode 0600: reporter refuses to start without it, with one line in the journal.
[Unit]
Description=reporter: scheduled briefings of {folder}
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={_group_name(target.user)}
WorkingDirectory={folder}
ExecStart={exec_start}
# SIGTERM to the main process only: it lets a render in progress finish within --stop-timeout,
# then stops its workers itself. systemd steps in only if that takes {STOP_MARGIN} s longer.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec={stop_timeout + STOP_MARGIN:g}
Restart=on-failure
RestartSec=10
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
"""


def _cron_word(word: str) -> str:
    # cron turns an unescaped % into a new line before the shell sees the command.
    return shlex.quote(word).replace("%", "\\%")


def crontab(target: Target, log_file: Path, *, workers: int | None = None) -> str:
    """A crontab for ``reporter run-due`` every minute, with comments saying how to install it."""
    user = target.user.pw_name
    options = ["--log-file", str(log_file), "run-due"] + (["--workers", str(workers)] if workers else [])
    command = " ".join(_cron_word(w) for w in target.argv(*options))
    return f"""\
# reporter: every minute, render and deliver what fell due for {target.project.path}, then exit.
# Made by `reporter deploy cron` (reporter {__version__}). Install it as root into {user}'s crontab:
#   reporter deploy cron --user {user} | crontab -u {user} -     (this replaces {user}'s crontab)
# or add the lines below with `crontab -u {user} -e`. The log: {log_file}
# The SMTP settings are KEY=VALUE lines in {target.env_file}, owned by {user} with mode 0600.
# Cron mails what the command prints (each slot's outcome, and any error) to MAILTO, if this
# machine can send mail; set it to a mailbox that someone reads:
# MAILTO=ops@example.org
* * * * * {command}
"""


# --- what would fail as that user -----------------------------------------------------------

def _may(user: pwd.struct_passwd, path: Path, need: str) -> bool:
    """Whether ``user`` has the ``need`` permissions (letters of "rwx") on ``path``, by its mode bits."""
    info = path.stat()
    wanted = ("r" in need) * 4 | ("w" in need) * 2 | ("x" in need) * 1
    if user.pw_uid == 0:  # root passes every check except running a file no one may run
        return not ("x" in need and stat.S_ISREG(info.st_mode) and not info.st_mode & 0o111)
    if info.st_uid == user.pw_uid:
        bits = info.st_mode >> 6
    elif info.st_gid in os.getgrouplist(user.pw_name, user.pw_gid):
        bits = info.st_mode >> 3
    else:
        bits = info.st_mode
    return bits & wanted == wanted


def _barrier(user: pwd.struct_passwd, path: Path, need: str) -> str | None:
    """Why ``user`` cannot use ``path`` as ``need`` says, or None; checked along the written path
    and along the real one, since a venv's python is a symlink into the Python it was made with."""
    for candidate in dict.fromkeys((Path(os.path.abspath(path)), path.resolve())):
        for folder in reversed(candidate.parents):
            if not _may(user, folder, "x"):
                return f"cannot enter {folder}" + (f" (on the way to {candidate})" if candidate != path else "")
        if not candidate.exists():
            return f"{candidate} does not exist"
        if not _may(user, candidate, need):
            mode = stat.S_IMODE(candidate.stat().st_mode)
            return f"may not {'read' if need == 'r' else 'write' if 'w' in need else 'run'} {candidate} (mode {mode:04o})"
    return None


def _interpreter(script: Path) -> Path | None:
    try:
        with script.open("rb") as handle:
            first = handle.readline(512)
    except OSError:
        return None
    if first.startswith(b"#!"):
        words = first[2:].decode(errors="replace").split()
        return Path(words[0]) if words else None
    return None


def _writable_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def warnings(target: Target, log_file: Path | None = None) -> list[str]:
    """What would fail when ``target.user`` runs ``target``: each as a sentence with its remedy."""
    user = target.user.pw_name
    found = []
    if target.user.pw_uid == 0:
        found.append("this runs reporter as root: pass --user with the account that owns the project")
    import reporter  # noqa: PLC0415 - where this installation's package lives

    program = Path(target.command[0])
    as_module = bool(target.command[1:])  # python -m reporter: the interpreter is the program
    needs = [(program, "x" if as_module else "rx")]
    interpreter = None if as_module else _interpreter(program)
    if interpreter:
        needs.append((interpreter, "x"))
    needs.append((Path(reporter.__file__).parent, "rx"))
    for path, need in needs:
        why = _barrier(target.user, path, need)
        if why:
            found.append(f"{user} cannot run {program}: it {why}. Install reporter into a venv that {user} owns, "
                         f"made with /usr/bin/python3 -m venv (README, Deploy)")
            break
    why = _barrier(target.user, target.project.path, "r")
    if why:
        found.append(f"{user} cannot read the project's {target.project.path}: it {why}")
    writes = {"output": target.project.output_dir, "state": target.project.state_path.parent}
    if log_file:
        writes["log"] = log_file.parent
    for what, folder in writes.items():
        why = _barrier(target.user, _writable_ancestor(folder), "wx")
        if why:
            found.append(f"{user} cannot write its {what} folder {folder}: it {why}; chown -R {user} {folder}")
    env = target.env_file
    if not env.exists():
        found.append(f"the secrets file {env} does not exist yet: create it with "
                     f"`install -D -m 600 -o {user} -g {_group_name(target.user)} /dev/null {env}`, then write "
                     "REPORTER_SMTP_URL=... and REPORTER_SMTP_PASSWORD=... lines into it")
    else:
        found += [f"the secrets file {env} {problem}" for problem in check_env_file(env, target.user.pw_uid)]
        why = _barrier(target.user, env, "r")
        if why:
            found.append(f"{user} cannot read the secrets file {env}: it {why}; chown {user} {env}")
    return found
