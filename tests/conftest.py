"""Shared fixtures: a scrubbed git environment, synthetic upstreams, and the CLI in-process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.app.wiring import Adapters
from tests.gitrepo import XenLike, make_xenlike


@pytest.fixture(autouse=True)
def _scrubbed_git_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's GIT_* variables, global config or upstream overrides."""
    for key in list(os.environ):
        if key.startswith(("GIT_", "XSABOT_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    yield


@pytest.fixture
def xenlike(tmp_path: Path) -> XenLike:
    return make_xenlike(tmp_path / "upstream")


@dataclass
class Run:
    status: int
    out: str
    err: str

    @property
    def last_line(self) -> str:
        return self.out.strip().splitlines()[-1]


@dataclass
class Bot:
    """The `xsabot` command run in-process with explicit dirs: no config file involved."""

    upstream: Path
    manifests: Path
    state: Path
    mirror: Path
    capsys: pytest.CaptureFixture[str]
    adapters: Adapters | None = None  # the real ones unless a test hands in its own

    def __call__(self, *args: str, state: Path | None = None, mirror: Path | None = None) -> Run:
        from bot.cli.main import main

        command, rest = args[0], list(args[1:])
        argv = [
            command,
            "--manifests",
            str(self.manifests),
            "--state",
            str(state or self.state),
            "--upstream",
            f"xen={self.upstream}",
            "--mirror",
            f"xen={mirror or self.mirror}",
            *rest,
        ]
        self.capsys.readouterr()
        status = main(argv, self.adapters)
        captured = self.capsys.readouterr()
        return Run(status, captured.out, captured.err)

    def write(self, name: str, text: str) -> Path:
        path = self.manifests / f"{name}.yaml"
        path.write_text(text)
        return path


@pytest.fixture
def bot(tmp_path: Path, xenlike: XenLike, capsys: pytest.CaptureFixture[str]) -> Bot:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    return Bot(
        upstream=xenlike.path,
        manifests=manifests,
        state=tmp_path / "state",
        mirror=tmp_path / "mirror.git",
        capsys=capsys,
    )
