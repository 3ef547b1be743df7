"""Which adapter serves each port: the one place that picks them from the config.

Use cases take an `Adapters` and ask it for a forge, a check or the push; the defaults are
the real adapters. Tests hand in their own (a forge of their choosing, forge CI on a fake
clock, a push that races another replica) instead of patching module internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.config import Config
from bot.core.ports import Check, Forge
from bot.core.refs import WritableRefs
from bot.forges.redacting import RedactingForge
from bot.forges.registry import load_forge
from bot.git.publish import PushResult, RefUpdate, push
from bot.git.workrepo import WorkRepo

CheckFactory = Callable[[Config, str, WorkRepo], Check]


class Push(Protocol):
    def __call__(
        self, work: WorkRepo, mirror: str, updates: list[RefUpdate], *, writable: WritableRefs
    ) -> PushResult: ...


def make_check(config: Config, tree: str, work: WorkRepo) -> Check:
    """The tree's check: its command run here, or the forge's CI on pushed candidates."""
    settings = config.trees[tree]
    if settings.check_via == "forge-ci":
        from bot.check.forge_ci import ForgeCiRunner

        return ForgeCiRunner(
            ci_forge(config, tree),
            work=work,
            mirror=config.mirror_of(tree),
            namespace=config.namespace,
            state=config.state,
            timeout=settings.check_timeout,
            poll=settings.check_poll_seconds,
            grace=settings.check_grace_seconds,
        )
    from bot.check.runner import CheckRunner

    return CheckRunner.for_tree(config, tree, repo_path=work.path)


def ci_forge(config: Config, tree: str) -> Forge:
    """The forge whose CI judges this tree's candidates (the local forge runs `check`)."""
    settings = config.trees[tree]
    if config.forge.kind == "local":
        from bot.check.runner import CheckRunner
        from bot.forges.local import LocalForge

        if settings.check is None:
            raise ValueError(f"tree {tree!r} has no check command for the local forge's CI")
        ci = CheckRunner.for_tree(  # its own state: the bot's cache holds the "forge-ci" verdicts
            config,
            tree,
            repo_path=Path(config.mirror_of(tree)),
            state=config.state / "proposals" / "ci",
        )
        return RedactingForge(LocalForge(config.manifests, config.state, config.identity, check=ci))
    if settings.check_project:
        forge = config.forge.model_copy(update={"project": settings.check_project})
        config = config.model_copy(update={"forge": forge})
    return redacted_forge(config)


def redacted_forge(config: Config) -> Forge:
    """The configured forge, all the text sent to it redacted (`bot.forges.redacting`)."""
    return RedactingForge(load_forge(config))


@dataclass(frozen=True)
class Adapters:
    """The adapters a use case works with; the defaults are the real ones."""

    forge: Callable[[Config], Forge] = redacted_forge
    check: CheckFactory = make_check
    push: Push = push


DEFAULT = Adapters()
