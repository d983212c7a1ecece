"""`reporter init` and `reporter new`: a project, and a report that validates and renders at once."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import normalise, run_cli
from pdf_reading import text

pytestmark = pytest.mark.slow


def test_init_then_new_then_validate_then_render_writes_both_languages(tmp_path: Path) -> None:
    project = tmp_path / "briefs"
    created = run_cli("init", str(project))
    assert created.returncode == 0, created.stderr
    assert (project / "reports.toml").is_file() and (project / "data").is_dir() and (project / "templates").is_dir()
    assert "/output/" in (project / ".gitignore").read_text() and "/state/" in (project / ".gitignore").read_text()
    added = run_cli("new", "demo", cwd=project)
    assert added.returncode == 0, added.stderr
    assert str(project / "data" / "demo" / "units.csv") in added.stdout
    validated = run_cli("validate", cwd=project)
    assert validated.returncode == 0, validated.stderr
    assert "warning" not in validated.stderr
    rendered = run_cli("render", "demo", "--date", "2025-11-05", cwd=project)
    assert rendered.returncode == 0, rendered.stderr
    edition = project / "output" / "demo" / "2025-11-05"
    assert sorted(p.name for p in edition.iterdir()) == ["demo.en.html", "demo.en.pdf", "demo.ru.html", "demo.ru.pdf", "manifest.json"]
    ru, en = text(edition / "demo.ru.pdf"), text(edition / "demo.en.pdf")
    assert "более 1 250 единиц" in ru and "в 2,8 раза" in ru and "24,1 %" in ru and "около 20–22 %" in ru
    assert "more than 1,250 items" in en and "2.8 times" in en and "24.1%" in en and "about 20–22%" in en
    assert "Динамика" in ru and "The trend" in en  # its two sections, and its chart's caption
    assert "Example series, items per year" in en
    for pdf in ("demo.ru.pdf", "demo.en.pdf"):  # its <code> too is set in the theme's fonts, not a system one
        fonts = subprocess.run(["pdffonts", str(edition / pdf)], capture_output=True, text=True, check=True).stdout
        names = [line.split()[0] for line in fonts.splitlines()[2:] if line.strip()]
        assert names and all(re.fullmatch(r"[A-Z]{6}\+PT-(Serif|Sans)(-\w+)?", name) for name in names), fonts


def test_new_refuses_a_taken_id_and_overwrites_nothing(tmp_path: Path) -> None:
    assert run_cli("init", str(tmp_path)).returncode == 0
    assert run_cli("new", "demo", cwd=tmp_path).returncode == 0
    before = (tmp_path / "reports.toml").read_text(encoding="utf-8")
    again = run_cli("new", "demo", cwd=tmp_path)
    assert again.returncode == 1 and "reports.demo: a report with this id exists already" in again.stderr
    (tmp_path / "templates" / "other").mkdir()
    (tmp_path / "templates" / "other" / "narrative.en.html.j2").write_text("mine", encoding="utf-8")
    clash = run_cli("new", "other", "--lang", "en", cwd=tmp_path)
    assert clash.returncode == 1 and "narrative.en.html.j2: exists already: `reporter new` never overwrites" in clash.stderr
    assert (tmp_path / "reports.toml").read_text(encoding="utf-8") == before
    assert not (tmp_path / "data" / "other").exists()
    bad = run_cli("new", "Bad Id", cwd=tmp_path)
    assert bad.returncode == 1 and "is not a report id" in bad.stderr
    assert run_cli("init", str(tmp_path)).returncode == 1


def test_a_language_the_theme_lacks_gets_a_catalogue_to_translate(tmp_path: Path) -> None:
    from babel.messages.pofile import read_po, write_po

    assert run_cli("init", str(tmp_path)).returncode == 0
    assert run_cli("new", "demo", "--lang", "de,en", cwd=tmp_path).returncode == 0
    untranslated = run_cli("validate", cwd=tmp_path)
    assert untranslated.returncode == 1
    catalogue = tmp_path / "locale" / "de" / "LC_MESSAGES" / "messages.po"
    assert f"{catalogue}: 'Key figures' has no de translation" in untranslated.stderr
    made = run_cli("i18n", cwd=tmp_path)
    assert made.returncode == 0 and f"de: {catalogue}" in made.stdout and "to translate" in made.stdout
    with catalogue.open("rb") as handle:
        catalog = read_po(handle)
    for message in catalog:
        if message.id:
            message.string = tuple(f"DE {m}" for m in message.id) if message.pluralizable else f"DE {message.id}"
    catalog["Key figures"].string = "Wichtige Zahlen"
    catalog["Summary"].flags.add("fuzzy")
    with catalogue.open("wb") as handle:
        write_po(handle, catalog)
    fuzzy = run_cli("validate", cwd=tmp_path)
    assert fuzzy.returncode == 1
    assert f"{catalogue}: 'Summary' is marked fuzzy in de" in fuzzy.stderr
    assert "Key figures" not in fuzzy.stderr
    catalog["Summary"].flags.discard("fuzzy")
    with catalogue.open("wb") as handle:
        write_po(handle, catalog)
    assert run_cli("validate", cwd=tmp_path).returncode == 0
    assert run_cli("render", "demo", "--date", "2025-11-05", "--lang", "de", cwd=tmp_path).returncode == 0
    assert "Wichtige Zahlen" in normalise(text(tmp_path / "output" / "demo" / "2025-11-05" / "demo.de.pdf"))
