"""The shipped manifests against real Xen history, where a clone is at hand.

Set XSABOT_XEN_REPO to a Xen clone;
without one these tests skip: they need no network and write nothing into the clone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.manifest.load import load_manifest

ROOT = Path(__file__).resolve().parent.parent
XEN = Path(os.environ.get("XSABOT_XEN_REPO", "/nonexistent"))

pytestmark = pytest.mark.skipif(
    not (XEN / "objects").is_dir() and not (XEN / ".git" / "objects").is_dir(),
    reason="set XSABOT_XEN_REPO to a Xen clone to run the tests on real history",
)


def test_every_shipped_manifest_reconciles_with_nothing_blocked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--manifests",
        str(ROOT / "manifests"),
        "--state",
        str(tmp_path),
        "--upstream",
        f"xen={XEN}",
        "--json",
    ]
    assert main(["reconcile", "--dry-run", *argv]) == 0
    data = json.loads(capsys.readouterr().out)
    for branch in data["branches"]:
        assert branch["blocked"] == [], branch["manifest"]
        assert branch["action"] == "create"
    assert sum(len(b["applied"]) for b in data["branches"]) == 119


def test_the_same_tip_from_a_second_state_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tips = []
    for state in ("a", "b"):
        assert (
            main(
                [
                    "build",
                    str(ROOT / "manifests" / "4.19.yaml"),
                    "--state",
                    str(tmp_path / state),
                    "--upstream",
                    str(XEN),
                ]
            )
            == 0
        )
        tips.append(capsys.readouterr().out.strip().splitlines()[-1])
    assert tips[0] == tips[1]


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "manifests").glob("*.yaml")))
def test_every_shipped_manifest_builds_with_no_partial_pick(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every pick lands as on source (faithful), and none needs the manifest to accept it."""
    path = ROOT / "manifests" / f"{name}.yaml"
    status = main(["build", str(path), "--state", str(tmp_path), "--upstream", str(XEN)])
    out = capsys.readouterr().out
    assert status == 0, out
    picks = [line for line in out.splitlines() if line.startswith("XSA-") and " -> " in line]
    manifest = load_manifest(path, root=path.parent).manifest
    assert len(picks) == len(manifest.commit_ids())  # every pick was made and checked
    assert [line for line in out.splitlines() if "partial" in line] == []
