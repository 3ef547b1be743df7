"""The manifest model: what a volunteer declares for one published branch.

Field names are the YAML keys. The model is frozen; the loader (`load.py`) adds file positions
to validation errors, and checks that need context (branch namespace, paths, other manifests).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator

Sha = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{40}$"),
    Field(description="A full 40-hex commit ID (lower case)"),
]
Sha256 = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{64}$"),
    Field(description="sha256 of the patch file, 64 hex digits (lower case)"),
]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Prerequisite(_Frozen):
    """A non-XSA commit on `source` that the fix needs; applied before the fix, in order."""

    commit: Sha
    why: str = Field("", description="Why the fix needs it (usually the commit subject)")


class Patch(_Frozen):
    """An advisory patch file (git format-patch mail), verified by sha256 before use."""

    path: str | None = Field(None, description="Path in the manifests repository")
    url: str | None = Field(None, description="https URL of the patch")
    sha256: Sha256

    @model_validator(mode="after")
    def _one_location(self) -> Patch:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of `path` or `url`")
        if self.url is not None and not self.url.startswith("https://"):
            raise ValueError("`url` must be an https:// URL")
        return self


class Xsa(_Frozen):
    """One advisory on this branch: where its fix comes from, or why it is not applied."""

    xsa: Annotated[StrictInt, Field(gt=0, description="The advisory number, as in XSA-NNN")]
    commits: tuple[Sha, ...] = Field((), description="Fix commits on `source`, in order")
    prerequisites: tuple[Prerequisite, ...] = Field(
        (), description="Non-XSA commits the fix needs, applied first, in order"
    )
    patches: tuple[Patch, ...] = Field((), description="Advisory patches, applied after commits")
    status: Literal["blocked", "not-affected"] | None = Field(
        None, description="Knowingly not applied: `blocked` or `not-affected`"
    )
    why: str = Field("", description="Why, for a status or anything unusual")

    @model_validator(mode="after")
    def _has_a_source(self) -> Xsa:
        if self.status is None and not (self.commits or self.patches):
            raise ValueError("an XSA needs `commits` or `patches` (or a `status`)")
        if self.status is not None and not self.why:
            raise ValueError(f"`status: {self.status}` needs a `why`")
        return self

    @property
    def applies(self) -> bool:
        return self.status is None


class Manifest(_Frozen):
    """One published branch: a base tag plus XSAs from `source`, in order."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={"title": "xsabot manifest"},
    )

    tree: str = Field("xen", description="A tree from the bot config (upstream and mirror)")
    base: str = Field(description="Upstream tag the branch starts from, e.g. RELEASE-4.19.3")
    source: str = Field(description="Upstream branch where fix commits live, e.g. stable-4.19")
    branch: str = Field(description="Branch published in the mirror, e.g. xsa/4.19.3")
    xsas: tuple[Xsa, ...] = Field((), description="Advisories, applied in this order")

    def commit_ids(self) -> list[str]:
        """Every commit the manifest names, prerequisites before fixes, in order."""
        out: list[str] = []
        for entry in self.xsas:
            out.extend(p.commit for p in entry.prerequisites)
            out.extend(entry.commits)
        return out
