"""The README's "Deploy", done on this machine (issue 12): the wheel built in a clone, installed
into a fresh venv outside the repository by an unprivileged account that owns it, a project made
with ``reporter init``, a unit and a crontab line made by ``reporter deploy``, and that crontab
line run the way cron runs it.

The README's commands run as written, in its order, with only what the table below says changed:
the account is ``reporter-ci`` with its home in /var/lib/reporter-ci instead of ``reporter`` in
/srv/briefs, and a few root steps that cannot happen in a test are checked another way. The
account's commands run in its login shell (``runuser -l``), with nothing of this checkout or of
root's environment: pip fetches the dependencies from PyPI. The account's pip cache is kept
between runs, but on this machine pip stores nothing in it (the responses it gets are not
cacheable), so every run downloads them again: about 20 to 30 s of the module's minute.

One installation serves the module; a lock keeps two test runs from sharing the account's home
at once. The time of each step is printed (``pytest -s`` shows it).
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from accounts import CI_HOME, CI_USER, USERADD, as_user, ci_user, login_shell
from conftest import ROOT
from pdf_reading import text
from readme import README, Command, blocks
from reporter import __version__
from test_deliver import Recorder, smtp_server

pytestmark = pytest.mark.slow
SLOT_NOW = "2025-11-03T08:00:20+00:00"  # a Monday, 20 s after 08:00 UTC: the slot `0 8 * * 1` is due
WHEEL = f"reporter-{__version__}-py3-none-any.whl"

# What the README's Deploy commands become here (each by its opening words), and why.
ROOT_STEPS = {
    "apt-get update && apt-get install": "not run: the set-up installs these; the test checks each is a package installed here",
    "useradd": "run by accounts.ci_user, with the same options for reporter-ci in /var/lib/reporter-ci",
    "cp dist/": "run as written, into the account's home",
    "runuser -l reporter": "the account's blocks run in `runuser -l reporter-ci -c ...`, a login shell",
    "cp /srv/briefs/reporter.service /etc/systemd/system/": "not run: systemd is not PID 1 in this container; "
                                                          "the unit goes through systemd-analyze verify instead",
    "journalctl": "not run, as above",
}
INSTEAD = {"| crontab -": "> ~/crontab"}  # cron is not installed here: what it would get is kept in a file


def _for_this_machine(command: str) -> str:
    return command.replace("/srv/briefs", str(CI_HOME))


def _deploy_blocks() -> list[list[Command]]:
    found = blocks("Deploy")
    assert len(found) == 6, [b[0].text for b in found]
    return found


@dataclass
class Deployment:
    user: pwd.struct_passwd
    wheel: Path
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return Path(self.user.pw_dir)

    def shell(self, script: str, step: str | None = None) -> subprocess.CompletedProcess:
        start = time.perf_counter()
        done = login_shell(self.user, script)
        if step:
            self.seconds[step] = time.perf_counter() - start
        return done


def _clear_home(home: Path) -> None:
    # Everything but pip's cache, which spares later runs the download.
    for entry in home.iterdir():
        if entry.name != ".cache":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployment]:
    """Steps 1 to 3 of the README's Deploy: the wheel, root's part, the account's part."""
    user = ci_user()
    assert user.pw_dir == str(CI_HOME)
    lock = open(Path("/run/lock" if Path("/run/lock").is_dir() else "/tmp") / "reporter-ci.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    build, account, *_ = _deploy_blocks()[:3]
    clone = Path(tempfile.mkdtemp(prefix="reporter-clone-", dir="/var/tmp"))
    try:
        _clear_home(CI_HOME)
        seconds: dict[str, float] = {}
        # 1. In a clone after `make test`: its sources and its .venv (this one).
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, clone / name)
        shutil.copytree(ROOT / "reporter", clone / "reporter", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo"))
        (clone / ".venv").symlink_to(sys.prefix)
        start = time.perf_counter()
        for command in build:
            built = subprocess.run(["sh", "-c", command.text], cwd=clone, capture_output=True, text=True, timeout=600)
            assert built.returncode == 0, f"{command}\n{built.stderr}"
        seconds["1. build the wheel"] = time.perf_counter() - start
        wheel = clone / "dist" / WHEEL
        assert wheel.is_file(), sorted(p.name for p in (clone / "dist").iterdir())
        # 2. Root's part.
        for command in account:
            what = next((why for start_, why in ROOT_STEPS.items() if command.text.startswith(start_)), None)
            assert what, f"{command}: not in ROOT_STEPS"
            if command.text.startswith("apt-get update"):
                for package in [w for w in command.text.split("apt-get install", 1)[1].split() if not w.startswith("-")]:
                    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
                    assert status.stdout == "install ok installed", f"{command}: {package}"
            elif command.text.startswith("useradd"):
                assert _for_this_machine(command.text).replace(" reporter", f" {CI_USER}").split() == USERADD
            elif command.text.startswith("cp dist/"):
                copied = subprocess.run(["sh", "-c", _for_this_machine(command.text)], cwd=clone, capture_output=True, text=True)
                assert copied.returncode == 0, copied.stderr
        deployment = Deployment(user, wheel, seconds)
        # 3. The account's part, its commands in one login shell as written.
        script = "set -ex\n" + "\n".join(command.text for command in _deploy_blocks()[2])
        done = deployment.shell(script, "3. venv, pip install, init, new, render")
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        yield deployment
        print("\ndeployment times: " + ", ".join(f"{step} {s:.1f} s" for step, s in deployment.seconds.items()))
    finally:
        shutil.rmtree(clone, ignore_errors=True)
        _clear_home(CI_HOME)
        lock.close()


def test_every_deploy_command_in_the_readme_is_run_or_accounted_for() -> None:
    build, root, account, unit, unit_root, cron = _deploy_blocks()
    assert [c.text for c in build] == [".venv/bin/pip wheel --no-deps -w dist ."]
    for command in root + unit_root:
        assert any(command.text.startswith(start) for start in ROOT_STEPS), f"{command}: not in ROOT_STEPS"
    assert all(c.text.startswith("~/venv/bin/reporter deploy") for c in unit + cron)
    assert any(old in cron[0].text for old in INSTEAD)
    # The wheel the README copies and installs is this version's.
    assert any(f"dist/{WHEEL}" in c.text for c in root) and any(f"~/{WHEEL}" in c.text for c in account)


# --- the wheel and the venv ----------------------------------------------------------------------


def test_the_wheel_carries_the_package_its_theme_and_its_version(deployed: Deployment) -> None:
    names = set(zipfile.ZipFile(deployed.wheel).namelist())
    source = {str(p.relative_to(ROOT)) for p in (ROOT / "reporter").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".mo")}
    assert source - names == set()  # every module, and the layout, CSS, fonts, licence and catalogues
    assert {"reporter/theme/fonts/LICENSE-ParaType.txt", "reporter/theme/fonts/PTSerif-Regular.ttf",
            "reporter/theme/brief.html.j2", "reporter/theme/locale/ru/LC_MESSAGES/messages.po"} <= names
    metadata = zipfile.ZipFile(deployed.wheel).read(f"reporter-{__version__}.dist-info/METADATA").decode()
    assert f"\nVersion: {__version__}\n" in metadata
    entry_points = zipfile.ZipFile(deployed.wheel).read(f"reporter-{__version__}.dist-info/entry_points.txt").decode()
    assert "reporter = reporter.cli:main" in entry_points


def test_the_venv_is_the_accounts_own_and_runs_the_systems_python(deployed: Deployment) -> None:
    venv = deployed.home / "venv"
    assert all(p.stat().st_uid == deployed.user.pw_uid for p in (venv, venv / "bin" / "reporter", venv / "pyvenv.cfg"))
    assert (venv / "bin" / "python").resolve() == Path("/usr/bin/python3").resolve()
    where = deployed.shell("~/venv/bin/python -c 'import reporter; print(reporter.__file__)'")
    assert where.stdout.strip().startswith(f"{venv}/lib/python3")
    versions = deployed.shell("~/venv/bin/reporter -V")
    assert versions.returncode == 0, versions.stderr
    lines = versions.stdout.splitlines()
    assert lines[0] == f"reporter {__version__}" and lines[1].startswith("WeasyPrint ")
    assert lines[2].startswith("Pango ") and re.fullmatch(rf"Python 3\.\d+\.\d+ \({venv}/bin/python3?\)", lines[3])


def test_the_readmes_project_rendered_today(deployed: Deployment) -> None:
    # `new` gives the report UTC; the render ran in the fixture, so today may have just turned.
    today = datetime.now(timezone.utc).date()
    editions = [deployed.home / "desk" / "output" / "brief" / day.isoformat() for day in (today, today - timedelta(days=1))]
    edition = next((folder for folder in editions if folder.is_dir()), editions[0])
    assert sorted(p.name for p in edition.iterdir()) == ["brief.en.html", "brief.en.pdf", "brief.ru.html", "brief.ru.pdf",
                                                         "manifest.json"]
    secrets = deployed.home / ".config" / "reporter" / "smtp.env"
    assert secrets.stat().st_mode & 0o777 == 0o600 and secrets.stat().st_uid == deployed.user.pw_uid


def test_init_new_render_writes_both_languages_with_the_packaged_fonts(deployed: Deployment) -> None:
    # The words, in the account's shell with the venv activated.
    made = deployed.shell(". ~/venv/bin/activate && reporter init ~/briefs && cd ~/briefs && reporter new brief && "
                          "reporter render brief --date 2025-11-05", "init, new, render")
    assert made.returncode == 0, made.stderr
    project = deployed.home / "briefs"
    assert sorted(p.name for p in project.iterdir()) == [".gitignore", "data", "output", "reports.toml", "state", "templates"]
    assert "/output/" in (project / ".gitignore").read_text() and "/state/" in (project / ".gitignore").read_text()
    edition = project / "output" / "brief" / "2025-11-05"
    assert sorted(p.name for p in edition.iterdir()) == ["brief.en.html", "brief.en.pdf", "brief.ru.html", "brief.ru.pdf",
                                                         "manifest.json"]
    ru, en = text(edition / "brief.ru.pdf"), text(edition / "brief.en.pdf")
    assert "более 1 250 единиц" in ru and "Динамика" in ru
    assert "more than 1,250 items" in en and "The trend" in en
    for pdf in ("brief.ru.pdf", "brief.en.pdf"):
        fonts = subprocess.run(["pdffonts", str(edition / pdf)], capture_output=True, text=True, check=True).stdout
        rows = [line.split() for line in fonts.splitlines()[2:] if line.strip()]
        assert rows and all(re.fullmatch(r"[A-Z]{6}\+PT-(Serif|Sans)(-\w+)?", row[0]) for row in rows), fonts
        assert all(row[-5] == "yes" for row in rows), fonts  # embedded


# --- 4. the unit, and the crontab line run as cron runs it --------------------------------------


def test_the_readmes_unit_passes_systemd_analyze_verify(deployed: Deployment, tmp_path: Path) -> None:
    unit_block = _deploy_blocks()[3]
    made = deployed.shell("cd ~/desk && " + "\n".join(c.text for c in unit_block))
    assert made.returncode == 0 and made.stderr == "", made.stderr  # nothing the account could not run or write
    unit = (deployed.home / "reporter.service").read_text(encoding="utf-8")
    home = deployed.home
    assert (f"ExecStart={home}/venv/bin/reporter --config {home}/desk/reports.toml "
            f"--env-file {home}/.config/reporter/smtp.env run --stop-timeout 30\n") in unit
    assert f"\nUser={CI_USER}\n" in unit and f"\nWorkingDirectory={home}/desk\n" in unit
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    copy = tmp_path / "reporter.service"
    copy.write_text(unit, encoding="utf-8")
    verified = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    assert (verified.returncode, verified.stderr) == (0, "")


def _schedule_and_mail(config: Path) -> None:
    """What a desk edits first in the report `new` wrote: a schedule, a recipient, a sender."""
    text_ = config.read_text(encoding="utf-8")
    assert '# schedule = "0 8 * * 1"' in text_
    text_ = text_.replace('# schedule = "0 8 * * 1"', 'schedule = "0 8 * * 1"')
    text_ += ('\n[[reports.brief.recipients]]\nemail = "desk@example.org"\nlang = "en"\n'
              '\n[email]\nfrom = "Reporter <briefings@example.org>"\n')
    config.write_text(text_, encoding="utf-8")


def test_the_crontab_line_renders_delivers_and_logs_when_run_as_cron_runs_it(deployed: Deployment) -> None:
    home, user = deployed.home, deployed.user
    project = home / "desk"
    cron_block = _deploy_blocks()[5]
    script = "\n".join(c.text for c in cron_block)
    for old, new in INSTEAD.items():
        script = script.replace(old, new)
    made = deployed.shell("cd ~/desk && " + script)
    assert made.returncode == 0 and made.stderr == "", made.stderr
    crontab = (home / "crontab").read_text(encoding="utf-8")
    entries = [line for line in crontab.splitlines() if line and not line.startswith("#")]
    assert len(entries) == 1
    # The README shows the line for /srv/briefs: this is it, for this account's home.
    shown = next(line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("* * * * * /srv/briefs/"))
    assert entries[0] == _for_this_machine(shown)
    assert f"crontab -u {CI_USER} -" in crontab and "# MAILTO=" in crontab

    handler = Recorder()
    with smtp_server(handler) as controller:
        _schedule_and_mail(project / "reports.toml")
        secrets = home / ".config" / "reporter" / "smtp.env"
        # Written into the file the README made, which keeps its owner and mode 0600.
        secrets.write_text(f"# the mail server\nREPORTER_SMTP_URL=smtp://127.0.0.1:{controller.port}\n", encoding="utf-8")
        # What cron does with the line: it cuts the five time fields, turns `\%` into `%`, and
        # runs the rest with /bin/sh as the user, in /, with only HOME, LOGNAME, SHELL and PATH.
        # REPORTER_NOW is the test's clock, placing the Monday 08:00 slot; the line does not name it.
        command = entries[0].split(None, 5)[5].replace("\\%", "%")
        cron_env = {"HOME": user.pw_dir, "LOGNAME": user.pw_name, "SHELL": "/bin/sh", "PATH": "/usr/bin:/bin"}

        def as_cron(now: str) -> subprocess.CompletedProcess:
            return as_user(user, ["/bin/sh", "-c", command], env={**cron_env, "REPORTER_NOW": now}, cwd="/")

        start = time.perf_counter()
        ran = as_cron(SLOT_NOW)
        deployed.seconds["4. the crontab line, as cron"] = time.perf_counter() - start
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert (ran.stdout, ran.stderr) == ("brief 2025-11-03T08:00 ok\n", "")
        again = as_cron("2025-11-03T08:00:50+00:00")
        assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    edition = project / "output" / "brief" / "2025-11-03"
    assert sorted(p.name for p in edition.iterdir()) == ["brief.en.html", "brief.en.pdf", "brief.ru.html",
                                                         "brief.ru.pdf", "deliveries.json", "manifest.json"]
    assert list(handler.parsed()) == ["desk@example.org"]
    log_file = home / ".local" / "state" / "reporter" / "reporter.log"
    logged = log_file.read_text(encoding="utf-8")
    assert "brief slot 2025-11-03T08:00 (UTC): rendering the edition of 2025-11-03" in logged
    assert re.search(r"brief slot 2025-11-03T08:00: ok in [\d.]+ s, 4 files", logged)
    assert f"wrote {edition / 'brief.ru.pdf'}" in logged  # from the render worker
    assert logged.rstrip().endswith("nothing due")

    # The secrets file is checked at every start: loosened, the line fails in one logged line.
    os.chmod(secrets, 0o644)
    try:
        refused = as_user(user, ["/bin/sh", "-c", command], env={**cron_env, "REPORTER_NOW": "2025-11-10T08:00:20+00:00"},
                          cwd="/")
    finally:
        os.chmod(secrets, 0o600)  # as the README made it: the other tests of this account read it, in any order
    assert refused.returncode == 1
    assert refused.stderr == f"error: {secrets}: can be read or written by others (mode 0644): it holds secrets; chmod 600 {secrets}\n"
    assert log_file.read_text(encoding="utf-8").rstrip().endswith(f"chmod 600 {secrets}")
    assert not (project / "output" / "brief" / "2025-11-10").exists()
