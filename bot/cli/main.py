"""The `xsabot` command: shared options, subcommand dispatch, and the one error handler.

Each subcommand lives in `bot/commands/<name>.py` with `add_arguments(parser)` and
`run(args, ctx) -> int`; modules are imported only when their subcommand runs, so a no-op
`reconcile` does not pay for the forge clients or the web stack.
Exit status: 0 ok, 1 something blocked or invalid, 2 usage or environment error.
"""

from __future__ import annotations

import argparse
import importlib
import keyword
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import __version__
from bot.errors import XsabotError

if TYPE_CHECKING:
    from bot.app.wiring import Adapters
    from bot.config import Config

COMMANDS: dict[str, str] = {
    "lint": "check manifests and report every problem with file:line:col",
    "schema": "print the JSON Schema of manifests (--report NAME: of a report)",
    "build": "build one manifest's branch and print its commits (last line: the tip)",
    "plan": "show what a reconcile pass would do, writing nothing",
    "reconcile": "one pass: fetch upstream, build, publish, propose",
    "status": "show published branches, blocked XSAs and open proposals",
    "deps": "find the prerequisites one XSA needs",
    "import": "print a manifest listing the XSA commits on a source branch",
    "check": "build one manifest's branch and run the tree's check command on it",
    "notify": "send a test message to every notification channel (--test)",
}


def _tree_value(text: str) -> tuple[str, str]:
    """`TREE=PATH_OR_URL`, or a bare `PATH_OR_URL` for every tree (most configs have one)."""
    name, sep, value = text.partition("=")
    if not sep or "/" in name or ":" in name:
        return "", text
    if not name or not value:
        raise argparse.ArgumentTypeError(f"expected TREE=PATH_OR_URL, got {text!r}")
    return name, value


@dataclass
class Context:
    """What every subcommand gets: the parsed options and the config, loaded on first use."""

    args: argparse.Namespace
    _config: Config | None = field(default=None, repr=False)
    _adapters: Adapters | None = field(default=None, repr=False)

    @property
    def adapters(self) -> Adapters:
        """The real adapters, unless a test handed in its own (`main(argv, adapters)`)."""
        if self._adapters is None:
            from bot.app.wiring import DEFAULT

            self._adapters = DEFAULT
        return self._adapters

    @property
    def config(self) -> Config:
        if self._config is None:
            from bot.config import load_config, with_overrides

            self._config = with_overrides(
                load_config(self.args.config),
                manifests=self.args.manifests,
                state=self.args.state,
                upstreams=dict(self.args.upstream),
                mirrors=dict(self.args.mirror),
                checks=dict(self.args.check),
            )
        return self._config


def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("common options")
    g.add_argument("--config", type=Path, help="config file (default: ./xsabot.yaml if present)")
    g.add_argument("--manifests", type=Path, help="manifests directory")
    g.add_argument("--state", type=Path, help="state directory")
    g.add_argument(
        "--upstream", type=_tree_value, action="append", default=[], metavar="TREE=PATH_OR_URL"
    )
    g.add_argument(
        "--mirror", type=_tree_value, action="append", default=[], metavar="TREE=PATH_OR_URL"
    )
    g.add_argument(
        "--check",
        type=_tree_value,
        action="append",
        default=[],
        metavar="TREE=COMMAND",
        help="check command a built tree must pass (overrides the config)",
    )
    g.add_argument("-v", "--verbose", action="store_true", help="log what is done")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported to add its own arguments."""
    parser = argparse.ArgumentParser(
        prog="xsabot", description="Keeps XSA-only branches of Xen release lines."
    )
    parser.add_argument("--version", action="version", version=f"xsabot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p)
        if name == command:
            _module(name).add_arguments(p)
    return parser


def _module(name: str) -> Any:
    module = name.replace("-", "_")
    if keyword.iskeyword(module):  # `import` lives in import_.py
        module += "_"
    return importlib.import_module(f"bot.commands.{module}")


def main(argv: Sequence[str] | None = None, adapters: Adapters | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(command)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx = Context(args, _adapters=adapters)
    try:
        return int(_module(args.command).run(args, ctx))
    except XsabotError as exc:
        print(f"xsabot {args.command}: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("xsabot: interrupted", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: say so briefly, keep the details for the report
        where = _write_traceback(ctx)
        from bot.redact import redact

        print(
            f"xsabot {args.command}: internal error ({type(exc).__name__}: {redact(str(exc))}); "
            f"the full traceback is in {where}; please report it",
            file=sys.stderr,
        )
        return 2


def _write_traceback(ctx: Context) -> str:
    """Write the current exception's traceback under the state dir (or the temp dir when
    there is no config to tell where that is), and return the file's path."""
    import tempfile
    import time
    import traceback

    from bot.redact import redact

    text = redact(traceback.format_exc())
    folders = [Path(tempfile.gettempdir())]
    if ctx._config is not None:
        folders.insert(0, ctx._config.state / "logs")
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(
                prefix=time.strftime("crash-%Y%m%dT%H%M%S-"), suffix=".txt", dir=folder
            )
            with open(fd, "w") as out:
                out.write(text)
            return name
        except OSError:
            continue
    return "(nowhere: no writable directory)"
