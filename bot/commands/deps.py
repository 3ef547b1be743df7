"""`xsabot deps MANIFEST XSA [--json]`: the prerequisites one blocked XSA needs, with evidence.

Builds the manifest in memory up to that XSA, runs the prerequisite finder on the XSA as the
manifest applies it (prerequisites, then all of its commits, onto the branch before it), and
prints the candidates, the chosen set with why each commit is needed, the trials made and the
time. The XSAs blocked before it are offered as a last resort: a fix that needs one of them
waits for it. Exit 0 when a set is found or the XSA applies already, 1 when no set is found or
the XSA waits for another.

It answers whether the XSA applies, not whether it builds: an XSA the check gate holds back
(`does-not-build`) applies as listed, and `xsabot check MANIFEST` is what shows its failure. With
a check configured for the tree, an XSA that applies is reported with that reminder.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from bot.cli.main import Context
from bot.cli.render import dump_json
from bot.core.outcome import BuildResult, XsaOutcome
from bot.core.prereqs import FinderResult, Limits
from bot.core.reports import DepsReport, chosen_why, deps_finding
from bot.errors import UsageError
from bot.manifest.model import Manifest, Xsa


def _xsa_number(text: str) -> int:
    match = re.fullmatch(r"(?:XSA-?)?(\d+)", text.strip(), re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected an XSA number such as 470, got {text!r}")
    return int(match[1])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="the manifest file")
    parser.add_argument("xsa", type=_xsa_number, help="the XSA number (470 or XSA-470)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    defaults = Limits()
    parser.add_argument("--max-candidates", type=int, default=defaults.max_candidates)
    parser.add_argument("--max-trials", type=int, default=defaults.max_trials)
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.app.branch import prepare
    from bot.git.prereqs import find_prerequisites
    from bot.git.sourcelog import source_log

    branch = prepare(ctx.config, args.manifest)
    loaded = branch.loaded
    entry = next((x for x in loaded.manifest.xsas if x.xsa == args.xsa), None)
    if entry is None:
        raise UsageError(f"{args.manifest}: no XSA-{args.xsa} in this manifest")
    manifest = _tried_as_listed(loaded.manifest, entry)
    built = branch.build(manifest, stop_at=entry.xsa)
    work, store, base = branch.work, branch.store, branch.base
    outcome = built.outcomes[-1]
    blocked = outcome.blocked
    head = {"manifest": loaded.name, "xsa": entry.xsa, "state": outcome.state}
    if blocked is None:
        gated = ctx.config.trees[loaded.manifest.tree].gated
        check = f"xsabot check {args.manifest}" if gated else None
        return _report_unblocked(head, outcome, args.json, check)
    if blocked.reason != "conflict" or blocked.commit is None:
        return _report_unsearchable(head, outcome, args.json)
    limits = Limits(args.max_candidates, args.max_trials, args.max_seconds)
    # The builder rolled the blocked XSA back: `built.tree_id` is the branch before it, where a
    # manifest puts the XSA's prerequisites.
    result = find_prerequisites(
        work.repo,
        store,
        base_commit=base,
        fix=blocked.commit,
        xsa=entry.xsa,
        ours_tree=built.tree_id,
        on_branch=built.picked_before(entry.xsa),
        limits=limits,
        xsa_commits=[p.commit for p in entry.prerequisites] + list(entry.commits),
        blocked_xsas=_blocked_before(loaded.manifest, built),
    )
    if args.json:
        print(dump_json(deps_finding(loaded.name, entry.xsa, outcome.state, result).to_json()))
    else:
        head["subject"] = source_log(work.repo).get(blocked.commit).subject
        _print_finding(head, result)
    return 0 if result.found and not result.waits_for else 1


def _tried_as_listed(manifest: Manifest, entry: Xsa) -> Manifest:
    """A manifest whose `status: blocked` XSA is tried anyway if it lists commits: asking for
    its prerequisites is how a volunteer finds out whether it can be unblocked."""
    if entry.status != "blocked" or not entry.commits:
        return manifest
    tried = entry.model_copy(update={"status": None, "why": entry.why})
    xsas = tuple(tried if x.xsa == entry.xsa else x for x in manifest.xsas)
    return manifest.model_copy(update={"xsas": xsas})


def _blocked_before(manifest: Manifest, built: BuildResult) -> dict[int, tuple[str, ...]]:
    """The commits of the XSAs before this one that are not on the branch: blocked by the
    build, or declared blocked in the manifest."""
    commits = {x.xsa: x.commits for x in manifest.xsas}
    return {
        o.xsa: commits[o.xsa]
        for o in built.outcomes[:-1]
        if o.state in ("blocked", "declared-blocked") and commits.get(o.xsa)
    }


def _report_unblocked(
    head: dict[str, Any], outcome: XsaOutcome, as_json: bool, check: str | None
) -> int:
    """`check`: the command that tells whether the branch builds, when the tree has a check
    (an XSA that applies may still be held back by it; deps does not run it)."""
    says = {
        "applied": "applies as listed: no prerequisites needed",
        "already-applied": "is already in the base: no prerequisites needed",
        "not-affected": "is marked not-affected in the manifest",
        "declared-blocked": "is marked blocked and lists no commits to try",
    }[outcome.state]
    if as_json:
        print(dump_json(DepsReport(**head, found=True, chosen=()).to_json()))
    else:
        print(f"XSA-{outcome.xsa} {says}")
        if check and outcome.state == "applied":
            print(f"deps does not run the check; whether the branch builds with it: `{check}`")
    return 0


def _report_unsearchable(head: dict[str, Any], outcome: XsaOutcome, as_json: bool) -> int:
    b = outcome.blocked
    assert b is not None
    detail = f"{b.reason}" + (f": {b.detail}" if b.detail else "")
    if as_json:
        report = DepsReport(**head, found=False, reason=b.reason, detail=b.detail)
        print(dump_json(report.to_json()))
    else:
        print(f"XSA-{outcome.xsa} is blocked by {detail}; prerequisites cannot help with that")
    return 1


def _print_finding(head: dict[str, Any], r: FinderResult) -> None:
    print(f"XSA-{r.xsa} in {head['manifest']}: blocked at {r.fix} {head['subject']}")
    print(f"  conflicts: {', '.join(r.conflicts) or '(none reported)'}")
    stages = "narrow" + "".join(f", then {s}" for s in r.widened)
    print(f"candidates: {len(r.candidates)} (searched: {stages})")
    for c in r.candidates:
        print(f"  {c.sha[:12]} {c.subject}")
        for reason in c.reasons:
            print(f"      {reason}")
    if r.waits_for:
        names = " and ".join(f"XSA-{n}" for n in r.waits_for)
        their = "its" if len(r.waits_for) == 1 else "their"
        print(f"waits for {names} (blocked on this branch): the fix applies only with {their}")
        print("commits, so no prerequisite alone can unblock it")
        for c in r.chosen:
            print(f"  also needs {c.sha} {c.subject}")
    elif r.found:
        kind = "proven minimal" if r.minimal else "irreducible (no single commit can go)"
        lands = "faithful" if r.faithful else "clean but NOT faithful (context differs)"
        print(f"prerequisites: {len(r.chosen)}, {kind}, {lands}")
        for c in r.chosen:
            print(f"  {c.sha} {c.subject}")
            for reason in chosen_why(c, r.conflicts):
                print(f"      why: {reason}")
    else:
        print("prerequisites: none found: no set of candidates makes the XSA apply")
    bound = f"; bound hit: {r.bound_hit}" if r.bound_hit else ""
    print(f"{r.trials} trials in {r.seconds:.2f} s{bound}")
