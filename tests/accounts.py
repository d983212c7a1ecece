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
# The README's useradd line ("Deploy"), for this account and home.
USERADD = ["useradd", "--system", "--create-home", "--home-dir", str(CI_HOME), "--shell", "/bin/bash", CI_USER]


def ci_user() -> pwd.struct_passwd:
    """``reporter-ci``, a system account with its own home, created on first use."""
    if os.geteuid() != 0:
        pytest.fail(f"this test needs root: it creates the user {CI_USER} and runs reporter as that user, "
                    "as cron and systemd would (CI runs the suite as root)")
    try:
        user = pwd.getpwnam(CI_USER)
    except KeyError:
        made = subprocess.run(USERADD, capture_output=True, text=True)
        try:
            user = pwd.getpwnam(CI_USER)
        except KeyError:  # not made, not even by another test run at the same moment
            pytest.fail(f"useradd {CI_USER} failed: {made.stderr.strip()}")
    if user.pw_shell != "/bin/bash":  # made by an earlier version of this helper
        subprocess.run(["usermod", "--shell", "/bin/bash", CI_USER], check=True, capture_output=True)
        user = pwd.getpwnam(CI_USER)
    return user


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temp folder every account can enter (pytest's own sit in a folder only root may enter)."""
    folder = Path(tempfile.mkdtemp(prefix="reporter-test-", dir="/var/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def as_user(user: pwd.struct_passwd, argv: list[str], *, env: dict[str, str], cwd: Path | str = "/",
            timeout: float = 300) -> subprocess.CompletedProcess:
    """``argv`` run as ``user`` with exactly ``env`` (``env -i``), as cron or systemd would start it."""
    pairs = [f"{key}={value}" for key, value in env.items()]
    return subprocess.run(["runuser", "-u", user.pw_name, "--", "env", "-i", *pairs, *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def login_shell(user: pwd.struct_passwd, script: str, *, timeout: float = 600) -> subprocess.CompletedProcess:
    """``script`` in a login shell of ``user`` (``runuser -l``): its home, its shell, a fresh
    environment from /etc/profile and its own dotfiles, nothing of the caller's."""
    return subprocess.run(["runuser", "-l", user.pw_name, "-c", script], capture_output=True, text=True,
                          timeout=timeout, cwd="/")
