"""How a new build reaches a published branch without ever rewriting it.

- nothing published yet: create;
- the build is the published tip: nothing to do;
- the build extends the published tip: fast-forward;
- otherwise a pseudo-merge: a commit whose tree is the new build and whose parents are the
  published tip and the build, with a message that lists what changed. Downstreams
  fast-forward, and `git diff old new` shows exactly the change (git-debrebase's idea);
- kept: publishing would withdraw an XSA the published tip holds, and neither the manifest
  nor the base says it may go; the branch keeps its tip.

What a published tip holds (its build record) is a promise. An XSA applied there leaves the
branch only when the manifest removes it, declares it `blocked` or `not-affected`, or when its
changes are in the new base; `removals` sorts the XSAs a new build drops into those and the
ones it would withdraw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.core.record import BuildRecord, XsaRecord
from bot.manifest.model import Manifest

Action = Literal["create", "fast-forward", "pseudo-merge", "none", "kept", "error"]
HELD_STATES = ("applied", "already-applied")


def decide(published: str | None, build: str, build_extends_published: bool) -> Action:
    if published is None:
        return "create"
    if published == build:
        return "none"
    return "fast-forward" if build_extends_published else "pseudo-merge"


@dataclass(frozen=True)
class Removal:
    """An XSA the published tip holds and the new build drops, and what allows it: words
    that depend only on the manifest and the records, since they go into a commit message."""

    xsa: int
    why: str


@dataclass(frozen=True)
class Withdrawal:
    """An XSA the new build would withdraw, though nothing allows it; `why` is what the new
    build says of it."""

    xsa: int
    why: str


def removals(
    old: BuildRecord,
    new: BuildRecord,
    manifest: Manifest,
    in_base: Callable[[XsaRecord], bool],
) -> tuple[list[Removal], list[Withdrawal]]:
    """The XSAs `old` holds that `new` does not, allowed and not, in `old`'s order.

    `in_base(x)`: whether the changes `old` published for `x` are all in the new base (asked
    only for XSAs the manifest still wants on the branch)."""
    entries = {e.xsa: e for e in manifest.xsas}
    now = {x.xsa: x for x in new.xsas}
    allowed: list[Removal] = []
    withdrawn: list[Withdrawal] = []
    for was in old.xsas:
        if was.state not in HELD_STATES:
            continue
        entry, rec = entries.get(was.xsa), now.get(was.xsa)
        if entry is None or rec is None:
            allowed.append(Removal(was.xsa, "removed from the manifest"))
        elif entry.status is not None:
            why = " ".join(entry.why.split())  # one line in the message, however written
            said = f"declared {entry.status} in the manifest, why: {why}"
            allowed.append(Removal(was.xsa, said))
        elif _holds(was, rec):
            continue
        elif in_base(was):
            allowed.append(Removal(was.xsa, f"now in the base {new.base}, patch-ids found"))
        else:
            withdrawn.append(Withdrawal(was.xsa, _lost(rec, new.base)))
    return allowed, withdrawn


def _holds(was: XsaRecord, rec: XsaRecord) -> bool:
    """Whether the new build still holds what the old one published of an XSA: it applied
    it, or found its change on the branch already while listing the same fix. Found there
    under other commits (a fix replaced by a commit already in the base), the old changes
    must be shown to be in the base."""
    if rec.state == "applied":
        return True
    return rec.state == "already-applied" and (rec.commits, rec.patches) == (
        was.commits,
        was.patches,
    )


def _lost(rec: XsaRecord, base: str) -> str:
    if rec.state == "blocked":
        where = f" in {', '.join(rec.paths)}" if rec.paths else ""
        detail = rec.detail.strip().splitlines()[0] if rec.detail.strip() else ""
        said = f": {detail}" if detail else ""
        return f"the new build has it blocked ({rec.reason}{where}){said}"
    if rec.state == "already-applied":
        return (
            f"the manifest now lists commits already in the base {base}, but the changes "
            "published for it are not in that base"
        )
    return f"the new build has it {rec.state}"


def _applied(record: BuildRecord) -> dict[int, XsaRecord]:
    return {x.xsa: x for x in record.xsas if x.state in HELD_STATES}


def changes(
    old: BuildRecord | None,
    new: BuildRecord,
    *,
    unreadable: str = "",
    removed: list[Removal] | None = None,
) -> list[str]:
    """What a reader of the branch needs to know changed, one line each, stable order.

    `unreadable`: why the old record could not be read, for reports (a pseudo-merge's message
    leaves it out: it must not depend on the wording of a parser's errors). `removed`: why
    each XSA the new build drops may go (`removals`)."""
    if old is None:
        why = f" ({unreadable})" if unreadable else ""
        return [f"previous build record unreadable{why}: rebuilt from the manifest"]
    lines: list[str] = []
    if old.base_commit != new.base_commit or old.base != new.base:
        lines.append(f"base: {old.base} -> {new.base}")
    before, after = _applied(old), _applied(new)
    added = [n for n in after if n not in before]
    why_removed = {r.xsa: r.why for r in removed or ()}
    if added:
        lines.append("added: " + ", ".join(f"XSA-{n}" for n in added))
    for n in before:
        if n not in after:
            lines.append(f"removed: XSA-{n} ({why_removed.get(n, 'no reason recorded')})")
    for n, rec in after.items():
        prev = before.get(n)
        if prev is None:
            continue
        new_prereqs = [p for p in rec.prerequisites if p not in prev.prerequisites]
        if new_prereqs:
            lines.append(f"XSA-{n}: prerequisites added: " + ", ".join(p[:12] for p in new_prereqs))
        if n in why_removed:  # listed again, with commits the base holds
            lines.append(f"XSA-{n}: {why_removed[n]}")
        elif (prev.commits, prev.patches) != (rec.commits, rec.patches):
            lines.append(f"XSA-{n}: revised (fix commits or patches changed)")
        elif prev.prerequisites != rec.prerequisites and not new_prereqs:
            lines.append(f"XSA-{n}: prerequisites changed")
    common_before = [n for n in before if n in after]
    common_after = [n for n in after if n in before]
    if common_before != common_after:
        lines.append("reordered: " + ", ".join(f"XSA-{n}" for n in common_after))
    if not lines:
        lines.append("rebuilt with the same XSAs (bot or committer changed)")
    return lines


def subject(
    branch: str,
    old: BuildRecord | None,
    new: BuildRecord,
    removed: list[Removal] | None = None,
) -> str:
    """The one line a publish reads as in `git log --first-parent --oneline`: what changed,
    most telling first, e.g. `xsa/4.19: base RELEASE-4.19.5 -> RELEASE-4.19.6 (XSA-488 now
    in the base); add XSA-508`. Like `changes`, it depends on the records and the manifest
    only, so two replicas write the same commit."""
    if old is None:
        return f"{branch}: rebuild from the manifest (previous build record unreadable)"
    parts: list[str] = []
    before, after = _applied(old), _applied(new)
    why_removed = {r.xsa: r.why for r in removed or ()}
    in_base = [
        n
        for n, was in before.items()
        if why_removed.get(n, "").startswith("now in the base")
        or (was.state == "applied" and n in after and after[n].state == "already-applied")
    ]
    base_moved = old.base_commit != new.base_commit or old.base != new.base
    if base_moved:
        moved = (
            f"base {old.base} -> {new.base}" if old.base != new.base else f"base {new.base} moved"
        )
        if in_base:
            moved += " (" + ", ".join(f"XSA-{n}" for n in in_base) + " now in the base)"
        parts.append(moved)
    added = [n for n in after if n not in before]
    if added:
        parts.append("add " + ", ".join(f"XSA-{n}" for n in added))
    for n in before:
        if n in in_base:
            if not base_moved:
                parts.append(f"XSA-{n} now in the base")
        elif n not in after or n in why_removed:
            parts.append(f"remove XSA-{n} ({_short_why(why_removed.get(n, ''))})")
    revised = [
        n
        for n, rec in after.items()
        if n in before
        and n not in why_removed
        and n not in in_base
        and (before[n].commits, before[n].patches) != (rec.commits, rec.patches)
    ]
    if revised:
        parts.append("revise " + ", ".join(f"XSA-{n}" for n in revised))
    prereqs = [
        n
        for n, rec in after.items()
        if n in before and n not in revised and before[n].prerequisites != rec.prerequisites
    ]
    if prereqs:
        parts.append("prerequisites of " + ", ".join(f"XSA-{n}" for n in prereqs))
    if [n for n in before if n in after] != [n for n in after if n in before]:
        parts.append("reorder XSAs")
    return f"{branch}: " + ("; ".join(parts) or "rebuild with the same XSAs")


def _short_why(why: str) -> str:
    """A removal's reason in a word or two, for the subject (the body has it whole)."""
    if why == "removed from the manifest":
        return "manifest"
    if why.startswith("declared "):
        return why.removeprefix("declared ").split(" in the manifest")[0]
    if why.startswith("now in the base"):
        return "in the base"
    return why or "no reason recorded"


def pseudo_merge_message(
    branch: str,
    build: str,
    old: BuildRecord | None,
    new: BuildRecord,
    removed: list[Removal] | None = None,
) -> str:
    """A pseudo-merge's message: its subject says what changed (`subject`), its body lists
    every change (`changes`) and how the commit keeps the branch fast-forwarding."""
    body = "\n".join(f"- {line}" for line in changes(old, new, removed=removed))
    return (
        f"{subject(branch, old, new, removed)}\n\n"
        f"{body}\n\n"
        f"This pseudo-merge keeps {branch} fast-forwarding: its tree is the new build\n"
        f"{build} (its second parent), its first parent the previously published tip.\n"
        f"`git diff HEAD^1 HEAD` shows what changed for you.\n"
    )


def moved_by_someone_else(
    branch: str, tip: str, last: str | None, *, looked: int, no_notes: bool = False
) -> str:
    """Why the bot leaves alone a branch whose tip it did not publish (no record of the
    branch on it), and what the operator can do; `last`: the bot's last tip behind it.
    `no_notes`: the mirror has no build records at all, so nothing tells who moved it."""
    keep = "not overwritten: the bot never writes over a tip it did not publish"
    if no_notes:
        return (
            f"{branch} at {tip} has no build record: the mirror has no refs/notes/xsabot "
            f"(deleted, or {branch} was pushed by someone else); {keep}. To go on, restore "
            f"refs/notes/xsabot in the mirror, or delete {branch} there (the next pass "
            "creates it from its manifest)"
        )
    found = last or f"none found within {looked} commits behind it"
    head = (
        f"{branch} was moved by someone else to {tip} (the bot's last tip with a record: "
        f"{found}); {keep}. "
    )
    if last is None:
        return head + (
            f"To go on, delete {branch} in the mirror (the next pass creates it from its "
            "manifest); what was pushed stays only if the manifest lists it"
        )
    return head + (
        f"To go on, reset {branch} in the mirror to {last} (the next pass publishes on top of "
        "it) or delete it (the next pass creates it); what was pushed stays only if the "
        "manifest lists it"
    )
