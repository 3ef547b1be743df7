"""Every ref the bot may write in a mirror, in one place; the push refuses any other.

- `refs/heads/<namespace>...`: the published branches (`xsa/4.19`);
- `refs/heads/<namespace without its slash>-candidate/...`: forge-CI candidates
  (`xsa-candidate/4.19`), outside the namespace so downstreams fetching `xsa/*` never see them;
- `refs/notes/xsabot`: the build records;
- `refs/xsabot/notified`: what the notifications said and what they still owe
  (`bot.core.notify`), pushed with the branches it speaks of;
- with `copy_upstream_refs`, exactly the upstream refs the pass copies, each under a namespace
  of their own so that no copy can ever land on a ref of the mirror's own (its `master`, a
  `RELEASE-*` tag someone pushed): upstream `refs/tags/RELEASE-4.19.5` goes to
  `refs/xsabot/upstream/tags/RELEASE-4.19.5`, a source branch `refs/heads/stable-4.19` to
  `refs/xsabot/upstream/heads/stable-4.19`. A copy may be created or a branch copy
  fast-forwarded; a tag copy is never moved.

Proposals are not mirror refs: forges write only branches under `xsabot/` in the manifests
repository (`bot.forges.branch.check_proposal`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

NOTES_REF = "refs/notes/xsabot"
UPSTREAM_COPIES = "refs/xsabot/upstream/"
NOTIFIED_REF = "refs/xsabot/notified"


def upstream_copy_ref(upstream_ref: str) -> str:
    """Where the copy of an upstream tag or branch goes in the mirror:
    `refs/tags/RELEASE-4.19.5` -> `refs/xsabot/upstream/tags/RELEASE-4.19.5`."""
    for kind in ("heads/", "tags/"):
        if upstream_ref.startswith("refs/" + kind) and len(upstream_ref) > len(kind) + 5:
            return UPSTREAM_COPIES + upstream_ref.removeprefix("refs/")
    raise ValueError(f"{upstream_ref} is not an upstream branch or tag")


def candidate_ref(branch: str, namespace: str) -> str:
    """The mirror ref a candidate for `branch` is pushed to: `xsa/4.19` ->
    `refs/heads/xsa-candidate/4.19`."""
    if not branch.startswith(namespace):
        raise ValueError(f"{branch} is not under the bot's namespace {namespace}")
    return f"refs/heads/{namespace.rstrip('/')}-candidate/{branch.removeprefix(namespace)}"


@dataclass(frozen=True)
class WritableRefs:
    """The refs one push may write: the namespace's, and the upstream copies it was given."""

    namespace: str
    upstream_copies: frozenset[str] = frozenset()

    @classmethod
    def of(cls, namespace: str, upstream_copies: Collection[str] = ()) -> WritableRefs:
        return cls(namespace, frozenset(upstream_copies))

    def _is_copy(self, ref: str) -> bool:
        # Only a copy the pass chose, and only in the copies' own namespace, whatever list
        # the pass hands in.
        return ref in self.upstream_copies and ref.startswith(UPSTREAM_COPIES)

    def _branches(self) -> tuple[str, str]:
        """The directories of its branches: published ones, and forge-CI candidates."""
        heads = "refs/heads/"
        return (heads + self.namespace, f"{heads}{self.namespace.rstrip('/')}-candidate/")

    def allows(self, ref: str) -> bool:
        return (
            ref in (NOTES_REF, NOTIFIED_REF)
            or any(ref.startswith(d) and len(ref) > len(d) for d in self._branches())
            or self._is_copy(ref)
        )

    def prefixes(self) -> tuple[str, ...]:
        """Where the refs it allows are (a ref, or a directory of refs ending in `/`): what
        the bot may clear stale git locks of (`bot.git.locks`)."""
        return (*self._branches(), NOTES_REF, NOTIFIED_REF, UPSTREAM_COPIES)

    def refused(self, refs: Collection[str]) -> list[str]:
        return sorted(r for r in refs if not self.allows(r))
