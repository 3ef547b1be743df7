"""What a downstream sees, with plain git: README's recipe (fetch, pull --ff-only, clone)
against a mirror the bot publishes to, one changelog line per publish, readable build
records, and `xsabot verify`."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shlex
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from bot.core.publish import Removal, pseudo_merge_message, subject
from bot.core.record import BuildRecord, XsaRecord, note_json
from tests.conftest import Bot
from tests.gitrepo import XenLike
from tests.manifests import manifest

ROOT = Path(__file__).resolve().parent.parent


def _git(repo: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Plain git, as a downstream runs it (identity set: `git pull` may want one)."""
    identity = ["-c", "user.name=downstream", "-c", "user.email=downstream@example.org"]
    return subprocess.run(
        ["git", *identity, "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        input=input,
    )


def _out(repo: Path, *args: str) -> str:
    return _git(repo, *args).stdout.strip()


def _publish(bot: Bot, text: str, action: str) -> dict:
    bot.write("4.19", text)
    run = bot("reconcile", "--json")
    [branch] = [b for b in json.loads(run.out)["branches"] if b["branch"] == "xsa/4.19"]
    assert (branch["action"], branch["published"]) == (action, True), run.err
    return branch


def _recipe(mirror: Path, down: Path) -> None:
    """README's downstream recipe as written there (its first code block), up to the switch
    to a local branch, with the mirror for `<mirror URL>`."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## For downstreams\n", 1)[1].split("```\n", 2)[1]
    commands = [line.split("  #")[0].strip() for line in block.splitlines()]
    _git(down.parent, "init", "-q", str(down))
    for command in commands:
        if command.startswith(("git log", "git pull")):
            continue
        argv = shlex.split(command.replace("<mirror URL>", str(mirror)))
        assert argv[0] == "git", command
        _git(down, *argv[1:])
    assert any(c.startswith("git switch") for c in commands)


def test_recipe_fetches_and_fast_forwards_through_every_kind_of_publish(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    created = _publish(bot, manifest(xenlike, (1, ["xsa1"])), "create")
    down = tmp_path / "downstream"
    _recipe(bot.mirror, down)
    assert _out(down, "rev-parse", "HEAD") == created["tip"]

    steps = [
        # (manifest, action, the new first-parent subjects, newest first)
        (manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])), "fast-forward",
         ["grant: part two", "grant: part one"]),  # picks keep their upstream subjects
        (manifest(xenlike, (3, ["xsa3a", "xsa3b"])), "pseudo-merge",
         ["xsa/4.19: remove XSA-1 (manifest)"]),
        (manifest(xenlike, (3, ["xsa3a", "xsa3b"]), (4, ["xsa4"])), "pseudo-merge",
         ["xsa/4.19: add XSA-4"]),
    ]  # fmt: skip
    for text, action, subjects in steps:
        before = _out(down, "rev-parse", "HEAD")
        published = _publish(bot, text, action)
        _git(down, "fetch")  # plain: the remote and its refspecs come from the config
        _git(down, "pull", "--ff-only")
        assert _out(down, "rev-parse", "HEAD") == published["tip"]
        new = _out(down, "log", "--first-parent", "--format=%s", f"{before}..HEAD").splitlines()
        assert new == subjects
        # One remote-tracking branch per published branch: no `xsa/xsa/4.19`.
        refs = _out(down, "for-each-ref", "--format=%(refname)", "refs/remotes")
        assert refs.splitlines() == ["refs/remotes/xsa/4.19"]
        # The build record comes with it, and `git log` shows its summary (notes.displayRef).
        shown = _out(down, "log", "-1")
        held = ", ".join(f"XSA-{n}" for n in published["applied"])
        count = len(published["applied"])
        assert f"Notes (xsabot):\n    xsa/4.19: RELEASE-4.19.0 + {count} XSA" in shown
        assert f"\n      held: {held}\n" in shown

    pseudo = _out(down, "log", "-1", "--format=%B")
    assert pseudo.splitlines()[2] == "- added: XSA-4"  # the details in the body
    assert _out(down, "rev-parse", "HEAD^2") == published["build"]


def test_clone_checks_out_the_newest_line_without_a_warning(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    bot.write("4.9", manifest(xenlike, (1, ["xsa1"]), branch="xsa/4.9"))
    bot.write("4.19", manifest(xenlike, (3, ["xsa3a", "xsa3b"])))
    assert bot("reconcile").status == 0
    assert _out(bot.mirror, "symbolic-ref", "HEAD") == "refs/heads/xsa/4.19"  # 19 > 9

    clone = _git(tmp_path, "clone", str(bot.mirror), "clone")
    assert "warning" not in clone.stderr.lower()
    down = tmp_path / "clone"
    assert _out(down, "symbolic-ref", "--short", "HEAD") == "xsa/4.19"
    assert _out(down, "rev-parse", "HEAD") == _out(bot.mirror, "rev-parse", "xsa/4.19")
    _git(down, "pull", "--ff-only")


def test_a_note_starts_with_the_summary_and_old_json_notes_still_read(
    bot: Bot, xenlike: XenLike
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"]), (5, ["xsa5"])))
    assert bot("reconcile").status == 1  # XSA-2 is blocked
    tip = _out(bot.mirror, "rev-parse", "xsa/4.19")
    note = _out(bot.mirror, "notes", "--ref", "xsabot", "show", tip)
    head = note.split("\n\n")[0].splitlines()
    record = json.loads(note_json(note) or "")["records"]["xsa/4.19"]
    assert head == [
        "xsa/4.19: RELEASE-4.19.0 + 1 XSA, 1 blocked (manifest 4.19)",
        "  held: XSA-1",
        "  in the base already: XSA-5",
        "  blocked: XSA-2 (conflict in xen/common/sched.c)",
        f"  inputs {record['inputs'][:12]}, build {tip[:12]}",
    ]

    # A mirror written before the summary existed: its notes are the JSON alone.
    _git(
        bot.mirror,
        "notes",
        "--ref",
        "xsabot",
        "add",
        "-f",
        "-F",
        "-",
        tip,
        input=note_json(note),
    )
    status = json.loads(bot("status", "--json").out)["branches"][0]
    assert (status["applied"], status["problems"]) == ([1], [])
    again = json.loads(bot("reconcile", "--json").out)["branches"][0]
    assert (again["action"], again["rebuilt"]) == ("none", False)  # the digest read from it


# -- xsabot verify ------------------------------------------------------------------------


def _verify(bot: Bot, *args: str) -> tuple[int, list[str]]:
    run = bot("verify", *args)
    return run.status, run.out.splitlines()


def test_verify_says_verified_for_a_created_and_a_pseudo_merged_branch(
    bot: Bot, xenlike: XenLike, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))
    assert bot("reconcile").status == 0
    status, out = _verify(bot, str(path))
    assert status == 0 and out[0].startswith("xsa/4.19: verified: the tip is the rebuilt tip ")

    _publish(bot, manifest(xenlike, (3, ["xsa3a", "xsa3b"])), "pseudo-merge")
    # From the record alone, on a machine that has only a clone of the upstream and the
    # mirror as a remote: a fresh state, the mirror named by its remote.
    down = tmp_path / "down"
    _git(tmp_path, "clone", "-q", "-o", "xsa", str(bot.mirror), str(down))
    monkeypatch.chdir(down)
    run = bot("verify", "--branch", "xsa/4.19", "--mirror", "xsa", state=tmp_path / "fresh")
    assert run.status == 0, run.out + run.err
    assert "verified: the tip is a pseudo-merge of the rebuilt tip" in run.out


def test_verify_names_what_differs_when_a_commit_was_pushed_on_the_tip(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    assert bot("reconcile").status == 0
    down = tmp_path / "down"
    _git(tmp_path, "clone", "-q", str(bot.mirror), str(down))
    (down / "xen/common/sched.c").write_text("backdoor\n")
    _git(down, "commit", "-q", "-am", "sched: harmless cleanup")
    _git(down, "push", "-q", "origin", "HEAD:refs/heads/xsa/4.19")

    status, out = _verify(bot, str(path))
    assert status == 1
    assert out[0] == "xsa/4.19: note: the tip has no build record of the branch"
    assert out[1] == f"xsa/4.19: DIFFERS from its rebuild (manifest {path})"
    assert "  - the tip's tree differs from the rebuilt tree in 1 path: xen/common/sched.c" in out
    assert "  - the published build has 2 commits after the base, the rebuild 1" in out
    pushed = _out(down, "rev-parse", "--short=12", "HEAD")
    assert f"  - published only: {pushed} (sched: harmless cleanup)" in out


def test_verify_names_what_differs_when_the_tip_was_moved_back(bot: Bot, xenlike: XenLike) -> None:
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))
    assert bot("reconcile").status == 0
    tip = _out(bot.mirror, "rev-parse", "xsa/4.19")
    _git(bot.mirror, "update-ref", "refs/heads/xsa/4.19", f"{tip}~1")

    status, out = _verify(bot, str(path))
    assert status == 1
    assert "  - the tip's tree differs from the rebuilt tree in 1 path: xen/common/grant.c" in out
    assert f"  - rebuilt only: {tip[:12]} (grant: part two)" in out


def test_verify_names_a_manifest_other_than_the_published_one(bot: Bot, xenlike: XenLike) -> None:
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    assert bot("reconcile").status == 0
    bot.write("4.19", manifest(xenlike, (3, ["xsa3a", "xsa3b"])))  # not published yet
    status, out = _verify(bot, str(path))
    assert status == 1
    assert any(line.startswith("  - commit 1 after the base: published ") for line in out)
    assert any(line.startswith("  - the build record names the build ") for line in out)


def test_verify_rebuilds_with_the_committer_of_the_published_build(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    config = tmp_path / "xsabot.yaml"
    config.write_text("identity: {name: Operator, email: operator@example.org}\n")
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    assert bot("reconcile", "--config", str(config)).status == 0
    status, out = _verify(bot, str(path))  # the default identity here: xsabot
    assert status == 0, out
    assert (
        out[0]
        == "xsa/4.19: note: committer Operator <operator@example.org>, as the published build's"
    )
    assert out[1].startswith("xsa/4.19: verified: the tip is the rebuilt tip ")


def test_a_new_base_that_holds_an_xsa_says_so_in_the_subject(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    _publish(bot, manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])), "create")
    # The next point release carries XSA-1's change (its own commit, the same patch).
    xenlike.builder.checkout("release-4.19")
    mm = _out(xenlike.path, "show", f"{xenlike.shas['xsa1']}:xen/arch/x86/mm.c")
    xenlike.builder.commit("Xen 4.19.1\n", {"xen/arch/x86/mm.c": mm + "\n"})
    xenlike.builder.tag("RELEASE-4.19.1")
    text = manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"]), base="RELEASE-4.19.1")
    published = _publish(bot, text, "pseudo-merge")
    assert published["already_applied"] == [1]
    subject = _out(bot.mirror, "log", "-1", "--format=%s", "xsa/4.19")
    assert subject == "xsa/4.19: base RELEASE-4.19.0 -> RELEASE-4.19.1 (XSA-1 now in the base)"


def test_status_is_a_table_on_a_terminal_and_lines_when_piped(bot: Bot, xenlike: XenLike) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"]), (5, ["xsa5"])))
    bot("reconcile")
    argv = [
        sys.executable,
        "-m",
        "bot",
        "status",
        *("--manifests", str(bot.manifests), "--state", str(bot.state)),
        *("--upstream", f"xen={bot.upstream}", "--mirror", f"xen={bot.mirror}"),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", "NO_COLOR": "1"}
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))  # 160 columns
    proc = subprocess.Popen(argv, stdout=child, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=60) == 1  # XSA-2 is blocked
    table = b"".join(chunks).decode()
    rows = [line for line in table.splitlines() if "xsa/4.19" in line]
    assert len(rows) == 1, table
    cells = [cell.strip() for cell in re.split(r"[│┃|]", rows[0]) if cell.strip()]
    tip = _out(bot.mirror, "rev-parse", "xsa/4.19")
    blocked = "XSA-2: conflict in xen/common/sched.c"
    assert cells == ["xsa/4.19", "RELEASE-4.19.0", tip[:12], "XSA-1", blocked, "4.19"]
    assert "in the base: XSA-5" in table

    piped = bot("status")  # captured: not a terminal
    assert piped.out.splitlines()[0].startswith("4.19: xsa/4.19 at ")
    assert "│" not in piped.out


# -- the subject of each kind of change, from the records alone -----------------------------


def _rec(*xsas: XsaRecord, base: str = "RELEASE-4.19.0", base_commit: str = "c") -> BuildRecord:
    return BuildRecord(
        manifest="4.19",
        branch="xsa/4.19",
        inputs="i",
        base=base,
        base_commit=base_commit,
        build="b",
        xsas=xsas,
    )


def _x(n: int, commit: str = "1", state: str = "applied", prereqs: str = "") -> XsaRecord:
    return XsaRecord(
        xsa=n, state=state, commits=(commit * 40,), prerequisites=tuple(p * 40 for p in prereqs)
    )


@pytest.mark.parametrize(
    ("new", "removed", "expected"),
    [
        pytest.param(_rec(_x(1), _x(2), _x(3)), [], "add XSA-3", id="add"),
        pytest.param(
            _rec(_x(2)),
            [Removal(1, "declared not-affected in the manifest, why: arm only")],
            "remove XSA-1 (not-affected)",
            id="declared",
        ),
        pytest.param(_rec(_x(1, "9"), _x(2)), [], "revise XSA-1", id="revise"),
        pytest.param(_rec(_x(1), _x(2, prereqs="7")), [], "prerequisites of XSA-2", id="prereq"),
        pytest.param(_rec(_x(2), _x(1)), [], "reorder XSAs", id="reorder"),
        pytest.param(
            _rec(_x(1), _x(2), base_commit="d"), [], "base RELEASE-4.19.0 moved", id="tag-moved"
        ),
        pytest.param(
            _rec(_x(2), _x(4), base="RELEASE-4.19.1", base_commit="d"),
            [Removal(1, "now in the base RELEASE-4.19.1, patch-ids found")],
            "base RELEASE-4.19.0 -> RELEASE-4.19.1 (XSA-1 now in the base); add XSA-4",
            id="base-and-add",
        ),
        pytest.param(_rec(_x(1), _x(2)), [], "rebuild with the same XSAs", id="same"),
    ],
)
def test_each_kind_of_change_has_its_subject(
    new: BuildRecord, removed: list[Removal], expected: str
) -> None:
    old = _rec(_x(1), _x(2))
    assert subject("xsa/4.19", old, new, removed) == f"xsa/4.19: {expected}"
    message = pseudo_merge_message("xsa/4.19", "b" * 40, old, new, removed)
    assert message.startswith(f"xsa/4.19: {expected}\n\n- ")
    assert subject("xsa/4.19", None, new) == (
        "xsa/4.19: rebuild from the manifest (previous build record unreadable)"
    )


def test_verify_refuses_what_it_cannot_verify_with_exit_2(
    bot: Bot, xenlike: XenLike, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    assert bot("reconcile").status == 0
    monkeypatch.chdir(tmp_path)  # not a git repository: no remote of that name
    run = bot("verify", "--branch", "xsa/4.19", "--mirror", "nosuchremote")
    assert run.status == 2
    assert "--mirror nosuchremote: no such directory, and not a remote" in run.err
    neither = bot("verify")
    assert (neither.status, neither.err.strip()) == (
        2,
        "xsabot verify: give a manifest (a path) or --branch BRANCH",
    )
    unknown = bot("verify", "--branch", "xsa/4.18")
    assert unknown.status == 2 and "xsa/4.18 is not published in the mirror" in unknown.err
