"""The bot's picks are the commits `git cherry-pick -x` makes, given the same committer.

So a downstream can reproduce a branch with plain git as well as with `xsabot build`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.git.commits import PROVENANCE, with_provenance
from tests.gitrepo import RepoBuilder

MESSAGES = {
    "subject only": "x86/mm: check the page type\n",
    "subject with a colon only": "xen: fix: the thing\n",
    "prose body": "sched: fix\n\nThe loop bound was off by one.\n",
    "sign-off": "sched: fix\n\nBody.\n\nSigned-off-by: Jan Beulich <jbeulich@suse.com>\n",
    "xen backport": (
        "x86/spec-ctrl: fix\n\nThis is XSA-470 / CVE-2025-27465.\n\n"
        "Signed-off-by: Andrew Cooper <andrew.cooper3@citrix.com>\n"
        "Reviewed-by: Jan Beulich <jbeulich@suse.com>\n"
        "master commit: 1111111111111111111111111111111111111111\n"
        "master date: 2025-07-08 14:00:00 +0100\n"
    ),
    "note in the sign-off block": (
        "arm: fix\n\nBody.\n\nSigned-off-by: Julien Grall <julien@xen.org>\n"
        "[stefano: fix the build]\nSigned-off-by: Stefano Stabellini <sstabellini@kernel.org>\n"
    ),
    "mostly prose after a sign-off": (
        "tools: fix\n\nSigned-off-by: A <a@example.org>\nthen some prose\nand more\n"
        "and more\nand yet more\n"
    ),
    "prose with a colon": "libxl: fix\n\nNote: this is prose, not a trailer list\nreally.\n",
    "continuation": (
        "x86: fix\n\nBody.\n\nReported-by: Someone <s@example.org>\n  (continued)\n"
        "Signed-off-by: A <a@example.org>\n"
    ),
    "already cherry-picked": (
        "x86: fix\n\nBody.\n\n(cherry picked from commit 2222222222222222222222222222222222222222)\n"
    ),
    "fixes trailer": 'x86: fix\n\nBody.\n\nFixes: 123456789abc ("x86: break it")\n',
    "no final newline": "x86: fix\n\nBody without newline",
}


@pytest.mark.parametrize("name", list(MESSAGES))
def test_provenance_is_placed_where_git_cherry_pick_x_places_it(tmp_path: Path, name: str) -> None:
    repo = RepoBuilder(tmp_path / "r")
    repo.commit("base\n", {"f": "1\n"})
    repo.branch("side")
    repo.checkout("side")
    source = repo.commit(MESSAGES[name], {"f": "2\n"})
    repo.checkout("master")
    repo.commit("other\n", {"g": "x\n"})
    subprocess.run(
        ["git", "-C", str(repo.path), "cherry-pick", "-x", "--allow-empty-message", source],
        check=True,
        capture_output=True,
    )
    raw_git = subprocess.run(
        ["git", "-C", str(repo.path), "cat-file", "commit", "HEAD"],
        check=True,
        capture_output=True,
    ).stdout
    raw_source = subprocess.run(
        ["git", "-C", str(repo.path), "cat-file", "commit", source],
        check=True,
        capture_output=True,
    ).stdout
    ours = with_provenance(raw_source.split(b"\n\n", 1)[1], PROVENANCE.format(sha=source))
    assert ours == raw_git.split(b"\n\n", 1)[1]
