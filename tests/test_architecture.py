"""The package's shape: imports flow one way between its parts, and it knows no report.

Layers, lowest first. A module may import its own layer and the layers below it, never above:
so the render pipeline cannot reach up into scheduling, nor anything into the CLI.
"""

from __future__ import annotations

import ast
import re

from conftest import ROOT

PACKAGE = ROOT / "reporter"
LAYERS = [
    {"__init__", "errors", "liveness", "log", "cron", "theme", "envfile"},  # __init__: the version, nothing else
    {"config"},
    {"pipeline"},
    {"state"},
    {"execute", "deliver"},
    {"schedule"},
    {"site"},
    {"scaffold", "deploy"},
    {"cli", "__main__"},
]


def _part(module: str) -> str:
    """``reporter.pipeline.render`` -> ``pipeline``; ``reporter.config`` -> ``config``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(part: str) -> int:
    for index, names in enumerate(LAYERS):
        if part in names:
            return index
    raise AssertionError(f"reporter.{part} is in no layer: add it to LAYERS in {__file__}")


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                found.add(target)
                if not node.module:  # `from . import x`: x is a module, or a name such as __version__
                    found.update(f"{target}.{alias.name}" for alias in node.names if _is_module(f"{target}.{alias.name}"))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reporter"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("reporter"))
        graph[module] = found
    return graph


def test_imports_flow_down_the_layers() -> None:
    wrong = []
    for module, targets in _imports().items():
        for target in targets:
            if not target.startswith("reporter.") or target == module:
                continue
            if _layer(_part(target)) > _layer(_part(module)):
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_no_import_cycles_between_modules() -> None:
    graph = _imports()
    modules = set(graph)
    edges = {m: {t for t in targets if t in modules and t != m} for m, targets in graph.items()}
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])
    # A package's __init__ importing its own submodule, and that submodule importing names
    # from its package, is Python's normal shape for re-exports; anything else is a cycle.
    assert [c for c in cycles if not re.fullmatch(r"(reporter\.\w+) -> \1\.\w+ -> \1", c)] == []


def test_the_package_knows_no_report() -> None:
    # The first brief lives in reports.toml, data/ and templates/ like any user's brief.
    words = re.compile(r"kz-us|uranium|diplomacy|kazakhstan|c5\+1|казахстан|уран", re.IGNORECASE)
    hits = []
    for path in PACKAGE.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".j2", ".html", ".css", ".po", ".pot", ".toml", ".csv", ".json"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if words.search(line):
                    hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert hits == []
