"""Which proposals (merge requests on the manifests repository) should exist after a pass.

Pure: manifests, the pass's build results, the prerequisite finder's results and the bot's
merge requests as the forge has them in; one decision per (manifest, XSA) out: `open`,
`update`, `keep` or `close`. The glue in `bot/app/proposals.py` carries them out.

An XSA whose fix needs another XSA that is blocked on the same branch (`waits_for`) gets no
proposal of its own: no prerequisite can unblock it, and marking it blocked would send
volunteers to backport by hand what the other XSA's proposal will bring. Nor does an XSA
whose search stopped at a bound: a draft marking it blocked says that no set exists, which
only a search that covered every candidate can say. `explain_blocked` puts both in the
reports and the build record.

A set the finder placed among the XSA's commits (`Candidate.before`) is written with
`before:`, so the merged manifest picks each commit where the finder's trials did.

An XSA is blocked in one of two ways, and its proposal says which: its fix does not apply
(a conflict, or a `partial` pick that merges but changes other lines than on source: the
finder's set makes it apply as on source, `xsabot deps` reproduces the search), or it
applies but the check gate held it back (`does-not-build`: the set adds what the compiler
reports missing, `xsabot check` reproduces the failure). Telling a reviewer that a fix which
applies cleanly "conflicts" would send them looking for a conflict that is not there.

What proposals should exist follows from durable state only: the manifests and the build
records in the mirror. A record keeps what the proposal step worked out for its build
(`ProposalsRecord`: the wanted branches and their content hashes), and every pass holds the
forge against it (`settled`); only when they differ, or what the texts depend on besides the
build changed (`proposals_basis`), are the searches made again. So a pass whose proposal
step did not finish (killed, the forge down) is completed by the next one.

Every text here depends only on the state it describes (no times of day, no run IDs), because
a merge request is updated exactly when its content hash changes: text that drifted from pass
to pass would edit the merge request, and notify its watchers, on every pass: the compiler's
lines are quoted without times (`error_lines`), and the check's own duration is never shown.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from bot.core.outcome import DOES_NOT_BUILD, PARTIAL, WAITS_FOR, BuildResult, XsaOutcome
from bot.core.ports import BOT_BRANCH_PREFIX, ManifestEditor, MergeRequest, Proposal
from bot.core.prereqs import Candidate, FinderResult
from bot.manifest.model import Manifest

Action = Literal["open", "update", "keep", "close", "merged"]  # merged: told of once, by the forge

# One proposal per (manifest, XSA): the name is how the bot finds its merge request again.
_PROPOSAL_BRANCH = re.compile(rf"^{re.escape(BOT_BRANCH_PREFIX)}(?P<name>[^/]+)/xsa-(?P<xsa>\d+)$")
# What `proposals_basis` covers besides the inputs: a new version when the texts change shape.
_PROPOSALS_FORMAT = 1
_LISTED_CANDIDATES = 100  # forges cap bodies (GitHub: 65,536 characters)
_NO_LONGER_NEEDED = ("applied", "already-applied", "not-affected")
_QUOTED_ERRORS = 20  # the gate keeps at most 20 diagnostic lines; a body needs no more
# Lines that carry a clock time or a duration differ from one run of the same check to the
# next, so they are left out of bodies. (Paths need nothing here: the check runner makes every
# mention of its export directory relative to the tree before anything reads the output.)
_TIME = re.compile(
    r"(?<![\w:.])\d{1,2}:\d{2}:\d{2}(?![\w:])"  # 12:34:56
    r"|(?<![\w.])\d+m\d+(?:\.\d+)?s\b"  # 0m3.2s, as `time` prints it
    r"|(?<![\w.])\d+(?:\.\d+)?\s?(?:s|ms|sec|secs|seconds)\b"  # 3.2s, 12 seconds
)


@dataclass(frozen=True)
class ManifestFile:
    """A manifest as proposals see it; `path` is relative to the manifests repository's top,
    `editor` makes the proposed texts (the core does no YAML itself)."""

    name: str
    path: str
    text: str
    manifest: Manifest
    editor: ManifestEditor


@dataclass(frozen=True)
class Decision:
    """What to do about one (manifest, XSA) proposal, and why (for reports)."""

    action: Action
    manifest: str
    xsa: int
    branch: str
    reason: str
    proposal: Proposal | None = None  # what should exist (open, update, keep of a wanted one)
    existing: MergeRequest | None = None  # the forge's merge request it concerns, if any
    comment: str = ""  # for close: posted on the merge request before it is closed


def proposal_branch(manifest: str, xsa: int) -> str:
    return f"{BOT_BRANCH_PREFIX}{manifest}/xsa-{xsa}"


def parse_proposal_branch(branch: str) -> tuple[str, int] | None:
    """(manifest name, XSA) for a prerequisite proposal's branch; None for any other branch."""
    match = _PROPOSAL_BRANCH.match(branch)
    return (match["name"], int(match["xsa"])) if match else None


def proposals_basis(m: ManifestFile, *, bot: str) -> str:
    """A digest of what a manifest's proposals depend on besides its build and searches:
    the manifest's text (comments and `why`s are in the proposed file) and path, the bot's
    name (in the texts), and the texts' format."""
    payload = json.dumps([_PROPOSALS_FORMAT, bot, m.name, m.path, m.text], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def settled(
    wanted: Mapping[str, str],
    open_mrs: Sequence[MergeRequest],
    newest: Mapping[str, MergeRequest | None],
) -> bool:
    """Whether the forge shows one manifest's proposals as they should be, so nothing needs
    doing: `wanted` ({branch: content hash}, from its record), `open_mrs` the bot's open
    merge requests of that manifest, `newest` the newest merge request of each wanted branch
    that has no open one. Settled: every wanted branch has an open merge request with that
    content, or a merged or closed one with it (a volunteer's answer, not reopened), and no
    other one of the manifest is open (it would be closed)."""
    open_by_branch = {mr.branch: mr for mr in open_mrs}
    if not set(open_by_branch) <= set(wanted):
        return False
    for branch, content in wanted.items():
        mr = open_by_branch.get(branch) or newest.get(branch)
        if mr is None or mr.content_hash != content:
            return False
    return True


def desired_proposals(
    manifests: Sequence[ManifestFile],
    results: Mapping[str, BuildResult],
    found: Mapping[tuple[str, int], FinderResult],
    *,
    bot: str = "xsabot",
) -> dict[str, tuple[ManifestFile, int, Proposal]]:
    """The proposals a pass asks for, by branch: one per blocked XSA the finder looked at,
    except those that wait for another blocked XSA."""
    wanted: dict[str, tuple[ManifestFile, int, Proposal]] = {}
    for m in manifests:
        result = results.get(m.name)
        if result is None:
            continue
        for outcome in result.outcomes:
            finder = found.get((m.name, outcome.xsa))
            if outcome.state != "blocked" or finder is None:
                continue
            proposal = proposal_for(m, outcome, finder, bot=bot)
            if proposal is not None:
                wanted[proposal.branch] = (m, outcome.xsa, proposal)
    return wanted


def decide(
    manifests: Sequence[ManifestFile],
    results: Mapping[str, BuildResult],
    found: Mapping[tuple[str, int], FinderResult],
    existing: Sequence[MergeRequest],
    *,
    unreadable: Collection[str] = (),
    bot: str = "xsabot",
    wanted: Mapping[str, tuple[ManifestFile, int, Proposal]] | None = None,
) -> list[Decision]:
    """One decision per proposal branch that is wanted or has an open merge request.

    `existing`: the bot's open merge requests plus the newest one of each wanted branch (in
    any state). `unreadable`: manifests that exist but did not load this pass; their merge
    requests are left as they are. A manifest without a build result was not built this pass
    (unchanged, or its upstream failed): nothing is known about it, so nothing is closed.
    `wanted`: `desired_proposals` of the same inputs, when the caller has it already.
    """
    by_name = {m.name: m for m in manifests}
    current = _current_by_branch(existing)
    if wanted is None:
        wanted = desired_proposals(manifests, results, found, bot=bot)
    decisions = [
        _decide_wanted(m, xsa, proposal, current.get(branch))
        for branch, (m, xsa, proposal) in wanted.items()
    ]
    for branch, mr in current.items():
        parsed = parse_proposal_branch(branch)
        if branch in wanted or mr.state != "open" or parsed is None:
            continue  # only prerequisite proposals are judged here (intake has its own)
        name, xsa = parsed
        if name in unreadable:
            continue
        m = by_name.get(name)
        why = _why_not_needed(name, xsa, m, results.get(name), found.get((name, xsa)), bot=bot)
        if why is None:
            decisions.append(Decision("keep", name, xsa, branch, "still needed", existing=mr))
        else:
            decisions.append(
                Decision("close", name, xsa, branch, why[0], existing=mr, comment=why[1])
            )
    return sorted(decisions, key=lambda d: (d.manifest, d.xsa, d.branch))


def _current_by_branch(existing: Sequence[MergeRequest]) -> dict[str, MergeRequest]:
    """Per branch, the merge request that counts: an open one, else the newest."""
    current: dict[str, MergeRequest] = {}
    for mr in existing:
        seen = current.get(mr.branch)
        rank = (mr.state == "open", mr.id)
        if seen is None or rank > (seen.state == "open", seen.id):
            current[mr.branch] = mr
    return current


def _decide_wanted(
    m: ManifestFile, xsa: int, proposal: Proposal, mr: MergeRequest | None
) -> Decision:
    def decision(action: Action, reason: str) -> Decision:
        return Decision(action, m.name, xsa, proposal.branch, reason, proposal, mr)

    if mr is None:
        return decision("open", "XSA is blocked")
    same = mr.content_hash == proposal.content_hash()
    if mr.state == "open":
        return decision("keep", "unchanged") if same else decision("update", "content changed")
    # A merged or closed merge request with this very content is a volunteer's answer (or
    # ours, not yet seen by this pass's build): reopening it every pass would be spam.
    if same:
        return decision("keep", f"{mr.state} with this content; not reopened")
    return decision("open", f"XSA is blocked again after the last proposal was {mr.state}")


def _why_not_needed(
    name: str,
    xsa: int,
    m: ManifestFile | None,
    result: BuildResult | None,
    finder: FinderResult | None,
    *,
    bot: str,
) -> tuple[str, str] | None:
    """(reason, closing comment) when an open proposal is no longer needed; None: keep it."""
    tail = f"so this merge request is no longer needed. Closed by {bot}."
    if m is None:
        return "manifest removed", f"The manifest `{name}` no longer exists, {tail}"
    if xsa not in {e.xsa for e in m.manifest.xsas}:
        return "XSA removed from the manifest", f"XSA-{xsa} is no longer in `{m.path}`, {tail}"
    outcome = _outcome(result, xsa)
    waits = waits_for(outcome, finder)
    if waits:
        return _waits_reason(xsa, m, waits, bot=bot)
    if outcome is None or outcome.state not in _NO_LONGER_NEEDED:
        return None
    if outcome.state == "not-affected":
        comment = f"XSA-{xsa} is now declared `not-affected` in `{m.path}`, {tail}"
        return "XSA declared not-affected", comment
    comment = f"XSA-{xsa} now applies to `{m.manifest.branch}` without this change, {tail}"
    return "XSA applies now", comment


def _waits_reason(
    xsa: int, m: ManifestFile, waits_for: Sequence[int], *, bot: str
) -> tuple[str, str]:
    names = " and ".join(f"XSA-{n}" for n in waits_for)
    if len(waits_for) == 1:
        whose, they, own = f"{names}'s", f"{names} is", "with its own proposal"
    else:
        whose, they, own = "their", "they are", "each with its own proposal"
    comment = (
        f"XSA-{xsa} waits for {names}: its fix applies only with {whose} commits, and {they} "
        f"blocked on `{m.manifest.branch}` too, {own}. This merge request is not needed until "
        f"{they} on the branch. Closed by {bot}."
    )
    return f"waits for {names}", comment


def waits_for(outcome: XsaOutcome | None, finder: FinderResult | None) -> tuple[int, ...]:
    """The blocked XSAs a blocked XSA waits for: those its search needed, or those whose
    proposals, once merged, make it apply (`Blocked.waits_for`, from the pass)."""
    if outcome is None or outcome.state != "blocked" or outcome.blocked is None:
        return ()
    return (finder.waits_for if finder else ()) or outcome.blocked.waits_for


def _outcome(result: BuildResult | None, xsa: int) -> XsaOutcome | None:
    if result is None:
        return None
    return next((o for o in result.outcomes if o.xsa == xsa), None)


def explain_blocked(
    result: BuildResult,
    found: Mapping[int, FinderResult],
    waits: Mapping[int, Sequence[int]],
) -> BuildResult:
    """`result` with what the pass's searches found about its blocked XSAs, for the reports
    and the build record: an XSA that waits for others is `waits-for` them; one without a set
    says whether none exists or the search stopped at a bound.

    `found`: the search of each XSA (by XSA); `waits`: the blocked XSAs each waits for, from
    its search or because it applies once their proposals are merged."""
    outcomes = []
    for o in result.outcomes:
        b, finder = o.blocked, found.get(o.xsa)
        if b is not None and o.xsa in waits:
            numbers = tuple(sorted(waits[o.xsa]))
            detail = _waits_detail(numbers, needs_commits=bool(finder and finder.waits_for))
            b = replace(b, reason=WAITS_FOR, detail=detail, waits_for=numbers)
        elif b is not None and finder is not None and not finder.found and not b.detail:
            if finder.conclusive:
                among = _count(len(finder.candidates), "candidate")
                b = replace(b, detail=f"no prerequisite set found among {among}")
            else:
                stopped = f"the search stopped at {finder.bound()}"
                b = replace(b, detail=f"no prerequisite set found: {stopped}")
        outcomes.append(o if b is o.blocked else replace(o, blocked=b))
    return replace(result, outcomes=tuple(outcomes))


def _waits_detail(numbers: Sequence[int], *, needs_commits: bool) -> str:
    names = " and ".join(f"XSA-{n}" for n in numbers)
    if needs_commits:
        return f"the fix needs {names}, blocked on this branch"
    one = len(numbers) == 1
    return (
        f"applies once {names} {'does' if one else 'do'}: the bot proposes what "
        f"{'it needs' if one else 'they need'}"
    )


def proposal_for(
    m: ManifestFile, outcome: XsaOutcome, finder: FinderResult, *, bot: str = "xsabot"
) -> Proposal | None:
    """The proposal for one blocked XSA; None when there is nothing to change in the manifest,
    or when the XSA waits for another blocked XSA (that one's proposal comes first)."""
    xsa = outcome.xsa
    branch = proposal_branch(m.name, xsa)
    if waits_for(outcome, finder):
        return None
    if finder.found:
        if not finder.chosen:
            return None  # nothing to add: the fix needs no prerequisite after all
        text = m.editor.add_prerequisites(
            m.text,
            xsa,
            [(c.sha, c.subject) for c in finder.chosen],
            {c.sha: c.before for c in finder.chosen if c.before},
        )
        if text == m.text:
            return None  # already listed: a proposal could not change anything
        added = _count(len(finder.chosen), "prerequisite")
        if does_not_build(outcome):
            title = f"{m.name}: add {added} so XSA-{xsa} builds"
        else:
            title = f"{m.name}: add {added} for XSA-{xsa}"
        return Proposal(branch, title, found_body(m, outcome, finder), {m.path: text})
    if not finder.conclusive:
        # Stopped at a bound: a set may exist beyond it. Marking the XSA blocked would stop
        # every later search for it (and for the XSAs that wait for it); the pass reports it.
        return None
    text = m.editor.mark_blocked(
        m.text, xsa, f"{bot} found no prerequisite set: {_blocker(outcome, finder)}"
    )
    title = f"{m.name}: mark XSA-{xsa} blocked (no prerequisite set found)"
    body = not_found_body(m, outcome, finder, branch)
    return Proposal(branch, title, body, {m.path: text}, draft=True)


def does_not_build(outcome: XsaOutcome) -> bool:
    """The XSA applies, but the check gate held it back: the branch with it fails the check."""
    return outcome.blocked is not None and outcome.blocked.reason == DOES_NOT_BUILD


def error_lines(outcome: XsaOutcome) -> tuple[str, ...]:
    """The compiler's lines the gate recorded for a `does-not-build` XSA (`Blocked.detail`),
    less those that would make the same failure read differently on another run (`_TIME`)."""
    detail = outcome.blocked.detail if outcome.blocked is not None else ""
    lines = (line.strip() for line in detail.splitlines())
    return tuple(line for line in lines if line and not _TIME.search(line))[:_QUOTED_ERRORS]


def _blocker(outcome: XsaOutcome, finder: FinderResult) -> str:
    """What blocks the XSA, in one line for the manifest's `why`."""
    if does_not_build(outcome):
        first = next(iter(error_lines(outcome)), None)
        return "the fix applies but does not build" + (f": {first}" if first else "")
    verb = "lands partially" if _partial(outcome) else "conflicts"
    return f"the fix {verb} in {_short_paths(_conflicts(outcome, finder))}"


def found_body(m: ManifestFile, outcome: XsaOutcome, finder: FinderResult) -> str:
    chosen = finder.chosen
    builds = does_not_build(outcome)
    if any(c.before for c in chosen):
        # A set placed among the XSA's commits: where each goes is part of the evidence.
        rows = "\n".join(
            f"| `{c.sha}` | {_cell(c.subject)} | {_placement(c)} | {_cell(_reasons(c))} |"
            for c in chosen
        )
        table = [
            f"This adds {_count(len(chosen), 'prerequisite')} from `{m.manifest.source}` to "
            f"`{m.path}`, each applied right before the XSA commit it is placed before "
            "(`before:`; without it, the XSA's first commit), in this order:",
            "",
            "| commit | subject | applied before | why it is needed |",
            "|---|---|---|---|",
            rows,
            "",
            "As on `source`, a prerequisite that comes after some of the XSA's commits there "
            "goes after them on the branch too.",
        ]
    else:
        rows = "\n".join(
            f"| `{c.sha}` | {_cell(c.subject)} | {_cell(_reasons(c))} |" for c in chosen
        )
        table = [
            f"This adds {_count(len(chosen), 'prerequisite')} from "
            f"`{m.manifest.source}` to `{m.path}`, applied before the fix in this order:",
            "",
            "| commit | subject | why it is needed |",
            "|---|---|---|",
            rows,
        ]
    return "\n".join(
        [
            _blocked_lines(m, outcome, finder),
            "",
            *table,
            "",
            *_assumed_lines(finder),
            *(_checked_lines(finder) if builds else [_minimal_line(finder)]),
            _faithful_line(m, finder, searched=not builds),
            "",
            _search_line(finder),
            "",
            *_candidate_lines(finder),
            _reproduce_line(m, outcome),
        ]
    )


def _placement(c: Candidate) -> str:
    return f"`{c.before[:12]}`" if c.before else "the first commit"


def _assumed_lines(finder: FinderResult, *, found: bool = True) -> list[str]:
    """Which other proposals of the same pass the search took as merged: this one is meant
    to be merged after them (or, found nothing, says what it is blocked on top of)."""
    if not finder.assumes:
        return []
    names = " and ".join(f"XSA-{n}" for n in finder.assumes)
    them = "it" if len(finder.assumes) == 1 else "them"
    tail = f"merge {them} first." if found else f"this is what is blocked with {them} merged."
    return [
        f"The search took the bot's proposals for {names} (opened in the same pass) as "
        f"merged: {tail}",
        "",
    ]


def not_found_body(m: ManifestFile, outcome: XsaOutcome, finder: FinderResult, branch: str) -> str:
    xsa = outcome.xsa
    makes_it = "build" if does_not_build(outcome) else "apply"
    return "\n".join(
        [
            _blocked_lines(m, outcome, finder),
            "",
            *_assumed_lines(finder, found=False),
            f"No set of prerequisites from `{m.manifest.source}` makes it {makes_it}, so this "
            f"draft marks XSA-{xsa} `status: blocked` in `{m.path}`.{_covered(outcome)}",
            "",
            f"To unblock it, push a manual backport to `{branch}`: add the patch to the "
            f"manifests repository, list it under `patches:` of XSA-{xsa} with its sha256, and "
            "remove `status` and `why`.",
            "",
            _search_line(finder),
            "",
            *_candidate_lines(finder),
            _reproduce_line(m, outcome),
        ]
    )


def _covered(outcome: XsaOutcome) -> str:
    if does_not_build(outcome):
        return ""
    return (
        " The search covered every candidate, up to every commit on it between the base and "
        "the fix (with which the fix applied there), and the commits of the XSAs blocked on "
        "this branch."
    )


def _conflicts(outcome: XsaOutcome, finder: FinderResult) -> tuple[str, ...]:
    if finder.conflicts:
        return finder.conflicts
    return outcome.blocked.paths if outcome.blocked else ()


def _blocked_lines(m: ManifestFile, outcome: XsaOutcome, finder: FinderResult) -> str:
    if does_not_build(outcome):
        return _build_failure_lines(m, outcome)
    return _conflict_lines(m, outcome, finder)


def _partial(outcome: XsaOutcome) -> bool:
    """A pick merged cleanly but changes other lines than on source (`Blocked.detail` says
    how)."""
    return outcome.blocked is not None and outcome.blocked.reason == PARTIAL


def _conflict_lines(m: ManifestFile, outcome: XsaOutcome, finder: FinderResult) -> str:
    paths = _conflicts(outcome, finder)
    listed = "\n".join(f"- `{p}`" for p in paths) or "- (no path reported)"
    where = f"XSA-{outcome.xsa} does not apply to `{m.manifest.branch}` (base `{m.manifest.base}`)"
    if _partial(outcome) and outcome.blocked is not None:
        how = "\n".join(f"- {line}" for line in outcome.blocked.detail.splitlines())
        return (
            f"{where}: its fix `{finder.fix}` merges cleanly but lands differently than on "
            f"`{m.manifest.source}` in:\n\n{listed}\n\n{how}"
        )
    return f"{where}: its fix `{finder.fix}` conflicts in:\n\n{listed}"


def _build_failure_lines(m: ManifestFile, outcome: XsaOutcome) -> str:
    lead = (
        f"XSA-{outcome.xsa} applies to `{m.manifest.branch}` (base `{m.manifest.base}`), but "
        "the branch with it fails the check"
    )
    lines = error_lines(outcome)
    if not lines:
        return f"{lead}, and the check printed no line that says why."
    # A fence longer than any run of backticks in the lines (ld quotes names `like this').
    fence = "`" * max([3, *(len(run) + 1 for run in re.findall(r"`+", "\n".join(lines)))])
    return "\n".join([f"{lead}. The build reports:", "", fence, *lines, fence])


def _checked_lines(finder: FinderResult) -> list[str]:
    """What the build finder proved: the check passes with the set (it ran it). A check takes
    minutes, so the finder never spends them on dropping commits: a set of one is minimal (the
    branch fails without it), a larger one is not proven so."""
    if finder.minimal:
        size = "The set is **minimal**: without it the branch fails the check."
    else:
        size = (
            "The set is **not proven minimal**: it is the commits that add what the build "
            "reports missing, and the commits those need to apply."
        )
    return [
        f"It **builds**: with the set, the branch with XSA-{finder.xsa} passes the check.",
        size,
    ]


def _minimal_line(finder: FinderResult) -> str:
    if finder.minimal:
        return "The set is **minimal**: no smaller set makes the fix apply."
    return (
        "The set is **irreducible**: no single commit can be dropped "
        "(a smaller set was not ruled out)."
    )


def _faithful_line(m: ManifestFile, finder: FinderResult, *, searched: bool = True) -> str:
    """`searched`: the finder looked for a faithful set (the apply-level one does; the build
    finder only reports whether its set happens to be)."""
    if finder.faithful:
        return (
            f"It is **faithful**: the fix lands with the same patch-id as on `{m.manifest.source}`."
        )
    line = (
        f"It is **not faithful**: the fix applies, but not as on `{m.manifest.source}` "
        "(different context); review the result."
    )
    return f"{line} No faithful set was found." if searched else line


def _search_line(finder: FinderResult) -> str:
    parts = [
        f"Search: {_count(len(finder.candidates), 'candidate')}, "
        f"{_count(finder.trials, 'trial merge')}"
    ]
    if finder.widened:
        parts.append(f"widened to {', '.join(finder.widened)}")
    if finder.bound_hit:
        parts.append(f"stopped at {finder.bound()}")
    return "; ".join(parts) + "."


def _candidate_lines(finder: FinderResult) -> list[str]:
    if not finder.candidates:
        return []
    shown = finder.candidates[:_LISTED_CANDIDATES]
    lines = [f"<details><summary>Candidates tried ({len(finder.candidates)})</summary>", ""]
    lines += [
        f"- `{c.sha[:12]}` {c.subject}" + (f" ({_reasons(c)})" if c.reasons else "") for c in shown
    ]
    if len(finder.candidates) > len(shown):
        lines.append(f"- ... and {len(finder.candidates) - len(shown)} more")
    return [*lines, "", "</details>", ""]


def _reproduce_line(m: ManifestFile, outcome: XsaOutcome) -> str:
    # `deps` searches what makes a fix apply; an XSA the gate held back applies already (deps
    # would say so), and only the check shows the failure.
    if does_not_build(outcome):
        return f"To reproduce: `xsabot check {m.path}`"
    return f"To reproduce: `xsabot deps {m.path} {outcome.xsa}`"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _reasons(c: Candidate) -> str:
    return "; ".join(c.reasons)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _short_paths(paths: Sequence[str]) -> str:
    if not paths:
        return "(no path reported)"
    shown = ", ".join(paths[:3])
    return shown if len(paths) <= 3 else f"{shown} and {len(paths) - 3} more"
