"""`xsabot schema`: print the manifests' JSON Schema (what `manifests/schema.json` holds), or
with `--report NAME` that of a command's `--json` report or of the build record."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.cli.main import Context

REPORT_NAMES = ("plan", "reconcile", "status", "deps", "record")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--report",
        choices=REPORT_NAMES,
        metavar="NAME",
        help=(
            "print instead the schema of a report: the --json of plan, reconcile, status or"
            " deps, or record (the build record note in the mirror); default: the manifests' schema"
        ),
    )
    parser.epilog = "Refresh the committed copy with: xsabot schema > manifests/schema.json"


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.report:
        from bot.core.reports import report_json_schema

        sys.stdout.write(json.dumps(report_json_schema(args.report), indent=2) + "\n")
        return 0
    from bot.manifest.schema import manifest_json_schema_text

    sys.stdout.write(manifest_json_schema_text())
    return 0
