"""`xsabot reconcile`: one pass: fetch upstream, build, publish, propose."""

from __future__ import annotations

import argparse

from bot.cli.main import Context
from bot.cli.progress import Progress
from bot.cli.render import dump_json, pass_text, proposal_lines, search_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Exit status 1 when an XSA is blocked, a manifest is invalid, or a branch is kept at "
        "its tip: its new build would withdraw an XSA the published tip holds (the report "
        "names it and its manifest entry), or someone else moved it (never overwritten). "
        "The other branches still publish. 2: usage or environment."
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="the same as `xsabot plan`: build and report, publish and propose nothing",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.dry_run:
        from bot.commands.plan import show_plan

        return show_plan(ctx, as_json=args.json)
    from bot.app.reconcile import reconcile

    done = reconcile(ctx.config, Progress(), ctx.adapters)
    report = done.report
    if args.json:
        print(dump_json(report.to_json()))
    else:
        print(pass_text(done.outcome.report, done=True))
        lines = [*proposal_lines(done.proposals), *search_lines(done.search_checks)]
        for line in [*lines, *done.errors]:
            print(line)
    return report.exit_status
