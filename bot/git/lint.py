"""What the upstream repository says about a manifest: the checks `lint --fetch` and every pass
run before building. Plain data out (`Finding`: where in the manifest, and what is wrong).

Rules, in a volunteer's words (README and CONTRIBUTING say the same):

- `source` is a branch of the upstream; `base` is a tag of it.
- `base` is on the line of `source`: `source` contains it (every Xen point release is tagged on
  its stable branch), or the tag was cut off `source`, which has no tag of its own since the
  two parted. A tag of another line fails: `RELEASE-4.21.0` and `stable-4.22` parted before
  `4.22.0-rc1`, `RELEASE-4.22.0` and more, tags of `stable-4.22`.
- `base` is not older than the base of the published branch (its build record): a tag the
  published base contains would take point-release changes back out of the branch.
- Every listed commit (fix or prerequisite) exists, is a plain commit (one parent: a merge or
  a root cannot be picked), and is on `source` after `base`. A commit already in the base is
  accepted where that is the normal state after a base moved forward: a prerequisite, or a fix
  whose message says it is that XSA (the build reports it already applied); any other commit
  in the base is reported (a typo that lands on an old commit would drop the fix).
"""

from __future__ import annotations

from dataclasses import dataclass

import pygit2

from bot.core.xsa_messages import xsa_numbers
from bot.git.runner import git
from bot.git.workrepo import UPSTREAM, WorkRepo
from bot.manifest.model import Manifest
from bot.manifest.where import Loc  # ("xsas", 1, "commits", 0), as pydantic names places

# Naming the branches that hold a commit costs a `git for-each-ref --contains` (0.3 s on Xen):
# only for the first few commits that are off `source`; a wrong `source` makes them all so.
_WHERE_AT_MOST = 3


@dataclass(frozen=True)
class Finding:
    loc: Loc
    message: str


@dataclass(frozen=True)
class PublishedBase:
    """The base of the published branch, from its build record."""

    tag: str
    commit: str


def upstream_findings(
    work: WorkRepo, manifest: Manifest, *, published: PublishedBase | None = None
) -> list[Finding]:
    """Every finding of the fetched upstream (`work`) about `manifest`, in manifest order."""
    return _Checker(work, manifest).run(published)


class _Checker:
    def __init__(self, work: WorkRepo, manifest: Manifest) -> None:
        self.work = work
        self.repo = work.repo
        self.m = manifest
        self.findings: list[Finding] = []
        self.hints_left = _WHERE_AT_MOST

    def run(self, published: PublishedBase | None) -> list[Finding]:
        m = self.m
        base = self.work.upstream(m.base, "tags")
        source = self.work.upstream(m.source, "heads")
        kind = self.work.upstream_kind(m.base, "tags") if base is None else "commit"
        if kind not in (None, "commit"):
            self._add(("base",), f"the tag `{m.base}` names a {kind}, not a commit")
        elif base is None:
            also = " (a branch has that name)" if self.work.upstream(m.base, "heads") else ""
            self._add(("base",), f"no tag `{m.base}` in the {m.tree} upstream{also}")
        if source is None:
            also = " (a tag has that name)" if self.work.upstream(m.source, "tags") else ""
            self._add(("source",), f"no branch `{m.source}` in the {m.tree} upstream{also}")
        if base is not None and source is not None and not self._check_line(base, source):
            # Every commit would be off that line too: the base finding says it once.
            base = source = None
        if base is not None and published is not None:
            self._check_forward(base, published)
        on_source = _range(self.repo, base, source) if base and source else None
        for i, entry in enumerate(m.xsas):
            for j, p in enumerate(entry.prerequisites):
                loc: Loc = ("xsas", i, "prerequisites", j, "commit")
                self._check_commit(loc, p.commit, None, base, source, on_source)
            for j, sha in enumerate(entry.commits):
                self._check_commit(
                    ("xsas", i, "commits", j), sha, entry.xsa, base, source, on_source
                )
        return self.findings

    def _add(self, loc: Loc, message: str) -> None:
        self.findings.append(Finding(loc, message))

    # -- base and source ---------------------------------------------------------------------

    def _check_line(self, base: str, source: str) -> bool:
        """Whether `base` is on the line of `source`; a finding when it is not."""
        if self.work.is_ancestor(base, source):
            return True
        m = self.m
        try:
            parted = self.repo.merge_base(base, source)
        except (KeyError, ValueError, pygit2.GitError):
            parted = None
        if parted is None:
            self._add(("base",), f"`{m.base}` shares no history with `{m.source}`")
            return False
        own = _tags_between(self.work, str(parted), source)
        if own:
            shown = ", ".join(own[:3]) + (", ..." if len(own) > 3 else "")
            self._add(
                ("base",),
                f"`{m.base}` is not on the line of `{m.source}`: the branch does not contain "
                f"it, and has tags of its own since the two parted at {str(parted)[:12]} "
                f"({shown})",
            )
        return not own

    def _check_forward(self, base: str, published: PublishedBase) -> None:
        if base == published.commit or not self.work.is_ancestor(base, published.commit):
            return
        m = self.m
        if published.tag == m.base:  # the same name: the tag itself was moved upstream
            why = "the tag now points to an older commit than the one the published branch "
            why += f"is based on ({published.commit[:12]})"
        else:
            why = f"the published branch is based on `{published.tag}`, which already "
            why += f"contains `{m.base}`"
        self._add(("base",), f"`{m.base}` moves `{m.branch}` backwards: {why}")

    # -- commits -----------------------------------------------------------------------------

    def _check_commit(
        self,
        loc: Loc,
        sha: str,
        xsa: int | None,  # None for a prerequisite
        base: str | None,
        source: str | None,
        on_source: frozenset[str] | None,
    ) -> None:
        short = sha[:12]
        try:
            obj = self.repo[sha]
        except (KeyError, ValueError):
            self._add(loc, f"commit {short} does not exist in the {self.m.tree} upstream")
            return
        if not isinstance(obj, pygit2.Commit):
            self._add(loc, f"{short} is a {obj.type_str}, not a commit")
            return
        parents = len(obj.parent_ids)
        if parents != 1:
            kind = "a root commit" if parents == 0 else f"a merge commit ({parents} parents)"
            self._add(loc, f"{short} is {kind}: only plain commits can be picked")
            return
        if on_source is not None and sha in on_source:
            return
        if base is not None and self.work.is_ancestor(sha, base):
            if xsa is None or xsa in xsa_numbers(obj.message):
                return  # in the base already: the build reports it already applied
            subject = obj.message.strip().split("\n", 1)[0]
            self._add(
                loc,
                f'{short} ("{subject}") is already in the base `{self.m.base}` and does not '
                f"say it is XSA-{xsa}: fix commits come after the base",
            )
            return
        if source is None or (on_source is None and self.work.is_ancestor(sha, source)):
            return  # nothing more to say without both base and source
        where = self._branches_holding(sha)
        after = f" after `{self.m.base}`" if base is not None else ""
        self._add(
            loc,
            f"{short} is not on `{self.m.source}`{after}"
            + (f" (it is on {where})" if where else ""),
        )

    def _branches_holding(self, sha: str) -> str:
        if self.hints_left <= 0:
            return ""
        self.hints_left -= 1
        out = git(
            ["for-each-ref", "--contains", sha, "--format=%(refname)", f"{UPSTREAM}heads/"],
            cwd=self.work.path,
        ).stdout.decode()
        names = [ref.removeprefix(f"{UPSTREAM}heads/") for ref in out.split()]
        shown = ", ".join(f"`{n}`" for n in names[:3]) + (", ..." if len(names) > 3 else "")
        return shown


def _range(repo: pygit2.Repository, base: str, tip: str) -> frozenset[str]:
    """Commits reachable from `tip` and not from `base` (as the builder picks from)."""
    walker = repo.walk(tip, pygit2.enums.SortMode.NONE)
    walker.hide(base)
    return frozenset(str(c.id) for c in walker)


def _tags_between(work: WorkRepo, start: str, tip: str) -> list[str]:
    """Upstream tags on commits reachable from `tip` and not from `start`, by name."""
    after = _range(work.repo, start, tip)
    out = git(
        [
            "for-each-ref",
            "--format=%(objectname) %(*objectname) %(refname)",
            f"{UPSTREAM}tags/",
        ],
        cwd=work.path,
    ).stdout.decode()
    tags = []
    for line in out.splitlines():
        sha, peeled, ref = line.split(" ", 2)
        if (peeled or sha) in after:
            tags.append(ref.removeprefix(f"{UPSTREAM}tags/"))
    return sorted(tags)
