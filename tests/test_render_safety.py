"""What a render may read, what it does on errors, and that it never leaves half a file."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from conftest import EDITION, ROOT, assert_untouched, earlier_edition, run_cli, write_project
from reporter import config
from reporter.pipeline import build, write
from reporter.errors import RenderError


def _templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_unknown_fact_in_narrative_names_template_and_line(tmp_path: Path) -> None:
    templates = _templates(tmp_path)
    narrative = templates / "kz-us" / "narrative.en.html.j2"
    _edit(narrative, 'fact("us_companies_in_kz")', 'fact("us_companys_in_kz")')
    line = next(i for i, text in enumerate(narrative.read_text().splitlines(), 1) if "us_companys_in_kz" in text)
    config_path = write_project(tmp_path, templates=templates)
    previous = earlier_edition(tmp_path)
    result = run_cli("--config", str(config_path), "render", "kz-us", "--date", EDITION)
    assert result.returncode == 1
    assert f"narrative.en.html.j2:line {line}: unknown fact id 'us_companys_in_kz'" in result.stderr
    assert "Traceback" not in result.stderr
    # Russian rendered fine in memory, but nothing is written when any part fails.
    assert_untouched(previous)


@pytest.mark.parametrize(("src", "expected"), [
    ("https://example.org/logo.png", "refused to fetch https://example.org/logo.png"),
    ("file:///etc/hostname", "refused to read /etc/hostname: outside the project's folders"),
    ("fonts/missing.png", "missing resource"),
])
def test_weasyprint_reads_only_local_project_files(tmp_path: Path, src: str, expected: str) -> None:
    templates = _templates(tmp_path)
    _edit(templates / "brief.html.j2", '<header class="masthead">', f'<img src="{src}"><header class="masthead">')
    project = config.load(write_project(tmp_path, templates=templates))
    with pytest.raises(RenderError) as caught:
        build.build_edition(project, project.report("kz-us"), date(2025, 11, 5), languages=("en",), formats=("pdf",))
    assert expected in str(caught.value)
    assert not (tmp_path / "output").exists()


def test_template_syntax_error_is_reported_by_validate(tmp_path: Path) -> None:
    templates = _templates(tmp_path)
    _edit(templates / "kz-us" / "narrative.ru.html.j2", "{% block mining %}", "{% block mining %}{% if %}")
    _edit(templates / "kz-us" / "narrative.en.html.j2", "{% block region %}", "{% block regions %}")
    result = run_cli("--config", str(write_project(tmp_path, templates=templates)), "validate")
    assert result.returncode == 1
    assert "narrative.ru.html.j2:line" in result.stderr
    assert "narrative.en.html.j2: missing {% block region %}" in result.stderr


def test_validate_accepts_the_shipped_project() -> None:
    result = run_cli("validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 1 report(s)")


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "a.pdf"
    target.write_bytes(b"old")

    with pytest.raises(TypeError):
        # The second file cannot be written: the first must not have replaced its target either.
        write.write_atomically({target: b"new", tmp_path / "b.pdf": object()})  # type: ignore[dict-item]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf"]


def test_a_failing_template_expression_names_its_line(tmp_path: Path) -> None:
    templates = _templates(tmp_path)
    narrative = templates / "kz-us" / "narrative.en.html.j2"
    _edit(narrative, "{% block mining %}", "{% block mining %}{{ 1 / 0 }}")
    line = next(i for i, text in enumerate(narrative.read_text().splitlines(), 1) if "1 / 0" in text)
    result = run_cli("--config", str(write_project(tmp_path, templates=templates)), "validate")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"narrative.en.html.j2:line {line}: ZeroDivisionError" in result.stderr


def test_a_chart_that_does_not_fit_its_data_is_named(tmp_path: Path) -> None:
    config_path = write_project(tmp_path)
    text = config_path.read_text(encoding="utf-8").replace('y = "tonnes_uranium"', 'y = "note"')
    config_path.write_text(text, encoding="utf-8")
    result = run_cli("--config", str(config_path), "validate")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "datapackage.json:chart 'production': does not fit the data" in result.stderr


def test_an_unwritable_output_folder_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("render", "kz-us", "--date", EDITION, "--lang", "en", "--format", "html",
                     "--output", str(blocker / "out"), env={"REPORTER_CONFIG": str(write_project(tmp_path))})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot write: Not a directory" in result.stderr
