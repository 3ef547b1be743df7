"""The manifests this repository ships are valid, and say what they claim in their headers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.manifest.load import load_manifests

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
LINES = ("4.17", "4.18", "4.19", "4.20", "4.21", "4.22")


def test_lint_passes_on_the_shipped_manifests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--manifests", str(MANIFESTS)]) == 0
    assert capsys.readouterr().out == ""


def test_one_manifest_per_supported_line_on_its_own_branch() -> None:
    mset = load_manifests(MANIFESTS)
    assert not mset.invalid
    by_name = {m.name: m.manifest for m in mset.loaded}
    assert sorted(by_name) == list(LINES)
    for line, m in by_name.items():
        assert (m.tree, m.source, m.branch) == ("xen", f"stable-{line}", f"xsa/{line}")
        assert re.fullmatch(rf"RELEASE-{re.escape(line)}\.\d+", m.base)
        commits = m.commit_ids()
        assert len(commits) == len(set(commits))


def test_every_header_names_the_end_of_security_support() -> None:
    for line in LINES:
        head = (MANIFESTS / f"{line}.yaml").read_text().split("\ntree:", 1)[0]
        assert re.search(r"security support until \d{4}-\d{2}-\d{2}", head, re.IGNORECASE), line
