"""The prerequisite finder on real Xen history: every conflict of the XSA-only branches.

Run by hand:  python3 bench/bench_prereqs.py [--repo PATH_TO_XEN] [--bases RELEASE-4.20.0,...]

For each RELEASE-4.X.Y tag of 4.17 to 4.21 that is not the newest of its line, the XSAs on
stable-4.X after the tag are applied in stable order, cumulatively, onto the tag (an XSA is all
or nothing, as the builder does). The finder runs on each conflict with the branch tree before
that XSA, trying all of the XSA's commits after the prerequisites; a resolved XSA then goes on
the branch with its prerequisites, as the manifests filled from these sets will build it (with
--skip, a conflicting XSA is left out instead, as a manifest without prerequisites builds).
Per base: XSAs, clean in order, conflicts, resolved, faithful, prerequisite commits chosen,
time; then totals and the median time per conflict.
The baseline (DOMAIN.md): 179 conflicts, all resolved, 539 prerequisite commits, median set 1,
0.13 s median per conflict.

The chosen sets go to bench/out/prereqs.json. The Xen clone is never written: the work happens
in a scratch bare repository under bench/out/ whose objects/info/alternates points at the
clone's objects.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pygit2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.prereqs import FinderResult, Limits  # noqa: E402
from bot.git.objects import ObjectStore  # noqa: E402
from bot.git.pick import TreeMerger  # noqa: E402
from bot.git.prereqs import find_prerequisites  # noqa: E402
from bot.git.runner import git  # noqa: E402
from bot.importer import find_xsa_commits  # noqa: E402

DEFAULT_REPO = "/work/.mirror/xen-project+xen/repo"
OUT = ROOT / "bench" / "out"
LINES = ("4.17", "4.18", "4.19", "4.20", "4.21")


@dataclass
class BaseRow:
    tag: str
    xsas: int = 0
    clean: int = 0
    conflicts: int = 0
    resolved: int = 0
    faithful: int = 0
    minimal: int = 0
    chosen: int = 0
    seconds: float = 0.0
    times: list[float] = field(default_factory=list)


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


def record(result: FinderResult, tag: str, commits: list[str]) -> dict[str, object]:
    data = asdict(result)
    for key in ("candidates",):
        data[key] = len(result.candidates)
    data["chosen"] = [
        {"commit": c.sha, "why": c.subject, "reasons": list(c.reasons)} for c in result.chosen
    ]
    data.update(base=tag, commits=commits)
    return data


def pick_all(
    merger: TreeMerger, repo: pygit2.Repository, tree: str, commits: list[str]
) -> tuple[str, str | None]:
    """The tree after picking `commits` in order, or the first one that conflicts."""
    for sha in commits:
        c = repo[sha].peel(pygit2.Commit)
        merge = merger.merge(str(c.parents[0].tree_id), tree, str(c.tree_id))
        if merge.tree is None:
            return tree, sha
        tree = merge.tree
    return tree, None


def run_base(
    repo: pygit2.Repository,
    tag: str,
    source: str,
    limits: Limits,
    out: list[dict[str, object]],
    skip: bool,
) -> BaseRow:
    row = BaseRow(tag)
    store = ObjectStore(repo)
    merger = TreeMerger(store)
    base = str(repo.revparse_single(tag).peel(pygit2.Commit).id)
    tree = str(repo[base].peel(pygit2.Tree).id)
    on_branch: list[str] = []
    for xsa, group in find_xsa_commits(repo.path, tag, source):
        row.xsas += 1
        commits = [c.sha for c in group]
        after, failed = pick_all(merger, repo, tree, commits)
        if failed is None:
            row.clean += 1
            tree = after
            on_branch += commits
            continue
        row.conflicts += 1
        start = time.perf_counter()
        result = find_prerequisites(
            repo,
            store,
            base_commit=base,
            fix=failed,
            xsa=xsa,
            ours_tree=tree,
            on_branch=on_branch,
            limits=limits,
            xsa_commits=commits,
            merger=merger,
        )
        took = time.perf_counter() - start
        row.times.append(took)
        row.seconds += took
        row.resolved += result.found
        row.faithful += result.found and result.faithful
        row.minimal += result.found and result.minimal
        row.chosen += len(result.chosen)
        out.append(record(result, tag, commits))
        if result.found and not skip:
            prereqs = [c.sha for c in result.chosen]
            after, failed = pick_all(merger, repo, tree, prereqs + commits)
            assert failed is None, f"XSA-{xsa}: the chosen set does not apply"
            tree = after
            on_branch += prereqs + commits
        flag = (
            ""
            if result.found and result.faithful
            else "  <-- " + ("not faithful" if result.found else "NOT RESOLVED")
        )
        print(
            f"    XSA-{xsa}: {len(result.chosen)} of {len(result.candidates)} candidates, "
            f"{result.trials} trials, {took:.3f} s"
            f"{', minimal' if result.minimal else ''}"
            f"{', widened ' + '+'.join(result.widened) if result.widened else ''}"
            f"{', bound ' + result.bound_hit if result.bound_hit else ''}{flag}",
            flush=True,
        )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path(DEFAULT_REPO))
    parser.add_argument("--bases", help="comma-separated tags (default: all 25)")
    parser.add_argument("--max-seconds", type=float, default=Limits.max_seconds)
    parser.add_argument("--out", type=Path, default=OUT / "prereqs.json")
    parser.add_argument("--skip", action="store_true", help="leave resolved XSAs out")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    repo = scratch_repo(OUT / "prereqs-scratch.git", args.repo)
    wanted = set(args.bases.split(",")) if args.bases else None
    limits = Limits(max_seconds=args.max_seconds)
    rows: list[BaseRow] = []
    sets: list[dict[str, object]] = []
    started = time.perf_counter()
    for tag, source in bases(args.repo, wanted):
        print(f"{tag}:", flush=True)
        rows.append(run_base(repo, tag, source, limits, sets, args.skip))
    wall = time.perf_counter() - started
    header = (
        "base",
        "XSAs",
        "clean",
        "conflicts",
        "resolved",
        "faithful",
        "minimal",
        "prereqs",
        "time s",
    )
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print(
            f"| {r.tag} | {r.xsas} | {r.clean} | {r.conflicts} | {r.resolved} | {r.faithful}"
            f" | {r.minimal} | {r.chosen} | {r.seconds:.2f} |"
        )
    times = [t for r in rows for t in r.times]
    sizes = [len(s["chosen"]) for s in sets if s["found"]]  # type: ignore[arg-type]
    total = BaseRow(
        "total",
        *(
            sum(getattr(r, k) for r in rows)
            for k in ("xsas", "clean", "conflicts", "resolved", "faithful", "minimal", "chosen")
        ),
    )
    print(
        f"| **{total.tag}** | {total.xsas} | {total.clean} | {total.conflicts} | "
        f"{total.resolved} | {total.faithful} | {total.minimal} | {total.chosen} | "
        f"{sum(times):.2f} |"
    )
    if times:
        print(
            f"\nmedian {statistics.median(times):.3f} s per conflict, mean "
            f"{statistics.mean(times):.3f} s, max {max(times):.3f} s; sets: median "
            f"{statistics.median(sizes) if sizes else 0}, mean "
            f"{statistics.mean(sizes) if sizes else 0:.2f}, max {max(sizes, default=0)}; "
            f"wall {wall:.1f} s"
        )
    args.out.write_text(json.dumps(sets, indent=1) + "\n")
    print(f"chosen sets: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
