"""The one place that runs the git program.

Every call has a timeout, runs with a scrubbed environment (no GIT_* from the caller, no
prompts, no user or system config that could change results), never goes through a shell,
and raises GitError with URLs and registered secrets redacted (`bot.redact`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.errors import GitError
from bot.redact import redact

DEFAULT_TIMEOUT = 600.0


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        XDG_CONFIG_HOME=os.devnull,  # nor ~/.config/git/attributes
        GIT_ASKPASS="true",
        SSH_ASKPASS="true",
        LC_ALL="C",
    )
    if extra:
        env.update(extra)
    return env


def git(
    args: Sequence[str | Path],
    *,
    cwd: str | Path | None = None,
    input: bytes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run `git ARGS` and return the completed process (stdout/stderr as bytes)."""
    argv = ["git", *(str(a) for a in args)]
    shown = redact(" ".join(argv))
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            input=input,
            capture_output=True,
            timeout=timeout,
            env=clean_env(env),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"{shown}: timed out after {timeout:g}s") from None
    except OSError as exc:
        raise GitError(f"{shown}: cannot run git: {exc.strerror}") from None
    if check and proc.returncode != 0:
        err = redact(proc.stderr.decode("utf-8", "replace").strip())
        raise GitError(f"{shown}: exit {proc.returncode}: {err}")
    return proc


def git_text(
    args: Sequence[str | Path],
    *,
    cwd: str | Path | None = None,
    input: bytes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run git and return stdout decoded and stripped of the final newline."""
    proc = git(args, cwd=cwd, input=input, timeout=timeout, env=env)
    return proc.stdout.decode("utf-8", "replace").rstrip("\n")
