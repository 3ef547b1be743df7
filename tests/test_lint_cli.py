"""`xsabot lint` and `xsabot schema`, run in-process: output, summary and exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.manifest.schema import manifest_json_schema, manifest_json_schema_text
from tests.gitrepo import RepoBuilder

A, B = "a" * 40, "b" * 40
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    status: int
    out: list[str]
    err: str


Xsabot = Callable[..., Run]


@pytest.fixture
def xsabot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Xsabot:
    """`xsabot ARGS...` in `tmp_path` (no config file there unless a test writes one)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "manifests").mkdir()

    def run(*args: str) -> Run:
        capsys.readouterr()
        status = main(list(args))
        captured = capsys.readouterr()
        return Run(status, captured.out.splitlines(), captured.err)

    return run


def write(path: Path, branch: str, extra: str = "", tree: str = "xen") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"tree: {tree}\nbase: RELEASE-4.19.3\nsource: stable-4.19\nbranch: {branch}\n"
        f"xsas:\n  - xsa: 467\n    commits: [{A}]\n{extra}"
    )
    return path


def test_clean_manifests_exit_0_with_a_summary(tmp_path: Path, xsabot: Xsabot) -> None:
    write(tmp_path / "manifests/4.19.yaml", "xsa/4.19")
    write(tmp_path / "manifests/4.18.yml", "xsa/4.18")
    run = xsabot("lint")
    assert (run.status, run.out, run.err) == (0, [], "2 manifests, 0 problems\n")


def test_problems_go_to_stdout_one_per_line_and_exit_1(tmp_path: Path, xsabot: Xsabot) -> None:
    write(tmp_path / "manifests/4.19.yaml", "xsa/4.19")
    write(tmp_path / "manifests/4.18.yaml", "main", extra="owner: me\n")
    write(tmp_path / "manifests/4.17.yaml", "xsa/4.17")
    run = xsabot("lint")
    assert run.status == 1
    assert run.out == [
        "manifests/4.18.yaml:4:9: branch: `main` is outside the bot's namespace:"
        " branches start with `xsa/`",
        "manifests/4.18.yaml:8:1: owner: unknown key"
        " (known keys: `tree`, `base`, `source`, `branch`, `xsas`)",
    ]
    assert run.err == "3 manifests, 2 problems in 1 file\n"


def test_every_broken_file_is_reported(tmp_path: Path, xsabot: Xsabot) -> None:
    write(tmp_path / "manifests/a.yaml", "xsa/same")
    write(tmp_path / "manifests/b.yaml", "xsa/same")
    (tmp_path / "manifests/c.yaml").write_text("base: [oops\n")
    run = xsabot("lint")
    assert run.status == 1
    assert run.out == [
        "manifests/a.yaml:4:9: branch: branch `xsa/same` is also published by manifests/b.yaml:4",
        "manifests/b.yaml:4:9: branch: branch `xsa/same` is also published by manifests/a.yaml:4",
        "manifests/c.yaml:2:1: YAML syntax: expected ',' or ']', but got '<stream end>'"
        " (while parsing a flow sequence at line 1)",
    ]
    assert run.err == "3 manifests, 3 problems in 3 files\n"


def test_given_paths_restrict_the_check(tmp_path: Path, xsabot: Xsabot) -> None:
    good = write(tmp_path / "manifests/4.19.yaml", "xsa/4.19")
    write(tmp_path / "manifests/4.18.yaml", "main")
    run = xsabot("lint", str(good))
    assert (run.status, run.out, run.err) == (0, [], "1 manifest, 0 problems\n")


def test_a_missing_path_exits_2(tmp_path: Path, xsabot: Xsabot) -> None:
    good = write(tmp_path / "manifests/4.19.yaml", "xsa/4.19")
    run = xsabot("lint", str(good), "manifests/nope.yaml")
    assert (run.status, run.out) == (2, [])
    assert run.err == "xsabot lint: manifests/nope.yaml: no such file or directory\n"


def test_a_directory_path_checks_every_manifest_in_it(tmp_path: Path, xsabot: Xsabot) -> None:
    write(tmp_path / "manifests/4.19.yaml", "xsa/4.19")
    write(tmp_path / "manifests/4.18.yml", "main")
    (tmp_path / "manifests/schema.json").write_text("{}")
    other = write(tmp_path / "elsewhere/4.17.yaml", "xsa/4.17", extra="owner: me\n")
    run = xsabot("lint", "manifests/", str(other))
    assert run.status == 1
    assert run.out == [
        "elsewhere/4.17.yaml:8:1: owner: unknown key"
        " (known keys: `tree`, `base`, `source`, `branch`, `xsas`)",
        "manifests/4.18.yml:4:9: branch: `main` is outside the bot's namespace:"
        " branches start with `xsa/`",
    ]
    assert run.err == "3 manifests, 2 problems in 2 files\n"


def test_a_file_inside_a_given_directory_is_read_once(tmp_path: Path, xsabot: Xsabot) -> None:
    inside = write(tmp_path / "manifests/4.19.yaml", "xsa/4.19")
    run = xsabot("lint", str(inside), "manifests")
    assert (run.status, run.out, run.err) == (0, [], "1 manifest, 0 problems\n")


def test_a_tree_given_on_the_command_line_is_known_and_checked(
    tmp_path: Path, xsabot: Xsabot
) -> None:
    write(tmp_path / "manifests/arm.yaml", "xsa/arm", tree="xen-arm")
    assert xsabot("lint").status == 1
    upstream = RepoBuilder(tmp_path / "xen-arm")
    upstream.commit("Initial import\n", {"README": "Xen\n"})
    upstream.tag("RELEASE-4.19.3")
    upstream.branch("stable-4.19")
    run = xsabot("lint", "--state", "state", "--upstream", f"xen-arm={upstream.path}")
    # The tree is known (no `tree:` problem); `--upstream` also checks against it.
    assert run.out == [
        f"manifests/arm.yaml:7:15: xsas[0].commits[0]: commit {A[:12]} does not exist"
        " in the xen-arm upstream"
    ]
    assert run.status == 1


def test_patch_paths_of_a_file_elsewhere_are_relative_to_its_directory(
    tmp_path: Path, xsabot: Xsabot
) -> None:
    patch = f"  - xsa: 471\n    patches:\n      - path: p/x.patch\n        sha256: {'e' * 64}\n"
    other = write(tmp_path / "checkout/4.19.yaml", "xsa/4.19", extra=patch)
    (tmp_path / "checkout/p").mkdir()
    (tmp_path / "checkout/p/x.patch").write_text("From x\n")
    run = xsabot("lint", str(other))
    assert (run.status, run.out) == (0, [])
    (tmp_path / "checkout/p/x.patch").unlink()
    run = xsabot("lint", str(other))
    assert run.out == [
        "checkout/4.19.yaml:10:15: xsas[1].patches[0].path: no file `p/x.patch`"
        " in the manifests directory (checkout)"
    ]


def test_branches_that_clash_as_git_refs_are_reported(tmp_path: Path, xsabot: Xsabot) -> None:
    write(tmp_path / "manifests/4.19.yaml", "xsa/4.19")
    write(tmp_path / "manifests/4.19-lts.yaml", "xsa/4.19/lts")
    run = xsabot("lint")
    assert run.status == 1
    why = "git cannot have a branch and branches under it"
    assert run.out == [
        "manifests/4.19-lts.yaml:4:9: branch: branch `xsa/4.19/lts` clashes with `xsa/4.19`"
        f" published by manifests/4.19.yaml:4: {why}",
        "manifests/4.19.yaml:4:9: branch: branch `xsa/4.19` clashes with `xsa/4.19/lts`"
        f" published by manifests/4.19-lts.yaml:4: {why}",
    ]
    assert run.err == "2 manifests, 2 problems in 2 files\n"


def test_a_file_name_that_cannot_go_in_a_branch_name_is_reported(
    tmp_path: Path, xsabot: Xsabot
) -> None:
    write(tmp_path / "manifests/4.19.yaml", "xsa/4.19")
    write(tmp_path / "manifests/4.19 lts.yaml", "xsa/4.19-lts")
    run = xsabot("lint")
    assert (run.status, run.err) == (1, "2 manifests, 1 problem in 1 file\n")
    assert run.out == [
        "manifests/4.19 lts.yaml:1:1: the manifest's name `4.19 lts` (its file name) is part of"
        " branch names, but it contains a space: rename the file"
    ]


def _limit_memory() -> None:
    import resource

    # Far more than linting needs (tens of MiB), far less than expanding an alias bomb takes.
    resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs RLIMIT_AS")
def test_an_alias_bomb_is_one_broken_file_not_a_dead_process(tmp_path: Path) -> None:
    # Under 500 bytes of aliases, 9 levels of 9: 9**9 leaves once expanded. It runs in a child process
    # with its memory capped, so a regression fails this test instead of exhausting the machine.
    (tmp_path / "manifests").mkdir()
    write(tmp_path / "manifests/4.19.yaml", "xsa/4.19")
    levels = ["a1: &a1 [" + ",".join("x" * 9) + "]"]
    levels += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(2, 10)]
    write(tmp_path / "manifests/bomb.yaml", "xsa/bomb", extra="\n".join(levels) + "\n")
    run = subprocess.run(
        [sys.executable, "-m", "bot", "lint"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
        check=False,
    )
    assert (run.returncode, run.stderr) == (1, "2 manifests, 81 problems in 1 file\n")
    lines = run.stdout.splitlines()
    assert lines[:2] == [
        "manifests/bomb.yaml:8:5: anchors and aliases are not allowed in manifests (`&a1`)",
        "manifests/bomb.yaml:9:5: anchors and aliases are not allowed in manifests (`&a2`)",
    ]
    assert len(lines) == 81
    assert all(line.startswith("manifests/bomb.yaml:") for line in lines)


# -- the JSON Schema --------------------------------------------------------------------------


def test_schema_command_prints_the_schema(xsabot: Xsabot) -> None:
    run = xsabot("schema")
    assert run.status == 0
    assert json.loads("\n".join(run.out)) == manifest_json_schema()


def test_committed_schema_is_the_generated_one() -> None:
    committed = (REPO / "manifests" / "schema.json").read_text()
    assert committed == manifest_json_schema_text(), (
        "manifests/schema.json is stale: run `xsabot schema > manifests/schema.json`"
    )


def test_schema_is_draft_2020_12_with_an_id() -> None:
    schema = manifest_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "urn:xsabot:manifest"
    assert schema["title"] == "xsabot manifest"
    assert "# yaml-language-server: $schema=schema.json" in schema["description"]
    assert schema["required"] == ["base", "source", "branch"]
    assert schema["additionalProperties"] is False


def valid() -> dict[str, object]:
    return {
        "base": "RELEASE-4.19.3",
        "source": "stable-4.19",
        "branch": "xsa/4.19.3",
        "xsas": [
            {"xsa": 467, "commits": [A], "prerequisites": [{"commit": B, "why": "x"}]},
            {"xsa": 471, "patches": [{"path": "p/x.patch", "sha256": "e" * 64}]},
        ],
    }


@pytest.mark.parametrize(
    ("change", "ok"),
    [
        ({}, True),
        ({"owner": "me"}, False),
        ({"branch": "xsa/a..b"}, False),
        ({"source": "-stable"}, False),
        ({"base": "RELEASE-4.19.3.lock"}, False),
        ({"xsas": [{"xsa": 1, "commits": [A[:12]]}]}, False),
        ({"xsas": [{"xsa": 1, "commits": [A.upper()]}]}, False),
        ({"xsas": [{"xsa": 1, "patches": [{"path": "../x", "sha256": "e" * 64}]}]}, False),
    ],
)
def test_schema_checks_what_a_file_alone_shows(change: dict[str, object], ok: bool) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(manifest_json_schema())
    assert validator.is_valid({**valid(), **change}) is ok
