"""The one place that runs the operator's check command (git itself runs in `bot/git/`).

A check runs on a tree, not a commit: the same tree built twice (a new base with the same
content, a rebuilt branch) is one check, so verdicts are cached by tree ID (and command) under
`<state>/checks/results/`, and a tree is never checked twice. A timeout is no verdict (the
machine was slow or busy; the tree may be fine): it is not cached, and the next pass checks
again. The tree is exported (`bot.git.export`) into `<state>/checks/export/<tree>` (no work
tree, no `.git` for the build to look at), the command runs there through `/bin/sh -c` (the
operator owns it, the manifests never carry one) in its own process group with a timeout, a
minimal environment and stdin closed; its whole output goes to `<state>/checks/logs/<tree>.log`.

The output reaches published notes and merge requests (a held-back XSA's compiler errors), so
it must not depend on the host: the export directory is at a fixed place, and every mention of
it in the output is made relative to the tree (`<export>/xen/common/foo.c` -> `xen/common/foo.c`,
`<export>` -> `.`) before anything reads it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bot.errors import SetupError
from bot.git.export import export_tree

logger = logging.getLogger(__name__)
Status = Literal["passed", "failed", "timeout"]
_FINAL: tuple[Status, ...] = ("passed", "failed")  # verdicts; a timeout is not one
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
# Results recorded before output was made relative to the tree carry the host's paths (and a
# random directory name): they are checked again rather than published.
_FORMAT = 2


class CheckTimedOut(SetupError):
    """The check gave no verdict on `tree` within `timeout` seconds.

    That says nothing about the tree (a loaded machine, a slow pipeline): no XSA may be held
    back for it, and nothing is cached, so the next pass checks the same tree again.
    """

    def __init__(self, tree: str, timeout: float, command: str) -> None:
        self.tree = tree
        self.timeout = timeout
        self.command = command
        super().__init__(
            f"the check of tree {tree} ({command}) timed out after {timeout:g} s: no XSA is "
            "held back for it, and the next pass checks the tree again"
        )


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
    """The `Check` port over the operator's command, run here on an export of the tree."""

    reports_compiler_output = True  # its log is the compiler's own output

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

    def add_candidate(self, tree: str, commit: str, branch: str) -> None:
        """Nothing to do: the command runs on the tree itself."""

    def cached(self, tree: str) -> CheckResult | None:
        """The recorded result of this command on `tree`, if there is one; runs nothing."""
        return read_verdict(self.results, self.logs, tree, self.command, _FORMAT)

    def check(self, tree: str) -> CheckResult:
        """Run the check on `tree` (which must be in the repository: flush the store first)."""
        if not _TREE_ID.fullmatch(tree):  # it names files under the state dir
            raise ValueError(f"not a tree ID: {tree!r}")
        found = self.cached(tree)
        if found is not None:
            return found
        exports = self.root / "export"
        for d in (self.results, self.logs, exports):
            d.mkdir(parents=True, exist_ok=True)
        # The export's path is fixed (the output must not vary), so two processes on one state
        # dir checking one tree would share it: the second waits, then finds the first's result.
        with open(exports / f"{tree}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = self.cached(tree)
            if found is not None:
                return found
            export = (exports / tree).absolute()
            scratch = [export, export.with_name(f"{tree}.out"), export.with_name(f"{tree}.log")]
            for path in scratch:  # left by a run that was killed
                _remove(path)
            try:
                export_tree(self.repo_path, tree, export)
                result = self._run(tree, export)
            finally:
                for path in scratch:
                    _remove(path)
            self.runs += 1
            if result.status in _FINAL:
                self._record(result)
            return result

    def _run(self, tree: str, export: Path) -> CheckResult:
        log = self.logs / f"{tree}.log"
        raw = export.with_name(f"{tree}.out")
        # Written beside the export and renamed (same file system): readers see only whole logs.
        partial = export.with_name(f"{tree}.log")
        started = time.monotonic()
        with open(raw, "wb") as out:
            try:
                proc = subprocess.Popen(
                    [SHELL, "-c", self.command],
                    cwd=export,
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
        _relative_to(export, raw, partial)
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
            "format": _FORMAT,
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


def _relative_to(export: Path, raw: Path, dest: Path) -> None:
    """Copy the output `raw` to `dest` with the export directory made relative: a path in it
    loses its `<export>/` (the file's path in the tree), the directory itself becomes `.`.

    Both spellings are replaced: the one the runner gave, and the one without symlinks that a
    build gets from getcwd() (make's "Entering directory", $(CURDIR), absolute include dirs).
    Line by line: a path never spans lines, and a build log may not fit in memory.
    """
    spellings = sorted({os.fsencode(export), os.fsencode(os.path.realpath(export))}, key=len)
    with open(raw, "rb") as src, open(dest, "wb") as out:
        for line in src:
            for path in reversed(spellings):  # the longer first: one may start with the other
                line = line.replace(path + b"/", b"").replace(path, b".")
            out.write(line)


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
    """Remove the export (or a file beside it), including directories a build left read-only;
    nothing to remove is fine."""
    if not path.is_dir() or path.is_symlink():
        path.unlink(missing_ok=True)
        return

    def retry(func: Callable[..., Any], name: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(name), stat.S_IRWXU)
            func(name)
        except OSError as exc:
            logger.warning("cannot remove %s: %s", name, exc.strerror)

    shutil.rmtree(path, onerror=retry)


def read_verdict(
    results: Path, logs: Path, tree: str, command: str, form: int | None = None
) -> CheckResult | None:
    """The verdict recorded for `command` on `tree`: None for another command's result, an
    older record format, or a timeout (which is no verdict)."""
    try:
        data = json.loads((results / f"{tree}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("command") != command:
        return None
    if (form is not None and data.get("format") != form) or data.get("status") not in _FINAL:
        return None
    return CheckResult(
        tree=tree,
        status=data["status"],
        seconds=float(data["seconds"]),
        tail=str(data["tail"]),
        log=logs / f"{tree}.log",
        cached=True,
        exit_status=data.get("exit_status"),
    )
