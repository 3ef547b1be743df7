"""`xsabot reconcile` killed with SIGKILL anywhere: the next pass ends where an uninterrupted
run ends, with the same refs, notes and proposals.

Each trial runs the real command as a process on a fresh copy of the same setup (four
manifests, each with blocked XSAs, so the pass publishes four branches and opens four
proposals on the local forge), kills it at one point (the git command it runs, if any, ends
on its own, as after a crash of the bot), runs one more `reconcile` to completion, and
compares everything the bot writes with the uninterrupted run's: the mirror's refs (branches and the notes ref), each build record,
the proposal branches of the manifests repository and the local forge's proposal records.

The points: timed ones, spread over an uninterrupted run's duration, and ones triggered by
what the run has written so far (the first branch in the mirror, the first proposal branch,
the first proposal record, later proposal branches and records),
watched from outside: no hook in the bot itself. The table of kills and outcomes is printed
(`pytest -s`) and is part of the failure message.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.core.record import note_json
from tests.gitrepo import RepoBuilder, XenLike, make_xenlike
from tests.manifests import manifest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs process groups")


@dataclass(frozen=True)
class World:
    upstream: Path
    manifests_repo: Path  # the pristine manifests repository, copied for each run


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("crash")
    x = make_xenlike(base / "upstream")
    repo = RepoBuilder(base / "manifests-repo")
    repo.commit(
        "Manifests\n",
        {
            "manifests/4.19.yaml": manifest(x, (1, ["xsa1"]), (2, ["xsa2"])),
            "manifests/4.19-b.yaml": manifest(
                x, (2, ["xsa2"]), (1, ["xsa1"]), (5, ["xsa5"]), branch="xsa/4.19-b"
            ),
            "manifests/4.19-c.yaml": manifest(x, (4, ["xsa4"]), branch="xsa/4.19-c"),
            "manifests/4.19-d.yaml": manifest(x, *_waiting(x), branch="xsa/4.19-d"),
        },
    )
    return World(x.path, repo.path)


def _waiting(x: XenLike) -> tuple[dict[str, object], tuple[int, list[str]], tuple[int, list[str]]]:
    xsa3 = {"xsa": 3, "commits": f"[{x.shas['xsa3a']}, {x.shas['xsa3b']}]"}
    return {**xsa3, "status": "blocked", "why": "manual backport"}, (4, ["xsa4"]), (2, ["xsa2"])


class Run:
    """One trial's directories: a copy of the manifests repository, a state dir, a mirror."""

    def __init__(self, world: World, where: Path) -> None:
        self.where = where
        self.repo = where / "manifests-repo"
        shutil.copytree(world.manifests_repo, self.repo, symlinks=True)
        self.state = where / "state"
        self.mirror = where / "mirror.git"
        self.argv = [
            sys.executable,
            "-m",
            "bot",
            "reconcile",
            "--json",
            "--manifests",
            str(self.repo / "manifests"),
            "--state",
            str(self.state),
            "--upstream",
            f"xen={world.upstream}",
            "--mirror",
            f"xen={self.mirror}",
        ]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XSABOT_"))}
        env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", PYTHONPATH=str(ROOT))
        return env

    def complete(self) -> dict:
        proc = subprocess.run(
            self.argv, env=self.env(), capture_output=True, text=True, check=False, timeout=120
        )
        assert proc.returncode in (0, 1), proc.stderr
        return json.loads(proc.stdout)

    def killed(self, after: float | None, when: Callable[[Run], bool] | None) -> str:
        """Run, and SIGKILL the process after `after` seconds or once `when` holds; return
        what happened ("killed", or "finished" if it ended first). The git commands it was
        running are left to finish, as they would after a crash of the bot alone, before
        the next pass starts."""
        proc = subprocess.Popen(
            self.argv,
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        start = time.monotonic()
        try:
            while proc.poll() is None:
                if (after is not None and time.monotonic() - start >= after) or (
                    when is not None and when(self)
                ):
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return "killed"
                time.sleep(0.001)
            return "finished"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            _wait_for_group(proc.pid)

    def snapshot(self) -> dict[str, object]:
        """Everything the bot writes outside its state dir, and its proposal records."""
        refs = _git(self.mirror, "for-each-ref", "--format=%(refname) %(objectname)")
        notes = {}
        for line in _git(self.mirror, "notes", "--ref=xsabot", "list").splitlines():
            blob, commit = line.split()
            text = _git(self.mirror, "cat-file", "blob", blob)
            notes[commit] = json.loads(note_json(text) or "")  # after the human summary
        proposal_refs = _git(
            self.repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/xsabot/"
        )
        records = sorted(
            (
                json.loads(p.read_text())
                for p in (self.state / "proposals").glob("*.json")
                if p.stem.isdigit()
            ),
            key=lambda r: (r["branch"], r["id"]),
        )
        for r in records:
            del r["id"]  # the local forge's serial numbers; the same in any order of opening
        return {
            "mirror": refs.splitlines(),
            "notes": notes,
            "proposal branches": proposal_refs.splitlines(),
            "proposal records": records,
        }


def _wait_for_group(group: int) -> None:
    """Until no process of the killed run's process group is left (its git children)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.005)
    os.killpg(group, signal.SIGKILL)


def _differences(got: dict[str, object], expected: dict[str, object]) -> str:
    """What differs from the uninterrupted run, shortly ("" when nothing)."""
    out = []
    for key, want in expected.items():
        have = got[key]
        if have != want:
            out.append(f"DIFFERS in {key}: {json.dumps(have)[:400]} != {json.dumps(want)[:400]}")
    return "; ".join(out)


def _git(repo: Path, *args: str) -> str:
    if not repo.is_dir():
        return ""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    proc = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _proposal_branches(run: Run) -> int:
    heads = run.repo / ".git" / "refs" / "heads" / "xsabot"
    if not heads.is_dir():
        return 0
    return sum(1 for p in heads.rglob("*") if p.is_file() and p.suffix != ".lock")


def _published(run: Run) -> bool:
    heads = run.mirror / "refs" / "heads" / "xsa"
    return heads.is_dir() and any(p.suffix != ".lock" for p in heads.iterdir())


def _records(run: Run) -> int:
    folder = run.state / "proposals"
    return sum(1 for p in folder.glob("*.json") if p.stem.isdigit()) if folder.is_dir() else 0


EVENTS: dict[str, Callable[[Run], bool]] = {
    "work repository made": lambda r: (r.state / "repos").is_dir(),
    "first branch in the mirror": _published,
    "first proposal branch moved": lambda r: _proposal_branches(r) >= 1,
    "first proposal record written": lambda r: _records(r) >= 1,
    "mid-proposals: 2 branches moved": lambda r: _proposal_branches(r) >= 2,
    "mid-proposals: 3 records written": lambda r: _records(r) >= 3,
    "last proposal branch moved": lambda r: _proposal_branches(r) >= 4,
    "last proposal record written": lambda r: _records(r) >= 4,  # before the records' push
}


def test_reconcile_killed_anywhere_converges_to_the_uninterrupted_result(
    world: World, tmp_path: Path
) -> None:
    reference = Run(world, tmp_path / "reference")
    start = time.monotonic()
    first = reference.complete()
    duration = time.monotonic() - start
    assert [p["action"] for p in first["proposals"]] == ["open"] * 4
    expected = reference.snapshot()
    assert reference.complete()["proposals"] == []  # settled: a second run changes nothing
    assert reference.snapshot() == expected

    points: list[tuple[str, float | None, Callable[[Run], bool] | None]] = [
        (f"after {round(duration * f * 1000)} ms", duration * f, None) for f in (0.1, 0.6, 0.8)
    ]
    points += [(f"when {name}", None, when) for name, when in EVENTS.items()]
    rows: list[tuple[str, str, str]] = []
    for i, (name, after, when) in enumerate(points):
        run = Run(world, tmp_path / f"trial-{i}")
        outcome = run.killed(after, when)
        state = run.snapshot()  # what the kill left, for the table
        halfway = f"{len(state['proposal records'])} records"  # type: ignore[arg-type]
        run.complete()
        got = run.snapshot()
        rows.append((name, f"{outcome} ({halfway})", _differences(got, expected) or "converged"))
    table = "\n".join(f"{n:<40} {o:<24} {r}" for n, o, r in rows)
    print(f"\nreconcile uninterrupted: {duration:.2f} s\n{table}")
    assert all(r == "converged" for _, _, r in rows), table
    # A timed point late in a run that went faster than the reference may find it done.
    assert sum(o.startswith("killed") for _, o, _ in rows) >= len(rows) * 2 // 3, table
