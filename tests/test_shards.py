"""Scale-out: `--shard K/N` and a glob `--manifests` split one pass into jobs that together
publish exactly what one pass over all the manifests publishes: the same branches, the same
build records, the same proposals; also when two shards push to the mirror at the same
moment (one push fails whole on its lease; running that shard again converges)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import git
import pytest

from bot.config import shard_of
from bot.core.record import note_json
from tests.conftest import Bot
from tests.gitrepo import RepoBuilder, XenLike
from tests.manifests import manifest

ROOT = Path(__file__).resolve().parents[1]
# Name -> XSAs; 4.17 and 4.18 block XSA-2 (it needs `prereq`): each gets a proposal.
LINES = {
    "4.17": [(1, ["xsa1"]), (2, ["xsa2"])],
    "4.18": [(1, ["xsa1"]), (2, ["xsa2"])],
    "4.19": [(3, ["xsa3a", "xsa3b"]), (4, ["xsa4"])],
    "4.20": [(1, ["xsa1"])],
    "4.21": [(1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])],
}


@dataclass
class World:
    """One manifests repository, one mirror: what a deployment publishes to."""

    repo: RepoBuilder
    mirror: Path

    @property
    def manifests(self) -> Path:
        return self.repo.path / "manifests"


def _world(tmp_path: Path, name: str, xenlike: XenLike) -> World:
    repo = RepoBuilder(tmp_path / name / "manifests-repo")
    files = {
        f"manifests/{line}.yaml": manifest(xenlike, *xsas, branch=f"xsa/{line}")
        for line, xsas in LINES.items()
    }
    repo.commit("add the manifests\n", files)
    return World(repo, tmp_path / name / "mirror.git")


def _refs(mirror: Path) -> dict[str, str]:
    """Every ref of the mirror but the notes ref (whose commits differ by how many passes
    wrote them), with its target."""
    out = git.Repo(mirror).git.for_each_ref("--format=%(refname) %(objectname)")
    refs = dict(line.split() for line in out.splitlines())
    refs.pop("refs/notes/xsabot", None)
    return refs


def _notes(mirror: Path) -> dict[str, str]:
    """The build records: annotated object -> note text. Equal builds have equal tips, so
    one note may hold the records of several branches (from one pass or from two shards)."""
    repo = git.Repo(mirror)
    listed = repo.git.notes("--ref=xsabot", "list")
    return {
        obj: repo.git.notes("--ref=xsabot", "show", obj)
        for _, obj in (line.split() for line in listed.splitlines())
    }


def _records(notes: dict[str, str]) -> list[str]:
    documents = [json.loads(note_json(text) or "") for text in notes.values()]
    return sorted(branch for document in documents for branch in document["records"])


def _proposals(world: World, *states: Path) -> dict[str, tuple[str, str, str]]:
    """The local forge's proposals: branch -> (title, state, the manifest it proposes)."""
    found = {}
    for state in states:
        for record in (state / "proposals").glob("*.json"):
            data = json.loads(record.read_text())
            manifest_file = f"manifests/{data['branch'].split('/')[1]}.yaml"
            text = world.repo.repo.git.show(f"{data['branch']}:{manifest_file}")
            found[data["branch"]] = (data["title"], data["state"], text)
    return found


def _bot(bot: Bot, world: World) -> Bot:
    bot.manifests = world.manifests
    bot.mirror = world.mirror
    return bot


def _published(world: World, *states: Path) -> tuple[object, ...]:
    return _refs(world.mirror), _notes(world.mirror), _proposals(world, *states)


def test_the_names_fall_in_both_shards() -> None:
    """The test's precondition, and sha256's stability: these values hold on any machine."""
    assert {name: shard_of(name, 2) for name in LINES} == {
        "4.17": 0,
        "4.18": 1,
        "4.19": 1,
        "4.20": 1,
        "4.21": 0,
    }


def test_disjoint_shards_publish_what_one_pass_publishes(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    whole = _world(tmp_path, "whole", xenlike)
    run = _bot(bot, whole)("reconcile", "--json", state=tmp_path / "whole-state")
    data = json.loads(run.out)
    assert run.status == 1  # XSA-2 is blocked on 4.17 and 4.18
    assert sorted(p["branch"] for p in data["proposals"]) == [
        "xsabot/4.17/xsa-2",
        "xsabot/4.18/xsa-2",
    ]
    expected = _published(whole, tmp_path / "whole-state")
    assert len(expected[0]) == len(LINES)
    assert _records(expected[1]) == [f"xsa/{line}" for line in LINES]

    split = _world(tmp_path, "split", xenlike)
    state = tmp_path / "split-state"
    for shard in ("0/2", "1/2"):
        run = _bot(bot, split)("reconcile", "--json", "--shard", shard, state=state)
        data = json.loads(run.out)
        built = {b["manifest"] for b in data["branches"]}
        assert built == {n for n in LINES if f"{shard_of(n, 2)}/2" == shard}
        # The other shard's proposals are not this pass's business: none is closed.
        assert all(p["action"] != "close" for p in data["proposals"]), data["proposals"]
    assert _published(split, state) == expected

    # A pass over one shard after all are published builds nothing and closes nothing.
    run = _bot(bot, split)("reconcile", "--json", "--shard", "1/2", state=state)
    data = json.loads(run.out)
    assert [b["rebuilt"] for b in data["branches"]] == [False, False, False]
    assert data["proposals"] == []
    assert _published(split, state) == expected


def test_a_glob_builds_only_its_manifests_but_reads_them_all(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    world = _world(tmp_path, "glob", xenlike)
    # Another file publishing 4.20's branch: both are invalid, even to a pass not building it.
    (world.manifests / "4.20-copy.yaml").write_text(
        manifest(xenlike, (1, ["xsa1"]), branch="xsa/4.20")
    )
    b = _bot(bot, world)
    run = b("reconcile", "--json", "--manifests", str(world.manifests / "4.2*.yaml"))
    data = json.loads(run.out)
    by_name = {r["manifest"]: r for r in data["branches"]}
    assert sorted(by_name) == ["4.20", "4.20-copy", "4.21"]
    assert by_name["4.21"]["published"] is True
    assert by_name["4.20"]["action"] == "error"
    assert "also published by" in by_name["4.20"]["problems"][0]
    assert sorted(_refs(world.mirror)) == ["refs/heads/xsa/4.21"]
    # The shard narrows the glob further: 4.21 is in shard 0 of 2, 4.20 and 4.20-copy not.
    run = b("plan", "--json", "--shard", "0/2", "--manifests", str(world.manifests / "4.2*"))
    assert [r["manifest"] for r in json.loads(run.out)["branches"]] == ["4.21"]


@pytest.mark.parametrize("bad", ["2/2", "1", "-1/2", "a/b", "0/0"])
def test_a_bad_shard_is_a_usage_error(bot: Bot, bad: str) -> None:
    run = bot("plan", "--shard", bad)
    assert run.status == 2
    assert "--shard" in run.err and "K/N" in run.err


def test_a_glob_only_in_the_file_name(bot: Bot, tmp_path: Path) -> None:
    run = bot("plan", "--manifests", str(tmp_path / "m*" / "4.19.yaml"))
    assert run.status == 2 and "only the file name may be a glob" in run.err


def _shard_process(world: World, xenlike: XenLike, state: Path, shard: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XSABOT_"))}
    env |= {"PYTHONPATH": str(ROOT), "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    argv = [sys.executable, "-m", "bot", "reconcile", "--json", "-q", "--shard", shard]
    argv += ["--manifests", str(world.manifests), "--state", str(state)]
    argv += ["--upstream", f"xen={xenlike.path}", "--mirror", f"xen={world.mirror}"]
    return subprocess.Popen(
        argv, env=env, cwd=world.repo.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _run_shards(world: World, xenlike: XenLike, states: list[Path]) -> list[tuple[int, dict]]:
    procs = [_shard_process(world, xenlike, state, f"{k}/2") for k, state in enumerate(states)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert out, err.decode()
        results.append((proc.returncode, json.loads(out)))
    return results


def test_two_shards_pushing_at_the_same_moment_converge(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    """Two jobs, each with its own state dir, one mirror. The mirror's pre-receive hook holds
    each push until both have arrived, so both are leased on the same (missing) notes ref:
    the first to update refs wins, the other's atomic push fails whole. That shard's next
    pass publishes; the end result is what one pass over all publishes."""
    whole = _world(tmp_path, "whole", xenlike)
    _bot(bot, whole)("reconcile", state=tmp_path / "whole-state")
    expected = _published(whole, tmp_path / "whole-state")

    world = _world(tmp_path, "concurrent", xenlike)
    git.Repo.init(world.mirror, bare=True)
    arrived = tmp_path / "arrived"
    arrived.mkdir()
    hook = world.mirror / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        f"dir='{arrived}'\n"
        '[ -d "$dir" ] || exit 0\n'
        'touch "$dir/$$"\n'
        "n=0\n"
        'while [ "$(ls "$dir" | wc -l)" -lt 2 ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done\n'
    )
    hook.chmod(0o755)
    states = [tmp_path / "state-0", tmp_path / "state-1"]

    first = _run_shards(world, xenlike, states)
    # Both publishing pushes were in the mirror at once (the winner's later notes-only push,
    # recording its proposals, passes the hook as a third).
    assert len(list(arrived.iterdir())) >= 2
    failed = [
        data
        for _, data in first
        # A push held while the other moves the notes ref: git says only `atomic transaction
        # failed` when both are in the remote's ref update at once (and the bot says that the
        # lease failed when the other was done before this push began).
        if any("nothing was published" in p for b in data["branches"] for p in b["problems"])
    ]
    problems = [b["problems"] for _, data in first for b in data["branches"]]
    assert len(failed) == 1, problems  # one published, the other's push failed whole
    published_first = _refs(world.mirror)
    assert 0 < len(published_first) < len(LINES)

    for marker in arrived.iterdir():
        marker.unlink()
    arrived.rmdir()  # the hook lets every push through from now on
    second = _run_shards(world, xenlike, states)
    for status, data in second:
        assert all(b["problems"] == [] for b in data["branches"]), data
        assert status == 1  # XSA-2 stays blocked in both shards
    assert _published(world, *states) == expected
