"""`xsabot status`: what each published branch holds, from the mirror's build records: a
table on a terminal, plain lines when piped, JSON with `--json`."""

from __future__ import annotations

import argparse
import sys

from bot.cli.main import Context
from bot.cli.render import branch_lines, dump_json, escape, status_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the status as JSON")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.app.status import status

    report = status(ctx.config, ctx.adapters)
    if args.json:
        print(dump_json(report.to_json()))
    elif sys.stdout.isatty():  # a person: a table; piped: the lines below, for scripts
        from rich.console import Console

        Console().print(status_table(report))
        for p in report.proposals:
            draft = " (draft)" if p.draft else ""
            Console().print(f"proposal !{p.id}{draft}: {escape(p.title)} [{escape(p.branch)}]")
    else:
        for branch in report.branches:
            for line in branch_lines(branch, done=True):
                print(line.replace("no change to ", "", 1))
        for p in report.proposals:
            draft = " (draft)" if p.draft else ""
            print(f"proposal !{p.id}{draft}: {p.title} [{p.branch}]")
    return 0 if all(b.ok for b in report.branches) else 1
