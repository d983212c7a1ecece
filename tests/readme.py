"""The README's shell commands as a reader copies them: every line of every ```sh block.

tests/test_readme.py runs them, except the "Deploy" section's, which tests/test_install.py runs
as the unprivileged user they are written for.
"""

from __future__ import annotations

from dataclasses import dataclass

from conftest import ROOT

README = ROOT / "README.md"


@dataclass(frozen=True)
class Command:
    section: str  # the "## " heading it is under
    block: int  # the ```sh block, counted from 1 through the README
    line: int  # its line number in the README
    text: str  # as written, without its trailing comment

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text}"


def _without_comment(line: str) -> str:
    """The line up to a ``#`` that starts a shell comment (outside quotes, after a blank)."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def commands() -> list[Command]:
    found, section, block, inside = [], "", 0, False
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            inside = line.strip() == "```sh"
            block += inside
            continue
        if not inside and line.startswith("## "):
            section = line[3:].strip()
        if inside:
            text = _without_comment(line)
            if text:
                found.append(Command(section, block, number, text))
    return found


def blocks(section: str | None = None, *, exclude: str | None = None) -> list[list[Command]]:
    """The ```sh blocks, each as its commands, of one section or all but one."""
    grouped: dict[int, list[Command]] = {}
    for command in commands():
        if (section is None or command.section == section) and command.section != exclude:
            grouped.setdefault(command.block, []).append(command)
    return list(grouped.values())
