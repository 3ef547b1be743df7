"""Forge kinds and how to make each from the config: the one list of `Forge` adapters.

A client library is imported only when its kind is used, so a pass with the local forge
does not pay for python-gitlab or PyGithub.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.config import Config
from bot.core.ports import Forge
from bot.errors import UsageError


def _local(config: Config) -> Forge:
    from bot.forges.local import LocalForge

    return LocalForge(config.manifests, config.state, config.identity)


def _gitlab(config: Config) -> Forge:
    from bot.forges.gitlab import GitLabForge

    return GitLabForge.from_config(config)


def _github(config: Config) -> Forge:
    from bot.forges.github import GitHubForge

    return GitHubForge.from_config(config)


FORGES: dict[str, Callable[[Config], Forge]] = {
    "local": _local,
    "gitlab": _gitlab,
    "github": _github,
}


def load_forge(config: Config) -> Forge:
    make = FORGES.get(config.forge.kind)
    if make is None:
        known = ", ".join(sorted(FORGES))
        raise UsageError(f"forge kind {config.forge.kind!r} is not available (known: {known})")
    return make(config)
