"""`xsabot reconcile`: one pass: fetch upstream, build what changed, publish, propose."""

from __future__ import annotations

import argparse

from bot.app.reconcile import run_pass
from bot.cli.main import Context
from bot.cli.progress import Progress
from bot.cli.render import dump_json, pass_text, proposal_lines
from bot.errors import XsabotError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--dry-run", action="store_true", help="build and report, but publish and propose nothing"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    progress = Progress()
    outcome = run_pass(ctx.config, publish=not args.dry_run, progress=progress)
    report = outcome.report
    actions = []
    errors: list[str] = []
    # Only a fresh build tells anything new about proposals; a no-op pass skips the forge.
    if not args.dry_run and any(t.results for t in outcome.trees.values()):
        from bot.app.proposals import propose

        try:
            actions = propose(ctx.config, outcome, progress)
        except XsabotError as exc:  # no forge: branches are published, proposals are not
            errors.append(f"proposals: {exc}")
    errors += [f"proposal {a.branch}: {a.error}" for a in actions if a.error]
    if args.json:
        data = report.to_json()
        data["proposals"] = [a.to_json() for a in actions]
        data["errors"] += errors
        data["ok"] = data["ok"] and not errors
        print(dump_json(data))
    else:
        print(pass_text(report, done=True))
        for line in [*proposal_lines(actions), *errors]:
            print(line)
    return max(report.exit_status, 1 if errors else 0)
