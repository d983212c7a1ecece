"""The unprivileged account the deployment tests run reporter as, as a service or cron would.

Creating it takes root. CI here runs as root; elsewhere these tests fail saying so, rather than
pass without having run reporter as anyone but its installer.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

CI_USER = "reporter-ci"
CI_HOME = Path("/var/lib/reporter-ci")


def ci_user() -> pwd.struct_passwd:
    """``reporter-ci``, a system account with its own home, created on first use."""
    if os.geteuid() != 0:
        pytest.fail(f"this test needs root: it creates the user {CI_USER} and runs reporter as that user, "
                    "as cron and systemd would (CI runs the suite as root)")
    try:
        return pwd.getpwnam(CI_USER)
    except KeyError:
        pass
    made = subprocess.run(["useradd", "--system", "--create-home", "--home-dir", str(CI_HOME), "--shell", "/bin/sh",
                           "--comment", "reporter's deployment tests", CI_USER], capture_output=True, text=True)
    try:
        return pwd.getpwnam(CI_USER)
    except KeyError:  # not made, not even by another test run at the same moment
        pytest.fail(f"useradd {CI_USER} failed: {made.stderr.strip()}")


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temp folder every account can enter (pytest's own sit in a folder only root may enter)."""
    folder = Path(tempfile.mkdtemp(prefix="reporter-test-", dir="/var/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def owned_folder(parent: Path, name: str, user: pwd.struct_passwd, mode: int = 0o755) -> Path:
    """A fresh folder ``parent/name`` belonging to ``user``."""
    folder = parent / name
    folder.mkdir(mode=mode)
    os.chown(folder, user.pw_uid, user.pw_gid)
    folder.chmod(mode)
    return folder


def as_user(user: pwd.struct_passwd, argv: list[str], *, env: dict[str, str], cwd: Path | str = "/",
            timeout: float = 300) -> subprocess.CompletedProcess:
    """``argv`` run as ``user`` with exactly ``env`` (``env -i``), as cron or systemd would start it."""
    pairs = [f"{key}={value}" for key, value in env.items()]
    return subprocess.run(["runuser", "-u", user.pw_name, "--", "env", "-i", *pairs, *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
