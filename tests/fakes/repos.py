"""The manifests repository's git side for forge tests: local bare repositories in tmp_path."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.gitrepo import RepoBuilder

MANIFEST = "manifests/xen-4.19.yaml"
MANIFEST_TEXT = "tree: xen\nbase: RELEASE-4.19.0\nsource: stable-4.19\nbranch: xsa/4.19\nxsas: []\n"


def run_git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def bare_manifests_repo(tmp_path: Path, name: str = "upstream") -> Path:
    """A bare repository on `main` holding one manifest, like a freshly set up project."""
    work = RepoBuilder(tmp_path / f"{name}-work")
    work.commit("Add the 4.19 manifest\n", {MANIFEST: MANIFEST_TEXT, "README": "manifests\n"})
    work.repo.git.branch("-M", "main")
    bare = tmp_path / f"{name}.git"
    run_git("clone", "--quiet", "--bare", str(work.path), str(bare))
    return bare


def fork_of(bare: Path, tmp_path: Path, name: str = "fork") -> Path:
    fork = tmp_path / f"{name}.git"
    run_git("clone", "--quiet", "--bare", str(bare), str(fork))
    return fork


def tip(bare: Path, branch: str) -> str | None:
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
        cwd=bare,
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() or None


def show(bare: Path, rev: str, path: str) -> str:
    return run_git("show", f"{rev}:{path}", cwd=bare) + "\n"


def push_as_human(bare: Path, branch: str, tmp_path: Path) -> str:
    """A volunteer pushes a commit of their own onto `branch` (e.g. a manual backport)."""
    work = tmp_path / "human"
    run_git("clone", "--quiet", "--branch", branch, str(bare), str(work))
    (work / "manifests" / "backport.patch").write_text("a manual backport\n")
    run_git("add", ".", cwd=work)
    run_git(
        "-c",
        "user.name=A Volunteer",
        "-c",
        "user.email=volunteer@example.org",
        "commit",
        "--quiet",
        "-m",
        "Manual backport",
        cwd=work,
    )
    run_git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
    return run_git("rev-parse", "HEAD", cwd=work)
