"""Every ref the bot may write in a mirror, in one place; the push refuses any other.

- `refs/heads/<namespace>...`: the published branches (`xsa/4.19`);
- `refs/heads/<namespace without its slash>-candidate/...`: forge-CI candidates
  (`xsa-candidate/4.19`), outside the namespace so downstreams fetching `xsa/*` never see them;
- `refs/notes/xsabot`: the build records;
- with `copy_upstream_refs`, exactly the upstream refs the pass copies: the `RELEASE-*` tags
  and the manifests' source branches. A copy may create a ref or fast-forward a branch; it
  never moves a tag and never rewinds or replaces a branch (the mirror's own refs stay).

Proposals are not mirror refs: forges write only branches under `xsabot/` in the manifests
repository (`bot.forges.branch.check_proposal`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

NOTES_REF = "refs/notes/xsabot"


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

    def allows(self, ref: str) -> bool:
        heads = "refs/heads/"
        candidates = f"{heads}{self.namespace.rstrip('/')}-candidate/"
        return (
            ref == NOTES_REF
            or (ref.startswith(heads + self.namespace) and len(ref) > len(heads + self.namespace))
            or (ref.startswith(candidates) and len(ref) > len(candidates))
            or ref in self.upstream_copies
        )

    def refused(self, refs: Collection[str]) -> list[str]:
        return sorted(r for r in refs if not self.allows(r))
