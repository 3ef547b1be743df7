"""Faithful or blocked: a pick that merges cleanly but lands other lines than on source.

The upstream here has the shape the check exists for: on `stable-4.19`, a non-XSA commit
(`temporary`) adds two lines to xen/common/f.c, and XSA-7's fix removes them again while it
changes line 20. Without `temporary` on the branch, the 3-way merge of the fix is clean (the
two lines are not there to remove) and the branch would get only line 20 of the fix.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections import Counter
from pathlib import Path

import pygit2
import pytest

from bot.core.record import inputs_digest, note_json
from bot.git.faithful import PickCheck, hunks
from bot.git.objects import ObjectStore
from bot.git.pick import TreeMerger
from bot.manifest.model import Manifest
from tests.conftest import Bot
from tests.gitrepo import RepoBuilder, lines, numbered

F = "xen/common/f.c"
G = "xen/common/g.c"
TEMPORARY = lines(*(f"f line {i}" for i in range(1, 11)), "#define tmp_a 1", "#define tmp_b 2")
TEMPORARY += lines(*(f"f line {i}" for i in range(11, 31)))


class Upstream:
    """RELEASE-4.19.0, then on stable-4.19: `temporary`, `unrelated`, `fix` (XSA-7)."""

    def __init__(self, path: Path) -> None:
        b = self.builder = RepoBuilder(path)
        self.root = b.commit("Initial import\n", {F: numbered("f", 30), G: numbered("g", 30)})
        b.tag("RELEASE-4.19.0")
        b.branch("stable-4.19")
        b.checkout("stable-4.19")
        self.temporary = b.commit("f: temporary defines\n", {F: TEMPORARY})
        self.unrelated = b.commit("g: tidy line 3\n", {G: numbered("g", 30, l3="g tidy")})
        self.fix = b.commit(
            "f: fix line 20, drop the temporary defines\n\nThis is XSA-7.\n",
            {F: numbered("f", 30, l20="f line 20 fixed")},
        )

    @property
    def path(self) -> Path:
        return self.builder.path

    def manifest(self, *, extra: str = "", prerequisites: str = "") -> str:
        text = "tree: xen\nbase: RELEASE-4.19.0\nsource: stable-4.19\nbranch: xsa/4.19\nxsas:\n"
        text += f"  - xsa: 7\n{prerequisites}    commits: [{self.fix}]\n{extra}"
        return text


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    return Upstream(tmp_path / "partial-upstream")


@pytest.fixture
def partial_bot(bot: Bot, upstream: Upstream) -> Bot:
    bot.upstream = upstream.path
    return bot


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _reconcile(bot: Bot, *args: str) -> dict:
    run = bot("reconcile", "--json", *args)
    data = json.loads(run.out)
    data["status"] = run.status
    return data


def _patch_id(repo: Path, commit: str) -> str:
    r = pygit2.Repository(str(repo))
    c = r[commit].peel(pygit2.Commit)
    return str(r.diff(c.parents[0], c).patchid)


def test_a_clean_but_partial_pick_blocks_its_xsa(partial_bot: Bot, upstream: Upstream) -> None:
    path = partial_bot.write("4.19", upstream.manifest())
    build = partial_bot("build", str(path))
    assert build.status == 1
    assert f"XSA-7 BLOCKED at {upstream.fix}: partial: {F}" in build.out
    assert build.last_line == upstream.root  # all or nothing: nothing of the fix is on it

    data = _reconcile(partial_bot, "--dry-run")
    assert data["status"] == 1
    [branch] = data["branches"]
    assert branch["applied"] == []
    assert branch["blocked"] == [
        {
            "xsa": 7,
            "commit": upstream.fix,
            "paths": [F],
            "reason": "partial",
            "detail": f"the fix's change to {F} lands differently: "
            "2 lines removed on source are not removed on the branch",
        }
    ]
    plan = partial_bot("plan")
    assert f"BLOCKED XSA-7 at {upstream.fix[:12]}: partial: {F}" in plan.out
    assert "2 lines removed on source are not removed on the branch" in plan.out


def test_deps_finds_the_commit_a_partial_pick_misses(partial_bot: Bot, upstream: Upstream) -> None:
    path = partial_bot.write("4.19", upstream.manifest())
    run = partial_bot("deps", str(path), "7", "--json")
    data = json.loads(run.out)
    assert [c["commit"] for c in data["chosen"]] == [upstream.temporary]
    assert data["conflicts"] == [F] and data["found"] and data["faithful"]
    text = partial_bot("deps", str(path), "7").out
    assert f"  lands partially in: {F}\n" in text
    assert f"prerequisites: 1, proven minimal, faithful\n  {upstream.temporary}" in text


def test_the_proposal_for_a_partial_pick_makes_the_branch_hold_the_whole_fix(
    partial_bot: Bot, upstream: Upstream, tmp_path: Path
) -> None:
    repo = RepoBuilder(tmp_path / "manifests-repo")
    partial_bot.manifests = repo.path / "manifests"
    repo.commit("add 4.19\n", {"manifests/4.19.yaml": upstream.manifest()})

    first = _reconcile(partial_bot)
    assert first["status"] == 1
    assert [b["reason"] for b in first["branches"][0]["blocked"]] == ["partial"]
    [opened] = first["proposals"]
    assert (opened["action"], opened["branch"], opened["draft"]) == (
        "open",
        "xsabot/4.19/xsa-7",
        False,
    )
    edited = repo.repo.git.show("xsabot/4.19/xsa-7:manifests/4.19.yaml")
    assert f"commit: {upstream.temporary}" in edited
    assert upstream.unrelated not in edited

    repo.repo.git.merge("xsabot/4.19/xsa-7")  # a volunteer reviews and merges it
    second = _reconcile(partial_bot)
    assert second["status"] == 0, second
    [branch] = second["branches"]
    assert branch["applied"] == [7] and branch["published"] and branch["blocked"] == []
    merged = [(p["action"], p["branch"]) for p in second["proposals"]]
    assert merged == [("merged", "xsabot/4.19/xsa-7")]  # told once; nothing else to do

    tip = _git(partial_bot.mirror, "rev-parse", "refs/heads/xsa/4.19")
    published = _git(partial_bot.mirror, "log", "--format=%H", f"{upstream.root}..xsa/4.19")
    fix_on_branch, temporary_on_branch = published.splitlines()
    assert fix_on_branch == tip
    assert _patch_id(partial_bot.mirror, fix_on_branch) == _patch_id(upstream.path, upstream.fix)
    assert _patch_id(partial_bot.mirror, temporary_on_branch) == _patch_id(
        upstream.path, upstream.temporary
    )
    assert _git(partial_bot.mirror, "show", f"{tip}:{F}") + "\n" == numbered(
        "f", 30, l20="f line 20 fixed"
    )


def test_the_proposal_says_the_fix_lands_partially(
    partial_bot: Bot, upstream: Upstream, tmp_path: Path
) -> None:
    repo = RepoBuilder(tmp_path / "manifests-repo")
    partial_bot.manifests = repo.path / "manifests"
    repo.commit("add 4.19\n", {"manifests/4.19.yaml": upstream.manifest()})
    [opened] = _reconcile(partial_bot)["proposals"]
    assert "4.19: add 1 prerequisite for XSA-7" in partial_bot("status").out
    # The local forge keeps each merge request as a JSON record in the state directory.
    record = json.loads((partial_bot.state / "proposals" / f"{opened['id']}.json").read_text())
    body = record["body"]
    assert f"its fix `{upstream.fix}` merges cleanly but lands differently than on" in body
    assert "2 lines removed on source are not removed on the branch" in body


def test_an_accepted_partial_pick_is_applied_and_recorded(
    partial_bot: Bot, upstream: Upstream
) -> None:
    accept = (
        f"    partial:\n      - commit: {upstream.fix}\n"
        '        why: "reviewed: the temporary defines never were on this line"\n'
    )
    partial_bot.write("4.19", upstream.manifest(extra=accept))
    data = _reconcile(partial_bot)
    assert data["status"] == 0, data
    [branch] = data["branches"]
    assert branch["applied"] == [7] and branch["blocked"] == [] and branch["published"]

    tip = _git(partial_bot.mirror, "rev-parse", "refs/heads/xsa/4.19")
    text = _git(partial_bot.mirror, "notes", "--ref", "xsabot", "show", tip)
    note = json.loads(note_json(text) or "")  # the JSON after the note's human summary
    [record] = note["records"]["xsa/4.19"]["xsas"]
    assert record["state"] == "applied"
    assert record["accepted_partial"] == [upstream.fix]
    # Only line 20 of the fix landed: what the volunteer accepted.
    assert _git(partial_bot.mirror, "show", f"{tip}:{F}") + "\n" == numbered(
        "f", 30, l20="f line 20 fixed"
    )
    build = partial_bot("build", str(partial_bot.manifests / "4.19.yaml"))
    assert f"XSA-7 fix {upstream.fix} -> {tip} (accepted partial: {F})" in build.out


def test_accepting_a_faithful_pick_records_nothing(partial_bot: Bot, upstream: Upstream) -> None:
    prerequisites = f"    prerequisites: [{{commit: {upstream.temporary}, why: temporary}}]\n"
    accept = f"    partial: [{{commit: {upstream.fix}, why: was partial before}}]\n"
    partial_bot.write("4.19", upstream.manifest(prerequisites=prerequisites, extra=accept))
    data = _reconcile(partial_bot)
    assert data["status"] == 0
    tip = _git(partial_bot.mirror, "rev-parse", "refs/heads/xsa/4.19")
    text = _git(partial_bot.mirror, "notes", "--ref", "xsabot", "show", tip)
    note = json.loads(note_json(text) or "")  # the JSON after the note's human summary
    [record] = note["records"]["xsa/4.19"]["xsas"]
    assert record["state"] == "applied" and record["accepted_partial"] == []


def test_accepting_a_partial_pick_is_an_input_of_the_build(upstream: Upstream) -> None:
    from ruamel.yaml import YAML

    def digest(text: str) -> str:
        manifest = Manifest.model_validate(YAML(typ="safe").load(text))
        return inputs_digest(
            manifest, base_commit=upstream.root, committer=("x", "x@y"), bot_version="1"
        )

    accept = f"    partial: [{{commit: {upstream.fix}, why: reviewed}}]\n"
    reworded = f"    partial: [{{commit: {upstream.fix}, why: reviewed again}}]\n"
    assert digest(upstream.manifest(extra=accept)) != digest(upstream.manifest())
    assert digest(upstream.manifest(extra=accept)) == digest(upstream.manifest(extra=reworded))


def test_lint_names_file_and_line_of_a_bad_accepted_partial_pick(
    partial_bot: Bot, upstream: Upstream
) -> None:
    other = "0123456789abcdef0123456789abcdef01234567"
    accept = (
        "    partial:\n"
        f"      - commit: {other}\n"  # line 9: not one of XSA-7's commits
        "        why: reviewed\n"
        f"      - commit: {upstream.fix}\n"  # line 11
        "        why: '  '\n"  # line 12: no reason
        f"      - commit: {upstream.fix}\n"  # line 13: missing why, and twice
    )
    path = partial_bot.write("4.19", upstream.manifest(extra=accept))
    run = partial_bot("lint", str(path))
    assert run.status == 1
    shown = str(path)
    assert run.out.splitlines()[:4] == [
        f"{shown}:9:17: xsas[0].partial[0].commit: commit {other[:12]} is not one of this "
        "XSA's commits or prerequisites",
        f"{shown}:12:14: xsas[0].partial[1].why: say why the pick may land differently "
        "(what was reviewed)",
        f"{shown}:13:9: xsas[0].partial[2].why: required key is missing",
        f"{shown}:13:17: xsas[0].partial[2].commit: commit {upstream.fix[:12]} is accepted "
        "twice (first at line 11)",
    ]


# -- the check itself, on real trees ----------------------------------------------------------


def _check(
    repo_path: Path, commit: str, onto: str, *, fallback: bool = False
) -> tuple[str | None, list[tuple[str, str]]]:
    """Pick `commit` onto the tree of `onto`; (merged tree, [(path, what differs)]).
    `fallback`: the path-limited merge hands this pick to the full `merge_trees`."""
    repo = pygit2.Repository(str(repo_path))
    store = ObjectStore(repo)
    c = repo[commit].peel(pygit2.Commit)
    base, theirs = str(c.parents[0].tree_id), str(c.tree_id)
    ours = str(repo[onto].peel(pygit2.Tree).id)
    merger = TreeMerger(store)
    merge = merger.merge(base, ours, theirs)
    assert merge.tree is not None
    assert merger.stats.fallbacks == fallback and (merge.touched is None) == fallback
    found = PickCheck(store).differences(base, theirs, ours, merge)
    return merge.tree, [(d.path, d.what) for d in found]


def test_a_change_the_branch_already_has_is_faithful(tmp_path: Path) -> None:
    b = RepoBuilder(tmp_path / "up")
    b.commit("base\n", {F: numbered("f", 30)})
    b.branch("stable")
    b.commit("release cut, with the fix and a line of its own\n", {F: numbered("f", 30, l5="x")})
    cut = b.rev("HEAD")
    b.checkout("stable")
    b.commit("f: line 25\n", {F: numbered("f", 30, l25="y")})
    fix = b.commit("f: fix line 5\n", {F: numbered("f", 30, l5="x", l25="y")})
    merged, found = _check(b.path, fix, cut)
    assert merged == str(pygit2.Repository(str(b.path))[cut].peel(pygit2.Tree).id)  # empty
    assert found == []


def test_a_removal_lost_in_an_empty_pick_is_partial(tmp_path: Path) -> None:
    b = RepoBuilder(tmp_path / "up")
    b.commit("base\n", {F: numbered("f", 30)})
    b.branch("stable")
    cut = b.commit("release cut\n", {F: numbered("f", 30, l2="f2 local")})
    b.checkout("stable")
    b.commit("f: temporary defines\n", {F: TEMPORARY})
    removal = b.commit("f: drop the temporary defines\n", {F: numbered("f", 30)})
    merged, found = _check(b.path, removal, cut)
    assert merged == str(pygit2.Repository(str(b.path))[cut].peel(pygit2.Tree).id)  # empty
    assert found == [(F, "2 lines removed on source are not removed on the branch")]


def test_a_revert_of_what_the_branch_never_had_is_faithful(tmp_path: Path) -> None:
    # The file is, after the pick, exactly what it is after the revert on source.
    b = RepoBuilder(tmp_path / "up")
    base = b.commit("base\n", {F: numbered("f", 30)})
    b.branch("stable")
    b.checkout("stable")
    b.commit("f: temporary defines\n", {F: TEMPORARY})
    revert = b.commit('Revert "f: temporary defines"\n', {F: numbered("f", 30)})
    _, found = _check(b.path, revert, base)
    assert found == []


def test_a_pick_that_adds_lines_elsewhere_than_on_source_is_faithful(tmp_path: Path) -> None:
    # The branch has 5 more lines at the top: the fix lands 5 lines lower, the same change.
    b = RepoBuilder(tmp_path / "up")
    b.commit("base\n", {F: numbered("f", 30)})
    b.branch("stable")
    shifted = b.commit("local: a header\n", {F: lines(*"abcde") + numbered("f", 30)})
    b.checkout("stable")
    fix = b.commit("f: fix\n", {F: numbered("f", 30, l12="fixed", l13=" fixed too ")})
    _, found = _check(b.path, fix, shifted)
    assert found == []


def test_after_a_full_merge_the_trees_are_compared_path_by_path(tmp_path: Path) -> None:
    # The fix adds a file the branch already has (both sides add it: the full merge_trees
    # decides), and removes the temporary lines the branch never had.
    b = RepoBuilder(tmp_path / "up")
    b.commit("base\n", {F: numbered("f", 30)})
    b.branch("stable")
    branch = b.commit(
        "local: the new header, as upstream has it\n",
        {"xen/h.h": "int h;\n", F: numbered("f", 30, l2="f2 local")},
    )
    b.checkout("stable")
    b.commit("f: temporary defines\n", {F: TEMPORARY})
    fix = b.commit("f: drop them, add h.h\n", {F: numbered("f", 30), "xen/h.h": "int h;\n"})
    _, found = _check(b.path, fix, branch, fallback=True)
    assert found == [(F, "2 lines removed on source are not removed on the branch")]


def test_a_full_merge_that_lands_as_on_source_is_faithful(tmp_path: Path) -> None:
    b = RepoBuilder(tmp_path / "up")
    b.commit("base\n", {F: numbered("f", 30)})
    b.branch("stable")
    branch = b.commit("local: the new header, as upstream has it\n", {"xen/h.h": "int h;\n"})
    b.checkout("stable")
    fix = b.commit("f: fix, add h.h\n", {F: numbered("f", 30, l7="f7"), "xen/h.h": "int h;\n"})
    _, found = _check(b.path, fix, branch, fallback=True)
    assert found == []


def test_hunks_cut_the_shared_ends_without_changing_what_is_removed_and_added() -> None:
    # The check diffs only the changed span of two files; the lines that span removes and
    # adds must be those of the whole-file diff (which may align repeated lines otherwise).
    rng = random.Random(10)
    words = [b"a", b"}", b"", b"x y", b"int z;"]
    for _ in range(500):
        old = [rng.choice(words) for _ in range(rng.randint(0, 200))]
        new = list(old)
        for _ in range(rng.randint(0, 4)):
            at = rng.randint(0, len(new))
            if rng.random() < 0.5 and at < len(new):
                del new[at]
            else:
                new.insert(at, rng.choice(words) + b"q")
        a, b = b"\n".join(old) + b"\n", b"\n".join(new)  # b: maybe no newline at the end
        found = hunks(a, b)
        assert found is not None
        whole = pygit2.Patch.create_from(a, b, context_lines=0)
        for side, origin in ((0, "-"), (1, "+")):
            expected = Counter(
                b"".join(line.raw_content.split())
                for hunk in whole.hunks
                for line in hunk.lines
                if line.origin == origin
            )
            assert Counter(line for h in found for line in h[side]) == expected


def test_a_fix_half_on_the_branch_already_is_faithful(tmp_path: Path) -> None:
    # The release cut has the fix's change to line 5 (its own backport); the pick adds the
    # change to line 25, and the fix is whole on the branch.
    b = RepoBuilder(tmp_path / "up")
    b.commit("base\n", {F: numbered("f", 30)})
    b.branch("stable")
    cut = b.commit("release cut, with half the fix\n", {F: numbered("f", 30, l5="f5 fixed")})
    b.checkout("stable")
    fix = b.commit("f: fix\n", {F: numbered("f", 30, l5="f5 fixed", l25="f25 fixed")})
    merged, found = _check(b.path, fix, cut)
    assert found == []
    repo = pygit2.Repository(str(b.path))
    blob = repo[merged].peel(pygit2.Tree)[F]
    assert blob.data.decode() == numbered("f", 30, l5="f5 fixed", l25="f25 fixed")


def test_a_removal_lost_beside_a_change_that_lands_is_partial(tmp_path: Path) -> None:
    # One hunk of the fix lands (line 25), the other only removes the temporary lines, which
    # the branch never had.
    b = RepoBuilder(tmp_path / "up")
    b.commit("base\n", {F: numbered("f", 30)})
    b.branch("stable")
    cut = b.commit("release cut\n", {F: numbered("f", 30, l2="f2 local")})
    b.checkout("stable")
    b.commit("f: temporary defines\n", {F: TEMPORARY})
    fix = b.commit("f: fix\n", {F: numbered("f", 30, l25="f25 fixed")})
    _, found = _check(b.path, fix, cut)
    assert found == [(F, "2 lines removed on source are not removed on the branch")]
