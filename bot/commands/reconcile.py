"""`xsabot reconcile`: one pass: fetch upstream, build what changed, publish, propose."""

from __future__ import annotations

import argparse

from bot.cli import Context
from bot.progress import Progress
from bot.reconcile import run_pass
from bot.render import dump_json, pass_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--dry-run", action="store_true", help="build and report, but publish and propose nothing"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    outcome = run_pass(ctx.config, publish=not args.dry_run, progress=Progress())
    report = outcome.report
    print(dump_json(report.to_json()) if args.json else pass_text(report, done=True))
    return report.exit_status
