"""Pick speed on real Xen history: the in-memory TreeMerger against pygit2 and git cherry-pick.

Run by hand:  python3 bench/bench_picks.py [--repo PATH_TO_XEN] [--cherry-pick-limit N]

Inputs: for every RELEASE-4.X.Y tag of 4.17 to 4.21 that is not the newest of its line, the XSA
fix commits on stable-4.X after the tag, in stable order, applied cumulatively onto the tag (a
conflicting pick is skipped; the next goes onto the last good tree). The same inputs go through

  (a) TreeMerger (path-limited merge in memory) + the faithfulness check (bot/git/faithful.py)
      + commits written to the ObjectStore,
  (b) pygit2 merge_trees + write_tree + the commit written to the object database,
  (c) git cherry-pick -x in a work tree (slow: only the first --cherry-pick-limit picks, and
      the rate is extrapolated from those),

with commits made the same deterministic way (bot committer, dates from the source commit), so
their SHAs are comparable. (a) must equal (b) pick by pick: status and tree ID.

Partial picks (clean, but other lines removed or added than on source): (a) counts them on
those inputs, which have no prerequisites ("before"), and the shipped manifests (manifests/,
with their prerequisites) are built as the bot builds them ("after").

The Xen clone is never written: each measurement gets a scratch bare repository under
bench/out/picks whose objects/info/alternates points at the clone's objects.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pygit2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import Identity  # noqa: E402
from bot.core.outcome import PARTIAL  # noqa: E402
from bot.core.xsa_messages import xsa_numbers  # noqa: E402
from bot.git.build import Builder  # noqa: E402
from bot.git.commits import RawCommit, parse_commit, pick_commit  # noqa: E402
from bot.git.faithful import Difference, PickCheck  # noqa: E402
from bot.git.objects import ObjectStore  # noqa: E402
from bot.git.pick import TreeMerger  # noqa: E402
from bot.git.runner import git  # noqa: E402
from bot.manifest.load import load_manifests  # noqa: E402

# The Xen clone: --repo, or the XSABOT_XEN_REPO environment variable.
DEFAULT_REPO = os.environ.get("XSABOT_XEN_REPO")
LINES = ("4.17", "4.18", "4.19", "4.20", "4.21")
NAME, EMAIL = "xsabot", "xsabot@invalid"


@dataclass(frozen=True)
class Pick:
    sha: str
    commit: RawCommit
    parent_tree: str


@dataclass(frozen=True)
class Base:
    tag: str
    commit: str
    tree: str
    picks: tuple[Pick, ...]


Outcome = tuple[str | None, str | None]  # (tree or None on conflict, new commit or None)


def find_inputs(xen: Path, repo: pygit2.Repository, *, xsa: bool = True) -> list[Base]:
    """Per base, the XSA fix commits after it in stable order (xsa=False: all the others)."""
    bases = []
    tags = git(["tag", "-l", "RELEASE-4.*"], cwd=xen).stdout.decode().split()
    for line in LINES:
        points = sorted(
            (t for t in tags if re.fullmatch(rf"RELEASE-{re.escape(line)}\.\d+", t)),
            key=lambda t: int(t.rsplit(".", 1)[1]),
        )
        for tag in points[:-1]:  # the newest of a line has nothing after it to pick
            log = git(
                [
                    "log",
                    "--first-parent",
                    "--reverse",
                    "-z",
                    "--format=%H%n%B",
                    f"{tag}..stable-{line}",
                    "--",
                ],
                cwd=xen,
            ).stdout.decode("utf-8", "replace")
            picks = []
            for record in filter(None, log.split("\0")):
                sha, _, message = record.partition("\n")
                if bool(xsa_numbers(message)) == xsa:
                    commit = parse_commit(repo.odb.read(sha)[1])
                    if len(commit.parents) != 1:
                        continue
                    parent = parse_commit(repo.odb.read(commit.parents[0])[1])
                    picks.append(Pick(sha, commit, parent.tree))
            tag_commit = git(["rev-parse", f"{tag}^{{commit}}"], cwd=xen).stdout.decode().strip()
            tree = parse_commit(repo.odb.read(tag_commit)[1]).tree
            bases.append(Base(tag, tag_commit, tree, tuple(picks)))
    return bases


def scratch_repo(path: Path, xen: Path) -> pygit2.Repository:
    shutil.rmtree(path, ignore_errors=True)
    git(["init", "--bare", "-q", str(path)])
    git(["config", "gc.auto", "0"], cwd=path)
    objects = xen / "objects" if (xen / "objects").is_dir() else xen / ".git" / "objects"
    (path / "objects" / "info" / "alternates").write_text(f"{objects.resolve()}\n")
    return pygit2.Repository(str(path))


@dataclass
class MergerRun:
    outcomes: list[Outcome]
    seconds: float
    flush_seconds: float
    flushed: int
    store: ObjectStore
    merger: TreeMerger
    partial: list[tuple[str, Pick, tuple[Difference, ...]]]  # (base, pick, how it differs)
    diffs: int  # file pairs the faithfulness check diffed


def run_merger(repo: pygit2.Repository, bases: list[Base]) -> MergerRun:
    """(a): each pick as the builder makes it, the faithfulness check included; a partial
    pick is counted but still applied, so (a) stays comparable with (b)."""
    store = ObjectStore(repo)
    merger = TreeMerger(store)
    check = PickCheck(store)
    out: list[Outcome] = []
    partial: list[tuple[str, Pick, tuple[Difference, ...]]] = []
    start = time.perf_counter()
    for base in bases:
        head, tree = base.commit, base.tree
        for pick in base.picks:
            merge = merger.merge(pick.parent_tree, tree, pick.commit.tree)
            if merge.tree is None:
                out.append((None, None))
                continue
            differs = check.differences(pick.parent_tree, pick.commit.tree, tree, merge)
            if differs:
                partial.append((base.tag, pick, differs))
            if merge.tree != tree:
                raw = pick_commit(
                    pick.sha, pick.commit, tree=merge.tree, parent=head, name=NAME, email=EMAIL
                )
                head, tree = store.write("commit", raw), merge.tree
            out.append((tree, head))
    picking = time.perf_counter() - start
    start = time.perf_counter()
    flushed = store.flush()
    return MergerRun(
        out, picking, time.perf_counter() - start, flushed, store, merger, partial, check.diffs
    )


def run_pygit2(repo: pygit2.Repository, bases: list[Base]) -> tuple[list[Outcome], float]:
    out: list[Outcome] = []
    start = time.perf_counter()
    for base in bases:
        head, tree = base.commit, base.tree
        for pick in base.picks:
            index = repo.merge_trees(pick.parent_tree, tree, pick.commit.tree)
            if index.conflicts is not None:
                out.append((None, None))
                continue
            new_tree = str(index.write_tree(repo))
            if new_tree != tree:
                raw = pick_commit(
                    pick.sha, pick.commit, tree=new_tree, parent=head, name=NAME, email=EMAIL
                )
                head, tree = str(repo.odb.write(pygit2.enums.ObjectType.COMMIT, raw)), new_tree
            out.append((tree, head))
    return out, time.perf_counter() - start


def run_cherry_pick(
    path: Path, bases: list[Base], limit: int
) -> tuple[list[Outcome], float, float]:
    """`git cherry-pick -x` of the first `limit` picks; returns outcomes, pick and setup time."""
    out: list[Outcome] = []
    picking = setup = 0.0
    worktree = path.parent / "cherry-pick-worktree"
    for base in bases:
        if len(out) >= limit:
            break
        start = time.perf_counter()
        shutil.rmtree(worktree, ignore_errors=True)
        git(["worktree", "prune"], cwd=path)
        git(["worktree", "add", "-q", "--detach", str(worktree), base.commit], cwd=path)
        setup += time.perf_counter() - start
        start = time.perf_counter()
        for pick in base.picks:
            if len(out) >= limit:
                break
            date = pick.commit.committer_date.decode()
            env = {
                "GIT_COMMITTER_NAME": NAME,
                "GIT_COMMITTER_EMAIL": EMAIL,
                "GIT_COMMITTER_DATE": date,
            }
            proc = git(
                ["cherry-pick", "-x", "--allow-empty-message", pick.sha],
                cwd=worktree,
                env=env,
                check=False,
            )
            if proc.returncode != 0:
                unmerged = git(["ls-files", "-u"], cwd=worktree).stdout
                git(["cherry-pick", "--abort"], cwd=worktree, check=False)
                if unmerged:
                    out.append((None, None))
                    continue
            head = git(["rev-parse", "HEAD", "HEAD^{tree}"], cwd=worktree).stdout.decode().split()
            out.append((head[1], head[0]))
        picking += time.perf_counter() - start
    shutil.rmtree(worktree, ignore_errors=True)
    git(["worktree", "prune"], cwd=path)
    return out, picking, setup


def shipped_partial(xen: Path, repo: pygit2.Repository) -> list[tuple[str, int, int, int]]:
    """Each shipped manifest built as the bot builds it: (name, picks, partial picks, of
    those accepted by the manifest). A partial pick blocks its XSA unless accepted."""
    out = []
    for loaded in load_manifests(ROOT / "manifests").loaded:
        m = loaded.manifest
        store = ObjectStore(repo)
        builder = Builder(repo, store, Identity(name=NAME, email=EMAIL))
        base, source = (
            git(["rev-parse", f"{ref}^{{commit}}"], cwd=xen).stdout.decode().strip()
            for ref in (f"refs/tags/{m.base}", f"refs/heads/{m.source}")
        )
        result = builder.build(
            m, manifests_root=ROOT / "manifests", base_commit=base, source_commit=source
        )
        picks = sum(len(o.picks) for o in result.outcomes)
        blocked = [b for b in result.blocked if b.reason == PARTIAL]
        accepted = sum(len(o.accepted_partial) for o in result.outcomes)
        out.append((loaded.name, picks + len(blocked), len(blocked) + accepted, accepted))
    return out


def commit_differences(
    repo_a: pygit2.Repository, repo_c: pygit2.Repository, a: list[Outcome], c: list[Outcome]
) -> dict[str, int]:
    """Why commit SHAs differ, leaving out the parent line (one difference makes all later
    SHAs of a branch differ). git puts the cherry-pick -x line into a closing block that is
    trailers by git's rules (25% of lines are trailers, one of them git-made), which
    bot.git.commits.with_provenance does not follow for blocks such as "[stefano: ...]"."""
    counts = {"provenance": 0, "other": 0}
    for (_, x), (_, y) in zip(a, c, strict=True):
        if x is None or y is None or x == y:
            continue
        raw_a, raw_c = (
            b"\n".join(
                line for line in r.odb.read(sha)[1].split(b"\n") if not line.startswith(b"parent ")
            )
            for r, sha in ((repo_a, x), (repo_c, y))
        )
        if raw_a == raw_c:
            continue
        unblank = raw_a.replace(b"\n\n(cherry picked from", b"\n(cherry picked from")
        counts["provenance" if unblank == raw_c else "other"] += 1
    return counts


def differences(
    a: list[Outcome], b: list[Outcome], flat: list[tuple[str, Pick]], what: str, show: int = 5
) -> int:
    count = 0
    for (tag, pick), x, y in zip(flat, a, b, strict=False):
        if x != y:
            count += 1
            if count <= show:
                print(f"  {what} differs at {tag} {pick.sha[:12]}: {x} vs {y}")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repo",
        type=Path,
        default=DEFAULT_REPO,
        required=DEFAULT_REPO is None,
        help="a Xen clone, only read (default: $XSABOT_XEN_REPO)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "out" / "picks",
        help="scratch directory (default %(default)s)",
    )
    parser.add_argument(
        "--cherry-pick-limit",
        type=int,
        default=100,
        help="picks to time with git cherry-pick (default %(default)s; 0: skip)",
    )
    parser.add_argument("--skip-pygit2", action="store_true", help="do not run (b)")
    parser.add_argument(
        "--show-partial", type=int, default=10, help="partial picks to list (default %(default)s)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile (a), print the top")
    parser.add_argument(
        "--extra",
        action="store_true",
        help="also compare (a) with (b) on the XSA picks in reverse order and on every non-XSA "
        "stable commit after each base (slow: merge_trees on thousands of picks)",
    )
    args = parser.parse_args()
    xen = args.repo.resolve()
    args.out.mkdir(parents=True, exist_ok=True)

    repo_a = scratch_repo(args.out / "a.git", xen)
    start = time.perf_counter()
    bases = find_inputs(xen, repo_a)
    flat = [(b.tag, p) for b in bases for p in b.picks]
    print(
        f"inputs: {len(flat)} XSA picks over {len(bases)} bases "
        f"({time.perf_counter() - start:.1f} s to read)"
    )

    profile = cProfile.Profile() if args.profile else None
    if profile:
        profile.enable()
    run_a = run_merger(repo_a, bases)
    out_a, time_a, store, merger = run_a.outcomes, run_a.seconds, run_a.store, run_a.merger
    if profile:
        profile.disable()
    packs = list((args.out / "a.git" / "objects" / "pack").glob("*.pack"))
    size = sum(p.stat().st_size for p in packs) / 1e6
    s = merger.stats
    conflicts = sum(1 for t, _ in out_a if t is None)
    print(
        f"(a) TreeMerger:        {len(flat) / time_a:8.0f} picks/s  ({time_a:.2f} s; "
        f"{conflicts} conflicts, {s.fallbacks} fall-backs to merge_trees, "
        f"{s.file_merges} file merges, {s.file_cache_hits} file-merge cache hits, "
        f"{store.loose_writes} loose objects)"
    )
    print(
        f"    flush: {run_a.flush_seconds * 1000:.0f} ms for {run_a.flushed} new objects "
        f"in {len(packs)} pack(s) of {size:.1f} MB"
    )
    print(
        f"    faithful: {len(run_a.partial)} of {len(flat) - conflicts} clean picks are partial "
        f"(before prerequisites; {run_a.diffs} file diffs for the check)"
    )
    for tag, pick, differs in run_a.partial[: args.show_partial]:
        for d in differs:
            print(f"      {tag} {pick.sha[:12]} {d.path}: {d.what}")

    shipped = shipped_partial(xen, repo_a)
    print(
        f"    after prerequisites, the shipped manifests: "
        f"{sum(n for _, _, n, _ in shipped)} partial picks of {sum(p for _, p, _, _ in shipped)} "
        f"({sum(a for _, _, _, a in shipped)} accepted in the manifest): "
        + ", ".join(f"{name} {n}/{p}" for name, p, n, _ in shipped)
    )

    rate_b = 0.0
    if not args.skip_pygit2:
        out_b, time_b = run_pygit2(scratch_repo(args.out / "b.git", xen), bases)
        rate_b = len(flat) / time_b
        print(f"(b) pygit2 merge_trees: {rate_b:8.0f} picks/s  ({time_b:.2f} s)")
        diff = differences(out_a, out_b, flat, "(a) vs (b)")
        tree_diff = differences(
            [(t, None) for t, _ in out_a],
            [(t, None) for t, _ in out_b],
            flat,
            "(a) vs (b) tree",
            show=0,
        )
        print(
            f"    (a) vs (b): {tree_diff} differences in status or tree, "
            f"{diff} in status, tree or commit SHA, over {len(flat)} picks"
        )

    rate_c = 0.0
    if args.cherry_pick_limit:
        repo_c = args.out / "c.git"
        scratch_repo(repo_c, xen)
        out_c, time_c, setup_c = run_cherry_pick(repo_c, bases, args.cherry_pick_limit)
        rate_c = len(out_c) / time_c
        print(
            f"(c) git cherry-pick:    {rate_c:8.1f} picks/s  (first {len(out_c)} picks in "
            f"{time_c:.1f} s, extrapolated: {len(flat) / rate_c:.0f} s for all; plus "
            f"{setup_c:.1f} s for work trees)"
        )
        n = len(out_c)
        tree_c = differences(
            [(t, None) for t, _ in out_a[:n]], [(t, None) for t, _ in out_c], flat, "(a) vs (c)"
        )
        sha_c = differences(out_a[:n], out_c, flat, "(a) vs (c) commit", show=0)
        own = commit_differences(repo_a, pygit2.Repository(str(repo_c)), out_a[:n], out_c)
        print(
            f"    (a) vs (c): {tree_c} differences in status or tree, {sha_c} in commit SHA, "
            f"over those {n} picks; commits that differ in more than their parent: "
            f"{own['other']}, only in where the -x line goes: {own['provenance']}"
        )

    rate_a = len(flat) / time_a
    if rate_b:
        print(f"ratio (a)/(b): {rate_a / rate_b:.1f}x")
    if rate_c:
        print(
            f"ratio (a)/(c): {rate_a / rate_c:.0f}x"
            + (f", (b)/(c): {rate_b / rate_c:.1f}x" if rate_b else "")
        )
    if args.extra:
        others = find_inputs(xen, repo_a, xsa=False)
        reverse = [Base(b.tag, b.commit, b.tree, b.picks[::-1]) for b in bases]
        for what, inputs in (("XSA picks in reverse order", reverse), ("non-XSA commits", others)):
            flat_x = [(b.tag, p) for b in inputs for p in b.picks]
            run_x = run_merger(scratch_repo(args.out / "a.git", xen), inputs)
            out_x, t_x, m_x = run_x.outcomes, run_x.seconds, run_x.merger
            out_y, t_y = run_pygit2(scratch_repo(args.out / "b.git", xen), inputs)
            diff_x = differences(out_x, out_y, flat_x, f"{what}: (a) vs (b)")
            print(
                f"extra, {what}: {len(flat_x)} picks, {diff_x} differences in status, tree or "
                f"commit SHA; (a) {len(flat_x) / t_x:.0f} picks/s with {m_x.stats.fallbacks} "
                f"fall-backs, (b) {len(flat_x) / t_y:.0f} picks/s"
            )
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
    if os.environ.get("BENCH_KEEP") != "1":
        for name in ("a.git", "b.git", "c.git"):
            shutil.rmtree(args.out / name, ignore_errors=True)


if __name__ == "__main__":
    main()
