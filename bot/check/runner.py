"""The one place that runs the operator's check command (git itself runs in `bot/git/runner.py`).

A check runs on a tree, not a commit: the same tree built twice (a new base with the same
content, a rebuilt branch) is one check, so results are cached by tree ID (and command) under
`<state>/checks/results/`, and a tree is never checked twice. The tree is exported with
`git archive` into a throw-away directory (no work tree, no `.git` for the build to look at),
the command runs there through `/bin/sh -c` (the operator owns it, the manifests never carry
one) in its own process group with a timeout, a minimal environment and stdin closed; its whole
output goes to `<state>/checks/logs/<tree>.log`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bot.errors import SetupError
from bot.git.runner import git

logger = logging.getLogger(__name__)
Status = Literal["passed", "failed", "timeout"]
_STATUSES = ("passed", "failed", "timeout")
TAIL_LINES = 40
SHELL = "/bin/sh"
# sh's own statuses for "command not found" and "found but not executable": the check never
# ran, which is the environment's fault, not the tree's. The same status from a recipe, as make
# reports it, means a tool the build needs is not installed (flex, bison, python3 for Xen):
# also the environment's, and no XSA may be blamed for it.
_CANNOT_START = (126, 127)
_TOOL_MISSING = re.compile(r"^make(?:\[\d+\])?: \*\*\* \[.*\] Error 12[67]$", re.MULTILINE)
_KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL of a timed-out check
_TREE_ID = re.compile(r"[0-9a-f]{40}")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class CheckResult:
    tree: str
    status: Status
    seconds: float
    tail: str  # the last lines of the output, for reports
    log: Path  # the whole output
    cached: bool  # read from an earlier run, not run now
    exit_status: int | None = None  # None: killed at the timeout

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def output(self) -> str:
        """The whole output (from the log; the tail if the log is gone)."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return self.tail


class CheckRunner:
    def __init__(
        self, command: str, *, repo_path: Path, state: Path, timeout: float = 1800
    ) -> None:
        self.command = command
        self.repo_path = repo_path
        self.timeout = timeout
        self.root = state / "checks"
        self.results = self.root / "results"
        self.logs = self.root / "logs"
        self.runs = 0  # checks actually run by this runner (not read from the cache)

    def cached(self, tree: str) -> CheckResult | None:
        """The recorded result of this command on `tree`, if there is one; runs nothing."""
        try:
            data = json.loads((self.results / f"{tree}.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("command") != self.command:
            return None  # another command's result: the check must run again
        if data.get("status") not in _STATUSES:
            return None
        if data["status"] == "timeout" and float(data.get("timeout", 0)) < self.timeout:
            return None  # it may finish with the longer time it is given now
        return CheckResult(
            tree=tree,
            status=data["status"],
            seconds=float(data["seconds"]),
            tail=str(data["tail"]),
            log=self.logs / f"{tree}.log",
            cached=True,
            exit_status=data.get("exit_status"),
        )

    def check(self, tree: str) -> CheckResult:
        """Run the check on `tree` (which must be in the repository: flush the store first)."""
        if not _TREE_ID.fullmatch(tree):  # it names files under the state dir
            raise ValueError(f"not a tree ID: {tree!r}")
        found = self.cached(tree)
        if found is not None:
            return found
        for d in (self.results, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        export = Path(tempfile.mkdtemp(prefix=f"{tree[:12]}-", dir=self.root))
        try:
            _export(self.repo_path, tree, export / "tree")
            result = self._run(tree, export)
        finally:
            _remove(export)
        self.runs += 1
        self._record(result)
        return result

    def _run(self, tree: str, export: Path) -> CheckResult:
        log = self.logs / f"{tree}.log"
        # Written in the export and renamed (same file system): readers see only whole logs.
        partial = export / "output.log"
        started = time.monotonic()
        with open(partial, "wb") as out:
            try:
                proc = subprocess.Popen(
                    [SHELL, "-c", self.command],
                    cwd=export / "tree",
                    env=_environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, killed as a whole
                )
            except OSError as exc:
                raise SetupError(f"check command cannot start: {SHELL}: {exc.strerror}") from None
            try:
                exit_status = _wait(proc, self.timeout)
            except BaseException:  # interrupted: leave no build running behind us
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        seconds = time.monotonic() - started
        tail = _tail(partial)
        os.replace(partial, log)
        if exit_status in _CANNOT_START:
            raise SetupError(
                f"check command cannot start (exit {exit_status}): {self.command}\n{tail}"
            )
        if exit_status and _TOOL_MISSING.search(log.read_text(errors="replace")):
            raise SetupError(f"check command: a tool the build runs is missing\n{tail}")
        status: Status = (
            "timeout" if exit_status is None else "passed" if exit_status == 0 else "failed"
        )
        return CheckResult(tree, status, seconds, tail, log, cached=False, exit_status=exit_status)

    def _record(self, result: CheckResult) -> None:
        data: dict[str, Any] = {
            "command": self.command,
            "status": result.status,
            "seconds": round(result.seconds, 3),
            "exit_status": result.exit_status,
            "timeout": self.timeout,
            "tail": result.tail,
        }
        final = self.results / f"{result.tree}.json"
        partial = final.with_name(f"{final.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(partial, final)


def _environment() -> dict[str, str]:
    """Only what a build needs: no tokens, no GIT_*, no MAKEFLAGS or compiler settings of
    whoever started the bot, and the C locale so compiler messages parse the same everywhere."""
    return {
        "PATH": os.environ.get("PATH") or _DEFAULT_PATH,
        "HOME": os.environ.get("HOME") or "/",
        "LANG": "C",
        "LC_ALL": "C",
    }


def _export(repo_path: Path, tree: str, dest: Path) -> None:
    """Write `tree`'s files into `dest`.

    Archiving a tree (not a commit) leaves `export-subst` files as they are in the tree, so the
    export depends on the tree ID only. The "tar" filter refuses absolute and `..` member names;
    symlinks are kept as they are (the operator's build runs in there anyway).
    """
    data = git(["archive", "--format=tar", tree], cwd=repo_path).stdout
    dest.mkdir()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(dest, filter="tar")


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The exit status, or None after killing the whole group at the timeout."""
    try:
        status = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=_KILL_GRACE)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        _signal_group(proc.pid, signal.SIGKILL)
        return None
    # Whatever the command left running in the background (a make job, a daemon) goes too.
    _signal_group(proc.pid, signal.SIGKILL)
    return status


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, sig)


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 256 * lines))  # long compiler lines: room for ~256 bytes each
        text = f.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def _remove(path: Path) -> None:
    """Remove the export, including directories a build left read-only."""

    def retry(func: Callable[..., Any], name: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(name), stat.S_IRWXU)
            func(name)
        except OSError as exc:
            logger.warning("cannot remove %s: %s", name, exc.strerror)

    shutil.rmtree(path, onerror=retry)
