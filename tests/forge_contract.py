"""The behaviour every `Forge` adapter must have, written once for all of them.

An adapter's test module provides a `forge_world` fixture (a `ForgeWorld`: the forge under test
plus the manifests repository seeded with `seed_manifests` and a few ways to look behind the
forge) and imports these tests with `from tests.forge_contract import *`. The local forge runs
them against a real git repository; the GitLab and GitHub adapters run the very same tests
against their fake HTTP servers.

The tests drive the forge the way a pass does, through `sync_proposals`, with build and finder
results made up here: what is under test is the forge, not the finder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from ruamel.yaml import YAML

from bot.app.proposals import ProposalAction, sync_proposals
from bot.config import Identity
from bot.core.outcome import Blocked, BuildResult, XsaOutcome
from bot.core.ports import Forge, MergeRequest, Proposal
from bot.core.prereqs import Candidate, FinderResult
from bot.manifest.load import LoadedManifest
from bot.manifest.model import Manifest
from tests.gitrepo import RepoBuilder

__all__ = [
    "ForgeWorld",
    "test_a_blocked_xsa_opens_one_proposal_found_again_by_its_branch",
    "test_a_manifest_removed_closes_its_proposals",
    "test_a_merged_proposal_is_reported_merged_and_never_closed_or_reopened",
    "test_a_second_sync_changes_nothing",
    "test_an_xsa_removed_from_the_manifest_closes_its_proposal",
    "test_an_xsa_that_applies_now_closes_its_proposal_with_a_comment",
    "test_changed_evidence_updates_the_same_merge_request",
    "test_commit_status_is_set_and_read_back",
    "test_no_prerequisite_set_opens_a_draft_that_marks_the_xsa_blocked",
    "test_opening_again_returns_the_existing_merge_request",
    "test_the_bots_keyed_comment_is_edited_in_place",
    "test_the_search_time_alone_does_not_update_a_proposal",
]

MANIFEST_PATH = "manifests/4.19.yaml"
BRANCH = "xsabot/4.19/xsa-470"
FIX1, FIX2, FIX3 = ("f1" * 20, "f2" * 20, "f3" * 20)
MANIFEST = f"""\
# Maintained by the 4.19 volunteers.
tree: xen
base: RELEASE-4.19.3
source: stable-4.19
branch: xsa/4.19.3
xsas:
  - xsa: 467
    commits: [{FIX1}]

  - xsa: 470
    commits:
      - {FIX2}  # x86/amd: Mitigate the thing
  - xsa: 471
    commits:
      - {FIX3}  # sched: fix the loop
"""
PRE_A = Candidate("a1" * 20, "x86/amd: Stop updating the mitigation dynamically", ("amd.c: blame",))
PRE_B = Candidate("b2" * 20, "x86/cpu: add the model table", ("amd.c: same file",))
OTHER = Candidate("c3" * 20, "tools: unrelated", ("amd.c: same file",))


class ForgeWorld(Protocol):
    """A forge under test and its manifests repository, as a contract test sees them."""

    @property
    def forge(self) -> Forge: ...

    @property
    def manifests(self) -> RepoBuilder:
        """A volunteer's checkout of the manifests repository, on the default branch."""
        ...

    def merge(self, mr: MergeRequest) -> None:
        """A volunteer merges the merge request into the default branch."""
        ...

    def tip(self, branch: str) -> str | None:
        """The commit the forge has on `branch`."""
        ...

    def file_on_branch(self, branch: str, path: str) -> str: ...

    def comments(self, mr_id: int) -> list[str]:
        """The bodies of a merge request's comments, oldest first."""
        ...

    def snapshot(self) -> object:
        """Everything the forge holds (branches, merge requests, comments): equal means untouched."""
        ...


def seed_manifests(repo: RepoBuilder) -> None:
    repo.commit("Manifests\n", {MANIFEST_PATH: MANIFEST})


def finder_result(
    *chosen: Candidate,
    xsa: int = 470,
    found: bool = True,
    seconds: float = 0.2,
    minimal: bool = True,
    faithful: bool = True,
    trials: int = 7,
) -> FinderResult:
    return FinderResult(
        xsa=xsa,
        fix=FIX2,
        conflicts=("xen/arch/x86/cpu/amd.c",),
        candidates=(*chosen, OTHER),
        chosen=chosen if found else (),
        found=found,
        minimal=minimal,
        faithful=faithful,
        trials=trials,
        seconds=seconds,
    )


def build_result(
    blocked: Iterable[int] = (), applied: Iterable[int] = (), not_affected: Iterable[int] = ()
) -> BuildResult:
    outcomes = [
        XsaOutcome(x, "blocked", blocked=Blocked(x, FIX2, ("xen/arch/x86/cpu/amd.c",), "conflict"))
        for x in blocked
    ]
    outcomes += [XsaOutcome(x, "applied") for x in applied]
    outcomes += [XsaOutcome(x, "not-affected") for x in not_affected]
    return BuildResult("RELEASE-4.19.3", "0" * 40, "1" * 40, "2" * 40, tuple(outcomes))


def loaded(repo: RepoBuilder, path: str = MANIFEST_PATH) -> LoadedManifest:
    text = repo.read(path)
    model = Manifest.model_validate(YAML(typ="safe").load(text))
    return LoadedManifest(path=repo.path / path, name=Path(path).stem, manifest=model, text=text)


def sync(
    world: ForgeWorld,
    blocked: Mapping[int, FinderResult] | None = None,
    *,
    applied: Iterable[int] = (),
    manifests: list[LoadedManifest] | None = None,
) -> list[ProposalAction]:
    """One pass over the 4.19 manifest as the default branch has it now."""
    blocked = blocked or {}
    if manifests is None:
        manifests = [loaded(world.manifests)]
    results = {m.name: build_result(blocked, applied) for m in manifests}
    found = {(m.name, xsa): r for m in manifests for xsa, r in blocked.items()}
    return sync_proposals(world.forge, world.manifests.path, manifests, results, found, Identity())


def done(actions: list[ProposalAction]) -> list[tuple[str, str]]:
    return [(a.action, a.branch) for a in actions if a.error is None]


def a_proposal(body: str = "Evidence.") -> Proposal:
    edited = MANIFEST.replace("  - xsa: 470\n", "  - xsa: 470\n    status: blocked\n    why: x\n")
    return Proposal(BRANCH, "4.19: a proposal", body, {MANIFEST_PATH: edited})


# -- the contract ------------------------------------------------------------------------------


def test_a_blocked_xsa_opens_one_proposal_found_again_by_its_branch(
    forge_world: ForgeWorld,
) -> None:
    actions = sync(forge_world, {470: finder_result(PRE_A)})
    assert done(actions) == [("open", BRANCH)]
    mr = forge_world.forge.find(BRANCH)
    assert mr is not None
    assert (mr.id, mr.state, mr.draft) == (actions[0].id, "open", False)
    assert mr.title == "4.19: add 1 prerequisite for XSA-470"
    assert mr.content_hash is not None
    assert forge_world.forge.list_open() == [mr]
    proposed = forge_world.file_on_branch(BRANCH, MANIFEST_PATH)
    assert f"    prerequisites:\n      - commit: {PRE_A.sha}\n" in proposed
    assert forge_world.manifests.read(MANIFEST_PATH) == MANIFEST  # only merging changes it


def test_opening_again_returns_the_existing_merge_request(forge_world: ForgeWorld) -> None:
    forge = forge_world.forge
    first = forge.open(a_proposal())
    tip = forge_world.tip(BRANCH)
    assert forge.open(a_proposal()).id == first.id
    assert forge.open(a_proposal("Other evidence.")).id == first.id  # open never edits
    assert [mr.id for mr in forge.list_open()] == [first.id]
    assert forge_world.tip(BRANCH) == tip


def test_a_second_sync_changes_nothing(forge_world: ForgeWorld) -> None:
    sync(forge_world, {470: finder_result(PRE_A)})
    before = forge_world.snapshot()
    actions = sync(forge_world, {470: finder_result(PRE_A)})
    assert done(actions) == [("keep", BRANCH)]
    assert forge_world.snapshot() == before


def test_the_search_time_alone_does_not_update_a_proposal(forge_world: ForgeWorld) -> None:
    sync(forge_world, {470: finder_result(PRE_A, seconds=0.21)})
    before = forge_world.snapshot()
    assert done(sync(forge_world, {470: finder_result(PRE_A, seconds=0.47)})) == [("keep", BRANCH)]
    assert forge_world.snapshot() == before


def test_changed_evidence_updates_the_same_merge_request(forge_world: ForgeWorld) -> None:
    opened = sync(forge_world, {470: finder_result(PRE_A)})[0]
    first_tip = forge_world.tip(BRANCH)
    updated = sync(forge_world, {470: finder_result(PRE_A, PRE_B)})
    assert done(updated) == [("update", BRANCH)]
    mr = forge_world.forge.find(BRANCH)
    assert mr is not None
    assert (mr.id, mr.state, mr.title) == (
        opened.id,
        "open",
        "4.19: add 2 prerequisites for XSA-470",
    )
    assert forge_world.tip(BRANCH) != first_tip
    assert PRE_B.sha in forge_world.file_on_branch(BRANCH, MANIFEST_PATH)
    before = forge_world.snapshot()
    assert done(sync(forge_world, {470: finder_result(PRE_A, PRE_B)})) == [("keep", BRANCH)]
    assert forge_world.snapshot() == before


def test_an_xsa_that_applies_now_closes_its_proposal_with_a_comment(
    forge_world: ForgeWorld,
) -> None:
    opened = sync(forge_world, {470: finder_result(PRE_A)})[0]
    closed = sync(forge_world, applied=[470])
    assert done(closed) == [("close", BRANCH)]
    mr = forge_world.forge.find(BRANCH)
    assert mr is not None
    assert (mr.id, mr.state) == (opened.id, "closed")
    assert forge_world.comments(mr.id) == [
        "XSA-470 now applies to `xsa/4.19.3` without this change, so this merge request is no "
        "longer needed. Closed by xsabot."
    ]
    assert forge_world.forge.list_open() == []
    before = forge_world.snapshot()
    assert sync(forge_world, applied=[470]) == []
    assert forge_world.snapshot() == before


def test_an_xsa_removed_from_the_manifest_closes_its_proposal(forge_world: ForgeWorld) -> None:
    sync(forge_world, {470: finder_result(PRE_A)})
    without = MANIFEST.replace(
        f"  - xsa: 470\n    commits:\n      - {FIX2}  # x86/amd: Mitigate the thing\n", ""
    )
    forge_world.manifests.commit("Drop XSA-470\n", {MANIFEST_PATH: without})
    assert done(sync(forge_world)) == [("close", BRANCH)]
    mr = forge_world.forge.find(BRANCH)
    assert mr is not None and mr.state == "closed"
    assert forge_world.comments(mr.id) == [
        f"XSA-470 is no longer in `{MANIFEST_PATH}`, so this merge request is no longer needed. "
        "Closed by xsabot."
    ]


def test_a_manifest_removed_closes_its_proposals(forge_world: ForgeWorld) -> None:
    sync(forge_world, {470: finder_result(PRE_A), 471: finder_result(PRE_B, xsa=471)})
    forge_world.manifests.commit("4.19 is out of support\n", {MANIFEST_PATH: None})
    actions = sync(forge_world, manifests=[])
    assert done(actions) == [("close", BRANCH), ("close", "xsabot/4.19/xsa-471")]
    assert forge_world.forge.list_open() == []
    assert forge_world.comments(actions[0].id or 0) == [
        "The manifest `4.19` no longer exists, so this merge request is no longer needed. "
        "Closed by xsabot."
    ]


def test_a_merged_proposal_is_reported_merged_and_never_closed_or_reopened(
    forge_world: ForgeWorld,
) -> None:
    opened = sync(forge_world, {470: finder_result(PRE_A)})[0]
    mr = forge_world.forge.find(BRANCH)
    assert mr is not None
    forge_world.merge(mr)
    merged = forge_world.forge.find(BRANCH)
    assert merged is not None and (merged.id, merged.state) == (opened.id, "merged")
    assert forge_world.forge.list_open() == []
    before = forge_world.snapshot()
    # The next pass: the XSA applies with the merged prerequisite; nothing is closed.
    assert sync(forge_world, applied=[470]) == []
    # A pass that still saw the old manifest (the same proposal) reopens nothing either.
    stale = LoadedManifest(
        path=forge_world.manifests.path / MANIFEST_PATH,
        name="4.19",
        manifest=Manifest.model_validate(YAML(typ="safe").load(MANIFEST)),
        text=MANIFEST,
    )
    stale_pass = sync(forge_world, {470: finder_result(PRE_A)}, manifests=[stale])
    assert [(a.action, a.state) for a in stale_pass] == [("keep", "merged")]
    assert forge_world.snapshot() == before
    again = forge_world.forge.find(BRANCH)
    assert again is not None and (again.id, again.state) == (opened.id, "merged")


def test_no_prerequisite_set_opens_a_draft_that_marks_the_xsa_blocked(
    forge_world: ForgeWorld,
) -> None:
    actions = sync(forge_world, {470: finder_result(found=False)})
    assert done(actions) == [("open", BRANCH)]
    mr = forge_world.forge.find(BRANCH)
    assert mr is not None and (mr.draft, mr.state) == (True, "open")
    assert mr.title == "4.19: mark XSA-470 blocked (no prerequisite set found)"
    proposed = forge_world.file_on_branch(BRANCH, MANIFEST_PATH)
    assert "  - xsa: 470\n    status: blocked\n    why: " in proposed


def test_the_bots_keyed_comment_is_edited_in_place(forge_world: ForgeWorld) -> None:
    forge = forge_world.forge
    mr = forge.open(a_proposal())
    forge.comment(mr.id, "plan", "Plan: publish XSA-470.")
    forge.comment(mr.id, "plan", "Plan: publish XSA-470 and XSA-471.")
    forge.comment(mr.id, "other", "Another note.")
    forge.comment(mr.id, "plan", "Plan: publish XSA-470 and XSA-471.")
    assert forge_world.comments(mr.id) == ["Plan: publish XSA-470 and XSA-471.", "Another note."]


def test_commit_status_is_set_and_read_back(forge_world: ForgeWorld) -> None:
    forge = forge_world.forge
    sha = forge_world.manifests.rev("HEAD")
    assert forge.check_status(sha) == "unknown"
    forge.set_status(sha, "pending", "xsabot/plan", "planning")
    assert forge.check_status(sha) == "pending"
    forge.set_status(sha, "success", "xsabot/plan", "2 branches to publish", "https://ci.invalid/1")
    assert forge.check_status(sha) == "success"
    forge.set_status(sha, "failure", "xsabot/lint", "4.19.yaml:3:1: base: unknown tag")
    assert forge.check_status(sha) == "failure"
