"""Running reporter as a deployment does (issue 12): the secrets file, the log file, `-V`,
`render --send`'s exit, `reporter deploy systemd|cron`, and shell completion.

The CLI runs as a subprocess. Files and accounts are real: the unit goes through
`systemd-analyze verify`, permissions are judged for the unprivileged account ``reporter-ci``
(tests/accounts.py). The whole round trip, a built wheel in a fresh venv run from cron's
environment as that account, is tests/test_install.py.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from accounts import CI_USER, ci_user, open_tmp  # noqa: F401 - open_tmp is a fixture
from conftest import EDITION, REPORT, ROOT, cli_env, run_cli, write_project
from projects import make_project, report_block
from reporter import __version__
from reporter.envfile import EnvFileError, parse
from servers import free_port
from test_deliver import Recorder, smtp_server

pytestmark = pytest.mark.slow
AT_SLOT = "2025-11-03T08:00:20+05:00"  # Monday 08:00:20 in Almaty, the report's slot just due
FAST = dict(languages='["en"]', formats='["html"]')  # no WeasyPrint: a render in well under a second


def _secrets(folder: Path, text: str, mode: int = 0o600) -> Path:
    path = folder / "smtp.env"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


# --- the secrets file ------------------------------------------------------------------------


def test_the_secrets_file_reads_systemd_syntax() -> None:
    text = """\
# the mail server
; also a comment

REPORTER_SMTP_URL=smtp+starttls://briefings@mail.example.org:587?x=1
  SPACED = a value with spaces   
DOUBLE="quoted \\"inside\\" with a \\\\ and $HOME"
SINGLE='taken as written: \\n $HOME "'
EMPTY=
"""
    assert parse(text, "smtp.env") == {
        "REPORTER_SMTP_URL": "smtp+starttls://briefings@mail.example.org:587?x=1",
        "SPACED": "a value with spaces",
        "DOUBLE": 'quoted "inside" with a \\ and $HOME',
        "SINGLE": 'taken as written: \\n $HOME "',
        "EMPTY": "",
    }


def test_a_bad_line_is_named_by_number_and_its_value_never_shown() -> None:
    text = 'OK=1\nexport REPORTER_SMTP_PASSWORD=hunter2-secret\nnot a pair hunter2-secret\nOPEN="hunter2-secret\n'
    with pytest.raises(EnvFileError) as raised:
        parse(text, "/etc/smtp.env")
    problems = [str(p) for p in raised.value.problems]
    assert problems == [
        "/etc/smtp.env:line 2: drop `export`: systemd and reporter read this file, not a shell",
        "/etc/smtp.env:line 3: expected KEY=VALUE (a name of letters, digits and _)",
        "/etc/smtp.env:line 4: OPEN: the value's quote is not closed",
    ]
    assert "hunter2" not in str(raised.value)


def _rendered_project(folder: Path, email_settings: str = "") -> Path:
    config = write_project(folder)
    if email_settings:
        config.write_text(config.read_text(encoding="utf-8").replace("[email]\n", f"[email]\n{email_settings}\n"),
                          encoding="utf-8")
    return config


def test_the_secrets_file_carries_the_smtp_settings_and_wins_over_the_environment(tmp_path: Path) -> None:
    config = _rendered_project(tmp_path)
    assert run_cli("--config", str(config), "render", REPORT, "--date", EDITION).returncode == 0
    handler = Recorder()
    with smtp_server(handler) as controller:
        secrets = _secrets(tmp_path, f'# mail\nREPORTER_SMTP_URL="smtp://127.0.0.1:{controller.port}"\nREPORTER_SMTP_PASSWORD=\n')
        # A stale setting in the caller's environment loses to the file.
        sent = run_cli("--config", str(config), "--env-file", str(secrets), "send", REPORT, "--date", EDITION,
                       env={"REPORTER_SMTP_URL": f"smtp://127.0.0.1:{free_port()}"})
    assert sent.returncode == 0, sent.stderr
    assert sorted(handler.parsed()) == ["analyst@example.org", "desk@example.org", "editor@example.org"]


def test_a_secrets_file_others_can_read_or_that_is_missing_is_refused_in_one_line(tmp_path: Path) -> None:
    config = _rendered_project(tmp_path)
    secrets = _secrets(tmp_path, "REPORTER_SMTP_PASSWORD=hunter2-secret\n", mode=0o640)
    loose = run_cli("--config", str(config), "--env-file", str(secrets), "validate")
    assert loose.returncode == 1
    assert loose.stderr == (f"error: {secrets}: can be read or written by others (mode 0640): it holds secrets; "
                            f"chmod 600 {secrets}\n")
    missing = run_cli("--config", str(config), "validate", env={"REPORTER_ENV_FILE": str(tmp_path / "none.env")})
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"error: {tmp_path / 'none.env'}: not found: create it with `install -m 600")
    assert len(missing.stderr.splitlines()) == 1
    secrets.chmod(0o600)
    assert run_cli("--config", str(config), "--env-file", str(secrets), "validate").returncode == 0


def test_a_secrets_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    user = ci_user()
    config = _rendered_project(tmp_path)
    secrets = _secrets(tmp_path, "REPORTER_SMTP_PASSWORD=hunter2-secret\n")
    os.chown(secrets, user.pw_uid, user.pw_gid)
    refused = run_cli("--config", str(config), "--env-file", str(secrets), "validate")
    assert refused.returncode == 1
    assert refused.stderr == f"error: {secrets}: is owned by {CI_USER}, not by root who runs reporter (or root): chown root {secrets}\n"


# --- the log file ----------------------------------------------------------------------------


def test_the_log_file_is_created_and_gets_the_runs_lines_from_every_process(tmp_path: Path) -> None:
    config = make_project(tmp_path, [report_block("r", **FAST)])
    log_file = tmp_path / "logs" / "deep" / "reporter.log"
    for now in (AT_SLOT, "2025-11-03T08:00:50+05:00"):
        result = run_cli("--config", str(config), "--log-file", str(log_file), "run-due", "--workers", "1",
                         env={"REPORTER_NOW": now})
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""  # the log went to the file
    lines = log_file.read_text(encoding="utf-8").splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d \[(\d+)\] "
    assert all(re.match(stamp, line) for line in lines), lines
    text = "\n".join(lines)
    assert "r slot 2025-11-03T08:00 (Asia/Almaty): rendering the edition of 2025-11-03" in text
    assert re.search(r"info    r slot 2025-11-03T08:00: ok in [\d.]+ s, 1 files", text)
    assert "nothing due" in lines[-1]  # the second call, appended
    writer = re.compile(stamp + r"info    wrote .*/r\.en\.html")
    worker_pids = {writer.match(line).group(1) for line in lines if writer.match(line)}
    service_pids = {re.match(stamp, line).group(1) for line in lines if "rendering the edition" in line}
    assert worker_pids and service_pids and worker_pids.isdisjoint(service_pids)  # the worker's own lines


def test_errors_reach_the_log_file_as_well_as_stderr(tmp_path: Path) -> None:
    log_file = tmp_path / "reporter.log"
    result = run_cli("--log-file", str(log_file), "--config", str(tmp_path / "none.toml"), "validate")
    assert result.returncode == 1
    assert result.stderr == f"error: {tmp_path / 'none.toml'}: config file not found\n"
    assert log_file.read_text(encoding="utf-8").rstrip().endswith(f"error   {tmp_path / 'none.toml'}: config file not found")


def test_a_log_file_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    result = run_cli("--log-file", "/proc/self/no/such/reporter.log", "validate")
    assert result.returncode == 1
    assert result.stderr == "error: /proc/self/no/such/reporter.log: cannot write the log file: No such file or directory\n"


# --- versions --------------------------------------------------------------------------------


def test_version_names_reporter_weasyprint_pango_and_python() -> None:
    import weasyprint

    short, long = run_cli("-V"), run_cli("--version")
    assert short.returncode == 0 and short.stdout == long.stdout
    lines = short.stdout.splitlines()
    assert lines[0] == f"reporter {__version__}"
    assert lines[1] == f"WeasyPrint {weasyprint.__version__}"
    assert re.fullmatch(r"Pango 1\.\d+\.\d+", lines[2])
    assert lines[3] == f"Python {platform.python_version()} ({sys.executable})"


def test_help_answers_without_importing_weasyprint() -> None:
    probe = ("import sys\nfrom reporter.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print('weasyprint' in sys.modules, 'matplotlib' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.stderr.strip() == "False False"


def test_the_version_is_written_in_one_place_and_the_changelog_names_it() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in meta["project"] and meta["project"]["dynamic"] == ["version"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "reporter.__version__"}
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d\d-\d\d$", changelog, re.MULTILINE)
    assert releases and releases[0] == __version__


# --- render --send ---------------------------------------------------------------------------


def test_render_send_without_smtp_settings_refuses_before_writing_anything(tmp_path: Path) -> None:
    config = _rendered_project(tmp_path)
    result = run_cli("--config", str(config), "render", REPORT, "--date", EDITION, "--send",
                     env={"REPORTER_SMTP_URL": ""})
    assert result.returncode == 1
    assert result.stderr.startswith("error: REPORTER_SMTP_URL: not set") and len(result.stderr.splitlines()) == 1
    assert result.stdout == "" and not (tmp_path / "output").exists()


def test_render_send_keeps_the_edition_when_the_server_fails_and_send_delivers_it_later(tmp_path: Path) -> None:
    config = _rendered_project(tmp_path, email_settings="attempts = 1")
    down = run_cli("--config", str(config), "render", REPORT, "--date", EDITION, "--send",
                   env={"REPORTER_SMTP_URL": f"smtp://127.0.0.1:{free_port()}"})
    assert down.returncode == 1
    edition = tmp_path / "output" / REPORT / EDITION
    assert f"{edition / 'brief.ru.pdf'}\n" in down.stdout and "failed" in down.stdout
    handler = Recorder()
    with smtp_server(handler) as controller:
        later = run_cli("--config", str(config), "send", REPORT, "--date", EDITION,
                        env={"REPORTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"})
    assert later.returncode == 0, later.stderr
    assert len(handler.messages) == 3


# --- reporter deploy -------------------------------------------------------------------------


def _deploy(config: Path, *args: str):
    return run_cli("--config", str(config), "deploy", *args)


def _settings(unit: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in unit.splitlines() if re.match(r"^[A-Za-z]+=", line))


def _verify(unit: str, folder: Path) -> subprocess.CompletedProcess:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    path = folder / "reporter.service"
    path.write_text(unit, encoding="utf-8")
    return subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)


def test_the_systemd_unit_runs_this_installation_as_the_user_and_passes_verify(tmp_path: Path) -> None:
    user = ci_user()
    config = make_project(tmp_path, [report_block("r", **FAST)])
    made = _deploy(config, "systemd", "--user", CI_USER, "--workers", "2", "--stop-timeout", "40")
    assert made.returncode == 0, made.stderr
    unit = made.stdout
    settings = _settings(unit)
    env_file = f"{user.pw_dir}/.config/reporter/smtp.env"
    assert settings["User"] == CI_USER and settings["Group"] == CI_USER
    assert settings["WorkingDirectory"] == str(tmp_path)
    # run_cli runs `python -m reporter`: then that is what the unit runs, by absolute paths.
    assert shlex.split(settings["ExecStart"]) == [sys.executable, "-m", "reporter", "--config", str(config),
                                                  "--env-file", env_file, "run", "--stop-timeout", "40",
                                                  "--workers", "2"]
    assert settings["KillMode"] == "mixed" and settings["Restart"] == "on-failure"
    assert float(settings["TimeoutStopSec"]) > 40
    assert "EnvironmentFile" not in unit  # reporter reads and checks the file itself
    verified = _verify(unit, tmp_path)
    assert (verified.returncode, verified.stderr) == (0, "")
    # verify does find what is wrong: a unit whose program does not exist.
    broken = _verify(unit.replace(f"ExecStart={sys.executable}", "ExecStart=/nonexistent/reporter"), tmp_path)
    assert broken.returncode != 0 and "/nonexistent/reporter" in broken.stderr


def test_the_crontab_line_runs_run_due_with_absolute_paths_and_says_how_to_install_it(tmp_path: Path) -> None:
    user = ci_user()
    config = make_project(tmp_path, [report_block("r", **FAST)])
    made = _deploy(config, "cron", "--user", CI_USER)
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    entries = [line for line in lines if line and not line.startswith("#")]
    assert len(entries) == 1 and entries[0].startswith("* * * * * ")
    assert shlex.split(entries[0].removeprefix("* * * * * ")) == [
        sys.executable, "-m", "reporter", "--config", str(config), "--env-file", f"{user.pw_dir}/.config/reporter/smtp.env",
        "--log-file", f"{user.pw_dir}/.local/state/reporter/reporter.log", "run-due"]
    comments = "\n".join(line for line in lines if line.startswith("#"))
    assert f"crontab -u {CI_USER} -" in comments and "# MAILTO=" in comments
    assert "REPORTER_NOW" not in made.stdout


def test_paths_with_spaces_and_percent_signs_survive_cron_and_systemd(tmp_path: Path) -> None:
    ci_user()
    folder = tmp_path / "desk briefs 100%"
    folder.mkdir()
    config = make_project(folder, [report_block("r", **FAST)])
    line = next(l for l in _deploy(config, "cron", "--user", CI_USER).stdout.splitlines() if l.startswith("* "))
    command = line.removeprefix("* * * * * ")
    assert re.search(r"(?<!\\)%", command) is None  # cron would cut the line at a bare %
    # What cron hands to /bin/sh: `\%` becomes `%`. The shell then sees the right words.
    words = subprocess.run(["sh", "-c", 'for w in "$@"; do printf "%s\\n" "$w"; done', "sh",
                            *shlex.split(command.replace("\\%", "%"))], capture_output=True, text=True).stdout
    assert f"{config}\n" in words
    unit = _deploy(config, "systemd", "--user", CI_USER).stdout
    assert f'"{str(config).replace("%", "%%")}"' in _settings(unit)["ExecStart"]
    verified = _verify(unit, tmp_path)
    assert (verified.returncode, verified.stderr) == (0, "")


def test_deploy_warns_about_what_the_user_could_not_run_read_or_write(open_tmp: Path) -> None:
    """The failure the issue found: a venv built by root, its Python under /root, run as another user."""
    from reporter import config as configuration
    from reporter.deploy import Target, user_named, warnings

    tmp_path = open_tmp
    ci_user()
    # A venv whose python links into a folder only root may enter, as pyenv's under /root.
    locked = tmp_path / "root-only"
    locked.mkdir(mode=0o700)
    real_python = locked / "python3.11"
    real_python.write_text("#!/bin/sh\n", encoding="utf-8")
    real_python.chmod(0o755)
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(real_python)
    script = bin_dir / "reporter"
    script.write_text(f"#!{bin_dir / 'python'}\nfrom reporter.cli import main\n", encoding="utf-8")
    script.chmod(0o755)
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    project = configuration.load(make_project(project_dir, [report_block("r", **FAST)]))
    env_file = tmp_path / "smtp.env"
    found = warnings(Target((str(script),), project, user_named(CI_USER), env_file), log_file=tmp_path / "logs" / "reporter.log")
    assert found[0] == (f"{CI_USER} cannot run {script}: it cannot enter {locked} (on the way to {real_python}). "
                        f"Install reporter into a venv that {CI_USER} owns, made with /usr/bin/python3 -m venv (README, Deploy)")
    assert f"{CI_USER} cannot write its output folder {project_dir / 'output'}: it may not write {project_dir} (mode 0755)" in found[1]
    assert f"{CI_USER} cannot write its log folder {tmp_path / 'logs'}" in found[3]
    assert found[4].startswith(f"the secrets file {env_file} does not exist yet: create it with `install -D -m 600 -o {CI_USER}")
    # Run as `python -m reporter`, the interpreter itself is the program.
    python = real_python
    env_file.write_text("X=1\n")
    env_file.chmod(0o644)
    found = warnings(Target((str(python), "-m", "reporter"), project, user_named(CI_USER), env_file))
    assert found[0].startswith(f"{CI_USER} cannot run {python}: it cannot enter {locked}. Install")
    assert f"the secrets file {env_file} is owned by root, not by {CI_USER}" not in " ".join(found)  # root may own it
    assert f"the secrets file {env_file} can be read or written by others (mode 0644): it holds secrets; chmod 600 {env_file}" in found
    env_file.chmod(0o600)
    found = warnings(Target((str(python), "-m", "reporter"), project, user_named(CI_USER), env_file))
    assert f"{CI_USER} cannot read the secrets file {env_file}: it may not read {env_file} (mode 0600); chown {CI_USER} {env_file}" in found


def test_deploy_refuses_an_unknown_user_or_a_missing_project_in_one_line(tmp_path: Path) -> None:
    config = make_project(tmp_path, [report_block("r", **FAST)])
    nobody = _deploy(config, "cron", "--user", "no-such-user-here")
    assert nobody.returncode == 1
    assert nobody.stderr == ("error: --user: no user 'no-such-user-here' on this machine: create it first "
                             "(useradd --system --create-home no-such-user-here)\n")
    missing = _deploy(tmp_path / "elsewhere.toml", "systemd")
    assert missing.returncode == 1 and missing.stderr == f"error: {tmp_path / 'elsewhere.toml'}: config file not found\n"


# --- shell completion ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def on_path(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose PATH has `reporter` (this checkout's), as a completion script expects."""
    folder = tmp_path_factory.mktemp("bin")
    (folder / "reporter").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m reporter "$@"\n')
    (folder / "reporter").chmod(0o755)
    return cli_env({"PATH": f"{folder}:{os.environ['PATH']}"})


def test_bash_completion_completes_commands_and_subcommands(on_path: dict[str, str]) -> None:
    script = run_cli("completion", "bash")
    assert script.returncode == 0 and "_REPORTER_COMPLETE=bash_complete" in script.stdout
    assert "complete -o nosort -F _reporter_completion reporter" in script.stdout

    def complete(*words: str) -> list[str]:
        line = " ".join(shlex.quote(w) for w in words)
        probe = (f'source /dev/stdin; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; '
                 '_reporter_completion reporter; printf "%s\\n" "${COMPREPLY[@]}"')
        done = subprocess.run(["bash", "-c", probe], input=script.stdout, capture_output=True, text=True, env=on_path)
        return done.stdout.split()

    assert complete("reporter", "r") == ["render", "run", "run-due"]
    assert complete("reporter", "deploy", "") == ["cron", "systemd"]
    assert "--env-file" in complete("reporter", "--e")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_completion_scripts_call_reporter_back(shell: str, on_path: dict[str, str]) -> None:
    script = run_cli("completion", shell)
    assert script.returncode == 0 and f"_REPORTER_COMPLETE={shell}_complete" in script.stdout
    assert "reporter" in script.stdout.replace("_REPORTER_COMPLETE", "")
    # What the script asks, answered as the shell would get it (neither shell is installed here).
    answer = subprocess.run(["reporter"], capture_output=True, text=True, env={
        **on_path, "_REPORTER_COMPLETE": f"{shell}_complete", "COMP_WORDS": "reporter st", "COMP_CWORD": "st" if shell == "fish" else "1"})
    assert "status" in answer.stdout and "render" not in answer.stdout
