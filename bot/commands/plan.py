"""`xsabot plan`: what a pass would do, per manifest. Builds in memory, publishes nothing.

With `--mr N` (or `--mr` alone in a merge request pipeline) the plan of the checked-out
manifests is also posted on that merge request as the bot's one plan comment, edited in
place on later runs (the Atlantis habit): volunteers see what their change does before merge.
"""

from __future__ import annotations

import argparse

from bot.app.pass_ import run_pass
from bot.cli.main import Context
from bot.cli.progress import Progress
from bot.cli.render import dump_json, pass_text, plan_markdown
from bot.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument(
        "--mr",
        nargs="?",
        const="ci",
        metavar="N",
        help="post the plan on merge request N (alone: the MR of this CI pipeline, from GitLab's"
        " CI_MERGE_REQUEST_IID or GitHub's GITHUB_REF; default: post nothing)",
    )


def merge_request_number(value: str) -> int:
    if value != "ci":
        if not value.isdigit():
            raise UsageError(f"--mr {value!r}: expected a merge request number")
        return int(value)
    from bot.forges.ci_env import merge_request_from_ci

    found = merge_request_from_ci()
    if found is None:
        raise UsageError("--mr without a number needs a GitLab or GitHub merge request pipeline")
    return found.number


def run(args: argparse.Namespace, ctx: Context) -> int:
    number = merge_request_number(args.mr) if args.mr else None
    return show_plan(ctx, as_json=args.json, merge_request=number)


def show_plan(ctx: Context, *, as_json: bool, merge_request: int | None = None) -> int:
    """`plan`, and `reconcile --dry-run`: one code path."""
    outcome = run_pass(ctx.config, publish=False, progress=Progress(), adapters=ctx.adapters)
    report = outcome.report
    print(dump_json(report.to_json()) if as_json else pass_text(report, done=False))
    if merge_request is not None:
        from bot.forges.plan_comment import post_plan

        post_plan(ctx.adapters.forge(ctx.config), merge_request, plan_markdown(report))
    return report.exit_status
