"""Build a manifest's branch in memory: per XSA, prerequisites (where placed), fixes, patches.

Each commit is a 3-way merge of the source commit onto the branch (`TreeMerger`), each patch
is applied to a temporary index; commits are deterministic (`commits.py`). A clean pick must
also be faithful: remove and add the lines its source commit does (`faithful.py`); one that
differs is `partial`, unless the manifest accepts it (`partial:` on the XSA). An XSA is all or
nothing: if one of its picks conflicts or is partial, the branch goes back to where it was
before that XSA, the XSA is reported blocked with the paths, and the XSAs after it are still
tried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pygit2

from bot import __version__
from bot.config import Identity
from bot.core.outcome import PARTIAL, Blocked, BuildResult, Pick, PickRole, XsaOutcome
from bot.git.commits import parse_commit, pick_commit
from bot.git.faithful import Difference, pick_check
from bot.git.objects import ObjectStore
from bot.git.patch import PatchError, apply_to_tree, parse_mail, patch_commit, read_patch
from bot.git.pick import TreeMerger
from bot.manifest.model import Manifest, Xsa

ENGINE = f"xsabot {__version__} libgit2 {pygit2.LIBGIT2_VERSION}"
"""What builds the commits: part of every build's inputs, so another merge engine rebuilds."""


class _BadSource(Exception):
    def __init__(self, commit: str, detail: str) -> None:
        super().__init__(detail)
        self.commit = commit


@dataclass
class _Branch:
    head: str
    tree: str


class Builder:
    def __init__(
        self,
        repo: pygit2.Repository,
        store: ObjectStore,
        identity: Identity,
        *,
        patch_cache: Path | None = None,
    ) -> None:
        self.repo = repo
        self.store = store
        self.identity = identity
        self.merger = TreeMerger(store)
        self.check = pick_check(store)
        self.patch_cache = patch_cache or Path(repo.path) / "xsabot-patches"

    def build(
        self,
        manifest: Manifest,
        *,
        manifests_root: Path,
        base_commit: str,
        source_commit: str,
        stop_at: int | None = None,
        leave_out: Mapping[int, Blocked] | None = None,
    ) -> BuildResult:
        """Build the branch; with `stop_at`, stop after that XSA (for `deps`).

        XSAs in `leave_out` are not applied and are reported blocked as given (the check gate
        leaves out an XSA that applies but does not build).
        """
        on_source = self._range(base_commit, source_commit)
        branch = _Branch(base_commit, parse_commit(self.store.read(base_commit)[1]).tree)
        outcomes: list[XsaOutcome] = []
        for entry in manifest.xsas:
            left_out = (leave_out or {}).get(entry.xsa)
            if left_out is not None and entry.status is None:
                blocked = replace(left_out, tree_id=branch.tree, head=branch.head)
                outcomes.append(XsaOutcome(entry.xsa, "blocked", (), blocked))
            else:
                outcomes.append(
                    self._apply_xsa(entry, branch, base_commit, on_source, manifests_root)
                )
            if entry.xsa == stop_at:
                break
        return BuildResult(
            base=manifest.base,
            base_commit=base_commit,
            tip=branch.head,
            tree_id=branch.tree,
            outcomes=tuple(outcomes),
            source_commit=source_commit,
        )

    def _range(self, base: str, tip: str) -> frozenset[str]:
        """Commits reachable from `tip` and not from `base`: where picks may come from."""
        walker = self.repo.walk(tip, pygit2.enums.SortMode.NONE)
        walker.hide(base)
        return frozenset(str(c.id) for c in walker)

    def _apply_xsa(
        self, entry: Xsa, branch: _Branch, base: str, on_source: frozenset[str], root: Path
    ) -> XsaOutcome:
        if entry.status == "not-affected":
            return XsaOutcome(entry.xsa, "not-affected")
        if entry.status == "blocked":
            return XsaOutcome(entry.xsa, "declared-blocked")
        start = _Branch(branch.head, branch.tree)
        picks: list[Pick] = []
        # Each prerequisite right before the commit it is placed before (`before`; default:
        # the first), so one that needs the XSA's earlier commits comes after them.
        sources: list[tuple[str, PickRole]] = list(entry.picks())
        accepted = frozenset(p.commit for p in entry.partial)
        for sha, role in sources:
            try:
                blocked = self._pick(
                    entry.xsa, sha, role, branch, base, on_source, picks, sha in accepted
                )
            except _BadSource as exc:
                blocked = Blocked(entry.xsa, exc.commit, (), "bad-source", str(exc))
            if blocked is not None:
                branch.head, branch.tree = start.head, start.tree
                blocked = replace(blocked, tree_id=start.tree, head=start.head)
                return XsaOutcome(entry.xsa, "blocked", tuple(picks), blocked)
        for patch in entry.patches:
            try:
                self._apply_patch(patch.path, patch.url, patch.sha256, branch, root, picks)
            except PatchError as exc:
                blocked = Blocked(
                    entry.xsa, None, exc.paths, exc.reason, str(exc), start.tree, start.head
                )
                branch.head, branch.tree = start.head, start.tree
                return XsaOutcome(entry.xsa, "blocked", tuple(picks), blocked)
        if all(p.empty for p in picks):
            return XsaOutcome(entry.xsa, "already-applied", tuple(picks))
        return XsaOutcome(entry.xsa, "applied", tuple(picks))

    def _pick(
        self,
        xsa: int,
        sha: str,
        role: PickRole,
        branch: _Branch,
        base: str,
        on_source: frozenset[str],
        picks: list[Pick],
        accept_partial: bool = False,
    ) -> Blocked | None:
        if sha not in on_source:
            self._check_source(sha, base)
            # An ancestor of the base: the change is in the branch already.
            picks.append(Pick(sha, branch.head, role, empty=True))
            return None
        _, raw = self.store.read(sha)
        source = parse_commit(raw)
        if len(source.parents) != 1:
            raise _BadSource(
                sha, f"{sha} is a merge or root commit; only plain commits can be picked"
            )
        parent_tree = parse_commit(self.store.read(source.parents[0])[1]).tree
        merge = self.merger.merge(parent_tree, branch.tree, source.tree)
        if not merge.clean:
            return Blocked(xsa, sha, merge.conflicts, "conflict", "", branch.tree, branch.head)
        assert merge.tree is not None
        differs = self.check.differences(parent_tree, source.tree, branch.tree, merge)
        if differs and not accept_partial:
            detail = "\n".join(_lands_differently(role, d) for d in differs)
            paths = tuple(d.path for d in differs)
            return Blocked(xsa, sha, paths, PARTIAL, detail, branch.tree, branch.head)
        partial = tuple(d.path for d in differs)
        if merge.tree == branch.tree:
            picks.append(Pick(sha, branch.head, role, empty=True, partial=partial))
            return None
        raw_new = pick_commit(
            sha,
            source,
            tree=merge.tree,
            parent=branch.head,
            name=self.identity.name,
            email=self.identity.email,
        )
        branch.head = self.store.write("commit", raw_new)
        branch.tree = merge.tree
        picks.append(Pick(sha, branch.head, role, partial=partial))
        return None

    def _check_source(self, sha: str, base: str) -> None:
        try:
            obj = self.repo[sha]
        except (KeyError, ValueError):
            raise _BadSource(sha, f"{sha} is not in the upstream repository") from None
        if not isinstance(obj, pygit2.Commit):
            raise _BadSource(sha, f"{sha} is not a commit")
        if not (sha == base or self.repo.descendant_of(base, sha)):
            raise _BadSource(sha, f"{sha} is not on the source branch after the base")

    def _apply_patch(
        self,
        path: str | None,
        url: str | None,
        sha256: str,
        branch: _Branch,
        root: Path,
        picks: list[Pick],
    ) -> None:
        data = read_patch(path=path, url=url, sha256=sha256, root=root, cache=self.patch_cache)
        repo_dir = Path(self.repo.path)
        mail = parse_mail(repo_dir, data)
        self.store.flush()  # git apply reads the branch tree from the repository
        tree = apply_to_tree(repo_dir, branch.tree, mail.diff)
        if tree == branch.tree:
            picks.append(Pick(f"patch:{sha256}", branch.head, "patch", empty=True))
            return
        name = path or (url or "").rsplit("/", 1)[-1]
        raw = patch_commit(
            mail,
            tree=tree,
            parent=branch.head,
            name=self.identity.name,
            email_addr=self.identity.email,
            provenance=f"(applied from advisory patch {Path(name).name} sha256 {sha256})",
        )
        branch.head = self.store.write("commit", raw)
        branch.tree = tree
        picks.append(Pick(f"patch:{sha256}", branch.head, "patch"))


def _lands_differently(role: PickRole, d: Difference) -> str:
    """One line of a `partial` XSA's detail: which change, and how it differs."""
    return f"the {role}'s change to {d.path} lands differently: {d.what}"
