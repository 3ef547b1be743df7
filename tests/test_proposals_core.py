"""Which proposals should exist after a pass: pure decisions, no git and no forge."""

from __future__ import annotations

from dataclasses import replace

from ruamel.yaml import YAML

from bot.core.outcome import DOES_NOT_BUILD, Blocked, BuildResult, XsaOutcome
from bot.core.ports import MergeRequest, Proposal
from bot.core.prereqs import Candidate, FinderResult
from bot.core.proposals import Decision, ManifestFile, decide, parse_proposal_branch
from bot.manifest import edit
from bot.manifest.edit import add_prerequisites, mark_blocked
from bot.manifest.model import Manifest
from tests.forge_contract import (
    BRANCH,
    FIX2,
    MANIFEST,
    MANIFEST_PATH,
    PRE_A,
    PRE_B,
    build_result,
    finder_result,
)


def manifest_file(text: str = MANIFEST) -> ManifestFile:
    model = Manifest.model_validate(YAML(typ="safe").load(text))
    return ManifestFile("4.19", MANIFEST_PATH, text, model, edit)


def merge_request(
    proposal: Proposal | None = None, *, state: str = "open", branch: str = BRANCH, id: int = 7
) -> MergeRequest:
    return MergeRequest(
        id=id,
        branch=branch,
        title=proposal.title if proposal else "old title",
        state=state,  # type: ignore[arg-type]
        draft=proposal.draft if proposal else False,
        url=f"https://forge.invalid/mr/{id}",
        content_hash=proposal.content_hash() if proposal else "0" * 16,
    )


def decide_blocked(
    finder: FinderResult, existing: list[MergeRequest] | None = None, text: str = MANIFEST
) -> list[Decision]:
    return decide(
        [manifest_file(text)],
        {"4.19": build_result([470])},
        {("4.19", 470): finder},
        existing or [],
    )


def the_proposal(finder: FinderResult) -> Proposal:
    [decision] = decide_blocked(finder)
    assert decision.proposal is not None
    return decision.proposal


def test_a_blocked_xsa_with_a_set_opens_one_proposal_with_the_evidence() -> None:
    [d] = decide_blocked(finder_result(PRE_A, PRE_B, minimal=False))
    assert (d.action, d.manifest, d.xsa, d.branch, d.existing) == (
        "open",
        "4.19",
        470,
        BRANCH,
        None,
    )
    p = d.proposal
    assert p is not None
    assert (p.branch, p.title, p.draft) == (BRANCH, "4.19: add 2 prerequisites for XSA-470", False)
    assert p.files == {
        MANIFEST_PATH: add_prerequisites(
            MANIFEST, 470, [(PRE_A.sha, PRE_A.subject), (PRE_B.sha, PRE_B.subject)]
        )
    }
    assert p.body == (
        f"XSA-470 does not apply to `xsa/4.19.3` (base `RELEASE-4.19.3`): its fix `{FIX2}` "
        "conflicts in:\n"
        "\n"
        "- `xen/arch/x86/cpu/amd.c`\n"
        "\n"
        "This adds 2 prerequisites from `stable-4.19` to `manifests/4.19.yaml`, applied before "
        "the fix in this order:\n"
        "\n"
        "| commit | subject | why it is needed |\n"
        "|---|---|---|\n"
        f"| `{PRE_A.sha}` | x86/amd: Stop updating the mitigation dynamically | amd.c: blame |\n"
        f"| `{PRE_B.sha}` | x86/cpu: add the model table | amd.c: same file |\n"
        "\n"
        "The set is **irreducible**: no single commit can be dropped (a smaller set was not "
        "ruled out).\n"
        "It is **faithful**: the fix lands with the same patch-id as on `stable-4.19`.\n"
        "\n"
        "Search: 3 candidates, 7 trial merges.\n"
        "\n"
        "<details><summary>Candidates tried (3)</summary>\n"
        "\n"
        "- `a1a1a1a1a1a1` x86/amd: Stop updating the mitigation dynamically (amd.c: blame)\n"
        "- `b2b2b2b2b2b2` x86/cpu: add the model table (amd.c: same file)\n"
        "- `c3c3c3c3c3c3` tools: unrelated (amd.c: same file)\n"
        "\n"
        "</details>\n"
        "\n"
        "To reproduce: `xsabot deps manifests/4.19.yaml 470`"
    )


def test_the_proposal_text_depends_only_on_the_state() -> None:
    slow = the_proposal(finder_result(PRE_A, seconds=12.0))
    assert the_proposal(finder_result(PRE_A, seconds=0.1)) == slow
    assert the_proposal(finder_result(PRE_A, seconds=0.1)).content_hash() == slow.content_hash()


def test_an_unchanged_state_keeps_the_open_merge_request() -> None:
    proposal = the_proposal(finder_result(PRE_A))
    mr = merge_request(proposal)
    [d] = decide_blocked(finder_result(PRE_A), [mr])
    assert (d.action, d.existing, d.proposal) == ("keep", mr, proposal)


def test_changed_evidence_updates_the_open_merge_request() -> None:
    mr = merge_request(the_proposal(finder_result(PRE_A)))
    for changed in (
        finder_result(PRE_A, PRE_B),
        finder_result(PRE_A, faithful=False),
        finder_result(PRE_A, trials=8),
    ):
        [d] = decide_blocked(changed, [mr])
        assert (d.action, d.existing, d.reason) == ("update", mr, "content changed")


def test_no_set_found_proposes_a_draft_that_marks_the_xsa_blocked() -> None:
    [d] = decide_blocked(finder_result(found=False))
    p = d.proposal
    assert d.action == "open" and p is not None
    assert (p.title, p.draft) == ("4.19: mark XSA-470 blocked (no prerequisite set found)", True)
    why = "xsabot found no prerequisite set: the fix conflicts in xen/arch/x86/cpu/amd.c"
    assert p.files == {MANIFEST_PATH: mark_blocked(MANIFEST, 470, why)}
    assert "push a manual backport to `xsabot/4.19/xsa-470`" in p.body
    assert "Search: 1 candidate, 7 trial merges." in p.body
    assert p.body.endswith("To reproduce: `xsabot deps manifests/4.19.yaml 470`")


def test_an_xsa_that_applies_now_closes_its_open_proposal() -> None:
    mr = merge_request()
    for state in ("applied", "already-applied"):
        result = replace(build_result(), outcomes=(XsaOutcome(470, state),))
        [d] = decide([manifest_file()], {"4.19": result}, {}, [mr])
        assert (d.action, d.existing, d.reason) == ("close", mr, "XSA applies now")
        assert d.comment == (
            "XSA-470 now applies to `xsa/4.19.3` without this change, so this merge request is "
            "no longer needed. Closed by xsabot."
        )


def test_an_xsa_declared_not_affected_closes_its_open_proposal() -> None:
    [d] = decide(
        [manifest_file()], {"4.19": build_result(not_affected=[470])}, {}, [merge_request()]
    )
    assert (d.action, d.reason) == ("close", "XSA declared not-affected")


def test_an_xsa_removed_from_the_manifest_closes_its_proposal() -> None:
    without = MANIFEST.replace(
        f"  - xsa: 470\n    commits:\n      - {FIX2}  # x86/amd: Mitigate the thing\n", ""
    )
    [d] = decide([manifest_file(without)], {}, {}, [merge_request()])
    assert (d.action, d.reason) == ("close", "XSA removed from the manifest")
    assert d.comment.startswith("XSA-470 is no longer in `manifests/4.19.yaml`, ")


def test_a_removed_manifest_closes_its_proposals_unless_it_is_only_unreadable() -> None:
    [d] = decide([], {}, {}, [merge_request()])
    assert (d.action, d.manifest, d.xsa, d.reason) == ("close", "4.19", 470, "manifest removed")
    assert decide([], {}, {}, [merge_request()], unreadable={"4.19"}) == []


def test_a_manifest_not_built_this_pass_keeps_its_proposals() -> None:
    [d] = decide([manifest_file()], {}, {}, [merge_request()])
    assert (d.action, d.reason) == ("keep", "still needed")


def test_a_blocked_xsa_without_a_finder_result_keeps_its_proposal() -> None:
    [d] = decide([manifest_file()], {"4.19": build_result([470])}, {}, [merge_request()])
    assert d.action == "keep"


def test_a_merged_or_closed_proposal_with_the_same_content_is_not_reopened() -> None:
    proposal = the_proposal(finder_result(PRE_A))
    for state in ("merged", "closed"):
        [d] = decide_blocked(finder_result(PRE_A), [merge_request(proposal, state=state)])
        assert (d.action, d.reason) == ("keep", f"{state} with this content; not reopened")


def test_blocked_again_after_a_merge_opens_a_new_proposal() -> None:
    merged = merge_request(the_proposal(finder_result(PRE_A)), state="merged")
    with_a = add_prerequisites(MANIFEST, 470, [(PRE_A.sha, PRE_A.subject)])
    [d] = decide_blocked(finder_result(PRE_B), [merged], text=with_a)
    assert (d.action, d.existing) == ("open", merged)


def test_the_open_merge_request_counts_over_older_closed_ones() -> None:
    proposal = the_proposal(finder_result(PRE_A))
    closed = merge_request(proposal, state="closed", id=9)
    current = merge_request(proposal, id=3)
    [d] = decide_blocked(finder_result(PRE_A), [closed, current])
    assert (d.action, d.existing) == ("keep", current)


def test_nothing_to_add_proposes_nothing() -> None:
    with_a = add_prerequisites(MANIFEST, 470, [(PRE_A.sha, PRE_A.subject)])
    assert decide_blocked(finder_result(PRE_A), text=with_a) == []
    assert decide_blocked(finder_result()) == []  # found, and no prerequisite needed


def test_other_bot_merge_requests_are_not_judged_here() -> None:
    intake = merge_request(branch="xsabot/intake/4.19/xsa-480")
    assert decide([], {}, {}, [intake]) == []
    assert parse_proposal_branch("xsabot/intake/4.19/xsa-480") is None
    assert parse_proposal_branch(BRANCH) == ("4.19", 470)


def test_decisions_come_in_manifest_and_xsa_order() -> None:
    found = {("4.19", 471): finder_result(PRE_B, xsa=471), ("4.19", 470): finder_result(PRE_A)}
    decisions = decide([manifest_file()], {"4.19": build_result([471, 470])}, found, [])
    assert [(d.action, d.xsa) for d in decisions] == [("open", 470), ("open", 471)]


# -- an XSA that waits for another blocked XSA ----------------------------------------------------


def waiting(*waits_for: int, found: bool = True) -> FinderResult:
    return replace(finder_result(PRE_A, found=found), waits_for=waits_for)


def test_an_xsa_waiting_for_a_blocked_xsa_gets_no_proposal() -> None:
    # Neither a prerequisite proposal (the set needs XSA-467's commits, which no manifest
    # edit of XSA-470 can bring) nor a draft that marks it blocked.
    assert decide_blocked(waiting(467)) == []
    assert decide_blocked(replace(waiting(467), chosen=())) == []


def test_an_xsa_waiting_for_a_blocked_xsa_closes_its_open_proposal() -> None:
    draft = merge_request(the_proposal(finder_result(found=False)))
    [d] = decide_blocked(waiting(467), [draft])
    assert (d.action, d.xsa, d.branch, d.existing, d.proposal) == (
        "close",
        470,
        BRANCH,
        draft,
        None,
    )
    assert d.reason == "waits for XSA-467"
    assert d.comment == (
        "XSA-470 waits for XSA-467: its fix applies only with XSA-467's commits, and XSA-467 is "
        "blocked on `xsa/4.19.3` too, with its own proposal. This merge request is not needed "
        "until XSA-467 is on the branch. Closed by xsabot."
    )


def test_an_xsa_waiting_for_two_blocked_xsas_names_both() -> None:
    [d] = decide_blocked(waiting(467, 471), [merge_request()])
    assert (d.action, d.reason) == ("close", "waits for XSA-467 and XSA-471")
    assert d.comment == (
        "XSA-470 waits for XSA-467 and XSA-471: its fix applies only with their commits, and "
        "they are blocked on `xsa/4.19.3` too, each with its own proposal. This merge request "
        "is not needed until they are on the branch. Closed by xsabot."
    )


def test_a_merged_proposal_of_an_xsa_that_now_waits_is_left_alone() -> None:
    merged = merge_request(the_proposal(finder_result(PRE_A)), state="merged")
    assert decide_blocked(waiting(467), [merged]) == []


# -- an XSA that applies but does not build (held back by the check gate) -------------------------

ERRORS = (
    "xen/arch/x86/cpu/amd.c:120:5: error: implicit declaration of function 'amd_set_model' "
    "[-Werror=implicit-function-declaration]",
    "ld: prelink.o: in function `amd_init':",
    "xen/arch/x86/cpu/amd.c:(.text+0x2a): undefined reference to `amd_set_model'",
)
PROVIDES = Candidate(
    "d4" * 20,
    "x86/amd: add amd_set_model()",
    (
        "adds `amd_set_model`, which the build reports missing (implicit-function at "
        "xen/arch/x86/cpu/amd.c:120)",
    ),
)
NEEDED = Candidate(
    "e5" * 20, "x86/amd: split the model table", ("needed for d4d4d4d4d4d4 to apply",)
)


def build_blocked(detail: str = "\n".join(ERRORS)) -> BuildResult:
    """XSA-470 as the gate holds it back: it applied, the branch with it failed the check."""
    blocked = Blocked(470, None, ("xen/arch/x86/cpu/amd.c",), DOES_NOT_BUILD, detail, "3" * 40)
    return replace(build_result(), outcomes=(XsaOutcome(470, "blocked", blocked=blocked),))


def build_finder(*chosen: Candidate, found: bool = True, faithful: bool = True) -> FinderResult:
    """What `find_build_prerequisites` reports: `conflicts` are the files the compiler named,
    and a set is minimal only when it is one commit."""
    return FinderResult(
        xsa=470,
        fix=FIX2,
        conflicts=("xen/arch/x86/cpu/amd.c",),
        candidates=chosen or (PROVIDES,),
        chosen=chosen if found else (),
        found=found,
        minimal=found and len(chosen) == 1,
        faithful=found and faithful,
        trials=5,
        seconds=2.5,
        widened=("whole tree",),
    )


def build_proposal(finder: FinderResult, detail: str = "\n".join(ERRORS)) -> Proposal:
    [d] = decide([manifest_file()], {"4.19": build_blocked(detail)}, {("4.19", 470): finder}, [])
    assert d.action == "open" and d.proposal is not None
    return d.proposal


def test_an_xsa_that_does_not_build_gets_a_proposal_that_says_so() -> None:
    p = build_proposal(build_finder(PROVIDES))
    assert (p.branch, p.title, p.draft) == (
        BRANCH,
        "4.19: add 1 prerequisite so XSA-470 builds",
        False,
    )
    assert p.files == {
        MANIFEST_PATH: add_prerequisites(MANIFEST, 470, [(PROVIDES.sha, PROVIDES.subject)])
    }
    assert p.body == (
        "XSA-470 applies to `xsa/4.19.3` (base `RELEASE-4.19.3`), but the branch with it fails "
        "the check. The build reports:\n"
        "\n"
        "```\n"
        "xen/arch/x86/cpu/amd.c:120:5: error: implicit declaration of function 'amd_set_model' "
        "[-Werror=implicit-function-declaration]\n"
        "ld: prelink.o: in function `amd_init':\n"
        "xen/arch/x86/cpu/amd.c:(.text+0x2a): undefined reference to `amd_set_model'\n"
        "```\n"
        "\n"
        "This adds 1 prerequisite from `stable-4.19` to `manifests/4.19.yaml`, applied before the "
        "fix in this order:\n"
        "\n"
        "| commit | subject | why it is needed |\n"
        "|---|---|---|\n"
        f"| `{PROVIDES.sha}` | x86/amd: add amd_set_model() | adds `amd_set_model`, which the "
        "build reports missing (implicit-function at xen/arch/x86/cpu/amd.c:120) |\n"
        "\n"
        "It **builds**: with the set, the branch with XSA-470 passes the check.\n"
        "The set is **minimal**: without it the branch fails the check.\n"
        "It is **faithful**: the fix lands with the same patch-id as on `stable-4.19`.\n"
        "\n"
        "Search: 1 candidate, 5 trial merges; widened to whole tree.\n"
        "\n"
        "<details><summary>Candidates tried (1)</summary>\n"
        "\n"
        "- `d4d4d4d4d4d4` x86/amd: add amd_set_model() (adds `amd_set_model`, which the build "
        "reports missing (implicit-function at xen/arch/x86/cpu/amd.c:120))\n"
        "\n"
        "</details>\n"
        "\n"
        "To reproduce: `xsabot check manifests/4.19.yaml`"
    )


def test_a_larger_build_set_is_not_called_minimal_or_irreducible() -> None:
    # The build finder never spends checks on dropping commits: only a set of one is proven.
    p = build_proposal(build_finder(NEEDED, PROVIDES, faithful=False))
    assert p.title == "4.19: add 2 prerequisites so XSA-470 builds"
    assert (
        f"| `{NEEDED.sha}` | x86/amd: split the model table | needed for d4d4d4d4d4d4 to apply |\n"
        f"| `{PROVIDES.sha}` | x86/amd: add amd_set_model() | adds `amd_set_model`, which the "
        "build reports missing (implicit-function at xen/arch/x86/cpu/amd.c:120) |\n"
        "\n"
        "It **builds**: with the set, the branch with XSA-470 passes the check.\n"
        "The set is **not proven minimal**: it is the commits that add what the build reports "
        "missing, and the commits those need to apply.\n"
        "It is **not faithful**: the fix applies, but not as on `stable-4.19` (different "
        "context); review the result.\n"
        "\n"
    ) in p.body
    assert "irreducible" not in p.body and "conflict" not in p.body


def test_no_set_for_an_xsa_that_does_not_build_drafts_it_blocked_with_the_error() -> None:
    p = build_proposal(build_finder(found=False))
    assert (p.title, p.draft) == ("4.19: mark XSA-470 blocked (no prerequisite set found)", True)
    why = (
        "xsabot found no prerequisite set: the fix applies but does not build: "
        "xen/arch/x86/cpu/amd.c:120:5: error: implicit declaration of function 'amd_set_model' "
        "[-Werror=implicit-function-declaration]"
    )
    assert p.files == {MANIFEST_PATH: mark_blocked(MANIFEST, 470, why)}
    assert p.body == (
        "XSA-470 applies to `xsa/4.19.3` (base `RELEASE-4.19.3`), but the branch with it fails "
        "the check. The build reports:\n"
        "\n"
        "```\n"
        f"{ERRORS[0]}\n"
        f"{ERRORS[1]}\n"
        f"{ERRORS[2]}\n"
        "```\n"
        "\n"
        "No set of prerequisites from `stable-4.19` makes it build, so this draft marks XSA-470 "
        "`status: blocked` in `manifests/4.19.yaml`.\n"
        "\n"
        "To unblock it, push a manual backport to `xsabot/4.19/xsa-470`: add the patch to the "
        "manifests repository, list it under `patches:` of XSA-470 with its sha256, and remove "
        "`status` and `why`.\n"
        "\n"
        "Search: 1 candidate, 5 trial merges; widened to whole tree.\n"
        "\n"
        "<details><summary>Candidates tried (1)</summary>\n"
        "\n"
        "- `d4d4d4d4d4d4` x86/amd: add amd_set_model() (adds `amd_set_model`, which the build "
        "reports missing (implicit-function at xen/arch/x86/cpu/amd.c:120))\n"
        "\n"
        "</details>\n"
        "\n"
        "To reproduce: `xsabot check manifests/4.19.yaml`"
    )


def test_a_build_failure_without_error_lines_says_so() -> None:
    p = build_proposal(build_finder(found=False), detail="")
    assert p.body.startswith(
        "XSA-470 applies to `xsa/4.19.3` (base `RELEASE-4.19.3`), but the branch with it fails "
        "the check, and the check printed no line that says why.\n\nNo set of prerequisites"
    )
    why = "xsabot found no prerequisite set: the fix applies but does not build"
    assert p.files == {MANIFEST_PATH: mark_blocked(MANIFEST, 470, why)}


def test_the_quoted_build_errors_leave_out_times() -> None:
    # The gate falls back to the log's last lines when no line names what is missing; a time
    # there would change the body, and edit the merge request, on every check.
    timed = "\n".join(
        ["[12:04:31] CC xen/arch/x86/cpu/amd.o", *ERRORS, "real\t0m41.27s", "make: done in 41.3s"]
    )
    assert build_proposal(build_finder(PROVIDES), detail=timed) == build_proposal(
        build_finder(PROVIDES)
    )


def test_the_quoted_build_errors_keep_their_backticks_inside_the_fence() -> None:
    p = build_proposal(build_finder(PROVIDES), detail="x.c:1:1: error: unknown type name ```t```")
    assert "\n````\nx.c:1:1: error: unknown type name ```t```\n````\n" in p.body
