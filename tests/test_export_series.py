"""`xsabot export`: a branch as a quilt patch series that gives, applied with `patch -p1` or
quilt onto the base's release tree, exactly the branch's tree."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Bot
from tests.gitrepo import XenLike
from tests.manifests import manifest


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _manifest(x: XenLike) -> str:
    prereq = f"[{{commit: {x.shas['prereq']}, why: sched restructure}}]"
    return manifest(
        x,
        (1, ["xsa1"]),
        {"xsa": 2, "prerequisites": prereq, "commits": f"[{x.shas['xsa2']}]"},
        (3, ["xsa3a", "xsa3b"]),
        (5, ["xsa5"]),  # already in the base: a commit that changes nothing, so no patch
    )


def _release(repo: Path, ref: str, dest: Path) -> Path:
    """The release tarball of `ref`, unpacked: what a distribution starts from."""
    data = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", f"--prefix={dest.name}/", ref],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(dest.parent, filter="tar")
    return dest


def _series(directory: Path) -> list[str]:
    text = (directory / "series").read_text().splitlines()
    return [line for line in text if line and not line.startswith("#")]


def _tree_of_files(directory: Path) -> str:
    """The git tree ID of a directory's files, to compare with a branch's tree exactly."""
    _git(directory, "init", "-q")
    _git(directory, "add", "-A", ".")
    return _git(directory, "write-tree")


def _publish(bot: Bot, text: str) -> str:
    bot.write("4.19", text)
    run = bot("reconcile")
    assert run.status == 0, run.out + run.err
    return _git(bot.mirror, "rev-parse", "xsa/4.19")


def test_a_published_branch_applies_with_patch_onto_the_release_tree(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    tip = _publish(bot, _manifest(xenlike))
    run = bot("export", "--branch", "xsa/4.19", "--series", str(tmp_path / "series"))
    assert run.status == 0, run.err
    names = _series(tmp_path / "series")
    assert names == [
        "0001-xsa-1-x86-mm-check-the-page-type.patch",
        "0002-xsa-2-prereq-sched-restructure-the-credit-loop.patch",
        "0003-xsa-2-sched-fix-the-loop-bound.patch",
        "0004-xsa-3-grant-part-one.patch",
        "0005-xsa-3-grant-part-two.patch",
    ]
    assert sorted(p.name for p in (tmp_path / "series").iterdir()) == sorted([*names, "series"])
    tree = _release(xenlike.path, xenlike.base_tag, tmp_path / "xen-4.19.0")
    for name in names:
        patch = (tmp_path / "series" / name).read_bytes()
        done = subprocess.run(
            ["patch", "-p1", "--batch", "--forward", "--silent"], cwd=tree, input=patch
        )
        assert done.returncode == 0, name
    assert not list(tree.rglob("*.orig")) and not list(tree.rglob("*.rej"))
    assert _tree_of_files(tree) == _git(bot.mirror, "rev-parse", f"{tip}^{{tree}}")


def test_a_pseudo_merged_branch_exports_its_new_build(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    _publish(bot, _manifest(xenlike))
    # Remove XSA-1: the branch moves by a pseudo-merge; the series is of the new build.
    tip = _publish(bot, manifest(xenlike, (3, ["xsa3a", "xsa3b"])))
    assert len(_git(bot.mirror, "log", "-1", "--format=%P", tip).split()) == 2
    run = bot("export", "--branch", "xsa/4.19", "--series", str(tmp_path / "s"))
    assert run.status == 0, run.err
    names = _series(tmp_path / "s")
    assert names == ["0001-xsa-3-grant-part-one.patch", "0002-xsa-3-grant-part-two.patch"]
    tree = _release(xenlike.path, xenlike.base_tag, tmp_path / "xen")
    for name in names:
        subprocess.run(
            ["patch", "-p1", "--batch", "-s", "-i", str(tmp_path / "s" / name)],
            cwd=tree,
            check=True,
        )
    assert _tree_of_files(tree) == _git(bot.mirror, "rev-parse", f"{tip}^{{tree}}")


@pytest.mark.skipif(shutil.which("quilt") is None, reason="quilt is not installed")
def test_the_series_applies_with_quilt(bot: Bot, xenlike: XenLike, tmp_path: Path) -> None:
    tip = _publish(bot, _manifest(xenlike))
    tree = _release(xenlike.path, xenlike.base_tag, tmp_path / "xen-4.19.0")
    assert bot("export", "--branch", "xsa/4.19", "--series", str(tree / "patches")).status == 0
    done = subprocess.run(["quilt", "push", "-a", "-q"], cwd=tree, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    shutil.rmtree(tree / "patches")
    shutil.rmtree(tree / ".pc")
    assert _tree_of_files(tree) == _git(bot.mirror, "rev-parse", f"{tip}^{{tree}}")


def test_a_manifest_exports_the_same_series_as_its_published_branch(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    _publish(bot, _manifest(xenlike))
    assert bot("export", "--branch", "xsa/4.19", "--series", str(tmp_path / "a")).status == 0
    path = str(bot.manifests / "4.19.yaml")
    assert bot("export", path, "--series", str(tmp_path / "b")).status == 0
    for name in ["series", *_series(tmp_path / "a")]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_export_refuses_a_directory_with_files_and_a_branch_not_published(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    _publish(bot, _manifest(xenlike))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.patch").write_text("x\n")
    run = bot("export", "--branch", "xsa/4.19", "--series", str(tmp_path / "full"))
    assert run.status == 2 and "not an empty directory" in run.err
    assert (tmp_path / "full" / "old.patch").read_text() == "x\n"
    run = bot("export", "--branch", "xsa/4.20", "--series", str(tmp_path / "new"))
    assert run.status == 2 and "no branch 'xsa/4.20'" in run.err
    run = bot("export", "--series", str(tmp_path / "new"))
    assert run.status == 2 and "give a MANIFEST or --branch" in run.err
