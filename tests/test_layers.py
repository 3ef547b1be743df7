"""Meta-tests for the layering STYLE.md draws, checked on imports (python-gitlab's habit).

Data flows down: cli/commands -> app -> adapters (forges, check, git) -> core -> manifest.
`config` and `errors` are shared by all. Nothing imports a layer above its own, even lazily
inside a function, and the core stays pure even through what it imports.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "bot"

# Higher numbers sit above lower ones; a module may import its own layer and those below.
LAYERS = {
    "bot.__main__": 5,
    "bot.cli": 5,
    "bot.commands": 5,
    "bot.web": 5,
    "bot.serve": 5,
    "bot.app": 4,
    "bot.forges": 3,
    "bot.notify": 3,
    "bot.check": 3,
    "bot.git": 2,
    "bot.core": 1,
    "bot.manifest": 0,
    "bot.config": 0,
    "bot.errors": 0,
    "bot.redact": 0,
    "bot": 0,
}
# What the core may not load, even indirectly: I/O adapters, YAML round-tripping, HTTP, web.
CORE_MAY_NOT_LOAD = (
    "pygit2",
    "cffi",
    "git",
    "gitlab",
    "github",
    "ruamel",
    "requests",
    "urllib3",
    "httpx",
    "starlette",
    "uvicorn",
    "apscheduler",
    "rich",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def _bot_imports(path: Path) -> set[str]:
    """Every `bot...` module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("bot"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bot"):
            found.add(node.module)
    return found


def _top_level_bot_imports(path: Path) -> set[str]:
    """The `bot...` modules imported when `path` is (not those inside functions or
    `TYPE_CHECKING` blocks): the edges that can make an import cycle."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("bot"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bot"):
            found.add(node.module)
    return found


def test_every_module_has_a_layer() -> None:
    for path in BOT.rglob("*.py"):
        _layer(_module_name(path))  # raises for a module outside every layer


def test_nothing_imports_a_layer_above_its_own() -> None:
    offenders = sorted(
        f"{_module_name(path)} -> {target}"
        for path in BOT.rglob("*.py")
        for target in _bot_imports(path)
        if _layer(target) > _layer(_module_name(path))
    )
    assert offenders == []


def test_no_import_cycles() -> None:
    graph = {_module_name(p): _top_level_bot_imports(p) for p in BOT.rglob("*.py")}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        if node in stack:
            cycles.append([*stack[stack.index(node) :], node])
            return
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            visit(target, [*stack, node], done)
        done.add(node)

    done: set[str] = set()
    for module in sorted(graph):
        visit(module, [], done)
    assert cycles == []


@pytest.mark.parametrize("module", sorted(_module_name(p) for p in (BOT / "core").rglob("*.py")))
def test_the_core_loads_nothing_impure_even_indirectly(module: str) -> None:
    code = (
        f"import json, sys; import {module}; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    loaded = set(json.loads(out))
    assert loaded.isdisjoint(CORE_MAY_NOT_LOAD), sorted(loaded & set(CORE_MAY_NOT_LOAD))
