"""The `xsabot` command: shared options, subcommand dispatch, and the one error handler.

Each subcommand lives in `bot/commands/<name>.py` with `add_arguments(parser)` and
`run(args, ctx) -> int`; modules are imported only when their subcommand runs, so a no-op
`reconcile` does not pay for the forge clients or the web stack.
Exit status: 0 ok, 1 something blocked or invalid, 2 usage or environment error, 141 when
the reader of the output went away (`xsabot status --json | head -1`): what a shell reports
for git or any C program killed by SIGPIPE, so `set -o pipefail` scripts see the output was
cut short, and nothing more is printed (no traceback, no "Exception ignored").
"""

from __future__ import annotations

import argparse
import importlib
import keyword
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import __version__
from bot.errors import UsageError, XsabotError

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
    "export": "write a branch as a quilt patch series for the release tarball",
    "serve": "run passes on a schedule and on webhooks; serve a status page and metrics",
    "verify": "rebuild a published branch independently and say verified or what differs",
    "notify": "send a test message to every notification channel (--test)",
}
# The commands that run a pass, and so take `--shard` (and a glob `--manifests`).
PASSES = frozenset({"plan", "reconcile", "serve"})
BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for git killed by a closed pipe


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
            from bot.config import load_config, split_glob, with_overrides
            from bot.forges.credentials import take_configured_secrets

            config = load_config(self.args.config)
            overrides = {
                "--upstream": dict(self.args.upstream),
                "--mirror": dict(self.args.mirror),
                "--check": dict(self.args.check),
            }
            manifests = self.args.manifests
            folder = split_glob(manifests)[0] if manifests else config.manifests
            self._check_trees(config, folder, overrides)
            self._config = with_overrides(
                config,
                manifests=self.args.manifests,
                state=self.args.state,
                upstreams=overrides["--upstream"],
                mirrors=overrides["--mirror"],
                checks=overrides["--check"],
                shard=getattr(self.args, "shard", None),
            )
            # Before any command runs anything: the secrets it names leave the environment.
            take_configured_secrets(self._config)
        return self._config

    def _check_trees(
        self, config: Config, manifests: Path, overrides: dict[str, dict[str, str]]
    ) -> None:
        """A `TREE=` that no config tree, manifest or `--tree` names is a typo that would be
        ignored silently: a usage error naming the known trees. A tree only the manifests name
        may be given its upstream on the command line (no config file needed)."""
        named = {t for given in overrides.values() for t in given if t}
        if named <= config.trees.keys():
            return  # the common case reads no manifest
        files = [*_manifest_files(manifests)]
        for attribute in ("manifest", "paths"):
            value = getattr(self.args, attribute, None)
            for path in value if isinstance(value, list) else [value] if value else []:
                files += _manifest_files(path) if path.is_dir() else [path]
        known = set(config.trees) | {t for f in files if (t := _tree_of(f))}
        if isinstance(getattr(self.args, "tree", None), str):
            known.add(self.args.tree)
        for option, given in overrides.items():
            for tree in given:
                if tree and tree not in known:
                    raise UsageError(
                        f"{option} {tree}=...: no tree {tree!r} in the config or the manifests;"
                        f" known trees: {', '.join(sorted(known)) or 'none'}"
                    )


_TREE_LINE = re.compile(rb"^tree:[ \t]*[\"']?([a-z0-9][a-z0-9-]*)", re.MULTILINE)


def _manifest_files(folder: Path) -> list[Path]:
    return sorted(p for ext in ("yaml", "yml") for p in folder.glob(f"*.{ext}"))


def _tree_of(path: Path) -> str | None:
    """The tree a manifest names on its `tree:` line; None when it cannot be read (the real
    loader reports that later, at its line)."""
    try:
        match = _TREE_LINE.search(path.read_bytes()[: 1 << 20])
    except OSError:
        return None
    return match[1].decode() if match else None


def _common(parser: argparse.ArgumentParser, *, top: bool = False, passes: bool = False) -> None:
    """The options every command takes. `-v`/`-q` are also taken before the command; their
    defaults are SUPPRESSed so that the subcommand's parser does not reset what was given
    before it (`xsabot -v reconcile` and `xsabot reconcile -v` both work)."""
    output = parser.add_argument_group("output")
    output.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log each step with its timing to stderr (default: off)",
    )
    output.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show no progress (default: progress when stderr is a terminal)",
    )
    if top:
        return
    g = parser.add_argument_group("common options")
    g.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="config file (default: ./xsabot.yaml or ./xsabot.yml if present, else the embedded "
        "default: the public Xen upstream and a local mirror)",
    )
    g.add_argument(
        "--manifests",
        type=Path,
        metavar="DIR" if not passes else "DIR_OR_GLOB",
        help="manifests directory (default: `manifests` of the config, ./manifests)"
        + (
            "; or a glob of file names in it, quoted ('manifests/4.1*.yaml'): only those are "
            "built, the others still read for the checks across manifests"
            if passes
            else ""
        ),
    )
    if passes:
        g.add_argument(
            "--shard",
            metavar="K/N",
            help="build only shard K of N (0 <= K < N) of the manifests, picked by the sha256 "
            "of each manifest's name, the same on every machine: N jobs, 0/N to N-1/N, cover "
            "each manifest once (default: the config's `shard`, else all)",
        )
    g.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        help="state directory: work repositories, local mirror, logs (default: `state` of the "
        "config, ./.xsabot)",
    )
    g.add_argument(
        "--upstream",
        type=_tree_value,
        action="append",
        default=[],
        metavar="[TREE=]PATH_OR_URL",
        help="upstream repository of TREE, or of every tree without `TREE=`; a local clone "
        "saves the network (default: the config's `trees.TREE.upstream`, "
        "env XSABOT_UPSTREAM_<TREE> first, e.g. XSABOT_UPSTREAM_XEN); repeatable",
    )
    g.add_argument(
        "--mirror",
        type=_tree_value,
        action="append",
        default=[],
        metavar="TREE=PATH_OR_URL",
        help="mirror repository of TREE, where branches are published (default: the config's "
        "`trees.TREE.mirror`, else <state>/mirrors/TREE.git); repeatable",
    )
    g.add_argument(
        "--check",
        type=_tree_value,
        action="append",
        default=[],
        metavar="TREE=COMMAND",
        help="check command a built tree must pass (default: the config's `trees.TREE.check`, "
        "else none); repeatable",
    )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported to add its own arguments."""
    parser = argparse.ArgumentParser(
        prog="xsabot", description="Keeps XSA-only branches of Xen release lines."
    )
    parser.add_argument("--version", action="version", version=f"xsabot {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p, passes=name in PASSES)
        if name == command:
            _module(name).add_arguments(p)
    return parser


def _module(name: str) -> Any:
    module = name.replace("-", "_")
    if keyword.iskeyword(module):  # `import` lives in import_.py
        module += "_"
    return importlib.import_module(f"bot.commands.{module}")


def main(argv: Sequence[str] | None = None, adapters: Adapters | None = None) -> int:
    """Run one command. First of all, secrets leave the environment (the check, which runs the
    tree's code, must not find them) and everything printed or logged is redacted."""
    from bot.forges.credentials import protect_process, take_secrets
    from bot.redact import redacting_streams

    take_secrets()
    protect_process()
    with redacting_streams():
        return _main(list(sys.argv[1:] if argv is None else argv), adapters)


def _main(argv: list[str], adapters: Adapters | None) -> int:
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(command)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    args.verbose = getattr(args, "verbose", False)
    args.quiet = getattr(args, "quiet", False)
    handler = _setup_output(verbose=args.verbose, quiet=args.quiet)
    ctx = Context(args, _adapters=adapters)
    try:
        status = int(_module(args.command).run(args, ctx))
        sys.stdout.flush()  # a closed pipe shows here, not at exit where it cannot be caught
        return status
    except BrokenPipeError:
        return _reader_gone()
    except XsabotError as exc:
        from bot.cli.hints import explain

        print(f"xsabot {args.command}: {exc}", file=sys.stderr)
        for hint in explain([str(exc)]):
            print(f"hint: {hint}", file=sys.stderr)
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
    finally:
        # The handler writes to this run's (redacted) stderr, which ends with the run.
        logging.getLogger().removeHandler(handler)


def _setup_output(*, verbose: bool, quiet: bool) -> logging.Handler:
    from bot.cli import progress

    progress.configure(verbose=verbose, quiet=quiet)
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "xsabot: %(message)s" if verbose else "%(levelname)s %(name)s: %(message)s"
        )
    )
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    return handler


def _reader_gone() -> int:
    """The reader of stdout closed the pipe: print nothing more, as the Python docs advise
    (`signal` module, "Note on SIGPIPE"): point stdout at devnull so that the flush at exit
    does not fail again, and exit as git does when SIGPIPE kills it."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (tests)
        pass
    return BROKEN_PIPE


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
