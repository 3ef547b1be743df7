"""The prerequisite finder on real repositories built commit by commit."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pygit2
import pytest
from ruamel.yaml import YAML

from bot.config import Identity
from bot.core.prereqs import FinderResult
from bot.git.build import Builder
from bot.git.objects import ObjectStore
from bot.git.pick import TreeMerger
from bot.git.prereqs import find_prerequisites
from bot.manifest.model import Manifest
from tests.conftest import Bot
from tests.gitrepo import RepoBuilder, XenLike, numbered
from tests.manifests import manifest

A = "xen/common/a.c"
C = "xen/arch/x86/c.c"


def a(**changed: str) -> dict[str, str | None]:
    return {A: numbered("a", 30, **changed)}


class World:
    """An upstream with a base commit; `stable` grows on top of it."""

    def __init__(self, path: Path) -> None:
        self.b = RepoBuilder(path)
        self.base = self.b.commit("base\n", {A: numbered("a", 30), C: numbered("c", 30)})
        self.b.branch("stable")
        self.b.checkout("stable")

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        return self.b.commit(message, files)

    def find(
        self,
        fix: str,
        *,
        picked: Sequence[str] = (),
        ours: str | None = None,
        xsa_commits: Sequence[str] = (),
        blocked_xsas: Mapping[int, Sequence[str]] | None = None,
    ) -> FinderResult:
        """Run the finder with `picked` already on the branch (picked onto `ours`, default
        the base)."""
        repo = pygit2.Repository(str(self.b.path))
        store = ObjectStore(repo)
        merger = TreeMerger(store)
        tree = str(repo[ours or self.base].peel(pygit2.Tree).id)
        for sha in picked:
            commit = repo[sha]
            merge = merger.merge(str(commit.parents[0].tree_id), tree, str(commit.tree_id))
            assert merge.tree is not None
            tree = merge.tree
        return find_prerequisites(
            repo,
            store,
            base_commit=self.base,
            fix=fix,
            xsa=99,
            ours_tree=tree,
            on_branch=picked,
            xsa_commits=xsa_commits,
            blocked_xsas=blocked_xsas,
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "up")


def chosen(result: FinderResult) -> tuple[str, ...]:
    return tuple(c.sha for c in result.chosen)


def candidates(result: FinderResult) -> set[str]:
    return {c.sha for c in result.candidates}


def test_fix_needing_one_prerequisite(world: World) -> None:
    world.commit("tools: noise\n", {"tools/x.c": "x\n"})
    prereq = world.commit("a: rework line 10\n", a(l10="a reworked"))
    world.commit("a: unrelated line 25\n", a(l10="a reworked", l25="a tidy"))
    fix = world.commit("a: fix it\n\nThis is XSA-99.\n", a(l10="a reworked fixed", l25="a tidy"))
    r = world.find(fix)
    assert chosen(r) == (prereq,)
    assert r.found and r.minimal and r.faithful and r.bound_hit is None
    assert r.conflicts == (A,) and r.widened == ()
    assert f"wrote line 10 of {A}, which the fix relies on" in r.chosen[0].reasons


def test_chain_of_two_found_through_the_first(world: World) -> None:
    second = world.commit("c: new helper\n", {C: numbered("c", 30, l5="c helper")})
    first = world.commit(
        "a: use the helper\n",
        {**a(l10="a calls helper"), C: numbered("c", 30, l5="c helper v2")},
    )
    world.commit("c: far away\n", {C: numbered("c", 30, l5="c helper v2", l28="c far")})
    fix = world.commit("a: fix the call\n\nThis is XSA-99.\n", a(l10="a calls helper safely"))
    r = world.find(fix)
    assert chosen(r) == (second, first)
    assert r.found and r.minimal and r.faithful and r.widened == ()
    why_second = " ".join(r.chosen[0].reasons)
    assert first[:12] in why_second and C in why_second


def test_faithful_set_chosen_over_a_smaller_clean_one(world: World) -> None:
    prereq = world.commit("a: rework line 10\n", a(l10="a reworked"))
    context = world.commit("a: reword line 12\n", a(l10="a reworked", l12="a reworded"))
    fix = world.commit(
        "a: fix it\n\nThis is XSA-99.\n", a(l10="a reworked fixed", l12="a reworded")
    )
    # {prereq} alone makes the fix apply, but with line 12 (its context) as it was: only
    # with `context` too does the fix land as on source.
    with_prereq = world.find(fix, picked=[prereq])
    assert with_prereq.found and chosen(with_prereq) == () and not with_prereq.faithful
    r = world.find(fix)
    assert chosen(r) == (prereq, context)
    assert r.faithful and r.minimal


def test_no_possible_set(world: World) -> None:
    world.b.checkout("master")
    local = world.commit("local change on the branch\n", a(l10="a local"))
    world.b.checkout("stable")
    world.commit("a: rework line 10\n", a(l10="a reworked"))
    fix = world.commit("a: fix it\n\nThis is XSA-99.\n", a(l10="a reworked fixed"))
    r = world.find(fix, ours=local)
    assert not r.found and chosen(r) == () and not r.faithful
    assert r.widened == ("files", "range") and r.conflicts == (A,)


def test_xsa_commit_is_never_a_candidate(world: World) -> None:
    other_xsa = world.commit("a: another fix\n\nThis is XSA-98.\n", a(l25="a xsa98"))
    prereq = world.commit("a: rework line 10\n", a(l10="a reworked", l25="a xsa98"))
    fix = world.commit("a: fix it\n\nThis is XSA-99.\n", a(l10="a reworked fixed", l25="a xsa98"))
    r = world.find(fix)
    assert chosen(r) == (prereq,)
    assert other_xsa not in candidates(r)


def test_fix_needing_an_excluded_xsa_commit_has_no_set(world: World) -> None:
    other_xsa = world.commit("a: another fix\n\nThis is XSA-98.\n", a(l10="a xsa98"))
    fix = world.commit("a: fix it\n\nThis is XSA-99.\n", a(l10="a xsa98 and 99"))
    r = world.find(fix)
    assert not r.found and other_xsa not in candidates(r)


def test_fix_needing_a_blocked_xsa_waits_for_it(world: World) -> None:
    # XSA-98 wrote the line XSA-99's fix changes, and XSA-98 is blocked on this branch.
    xsa98 = world.commit("a: another fix\n\nThis is XSA-98.\n", a(l10="a xsa98"))
    fix = world.commit("a: fix it\n\nThis is XSA-99.\n", a(l10="a xsa98 and 99"))
    r = world.find(fix, blocked_xsas={98: [xsa98]})
    assert r.found and r.waits_for == (98,) and chosen(r) == ()
    assert r.faithful and r.minimal
    assert r.widened == ("files", "range", "blocked XSAs")
    [candidate] = [c for c in r.candidates if c.sha == xsa98]
    assert candidate.xsa == 98
    assert candidate.reasons == ("a commit of XSA-98, which is blocked on this branch",)


def test_blocked_xsa_with_its_own_prerequisite(world: World) -> None:
    # XSA-98 is blocked because it needs `prereq`; XSA-99 needs XSA-98. The set has both, and
    # says XSA-99 waits for XSA-98: only `prereq` is an ordinary commit.
    prereq = world.commit("c: rework line 5\n", {C: numbered("c", 30, l5="c reworked")})
    world.commit("tools: noise\n", {"tools/x.c": "x\n"})
    xsa98 = world.commit(
        "a, c: another fix\n\nThis is XSA-98.\n",
        {**a(l10="a xsa98"), C: numbered("c", 30, l5="c reworked fixed")},
    )
    fix = world.commit("a: fix it\n\nThis is XSA-99.\n", a(l10="a xsa98 and 99"))
    assert not world.find(fix).found
    r = world.find(fix, blocked_xsas={98: [xsa98], 99: [fix]})
    assert r.found and r.waits_for == (98,) and chosen(r) == (prereq,)
    assert r.faithful and not r.minimal  # irreducible: a waiting XSA's set is not proposed


def test_blocked_xsa_is_not_tried_when_a_set_exists_without_it(world: World) -> None:
    xsa98 = world.commit("a: another fix\n\nThis is XSA-98.\n", a(l25="a xsa98"))
    prereq = world.commit("a: rework line 10\n", a(l10="a reworked", l25="a xsa98"))
    fix = world.commit("a: fix it\n\nThis is XSA-99.\n", a(l10="a reworked fixed", l25="a xsa98"))
    r = world.find(fix, blocked_xsas={98: [xsa98]})
    assert chosen(r) == (prereq,) and r.waits_for == () and r.widened == ()
    assert xsa98 not in candidates(r)


def test_prerequisite_already_on_the_branch_is_excluded(world: World) -> None:
    on_branch = world.commit("a: rework line 10\n", a(l10="a reworked"))
    needed = world.commit("a: rework line 11\n", a(l10="a reworked", l11="a also"))
    fix = world.commit(
        "a: fix both\n\nThis is XSA-99.\n", a(l10="a reworked fixed", l11="a also fixed")
    )
    r = world.find(fix, picked=[on_branch])
    assert chosen(r) == (needed,)
    assert on_branch not in candidates(r)


def test_change_already_in_the_base_is_excluded(world: World, tmp_path: Path) -> None:
    world.b.checkout("master")
    cut = world.commit("release cut with the rework\n", a(l10="a reworked"))
    world.b.checkout("stable")
    rework = world.commit("a: rework line 10\n", a(l10="a reworked"))
    needed = world.commit("a: rework line 11\n", a(l10="a reworked", l11="a also"))
    fix = world.commit(
        "a: fix both\n\nThis is XSA-99.\n", a(l10="a reworked fixed", l11="a also fixed")
    )
    r = world.find(fix, ours=cut)
    assert chosen(r) == (needed,)
    assert rework not in candidates(r)


def test_an_already_applied_xsas_commits_are_on_the_branch(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The release was cut with `rework` and XSA-98 in it (and a line of its own), so XSA-98,
    # listed with `rework` as its prerequisite, picks empty: already applied. `rework` is on
    # the branch in every sense but a commit of its own, and the finder must not offer it for
    # XSA-99 (its file differs from the cut's, so only the branch's picks can tell).
    world.b.checkout("master")
    cut = world.commit(
        "release cut\n",
        {**a(l10="a reworked", l20="a cut"), C: numbered("c", 30, l5="c xsa98")},
    )
    world.b.tag("RELEASE-1.0")
    world.b.checkout("stable")
    rework = world.commit("a: rework line 10\n", a(l10="a reworked"))
    xsa98 = world.commit("c: fix\n\nThis is XSA-98.\n", {C: numbered("c", 30, l5="c xsa98")})
    needed = world.commit("a: rework line 11\n", a(l10="a reworked", l11="a also"))
    fix = world.commit(
        "a: fix both\n\nThis is XSA-99.\n", a(l10="a reworked fixed", l11="a also fixed")
    )
    text = (
        "base: RELEASE-1.0\nsource: stable\nbranch: xsa/1.0\nxsas:\n"
        f"  - xsa: 98\n    prerequisites: [{{commit: {rework}}}]\n    commits: [{xsa98}]\n"
        f"  - xsa: 99\n    commits: [{fix}]\n"
    )

    # A pass's search (`bot.app.proposals`) takes what is on the branch from the build result.
    repo = pygit2.Repository(str(world.b.path))
    store = ObjectStore(repo)
    built = Builder(repo, store, Identity(name="xsabot", email="xsabot@example.invalid")).build(
        Manifest.model_validate(YAML(typ="safe").load(text)),
        manifests_root=world.b.path,
        base_commit=cut,
        source_commit=fix,
    )
    assert [o.state for o in built.outcomes] == ["already-applied", "blocked"]
    assert built.picked_before(99) == [rework, xsa98]
    blocked = built.outcomes[1].blocked
    assert blocked is not None and blocked.tree_id is not None
    r = find_prerequisites(
        repo,
        store,
        base_commit=cut,
        fix=fix,
        xsa=99,
        ours_tree=blocked.tree_id,
        on_branch=built.picked_before(99),
    )
    assert chosen(r) == (needed,)
    assert rework not in candidates(r)

    # `xsabot deps` finds the same.
    bot = Bot(world.b.path, tmp_path / "manifests", tmp_path / "state", tmp_path / "m.git", capsys)
    bot.manifests.mkdir()
    run = bot("deps", str(bot.write("1.0", text)), "99", "--json")
    assert run.status == 0, run.err
    data = json.loads(run.out)
    assert [c["commit"] for c in data["chosen"]] == [needed]
    assert rework not in {c["commit"] for c in data["candidates"]}


def test_all_commits_of_an_xsa_are_tried_after_the_prerequisites(world: World) -> None:
    prereq = world.commit("c: rework line 5\n", {C: numbered("c", 30, l5="c reworked")})
    part1 = world.commit("a: part one\n\nThis is part of XSA-99.\n", a(l3="a part one"))
    part2 = world.commit(
        "c: part two\n\nThis is part of XSA-99.\n",
        {C: numbered("c", 30, l5="c reworked fixed")},
    )
    r = world.find(part2, xsa_commits=[part1, part2])
    assert chosen(r) == (prereq,) and r.faithful and r.minimal


def test_xenlike_xsa2_needs_its_prereq(xenlike: XenLike) -> None:
    s = xenlike.shas
    repo = pygit2.Repository(str(xenlike.path))
    store = ObjectStore(repo)
    base = str(repo.revparse_single(xenlike.base_tag).peel(pygit2.Commit).id)
    r = find_prerequisites(
        repo,
        store,
        base_commit=base,
        fix=s["xsa2"],
        xsa=2,
        ours_tree=str(repo[base].peel(pygit2.Tree).id),
    )
    assert chosen(r) == (s["prereq"],) and r.faithful and r.minimal


# -- `xsabot deps` ------------------------------------------------------------------------------


def test_deps_prints_the_prerequisite_and_why(bot: Bot, xenlike: XenLike) -> None:
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"])))
    run = bot("deps", str(path), "XSA-2")
    assert run.status == 0, run.err
    prereq = xenlike.shas["prereq"]
    assert f"  {prereq} sched: restructure the credit loop" in run.out
    assert "prerequisites: 1, proven minimal, faithful" in run.out
    assert "why: changes xen/common/sched.c, where the fix conflicts" in run.out


def test_deps_json_lists_the_chosen_set(bot: Bot, xenlike: XenLike) -> None:
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"])))
    run = bot("deps", str(path), "2", "--json")
    assert run.status == 0, run.err
    data = json.loads(run.out)
    assert [c["commit"] for c in data["chosen"]] == [xenlike.shas["prereq"]]
    assert data["found"] and data["minimal"] and data["faithful"]
    assert data["conflicts"] == ["xen/common/sched.c"] and data["fix"] == xenlike.shas["xsa2"]


def test_deps_on_an_xsa_that_applies(bot: Bot, xenlike: XenLike) -> None:
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"])))
    run = bot("deps", str(path), "1")
    assert run.status == 0, run.err
    assert run.out.strip() == "XSA-1 applies as listed: no prerequisites needed"


def test_deps_on_an_xsa_that_applies_points_to_the_check_when_there_is_one(
    bot: Bot, xenlike: XenLike
) -> None:
    # The gate may hold back an XSA that applies: deps cannot see that, and says where to look.
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"])))
    run = bot("deps", str(path), "1", "--check", "xen=false")
    assert run.status == 0, run.err
    assert run.out == (
        "XSA-1 applies as listed: no prerequisites needed\n"
        f"deps does not run the check; whether the branch builds with it: `xsabot check {path}`\n"
    )


def test_deps_without_a_set_exits_1(bot: Bot, xenlike: XenLike) -> None:
    # XSA-4 changes a line XSA-3 introduced; XSA-3 is not in this manifest and XSA commits
    # are never prerequisites.
    path = bot.write("4.19", manifest(xenlike, (4, ["xsa4"])))
    run = bot("deps", str(path), "4", "--json")
    assert run.status == 1, run.err
    data = json.loads(run.out)
    assert not data["found"] and data["chosen"] == []
    assert xenlike.shas["xsa3b"] not in {c["commit"] for c in data["candidates"]}


def test_deps_tries_an_xsa_marked_blocked(bot: Bot, xenlike: XenLike) -> None:
    entry = {"xsa": 2, "commits": f"[{xenlike.shas['xsa2']}]", "status": "blocked", "why": "x"}
    path = bot.write("4.19", manifest(xenlike, entry))
    run = bot("deps", str(path), "2", "--json")
    assert run.status == 0, run.err
    assert [c["commit"] for c in json.loads(run.out)["chosen"]] == [xenlike.shas["prereq"]]


def test_deps_says_an_xsa_waits_for_a_blocked_one(bot: Bot, xenlike: XenLike) -> None:
    # XSA-4 changes a line XSA-3 introduced, and XSA-3 is marked blocked in this manifest.
    blocked = {"xsa": 3, "commits": f"[{xenlike.shas['xsa3a']}, {xenlike.shas['xsa3b']}]"}
    entry = blocked | {"status": "blocked", "why": "needs a manual backport"}
    path = bot.write("4.19", manifest(xenlike, entry, (4, ["xsa4"])))
    run = bot("deps", str(path), "4", "--json")
    assert run.status == 1, run.err
    data = json.loads(run.out)
    assert data["found"] and data["waits_for"] == [3] and data["chosen"] == []
    text = bot("deps", str(path), "4")
    assert text.status == 1, text.err
    assert (
        "waits for XSA-3 (blocked on this branch): the fix applies only with its\n"
        "commits, so no prerequisite alone can unblock it\n"
    ) in text.out


def test_deps_unknown_xsa_is_a_usage_error(bot: Bot, xenlike: XenLike) -> None:
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    run = bot("deps", str(path), "9")
    assert run.status == 2 and "no XSA-9" in run.err


def test_widens_to_the_files_a_candidate_changes(world: World) -> None:
    # `deleter` removes lines next to the line `needed` changes: no line `needed` keeps comes
    # from it, so blame cannot see it, but `needed` does not pick without it.
    c_lines = [f"c line {i}" for i in range(1, 31)]
    trimmed = c_lines[:5] + c_lines[7:]
    deleter = world.commit("c: drop two lines\n", {C: "".join(f"{x}\n" for x in trimmed)})
    changed = [*trimmed[:4], "c line 5 changed", *trimmed[5:]]
    needed = world.commit(
        "a, c: rework\n", {**a(l10="a reworked"), C: "".join(f"{x}\n" for x in changed)}
    )
    fix = world.commit("a: fix it\n\nThis is XSA-99.\n", a(l10="a reworked fixed"))
    r = world.find(fix)
    assert chosen(r) == (deleter, needed)
    assert r.widened == ("files",) and r.faithful and r.minimal
