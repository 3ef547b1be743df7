"""The one place that runs the operator's check command (git itself runs in `bot/git/`).

A check runs on a tree, not a commit: the same tree built twice (a new base with the same
content, a rebuilt branch) is one check, so verdicts are cached by tree ID (and command) under
`<state>/checks/results/`, and a tree is never checked twice. A timeout is no verdict (the
machine was slow or busy; the tree may be fine): it is not cached, and the next pass checks
again. The tree is exported (`bot.git.export`) into `<state>/checks/export/<tree>` (no work
tree, no `.git` for the build to look at), the command runs there through `/bin/sh -c` (the
operator owns it, the manifests never carry one) in its own process group with a timeout and
stdin closed; its whole output goes to `<state>/checks/logs/<tree>.log`. A check may be several
commands (a config matrix), run in turn; all must pass.

The gate checks a line's candidates incrementally (`check(tree, line=...)`): each line has
`SLOTS` build directories per command under `<state>/checks/build/<tree>/<line>/`; the one
holding the tree nearest the next is moved to it by writing only the files that differ
(`bot.git.export.update_tree`), so make rebuilds only what they touch. When even that one is
more than `FAR_HEADERS` headers away, the tree is exported afresh into the one built least
recently instead (a clean build: no cheaper either way, and its failure is final).
Only a failure after a move costs a clean export: it is checked again on one, and that
verdict is the one recorded (stale build state never fails a tree).
After a passing check the runner records which C files it compiled (an object beside the
source, at least as new), so the gate can name an XSA's files that no command compiled.

The command runs the tree's code (its Makefiles), so nothing of the bot's may be within its
reach. Its environment is built from nothing: PATH, HOME and TMPDIR in a scratch directory
beside the export (`<tree>.home`), the C locale, and only the variables the tree's
`check_env` names; never the bot's own (which holds no secret either: `bot.cli.main` takes them
out at start-up, and makes the bot's /proc entries unreadable to the check). With
`check_sandbox` (`auto`, the default: the first that works of `bwrap` and `unshare`) it runs
without network, in its own PID namespace (it sees no process of the bot's, and none of its
processes outlives it) and, with bwrap, on a read-only view of the machine where only the
export, the scratch directory and `check_writable` are writable, /tmp and the bot's home are
empty (but for the PATH directories in it), and the files that hold secrets are empty.
Without a sandbox, the processes the check leaves behind (even those that left its process
group) are killed when it ends: the bot adopts them as their subreaper.

The output reaches published notes and merge requests (a held-back XSA's compiler errors), so
it must not depend on the host: the export directory is at a fixed place, and every mention of
it in the output is made relative to the tree (`<export>/xen/common/foo.c` -> `xen/common/foo.c`,
`<export>` -> `.`) before anything reads it. Registered secrets are redacted from it
(`bot.redact`) as it is written, and again as it is read.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from bot.config import Config
from bot.errors import SetupError, XsabotError
from bot.git.export import export_tree, headers_between, update_tree
from bot.redact import has_secrets, redact, secret_files

logger = logging.getLogger(__name__)
Status = Literal["passed", "failed", "timeout"]
_FINAL: tuple[Status, ...] = ("passed", "failed")  # verdicts; a timeout is not one
TAIL_LINES = 40
FAR_HEADERS = 8  # see CheckRunner.far_headers
SLOTS = 2  # build directories per line and command (CheckRunner._slot)
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
Sandbox = Literal["auto", "bwrap", "unshare", "none"]
SANDBOXES: tuple[Sandbox, ...] = ("auto", "bwrap", "unshare", "none")
_PR_SET_CHILD_SUBREAPER = 36
_SCRATCH = (".out", ".log", ".home")  # beside an export or build directory, during a run
# The objects a build makes of `foo.c` beside it: Xen's `foo.o` and `foo.init.o`, the
# position-independent `foo.opic` of its tools' libraries, libtool's `foo.lo`.
_OBJECTS = (".o", ".init.o", ".opic", ".lo")
# Where distributions put ccache's compiler links: first in PATH, the build compiles through it.
_CCACHE_LINKS = (Path("/usr/lib/ccache"), Path("/usr/lib64/ccache"))


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
    incremental: bool = False  # run in a build directory moved here from an earlier tree
    # The C files (paths in the tree) that have an object at least as new as them in the build
    # directory after a passing check: what it compiled. None: not known (an older record).
    compiled: frozenset[str] | None = None
    # A clean run that confirmed an incremental failure: how long that failing run took.
    confirmed: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def output(self) -> str:
        """The whole output (from the log; the tail if the log is gone)."""
        try:
            return redact(self.log.read_text(errors="replace"))
        except OSError:
            return redact(self.tail)


@dataclass(frozen=True)
class CheckRun:
    """One check this runner ran (not read from the cache): the visible cost of a pass."""

    tree: str
    seconds: float
    incremental: bool  # in a line's build directory moved from an earlier tree
    passed: bool


class CheckRunner:
    """The `Check` port over the operator's command, run here on an export of the tree."""

    reports_compiler_output = True  # its log is the compiler's own output

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        repo_path: Path,
        state: Path,
        timeout: float = 1800,
        sandbox: Sandbox = "none",
        env: Sequence[str] = (),
        writable: Sequence[Path] = (),
        name: str = "tree",
    ) -> None:
        """`command`: one command, or several that must all pass (a config matrix), run in
        turn; `env`: names of the bot's variables the check gets too; `writable`: directories
        the sandbox lets it write to besides its own (a compiler cache); `name`: the config's
        tree, which names its build directories."""
        if sandbox not in SANDBOXES:
            raise ValueError(f"not a check sandbox: {sandbox!r}")
        self.commands = (command,) if isinstance(command, str) else tuple(command)
        if not self.commands or not all(self.commands):
            raise ValueError("a check needs at least one command, none of them empty")
        # What reports and the results cache call it: one command as it is, several one a line.
        self.command = "\n".join(self.commands)
        self.name = name
        self.repo_path = repo_path
        self.timeout = timeout
        self.sandbox: Sandbox = sandbox
        self.env = tuple(env)
        self.writable = tuple(Path(w).expanduser().absolute() for w in writable)
        self.root = state / "checks"
        self.results = self.root / "results"
        self.logs = self.root / "logs"
        self.builds = self.root / "build"
        self.runs = 0  # checks actually run by this runner (not read from the cache)
        self.exports = 0  # clean exports checked (first checks and confirmations of failures)
        self.history: list[CheckRun] = []  # every check run, confirmations included
        # A move across more headers than this builds afresh in the line's directory: make
        # would redo most of the tree anyway (on Xen, bisection steps cross 17-49 headers and
        # cost as much as a clean build), while a fresh build's failure needs no confirmation
        # and ccache gives it every object already compiled.
        self.far_headers = FAR_HEADERS

    @classmethod
    def for_tree(
        cls,
        config: Config,
        tree: str,
        *,
        repo_path: Path,
        state: Path | None = None,
        timeout: float | None = None,
    ) -> CheckRunner:
        """The runner of `tree`'s check command, confined as its config says: the one way the
        bot makes one (`tests/test_secrets.py` checks that)."""
        settings = config.trees[tree]
        if settings.check is None:
            raise ValueError(f"tree {tree!r} has no check command")
        return cls(
            settings.check_commands,
            repo_path=repo_path,
            name=tree,
            state=config.state if state is None else state,
            timeout=settings.check_timeout if timeout is None else timeout,
            sandbox=settings.check_sandbox,
            env=settings.check_env,
            writable=[Path(p) for p in settings.check_writable],
        )

    def add_candidate(self, tree: str, commit: str, branch: str) -> None:
        """Nothing to do: the command runs on the tree itself."""

    def cached(self, tree: str) -> CheckResult | None:
        """The recorded result of this command on `tree`, if there is one; runs nothing."""
        return read_verdict(self.results, self.logs, tree, self.command, _FORMAT)

    def check(self, tree: str, *, line: str | None = None) -> CheckResult:
        """Run the check on `tree` (which must be in the repository: flush the store first).

        With `line` (a branch), the check runs in that line's build directories, moved from
        the tree they hold to this one by rewriting only the files that differ, so the build
        redoes only what they touch. A failure there is confirmed on a clean export before it
        is recorded: the clean verdict is the one kept, so stale build state can never make a
        tree fail (and hold an XSA back). Without `line`, on a clean export only."""
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
            if line is None:
                result = self._clean(tree)
            else:
                result = self._incremental(tree, line)
                if result.status == "failed" and result.incremental:
                    # The confirmation, which only failures pay for: the clean verdict is kept.
                    result = replace(self._clean(tree), confirmed=result.seconds)
                    if result.passed:  # the build directory's state was wrong: start afresh
                        self._reset(line)
            if result.status in _FINAL:
                self._record(result)
            return result

    def _clean(self, tree: str) -> CheckResult:
        """The check on a fresh export of `tree`, removed afterwards."""
        export = (self.root / "export" / tree).absolute()
        scratch = [export, *(export.with_name(f"{tree}{s}") for s in _SCRATCH)]
        for path in scratch:  # left by a run that was killed
            _remove(path)
        try:
            export_tree(self.repo_path, tree, export)
            self.exports += 1
            result = self._run_all(tree, [export] * len(self.commands), incremental=False)
        finally:
            for path in scratch:
                _remove(path)
        return result

    def _incremental(self, tree: str, line: str) -> CheckResult:
        """The check in `line`'s build directories (one per command: each keeps its own
        configuration built), moved to `tree`."""
        base = self.builds / _safe_name(self.name) / _safe_name(line)
        base.mkdir(parents=True, exist_ok=True)
        with open(base.with_name(f"{base.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            dirs, moved = [], []
            for i, command in enumerate(self.commands):
                workdir, near = self._slot(base, i, tree, command)
                moved.append(self._move(workdir, tree, command, near))
                dirs.append(workdir)
            result = self._run_all(tree, dirs, incremental=any(moved))
            if result.status in _FINAL:
                for workdir, command in zip(dirs, self.commands, strict=True):
                    _mark(workdir).write_text(json.dumps({"tree": tree, "command": command}))
            else:  # stopped mid-build: what it left half-written is not to be built on
                for workdir in dirs:
                    _remove(workdir)
            return result

    def _reset(self, line: str) -> None:
        """Forget `line`'s build directories: the next check there exports afresh."""
        base = self.builds / _safe_name(self.name) / _safe_name(line)
        with open(base.with_name(f"{base.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _remove(base)

    def _slot(self, base: Path, index: int, tree: str, command: str) -> tuple[Path, bool]:
        """Of command `index`'s build directories (`SLOTS` of them), the one holding the tree
        nearest `tree` (the fewest headers between them), when it is near enough to move
        (True); else an empty one, or the one built least recently (False: built afresh).
        So a fresh build far away keeps the other directory's tree for the steps near it: a
        suspect's second check, the searches' verifications a few commits from the gate's
        trees."""
        slots = [(base / (f"{index}.{k}" if k else str(index))).absolute() for k in range(SLOTS)]
        held = {slot: _held(slot, command) for slot in slots}
        near = []
        for n, (slot, old) in enumerate(held.items()):
            try:
                if old is not None:
                    near.append((headers_between(self.repo_path, old, tree), n, slot))
            except XsabotError:  # a tree this repository lacks (another state's): far away
                pass
        if near and min(near)[0] <= self.far_headers:
            return min(near)[2], True
        empty = [slot for slot, old in held.items() if old is None]
        oldest = empty[0] if empty else min(slots, key=lambda s: _mark(s).stat().st_mtime)
        return oldest, False

    def _move(self, workdir: Path, tree: str, command: str, near: bool) -> bool:
        """Bring `workdir` to `tree`: True when moved from the tree it held, False when
        exported afresh (not `near`, nothing there yet, or it cannot be moved)."""
        held = _held(workdir, command) if near else None
        _mark(workdir).unlink(missing_ok=True)  # while it moves, it holds no known tree
        for path in (workdir.with_name(f"{workdir.name}{s}") for s in _SCRATCH):
            _remove(path)
        if held is not None:
            try:
                update_tree(self.repo_path, held, tree, workdir)
                return True
            except (XsabotError, ValueError, OSError) as exc:
                logger.info("build directory %s exported afresh: %s", workdir, exc)
        _remove(workdir)
        export_tree(self.repo_path, tree, workdir)
        return False

    def _run_all(self, tree: str, dirs: list[Path], *, incremental: bool) -> CheckResult:
        """Run the commands in turn (command i in `dirs[i]`) until one does not pass; the
        log holds each one's output, under a heading when there are several."""
        results: list[CheckResult] = []
        log = self.logs / f"{tree}.log"
        parts = []
        for i, (command, workdir) in enumerate(zip(self.commands, dirs, strict=True)):
            part = self.logs / f"{tree}.log.{i}"
            result = self._run(tree, command, workdir, part)
            parts.append(part)
            results.append(result)
            if result.status != "passed":
                break
        partial = log.with_name(f"{log.name}.{os.getpid()}.tmp")
        with open(partial, "wb") as out:
            for i, part in enumerate(parts):
                if len(self.commands) > 1:
                    out.write(f"=== check {i + 1}/{len(self.commands)}: ".encode())
                    out.write(redact(self.commands[i]).encode() + b"\n")
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out)
                part.unlink()
        os.replace(partial, log)
        last = results[-1]
        seconds = sum(r.seconds for r in results)
        compiled = None
        if last.status == "passed":
            compiled = frozenset().union(*(_compiled(d) for d in set(dirs)))
        self.runs += 1
        self.history.append(CheckRun(tree, seconds, incremental, last.status == "passed"))
        return CheckResult(
            tree,
            last.status,
            seconds,
            last.tail,
            log,
            cached=False,
            exit_status=last.exit_status,
            incremental=incremental,
            compiled=compiled,
        )

    def _run(self, tree: str, command: str, export: Path, log: Path) -> CheckResult:
        raw = export.with_name(f"{export.name}.out")
        # Written beside the export and renamed (same file system): readers see only whole logs.
        partial = export.with_name(f"{export.name}.log")
        home = export.with_name(f"{export.name}.home")
        _remove(home)
        (home / "tmp").mkdir(parents=True)
        sandbox = resolve_sandbox(self.sandbox)
        cache = self._ccache()
        writable = (*self.writable, cache) if cache else self.writable
        argv = sandboxed(sandbox, [SHELL, "-c", command], export, home, writable)
        if sandbox == "none" and os.geteuid() == 0 and has_secrets():
            logger.warning(
                "the check runs as root without a sandbox: it could read the bot's memory, "
                "where the forge token is; run the bot as another user, or with a sandbox"
            )
        started = time.monotonic()
        adopted = _adopt_orphans(True) if sandbox == "none" else False
        before = _children() if adopted else set()
        try:
            with open(raw, "wb") as out:
                try:
                    proc = subprocess.Popen(
                        argv,
                        cwd=export,
                        env=_environment(home, self.env, cache, export),
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own process group, killed as a whole
                    )
                except OSError as exc:
                    raise SetupError(
                        f"check command cannot start: {argv[0]}: {exc.strerror}"
                    ) from None
                try:
                    exit_status = _wait(proc, self.timeout)
                except BaseException:  # interrupted: leave no build running behind us
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
                    raise
        finally:
            if adopted:
                _kill_strays(before)
                _adopt_orphans(False)
        seconds = time.monotonic() - started
        _relative_to(export, raw, partial, home)
        _remove(raw)
        _remove(home)
        tail = _tail(partial)
        os.replace(partial, log)
        if exit_status in _CANNOT_START:
            raise SetupError(f"check command cannot start (exit {exit_status}): {command}\n{tail}")
        if exit_status and _TOOL_MISSING.search(log.read_text(errors="replace")):
            raise SetupError(f"check command: a tool the build runs is missing\n{tail}")
        status: Status = (
            "timeout" if exit_status is None else "passed" if exit_status == 0 else "failed"
        )
        return CheckResult(tree, status, seconds, tail, log, cached=False, exit_status=exit_status)

    def _ccache(self) -> Path | None:
        """The compiler cache under the state dir, when ccache is installed and the operator
        did not pass a CCACHE_DIR of their own; None otherwise."""
        if "CCACHE_DIR" in self.env or not any(d.is_dir() for d in _CCACHE_LINKS):
            return None
        if shutil.which("ccache") is None:
            return None
        cache = (self.root / "ccache").absolute()
        cache.mkdir(parents=True, exist_ok=True)
        return cache

    def _record(self, result: CheckResult) -> None:
        data: dict[str, Any] = {
            "format": _FORMAT,
            "command": self.command,
            "status": result.status,
            "seconds": round(result.seconds, 3),
            "exit_status": result.exit_status,
            "timeout": self.timeout,
            "incremental": result.incremental,
            "confirmed": round(result.confirmed, 3),
            "tail": result.tail,
        }
        if result.compiled is not None:
            data["compiled"] = sorted(result.compiled)
        final = self.results / f"{result.tree}.json"
        partial = final.with_name(f"{final.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(partial, final)


def _environment(
    home: Path, passed: Sequence[str] = (), ccache: Path | None = None, basedir: Path | None = None
) -> dict[str, str]:
    """Only what a build needs, built from nothing: no tokens, no GIT_*, no MAKEFLAGS or
    compiler settings of whoever started the bot (unless `passed` names them), a home and a
    temporary directory of its own, and the C locale so compiler messages parse the same
    everywhere. With `ccache` (its directory), the compiler runs through ccache's links, with
    paths under `basedir` hashed as relative ones and the working directory not hashed (hits
    across build directories)."""
    path = os.environ.get("PATH") or _DEFAULT_PATH
    env = {
        "PATH": path,
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "LANG": "C",
        "LC_ALL": "C",
    }
    if ccache is not None:
        links = next(str(d) for d in _CCACHE_LINKS if d.is_dir())
        env["PATH"] = f"{links}{os.pathsep}{path}"
        env["CCACHE_DIR"] = str(ccache)
        if basedir is not None:
            env["CCACHE_BASEDIR"] = str(basedir)
        # With -g, ccache hashes the working directory too: a clean confirmation (another
        # directory) would miss every object the build directory compiled. Debug info then
        # names the directory that compiled an object first; no check reads it.
        env["CCACHE_NOHASHDIR"] = "1"
        # A miss then costs no second run of the preprocessor where the build writes its
        # dependencies (-MD, as Xen's does): a cold Xen build took 50 s through ccache this
        # way, 57 s in ccache's default mode, 46 s without it; warm, 18 s either way.
        env["CCACHE_DEPEND"] = "1"
    for name in passed:
        value = os.environ.get(name)
        if value is not None:
            env[name] = value
    return env


def _safe_name(name: str) -> str:
    """A branch or tree name as one directory name (`xsa/4.18` -> `xsa+4.18`)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "+", name.replace("+", "++")).lstrip(".")
    return safe or "+"


def _mark(workdir: Path) -> Path:
    """Beside a line's build directory: the tree (and command) it holds, once built."""
    return workdir.with_name(f"{workdir.name}.tree")


def _held(workdir: Path, command: str) -> str | None:
    """The tree `workdir` holds built by `command`, by its mark; None: nothing to move."""
    try:
        held = json.loads(_mark(workdir).read_text())
    except (OSError, ValueError):
        return None
    if (
        isinstance(held, dict)
        and held.get("command") == command
        and isinstance(held.get("tree"), str)
        and _TREE_ID.fullmatch(held["tree"])
        and workdir.is_dir()
    ):
        return str(held["tree"])
    return None


def _compiled(root: Path) -> frozenset[str]:
    """The C files under `root` that a build compiled: an object of theirs beside them
    (`_OBJECTS`) at least as new as they are. In a build directory moved from tree to tree,
    an object older than its source is one the build did not remake: not compiled."""
    found = set()
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        names = set(files)
        for name in files:
            if not name.endswith(".c"):
                continue
            stem = name[:-2]
            try:
                source = os.stat(os.path.join(top, name)).st_mtime_ns
                newest = max(
                    (
                        os.stat(os.path.join(top, stem + suffix)).st_mtime_ns
                        for suffix in _OBJECTS
                        if stem + suffix in names
                    ),
                    default=None,
                )
            except OSError:
                continue
            if newest is not None and newest >= source:
                found.add(os.path.relpath(os.path.join(top, name), root))
    return frozenset(found)


def sandboxed(
    sandbox: Sandbox, argv: list[str], export: Path, home: Path, writable: Sequence[Path] = ()
) -> list[str]:
    """`argv` run in `sandbox` (`bwrap` or `unshare`; `none`: as it is)."""
    if sandbox == "unshare":
        # No network; its own PIDs (a /proc of its own; when the shell ends, every process of
        # the check ends with it); mapped to root in a user namespace, whose capabilities
        # reach nothing outside it.
        return [*_UNSHARE, *argv]
    if sandbox != "bwrap":
        return argv
    cmd = [*_BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    hidden = [Path("/tmp")]
    bot_home = Path(os.path.expanduser("~"))
    if bot_home.is_dir() and bot_home != Path("/"):
        hidden.append(bot_home)  # ~/.ssh, ~/.git-credentials, ~/.config: none of its business
    for path in hidden:
        cmd += ["--tmpfs", str(path)]
    for entry in (os.environ.get("PATH") or "").split(os.pathsep):
        tools = Path(entry)  # ~/.local/bin and the like stay usable, read-only
        under = [h for h in hidden if tools.is_relative_to(h) and tools != h]
        if tools.is_absolute() and tools.is_dir() and under:
            cmd += ["--ro-bind", str(tools), str(tools)]
    for path in (export, home, *writable):
        if path.is_dir():
            cmd += ["--bind", str(path), str(path)]
    for path in sorted(secret_files()):  # last: a directory bound above does not show them
        if path.is_file():
            cmd += ["--ro-bind", "/dev/null", str(path)]
    return [*cmd, "--chdir", str(export), *argv]


# --die-with-parent: killing bwrap (at the timeout) kills the check; --unshare-all: network,
# PIDs, IPC, UTS, cgroups, and the user namespace when there is one; --new-session: no
# writing into the bot's terminal.
_BWRAP = ["bwrap", "--die-with-parent", "--unshare-all", "--new-session"]
_UNSHARE = [
    *("unshare", "--user", "--map-root-user", "--net"),
    *("--pid", "--fork", "--mount-proc", "--kill-child"),
]


def resolve_sandbox(wanted: Sandbox) -> Sandbox:
    """The sandbox a check runs in: `auto` is the first of bwrap and unshare that works here
    (or none); a sandbox asked for by name that does not work is an environment error."""
    if wanted == "none":
        return "none"
    if wanted != "auto":
        why = _unavailable(wanted)
        if why:
            raise SetupError(f"check_sandbox {wanted}: not available here: {why}")
        return wanted
    for kind in ("bwrap", "unshare"):
        if not _unavailable(kind):
            _say_once(f"check_sandbox auto: {kind}")
            return kind
    _say_once("check_sandbox auto: neither bwrap nor unshare works here; no sandbox")
    return "none"


@functools.cache
def _say_once(message: str) -> None:
    logger.info("%s", message)


@functools.cache
def _unavailable(kind: Literal["bwrap", "unshare"]) -> str | None:
    """Why `kind` cannot run a check here (None: it can), tried once per process: a
    distribution may ship the program but forbid the unprivileged user namespaces it needs."""
    if not sys.platform.startswith("linux"):
        return "Linux only"
    program = "bwrap" if kind == "bwrap" else "unshare"
    if shutil.which(program) is None:
        return f"{program} is not installed"
    if kind == "bwrap":
        probe = [*_BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"]
    else:
        probe = [*_UNSHARE, "true"]
    try:
        proc = subprocess.run(
            probe,
            capture_output=True,
            timeout=30,
            env={"PATH": os.environ.get("PATH") or _DEFAULT_PATH},  # as the check will find it
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{program} does not run: {exc}"
    if proc.returncode != 0:
        return f"{program} fails: {proc.stderr.decode(errors='replace').strip()}"
    return None


def _adopt_orphans(on: bool) -> bool:
    """Become (or stop being) the subreaper of our descendants: a process the check leaves
    behind, even one that left its process group, is then re-parented to us, not to init, so
    `_kill_strays` finds it. False when that is not possible (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _children() -> set[int]:
    """Our child processes, from /proc (zombies included, until they are reaped)."""
    me = os.getpid()
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat_line = f.read()
        except OSError:
            continue
        fields = stat_line[stat_line.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.add(int(entry.name))
    return found


def _kill_strays(before: set[int]) -> None:
    """Kill and reap the children we did not have before the check: what it left running.
    A stray's own children come to us when it dies: again, until there are none."""
    for _ in range(1000):
        strays = _children() - before
        if not strays:
            return
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in strays:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    logger.warning("the check's leftover processes keep coming back; some may still run")


def _relative_to(export: Path, raw: Path, dest: Path, home: Path) -> None:
    """Copy the output `raw` to `dest` with the export directory made relative: a path in it
    loses its `<export>/` (the file's path in the tree), the directory itself becomes `.`;
    the check's scratch `home` (and TMPDIR in it) becomes `$HOME`.

    Both spellings are replaced: the one the runner gave, and the one without symlinks that a
    build gets from getcwd() (make's "Entering directory", $(CURDIR), absolute include dirs).
    Line by line: a path never spans lines, and a build log may not fit in memory.
    """
    spellings = sorted({os.fsencode(export), os.fsencode(os.path.realpath(export))}, key=len)
    homes = {os.fsencode(home), os.fsencode(os.path.realpath(home))}
    with open(raw, "rb") as src, open(dest, "wb") as out:
        for line in src:
            for path in homes:  # before the export's: they start with it
                line = line.replace(path, b"$HOME")
            for path in reversed(spellings):  # the longer first: one may start with the other
                line = line.replace(path + b"/", b"").replace(path, b".")
            # A secret printed by the tree's code never reaches the log, whatever reads it.
            out.write(
                redact(line.decode("utf-8", "surrogateescape")).encode(errors="surrogateescape")
            )


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
        tail=redact(str(data["tail"])),
        log=logs / f"{tree}.log",
        cached=True,
        exit_status=data.get("exit_status"),
        incremental=data.get("incremental") is True,
        compiled=frozenset(map(str, data["compiled"]))
        if isinstance(data.get("compiled"), list)
        else None,
    )
