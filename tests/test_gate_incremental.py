"""The check gate in one pass over real builds: every breaking XSA held back, checks run
incrementally in the line's build directory (failures confirmed on a clean export), and the
C files a passing check never compiled named per XSA.

The project: `prog` from main.c and util.c; extra.c is in the tree but no command of the
default check compiles it. On the stable branch: XSA-1 and XSA-3 build, XSA-2 and XSA-4 break
the build (each on its own), XSA-5 changes the line XSA-2 changed (it conflicts without it),
XSA-3 changes extra.c only, XSA-6 changes the README only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.check.gate import BuilderGate
from bot.check.runner import CheckRunner
from bot.cli.main import main
from bot.config import Identity
from bot.core.gate import gate
from bot.core.record import note_json
from bot.git.build import Builder
from bot.git.objects import ObjectStore
from bot.git.workrepo import WorkRepo
from bot.manifest.model import Manifest, Xsa
from tests.gitrepo import RepoBuilder, lines

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc and make"
)

BUILD = "make -s"
MAKEFILE = lines(
    "CFLAGS = -Wall -Werror -O0",
    "prog: main.o util.o",
    "\t$(CC) -o $@ main.o util.o",
    "main.o util.o: util.h",
)
UTIL_H = lines("int util_add(int a, int b);")
UTIL_C = lines('#include "util.h"', "int util_add(int a, int b) { return a + b; }")
MAIN_C = lines(
    '#include "util.h"',
    "int main(void)",
    "{",
    "    return util_add(1, 2) - 3;",
    "}",
)
EXTRA_C = "int extra(void) { return 0; }\n"


@dataclass
class World:
    upstream: RepoBuilder
    shas: dict[int, str]


@pytest.fixture
def world(tmp_path: Path) -> World:
    b = RepoBuilder(tmp_path / "upstream")
    b.commit(
        "Initial import\n",
        {
            "Makefile": MAKEFILE,
            "util.h": UTIL_H,
            "util.c": UTIL_C,
            "main.c": MAIN_C,
            "extra.c": EXTRA_C,
            "README": "x\n",
        },
    )
    b.tag("RELEASE-1.0")
    b.branch("stable-1.0")
    b.checkout("stable-1.0")
    s: dict[int, str] = {}
    s[1] = b.commit(
        "util: add the other way round\n\nXSA-1\n",
        {"util.c": b.read("util.c").replace("a + b", "b + a")},
    )
    s[2] = b.commit(
        "main: a function nobody wrote\n\nXSA-2\n",
        {"main.c": b.read("main.c").replace("util_add(1, 2) - 3", "util_missing(1) - 3")},
    )
    s[3] = b.commit("extra: harden\n\nXSA-3\n", {"extra.c": EXTRA_C.replace("0", "1")})
    s[4] = b.commit(
        "util: a variable nobody declared\n\nXSA-4\n",
        {"util.c": b.read("util.c") + "int util_bad(void) { return nope; }\n"},
    )
    s[5] = b.commit(
        "main: on top of XSA-2\n\nXSA-5\n",
        {"main.c": b.read("main.c").replace("util_missing(1) - 3", "util_missing(2) - 3")},
    )
    s[6] = b.commit("docs\n\nXSA-6\n", {"README": "y\n"})
    return World(b, s)


def port(
    world: World, state: Path, xsas: tuple[int, ...], command: str | list[str] = BUILD
) -> BuilderGate:
    work = WorkRepo.for_tree(state, "xen")
    work.fetch_upstream(str(world.upstream.path))
    store = ObjectStore(work.repo)
    manifest = Manifest(
        base="RELEASE-1.0",
        source="stable-1.0",
        branch="xsa/1.0",
        xsas=tuple(Xsa(xsa=n, commits=(world.shas[n],)) for n in xsas),
    )
    return BuilderGate(
        Builder(work.repo, store, Identity()),
        CheckRunner(command, repo_path=work.path, state=state, timeout=60, name="xen"),
        manifest,
        manifests_root=state,
        base_commit=work.upstream("RELEASE-1.0", "tags") or "",
        source_commit=work.upstream("stable-1.0", "heads") or "",
    )


def runner_of(p: BuilderGate) -> CheckRunner:
    assert isinstance(p.runner, CheckRunner)
    return p.runner


def line_dir(state: Path, index: int = 0) -> Path:
    return state / "checks" / "build" / "xen" / "xsa+1.0" / str(index)


def test_every_breaking_xsa_in_one_pass_and_the_one_that_needs_a_held_back_xsa_waits(
    world: World, tmp_path: Path
) -> None:
    p = port(world, tmp_path / "state", (1, 2, 3, 4, 5, 6))
    outcome = gate(p)
    result = p.gated_result(outcome)
    assert outcome.passed and [b.xsa for b in outcome.blocked] == [2, 4]
    assert result.xsas("applied") == [1, 3, 6]
    reasons = {b.xsa: (b.reason, b.waits_for) for b in result.blocked}
    assert reasons == {
        2: ("does-not-build", ()),
        4: ("does-not-build", ()),
        5: ("waits-for", (2,)),  # it conflicts only because XSA-2 is held back
    }
    runs = runner_of(p).history
    # every failure seen in the build directory was confirmed on a clean export, and only those
    failures = [r for r in runs if r.incremental and not r.passed]
    clean = [r for r in runs if not r.incremental]
    assert failures and runner_of(p).exports == len(failures)
    assert len(clean) == 1 + len(failures)  # the line's first build, and the confirmations
    assert "util_missing" in next(b.detail for b in result.blocked if b.xsa == 2)
    assert "nope" in next(b.detail for b in result.blocked if b.xsa == 4)


def test_the_compiler_s_errors_point_the_bisection_at_the_xsa_that_wrote_their_line(
    world: World, tmp_path: Path
) -> None:
    """XSA-4 adds a util.c line that does not compile (XSA-1 changed util.c too, elsewhere).
    The suspect is XSA-4 alone; as the tip's last, one check confirms it (the prefix before
    it passes), where bisecting the four XSAs takes two."""
    p = port(world, tmp_path / "state", (1, 3, 6, 4))
    build = p.build(frozenset())
    assert not p.passes(build.tip)
    assert p.suspects(build, 4) == (4,)  # the prefix XSA-4 ends
    outcome = gate(p)
    assert [(b.xsa, b.checks) for b in outcome.blocked] == [(4, 1)]
    assert outcome.passed and outcome.build.xsas == (1, 3, 6)


def test_an_xsa_changing_a_file_the_check_does_not_compile_is_named(
    world: World, tmp_path: Path
) -> None:
    p = port(world, tmp_path / "state", (1, 3, 6))
    result = p.gated_result(gate(p))
    assert result.xsas("applied") == [1, 3, 6]
    assert {o.xsa: o.not_compiled for o in result.outcomes} == {1: (), 3: ("extra.c",), 6: ()}

    # A config matrix: a second command that builds extra.o compiles it; each command has a
    # build directory of its own, and all must pass.
    q = port(world, tmp_path / "matrix", (1, 3, 6), [BUILD, "make -s extra.o"])
    result = q.gated_result(gate(q))
    assert all(o.not_compiled == () for o in result.outcomes)
    assert (line_dir(tmp_path / "matrix", 1) / "extra.o").exists()
    assert not (line_dir(tmp_path / "matrix", 0) / "extra.o").exists()
    failing = port(world, tmp_path / "matrix-fails", (1,), [BUILD, "false"])
    assert not gate(failing).passed


def test_an_incremental_step_writes_only_the_files_that_differ(
    world: World, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = port(world, state, (3,))
    assert gate(first).passed
    built = line_dir(state)
    before = {n: os.stat(built / n).st_mtime_ns for n in ("main.c", "main.o", "util.c", "util.o")}
    then = port(world, state, (3, 1))
    assert gate(then).passed
    after = {n: os.stat(built / n).st_mtime_ns for n in before}
    assert after["main.c"] == before["main.c"] and after["main.o"] == before["main.o"]
    assert after["util.c"] > before["util.c"] and after["util.o"] > before["util.o"]
    assert "b + a" in (built / "util.c").read_text()
    assert [r.incremental for r in runner_of(then).history] == [True]
    assert runner_of(then).exports == 0  # it passed: no clean confirmation


def test_stale_state_in_the_build_directory_never_holds_an_xsa_back(
    world: World, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    assert gate(port(world, state, (3,))).passed
    built = line_dir(state)
    # Left by something else: objects no candidate tree has, newer than their sources, which
    # make therefore does not remake: the link fails on them.
    for name in ("main.o", "util.o"):
        (built / name).write_text("not an object\n")
    (built / "stale.h").write_text("#error stale\n")
    p = port(world, state, (3, 6))
    outcome = gate(p)
    assert outcome.passed and outcome.blocked == ()
    runs = runner_of(p).history
    assert [(r.incremental, r.passed) for r in runs] == [(True, False), (False, True)]
    assert runner_of(p).exports == 1
    # the directory that failed wrongly is started afresh
    assert not built.exists()
    again = port(world, state, (3, 6, 1))
    assert gate(again).passed
    assert [r.incremental for r in runner_of(again).history] == [False]


@pytest.mark.skipif(
    shutil.which("ccache") is None or not Path("/usr/lib/ccache").is_dir(),
    reason="needs ccache (apt-get install ccache)",
)
def test_with_ccache_a_clean_confirmation_reuses_what_the_build_directory_compiled(
    world: World, tmp_path: Path
) -> None:
    """With debug info (-g, as Xen builds), ccache would hash the working directory, and the
    clean export would miss every object the build directory compiled."""
    state = tmp_path / "state"
    command = "make -s CFLAGS='-Wall -Werror -O0 -g'"
    assert gate(port(world, state, (1,), command)).passed  # the line compiles main.o, util.o
    p = port(world, state, (1, 4), command)
    outcome = gate(p)  # XSA-4 breaks util.c: its failure is confirmed on a clean export
    assert [b.xsa for b in outcome.blocked] == [4]
    runs = runner_of(p).history
    assert [(r.incremental, r.passed) for r in runs] == [(True, False), (False, False)]
    stats = subprocess.run(
        ["ccache", "--print-stats"],
        env={**os.environ, "CCACHE_DIR": str(state / "checks" / "ccache")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts = dict(line.split("\t") for line in stats.splitlines() if "\t" in line)
    hits = int(counts["direct_cache_hit"]) + int(counts["preprocessed_cache_hit"])
    assert hits == 1, stats  # main.o: compiled in the build directory, not again on the export


def test_the_pass_report_record_and_status_say_what_was_not_compiled_and_the_cost(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    entries = "".join(f"  - xsa: {n}\n    commits: [{world.shas[n]}]\n" for n in range(1, 7))
    (manifests / "1.0.yaml").write_text(
        f"base: RELEASE-1.0\nsource: stable-1.0\nbranch: xsa/1.0\nxsas:\n{entries}"
    )
    common = ["--manifests", str(manifests), "--state", str(tmp_path / "state")]
    common += ["--upstream", f"xen={world.upstream.path}"]
    main(["reconcile", "--json", *common, "--check", f"xen={BUILD}"])
    data = json.loads(capsys.readouterr().out)
    [branch] = data["branches"]
    assert branch["published"] is True and branch["applied"] == [1, 3, 6]
    check = branch["check"]
    assert check["held_back"] == [2, 4] and check["passed"] is True
    assert check["checks_run"] == len(check["runs"])
    assert any(r["incremental"] for r in check["runs"])
    assert check["seconds"] == pytest.approx(sum(r["seconds"] for r in check["runs"]), abs=0.01)
    assert branch["not_compiled"] == [{"xsa": 3, "files": ["extra.c"]}]
    waiting = next(b for b in branch["blocked"] if b["xsa"] == 5)
    assert (waiting["reason"], waiting["waits_for"]) == ("waits-for", [2])
    assert not [p for p in data.get("proposals", []) if p["xsa"] == 5]

    main(["status", "--json", *common])
    status = json.loads(capsys.readouterr().out)
    [shown] = status["branches"]
    assert shown["not_compiled"] == [{"xsa": 3, "files": ["extra.c"]}]

    mirror = tmp_path / "state" / "mirrors" / "xen.git"
    git = ["git", "-C", str(mirror)]
    tip = subprocess.run([*git, "rev-parse", "xsa/1.0"], capture_output=True, text=True, check=True)
    note = subprocess.run(
        [*git, "notes", "--ref", "xsabot", "show", tip.stdout.strip()],
        capture_output=True,
        text=True,
        check=True,
    )
    record = json.loads(note_json(note.stdout) or "")["records"]["xsa/1.0"]
    assert {x["xsa"]: x["not_compiled"] for x in record["xsas"]}[3] == ["extra.c"]
    assert [(r["tree"], r["incremental"]) for r in record["checks"]] == [
        (r["tree"], r["incremental"]) for r in check["runs"]
    ]


def test_a_tree_s_check_may_be_a_list_of_commands_all_in_the_digest(tmp_path: Path) -> None:
    from bot.config import load_config
    from bot.errors import UsageError

    path = tmp_path / "xsabot.yaml"
    path.write_text(
        "trees:\n  xen:\n    upstream: https://example.invalid/xen.git\n    check: make -C xen\n"
    )
    one = load_config(path).trees["xen"]
    assert (one.check, one.check_commands, one.check_text) == (
        "make -C xen",
        ("make -C xen",),
        "make -C xen",
    )
    path.write_text(
        "trees:\n  xen:\n    upstream: https://example.invalid/xen.git\n    check:\n      - make -C xen defconfig && make -C xen\n"
        "      - make -C tools\n"
    )
    matrix = load_config(path).trees["xen"]
    assert matrix.check_commands == ("make -C xen defconfig && make -C xen", "make -C tools")
    # the inputs digest takes `check_text`: a command added to the matrix rebuilds the branch
    assert matrix.check_text == "make -C xen defconfig && make -C xen\nmake -C tools"
    path.write_text(
        "trees:\n  xen:\n    upstream: https://example.invalid/xen.git\n    check: []\n"
    )
    with pytest.raises(UsageError, match="check"):
        load_config(path)


def test_where_the_errors_are_is_read_from_compiler_and_linker_lines() -> None:
    from bot.check.gate import _error_lines

    output = "\n".join(
        [
            "make[2]: Entering directory 'xen'",
            "arch/x86/spec_ctrl.c:123:5: error: 'X86_BUG_FOO' undeclared (first use here)",
            "common/livepatch.c:88: error: 'rc' undeclared",
            "./arch/x86/cpu/microcode/amd.c:12:10: fatal error: xen/sha2.h: No such file",
            "ld: prelink.o: in function `f':",
            "common/x.c:7: undefined reference to `g'",
            "arch/x86/setup.c:9:1: warning: unused variable 'z'",
            "make[2]: *** [Rules.mk:256: arch/x86/spec_ctrl.o] Error 1",
        ]
    )
    assert _error_lines(output) == [
        ("arch/x86/spec_ctrl.c", 123),
        ("common/livepatch.c", 88),
        ("arch/x86/cpu/microcode/amd.c", 12),
        ("common/x.c", 7),
    ]
