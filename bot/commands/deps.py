"""`xsabot deps MANIFEST XSA [--json]`: the prerequisites one blocked XSA needs, with evidence.

The search is `bot.app.deps`; this prints the candidates, the chosen set with why each commit
is needed, the trials made and the time. Exit 0 when a set is found or the XSA applies
already, 1 when no set is found or the XSA waits for another. With a check configured for the
tree, an XSA that applies is reported with a reminder that deps does not run the check.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from bot.cli.main import Context
from bot.cli.render import dump_json
from bot.core.outcome import XsaOutcome
from bot.core.prereqs import FinderResult, Limits
from bot.core.reports import DepsReport, chosen_why, deps_finding


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
    parser.add_argument(
        "--max-candidates",
        type=int,
        default=defaults.max_candidates,
        metavar="N",
        help="look at most at this many candidate commits (default: %(default)s)",
    )
    parser.add_argument(
        "--max-trials",
        type=int,
        default=defaults.max_trials,
        metavar="N",
        help="try at most this many sets of candidates (default: %(default)s)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=defaults.max_seconds,
        metavar="S",
        help="stop searching after this long (default: %(default)s)",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.app.deps import find_deps

    limits = Limits(args.max_candidates, args.max_trials, args.max_seconds)
    deps = find_deps(ctx.config, args.manifest, args.xsa, limits, describe=not args.json)
    outcome, result = deps.outcome, deps.finder
    head: dict[str, Any] = {"manifest": deps.manifest, "xsa": outcome.xsa, "state": outcome.state}
    if outcome.blocked is None:
        check = f"xsabot check {args.manifest}" if deps.gated else None
        return _report_unblocked(head, outcome, args.json, check)
    if result is None:
        return _report_unsearchable(head, outcome, args.json)
    if args.json:
        print(dump_json(deps_finding(deps.manifest, outcome.xsa, outcome.state, result).to_json()))
    else:
        head["subject"] = deps.subject
        _print_finding(head, result)
    return 0 if result.found and not result.waits_for else 1


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
            if c.before:
                print(f"      before: {c.before} (goes after the XSA's commits before it)")
            for reason in chosen_why(c, r.conflicts):
                print(f"      why: {reason}")
    elif r.bound_hit:
        print(f"prerequisites: none found before the search stopped at {r.bound()}")
    else:
        print("prerequisites: none found: no set of candidates makes the XSA apply")
    bound = f"; stopped at {r.bound()}" if r.bound_hit else ""
    print(f"{r.trials} trials in {r.seconds:.2f} s{bound}")
