"""The prerequisite finder on real Xen history: every conflict of the XSA-only branches.

Run by hand:  python3 bench/bench_prereqs.py [--repo PATH_TO_XEN] [--bases RELEASE-4.20.0,...]
                                             [--per-xsa] [--skip] [--check-patch-ids]

For each RELEASE-4.X.Y tag of 4.17 to 4.21 that is not the newest of its line, the XSA fix
commits on stable-4.X after the tag are picked in stable order, cumulatively, onto the tag. The
finder runs on each conflicting commit with the branch tree at that point, then its set and the
commit go on the branch (as DOMAIN.md's baseline did: 179 conflicts over the 25 bases, all
resolved, 539 prerequisite commits, median set 1, 0.13 s median per conflict). With --per-xsa
the unit is a whole XSA instead (all of its commits after the prerequisites, as the builder
applies a manifest entry); with --skip a resolved conflict stays off the branch.

Per base: XSAs, clean in order (XSAs whose commits all pick with no prerequisites), conflicts,
resolved, faithful, proven minimal, prerequisite commits chosen (the sum of the conflicts' sets,
as the baseline counted), prerequisite commits the manifest lists (each once per branch), time;
then totals and the median time per conflict.

Each XSA's prerequisites (the union of its conflicts' sets, in source order) are checked the way
a manifest applies them: all before the XSA's first commit, onto the branch before the XSA.
Where that union does not land every commit faithfully, the finder runs once more on the whole
XSA, and the manifest lists that set instead: this is why "listed" can exceed "prereqs" (a
commit that one of the XSA's later commits needs, moved before its first, can change how the
first lands). The per-XSA sets go to bench/out/prereqs.json, for filling the shipped manifests.

The Xen clone is never written: the work happens in a scratch bare repository under bench/out/
whose objects/info/alternates points at the clone's objects (--check-patch-ids writes the
trees it compares there).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app.importer import find_xsa_commits  # noqa: E402
from bot.core.prereqs import FinderResult, Limits  # noqa: E402
from bot.git.objects import ObjectStore  # noqa: E402
from bot.git.pick import TreeMerger  # noqa: E402
from bot.git.prereqs import find_prerequisites, source_files  # noqa: E402
from bot.git.runner import git  # noqa: E402
from bot.git.sourcelog import source_log  # noqa: E402
from bot.git.trials import TreeTrials  # noqa: E402

# The Xen clone: --repo, or the XSABOT_XEN_REPO environment variable.
DEFAULT_REPO = os.environ.get("XSABOT_XEN_REPO")
OUT = ROOT / "bench" / "out"
LINES = ("4.17", "4.18", "4.19", "4.20", "4.21")


@dataclass
class Row:
    tag: str
    xsas: int = 0
    clean: int = 0
    conflicts: int = 0
    resolved: int = 0
    faithful: int = 0
    minimal: int = 0
    chosen: int = 0
    listed: int = 0  # prerequisite commits as the manifest lists them, each once per branch
    seconds: float = 0.0
    times: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def add(self, other: Row) -> None:
        names = (
            "xsas",
            "clean",
            "conflicts",
            "resolved",
            "faithful",
            "minimal",
            "chosen",
            "listed",
        )
        for name in names:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds
        self.times += other.times
        self.sizes += other.sizes


@dataclass
class Options:
    limits: Limits
    per_xsa: bool
    skip: bool
    check_patch_ids: bool


@dataclass
class Branch:
    """The branch being built: its tree and the source commits on it."""

    base: str
    tree: str
    on: list[str] = field(default_factory=list)


@dataclass
class Counters:
    union_fallbacks: int = 0
    patch_ids_checked: int = 0
    patch_id_mismatches: int = 0


def scratch_repo(path: Path, xen: Path) -> pygit2.Repository:
    """A bare repository that reads the clone's objects and refs but writes only to itself."""
    shutil.rmtree(path, ignore_errors=True)
    git(["init", "--bare", "-q", str(path)])
    git(["config", "gc.auto", "0"], cwd=path)
    objects = xen / "objects" if (xen / "objects").is_dir() else xen / ".git" / "objects"
    (path / "objects" / "info" / "alternates").write_text(f"{objects.resolve()}\n")
    refs = git(
        [
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/tags/RELEASE-4.*",
            "refs/heads/stable-4.*",
        ],
        cwd=xen,
    ).stdout.decode()
    updates = "".join(
        f"create {name} {sha}\n" for sha, name in (line.split() for line in refs.splitlines())
    )
    git(["update-ref", "--stdin"], cwd=path, input=updates.encode())
    return pygit2.Repository(str(path))


def bases(repo_path: Path, wanted: set[str] | None) -> list[tuple[str, str]]:
    tags = git(["tag", "-l", "RELEASE-4.*"], cwd=repo_path).stdout.decode().split()
    out = []
    for line in LINES:
        points = sorted(
            (t for t in tags if re.fullmatch(rf"RELEASE-{re.escape(line)}\.\d+", t)),
            key=lambda t: int(t.rsplit(".", 1)[1]),
        )
        out += [(t, f"stable-{line}") for t in points[:-1] if not wanted or t in wanted]
    return out


def pick_all(
    merger: TreeMerger, repo: pygit2.Repository, tree: str, commits: list[str]
) -> tuple[list[str], str | None]:
    """The trees after each pick of `commits` (first: `tree`), and the first that conflicts."""
    trees = [tree]
    for sha in commits:
        c = repo[sha].peel(pygit2.Commit)
        merge = merger.merge(str(c.parents[0].tree_id), trees[-1], str(c.tree_id))
        if merge.tree is None:
            return trees, sha
        trees.append(merge.tree)
    return trees, None


def describe(result: FinderResult, took: float) -> str:
    flag = ""
    if not (result.found and result.faithful):
        flag = "  <-- " + ("not faithful" if result.found else "NOT RESOLVED")
    return (
        f"{len(result.chosen)} of {len(result.candidates)} candidates, {result.trials} trials, "
        f"{took:.3f} s{', minimal' if result.minimal else ''}"
        f"{', widened ' + '+'.join(result.widened) if result.widened else ''}"
        f"{', bound ' + result.bound_hit if result.bound_hit else ''}{flag}"
    )


def check_patch_ids(
    repo: pygit2.Repository,
    store: ObjectStore,
    trees: list[str],
    commits: list[str],
    counters: Counters,
) -> None:
    """git's own `patch-id --stable` of each landed commit against the source commit's."""
    store.flush()
    for before, after, sha in zip(trees, trees[1:], commits, strict=False):
        landed = git(["diff-tree", "-p", before, after], cwd=repo.path).stdout
        ours = git(["patch-id", "--stable"], cwd=repo.path, input=landed).stdout.split()[:1]
        shown = git(["diff-tree", "-p", f"{sha}^", sha], cwd=repo.path).stdout
        theirs = git(["patch-id", "--stable"], cwd=repo.path, input=shown).stdout.split()[:1]
        counters.patch_ids_checked += 1
        if ours != theirs:
            counters.patch_id_mismatches += 1
            print(f"      patch-id differs for {sha[:12]}", flush=True)


class BaseRun:
    def __init__(
        self, repo: pygit2.Repository, tag: str, opts: Options, counters: Counters
    ) -> None:
        self.repo, self.tag, self.opts, self.counters = repo, tag, opts, counters
        self.store = ObjectStore(repo)
        self.merger = TreeMerger(self.store)
        base = str(repo.revparse_single(tag).peel(pygit2.Commit).id)
        self.branch = Branch(base, str(repo[base].peel(pygit2.Tree).id))
        self.row = Row(tag)
        self.conflicts: list[dict[str, object]] = []
        self.xsas: list[dict[str, object]] = []
        self.listed: set[str] = set()

    def find(
        self, xsa: int, fix: str, commits: list[str], tree: str, on: list[str]
    ) -> FinderResult:
        start = time.perf_counter()
        result = find_prerequisites(
            self.repo,
            self.store,
            base_commit=self.branch.base,
            fix=fix,
            xsa=xsa,
            ours_tree=tree,
            on_branch=on,
            limits=self.opts.limits,
            xsa_commits=commits,
            merger=self.merger,
        )
        took = time.perf_counter() - start
        print(f"    XSA-{xsa} {fix[:12]}: {describe(result, took)}", flush=True)
        return result

    def resolve(self, xsa: int, commits: list[str]) -> list[str]:
        """Pick `commits` onto the branch, with prerequisites if they conflict; the set."""
        trees, failed = pick_all(self.merger, self.repo, self.branch.tree, commits)
        if failed is None:
            self.branch.tree = trees[-1]
            self.branch.on += commits
            return []
        start = time.perf_counter()
        result = self.find(xsa, failed, commits, self.branch.tree, self.branch.on)
        took = time.perf_counter() - start
        r = self.row
        r.conflicts += 1
        r.times.append(took)
        r.seconds += took
        r.resolved += result.found
        r.faithful += result.found and result.faithful
        r.minimal += result.found and result.minimal
        r.chosen += len(result.chosen)
        if result.found:
            r.sizes.append(len(result.chosen))
        self.conflicts.append(_record(result, self.tag, commits, took))
        chosen = [c.sha for c in result.chosen]
        if not result.found or self.opts.skip:
            return chosen
        trees, failed = pick_all(self.merger, self.repo, self.branch.tree, chosen + commits)
        assert failed is None, f"XSA-{xsa}: the chosen set does not apply"
        if self.opts.check_patch_ids:
            check_patch_ids(self.repo, self.store, trees[len(chosen) :], commits, self.counters)
        self.branch.tree = trees[-1]
        self.branch.on += chosen + commits
        return chosen

    def run(self, source: str) -> None:
        for xsa, group in find_xsa_commits(self.repo.path, self.tag, source):
            commits = [c.sha for c in group]
            self.row.xsas += 1
            self.row.clean += pick_all(self.merger, self.repo, self.branch.tree, commits)[1] is None
            before = Branch(self.branch.base, self.branch.tree, list(self.branch.on))
            chosen: list[str] = []
            for unit in [commits] if self.opts.per_xsa else [[c] for c in commits]:
                chosen += self.resolve(xsa, unit)
            if chosen and not self.opts.skip:
                chosen = self.as_manifest(xsa, commits, chosen, before)
                # The branch goes on as the filled manifest will build it.
                trees, failed = pick_all(self.merger, self.repo, before.tree, chosen + commits)
                if failed is None:
                    self.branch.tree = trees[-1]
                    self.branch.on = before.on + chosen + commits
            if chosen:
                self.xsas.append(self.entry(xsa, commits, chosen))
                self.listed.update(chosen)
                self.row.listed = len(self.listed)

    def as_manifest(
        self, xsa: int, commits: list[str], chosen: list[str], before: Branch
    ) -> list[str]:
        """The XSA's prerequisites as a manifest applies them: all before its first commit."""
        log = source_log(self.repo)
        order = {c.sha: i for i, c in enumerate(log.range(before.base, commits[-1]))}
        chosen = sorted(set(chosen), key=order.__getitem__)
        trials = TreeTrials(
            self.store, self.merger, source_files(self.repo), log.commits, before.tree, commits
        )
        if trials.trial(chosen).faithful:
            return chosen
        self.counters.union_fallbacks += 1
        result = self.find(xsa, commits[0], commits, before.tree, before.on)
        if not result.found:
            return chosen
        return [c.sha for c in result.chosen]

    def entry(self, xsa: int, commits: list[str], chosen: list[str]) -> dict[str, object]:
        log = source_log(self.repo)
        return {
            "base": self.tag,
            "xsa": xsa,
            "commits": commits,
            "prerequisites": [{"commit": sha, "why": log.commits[sha].subject} for sha in chosen],
        }


def _record(result: FinderResult, tag: str, commits: list[str], took: float) -> dict[str, object]:
    return {
        "base": tag,
        "xsa": result.xsa,
        "fix": result.fix,
        "commits": commits,
        "conflicts": list(result.conflicts),
        "found": result.found,
        "faithful": result.faithful,
        "minimal": result.minimal,
        "candidates": len(result.candidates),
        "chosen": [
            {"commit": c.sha, "subject": c.subject, "reasons": list(c.reasons)}
            for c in result.chosen
        ],
        "trials": result.trials,
        "seconds": round(took, 4),
        "bound_hit": result.bound_hit,
        "widened": list(result.widened),
    }


def table(rows: list[Row]) -> None:
    header = (
        "base",
        "XSAs",
        "clean",
        "conflicts",
        "resolved",
        "faithful",
        "minimal",
        "prereqs",
        "listed",
        "time s",
    )
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    total = Row("**total**")
    for r in [*rows, total]:
        print(
            f"| {r.tag} | {r.xsas} | {r.clean} | {r.conflicts} | {r.resolved} | {r.faithful}"
            f" | {r.minimal} | {r.chosen} | {r.listed} | {r.seconds:.2f} |"
        )
        if r is not total:
            total.add(r)
    print(
        "\nprereqs: the conflicts' sets summed, as the baseline counted; listed: what the "
        "manifests list, each commit once per branch"
    )
    if total.times:
        print(
            f"median {statistics.median(total.times):.3f} s per conflict, mean "
            f"{statistics.mean(total.times):.3f} s, max {max(total.times):.3f} s; sets: "
            f"median {statistics.median(total.sizes or [0])}, mean "
            f"{statistics.mean(total.sizes or [0]):.2f}, max {max(total.sizes, default=0)}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--repo",
        type=Path,
        default=DEFAULT_REPO,
        required=DEFAULT_REPO is None,
        help="a Xen clone, only read (default: $XSABOT_XEN_REPO)",
    )
    parser.add_argument("--bases", help="comma-separated tags (default: all 25)")
    parser.add_argument("--max-seconds", type=float, default=Limits.max_seconds)
    parser.add_argument("--out", type=Path, default=OUT / "prereqs.json")
    parser.add_argument("--per-xsa", action="store_true", help="resolve whole XSAs")
    parser.add_argument("--skip", action="store_true", help="leave resolved conflicts out")
    parser.add_argument(
        "--check-patch-ids",
        action="store_true",
        help="compare with git patch-id --stable (writes to the scratch repo)",
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    repo = scratch_repo(OUT / "prereqs-scratch.git", args.repo)
    opts = Options(
        Limits(max_seconds=args.max_seconds), args.per_xsa, args.skip, args.check_patch_ids
    )
    counters = Counters()
    wanted = set(args.bases.split(",")) if args.bases else None
    rows: list[Row] = []
    conflicts: list[dict[str, object]] = []
    xsas: list[dict[str, object]] = []
    started = time.perf_counter()
    for tag, source in bases(args.repo, wanted):
        print(f"{tag}:", flush=True)
        run = BaseRun(repo, tag, opts, counters)
        run.run(source)
        rows.append(run.row)
        conflicts += run.conflicts
        xsas += run.xsas
    wall = time.perf_counter() - started
    table(rows)
    print(
        f"wall {wall:.1f} s; XSAs whose union of sets needed a whole-XSA search: "
        f"{counters.union_fallbacks}"
    )
    if args.check_patch_ids:
        print(
            f"patch-ids: {counters.patch_ids_checked} fix commits landed checked with git, "
            f"{counters.patch_id_mismatches} differ from the source commit's"
        )
    args.out.write_text(json.dumps({"xsas": xsas, "conflicts": conflicts}, indent=1) + "\n")
    print(f"per-XSA sets: {args.out} ({len(xsas)} XSAs with prerequisites)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
