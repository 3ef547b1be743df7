"""The forge token: where it comes from, and how git gets it without it ever being visible.

The token is read from the environment variable or file the config names (never from the
config itself) and registered with `bot.redact` at once, so any message that
would carry it shows `***` instead.

At start-up (`take_secrets`, then `take_configured_secrets` once the config is read) every
secret leaves the process environment: the configured `token_env` and every variable whose name
says it holds one (`CI_JOB_TOKEN`, `GITHUB_TOKEN`, `*_PASSWORD`, ...). Their values stay in
memory here, for `read_token`; the kernel's copy of the initial environment
(`/proc/<pid>/environ`, which removing a variable from `os.environ` does not change) is
overwritten, and the process is made non-dumpable, so that another process of the same user
(the check runs the tree's code) can read neither that file nor the process's memory.

git over HTTPS gets the token as an `http.<origin>.extraHeader` set through
`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`: not in a URL (which git prints in
errors and stores in FETCH_HEAD), not in argv (visible to every user through ps), and scoped
to the forge's origin so a redirect elsewhere does not receive it.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import shlex
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bot.errors import SetupError
from bot.redact import SECRET_NAME, register_secret, register_secret_file

if TYPE_CHECKING:
    from bot.config import Config, ForgeConfig

# The username git sends with the token as password; the forges ignore it for tokens but
# each documents one that always works (GitHub's also covers app installation tokens).
_BASIC_USER = {"gitlab": "oauth2", "github": "x-access-token"}


_taken: dict[str, str] = {}  # variables removed from the environment, by name
_PR_SET_DUMPABLE = 4


def take_secrets(
    names: Iterable[str] = (), environ: MutableMapping[str, str] | None = None
) -> list[str]:
    """Remove `names` and every variable `SECRET_NAME` matches from the environment, keeping
    their values for `read_token` and registering them as secrets; returns the names removed.

    On `os.environ` (the default) the kernel's copy of the initial environment is wiped too.
    """
    target = os.environ if environ is None else environ
    wanted = set(names)
    removed = [k for k in list(target) if k in wanted or SECRET_NAME.search(k)]
    for name in removed:
        value = target.pop(name)
        _taken[name] = value
        register_secret(value)
    if removed and environ is None:
        wipe_initial_environment(removed)
    return removed


def take_configured_secrets(config: Config) -> None:
    """Take what the config names: its `token_env` and `token_file` (read now, best effort:
    a command that never talks to the forge must not fail for a missing token), and the
    passwords of URLs in it."""
    forge = config.forge
    if forge.token_env:
        take_secrets([forge.token_env])
    if forge.token_file:
        path = Path(forge.token_file).expanduser()
        register_secret_file(path)
        with contextlib.suppress(OSError, UnicodeDecodeError):
            register_secret(path.read_text())
    _take_notify_secrets(config)
    urls = [forge.url, forge.api_url, forge.git_url, forge.fork_git_url]
    for tree in config.trees.values():
        urls += [tree.upstream, tree.mirror]
    for url in urls:
        if url and "://" in url:
            with contextlib.suppress(ValueError):
                if urlsplit(url).password:
                    register_secret(str(urlsplit(url).password))


def _take_notify_secrets(config: Config) -> None:
    """The same for the notification channels' secrets (`notify:`)."""
    email, webhook = config.notify.email, config.notify.webhook
    names = [email.username_env, email.password_env] if email else []
    files = [email.username_file, email.password_file] if email else []
    if webhook:
        names.append(webhook.secret_env)
        files.append(webhook.secret_file)
        with contextlib.suppress(ValueError):
            if urlsplit(webhook.url).password:
                register_secret(str(urlsplit(webhook.url).password))
    take_secrets([n for n in names if n])
    for file in files:
        if file:
            path = Path(file).expanduser()
            register_secret_file(path)
            with contextlib.suppress(OSError, UnicodeDecodeError):
                register_secret(path.read_text())


def environment_value(name: str) -> str | None:
    """A variable's value, also when `take_secrets` took it out of the environment."""
    return _taken.get(name, os.environ.get(name))


def wipe_initial_environment(names: Iterable[str]) -> bool:
    """Overwrite the `NAME=value` strings of `names` in the process's initial environment,
    which the kernel shows in `/proc/<pid>/environ` whatever `os.environ` says since (they were
    removed from it first, so nothing refers to them). False when this is not Linux or the
    memory is not where /proc says: then nothing is touched."""
    wanted = {n.encode() for n in names}
    try:
        stat = Path("/proc/self/stat").read_bytes()
        fields = stat[stat.rindex(b")") + 2 :].split()
        start, end = int(fields[50 - 3]), int(fields[51 - 3])  # env_start, env_end: proc(5)
        shown = Path("/proc/self/environ").read_bytes()
    except (OSError, ValueError, IndexError):
        return False
    if not 0 < start < end or end - start != len(shown):
        return False
    if ctypes.string_at(start, end - start) != shown:
        return False
    offset = 0
    for entry in shown.split(b"\0"):
        if entry.partition(b"=")[0] in wanted:
            ctypes.memset(start + offset, 0, len(entry))
        offset += len(entry) + 1
    return True


def protect_process() -> bool:
    """Make this process non-dumpable: processes of the same user can then read neither its
    `/proc/<pid>/environ` nor its memory (where the token is), nor attach a debugger to it, and
    it leaves no core dump. Children get back the default when they exec. False off Linux."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def read_secret(
    what: str, env: str | None, file: str | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The secret in the variable `env` (first) or the file `file`, registered for redaction
    (and the file masked from a sandboxed check); None when neither is configured. `what`
    names the config keys in errors (`forge.token`, `notify.email.password`). With no
    `environ`, a variable `take_secrets` removed from the environment still counts."""
    if env:
        found = environment_value(env) if environ is None else environ.get(env)
        value = (found or "").strip()
        if value:
            register_secret(value)
            return value
        if not file:
            raise SetupError(f"{what}_env names {env}, which is not set or empty")
    if file:
        path = Path(file).expanduser()
        register_secret_file(path)
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise SetupError(f"{what}_file {path}: cannot read: {exc.strerror}") from None
        if not value:
            raise SetupError(f"{what}_file {path} is empty")
        register_secret(value)
        return value
    return None


def read_token(config: ForgeConfig, environ: Mapping[str, str] | None = None) -> str:
    """The token named by `token_env` (first) or `token_file`; registered as a secret."""
    token = read_secret("forge.token", config.token_env, config.token_file, environ)
    if token is None:
        raise SetupError(
            f"the {config.kind} forge needs a token: set forge.token_env (an environment "
            "variable) or forge.token_file in the config"
        )
    return token


def git_env(config: ForgeConfig, token: str, url: str) -> dict[str, str]:
    """Environment for a git command that talks to `url` (fetch, ls-remote, push)."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        user = _BASIC_USER.get(config.kind, "oauth2")
        basic = base64.b64encode(f"{user}:{token}".encode()).decode()
        register_secret(basic)
        origin = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/"
        return {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"http.{origin}.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }
    if parts.scheme == "ssh" or (not parts.scheme and ":" in url and "@" in url.split(":")[0]):
        # SSH authenticates with the operator's key; what matters here is that the host key
        # is pinned, so a spoofed host cannot receive the bot's pushes.
        options = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        if config.known_hosts:
            known = str(Path(config.known_hosts).expanduser())
            options += ["-o", f"UserKnownHostsFile={known}"]
        return {"GIT_SSH_COMMAND": shlex.join(["ssh", *options])}
    return {}
