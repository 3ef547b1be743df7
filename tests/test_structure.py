"""Meta-tests that keep the architecture's boundaries (python-gitlab's habit)."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"
CORE_FORBIDDEN = (
    "bot.git",
    "bot.forges",
    "bot.notify",
    "bot.web",
    "bot.app.pass_",
    "pygit2",
    "git",
    "gitlab",
    "github",
    "subprocess",
    "ruamel",
    "requests",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            # `from bot.git import runner` imports the module bot.git.runner
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _is(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def test_core_is_pure() -> None:
    offenders = {
        f"{path.relative_to(BOT.parent)}: {name}"
        for path in (BOT / "core").glob("*.py")
        for name in _imports(path)
        if any(_is(name, bad) for bad in CORE_FORBIDDEN)
    }
    assert not offenders, "bot/core must stay free of I/O and adapters"


def test_only_the_runners_start_processes() -> None:
    """Every git process goes through bot/git/runner.py (timeouts, scrubbed env, redaction);
    the operator's check command is the only other process, run by bot/check/runner.py."""
    starters = {
        str(path.relative_to(BOT.parent))
        for path in BOT.rglob("*.py")
        if "subprocess" in _imports(path)
    }
    allowed = {"bot/git/runner.py", "bot/check/runner.py"}
    assert starters <= allowed, starters - allowed


def test_library_exceptions_stay_in_adapters() -> None:
    """Only forge adapters import forge client libraries."""
    for path in BOT.rglob("*.py"):
        rel = str(path.relative_to(BOT.parent))
        for name in _imports(path):
            if name.split(".")[0] in ("gitlab", "github"):
                assert rel.startswith("bot/forges/"), f"{rel} imports {name}"


# Only bot/git touches git: libgit2 through pygit2 (or cffi), the git program through its runner.
GIT_ONLY = ("pygit2", "_pygit2", "cffi", "bot.git.runner")


def test_only_bot_git_uses_git() -> None:
    """pygit2 objects, libgit2's errors and git processes stay behind bot/git: everything
    else calls its functions and sees GitError."""
    offenders = {
        (str(path.relative_to(BOT.parent)), bad)
        for path in BOT.rglob("*.py")
        if not path.is_relative_to(BOT / "git")
        for name in _imports(path)
        for bad in GIT_ONLY
        if _is(name, bad)
    }
    assert offenders == set(), sorted(offenders)
