"""The bot config: trees (upstream, mirror), manifests dir, namespace, identity, forge, state.

One YAML file (`xsabot.yaml`), every field optional: with no file at all the embedded default
runs the whole loop on one machine (upstream = the public Xen repository, mirror = a bare
repository under the state dir, forge = a local proposals directory). Tokens never live in
this file: only the names of environment variables or files that hold them.

The file is read like a manifest (`bot.manifest.yamldoc`): every problem is reported at its
line and column, control characters are refused in every value (but line breaks and tabs in a
tree's `check`, a shell script), and paths may start with `~` or `~user`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from bot.errors import InvalidConfig, Problem, UsageError
from bot.redact import SECRET_NAME

XEN_UPSTREAM = "https://xenbits.xen.org/git-http/xen.git"
CONFIG_NAMES = ("xsabot.yaml", "xsabot.yml")
_TREE_NAME = r"^[a-z0-9][a-z0-9-]*$"
_VARIABLE = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_BYTES = 1 << 20  # a config is a few hundred bytes
# Where a value may hold line breaks and tabs: a tree's check, a shell script.
_FREE_TEXT = frozenset({"check"})
# Values that are paths on this machine, `~` expanded: (key path, `*` for any tree).
_PATHS = (
    ("state",),
    ("manifests",),
    ("trees", "*", "upstream"),
    ("trees", "*", "mirror"),
    ("forge", "token_file"),
    ("forge", "known_hosts"),
    ("notify", "email", "username_file"),
    ("notify", "email", "password_file"),
    ("notify", "webhook", "secret_file"),
)
# git's `crud()` (ident.c): what git strips from both ends of a name or email; and what it
# drops anywhere, since it delimits the fields of an author or committer line.
_IDENT_CRUD = " ,:;<>\"\\'"
_IDENT_DELIMITERS = "<>\n"


def _git_ident(what: str) -> AfterValidator:
    """A name or email as git writes it into a commit: crud stripped from both ends, and
    refused (instead of silently changed, as git does) when a delimiter or a control character
    is left inside or nothing is left at all."""

    def check(value: str) -> str:
        stripped = value.strip(_IDENT_CRUD + "".join(map(chr, range(33))))
        bad = next(
            (c for c in stripped if c in _IDENT_DELIMITERS or unicodedata.category(c) == "Cc"),
            None,
        )
        if bad is not None:
            shown = "a line break" if bad == "\n" else repr(bad)
            raise ValueError(f"git does not allow {shown} in an identity's {what}")
        if not stripped:
            raise ValueError(f"the {what} is empty once git strips spaces and `,:;<>\"\\'`")
        return stripped

    return AfterValidator(check)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def check_location(value: str) -> str:
    """A repository location (path or URL) that git reads as one: never as an option (a
    mirror `-ux@y:...` would reach `git ls-remote` as `--upload-pack`), never split by a
    control character (the work repository lists a borrowed path per line)."""
    if not value:
        raise ValueError("a repository location may not be empty")
    if value.startswith("-"):
        raise ValueError(f"a repository location may not start with '-' (got {value[:40]!r})")
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError("a repository location may not contain control characters")
    return value


def _checked_location(where: str, value: str) -> str:
    """`check_location` for a value from the command line or the environment."""
    try:
        return check_location(value)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None


class Identity(_Frozen):
    """Committer of every commit the bot makes; part of the build inputs."""

    name: Annotated[str, _git_ident("name")] = Field(
        "xsabot", description="Committer name of every commit the bot makes"
    )
    email: Annotated[str, _git_ident("email")] = Field(
        "xsabot@xenproject.invalid", description="Committer email of every commit the bot makes"
    )


class Tree(_Frozen):
    upstream: str = Field(description="URL or path of the upstream repository")
    mirror: str | None = Field(
        None, description="URL or path of the mirror; default: <state>/mirrors/<tree>.git"
    )
    copy_upstream_refs: bool = Field(
        False,
        description="Also copy upstream's RELEASE-* tags and the manifests' source branches "
        "into the mirror, under refs/xsabot/upstream/tags/ and refs/xsabot/upstream/heads/ "
        "(never over the mirror's own refs; a tag copy is never moved)",
    )
    check: str | tuple[str, ...] | None = Field(
        None,
        description="Command that must pass on a built tree before it is published, run with "
        "/bin/sh in an export of the tree, e.g. `make -C xen defconfig && make -C xen -j2`; "
        "or a list of commands that must all pass (a config matrix), each in a build "
        "directory of its own",
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

    @field_validator("upstream", "mirror")
    @classmethod
    def _location(cls, value: str | None) -> str | None:
        return value if value is None else check_location(value)

    @field_validator("check")
    @classmethod
    def _commands(cls, value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        if isinstance(value, tuple):
            if not value:
                raise ValueError("an empty list of check commands; leave `check` out instead")
            if not all(c.strip() for c in value):
                raise ValueError("an empty check command in the list")
            if len(value) == 1:
                return value[0]
        return value

    @property
    def gated(self) -> bool:
        return self.check is not None or self.check_via == "forge-ci"

    @property
    def check_commands(self) -> tuple[str, ...]:
        """The check's commands, all of which must pass (one, unless `check` is a list)."""
        if self.check is None:
            return ()
        return (self.check,) if isinstance(self.check, str) else self.check

    @property
    def check_text(self) -> str | None:
        """The check as reports and the inputs digest name it: its commands, one a line."""
        return "\n".join(self.check_commands) if self.check is not None else None


class ForgeConfig(_Frozen):
    """Where the manifests repository lives and how the bot reaches it.

    `url` is the forge's web base (`https://gitlab.com`, a self-hosted GitLab such as
    `https://git.example.org/gitlab`, `https://github.com` or a GitHub Enterprise host); the API
    and clone URLs are derived from it unless given. With `fork_project` the bot pushes its
    branches to that fork and opens merge requests from it into `project`.
    """

    kind: Literal["local", "gitlab", "github"] = Field(
        "local",
        description="local: proposals are branches of the manifests directory's repository; "
        "gitlab or github: merge requests on that forge",
    )
    url: str | None = Field(
        None,
        description="The forge's web base, e.g. https://gitlab.com or a self-hosted "
        "https://git.example.org/gitlab; default: https://gitlab.com or https://github.com",
    )
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

    @field_validator("git_url", "fork_git_url")
    @classmethod
    def _location(cls, value: str | None) -> str | None:
        return value if value is None else check_location(value)

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


class EmailNotify(_Frozen):
    """Plain-text email through an SMTP server; the password only from env or a file."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    smtp: str = Field(description="SMTP server as host:port, e.g. smtp.example.org:587")
    starttls: bool = Field(True, description="Upgrade the connection with STARTTLS first")
    sender: str = Field(alias="from", description="From address; Message-IDs use its domain")
    to: list[str] = Field(min_length=1, description="Recipients, e.g. a mailing list")
    username_env: str | None = Field(None, description="Environment variable holding the SMTP user")
    username_file: str | None = Field(None, description="File holding the SMTP user")
    password_env: str | None = Field(
        None, description="Environment variable holding the SMTP password"
    )
    password_file: str | None = Field(None, description="File holding the SMTP password")
    timeout: float = Field(30.0, gt=0, description="Seconds per SMTP connection")

    @field_validator("smtp")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port, got {value!r}")
        return value

    @field_validator("sender", "to")
    @classmethod
    def _addresses(cls, value: str | list[str]) -> str | list[str]:
        for address in [value] if isinstance(value, str) else value:
            if not re.fullmatch(r"[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+", address):
                raise ValueError(f"{address!r} is not an email address (user@domain)")
        return value


class WebhookNotify(_Frozen):
    """A JSON POST per notification, signed with HMAC-SHA256 when a secret is given."""

    url: str = Field(description="http(s) URL the JSON is POSTed to")
    secret_env: str | None = Field(None, description="Environment variable holding the secret")
    secret_file: str | None = Field(None, description="File holding the secret")
    timeout: float = Field(30.0, gt=0, description="Seconds per request")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value) or re.search(r"[\x00-\x20\x7f]", value):
            raise ValueError("a webhook url is http:// or https://, without spaces")
        return value


class NotifyConfig(_Frozen):
    """Where state changes are announced (`xsabot notify --test` tries every channel)."""

    email: EmailNotify | None = Field(None, description="Plain-text email (first for Xen)")
    webhook: WebhookNotify | None = Field(None, description="A signed JSON POST per message")
    forge_comment: bool = Field(
        False, description="Also comment on the bot's own merge request of a blocked XSA"
    )
    environment_grace: float = Field(
        3600.0, ge=0, description="Seconds a tree's passes may fail for the environment first"
    )
    retry_seconds: float = Field(
        60.0, ge=0, description="Wait before retrying a failed send; doubled each time, to 1h"
    )

    @property
    def channels(self) -> tuple[str, ...]:
        named = (("email", self.email), ("webhook", self.webhook))
        found = tuple(name for name, c in named if c is not None)
        return found + (("forge_comment",) if self.forge_comment else ())


SHARD = re.compile(r"^(\d{1,6})/(\d{1,6})$")
_GLOB = re.compile(r"[*?\[]")


def shard_of(name: str, count: int) -> int:
    """The shard (0 to count-1) of the manifest named `name`: from sha256 of the name, so the
    same on every machine and every Python (not `hash()`, which is salted per process)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % count


def split_glob(path: Path) -> tuple[Path, str | None]:
    """`manifests/4.1*.yaml` is the directory `manifests` and the file-name glob `4.1*.yaml`;
    a path without `*`, `?` or `[` is a directory and no glob. Only the file name may be a
    glob: manifests live in one directory, which patch paths are relative to."""
    if _GLOB.search(str(path.parent)):
        raise UsageError(f"{path}: only the file name may be a glob (manifests/4.1*.yaml)")
    if not _GLOB.search(path.name):
        return path, None
    return path.parent, path.name


class Config(_Frozen):
    state: Path = Field(Path(".xsabot"), description="State dir: work repos, local mirror, logs")
    manifests: Path = Field(
        Path("manifests"),
        description="Manifests directory, or a glob of file names in one directory "
        "(manifests/4.1*.yaml): a pass builds only those; the others are still read for the "
        "checks across manifests",
    )
    manifests_glob: str | None = Field(
        None,
        description="Set from a glob `manifests`: the file-name glob of the manifests a pass "
        "builds",
    )
    shard: Annotated[str, Field(pattern=SHARD.pattern)] | None = Field(
        None,
        description="K/N: a pass builds only the manifests whose name's sha256 falls in shard "
        "K of N (0 <= K < N); N jobs with 0/N to N-1/N cover every manifest once",
    )
    namespace: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+/$")] = Field(
        "xsa/",
        description="Branches are published under refs/heads/<namespace>; every manifest's "
        "branch must start with it",
    )
    identity: Identity = Field(
        Identity(), description="Committer of every commit the bot makes; part of the build inputs"
    )
    trees: dict[Annotated[str, Field(pattern=_TREE_NAME)], Tree] = Field(
        {"xen": Tree(upstream=XEN_UPSTREAM)},
        description="The repositories manifests name with `tree:`, by name; default: xen, "
        "with the public Xen upstream and a mirror under the state dir",
    )
    forge: ForgeConfig = Field(
        ForgeConfig(), description="Where the bot's proposals (merge requests) go"
    )

    notify: NotifyConfig = Field(
        NotifyConfig(),
        description="Where notifications of state changes go (README: Notifications)",
    )

    @field_validator("shard")
    @classmethod
    def _shard_in_range(cls, value: str | None) -> str | None:
        match = SHARD.match(value or "")
        if match and not int(match[1]) < int(match[2]):
            raise ValueError(f"shard {value}: K/N needs 0 <= K < N")
        return value

    def builds(self, path: Path) -> bool:
        """Whether a pass builds the manifest at `path`: it matches `manifests_glob` and falls
        in `shard`. A pass still reads every manifest, for the checks across them."""
        if self.manifests_glob is not None and not fnmatch.fnmatchcase(
            path.name, self.manifests_glob
        ):
            return False
        match = SHARD.match(self.shard or "")
        return not match or shard_of(path.stem, int(match[2])) == int(match[1])

    @field_validator("namespace")
    @classmethod
    def _namespace_is_a_ref_component(cls, value: str) -> str:
        from bot.manifest.refname import check_ref_format

        why = check_ref_format(value + "x")  # a branch name must be able to follow it
        if why is not None:
            raise ValueError(f"branches under it are not valid git ref names: it {why}")
        return value

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
        name = "XSABOT_UPSTREAM_" + re.sub(r"\W", "_", tree.upper())
        env = os.environ.get(name)
        if not env:
            return self.trees[tree].upstream
        return _location(Path.cwd(), _checked_location(name, env))


def _resolve(base: Path, path: Path) -> Path:
    path = Path(_expand_user(str(path)))
    return path if path.is_absolute() else (base / path).resolve()


def _expand_user(path: str) -> str:
    """`path` with a leading `~` or `~user` expanded; UsageError when it cannot be."""
    expanded = os.path.expanduser(path)
    if expanded.startswith("~"):
        raise UsageError(f"{path}: {_no_home(path)}")
    return expanded


def _no_home(path: str) -> str:
    user = path.split("/", 1)[0]
    return f"cannot expand `{user}`: " + ("no home directory" if user == "~" else "no such user")


def _location(base: Path, location: str) -> str:
    """A local repository path made absolute (git runs elsewhere); URLs stay as they are."""
    if "://" in location or re.match(r"^[\w.-]+@[\w.-]+:", location):
        return location
    return str(_resolve(base, Path(location)))


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
    doc: Any = {}
    if path is None:
        base = cwd
    else:
        doc = _read(path)
        base = path.parent.resolve()
    from bot.manifest.wording import plain

    try:
        config = Config.model_validate(plain(doc))
    except ValidationError as exc:
        assert path is not None  # the embedded default is valid
        raise InvalidConfig([_validation_problem(path, doc, err) for err in exc.errors()]) from None
    manifests, pattern = split_glob(_resolve(base, config.manifests))
    return config.model_copy(
        update={
            "state": _resolve(base, config.state),
            "manifests": manifests,
            "manifests_glob": pattern or config.manifests_glob,
            "trees": _with_locations(config, base),
        }
    )


def _read(path: Path) -> Any:
    """The config file as ruamel's round-trip mapping; InvalidConfig with every problem."""
    from bot.manifest import yamldoc
    from bot.manifest.positions import Pos, node_pos

    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config: {exc.strerror}") from None
    problems: list[Problem] = []

    def problem(pos: Pos, field: str, message: str) -> None:
        problems.append(Problem(str(path), pos[0] + 1, pos[1] + 1, field, message))

    text, bad_byte = yamldoc.decode(data)
    if len(data) > MAX_BYTES:
        problem((0, 0), "", "the config is larger than 1 MiB")
    elif text is None:
        problem(bad_byte, "", "the config is not UTF-8 text")
    else:
        parsed = yamldoc.parse(text, "the config")
        for pos, message in parsed.problems:
            problem(pos, "", message.replace("YAML syntax:", "not valid YAML:", 1))
        doc = {} if parsed.problems or parsed.doc is None else parsed.doc
        if not isinstance(doc, dict):
            where = node_pos(doc) if hasattr(doc, "lc") else (0, 0)
            problem(where, "", "the config must be a mapping (`key: value` lines)")
        else:
            for pos, field, message in yamldoc.text_problems(doc, _FREE_TEXT):
                problem(pos, field, message)
            for pos, field, value in _path_values(doc):
                if os.path.expanduser(value).startswith("~"):
                    problem(pos, field, _no_home(value))
    if problems:
        raise InvalidConfig(problems)
    return doc


def _path_values(doc: Any) -> list[tuple[tuple[int, int], str, str]]:
    """Every value of `_PATHS` that is text starting with `~`: where, field, value."""
    from bot.manifest.positions import value_pos

    found = []
    for keys in _PATHS:
        level: list[tuple[Any, str]] = [(doc, "")]
        for key in keys[:-1]:
            level = [
                (value, f"{where}{name}.")
                for mapping, where in level
                if isinstance(mapping, dict)
                for name, value in mapping.items()
                if key in ("*", name) and isinstance(value, dict)
            ]
        last = keys[-1]
        for mapping, where in level:
            value = mapping.get(last)
            if isinstance(value, str) and value.startswith("~"):
                found.append((value_pos(mapping, last), f"{where}{last}", value))
    return found


def _validation_problem(path: Path, doc: Any, err: ErrorDetails) -> Problem:
    from bot.manifest.positions import locate

    loc = err["loc"]
    line, col = locate(doc, loc, at_key=err["type"] == "extra_forbidden") if loc else (0, 0)
    message = err["msg"].removeprefix("Value error, ")
    return Problem(str(path), line + 1, col + 1, ".".join(str(p) for p in loc), message)


def with_overrides(
    config: Config,
    *,
    manifests: Path | None = None,
    state: Path | None = None,
    upstreams: dict[str, str] | None = None,
    mirrors: dict[str, str] | None = None,
    checks: dict[str, str] | None = None,
    shard: str | None = None,
) -> Config:
    """Apply command-line overrides; `--upstream TREE=...` may name a tree not in the config."""
    trees = dict(config.trees)
    upstreams = dict(upstreams or {})
    if "" in upstreams:  # a bare --upstream PATH: every configured tree
        bare = upstreams.pop("")
        upstreams = {name: bare for name in trees} | upstreams
    cwd = Path.cwd()
    for name, url in upstreams.items():
        url = _location(cwd, _checked_location(f"--upstream {name}", url))
        current = trees.get(name)
        trees[name] = (
            current.model_copy(update={"upstream": url}) if current else Tree(upstream=url)
        )
    for name, url in (mirrors or {}).items():
        current = trees.get(name)
        if current is None:
            raise UsageError(f"--mirror {name}=...: no tree {name!r} (give --upstream too)")
        url = _checked_location(f"--mirror {name}", url)
        trees[name] = current.model_copy(update={"mirror": _location(cwd, url)})
    for name, command in (checks or {}).items():
        current = trees.get(name)
        if current is None:
            raise UsageError(f"--check {name}=...: no tree {name!r}")
        trees[name] = current.model_copy(update={"check": command})
    update: dict[str, object] = {"trees": trees}
    if manifests is not None:
        folder, update["manifests_glob"] = split_glob(manifests.absolute())
        update["manifests"] = folder.resolve()
    if shard is not None:
        match = SHARD.match(shard)
        if not match or not int(match[1]) < int(match[2]):
            raise UsageError(f"--shard {shard}: expected K/N with 0 <= K < N, e.g. 0/4")
        update["shard"] = shard
    if state is not None:
        update["state"] = state.resolve()
    return config.model_copy(update=update)
