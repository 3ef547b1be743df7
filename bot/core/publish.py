"""How a new build reaches a published branch without ever rewriting it.

- nothing published yet: create;
- the build is the published tip: nothing to do;
- the build extends the published tip: fast-forward;
- otherwise a pseudo-merge: a commit whose tree is the new build and whose parents are the
  published tip and the build, with a message that lists what changed. Downstreams
  fast-forward, and `git diff old new` shows exactly the change (git-debrebase's idea).
"""

from __future__ import annotations

from typing import Literal

from bot.core.record import BuildRecord, XsaRecord

Action = Literal["create", "fast-forward", "pseudo-merge", "none", "error"]


def decide(published: str | None, build: str, build_extends_published: bool) -> Action:
    if published is None:
        return "create"
    if published == build:
        return "none"
    return "fast-forward" if build_extends_published else "pseudo-merge"


def _applied(record: BuildRecord) -> dict[int, XsaRecord]:
    return {x.xsa: x for x in record.xsas if x.state in ("applied", "already-applied")}


def changes(old: BuildRecord | None, new: BuildRecord, *, unreadable: str = "") -> list[str]:
    """What a reader of the branch needs to know changed, one line each, stable order.

    `unreadable`: why the old record could not be read, for reports (a pseudo-merge's message
    leaves it out: it must not depend on the wording of a parser's errors)."""
    if old is None:
        why = f" ({unreadable})" if unreadable else ""
        return [f"previous build record unreadable{why}: rebuilt from the manifest"]
    lines: list[str] = []
    if old.base_commit != new.base_commit or old.base != new.base:
        lines.append(f"base: {old.base} -> {new.base}")
    before, after = _applied(old), _applied(new)
    added = [n for n in after if n not in before]
    removed = [n for n in before if n not in after]
    if added:
        lines.append("added: " + ", ".join(f"XSA-{n}" for n in added))
    if removed:
        lines.append("removed: " + ", ".join(f"XSA-{n}" for n in removed))
    for n, rec in after.items():
        prev = before.get(n)
        if prev is None:
            continue
        new_prereqs = [p for p in rec.prerequisites if p not in prev.prerequisites]
        if new_prereqs:
            lines.append(f"XSA-{n}: prerequisites added: " + ", ".join(p[:12] for p in new_prereqs))
        if (prev.commits, prev.patches) != (rec.commits, rec.patches):
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


def pseudo_merge_message(branch: str, build: str, old: BuildRecord | None, new: BuildRecord) -> str:
    body = "\n".join(f"- {line}" for line in changes(old, new))
    return (
        f"Update {branch}: rebuilt from its manifest\n\n"
        f"{body}\n\n"
        f"This pseudo-merge keeps {branch} fast-forwarding: its tree is the new build\n"
        f"{build} (its second parent), its first parent the previously published tip.\n"
        f"`git diff HEAD^1 HEAD` shows what changed for you.\n"
    )
