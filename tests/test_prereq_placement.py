"""A prerequisite placed before a later commit of its XSA (`before:`): model, lint, edit, build,
and the finder and proposals that place it where the XSA needs it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import git
import pygit2
import pytest
from ruamel.yaml import YAML

from bot.config import Identity
from bot.core.prereqs import FinderResult
from bot.core.record import inputs_digest
from bot.errors import InvalidInput
from bot.git.build import Builder
from bot.git.objects import ObjectStore
from bot.git.prereqs import find_prerequisites
from bot.manifest.edit import add_prerequisites
from bot.manifest.load import load_manifest
from bot.manifest.model import Manifest, Prerequisite
from tests.conftest import Bot
from tests.gitrepo import RepoBuilder, XenLike, numbered
from tests.manifests import manifest

MM = "xen/arch/x86/mm.c"
A, B, C, P, Q, R = ("a" * 40, "b" * 40, "c" * 40, "d" * 40, "e" * 40, "f" * 40)


def mm(**changed: str) -> dict[str, str | None]:
    # XSA-1 of the synthetic upstream checked line 3: every later mm.c keeps it.
    return {MM: numbered("mm", 30, l3="mm line 3 checked", **changed)}


def add_two_commit_xsa(x: XenLike) -> None:
    """XSA-7 on top of `stable-4.19`: its second commit changes a line that a non-XSA commit
    (`helper`) wrote, and that commit changes a line the XSA's first commit wrote. On source,
    `helper` sits between the two: it can only go after the first, and must go before the
    second."""
    b, s = x.builder, x.shas
    s["xsa7a"] = b.commit("mm: add a check\n\nThis is part of XSA-7.\n", mm(l20="mm check v2"))
    s["helper"] = b.commit(
        "mm: factor the check out\n", mm(l20="mm check v2 factored", l21="mm helper")
    )
    s["xsa7b"] = b.commit(
        "mm: fix the helper\n\nThis is part of XSA-7.\n",
        mm(l20="mm check v2 factored", l21="mm helper fixed"),
    )


def parsed(text: str) -> Manifest:
    return Manifest.model_validate(YAML(typ="safe").load(text))


@pytest.fixture
def repo_bot(bot: Bot, tmp_path: Path) -> tuple[Bot, RepoBuilder]:
    manifests_repo = RepoBuilder(tmp_path / "manifests-repo")
    bot.manifests = manifests_repo.path / "manifests"
    return bot, manifests_repo


def _reconcile(bot: Bot) -> dict:
    run = bot("reconcile", "--json")
    data = json.loads(run.out)
    data["status"] = run.status
    return data


def _picked(mirror: Path, branch: str) -> list[str]:
    """The source commits picked onto a published branch, oldest first."""
    log = git.Repo(mirror).git.log("--format=%B%x00", "--first-parent", "--reverse", branch)
    out = []
    for message in log.split("\0"):
        for line in message.splitlines():
            if line.startswith("(cherry picked from commit "):
                out.append(line.removeprefix("(cherry picked from commit ").rstrip(")"))
    return out


# -- end to end: one proposal, merged, the whole XSA on the branch -----------------------------


def test_a_prerequisite_needing_the_first_commit_is_proposed_before_the_second(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    add_two_commit_xsa(xenlike)
    s = xenlike.shas
    repo.commit(
        "add\n", {"manifests/4.19.yaml": manifest(xenlike, (1, ["xsa1"]), (7, ["xsa7a", "xsa7b"]))}
    )

    first = _reconcile(bot)
    assert first["status"] == 1
    [blocked] = first["branches"][0]["blocked"]
    assert (blocked["xsa"], blocked["commit"], blocked["reason"]) == (7, s["xsa7b"], "conflict")
    [opened] = first["proposals"]
    assert (opened["action"], opened["branch"], opened["draft"]) == (
        "open",
        "xsabot/4.19/xsa-7",
        False,
    )
    edited = repo.repo.git.show("xsabot/4.19/xsa-7:manifests/4.19.yaml")
    [entry] = [e for e in parsed(edited).xsas if e.xsa == 7]
    assert entry.prerequisites == (
        Prerequisite(commit=s["helper"], why="mm: factor the check out", before=s["xsa7b"]),
    )
    assert entry.picks() == [
        (s["xsa7a"], "fix"),
        (s["helper"], "prerequisite"),
        (s["xsa7b"], "fix"),
    ]

    repo.repo.git.merge("xsabot/4.19/xsa-7")  # a volunteer merges the proposal
    second = _reconcile(bot)
    assert second["status"] == 0, second
    [branch] = second["branches"]
    assert branch["applied"] == [1, 7] and branch["published"] is True
    merged = [(p["action"], p["branch"]) for p in second["proposals"]]
    assert merged == [("merged", "xsabot/4.19/xsa-7")]  # told once; nothing else to do
    # The whole XSA, as on source: the commits in source order, and mm.c as source has it.
    assert _picked(bot.mirror, "xsa/4.19") == [s["xsa1"], s["xsa7a"], s["helper"], s["xsa7b"]]
    mirror = git.Repo(bot.mirror)
    assert mirror.git.show(f"xsa/4.19:{MM}") == xenlike.builder.repo.git.show(f"{s['xsa7b']}:{MM}")


def _find(x: XenLike, fix: str, picks: list[str], fix_commits: list[str]) -> FinderResult:
    """The finder on XSA-7 as the manifest applies it, onto the branch with XSA-1."""
    repo = pygit2.Repository(str(x.path))
    store = ObjectStore(repo)
    base = x.builder.rev(x.base_tag)
    picked = Builder(repo, store, Identity()).build(
        parsed(manifest(x, (1, ["xsa1"]))),
        manifests_root=x.path,
        base_commit=base,
        source_commit=x.builder.rev(x.source),
    )
    return find_prerequisites(
        repo,
        store,
        base_commit=base,
        fix=fix,
        xsa=7,
        ours_tree=picked.tree_id,
        on_branch=[x.shas["xsa1"]],
        xsa_commits=picks,
        fix_commits=fix_commits,
    )


def test_the_finder_places_a_candidate_after_the_xsa_commits_before_it_on_source(
    xenlike: XenLike,
) -> None:
    add_two_commit_xsa(xenlike)
    s = xenlike.shas
    commits = [s["xsa7a"], s["xsa7b"]]
    found = _find(xenlike, s["xsa7b"], commits, commits)
    assert found.found and found.faithful and found.minimal
    assert [(c.sha, c.before) for c in found.chosen] == [(s["helper"], s["xsa7b"])]
    # Every set before the first commit: `helper` cannot pick there, so there is none.
    assert not _find(xenlike, s["xsa7b"], commits, []).found
    # A commit of the XSA that is in the base already is picked as empty, by the trials too.
    with_root = [s["root"], *commits]
    found = _find(xenlike, s["xsa7b"], with_root, with_root)
    assert [(c.sha, c.before) for c in found.chosen] == [(s["helper"], s["xsa7b"])]


def test_deps_says_where_the_prerequisite_goes(bot: Bot, xenlike: XenLike) -> None:
    add_two_commit_xsa(xenlike)
    s = xenlike.shas
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (7, ["xsa7a", "xsa7b"])))
    data = json.loads(bot("deps", str(path), "7", "--json").out)
    assert data["found"] and data["faithful"]
    assert [(c["commit"], c["before"]) for c in data["chosen"]] == [(s["helper"], s["xsa7b"])]
    text = bot("deps", str(path), "7").out
    assert f"before: {s['xsa7b']}" in text


def test_the_builder_picks_a_placed_prerequisite_right_before_its_commit(
    bot: Bot, xenlike: XenLike
) -> None:
    add_two_commit_xsa(xenlike)
    s = xenlike.shas
    entry = {
        "xsa": 7,
        "prerequisites": f"[{{commit: {s['helper']}, before: {s['xsa7b']}}}]",
        "commits": f"[{s['xsa7a']}, {s['xsa7b']}]",
    }
    placed = bot.write("4.19", manifest(xenlike, entry))
    run = bot("build", str(placed))
    assert run.status == 0, run.out
    picks = [line.split(" -> ")[0] for line in run.out.splitlines() if line.startswith("XSA-7 ")]
    assert picks == [
        f"XSA-7 fix {s['xsa7a']}",
        f"XSA-7 prerequisite {s['helper']}",
        f"XSA-7 fix {s['xsa7b']}",
    ]
    # Unplaced, it goes before the first commit, which it needs: the XSA is blocked there.
    entry["prerequisites"] = f"[{{commit: {s['helper']}}}]"
    first = bot.write("4.19", manifest(xenlike, entry))
    run = bot("build", str(first))
    assert f"XSA-7 BLOCKED at {s['helper']}: conflict: {MM}" in run.out


# -- the model, the edit and the hypothetical build agree -----------------------------------


TEXT = f"""\
tree: xen
base: RELEASE-4.19.3
source: stable-4.19
branch: xsa/4.19.3
xsas:
  - xsa: 470
    prerequisites:
      - commit: {Q}  # before the first commit, as it always was
        why: "q"
      - commit: {R}
        why: "r"
        before: {C}
    commits:
      - {A}
      - {B}  # the second
      - {C}
"""


def test_picks_put_each_prerequisite_right_before_its_commit() -> None:
    entry = parsed(TEXT).xsas[0]
    assert entry.picks() == [
        (Q, "prerequisite"),
        (A, "fix"),
        (B, "fix"),
        (R, "prerequisite"),
        (C, "fix"),
    ]


@pytest.mark.parametrize(
    "added",
    [
        [(P, None)],  # before the first: first of all
        [(P, B)],  # before the second, where nothing is placed yet
        [(P, C)],  # first among those placed before the third
        [(P, C), ("ab" * 20, None), ("cd" * 20, B)],
    ],
)
def test_the_edit_writes_what_the_hypothetical_build_assumes(
    added: list[tuple[str, str | None]],
) -> None:
    before = {commit: place for commit, place in added if place is not None}
    edited = add_prerequisites(TEXT, 470, [(c, f"why {c[:4]}") for c, _ in added], before)
    assumed = parsed(TEXT).with_prerequisites(
        {470: [Prerequisite(commit=c, why=f"why {c[:4]}", before=p) for c, p in added]}
    )
    assert parsed(edited) == assumed
    assert "# before the first commit, as it always was" in edited and "# the second" in edited
    for place in before.values():
        assert f"before: {place}" in edited


def test_an_unplaced_prerequisite_keeps_the_inputs_digest_and_a_placed_one_changes_it() -> None:
    m = parsed(TEXT)

    def digest(manifest: Manifest) -> str:
        return inputs_digest(manifest, base_commit=A, committer=("x", "y"), bot_version="v")

    entry = m.xsas[0]
    moved = entry.model_copy(
        update={"prerequisites": (entry.prerequisites[0].model_copy(update={"before": B}),)}
    )
    unplaced = entry.model_copy(update={"prerequisites": entry.prerequisites[:1]})
    assert digest(m.model_copy(update={"xsas": (moved,)})) != digest(
        m.model_copy(update={"xsas": (unplaced,)})
    )


# -- lint ------------------------------------------------------------------------------------


def _problems(tmp_path: Path, text: str) -> list[tuple[int, int, str, str]]:
    path = tmp_path / "4.19.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(InvalidInput) as caught:
        load_manifest(path, root=tmp_path)
    return [(p.line, p.col, p.field, p.message) for p in caught.value.problems]


def test_a_before_that_names_no_commit_of_the_xsa_is_a_located_error(tmp_path: Path) -> None:
    found = _problems(
        tmp_path,
        f"""\
        tree: xen
        base: RELEASE-4.19.3
        source: stable-4.19
        branch: xsa/4.19.3
        xsas:
          - xsa: 470
            prerequisites:
              - commit: {P}
                before: {Q}
            commits: [{A}, {B}]
        """,
    )
    assert found == [
        (
            9,
            17,
            "xsas[0].prerequisites[0].before",
            f"`before` names {Q[:12]}, which is not one of this XSA's `commits`",
        )
    ]


def test_a_before_in_an_xsa_with_patches_only_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "x.patch").write_text("From x\n")
    found = _problems(
        tmp_path,
        f"""\
        tree: xen
        base: RELEASE-4.19.3
        source: stable-4.19
        branch: xsa/4.19.3
        xsas:
          - xsa: 471
            prerequisites: [{{commit: {P}, before: {A}}}]
            patches: [{{path: x.patch, sha256: {"e" * 64}}}]
        """,
    )
    assert [(line, field) for line, _, field, _ in found] == [
        (7, "xsas[0].prerequisites[0].before")
    ]
    assert "this XSA lists none" in found[0][3]


def test_lint_prints_a_bad_before_with_file_and_line(bot: Bot, xenlike: XenLike) -> None:
    s = xenlike.shas
    entry = {
        "xsa": 2,
        "prerequisites": f"[{{commit: {s['prereq']}, before: {s['xsa1']}}}]",
        "commits": f"[{s['xsa2']}]",
    }
    bot.write("4.19", manifest(xenlike, entry))
    run = bot("lint", str(bot.manifests / "4.19.yaml"))
    assert run.status == 1
    assert "4.19.yaml:7:" in run.out and "xsas[0].prerequisites[0].before" in run.out
