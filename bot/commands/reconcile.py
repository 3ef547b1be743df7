"""`xsabot reconcile`: one pass: fetch upstream, build what changed, publish, propose."""

from __future__ import annotations

import argparse

from bot.cli import Context
from bot.errors import XsabotError
from bot.progress import Progress
from bot.reconcile import run_pass
from bot.render import dump_json, pass_text, proposal_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--dry-run", action="store_true", help="build and report, but publish and propose nothing"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    progress = Progress()
    outcome = run_pass(ctx.config, publish=not args.dry_run, progress=progress)
    actions = []
    errors: list[str] = []
    # Only a fresh build tells anything new about proposals; a no-op pass skips the forge.
    if not args.dry_run and any(t.results for t in outcome.trees.values()):
        from bot.proposals import propose

        try:
            actions = propose(ctx.config, outcome, progress)
        except XsabotError as exc:  # no forge: branches are published, proposals are not
            errors.append(f"proposals: {exc}")
    errors += [f"proposal {a.branch}: {a.error}" for a in actions if a.error]
    report = outcome.report.model_copy(
        update={"proposals": tuple(actions), "errors": (*outcome.report.errors, *errors)}
    )
    if args.json:
        print(dump_json(report.to_json()))
    else:
        print(pass_text(outcome.report, done=True))
        for line in [*proposal_lines(actions), *errors]:
            print(line)
    return report.exit_status
