"""`xsabot serve`: run passes on a schedule and on webhooks; serve the status page."""

from __future__ import annotations

import argparse
import ipaddress

from bot.cli.main import Context
from bot.errors import UsageError

DEFAULT_LISTEN = "127.0.0.1:8080"


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise argparse.ArgumentTypeError(
                f"HOST must be an IP address or localhost, got {host!r}"
            ) from None
    return host, int(port)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value < 7 * 86400:
        raise argparse.ArgumentTypeError(f"expected 0 to 604800 seconds, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Webhook secrets: XSABOT_GITLAB_WEBHOOK_SECRET and XSABOT_GITHUB_WEBHOOK_SECRET, or "
        "the files named by the same variables with _FILE appended; a forge without a secret "
        "has its hook refused. SIGTERM stops the running pass at its next step (never in the "
        "middle of its push) and exits 0. Pass history: <state>/serve/service.json."
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        default=_listen(DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"address of the web app (default {DEFAULT_LISTEN}; 0.0.0.0:8080 for all)",
    )
    parser.add_argument(
        "--interval",
        type=_seconds,
        default=900.0,
        metavar="SECONDS",
        help="seconds between periodic passes (default 900)",
    )
    parser.add_argument(
        "--jitter",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="up to this many seconds added to each interval (default 60)",
    )
    parser.add_argument(
        "--hook-delay",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="wait this long after a webhook before the pass, so a burst makes one (default 5)",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bot.app.reconcile import reconcile
    from bot.app.status import status
    from bot.core.ports import Progress
    from bot.core.reports import PassReport
    from bot.serve import app, hooks
    from bot.serve.scheduler import Service

    if args.interval < 1:
        raise UsageError("--interval: at least 1 second")
    config, adapters = ctx.config, ctx.adapters
    secrets: dict[hooks.Forge, str | None] = {
        "gitlab": hooks.load_secret("gitlab"),
        "github": hooks.load_secret("github"),
    }

    def one_pass(progress: Progress) -> PassReport:
        return reconcile(config, progress, adapters).report

    service = Service(
        one_pass,
        lambda: status(config, adapters),
        config.state,
        interval=args.interval,
        jitter=args.jitter,
        hook_delay=args.hook_delay,
    )
    web = app.create_app(service, config, secrets=secrets)
    host, port = args.listen
    print(f"xsabot serve: listening on http://{host}:{port}/", flush=True)
    app.run(web, service, host, port, verbose=args.verbose)
    print("xsabot serve: stopped", flush=True)
    return 0
