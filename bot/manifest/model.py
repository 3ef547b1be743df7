"""The manifest model: what a volunteer declares for one published branch.

Field names are the YAML keys. The model is frozen and checks everything that needs no context
(SHA and ref name syntax, safe relative patch paths), with messages meant for volunteers.
The loader (`load.py`) adds file positions to these errors and runs the checks that need
context: the bot's namespace and trees, patch files on disk, repeats within a manifest, and
other manifests.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    WithJsonSchema,
    model_validator,
)

from bot.manifest.refname import (
    BRANCH_NAME_PATTERN,
    TAG_NAME_PATTERN,
    check_branch_name,
    check_tag_name,
)

SHA_PATTERN = r"^[0-9a-f]{40}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
TREE_PATTERN = r"^[a-z0-9][a-z0-9-]*$"  # as in the bot config


def _hex_digits(what: str, digits: int) -> Callable[[str], str]:
    """A validator for a lower-case hex ID of `digits` digits, saying what is wrong with it."""

    def check(value: str) -> str:
        if re.fullmatch(r"[0-9a-fA-F]*", value) is None:
            raise ValueError(f"not a {what}: use {digits} hex digits (0-9, a-f)")
        if len(value) != digits:
            raise ValueError(f"a {what} has {digits} hex digits, this one has {len(value)}")
        if value != value.lower():
            raise ValueError(f"write the {what} in lower case")
        return value

    return check


def _ref_name(check: Callable[[str], str | None]) -> Callable[[str], str]:
    def validate(value: str) -> str:
        why = check(value)
        if why is not None:
            raise ValueError(f"not a valid git ref name: {why}")
        return value

    return validate


def _tree_name(value: str) -> str:
    if re.fullmatch(TREE_PATTERN, value) is None:
        raise ValueError("a tree name is lower-case letters, digits and `-`")
    return value


def patch_path_problem(value: str) -> str | None:
    """Why `value` is not a safe patch path (relative, inside the manifests directory), or None."""
    # Patches are read from the manifests repository; a path that leaves it could make the
    # bot read (and publish) any file on the host.
    if not value:
        return "the path is empty"
    if posixpath.isabs(value) or value.startswith("\\"):
        return "use a path relative to the manifests directory, not an absolute one"
    if "\\" in value:
        return "use `/` to separate directories"
    if posixpath.normpath(value).split("/")[0] == "..":
        return "the path leaves the manifests directory"
    return None


def _relative_path(value: str) -> str:
    why = patch_path_problem(value)
    if why is not None:
        raise ValueError(why)
    return value


def _https_url(value: str) -> str:
    if not value.startswith("https://") or len(value) == len("https://"):
        raise ValueError("use an https:// URL")
    return value


def _string(pattern: str, description: str) -> WithJsonSchema:
    schema: dict[str, Any] = {"type": "string", "pattern": pattern, "description": description}
    return WithJsonSchema(schema)


Sha = Annotated[
    str,
    AfterValidator(_hex_digits("commit ID", 40)),
    _string(SHA_PATTERN, "A full 40-hex commit ID (lower case)"),
]
Sha256 = Annotated[
    str,
    AfterValidator(_hex_digits("sha256", 64)),
    _string(SHA256_PATTERN, "sha256 of the patch file, 64 hex digits (lower case)"),
]
TagName = Annotated[
    str,
    AfterValidator(_ref_name(check_tag_name)),
    _string(TAG_NAME_PATTERN, "A git tag name"),
]
BranchName = Annotated[
    str,
    AfterValidator(_ref_name(check_branch_name)),
    _string(BRANCH_NAME_PATTERN, "A git branch name"),
]
TreeName = Annotated[str, AfterValidator(_tree_name), _string(TREE_PATTERN, "A tree name")]
PatchPath = Annotated[
    str,
    AfterValidator(_relative_path),
    WithJsonSchema({"type": "string", "minLength": 1, "not": {"pattern": r"^(/|\\|\.\.(/|$))"}}),
]
HttpsUrl = Annotated[str, AfterValidator(_https_url), _string(r"^https://.+", "An https:// URL")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Prerequisite(_Frozen):
    """A non-XSA commit on `source` the fix needs; applied before it (or `before`), in order."""

    # `before` is for a prerequisite that needs the XSA's earlier commits itself. It must name
    # one of the XSA's `commits`: the loader checks that, with the position.
    commit: Sha
    why: str = Field("", description="Why the fix needs it (usually the commit subject)")
    before: Sha | None = Field(
        None,
        description="The commit of this XSA it goes right before (one of its `commits`); "
        "default: the first",
    )


def _a_reason(value: str) -> str:
    if not value.strip():
        raise ValueError("say why the pick may land differently (what was reviewed)")
    return value


class AcceptedPartial(_Frozen):
    """A pick of this XSA that lands differently than on `source` (other lines removed or
    added), accepted by a volunteer who reviewed it: it is applied instead of blocking the XSA.
    """

    commit: Sha
    why: Annotated[str, AfterValidator(_a_reason)] = Field(
        description="What was reviewed, and why the pick is right as it lands",
        json_schema_extra={"pattern": r"\S"},
    )


class Patch(_Frozen):
    """An advisory patch file (git format-patch mail), verified by sha256 before use."""

    path: PatchPath | None = Field(
        None, description="Path relative to the manifests directory, inside it"
    )
    url: HttpsUrl | None = Field(None, description="https URL of the patch")
    sha256: Sha256

    @model_validator(mode="after")
    def _one_location(self) -> Patch:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of `path` or `url`")
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
    partial: tuple[AcceptedPartial, ...] = Field(
        (),
        description="Commits (of `commits` or `prerequisites`) accepted although they land "
        "differently than on `source`, each with why",
    )

    def picks(self) -> list[tuple[str, Literal["prerequisite", "fix"]]]:
        """The XSA's commits in the order they are picked: each fix commit after the
        prerequisites placed before it, in the order listed (a `before` that names none of
        `commits`, which the loader rejects, counts as the first)."""
        out: list[tuple[str, Literal["prerequisite", "fix"]]] = []
        for index, commit in enumerate(self.commits):
            out += [(p.commit, "prerequisite") for p in self.prerequisites if self.slot(p) == index]
            out.append((commit, "fix"))
        if not self.commits:
            out = [(p.commit, "prerequisite") for p in self.prerequisites]
        return out

    def slot(self, prerequisite: Prerequisite) -> int:
        """The index in `commits` of the commit `prerequisite` goes right before."""
        before = prerequisite.before
        return self.commits.index(before) if before in self.commits else 0

    @model_validator(mode="after")
    def _has_a_source(self) -> Xsa:
        if self.status is None and not (self.commits or self.patches):
            raise ValueError("an XSA needs `commits` or `patches` (or a `status`)")
        if self.status is not None and not self.why:
            raise ValueError(f"`status: {self.status}` needs a `why`")
        return self


class Manifest(_Frozen):
    """One published branch: a base tag plus XSAs from `source`, in order."""

    tree: TreeName = Field("xen", description="A tree from the bot config (upstream and mirror)")
    base: TagName = Field(description="Upstream tag the branch starts from, e.g. RELEASE-4.19.3")
    source: BranchName = Field(
        description="Upstream branch where fix commits live, e.g. stable-4.19"
    )
    branch: BranchName = Field(
        description="Branch published in the mirror, under the bot's namespace, e.g. xsa/4.19.3"
    )
    xsas: tuple[Xsa, ...] = Field((), description="Advisories, applied in this order")

    def commit_ids(self) -> list[str]:
        """Every commit the manifest names, in the order the XSAs' commits are picked."""
        return [sha for entry in self.xsas for sha, _ in entry.picks()]

    def with_prerequisites(self, added: Mapping[int, Sequence[Prerequisite]]) -> Manifest:
        """This manifest as if proposals adding `added` ({XSA: prerequisites}) were merged,
        as `bot.manifest.edit.add_prerequisites` writes them: each goes first among the XSA's
        prerequisites placed before the same commit, unless the manifest lists its commit."""
        listed = set(self.commit_ids())
        xsas = []
        for entry in self.xsas:
            new = [p for p in added.get(entry.xsa, ()) if p.commit not in listed]
            listed.update(p.commit for p in new)
            if new:
                entry = entry.model_copy(update={"prerequisites": _placed(entry, new)})
            xsas.append(entry)
        return self.model_copy(update={"xsas": tuple(xsas)})


def _placed(entry: Xsa, new: Sequence[Prerequisite]) -> tuple[Prerequisite, ...]:
    """`entry`'s prerequisites with `new` ones inserted, each before the first listed one
    placed before the same commit or a later one (new ones keep their order)."""
    old = entry.prerequisites
    out = list(old)
    for p in new:
        slot = entry.slot(p)
        at = next(
            (
                i
                for i, q in enumerate(out)
                if entry.slot(q) > slot or (entry.slot(q) == slot and any(q is o for o in old))
            ),
            len(out),
        )
        out.insert(at, p)
    return tuple(out)
