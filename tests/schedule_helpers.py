"""Projects with many scheduled reports, for the scheduler's tests and benchmark."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def report_block(report_id: str, *, schedule: str = "0 8 * * 1", timezone: str = "Asia/Almaty",
                 languages: str = '["ru", "en"]', formats: str = '["pdf", "html"]', dataset: str = "kz-us",
                 extra: str = "") -> str:
    """The shipped kz-us report under another id, with the given schedule and settings."""
    text = (ROOT / "reports.toml").read_text(encoding="utf-8")
    start = text.index("[reports.kz-us]")
    end = text.find("\n[email]", start)
    block = text[start:] if end < 0 else text[start:end]
    block = "\n".join(line for line in block.splitlines() if not line.startswith(("schedule", "timezone", "languages", "formats", "datasets")))
    # Recipients belong to the delivery tests; drop any [[...recipients]] tables.
    block = block.split("[[reports.kz-us.recipients]]")[0]
    block = block.replace("[reports.kz-us", f"[reports.{report_id}")
    head, _, rest = block.partition("\n")
    settings = (f'schedule = "{schedule}"\ntimezone = "{timezone}"\nlanguages = {languages}\n'
                f'formats = {formats}\ndatasets = ["{dataset}"]\n{extra}\n')
    if languages == '["en"]':
        rest = rest.replace('title = { ru = "Казахстан — США: C5+1", en = ', 'title = { en = ')
        rest = "\n".join(_only_en(line) for line in rest.splitlines())
    return f"{head}\n{settings}{rest}\n"


def _only_en(line: str) -> str:
    if line.startswith(("title = {", "short_title = {")) and "ru =" in line:
        return line.split("{", 1)[0] + "{ " + line[line.index("en ="):]
    return line


def make_project(folder: Path, blocks: list[str], *, broken_dataset: bool = False) -> Path:
    """A project folder with its own data copy, output and state, holding the given reports."""
    data = folder / "data"
    shutil.copytree(ROOT / "data", data, dirs_exist_ok=True)
    if broken_dataset:
        shutil.copytree(data / "kz-us", data / "broken")
        csv = data / "broken" / "production.csv"
        csv.write_text(csv.read_text(encoding="utf-8").replace("2020,19477", "2020,many"), encoding="utf-8")
    config = folder / "reports.toml"
    config.write_text(
        "[project]\n"
        f'data = "{data}"\ntemplates = "{ROOT / "templates"}"\noutput = "{folder / "output"}"\n'
        f'state = "{folder / "state" / "history.sqlite"}"\nlocales = {{ en = "en_GB" }}\n\n'
        + "\n".join(blocks), encoding="utf-8")
    return config
