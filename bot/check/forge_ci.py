"""The forge's own CI as a tree's check: push a candidate, wait for its status.

`ForgeCiRunner` has `CheckRunner`'s interface (`check`, `cached`, `runs`, `command`), so the
check gate and `BuilderGate` use it unchanged. CI runs on commits, the gate asks about trees:
`BuilderGate` registers the commit it built for each tree (`add_candidate`), and a check pushes
that commit to the branch's candidate ref in the mirror, `refs/heads/<namespace>-candidate/...`
(`xsa/4.19` -> `xsa-candidate/4.19`), with a lease like every push of the bot, then polls the
forge's combined status of the commit until it is final or the time is up. Only the candidate
ref moves here: the published branch moves later, in the pass's one atomic push, and only to
a build whose tip passed.

Results are cached by tree as `CheckRunner` caches them (`<state>/checks/results/<tree>.json`,
with "forge-ci" as the command), except timeouts: the pipeline outlives our wait, so its
verdict is asked for again next time instead of being assumed (the gate raises
`bot.check.runner.CheckTimedOut` for one: no XSA is held back for a slow pipeline).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from bot.check.runner import CheckResult, Status, read_verdict
from bot.core.refs import WritableRefs, candidate_ref
from bot.errors import SetupError
from bot.git.publish import RefUpdate, push
from bot.git.workrepo import WorkRepo

COMMAND = "forge-ci"
CiState = Literal["pending", "success", "failure", "unknown"]
_TREE_ID = re.compile(r"[0-9a-f]{40}")
_FINAL: tuple[Status, ...] = ("passed", "failed")
# Another replica (or a human) may move the candidate ref between reading and pushing it; the
# lease makes that a failed push, and reading again settles it unless the ref keeps moving.
_PUSH_ATTEMPTS = 3


class CiStatus(Protocol):
    """The one thing this runner needs from a forge (`bot.core.ports.Forge.check_status`)."""

    def check_status(self, sha: str) -> CiState: ...


@dataclass(frozen=True)
class Candidate:
    commit: str  # a commit the builder made, whose tree is the one to check
    branch: str  # the published branch it is a candidate for, e.g. xsa/4.19


class ForgeCiRunner:
    """The `Check` port over the forge's CI: candidates pushed, verdicts read back."""

    reports_compiler_output = False  # a commit status carries no compiler lines

    def __init__(
        self,
        forge: CiStatus,
        *,
        work: WorkRepo,
        mirror: str,
        namespace: str,
        state: Path,
        timeout: float = 3600,
        poll: float = 30,
        grace: float = 300,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.command = COMMAND
        self.forge = forge
        self.work = work
        self.mirror = mirror
        self.namespace = namespace
        self.timeout = timeout
        self.poll = poll
        # A forge that never reports on a pushed commit has no CI for the candidate refs (or
        # reads another project): that is the setup's fault, and must not block an XSA.
        self.grace = min(grace, timeout)
        self.clock = clock
        self.sleep = sleep
        self.root = state / "checks"
        self.results = self.root / "results"
        self.logs = self.root / "logs"
        self.runs = 0  # candidates actually checked by the forge (not read from the cache)
        self._candidates: dict[str, Candidate] = {}

    def add_candidate(self, tree: str, commit: str, branch: str) -> None:
        """`commit` (with tree `tree`) is what to push when `tree` is checked. Any commit
        with the tree will do: the result is the tree's."""
        self._candidates[tree] = Candidate(commit, branch)

    def cached(self, tree: str) -> CheckResult | None:
        """The recorded verdict of the forge on `tree`, if there is one; asks nothing."""
        return read_verdict(self.results, self.logs, tree, self.command)

    def check(self, tree: str, *, line: str | None = None) -> CheckResult:
        """Push the candidate with `tree` (already in the work repository: the gate flushes
        it) and wait for the forge's verdict on it (the forge keeps no build state for us,
        so `line` changes nothing)."""
        if not _TREE_ID.fullmatch(tree):  # it names files under the state dir
            raise ValueError(f"not a tree ID: {tree!r}")
        found = self.cached(tree)
        if found is not None:
            return found
        candidate = self._candidates.get(tree)
        if candidate is None:
            raise ValueError(f"no built commit has tree {tree}: forge CI checks commits")
        ref = candidate_ref(candidate.branch, self.namespace)
        started = self.clock()
        self._push(ref, candidate.commit)
        status = self._wait(ref, candidate.commit, started)
        seconds = self.clock() - started
        text = (
            f"forge CI on {candidate.commit} (pushed to {ref}): "
            + {
                "passed": "success",
                "failed": "failure; the pipeline's log is on the forge",
                "timeout": f"no verdict within {self.timeout:g} s; asked again next time",
            }[status]
        )
        for d in (self.results, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{tree}.log"
        _replace_text(log, text + "\n")
        exit_status = {"passed": 0, "failed": 1, "timeout": None}[status]
        result = CheckResult(
            tree, status, seconds, text, log, cached=False, exit_status=exit_status
        )
        self.runs += 1
        if status in _FINAL:  # a timeout is no verdict: nothing to keep (see `cached`)
            self._record(result, candidate, ref)
        return result

    def _push(self, ref: str, commit: str) -> None:
        for _ in range(_PUSH_ATTEMPTS):
            current = self.work.remote_refs(self.mirror, [ref]).get(ref)
            if current == commit:
                break  # pushed before (an earlier pass, or a replica): CI has it already
            result = push(
                self.work,
                self.mirror,
                [RefUpdate(ref, commit, current)],
                writable=WritableRefs.of(self.namespace),
            )
            if result.ok:
                break
        else:
            raise SetupError(f"cannot push the check candidate to {ref}: {result.message}")

    def _wait(self, ref: str, commit: str, started: float) -> Status:
        reported = False
        while True:
            state = self.forge.check_status(commit)
            if state == "success":
                return "passed"
            if state == "failure":
                return "failed"
            reported = reported or state == "pending"
            elapsed = self.clock() - started
            if not reported and elapsed >= self.grace:
                raise SetupError(
                    f"the forge reports no status for {commit} after {elapsed:.0f} s: is CI "
                    f"set up to run on {ref}, and does the bot read the mirror's project?"
                )
            if elapsed >= self.timeout:
                return "timeout"
            limit = self.grace if not reported else self.timeout
            self.sleep(max(0.0, min(self.poll, limit - elapsed)))

    def _record(self, result: CheckResult, candidate: Candidate, ref: str) -> None:
        data: dict[str, Any] = {
            "command": self.command,
            "status": result.status,
            "seconds": round(result.seconds, 3),
            "exit_status": result.exit_status,
            "timeout": self.timeout,
            "tail": result.tail,
            "commit": candidate.commit,
            "ref": ref,
        }
        _replace_text(self.results / f"{result.tree}.json", json.dumps(data, indent=1) + "\n")


def _replace_text(path: Path, text: str) -> None:
    """Write in one step: a concurrent reader sees the old file or the new, never half."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, path)
