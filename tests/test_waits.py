"""Waits and bounds said plainly: an XSA that needs another XSA blocked on the branch is
reported `waits-for` it (plan, reconcile, status, JSON) and gets no proposal; a search that
stops at a bound says so and never marks an XSA blocked."""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import replace
from pathlib import Path

import git
import pytest

from bot.core.proposals import proposal_for
from tests.conftest import Bot
from tests.forge_contract import PRE_A, build_result, finder_result
from tests.gitrepo import AUTHOR, T0, RepoBuilder, XenLike, numbered
from tests.manifests import manifest
from tests.test_proposals_core import manifest_file

SCHED = "xen/common/sched.c"


@pytest.fixture
def repo_bot(bot: Bot, tmp_path: Path) -> tuple[Bot, RepoBuilder]:
    manifests_repo = RepoBuilder(tmp_path / "manifests-repo")
    bot.manifests = manifests_repo.path / "manifests"
    return bot, manifests_repo


def _json(bot: Bot, *args: str) -> dict:
    run = bot(*args, "--json")
    data = json.loads(run.out)
    data["status"] = run.status
    return data


def _blocked(report: dict) -> dict[int, dict]:
    [branch] = report["branches"]
    return {b["xsa"]: b for b in branch["blocked"]}


def add_xsa8(x: XenLike) -> None:
    """XSA-8 hardens the line XSA-2 wrote: it applies only once XSA-2 is on the branch, and
    XSA-2 only with its prerequisite."""
    x.shas["xsa8"] = x.builder.commit(
        "sched: harden the loop bound\n\nThis is XSA-8.\n",
        {
            SCHED: numbered(
                "sched", 30, l10="loop begin", l11="loop body bounded strictly", l12="loop end"
            )
        },
    )


def test_an_xsa_waiting_for_an_xsa_with_a_proposal_is_reported_and_published_after_it(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    add_xsa8(xenlike)
    text = manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"]), (8, ["xsa8"]))
    repo.commit("add\n", {"manifests/4.19.yaml": text})

    plan = _json(bot, "plan")
    first = _json(bot, "reconcile")
    for report in (plan, first):
        blocked = _blocked(report)
        assert blocked[2]["reason"] == "conflict" and "waits_for" not in blocked[2]
        assert (blocked[8]["reason"], blocked[8]["waits_for"]) == ("waits-for", [2])
        assert blocked[8]["detail"] == "applies once XSA-2 does: the bot proposes what it needs"
    # One proposal, for XSA-2; none (and no draft marking it blocked) for XSA-8.
    assert [(p["branch"], p["draft"]) for p in first["proposals"]] == [("xsabot/4.19/xsa-2", False)]
    text_out = bot("status").out
    assert f"BLOCKED XSA-8 at {xenlike.shas['xsa8'][:12]}: waits-for XSA-2: {SCHED}" in text_out
    status = _json(bot, "status")
    assert (_blocked(status)[8]["reason"], _blocked(status)[8]["waits_for"]) == ("waits-for", [2])

    repo.repo.git.merge("xsabot/4.19/xsa-2")  # a volunteer merges XSA-2's proposal
    second = _json(bot, "reconcile")
    assert second["status"] == 0, second
    [branch] = second["branches"]
    assert branch["applied"] == [1, 2, 8] and branch["published"] is True
    merged = [(p["action"], p["branch"]) for p in second["proposals"]]
    assert merged == [("merged", "xsabot/4.19/xsa-2")]  # told once; nothing else to do


def test_an_xsa_waiting_for_a_declared_blocked_xsa_gets_no_draft_and_is_searched_again(
    repo_bot: tuple[Bot, RepoBuilder], xenlike: XenLike
) -> None:
    bot, repo = repo_bot
    s = xenlike.shas
    blocked_3 = {
        "xsa": 3,
        "commits": f"[{s['xsa3a']}, {s['xsa3b']}]",
        "status": "blocked",
        "why": "waiting for a manual backport",
    }
    # XSA-4 changes a line XSA-3 wrote.
    repo.commit("add\n", {"manifests/4.19.yaml": manifest(xenlike, blocked_3, (4, ["xsa4"]))})

    run = bot("reconcile")
    assert run.status == 1
    assert f"BLOCKED XSA-4 at {s['xsa4'][:12]}: waits-for XSA-3: xen/common/grant.c" in run.out
    assert "the fix needs XSA-3, blocked on this branch" in run.out
    assert "proposal" not in run.out  # no draft marks XSA-4 blocked
    again = _json(bot, "reconcile")  # nothing changed: nothing searched, the record says it
    assert again["branches"][0]["rebuilt"] is False
    assert _blocked(again)[4]["waits_for"] == [3] and again["proposals"] == []

    # XSA-3 changes (its manual backport is dropped, it is tried again): XSA-4 is searched
    # again with it, and both are published.
    repo.commit(
        "unblock 3\n",
        {"manifests/4.19.yaml": manifest(xenlike, (3, ["xsa3a", "xsa3b"]), (4, ["xsa4"]))},
    )
    done = _json(bot, "reconcile")
    assert done["status"] == 0, done
    assert done["branches"][0]["applied"] == [3, 4]


def bounded_upstream(path: Path, noise: int) -> tuple[str, str]:
    """An upstream where XSA-9's fix changes a line that only XSA-90 wrote (not in the
    manifest, so never a candidate), after `noise` unrelated commits to the same file: every
    one a candidate. Returns (the fix, the file). Written with `git fast-import`: hundreds of
    commits in a fraction of a second."""
    lines = [f"g line {i}" for i in range(1, 701)]
    commits = [("Initial import\n", list(lines))]
    lines[649] = "g check"
    commits.append(("g: the check\n\nThis is XSA-90.\n", list(lines)))
    for i in range(1, noise + 1):  # every third line: no two of them ever conflict
        lines[3 * i - 1] = f"g line {3 * i} tidied"
        commits.append((f"g: tidy {i}\n", list(lines)))
    lines[649] = "g check fixed"
    commits.append(("g: fix the check\n\nThis is XSA-9.\n", list(lines)))
    stream = io.BytesIO()
    for n, (message, content) in enumerate(commits, 1):
        who = f"{AUTHOR.name} <{AUTHOR.email}> {T0 + 3600 * n} +0000"
        body = "".join(f"{line}\n" for line in content).encode()
        stream.write(f"commit refs/heads/stable-4.19\nmark :{n}\nauthor {who}\n".encode())
        stream.write(f"committer {who}\ndata {len(message)}\n{message}".encode())
        stream.write(f"M 100644 inline xen/common/g.c\ndata {len(body)}\n".encode() + body)
    stream.write(b"reset refs/tags/RELEASE-4.19.0\nfrom :1\n")
    git.Repo.init(path, initial_branch="stable-4.19")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=stream.getvalue(), check=True)
    fix = git.Repo(path).rev_parse("stable-4.19").hexsha
    return fix, "xen/common/g.c"


def test_a_search_stopped_at_a_bound_says_so_and_drafts_nothing(
    repo_bot: tuple[Bot, RepoBuilder], tmp_path: Path
) -> None:
    bot, repo = repo_bot
    bot.upstream = tmp_path / "bounded"
    fix, path = bounded_upstream(bot.upstream, noise=201)
    text = (
        "tree: xen\nbase: RELEASE-4.19.0\nsource: stable-4.19\nbranch: xsa/4.19\n"
        f"xsas:\n  - xsa: 9\n    commits: [{fix}]\n"
    )
    repo.commit("add\n", {"manifests/4.19.yaml": text})

    data = _json(bot, "reconcile")
    assert data["status"] == 1
    blocked = _blocked(data)[9]
    assert (blocked["reason"], blocked["paths"]) == ("conflict", [path])
    assert blocked["detail"] == (
        "no prerequisite set found: the search stopped at the 200-candidate bound"
    )
    assert data["proposals"] == []  # not "no set exists": nothing marks XSA-9 blocked
    assert "stopped at the 200-candidate bound" in bot("status").out


def test_a_search_that_covered_every_candidate_drafts_the_xsa_blocked(
    repo_bot: tuple[Bot, RepoBuilder], tmp_path: Path
) -> None:
    bot, repo = repo_bot
    bot.upstream = tmp_path / "small"
    fix, _ = bounded_upstream(bot.upstream, noise=3)
    text = (
        "tree: xen\nbase: RELEASE-4.19.0\nsource: stable-4.19\nbranch: xsa/4.19\n"
        f"xsas:\n  - xsa: 9\n    commits: [{fix}]\n"
    )
    repo.commit("add\n", {"manifests/4.19.yaml": text})

    data = _json(bot, "reconcile")
    assert _blocked(data)[9]["detail"] == "no prerequisite set found among 3 candidates"
    [draft] = data["proposals"]
    assert (draft["branch"], draft["draft"]) == ("xsabot/4.19/xsa-9", True)


def test_a_proposal_found_with_earlier_sets_assumed_says_which_to_merge_first() -> None:
    finder = replace(finder_result(PRE_A), assumes=(467,))
    proposal = proposal_for(manifest_file(), build_result([470]).outcomes[-1], finder)
    assert proposal is not None
    assert (
        "The search took the bot's proposals for XSA-467 (opened in the same pass) as merged: "
        "merge it first." in proposal.body
    )
    alone = proposal_for(manifest_file(), build_result([470]).outcomes[-1], finder_result(PRE_A))
    assert alone is not None and "opened in the same pass" not in alone.body
