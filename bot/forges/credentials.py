"""The forge token: where it comes from, and how git gets it without it ever being visible.

The token is read from the environment variable or file the config names (never from the
config itself) and registered with `bot.redact` at once, so any message that
would carry it shows `***` instead. git over HTTPS gets it as an `http.<origin>.extraHeader`
set through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`: not in a URL (which git
prints in errors and stores in FETCH_HEAD), not in argv (visible to every user through ps),
and scoped to the forge's origin so a redirect elsewhere does not receive it.
"""

from __future__ import annotations

import base64
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from bot.config import ForgeConfig
from bot.errors import SetupError
from bot.redact import register_secret

# The username git sends with the token as password; the forges ignore it for tokens but
# each documents one that always works (GitHub's also covers app installation tokens).
_BASIC_USER = {"gitlab": "oauth2", "github": "x-access-token"}


def read_token(config: ForgeConfig, environ: Mapping[str, str] | None = None) -> str:
    """The token named by `token_env` (first) or `token_file`; registered as a secret."""
    environ = os.environ if environ is None else environ
    if config.token_env:
        value = environ.get(config.token_env, "").strip()
        if value:
            register_secret(value)
            return value
        if not config.token_file:
            raise SetupError(f"forge.token_env names {config.token_env}, which is not set or empty")
    if config.token_file:
        path = Path(config.token_file).expanduser()
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise SetupError(f"forge.token_file {path}: cannot read: {exc.strerror}") from None
        if not value:
            raise SetupError(f"forge.token_file {path} is empty")
        register_secret(value)
        return value
    raise SetupError(
        f"the {config.kind} forge needs a token: set forge.token_env (an environment variable) "
        "or forge.token_file in the config"
    )


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
