"""What a render may read and run, what it does on errors, and that it never leaves half a file."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from conftest import EDITION, REPORT, assert_untouched, earlier_edition, run_cli, write_project
from reporter import config
from reporter.errors import RenderError
from reporter.pipeline import build, write


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in text)


def test_unknown_ids_are_all_named_with_template_and_line(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    narrative = tmp_path / "templates" / "brief" / "narrative.en.html.j2"
    _edit(narrative, 'fact("firms")', 'fact("firm")')
    _edit(narrative, 'fact("growth")', 'fact("growht")')
    _edit(narrative, 'year("forum")', 'year("forums")')
    previous = earlier_edition(tmp_path)
    result = run_cli("--config", str(config_path), "render", REPORT, "--date", EDITION)
    assert result.returncode == 1
    for needle, name in (('fact("firm")', "fact 'firm'"), ('fact("growht")', "fact 'growht'"),
                         ('year("forums")', "fact or event 'forums'")):
        assert f"narrative.en.html.j2:line {_line_of(narrative, needle)}: unknown {name}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    # Russian rendered fine in memory, but nothing is written when any part fails.
    assert_untouched(previous)


@pytest.mark.parametrize(("src", "expected"), [
    ("https://example.org/logo.png", "refused to fetch https://example.org/logo.png"),
    ("file:///etc/hostname", "refused to read /etc/hostname: outside the project's folders"),
    ("fonts/missing.png", "missing resource"),
])
def test_weasyprint_reads_only_local_project_files(tmp_path: Path, src: str, expected: str) -> None:
    config_path = write_project(tmp_path, extra='layout = "own.html.j2"')
    (tmp_path / "templates" / "own.html.j2").write_text(
        '{% extends "brief.html.j2" %}{% block head %}<link rel="icon" href="x">{% endblock %}'
        f'{{% block masthead %}}<img src="{src}" alt="">{{{{ super() }}}}{{% endblock %}}', encoding="utf-8")
    project = config.load(config_path)
    with pytest.raises(RenderError) as caught:
        build.build_edition(project, project.report(REPORT), date(2025, 11, 5), languages=("en",), formats=("pdf",))
    assert expected in str(caught.value)
    assert not (tmp_path / "output").exists()


def test_template_syntax_error_and_unknown_block_are_reported_by_validate(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    _edit(tmp_path / "templates" / "brief" / "narrative.ru.html.j2", "{% block overview %}", "{% block overview %}{% if %}")
    _edit(tmp_path / "templates" / "brief" / "narrative.en.html.j2", "{% block partners %}", "{% block partner %}")
    result = run_cli("--config", str(config_path), "validate")
    assert result.returncode == 1
    assert "narrative.ru.html.j2:line" in result.stderr
    assert "narrative.en.html.j2: block 'partner' is not a section of the report (declared: overview, partners, summary)" in result.stderr


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "a.pdf"
    target.write_bytes(b"old")

    with pytest.raises(TypeError):
        # The second file cannot be written: the first must not have replaced its target either.
        write.write_atomically({target: b"new", tmp_path / "b.pdf": object()})  # type: ignore[dict-item]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf"]


def test_a_failing_template_expression_names_its_line(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    narrative = tmp_path / "templates" / "brief" / "narrative.en.html.j2"
    _edit(narrative, "{% block overview %}", "{% block overview %}{{ 1 / 0 }}")
    result = run_cli("--config", str(config_path), "validate")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"narrative.en.html.j2:line {_line_of(narrative, '1 / 0')}: ZeroDivisionError" in result.stderr


def test_a_chart_that_does_not_fit_its_data_is_named(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    _edit(config_path, 'y = "tonnes"', 'y = "source"')
    result = run_cli("--config", str(config_path), "validate")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "series.csv:line 2, column 'source': chart 'output' needs a number here, got 'stat-2025'" in result.stderr


def test_an_unwritable_output_folder_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("render", REPORT, "--date", EDITION, "--lang", "en", "--format", "html",
                     "--output", str(blocker / "out"), env={"REPORTER_CONFIG": str(write_project(tmp_path))})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot write: Not a directory" in result.stderr


# --- templates cannot run code; reads stay inside the project ----------------------------

PAYLOADS = [
    '{{ cycler.__init__.__globals__.os.popen("id").read() }}',
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ lipsum.__globals__['os'].environ }}",
    '{{ fact.__self__.__dict__ }}',
    '{{ report.__class__.__init__.__globals__ }}',
]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("command", ["render", "validate"])
def test_a_template_cannot_reach_python(tmp_path: Path, payload: str, command: str) -> None:
    config_path = write_project(tmp_path)
    narrative = tmp_path / "templates" / "brief" / "narrative.en.html.j2"
    _edit(narrative, "{% block overview %}", "{% block overview %}" + payload)
    previous = earlier_edition(tmp_path)
    args = ["render", REPORT, "--date", EDITION, "--format", "html", "--lang", "en"] if command == "render" else ["validate"]
    result = run_cli("--config", str(config_path), *args, env={"REPORTER_SMTP_PASSWORD": "hunter2-secret"})
    assert result.returncode == 1, result.stdout
    assert f"narrative.en.html.j2:line {_line_of(narrative, payload[:12])}: not allowed in a template" in result.stderr, result.stderr
    assert "uid=" not in result.stdout + result.stderr and "hunter2-secret" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert_untouched(previous)


def test_a_symlink_out_of_the_templates_folder_is_refused(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:the secret line", encoding="utf-8")
    os.symlink(secret, tmp_path / "templates" / "leak.html")
    _edit(tmp_path / "templates" / "brief" / "narrative.en.html.j2", "{% block overview %}",
          '{% block overview %}{% include "leak.html" %}')
    for args in (["validate"], ["render", REPORT, "--date", EDITION]):
        result = run_cli("--config", str(config_path), *args)
        assert result.returncode == 1
        assert f"templates/leak.html: resolves to {secret}, outside the project's folders" in result.stderr, result.stderr
        assert "the secret line" not in result.stdout + result.stderr
    assert not (tmp_path / "output").exists()


def test_a_symlinked_data_file_outside_the_dataset_is_refused(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    outside = tmp_path / "elsewhere.csv"
    series = tmp_path / "data" / "brief" / "series.csv"
    outside.write_bytes(series.read_bytes())
    series.unlink()
    os.symlink(outside, series)
    result = run_cli("--config", str(config_path), "validate")
    assert result.returncode == 1
    assert "'series.csv' is outside the package folder" in result.stderr, result.stderr


@pytest.mark.parametrize(("value", "expected"), [
    ('["/srv/elsewhere"]', "reports.brief.datasets[0]: '/srv/elsewhere' is not a dataset id"),
    ('["../brief"]', "reports.brief.datasets[0]: '../brief' is not a dataset id"),
])
def test_datasets_are_named_by_id_under_data(tmp_path: Path, value: str, expected: str) -> None:
    config_path = write_project(tmp_path)
    _edit(config_path, 'datasets = ["brief"]', f"datasets = {value}")
    result = run_cli("--config", str(config_path), "validate")
    assert result.returncode == 1 and expected in result.stderr, result.stderr


def test_a_report_id_with_a_line_break_is_refused(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    _edit(config_path, "[reports.brief]", '[reports."brief\\n"]')
    text = config_path.read_text(encoding="utf-8").replace("[[reports.brief.", '[[reports."brief\\n".').replace(
        "[reports.brief.", '[reports."brief\\n".')
    config_path.write_text(text, encoding="utf-8")
    result = run_cli("--config", str(config_path), "list")
    assert result.returncode == 1 and "a report id is lower-case letters, digits, '-' and '_'" in result.stderr
    assert "Traceback" not in result.stderr


def test_symlinks_out_of_data_catalogues_and_recipients_are_refused(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    # A dataset folder that is a link to elsewhere.
    (tmp_path / "data" / "brief").rename(outside / "brief")
    os.symlink(outside / "brief", tmp_path / "data" / "brief")
    result = run_cli("--config", str(config_path), "validate")
    assert result.returncode == 1
    assert f"datapackage.json: resolves to {outside / 'brief' / 'datapackage.json'}, outside the data folder" in result.stderr
    (tmp_path / "data" / "brief").unlink()
    (outside / "brief").rename(tmp_path / "data" / "brief")
    # A catalogue that is a link to a file elsewhere.
    (outside / "messages.po").write_text('msgid ""\nmsgstr ""\n', encoding="utf-8")
    catalogue = tmp_path / "locale" / "ru" / "LC_MESSAGES" / "messages.po"
    catalogue.parent.mkdir(parents=True)
    os.symlink(outside / "messages.po", catalogue)
    result = run_cli("--config", str(config_path), "validate")
    assert result.returncode == 1 and "outside the project's locale folder" in result.stderr, result.stderr
    catalogue.unlink()
    # A recipients file outside the project.
    (outside / "people.csv").write_text("email,lang\nx@example.org,en\n", encoding="utf-8")
    _edit(config_path, "[reports.brief]\n", '[reports.brief]\nrecipients_file = "../outside/people.csv"\n')
    result = run_cli("--config", str(config_path), "validate")
    assert result.returncode == 1
    assert "reports.brief.recipients_file: '../outside/people.csv' resolves to" in result.stderr and "outside the project's folder" in result.stderr
