"""`xsabot schema`: print the manifests' JSON Schema (what `manifests/schema.json` holds)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.cli.main import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "Refresh the committed copy with: xsabot schema > manifests/schema.json"


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.manifest.schema import manifest_json_schema_text

    sys.stdout.write(manifest_json_schema_text())
    return 0
