"""`xsabot plan`: what a pass would do, per manifest. Builds in memory, writes nothing."""

from __future__ import annotations

import argparse

from bot.cli import Context
from bot.progress import Progress
from bot.reconcile import run_pass
from bot.render import dump_json, pass_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args: argparse.Namespace, ctx: Context) -> int:
    outcome = run_pass(ctx.config, publish=False, progress=Progress())
    report = outcome.report
    print(dump_json(report.to_json()) if args.json else pass_text(report, done=False))
    return report.exit_status
