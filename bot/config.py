"""The bot config: trees (upstream, mirror), manifests dir, namespace, identity, forge, state.

One YAML file (`xsabot.yaml`), every field optional: with no file at all the embedded default
runs the whole loop on one machine (upstream = the public Xen repository, mirror = a bare
repository under the state dir, forge = a local proposals directory). Tokens never live in
this file: only the names of environment variables or files that hold them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.errors import UsageError
from bot.redact import SECRET_NAME

XEN_UPSTREAM = "https://xenbits.xen.org/git-http/xen.git"
CONFIG_NAMES = ("xsabot.yaml", "xsabot.yml")
_TREE_NAME = r"^[a-z0-9][a-z0-9-]*$"
_VARIABLE = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Identity(_Frozen):
    """Committer of every commit the bot makes; part of the build inputs."""

    name: str = "xsabot"
    email: str = "xsabot@xenproject.invalid"


class Tree(_Frozen):
    upstream: str = Field(description="URL or path of the upstream repository")
    mirror: str | None = Field(
        None, description="URL or path of the mirror; default: <state>/mirrors/<tree>.git"
    )
    copy_upstream_refs: bool = Field(
        False, description="Also copy RELEASE-* tags and source branches into the mirror"
    )
    check: str | None = Field(
        None,
        description="Command that must pass on a built tree before it is published, run with "
        "/bin/sh in an export of the tree, e.g. `make -C xen defconfig && make -C xen -j2`",
    )
    check_timeout: float = Field(1800.0, gt=0, description="Seconds the check may take")
    check_via: Literal["command", "forge-ci"] = Field(
        "command",
        description="Run `check` here, or push a candidate ref and wait for the forge's CI "
        "(the local forge runs `check` as its CI)",
    )
    check_poll_seconds: float = Field(30.0, gt=0, description="forge-ci: seconds between polls")
    check_grace_seconds: float = Field(
        300.0, gt=0, description="forge-ci: how long a candidate may have no status at all"
    )
    check_project: str | None = Field(
        None, description="forge-ci: the forge project whose CI runs on the mirror"
    )
    check_sandbox: Literal["auto", "bwrap", "unshare", "none"] = Field(
        "auto",
        description="Where the check command runs: bwrap (no network, read-only machine, own "
        "PIDs), unshare (no network, own PIDs), none, or auto (the first of them that works)",
    )
    check_env: tuple[Annotated[str, Field(pattern=_VARIABLE)], ...] = Field(
        (),
        description="Variables of the bot's environment the check command gets too (e.g. CC, "
        "CCACHE_DIR); it gets only PATH, HOME, TMPDIR and the C locale otherwise",
    )
    check_writable: tuple[str, ...] = Field(
        (),
        description="Directories the check may write to in the bwrap sandbox besides the "
        "export of the tree (e.g. a compiler cache)",
    )

    @model_validator(mode="after")
    def _no_secret_for_the_check(self) -> Tree:
        secret = [name for name in self.check_env if SECRET_NAME.search(name)]
        if secret:
            raise ValueError(
                f"check_env: {', '.join(secret)} may hold a secret; the check runs the tree's "
                "code and never gets one"
            )
        relative = [path for path in self.check_writable if not path.startswith(("/", "~"))]
        if relative:
            raise ValueError(f"check_writable: not an absolute path: {', '.join(relative)}")
        return self

    @property
    def gated(self) -> bool:
        return self.check is not None or self.check_via == "forge-ci"


class ForgeConfig(_Frozen):
    """Where the manifests repository lives and how the bot reaches it.

    `url` is the forge's web base (`https://gitlab.com`, a self-hosted GitLab such as
    `https://git.example.org/gitlab`, `https://github.com` or a GitHub Enterprise host); the API
    and clone URLs are derived from it unless given. With `fork_project` the bot pushes its
    branches to that fork and opens merge requests from it into `project`.
    """

    kind: Literal["local", "gitlab", "github"] = "local"
    url: str | None = None
    project: str | None = Field(None, description="Manifests project, e.g. xen-project/manifests")
    token_env: str | None = Field(None, description="Environment variable holding the token")
    token_file: str | None = Field(None, description="File holding the token")
    api_url: str | None = Field(
        None, description="API base; default: derived from url (GitHub: api.github.com, /api/v3)"
    )
    git_url: str | None = Field(
        None, description="Clone URL of project; default: <url>/<project>.git"
    )
    fork_project: str | None = Field(None, description="Project the bot pushes its branches to")
    fork_git_url: str | None = Field(None, description="Clone URL of fork_project")
    known_hosts: str | None = Field(None, description="Pinned known_hosts file for git over SSH")
    timeout: float = Field(30.0, gt=0, description="Seconds per HTTP request to the forge")

    @model_validator(mode="after")
    def _remote_forge_needs_project(self) -> ForgeConfig:
        if self.kind != "local" and not self.project:
            raise ValueError(f"forge kind {self.kind!r} needs `project` (e.g. group/manifests)")
        return self

    def web_url(self) -> str:
        default = "https://github.com" if self.kind == "github" else "https://gitlab.com"
        return (self.url or default).rstrip("/")

    def resolved_api_url(self) -> str:
        """The REST base the client talks to (python-gitlab adds `/api/v4` itself)."""
        if self.api_url:
            api = self.api_url.rstrip("/")
            return api.removesuffix("/api/v4") if self.kind == "gitlab" else api
        web = self.web_url()
        if self.kind != "github":
            return web
        return "https://api.github.com" if web == "https://github.com" else web + "/api/v3"

    def clone_url(self) -> str:
        return self.git_url or f"{self.web_url()}/{self.project}.git"

    def push_url(self) -> str:
        """Where the bot's branches go: the fork when there is one."""
        if not self.fork_project:
            return self.clone_url()
        return self.fork_git_url or f"{self.web_url()}/{self.fork_project}.git"


class Config(_Frozen):
    state: Path = Field(Path(".xsabot"), description="State dir: work repos, local mirror, logs")
    manifests: Path = Path("manifests")
    namespace: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+/$")] = "xsa/"
    identity: Identity = Identity()
    trees: dict[Annotated[str, Field(pattern=_TREE_NAME)], Tree] = {
        "xen": Tree(upstream=XEN_UPSTREAM)
    }
    forge: ForgeConfig = ForgeConfig()

    @model_validator(mode="after")
    def _local_ci_needs_a_command(self) -> Config:
        for name, tree in self.trees.items():
            if self.forge.token_env and self.forge.token_env in tree.check_env:
                raise ValueError(
                    f"trees.{name}.check_env: {self.forge.token_env} is forge.token_env; the "
                    "check runs the tree's code and never gets the token"
                )
            if tree.check_via == "forge-ci" and self.forge.kind == "local" and not tree.check:
                raise ValueError(
                    f"trees.{name}: check_via forge-ci with the local forge needs `check`, "
                    "the command the local forge runs as its CI"
                )
        return self

    def mirror_of(self, tree: str) -> str:
        configured = self.trees[tree].mirror
        return configured or str(self.state / "mirrors" / f"{tree}.git")

    def upstream_of(self, tree: str) -> str:
        """Upstream location; `XSABOT_UPSTREAM_<TREE>` points a tree at a local clone."""
        env = os.environ.get("XSABOT_UPSTREAM_" + re.sub(r"\W", "_", tree.upper()))
        return _location(Path.cwd(), env) if env else self.trees[tree].upstream


def _resolve(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()


def _location(base: Path, location: str) -> str:
    """A local repository path made absolute (git runs elsewhere); URLs stay as they are."""
    if "://" in location or re.match(r"^[\w.-]+@[\w.-]+:", location):
        return location
    return str(_resolve(base, Path(location).expanduser()))


def _with_locations(config: Config, base: Path) -> dict[str, Tree]:
    return {
        name: tree.model_copy(
            update={
                "upstream": _location(base, tree.upstream),
                "mirror": _location(base, tree.mirror) if tree.mirror else None,
            }
        )
        for name, tree in config.trees.items()
    }


def load_config(path: Path | None, cwd: Path | None = None) -> Config:
    """Read the config file (or the default one in `cwd`, or the embedded default)."""
    cwd = cwd or Path.cwd()
    if path is None:
        path = next((cwd / n for n in CONFIG_NAMES if (cwd / n).is_file()), None)
    if path is None:
        data: dict[str, object] = {}
        base = cwd
    else:
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        try:
            loaded = YAML(typ="safe").load(path.read_text())
        except OSError as exc:
            raise UsageError(f"{path}: cannot read config: {exc.strerror}") from None
        except YAMLError as exc:
            raise UsageError(f"{path}: not valid YAML: {exc}") from None
        data = loaded or {}
        if not isinstance(data, dict):
            raise UsageError(f"{path}: the config must be a mapping")
        base = path.parent.resolve()
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        ]
        raise UsageError("invalid config:\n" + "\n".join(lines)) from None
    return config.model_copy(
        update={
            "state": _resolve(base, config.state),
            "manifests": _resolve(base, config.manifests),
            "trees": _with_locations(config, base),
        }
    )


def with_overrides(
    config: Config,
    *,
    manifests: Path | None = None,
    state: Path | None = None,
    upstreams: dict[str, str] | None = None,
    mirrors: dict[str, str] | None = None,
    checks: dict[str, str] | None = None,
) -> Config:
    """Apply command-line overrides; `--upstream TREE=...` may name a tree not in the config."""
    trees = dict(config.trees)
    upstreams = dict(upstreams or {})
    if "" in upstreams:  # a bare --upstream PATH: every configured tree
        bare = upstreams.pop("")
        upstreams = {name: bare for name in trees} | upstreams
    cwd = Path.cwd()
    for name, url in upstreams.items():
        url = _location(cwd, url)
        current = trees.get(name)
        trees[name] = (
            current.model_copy(update={"upstream": url}) if current else Tree(upstream=url)
        )
    for name, url in (mirrors or {}).items():
        current = trees.get(name)
        if current is None:
            raise UsageError(f"--mirror {name}=...: no tree {name!r} (give --upstream too)")
        trees[name] = current.model_copy(update={"mirror": _location(cwd, url)})
    for name, command in (checks or {}).items():
        current = trees.get(name)
        if current is None:
            raise UsageError(f"--check {name}=...: no tree {name!r}")
        trees[name] = current.model_copy(update={"check": command})
    update: dict[str, object] = {"trees": trees}
    if manifests is not None:
        update["manifests"] = manifests.resolve()
    if state is not None:
        update["state"] = state.resolve()
    return config.model_copy(update=update)
