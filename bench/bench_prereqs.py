"""The prerequisite finder on real Xen history, judged by what its proposals build.

Run by hand:  python3 bench/bench_prereqs.py [--repo PATH_TO_XEN] [--bases RELEASE-4.20.0,...]

For each RELEASE-4.X.Y tag of 4.17 to 4.21 that is not the newest of its line, the manifest
`xsabot import stable` writes (every XSA fix commit on stable-4.X after the tag, in stable
order) is built with the bot's Builder, and the bot's own searches run on what is blocked, as
a pass runs them (`bot/app/searches.py`: in manifest order, each assuming the sets found before
it are merged). Each set then goes into the manifest through the proposal's own edit
(`proposal_for`, the text a volunteer would merge), the edited manifest is loaded (and linted)
like any other, and built again. Passes repeat until no proposal changes anything; one pass is
the promise (a first pass proposes what a second would).

An XSA counts as resolved only when that last build applies it and every one of its fix
commits lands with the same patch-id as on source (libgit2's, on the built commits): the
manifest-shaped result, end to end, not the finder's own trials. `listed` (prerequisites the
final manifests list) must equal `chosen` (the sets the searches chose); `placed` counts those
with `before:`, which go before a later commit of their XSA.

Per base: XSAs, clean (applied by the first build, no prerequisites), blocked, searches,
waiting (XSAs that apply once an earlier XSA's set is merged, or need a blocked XSA), no set
(conclusive), bound (stopped at a bound), resolved, faithful and proven-minimal sets, chosen,
listed, placed, passes with proposals, search seconds. The per-XSA sets go to
bench/out/prereqs.json and the final manifests to bench/out/manifests/, for filling the shipped
manifests.

The Xen clone is never written: the work happens in a scratch bare repository under bench/out/
whose objects/info/alternates points at the clone's objects.
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
from dataclasses import dataclass, field, fields
from pathlib import Path

import pygit2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app.importer import find_xsa_commits, render_manifest  # noqa: E402
from bot.app.searches import Searched, Searcher, explained  # noqa: E402
from bot.config import Identity  # noqa: E402
from bot.core.outcome import BuildResult  # noqa: E402
from bot.core.prereqs import Limits  # noqa: E402
from bot.core.proposals import ManifestFile, proposal_for  # noqa: E402
from bot.git.build import Builder  # noqa: E402
from bot.git.commits import parse_commit  # noqa: E402
from bot.git.objects import ObjectStore  # noqa: E402
from bot.git.runner import git  # noqa: E402
from bot.git.workrepo import WorkRepo  # noqa: E402
from bot.manifest import edit  # noqa: E402
from bot.manifest.load import load_manifest  # noqa: E402
from bot.manifest.model import Manifest  # noqa: E402

# The Xen clone: --repo, or the XSABOT_XEN_REPO environment variable.
DEFAULT_REPO = os.environ.get("XSABOT_XEN_REPO")
OUT = ROOT / "bench" / "out"
LINES = ("4.17", "4.18", "4.19", "4.20", "4.21")
MAX_PASSES = 4


@dataclass
class Row:
    tag: str
    xsas: int = 0
    clean: int = 0
    blocked: int = 0
    searches: int = 0
    waiting: int = 0
    no_set: int = 0
    bound: int = 0
    resolved: int = 0
    faithful: int = 0
    minimal: int = 0
    chosen: int = 0
    listed: int = 0
    placed: int = 0
    passes: int = 0
    seconds: float = 0.0
    times: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    unresolved: list[int] = field(default_factory=list)

    def add(self, other: Row) -> None:
        for f in fields(self):
            if f.name != "tag":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def scratch_repo(path: Path, xen: Path) -> WorkRepo:
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
    return WorkRepo(path)


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


class BaseRun:
    """One base: its manifest, built, searched, edited by the proposals, built again."""

    def __init__(self, work: WorkRepo, tag: str, source: str, limits: Limits) -> None:
        self.work, self.tag, self.source = work, tag, source
        self.repo = work.repo
        self.store = ObjectStore(self.repo)
        self.builder = Builder(self.repo, self.store, Identity(), patch_cache=OUT / "patches")
        self.base = str(self.repo.revparse_single(tag).peel(pygit2.Commit).id)
        self.tip = str(self.repo.revparse_single(source).peel(pygit2.Commit).id)
        self.dir = OUT / "manifests"
        self.path = self.dir / f"{tag}.yaml"
        self.searcher = Searcher(work, self.store, self.builder, self.dir, limits)
        self.row = Row(tag)
        self.searched: list[dict[str, object]] = []

    def build(self, manifest: Manifest) -> BuildResult:
        return self.builder.build(
            manifest, manifests_root=self.dir, base_commit=self.base, source_commit=self.tip
        )

    def run(self) -> Manifest:
        groups = find_xsa_commits(self.repo.path, self.tag, self.source)
        text = render_manifest(
            tree="xen", base=self.tag, source=self.source, branch=f"xsa/{self.tag}", groups=groups
        )
        self.path.write_text(text)
        r = self.row
        manifest = load_manifest(self.path, root=self.dir).manifest
        first = self.build(manifest)
        r.xsas = len(manifest.xsas)
        r.clean = len(first.xsas("applied")) + len(first.xsas("already-applied"))
        blocked = [b.xsa for b in first.blocked]
        r.blocked = len(blocked)
        result = first
        for passes in range(1, MAX_PASSES + 1):
            started = time.perf_counter()
            searched = self.searcher.search(self.tag, manifest, result)
            took = time.perf_counter() - started
            r.seconds += took
            changed = self.propose(manifest, result, searched, first=passes == 1)
            if not changed:
                break
            r.passes = passes
            manifest = load_manifest(self.path, root=self.dir).manifest  # lint included
            result = self.build(manifest)
        self.judge(manifest, result, blocked)
        return manifest

    def propose(self, manifest: Manifest, result: BuildResult, s: Searched, first: bool) -> bool:
        """Apply every proposal of the pass to the manifest's text; whether one changed it."""
        r = self.row
        text = self.path.read_text()
        changed = False
        reported = explained(result, s)
        for outcome in reported.outcomes:
            finder = s.found.get(outcome.xsa)
            if first and outcome.blocked is not None and outcome.xsa in s.waits:
                r.waiting += 1
            if finder is None or outcome.blocked is None:
                continue
            if first:
                r.searches += 1
                r.no_set += finder.conclusive
                r.bound += not finder.found and not finder.conclusive
            mf = ManifestFile(self.tag, self.path.name, text, manifest, edit)
            proposal = proposal_for(mf, outcome, finder)
            flag = ""
            if proposal is not None and not proposal.draft:
                text = proposal.files[self.path.name]
                changed = True
                r.faithful += finder.faithful
                r.minimal += finder.minimal
                r.chosen += len(finder.chosen)
                r.times.append(finder.seconds)
                r.sizes.append(len(finder.chosen))
            elif not finder.found:
                flag = "  <-- NO SET" if finder.conclusive else f"  <-- {finder.bound()}"
            placed = sum(1 for c in finder.chosen if c.before)
            print(
                f"    XSA-{outcome.xsa}: {len(finder.chosen)} of {len(finder.candidates)} "
                f"candidates{f' ({placed} placed later)' if placed else ''}, "
                f"{finder.trials} trials, {finder.seconds:.3f} s"
                f"{', minimal' if finder.minimal else ''}"
                f"{', widened ' + '+'.join(finder.widened) if finder.widened else ''}"
                f"{'' if finder.faithful or not finder.found else ', NOT faithful'}"
                f"{', waits for ' + str(list(finder.waits_for)) if finder.waits_for else ''}"
                f"{flag}",
                flush=True,
            )
            self.searched.append(_record(self.tag, outcome.xsa, finder))
        self.path.write_text(text)
        return changed

    def judge(self, manifest: Manifest, result: BuildResult, blocked: list[int]) -> None:
        """Resolved: applied by the last build, every fix commit with its source patch-id."""
        r = self.row
        r.listed = sum(len(e.prerequisites) for e in manifest.xsas)
        r.placed = sum(1 for e in manifest.xsas for p in e.prerequisites if p.before)
        self.store.flush()  # the built commits, for libgit2's diff
        for xsa in blocked:
            o = result.outcome(xsa)
            if (
                o is not None
                and o.state in ("applied", "already-applied")
                and all(
                    self.same_patch_id(p.source, p.commit)
                    for p in o.picks
                    if p.role == "fix" and not p.empty
                )
            ):
                r.resolved += 1
            else:
                r.unresolved.append(xsa)
                why = o.blocked.reason if o is not None and o.blocked else "a fix lands differently"
                print(f"    XSA-{xsa}: NOT RESOLVED ({why})", flush=True)

    def same_patch_id(self, source: str, built: str) -> bool:
        src = self.repo[source].peel(pygit2.Commit)
        ours = parse_commit(self.store.read(built)[1])
        parent = parse_commit(self.store.read(ours.parents[0])[1])
        theirs = self.repo.diff(src.parents[0].tree, src.tree)
        landed = self.repo.diff(self.repo[parent.tree], self.repo[ours.tree])
        return bool(theirs.patchid == landed.patchid)

    def entries(self, manifest: Manifest) -> list[dict[str, object]]:
        return [
            {
                "base": self.tag,
                "xsa": e.xsa,
                "commits": list(e.commits),
                "prerequisites": [p.model_dump(exclude_none=True) for p in e.prerequisites],
            }
            for e in manifest.xsas
            if e.prerequisites
        ]


def _record(tag: str, xsa: int, finder: object) -> dict[str, object]:
    from bot.core.prereqs import FinderResult

    assert isinstance(finder, FinderResult)
    return {
        "base": tag,
        "xsa": xsa,
        "fix": finder.fix,
        "conflicts": list(finder.conflicts),
        "found": finder.found,
        "faithful": finder.faithful,
        "minimal": finder.minimal,
        "candidates": len(finder.candidates),
        "chosen": [
            {"commit": c.sha, "subject": c.subject, "before": c.before, "reasons": list(c.reasons)}
            for c in finder.chosen
        ],
        "waits_for": list(finder.waits_for),
        "trials": finder.trials,
        "seconds": round(finder.seconds, 4),
        "bound_hit": finder.bound_hit,
        "widened": list(finder.widened),
    }


def table(rows: list[Row]) -> Row:
    header = (
        "base",
        "XSAs",
        "clean",
        "blocked",
        "searches",
        "waiting",
        "no set",
        "bound",
        "resolved",
        "faithful",
        "minimal",
        "chosen",
        "listed",
        "placed",
        "passes",
        "search s",
    )
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    total = Row("**total**")
    for r in [*rows, total]:
        print(
            f"| {r.tag} | {r.xsas} | {r.clean} | {r.blocked} | {r.searches} | {r.waiting}"
            f" | {r.no_set} | {r.bound} | {r.resolved} | {r.faithful} | {r.minimal}"
            f" | {r.chosen} | {r.listed} | {r.placed} | {r.passes} | {r.seconds:.2f} |"
        )
        if r is not total:
            total.add(r)
    print(
        "\nresolved: blocked in the first build, applied by the last with every fix commit's "
        "patch-id as on source; chosen: the searches' sets; listed: the final manifests' "
        "prerequisites; placed: those with `before:`"
    )
    if total.times:
        print(
            f"median {statistics.median(total.times):.3f} s per search, mean "
            f"{statistics.mean(total.times):.3f} s, max {max(total.times):.3f} s; sets: "
            f"median {statistics.median(total.sizes or [0])}, mean "
            f"{statistics.mean(total.sizes or [0]):.2f}, max {max(total.sizes, default=0)}"
        )
    return total


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
    args = parser.parse_args()
    (OUT / "manifests").mkdir(parents=True, exist_ok=True)
    work = scratch_repo(OUT / "prereqs-scratch.git", args.repo)
    limits = Limits(max_seconds=args.max_seconds)
    wanted = set(args.bases.split(",")) if args.bases else None
    rows: list[Row] = []
    searched: list[dict[str, object]] = []
    xsas: list[dict[str, object]] = []
    started = time.perf_counter()
    for tag, source in bases(args.repo, wanted):
        print(f"{tag}:", flush=True)
        run = BaseRun(work, tag, source, limits)
        manifest = run.run()
        rows.append(run.row)
        searched += run.searched
        xsas += run.entries(manifest)
    wall = time.perf_counter() - started
    total = table(rows)
    print(
        f"listed == chosen: {total.listed == total.chosen} ({total.listed} listed, "
        f"{total.chosen} chosen); resolved {total.resolved}/{total.blocked}"
        + (f"; not resolved: {total.unresolved}" if total.unresolved else "")
    )
    print(f"wall {wall:.1f} s (builds, searches, edits and loads)")
    args.out.write_text(json.dumps({"xsas": xsas, "searches": searched}, indent=1) + "\n")
    print(f"per-XSA sets: {args.out} ({len(xsas)} XSAs with prerequisites)")
    return 0 if total.resolved == total.blocked and total.listed == total.chosen else 1


if __name__ == "__main__":
    sys.exit(main())
