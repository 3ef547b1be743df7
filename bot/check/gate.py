"""The check gate over the real builder and check runner (`bot.core.gate.GatePort`).

Builds a manifest's branch with some XSAs held back, gives the gate the tree after each
applied XSA, and runs (or reads the cached result of) the operator's check on a tree.

Every breaking XSA is found in one pass: the gate holds one back, rebuilds, and bisects again.
An XSA that applied while the held-back one was on the branch and conflicts without it
waits for it (`waits-for`): the prerequisite search leaves it alone (its fix needs the held-back
XSA's changes, which only a fix of that XSA brings back).

With the bot's own check runner, the checks run in the line's build directory (incremental;
failures confirmed on a clean export, `bot.check.runner`), and after a passing check each
applied XSA's C files that it did not compile are named (`not_compiled`).

A check that times out gives no verdict, so `passes` raises `CheckTimedOut` rather than answer
False: a False makes the gate hold an XSA back as does-not-build, and since the pass's inputs
do not change after that, the XSA would never be checked again.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from bot.check.runner import CheckTimedOut
from bot.core.compiler import evidence, parse_errors
from bot.core.gate import GateBuild, GateResult
from bot.core.outcome import DOES_NOT_BUILD, WAITS_FOR, Blocked, BuildResult, XsaOutcome
from bot.core.ports import Check
from bot.git.build import Builder
from bot.git.commits import parse_commit
from bot.git.export import changed_files
from bot.git.objects import ObjectStore
from bot.git.trees import TREE
from bot.manifest.model import Manifest


class BuilderGate:
    def __init__(
        self,
        builder: Builder,
        runner: Check,
        manifest: Manifest,
        *,
        manifests_root: Path,
        base_commit: str,
        source_commit: str,
    ) -> None:
        self.builder = builder
        self.runner = runner
        self.manifest = manifest
        self.root = manifests_root
        self.base = base_commit
        self.source = source_commit
        self.last: BuildResult | None = None
        self.commits: dict[str, str] = {}  # tree -> the commit built with it
        self.held: frozenset[int] = frozenset()  # what the last build held back
        self.waits: dict[int, set[int]] = {}  # XSA -> the held-back XSAs it applied with

    def build(self, held_back: frozenset[int]) -> GateBuild:
        held = {x: Blocked(x, None, (), DOES_NOT_BUILD) for x in held_back}
        result = self.builder.build(
            self.manifest,
            manifests_root=self.root,
            base_commit=self.base,
            source_commit=self.source,
            leave_out=held,
        )
        before, self.last = self.last, result
        added = held_back - self.held
        if before is not None and added:
            # Applied with the XSAs just held back there, blocked without them: waits for them.
            had = set(before.xsas("applied"))
            for o in result.outcomes:
                if o.blocked is not None and o.xsa in had and o.xsa not in held_back:
                    self.waits.setdefault(o.xsa, set()).update(added)
        self.held = held_back
        applied = [o for o in result.outcomes if o.state == "applied"]
        commits = [self.base, *([p for p in o.picks if not p.empty][-1].commit for o in applied)]
        trees = [self._tree(c) for c in commits]
        self.commits.update(zip(trees, commits, strict=True))
        for tree, commit in zip(trees, commits, strict=True):  # forge CI checks commits
            self.runner.add_candidate(tree, commit, self.manifest.branch)
        return GateBuild(tuple(o.xsa for o in applied), tuple(trees))

    def _tree(self, commit: str) -> str:
        return parse_commit(self.builder.store.read(commit)[1]).tree

    def passes(self, tree: str) -> bool:
        """Whether `tree` passes the check; raises `CheckTimedOut` when there is no verdict."""
        # The check exports the tree with git; forge CI pushes the commit, so flush that.
        self.builder.store.flush([self.commits.get(tree, tree)])
        result = self.runner.check(tree, line=self.manifest.branch)
        if result.status == "timeout":
            raise CheckTimedOut(tree, self.runner.timeout, self.runner.command)
        return result.passed

    def known(self, tree: str) -> bool | None:
        found = self.runner.cached(tree)
        # The runners cache no timeout; were one read, it would still be no verdict.
        return None if found is None or found.status == "timeout" else found.passed

    def suspects(self, build: GateBuild, failing: int) -> tuple[int, ...]:
        """The XSAs (as 1-based prefixes of `build`) that added the lines the failing check's
        errors are on, in the order of the errors, at most `SUSPECTS`: where a compiler
        stops, the change that broke it usually wrote that line (an XSA calling what the
        branch lacks). An error on a line the base already had names none: the gate bisects."""
        found = self.runner.cached(build.trees[failing])
        out: list[int] = []
        for file, line in _error_lines(found.output()) if found is not None else []:
            index = self._added(build.trees[: failing + 1], file, line)
            if index is not None and index not in out:
                out.append(index)
                if len(out) == SUSPECTS:
                    break
        return tuple(out)

    def _added(self, trees: tuple[str, ...], file: str, line: int) -> int | None:
        """The last prefix whose XSA added line `line` of `file` (a path relative to where make
        ran: tried as it is and under each top-level directory) of the last tree."""
        store = self.builder.store
        tops = [""] + [
            name.decode() + "/"
            for name, (mode, _) in store.tree_entries(bytes.fromhex(trees[-1])).items()
            if mode == TREE
        ]
        for top in tops:
            last = _blob_at(store, trees[-1], top + file)
            if last is None:
                continue
            lines = last.splitlines()
            if not 0 < line <= len(lines) or not lines[line - 1].strip():
                return None
            text = lines[line - 1]
            counts = [_count(_blob_at(store, t, top + file), text) for t in trees]
            grew = [i for i in range(1, len(trees)) if counts[i] > counts[i - 1]]
            return grew[-1] if grew else None
        return None

    def not_compiled(self, gate: GateResult) -> dict[int, tuple[str, ...]]:
        """Per applied XSA, the C files it changes that the passing tip's check did not
        compile (none known when the check says nothing of what it compiled)."""
        found = self.runner.cached(gate.build.tip) if gate.passed else None
        compiled = getattr(found, "compiled", None)
        if compiled is None:
            return {}
        self.builder.store.flush([self.commits.get(gate.build.tip, gate.build.tip)])
        trees = gate.build.trees
        out = {}
        for i, xsa in enumerate(gate.build.xsas):
            files = changed_files(Path(self.builder.repo.path), trees[i], trees[i + 1])
            missed = tuple(f for f in files if f.endswith(".c") and f not in compiled)
            if missed:
                out[xsa] = missed
        return out

    def gated_result(self, gate: GateResult) -> BuildResult:
        """The last build, with each held-back XSA's block saying why (the compiler's words),
        each XSA that conflicts only without one of them waiting for it, and each applied
        XSA's C files the check did not compile."""
        assert self.last is not None
        blocks = {b.xsa: b for b in gate.blocked}
        missed = self.not_compiled(gate)
        outcomes = []
        for o in self.last.outcomes:
            if o.xsa in missed:
                o = replace(o, not_compiled=missed[o.xsa])
            waits = tuple(sorted(self.waits.get(o.xsa, ())))
            if o.blocked is not None and o.xsa not in blocks and waits:
                names = " and ".join(f"XSA-{n}" for n in waits)
                detail = f"applies with {names}, which the check held back"
                o = replace(
                    o, blocked=replace(o.blocked, reason=WAITS_FOR, detail=detail, waits_for=waits)
                )
            block = blocks.get(o.xsa)
            if block is not None:
                found = self.runner.cached(block.tree)
                output = found.output() if found else ""
                lines = evidence(parse_errors(output)) or tuple(output.splitlines()[-5:])
                files = tuple(sorted({e.file for e in parse_errors(output) if e.file}))
                o = XsaOutcome(
                    o.xsa,
                    "blocked",
                    (),
                    Blocked(o.xsa, None, files, DOES_NOT_BUILD, "\n".join(lines), block.good_tree),
                )
            outcomes.append(o)
        return replace(self.last, outcomes=tuple(outcomes))


SUSPECTS = 3  # XSAs tried before bisecting: two checks each, which narrow the range anyway
# A compiler's `file:line[:col]: [fatal] error:` (gcc, clang), and a linker's undefined
# reference at `file:line:` of the object's source.
_ERROR = re.compile(
    r"^(?:[^\s:]+: )?(?P<file>[\w./+-]+):(?P<line>\d+)(?::\d+)?: (?:fatal )?error:"
    r"|(?P<ref>[\w./+-]+\.[A-Za-z]+):(?P<refline>\d+): undefined reference",
    re.MULTILINE,
)


def _error_lines(output: str) -> list[tuple[str, int]]:
    """The (file, line) of each of a check's errors, in order, files as printed (relative to
    where make ran)."""
    out: list[tuple[str, int]] = []
    for m in _ERROR.finditer(output):
        where = (m["file"].removeprefix("./"), int(m["line"])) if m["file"] else None
        where = where or (m["ref"].removeprefix("./"), int(m["refline"]))
        if where not in out:
            out.append(where)
    return out


def _blob_at(store: ObjectStore, tree: str, path: str) -> bytes | None:
    """The content of file `path` in `tree`, or None when it has none there."""
    oid = bytes.fromhex(tree)
    parts = path.encode().split(b"/")
    for depth, part in enumerate(parts):
        entry = store.tree_entries(oid).get(part)
        if entry is None or (depth < len(parts) - 1) != (entry[0] == TREE):
            return None
        oid = entry[1]
    return store.blob(oid)


def _count(data: bytes | None, line: bytes) -> int:
    return 0 if data is None else data.splitlines().count(line)
