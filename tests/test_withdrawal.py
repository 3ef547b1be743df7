"""No silent withdrawal: what a published tip holds is a promise to downstreams.

A pass drops an XSA from a published branch only when the manifest says so or when the XSA's
changes are in the new base. Otherwise that branch keeps its tip, exit 1, and the report says
which XSA would be lost, why and where the manifest lists it; the other branches still publish.
A branch someone else moved is reported as such and left alone.

The repository checks (`lint --fetch`) stop four of the shapes before anything is built; a
published XSA whose entry they flag is reported as what publishing would withdraw, with the
finding as the reason. The build's own guard (`removals`) is what catches the rest, such as a
dropped prerequisite.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli.render import plan_markdown
from bot.core.publish import removals
from bot.core.record import BuildRecord, XsaRecord
from bot.core.reports import PassReport, report_json_schema
from bot.manifest.model import Manifest
from tests.conftest import Bot
from tests.gitrepo import XenLike, numbered
from tests.manifests import manifest


def _git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=Someone", "-c", "user.email=someone@example.org"]
    return subprocess.run(
        ["git", *identity, "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _tip(bot: Bot, branch: str) -> str:
    return _git(bot.mirror, "rev-parse", f"refs/heads/{branch}")


def _note(bot: Bot, commit: str) -> str:
    return _git(bot.mirror, "notes", "--ref", "xsabot", "show", commit)


def _reconcile(bot: Bot, *args: str) -> dict:
    run = bot("reconcile", "--json", *args)
    data = json.loads(run.out)
    data["status"] = run.status
    data["by"] = {b["manifest"]: b for b in data["branches"]}
    return data


def _xsa2(x: XenLike, *, prerequisite: bool = True) -> dict[str, object]:
    entry: dict[str, object] = {"xsa": 2}
    if prerequisite:
        entry["prerequisites"] = f"[{{commit: {x.shas['prereq']}, why: loop restructure}}]"
    entry["commits"] = f"[{x.shas['xsa2']}]"
    return entry


def _published(x: XenLike, *, xsa1: str | None = None, **kw: str) -> str:
    """XSA-1, XSA-2 (with its prerequisite) and XSA-3: all apply on RELEASE-4.19.0."""
    one = {"xsa": 1, "commits": f"[{xsa1 or x.shas['xsa1']}]"}
    return manifest(x, one, _xsa2(x), (3, ["xsa3a", "xsa3b"]), **kw)


def _valid(name: str, data: object) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(report_json_schema(name))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors, errors


def _line(text: str, xsa: int) -> int:
    """The 1-based line of the XSA's entry in a manifest text."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if f"- xsa: {xsa}" in line)


@pytest.fixture
def world(bot: Bot, xenlike: XenLike) -> dict[str, str]:
    """xsa/4.19 published with XSA-1, 2 and 3, and another manifest's branch beside it; the
    tips and the 4.19 record as published."""
    bot.write("4.19", _published(xenlike))
    bot.write("other", manifest(xenlike, (1, ["xsa1"]), branch="xsa/other"))
    first = _reconcile(bot)
    assert first["status"] == 0, first
    tip = _tip(bot, "xsa/4.19")
    return {"4.19": tip, "other": _tip(bot, "xsa/other"), "note": _note(bot, tip)}


def _with_other_moving(bot: Bot, x: XenLike) -> None:
    """The other manifest gains XSA-2 in the same pass: its branch must still publish."""
    bot.write("other", manifest(x, (1, ["xsa1"]), _xsa2(x), branch="xsa/other"))


def _typo(bot: Bot, x: XenLike) -> tuple[str, int, str]:
    sha = x.shas["xsa1"]
    typo = sha[:20] + ("0" if sha[20] != "0" else "1") + sha[21:]
    why = f"xsas[0].commits[0]: commit {typo[:12]} does not exist in the xen upstream"
    return _published(x, xsa1=typo), 1, why


def _off_source(bot: Bot, x: XenLike) -> tuple[str, int, str]:
    x.builder.branch("side", x.shas["release"])
    x.builder.checkout("side")
    side = x.builder.commit(
        "x86/mm: check the page type\n\nThis is XSA-1.\n",
        {"xen/arch/x86/mm.c": numbered("mm", 30, l3="mm line 3 checked")},
    )
    x.builder.checkout(x.source)
    why = f"xsas[0].commits[0]: {side[:12]} is not on `stable-4.19` after `RELEASE-4.19.0`"
    return _published(x, xsa1=side), 1, why


def _dropped_prerequisite(bot: Bot, x: XenLike) -> tuple[str, int, str]:
    text = manifest(x, (1, ["xsa1"]), _xsa2(x, prerequisite=False), (3, ["xsa3a", "xsa3b"]))
    return text, 2, "blocked (conflict in xen/common/sched.c)"


def _replaced_by_a_base_commit(bot: Bot, x: XenLike) -> tuple[str, int, str]:
    # "Already in the base" says the new commit is; XSA-1's real fix is not.
    why = "is already in the base `RELEASE-4.19.0` and does not say it is XSA-1"
    return _published(x, xsa1=x.shas["release"]), 1, why


def _rewound_source(bot: Bot, x: XenLike) -> tuple[str, int, str]:
    x.builder.repo.git.reset("--hard", x.shas["xsa2"])  # upstream drops XSA-3 from stable
    unrelated = {"xsa": 9, "status": "not-affected", "why": "arm only"}
    text = manifest(x, (1, ["xsa1"]), _xsa2(x), (3, ["xsa3a", "xsa3b"]), unrelated)
    why = f"xsas[2].commits[0]: {x.shas['xsa3a'][:12]} is not on `stable-4.19` after"
    return text, 3, why


SHAPES = [
    pytest.param(_typo, id="typo"),
    pytest.param(_off_source, id="commit-off-source"),
    pytest.param(_dropped_prerequisite, id="dropped-prerequisite"),
    pytest.param(_replaced_by_a_base_commit, id="fix-replaced-by-a-base-commit"),
    pytest.param(_rewound_source, id="rewound-source"),
]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_build_that_would_withdraw_a_published_xsa_keeps_the_branch(
    bot: Bot,
    xenlike: XenLike,
    world: dict[str, str],
    shape: Callable[[Bot, XenLike], tuple[str, int, str]],
) -> None:
    text, xsa, why = shape(bot, xenlike)
    path = bot.write("4.19", text)
    _with_other_moving(bot, xenlike)
    data = _reconcile(bot)

    assert data["status"] == 1
    kept = data["by"]["4.19"]
    assert (kept["action"], kept["published"], kept["tip"]) == ("kept", False, world["4.19"])
    [withdrawn] = kept["would_withdraw"]
    assert withdrawn["xsa"] == xsa and why in withdrawn["why"], withdrawn
    assert withdrawn["where"].endswith(f"{path.name}:{_line(text, xsa)}")
    # The branch and its record are as published: no ref update, no new note.
    assert _tip(bot, "xsa/4.19") == world["4.19"]
    assert _note(bot, world["4.19"]) == world["note"]
    # The other manifest's branch published in the same pass.
    other = data["by"]["other"]
    assert (other["action"], other["published"]) == ("fast-forward", True)
    assert _tip(bot, "xsa/other") == other["tip"] != world["other"]

    _valid("reconcile", {k: v for k, v in data.items() if k not in ("status", "by")})

    # Every later pass says the same, in words, until the manifest is fixed.
    run = bot("reconcile")
    assert run.status == 1
    assert f"4.19: kept xsa/4.19 at {world['4.19'][:12]}" in run.out
    assert f"WOULD WITHDRAW XSA-{xsa} ({withdrawn['where']}): " in run.out
    assert _tip(bot, "xsa/4.19") == world["4.19"]


def test_a_plan_says_the_branch_would_be_kept(
    bot: Bot, xenlike: XenLike, world: dict[str, str]
) -> None:
    text, _, _ = _typo(bot, xenlike)
    bot.write("4.19", text)
    plan = bot("plan")
    assert plan.status == 1
    assert "4.19: would keep xsa/4.19" in plan.out
    assert "would withdraw XSA-1, which the manifest still lists" in plan.out
    planned = json.loads(bot("plan", "--json").out)
    assert [b["action"] for b in planned["branches"]] == ["kept", "none"]
    _valid("plan", planned)
    assert "- would withdraw: XSA-1 (`" in plan_markdown(
        PassReport.model_validate({k: v for k, v in planned.items() if k != "ok"})
    )


# -- what the manifest or the base allows ----------------------------------------------------


def test_removal_by_the_manifest_is_published_and_named_in_the_pseudo_merge(
    bot: Bot, xenlike: XenLike, world: dict[str, str]
) -> None:
    not_affected = {"xsa": 3, "status": "not-affected", "why": "arm only"}
    bot.write("4.19", manifest(xenlike, _xsa2(xenlike), not_affected))
    data = _reconcile(bot)
    assert data["status"] == 0, data
    report = data["by"]["4.19"]
    assert report["action"] == "pseudo-merge" and report["published"] is True
    expected = [
        "removed: XSA-1 (removed from the manifest)",
        "removed: XSA-3 (declared not-affected in the manifest, why: arm only)",
    ]
    assert report["changes"] == expected
    message = _git(bot.mirror, "log", "-1", "--format=%B", _tip(bot, "xsa/4.19"))
    for line in expected:
        assert f"- {line}\n" in message


def _release_with_xsa1(x: XenLike, *, then_touch_it: bool) -> str:
    """RELEASE-4.19.1: the release line with XSA-1's change picked (same patch-id as on
    stable), and maybe a later edit of the same line (so XSA-1's own commit conflicts)."""
    b = x.builder
    b.checkout("release-4.19")
    picked = b.commit(
        "x86/mm: check the page type\n\nThis is XSA-1.\n",
        {"xen/arch/x86/mm.c": numbered("mm", 30, l3="mm line 3 checked")},
    )
    if then_touch_it:
        b.commit(
            "x86/mm: check the page type harder\n",
            {"xen/arch/x86/mm.c": numbered("mm", 30, l3="mm line 3 checked twice")},
        )
    b.tag("RELEASE-4.19.1")
    b.checkout(x.source)
    return picked


def test_a_fix_relisted_as_the_base_commit_holding_it_is_dropped_as_in_the_base(
    bot: Bot, xenlike: XenLike, world: dict[str, str]
) -> None:
    picked = _release_with_xsa1(xenlike, then_touch_it=False)
    bot.write("4.19", _published(xenlike, xsa1=picked, base="RELEASE-4.19.1"))
    data = _reconcile(bot)
    assert data["status"] == 0, data
    report = data["by"]["4.19"]
    assert (report["action"], report["already_applied"]) == ("pseudo-merge", [1])
    line = "XSA-1: now in the base RELEASE-4.19.1, patch-ids found"
    assert line in report["changes"]
    assert f"- {line}\n" in _git(bot.mirror, "log", "-1", "--format=%B", report["tip"])


def test_a_base_holding_the_fix_lets_a_pass_publish_without_its_commit(
    bot: Bot, xenlike: XenLike, world: dict[str, str]
) -> None:
    _release_with_xsa1(xenlike, then_touch_it=True)
    bot.write("4.19", _published(xenlike, base="RELEASE-4.19.1"))
    data = _reconcile(bot)
    report = data["by"]["4.19"]
    assert report["action"] == "pseudo-merge" and report["published"] is True
    assert [b["xsa"] for b in report["blocked"]] == [1]  # still said: the entry needs an edit
    assert data["status"] == 1
    line = "removed: XSA-1 (now in the base RELEASE-4.19.1, patch-ids found)"
    assert line in report["changes"]
    assert f"- {line}\n" in _git(bot.mirror, "log", "-1", "--format=%B", report["tip"])


# -- a branch someone else moved --------------------------------------------------------------


def test_a_human_push_is_reported_and_left_alone(
    bot: Bot, xenlike: XenLike, world: dict[str, str]
) -> None:
    old = world["4.19"]
    pushed = _git(bot.mirror, "commit-tree", f"{old}^{{tree}}", "-p", old, "-m", "hotfix")
    _git(bot.mirror, "update-ref", "refs/heads/xsa/4.19", pushed)
    bot.write("4.19", _published(xenlike) + "  - xsa: 9\n    status: blocked\n    why: later\n")
    _with_other_moving(bot, xenlike)
    data = _reconcile(bot)

    assert data["status"] == 1
    report = data["by"]["4.19"]
    assert (report["action"], report["tip"], report["published"]) == ("kept", pushed, False)
    [problem] = report["problems"]
    assert problem.startswith(f"xsa/4.19 was moved by someone else to {pushed} ")
    assert f"the bot's last tip with a record: {old}" in problem
    assert "not overwritten" in problem and f"reset xsa/4.19 in the mirror to {old}" in problem
    assert "unreadable" not in problem
    assert _tip(bot, "xsa/4.19") == pushed
    assert data["by"]["other"]["published"] is True
    _valid("reconcile", {k: v for k, v in data.items() if k not in ("status", "by")})
    status = bot("status", "--json")
    assert status.status == 1
    [branch] = [b for b in json.loads(status.out)["branches"] if b["manifest"] == "4.19"]
    assert branch["problems"] == [problem]

    # The operator resets the branch to the bot's last tip: the next pass goes on from there.
    _git(bot.mirror, "update-ref", "refs/heads/xsa/4.19", old)
    again = _reconcile(bot)
    assert again["status"] == 0, again
    report = again["by"]["4.19"]
    assert (report["action"], report["rebuilt"], report["not_applied"]) == ("none", True, [9])
    assert _note(bot, old) != world["note"]  # the same commits, the new record


def test_a_branch_reset_elsewhere_says_no_tip_of_the_bot_was_found(
    bot: Bot, xenlike: XenLike, world: dict[str, str]
) -> None:
    _git(bot.mirror, "update-ref", "refs/heads/xsa/4.19", xenlike.shas["release"])
    run = bot("reconcile")
    assert run.status == 1
    assert f"xsa/4.19 was moved by someone else to {xenlike.shas['release']}" in run.out
    assert "(the bot's last tip with a record: none found within 1000 commits" in run.out
    assert "To go on, delete xsa/4.19 in the mirror" in run.out
    assert _tip(bot, "xsa/4.19") == xenlike.shas["release"]


def test_a_mirror_without_build_records_says_so_and_overwrites_nothing(
    bot: Bot, xenlike: XenLike, world: dict[str, str]
) -> None:
    _git(bot.mirror, "update-ref", "-d", "refs/notes/xsabot")
    run = bot("reconcile")
    assert run.status == 1
    assert "xsa/4.19 at " in run.out and "the mirror has no refs/notes/xsabot" in run.out
    assert "unreadable" not in run.out
    assert _tip(bot, "xsa/4.19") == world["4.19"]
    assert _tip(bot, "xsa/other") == world["other"]


def test_an_unreadable_record_still_rebuilds(
    bot: Bot, xenlike: XenLike, world: dict[str, str]
) -> None:
    """A note there but unreadable is not a move by someone else: rebuilt, and said why."""
    tip = world["4.19"]
    _git(bot.mirror, "notes", "--ref", "xsabot", "add", "-f", "-m", "{", tip)
    data = _reconcile(bot)
    report = data["by"]["4.19"]
    assert data["status"] == 0 and report["rebuilt"] is True
    assert report["changes"][0].startswith("previous build record unreadable (")


# -- the decision itself ----------------------------------------------------------------------


def _record(*xsas: XsaRecord, base: str = "RELEASE-4.19.0") -> BuildRecord:
    return BuildRecord(
        manifest="4.19",
        branch="xsa/4.19",
        inputs="i",
        base=base,
        base_commit="c",
        build="b",
        xsas=xsas,
    )


def test_removals_sort_what_a_build_drops() -> None:
    c = "1" * 40
    old = _record(*(XsaRecord(xsa=n, state="applied", commits=(c,)) for n in (1, 2, 3, 4, 5)))
    new = _record(
        XsaRecord(xsa=2, state="not-affected"),
        XsaRecord(xsa=3, state="blocked", reason="conflict", paths=("a.c",)),
        XsaRecord(xsa=4, state="blocked", reason="bad-source", detail="gone\nmore"),
        XsaRecord(xsa=5, state="applied", commits=(c,)),
        base="RELEASE-4.19.1",
    )
    m = Manifest.model_validate(
        {
            "base": "RELEASE-4.19.1",
            "source": "stable-4.19",
            "branch": "xsa/4.19",
            "xsas": [
                {"xsa": 2, "status": "not-affected", "why": "arm\n only"},
                {"xsa": 3, "commits": [c]},
                {"xsa": 4, "commits": [c]},
                {"xsa": 5, "commits": [c]},
            ],
        }
    )
    asked: list[int] = []

    def in_base(x: XsaRecord) -> bool:
        asked.append(x.xsa)
        return x.xsa == 3

    allowed, withdrawn = removals(old, new, m, in_base)
    assert [(r.xsa, r.why) for r in allowed] == [
        (1, "removed from the manifest"),
        (2, "declared not-affected in the manifest, why: arm only"),
        (3, "now in the base RELEASE-4.19.1, patch-ids found"),
    ]
    assert [(w.xsa, w.why) for w in withdrawn] == [
        (4, "the new build has it blocked (bad-source): gone")
    ]
    assert asked == [3, 4]  # only what the manifest still wants is looked for in the base
