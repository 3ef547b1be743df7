"""Text and JSON output of passes, shared by `plan`, `reconcile` and `status`, and the
status table on a terminal."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.cli.hints import explain
from bot.core.reports import BlockedXsa, BranchReport, CheckRun, PassReport, StatusReport


def escape(text: str) -> str:
    """`text` shown as is by rich, whatever brackets it holds (a manifest's words)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


_VERB = {
    "create": ("would create", "created"),
    "fast-forward": ("would fast-forward", "fast-forwarded"),
    "pseudo-merge": ("would publish a pseudo-merge on", "published a pseudo-merge on"),
    "none": ("no change to", "no change to"),
    "kept": ("would keep", "kept"),
    "error": ("cannot publish", "could not publish"),
}


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def branch_lines(
    report: BranchReport, *, done: bool, shown_elsewhere: frozenset[str] = frozenset()
) -> list[str]:
    verb = _VERB[report.action][1 if done and (report.published or report.action == "kept") else 0]
    head = f"{report.manifest}: {verb} {report.branch or '?'}"
    if report.tip:
        head += f" at {_short(report.tip)}"
    if report.base:
        head += f" (base {report.base})"
    lines = [head]
    if report.would_withdraw:
        lost = ", ".join(f"XSA-{w.xsa}" for w in report.would_withdraw)
        lines.append(
            f"  the build {_short(report.build)} would withdraw {lost}, which the manifest"
            " still lists and the base does not hold: the branch keeps its published tip"
        )
    for w in report.would_withdraw:
        lines.append(f"  WOULD WITHDRAW XSA-{w.xsa} ({w.where}): {w.why}")
    if report.applied or report.already_applied:
        lines.append(
            ("  XSAs the build applies: " if report.would_withdraw else "  XSAs applied: ")
            + (", ".join(map(str, report.applied)) or "none")
            + (
                f"; already in the base: {', '.join(map(str, report.already_applied))}"
                if report.already_applied
                else ""
            )
        )
    lines += [f"  - {c}" for c in report.changes]
    for b in report.blocked:
        where = f" at {_short(b.commit)}" if b.commit else ""
        paths = f": {', '.join(b.paths)}" if b.paths else ""
        lines.append(f"  BLOCKED XSA-{b.xsa}{where}: {_reason(b)}{paths}")
        lines += [f"    {d}" for d in b.detail.splitlines()[:5]]
    if report.not_applied:
        lines.append("  not applied by the manifest: " + ", ".join(map(str, report.not_applied)))
    for n in report.not_compiled:
        lines.append(f"  NOT COMPILED by the check, XSA-{n.xsa}: {', '.join(n.files)}")
    if report.check is not None and report.check.runs:
        lines.append(f"  checks: {_cost(report.check.runs)}")
    lines += [f"  problem: {p}" for p in report.problems if p not in shown_elsewhere]
    return lines


def _cost(runs: Sequence[CheckRun]) -> str:
    incremental = sum(r.incremental for r in runs)
    seconds = sum(r.seconds for r in runs)
    return (
        f"{len(runs)} in {seconds:.0f} s"
        f" ({incremental} incremental, {len(runs) - incremental} on a clean export)"
    )


def search_lines(runs: Sequence[CheckRun]) -> list[str]:
    """What the proposal step's checks cost (the build-aware searches)."""
    return [f"checks for the proposals: {_cost(runs)}"] if runs else []


def _reason(b: BlockedXsa) -> str:
    if not b.waits_for:
        return b.reason
    return f"{b.reason} " + ", ".join(f"XSA-{n}" for n in b.waits_for)


def pass_text(report: PassReport, *, done: bool) -> str:
    """The pass in words. A problem several branches share (their tree's upstream cannot be
    fetched) is printed once after them, naming them, with a hint when one is known."""
    lines: list[str] = []
    shared = _shared_problems(report.branches)
    for branch in report.branches:
        lines += branch_lines(branch, done=done, shown_elsewhere=frozenset(shared))
    for problem, names in shared.items():
        lines.append(f"problem of {', '.join(names)}: {problem}")
    lines += [f"error: {e}" for e in report.errors]
    if not report.branches:
        lines.append("no manifests found")
    problems = [p for b in report.branches for p in b.problems] + list(report.errors)
    lines += [f"hint: {h}" for h in explain(problems)]
    return "\n".join(lines)


def _shared_problems(branches: Sequence[BranchReport]) -> dict[str, list[str]]:
    by_problem: dict[str, list[str]] = {}
    for b in branches:
        for p in dict.fromkeys(b.problems):
            by_problem.setdefault(p, []).append(b.manifest)
    return {p: names for p, names in by_problem.items() if len(names) > 1}


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


_DONE = {"open": "opened", "update": "updated", "close": "closed", "keep": "unchanged"}


def proposal_lines(actions: Sequence[Any]) -> list[str]:
    """One line per proposal the pass touched (`bot.app.proposals.ProposalAction`)."""
    lines = []
    for a in actions:
        if a.action == "merged":
            lines.append(f"proposal {a.branch}: merged; {a.reason}")
            continue
        where = f" !{a.id}" if a.id is not None else ""
        draft = " (draft)" if a.draft else ""
        lines.append(
            f"proposal{where}{draft} {_DONE.get(a.action, a.action)}: {a.manifest} XSA-{a.xsa}"
            f" [{a.branch}] {a.title or a.reason}"
        )
    return lines


_MD_ACTION = {
    "create": "create",
    "fast-forward": "fast-forward",
    "pseudo-merge": "pseudo-merge (rewrite, published as a merge)",
    "none": "no change",
    "kept": "**kept at its published tip**",
    "error": "**cannot publish**",
}


def plan_markdown(report: PassReport) -> str:
    """The plan as a merge request comment: stable text (no times), one section per branch."""
    lines = ["### xsabot plan", ""]
    changing = [b for b in report.branches if b.action != "none" or b.blocked or b.problems]
    unchanged = [b.manifest for b in report.branches if b not in changing]
    if not changing:
        lines.append("No published branch would change.")
    for b in changing:
        lines.append(f"**{b.manifest}** `{b.branch}` (base `{b.base}`): {_MD_ACTION[b.action]}")
        if b.applied:
            lines.append(f"- XSAs on the branch: {', '.join(map(str, b.applied))}")
        lines += [f"- {c}" for c in b.changes]
        for w in b.would_withdraw:
            lines.append(f"- would withdraw: XSA-{w.xsa} (`{w.where}`): {w.why}")
        for x in b.blocked:
            paths = ", ".join(f"`{p}`" for p in x.paths)
            lines.append(f"- blocked: XSA-{x.xsa} ({_reason(x)}{': ' + paths if paths else ''})")
        lines += [f"- problem: `{p}`" for p in b.problems]
        lines.append("")
    if unchanged:
        lines.append("Unchanged: " + ", ".join(unchanged))
    lines += ["", "Nothing is published until this merge request is merged."]
    return "\n".join(lines) + "\n"


def status_table(report: StatusReport) -> Any:
    """`status` on a terminal: one row per branch with what its build record says (as the
    note's summary does), problems beneath; a rich `Table`."""
    from rich.table import Table

    table = Table(title="xsabot status", show_lines=True)
    for name in ("branch", "base", "tip"):  # short words: never broken
        table.add_column(name, no_wrap=True)
    for name in ("XSAs held", "blocked (why)", "manifest"):
        table.add_column(name, overflow="fold")
    for b in report.branches:
        held = ", ".join(f"XSA-{n}" for n in b.applied) or "-"
        if b.already_applied:
            held += "\nin the base: " + ", ".join(f"XSA-{n}" for n in b.already_applied)
        if b.not_applied:
            held += "\nnot applied: " + ", ".join(f"XSA-{n}" for n in b.not_applied)
        blocked = "\n".join(
            f"XSA-{x.xsa}: {_reason(x)}" + (f" in {', '.join(x.paths)}" if x.paths else "")
            for x in b.blocked
        )
        problems = "\n".join(f"[red]{escape(p)}[/red]" for p in b.problems)
        table.add_row(
            escape(b.branch or "?"),
            escape(b.base or "-"),
            _short(b.tip),
            held,
            "\n".join(filter(None, [escape(blocked), problems])) or "-",
            escape(b.manifest),
        )
    return table
