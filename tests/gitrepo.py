"""Real git repositories for tests, built with GitPython with fixed identities and dates.

`RepoBuilder` makes commits from {path: content} dicts; `make_xenlike` builds an upstream with
the shapes of Xen history (a release tag, a stable branch with XSA commits and other backports).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import git

AUTHOR = git.Actor("Jan Beulich", "jbeulich@suse.com")
COMMITTER = git.Actor("Andrew Cooper", "andrew.cooper3@citrix.com")
T0 = 1_700_000_000


class RepoBuilder:
    """A non-bare repository on `master` that tests grow commit by commit."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.repo = git.Repo.init(path, initial_branch="master")
        with self.repo.config_writer() as cw:
            cw.set_value("user", "name", COMMITTER.name)
            cw.set_value("user", "email", COMMITTER.email)
            cw.set_value("commit", "gpgsign", "false")
        self._clock = T0

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        """Write (or with None delete) files, commit them, return the new commit ID."""
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                self.repo.index.remove([rel], working_tree=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            self.repo.index.add([rel])
        self._clock += 3600
        date = f"{self._clock} +0000"
        commit = self.repo.index.commit(
            message,
            author=AUTHOR,
            committer=COMMITTER,
            author_date=date,
            commit_date=date,
        )
        return commit.hexsha

    def tag(self, name: str, ref: str = "HEAD") -> None:
        self.repo.create_tag(name, ref=ref)

    def branch(self, name: str, start: str = "HEAD") -> None:
        self.repo.create_head(name, start)

    def checkout(self, name: str) -> None:
        self.repo.git.checkout(name)

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def rev(self, ref: str) -> str:
        return self.repo.rev_parse(ref).hexsha


def lines(*items: str) -> str:
    return "".join(f"{item}\n" for item in items)


def numbered(prefix: str, count: int, **changed: str) -> str:
    """A file of `count` numbered lines; `changed` replaces lines by key `l<N>`."""
    return lines(*(changed.get(f"l{i}", f"{prefix} line {i}") for i in range(1, count + 1)))


@dataclass
class XenLike:
    """An upstream repository with Xen's shapes; attribute names say what each commit is."""

    builder: RepoBuilder
    base_tag: str = "RELEASE-4.19.0"
    source: str = "stable-4.19"
    shas: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.builder.path


def make_xenlike(path: Path) -> XenLike:
    """Build the standard synthetic upstream.

    On `stable-4.19` after `RELEASE-4.19.0`, in order:
      xsa1        This is XSA-1. (applies alone)
      prereq      a non-XSA backport that rewrites lines 10-12 of xen/common/sched.c
      xsa2        This is XSA-2. (changes a line `prereq` introduced: conflicts without it)
      xsa3a/b     This is part of XSA-3. (two commits)
      xsa4        This is XSA-4. (changes a line xsa3b introduced: applies only after XSA-3)
      other       a non-XSA backport touching an unrelated file
      xsa5        This is XSA-5. (its change is already in the base tag, which is cut off
                  the stable line from the root commit)
    """
    b = RepoBuilder(path)
    x = XenLike(b)
    s = x.shas
    s["root"] = b.commit(
        "Initial import\n",
        {
            "xen/common/sched.c": numbered("sched", 30),
            "xen/arch/x86/mm.c": numbered("mm", 30),
            "xen/common/grant.c": numbered("grant", 30),
            "README": "Xen\n",
        },
    )
    b.branch(x.source)
    # The release was cut with XSA-5's fix already in it (as real point releases sometimes
    # are); the stable branch gets the same change later as its own commit.
    b.branch("release-4.19")
    b.checkout("release-4.19")
    s["release"] = b.commit(
        "Xen 4.19.0 (with XSA-5 applied)\n",
        {"xen/common/grant.c": numbered("grant", 30, l20="grant line 20 fixed")},
    )
    b.tag(x.base_tag)
    b.checkout(x.source)
    s["xsa1"] = b.commit(
        "x86/mm: check the page type\n\nThis is XSA-1 / CVE-2026-0001.\n\n"
        "Signed-off-by: Jan Beulich <jbeulich@suse.com>\n"
        "master commit: 1111111111111111111111111111111111111111\n"
        "master date: 2026-01-01 10:00:00 +0100\n",
        {"xen/arch/x86/mm.c": numbered("mm", 30, l3="mm line 3 checked")},
    )
    s["prereq"] = b.commit(
        "sched: restructure the credit loop\n\n"
        "(cherry picked from commit 2222222222222222222222222222222222222222)\n",
        {
            "xen/common/sched.c": numbered(
                "sched", 30, l10="loop begin", l11="loop body", l12="loop end"
            )
        },
    )
    s["xsa2"] = b.commit(
        "sched: fix the loop bound\n\nThis is XSA-2.\n",
        {
            "xen/common/sched.c": numbered(
                "sched", 30, l10="loop begin", l11="loop body bounded", l12="loop end"
            )
        },
    )
    s["xsa3a"] = b.commit(
        "grant: part one\n\nThis is part of XSA-3.\n",
        {"xen/common/grant.c": numbered("grant", 30, l5="grant v2")},
    )
    s["xsa3b"] = b.commit(
        "grant: part two\n\nThis is part of XSA-3.\n",
        {"xen/common/grant.c": numbered("grant", 30, l5="grant v2", l6="grant v2 check")},
    )
    s["xsa4"] = b.commit(
        "grant: tighten the check\n\nThis is XSA-4.\n",
        {"xen/common/grant.c": numbered("grant", 30, l5="grant v2", l6="grant v2 strict")},
    )
    s["other"] = b.commit(
        "tools: unrelated backport\n", {"tools/misc/xenpm.c": lines("int main(void);")}
    )
    s["xsa5"] = b.commit(
        "grant: fix line 20\n\nThis is XSA-5.\n",
        {
            "xen/common/grant.c": numbered(
                "grant", 30, l5="grant v2", l6="grant v2 strict", l20="grant line 20 fixed"
            )
        },
    )
    return x


def scrub_git_env() -> None:
    """Tests must not see the developer's GIT_* variables or global config."""
    for key in list(os.environ):
        if key.startswith("GIT_"):
            del os.environ[key]
    os.environ["GIT_CONFIG_GLOBAL"] = os.devnull
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
