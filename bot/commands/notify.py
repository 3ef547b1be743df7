"""`xsabot notify --test`: send one test message to every configured channel."""

from __future__ import annotations

import argparse

from bot.cli.main import Context
from bot.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Notifications themselves go out from `reconcile`, on state changes only. "
        "Exit status 0 when every channel was reached, 2 when one was not (or none is "
        "configured under `notify:`)."
    )
    parser.add_argument(
        "--test",
        action="store_true",
        required=True,
        help="send one test message to every channel configured under `notify:`",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.app.notify import send_test

    if not ctx.config.notify.channels:
        raise UsageError("no channel configured: add `notify:` to the config (see README)")
    results = send_test(ctx.config, ctx.adapters)
    for channel, why in results.items():
        print(f"{channel}: " + ("sent" if why is None else f"failed: {why}"))
    return 0 if all(why is None for why in results.values()) else 2
