"""The check command on built trees, and build-aware prerequisites, on a tiny C project.

The upstream is a real repository with a Makefile and a few C files. On its stable branch a
non-XSA commit adds `util_clamp()` (and only applies after another non-XSA commit that tidied
the same header lines); the XSA's fix calls `util_clamp()`: it merges cleanly without them and
fails to compile, with gcc's own error.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from bot.check import gate as check_gate
from bot.check.prereqs import find_build_prerequisites
from bot.check.runner import CheckRunner, CheckTimedOut
from bot.cli.main import main
from bot.config import Identity
from bot.core.gate import GateBlock, GateBuild, gate
from bot.errors import SetupError
from bot.git.build import Builder
from bot.git.commits import parse_commit
from bot.git.objects import ObjectStore
from bot.git.workrepo import WorkRepo
from bot.manifest.model import Manifest, Xsa
from tests.cproject import BUILD, Project, make_project

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc and make"
)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "upstream")


def runner(
    project: Project, tmp_path: Path, command: str = BUILD, timeout: float = 60
) -> CheckRunner:
    """A runner on the bot's work repository (it borrows the upstream's objects)."""
    work, _ = work_repo(project, tmp_path)
    return CheckRunner(command, repo_path=work.path, state=tmp_path / "state", timeout=timeout)


# -- the runner ------------------------------------------------------------------------------


def test_a_tree_that_builds_passes_and_the_export_is_removed(
    project: Project, tmp_path: Path
) -> None:
    tree = project.tree("RELEASE-1.0")
    result = runner(project, tmp_path).check(tree)
    assert (result.status, result.cached, result.exit_status) == ("passed", False, 0)
    assert result.log == tmp_path / "state/checks/logs" / f"{tree}.log" and result.log.exists()
    made = {p.name for p in (tmp_path / "state/checks").iterdir()} - {"ccache"}  # if installed
    assert sorted(made) == [
        "export",
        "logs",
        "results",
    ]
    # only the lock that keeps two processes from exporting the same tree at once is left
    assert [p.name for p in (tmp_path / "state/checks/export").iterdir()] == [f"{tree}.lock"]


def test_a_failing_tree_fails_with_gcc_s_error_in_the_tail(
    project: Project, tmp_path: Path
) -> None:
    picked = runner(project, tmp_path)
    result = picked.check(xsa_only_tree(project, tmp_path))
    assert result.status == "failed" and result.exit_status != 0
    assert "implicit declaration of function 'util_clamp'" in result.tail
    assert result.tail in result.log.read_text()


def test_the_same_tree_is_never_checked_twice_but_a_new_command_reruns(
    project: Project, tmp_path: Path
) -> None:
    counter = tmp_path / "runs"
    command = f"echo run >> {counter} && {BUILD}"
    tree = project.tree("RELEASE-1.0")
    first = runner(project, tmp_path, command).check(tree)
    again = runner(project, tmp_path, command).check(tree)  # a new process: from the cache
    assert (first.cached, again.cached, again.status) == (False, True, "passed")
    assert counter.read_text() == "run\n"
    changed = runner(project, tmp_path, command + " prog").check(tree)
    assert not changed.cached and counter.read_text() == "run\nrun\n"


def test_a_check_past_its_time_is_a_timeout_and_its_processes_are_gone(
    project: Project, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    command = f"sleep 30 & echo $! > {pidfile}; sleep 5"
    started = time.monotonic()
    result = runner(project, tmp_path, command, timeout=1).check(project.tree("RELEASE-1.0"))
    assert result.status == "timeout" and result.exit_status is None
    assert time.monotonic() - started < 4
    assert not _running(int(pidfile.read_text()))
    # a timeout says nothing about the tree: it is not kept as the tree's result, for a longer
    # timeout or for the same one
    assert not (tmp_path / "state/checks/results" / f"{result.tree}.json").exists()
    assert runner(project, tmp_path, command, timeout=2).cached(result.tree) is None
    assert runner(project, tmp_path, command, timeout=1).cached(result.tree) is None
    assert result.log.exists()  # what it printed before it was stopped is kept, for the operator


def test_the_output_names_no_state_dir_and_a_killed_run_s_export_is_cleared(
    project: Project, tmp_path: Path
) -> None:
    # make -w, as Xen's recursive build does, prints the directory the check runs in
    command = "pwd; ls; make -w -s && false"
    tree = project.tree("RELEASE-1.0")
    results = []
    for state in ("a", "b/deeper"):
        check = runner(project, tmp_path / state, command)
        # a run killed mid-build left its export and half a log behind
        left = check.root / "export" / tree
        (left / "stale").mkdir(parents=True)
        (left / "stale" / "junk.o").write_text("x")
        (left / "stale").chmod(0o500)
        (left.parent / f"{tree}.out").write_text("old output\n")
        results.append(check.check(tree))
        assert sorted(p.name for p in left.parent.iterdir()) == [f"{tree}.lock"]
    first, second = results
    assert first.status == "failed" and "junk.o" not in first.output()
    assert "old output" not in first.output()
    assert first.tail == second.tail and first.output() == second.output()
    assert "make: Entering directory '.'" in first.tail, first.tail
    assert str(tmp_path) not in first.output()


def test_a_command_that_cannot_start_is_an_environment_error(
    project: Project, tmp_path: Path
) -> None:
    tree = project.tree("RELEASE-1.0")
    with pytest.raises(SetupError, match="exit 127"):
        runner(project, tmp_path, "no-such-build-tool --all").check(tree)
    assert not (tmp_path / "state/checks/results" / f"{tree}.json").exists()


def test_a_tool_missing_in_the_build_is_an_environment_error(
    project: Project, tmp_path: Path
) -> None:
    # as when flex is not installed: make reports the recipe's 127, and exits 2
    with pytest.raises(SetupError, match="missing"):
        runner(project, tmp_path, "make -s CC=no-such-cc").check(project.tree("RELEASE-1.0"))


def test_a_missing_shell_is_an_environment_error(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.check.runner.SHELL", str(tmp_path / "no-sh"))
    with pytest.raises(SetupError, match="cannot start"):
        runner(project, tmp_path).check(project.tree("RELEASE-1.0"))


def test_the_check_sees_a_minimal_environment_and_no_stdin(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = project.tree("RELEASE-1.0")
    check = runner(project, tmp_path, "cat; env | sort; ls -a")
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-secret")
    monkeypatch.setenv("GIT_DIR", "/elsewhere")
    monkeypatch.setenv("MAKEFLAGS", "-j64")
    result = check.check(tree)
    out = result.log.read_text()
    assert result.passed
    assert "LANG=C\n" in out and "PATH=" in out
    assert "glpat-secret" not in out and "GIT_DIR" not in out and "MAKEFLAGS" not in out
    assert ".git\n" not in out and "Makefile\n" in out  # an export, not a work tree


def _running(pid: int) -> bool:
    """Whether `pid` is alive (zombies waiting for init count as gone)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state == "Z":
            return False
        time.sleep(0.05)
    return True


# -- build-aware prerequisites ----------------------------------------------------------------


def work_repo(project: Project, tmp_path: Path) -> tuple[WorkRepo, ObjectStore]:
    work = WorkRepo.for_tree(tmp_path / "state", "xen")
    work.fetch_upstream(str(project.path))
    return work, ObjectStore(work.repo)


def xsa_only_tree(project: Project, tmp_path: Path) -> str:
    """The tree of RELEASE-1.0 with XSA-1's fix picked (cleanly) and nothing else."""
    from bot.git.pick import TreeMerger

    work, store = work_repo(project, tmp_path)
    fix = work.repo[project.shas["xsa1"]]
    merge = TreeMerger(store).merge(
        str(fix.parents[0].tree_id), project.tree("RELEASE-1.0"), str(fix.tree_id)
    )
    assert merge.tree is not None, "the fix was meant to merge cleanly"
    store.flush([merge.tree])
    return merge.tree


def test_the_finder_proposes_the_commit_that_adds_the_missing_function(
    project: Project, tmp_path: Path
) -> None:
    s = project.shas
    check = runner(project, tmp_path)
    failing = check.check(xsa_only_tree(project, tmp_path))
    assert failing.status == "failed"
    work, store = work_repo(project, tmp_path)

    found = find_build_prerequisites(
        work.repo,
        store,
        check,
        base_commit=s["root"],
        fix=s["xsa1"],
        xsa=1,
        ours_tree=project.tree("RELEASE-1.0"),
        errors=failing.output(),
    )

    assert found.found, found.detail
    # util_clamp's commit, plus the header tidy it needs to apply; not the unrelated docs
    assert [c.sha for c in found.finder.chosen] == [s["tidy"], s["clamp"]]
    reasons = {c.sha: c.reasons for c in found.finder.chosen}
    assert "adds `util_clamp`" in reasons[s["clamp"]][0]
    assert reasons[s["tidy"]] == (f"needed for {s['clamp'][:12]} to apply",)
    assert found.finder.faithful and not found.finder.minimal
    assert [e.identifier for e in found.errors][:1] == ["util_clamp"]
    assert "main.c" in found.finder.conflicts
    assert [c.status for c in found.checks] == ["passed"]  # one verification, and it builds
    assert found.finder.widened == ()  # found in the fix's files and the headers
    assert found.tree is not None


def test_with_the_proposed_prerequisites_the_branch_builds(
    project: Project, tmp_path: Path
) -> None:
    s = project.shas
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    manifest = manifests / "tiny.yaml"
    manifest.write_text(MANIFEST.format(prereqs="", xsa1=s["xsa1"], xsa2=s["xsa2"]))
    args = ["--manifests", str(manifests), "--state", str(tmp_path / "state")]
    args += ["--upstream", f"xen={project.path}", "--check", f"xen={BUILD}"]
    assert main(["check", str(manifest), *args]) == 1
    prereqs = f"    prerequisites:\n      - commit: {s['tidy']}\n      - commit: {s['clamp']}\n"
    manifest.write_text(MANIFEST.format(prereqs=prereqs, xsa1=s["xsa1"], xsa2=s["xsa2"]))
    assert main(["check", str(manifest), *args]) == 0


MANIFEST = """\
tree: xen
base: RELEASE-1.0
source: stable-1.0
branch: xsa/1.0
xsas:
  - xsa: 1
{prereqs}    commits: [{xsa1}]
  - xsa: 2
    commits: [{xsa2}]
"""


def test_check_command_prints_the_status_and_the_tail(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = project.shas
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    manifest = manifests / "tiny.yaml"
    manifest.write_text(MANIFEST.format(prereqs="", xsa1=s["xsa1"], xsa2=s["xsa2"]))
    args = ["--manifests", str(manifests), "--state", str(tmp_path / "state")]
    args += ["--upstream", f"xen={project.path}"]
    assert main(["check", str(manifest), *args]) == 2  # no check command for the tree
    assert "trees.xen.check" in capsys.readouterr().err

    assert main(["check", str(manifest), *args, "--check", f"xen={BUILD}"]) == 1
    out = capsys.readouterr().out
    assert "check failed" in out and "implicit declaration of function 'util_clamp'" in out
    assert main(["check", str(manifest), *args, "--check", f"xen={BUILD}"]) == 1
    assert "(cached)" in capsys.readouterr().out


# -- the gate, end to end ----------------------------------------------------------------------


class BuilderGate:
    """A `GatePort` over the real builder and runner (the shape reconcile's adapter takes)."""

    def __init__(self, project: Project, tmp_path: Path, manifest: Manifest) -> None:
        self.work, self.store = work_repo(project, tmp_path)
        self.builder = Builder(self.work.repo, self.store, Identity())
        self.manifest = manifest
        self.base = self.work.upstream(manifest.base, "tags") or ""
        self.source = self.work.upstream(manifest.source, "heads") or ""
        self.runner = runner(project, tmp_path)

    def build(self, held_back: frozenset[int]) -> GateBuild:
        xsas = tuple(
            x.model_copy(update={"status": "blocked", "why": "does not build"})
            if x.xsa in held_back
            else x
            for x in self.manifest.xsas
        )
        result = self.builder.build(
            self.manifest.model_copy(update={"xsas": xsas}),
            manifests_root=Path("."),
            base_commit=self.base,
            source_commit=self.source,
        )
        applied = [o for o in result.outcomes if o.state == "applied"]
        trees = [self._tree(self.base)]
        trees += [self._tree([p for p in o.picks if not p.empty][-1].commit) for o in applied]
        return GateBuild(tuple(o.xsa for o in applied), tuple(trees))

    def _tree(self, commit: str) -> str:
        return parse_commit(self.store.read(commit)[1]).tree

    def passes(self, tree: str) -> bool:
        self.store.flush([tree])
        return self.runner.check(tree).passed

    def known(self, tree: str) -> bool | None:
        found = self.runner.cached(tree)
        return None if found is None else found.passed

    def suspects(self, build: GateBuild, failing: int) -> tuple[int, ...]:
        return ()  # plain bisection


def test_the_gate_publishes_what_builds_and_the_finder_unblocks_the_rest(
    project: Project, tmp_path: Path
) -> None:
    s = project.shas
    manifest = Manifest(
        base="RELEASE-1.0",
        source="stable-1.0",
        branch="xsa/1.0",
        xsas=tuple(Xsa(xsa=n, commits=(s[f"xsa{n}"],)) for n in (1, 2, 3)),
    )
    port = BuilderGate(project, tmp_path, manifest)

    result = gate(port)

    assert result.passed and result.build.xsas == (2,)
    assert [b.xsa for b in result.blocked] == [1, 3]
    # two tips, a bisection step each, and the base: the first XSA broke it, or the base did
    assert result.checks == port.runner.runs == 5

    def unblock(block: GateBlock) -> tuple[list[str], tuple[str, ...]]:
        failing = port.runner.cached(block.tree)
        assert failing is not None and failing.status == "failed"
        found = find_build_prerequisites(
            port.work.repo,
            port.store,
            port.runner,
            base_commit=port.base,
            fix=s[f"xsa{block.xsa}"],
            xsa=block.xsa,
            ours_tree=block.good_tree,
            errors=failing.output(),
            on_branch=[s["xsa2"]] if block.xsa == 3 else [],
        )
        assert found.found, found.detail
        return [c.sha for c in found.finder.chosen], found.finder.widened

    assert unblock(result.blocked[0]) == ([s["tidy"], s["clamp"]], ())
    # XSA-3's link error names util_twice, defined only in util.c: found by widening, and it
    # needs util_clamp (and that the tidy) to apply
    assert unblock(result.blocked[1]) == ([s["tidy"], s["clamp"], s["twice"]], ("whole tree",))


def test_a_name_no_commit_adds_is_reported_not_guessed(project: Project, tmp_path: Path) -> None:
    s = project.shas
    check = runner(project, tmp_path)
    work, store = work_repo(project, tmp_path)
    found = find_build_prerequisites(
        work.repo,
        store,
        check,
        base_commit=s["root"],
        fix=s["xsa1"],
        xsa=1,
        ours_tree=project.tree("RELEASE-1.0"),
        errors="main.c:5:12: error: 'nowhere_at_all' undeclared (first use in this function)\n",
    )
    assert not found.found and found.finder.chosen == () and check.runs == 0
    assert "`nowhere_at_all`" in found.detail and found.finder.widened == ("whole tree",)


# -- the real gate adapter (`bot.check.gate.BuilderGate`) ------------------------------------


def builder_gate(
    project: Project, state: Path, xsas: tuple[int, ...], command: str, timeout: float = 60
) -> check_gate.BuilderGate:
    work = WorkRepo.for_tree(state, "xen")
    work.fetch_upstream(str(project.path))
    store = ObjectStore(work.repo)
    manifest = Manifest(
        base="RELEASE-1.0",
        source="stable-1.0",
        branch="xsa/1.0",
        xsas=tuple(Xsa(xsa=n, commits=(project.shas[f"xsa{n}"],)) for n in xsas),
    )
    return check_gate.BuilderGate(
        Builder(work.repo, store, Identity()),
        CheckRunner(command, repo_path=work.path, state=state, timeout=timeout),
        manifest,
        manifests_root=state,
        base_commit=work.upstream("RELEASE-1.0", "tags") or "",
        source_commit=work.upstream("stable-1.0", "heads") or "",
    )


def test_the_held_back_xsas_detail_is_the_same_from_any_state_dir(
    project: Project, tmp_path: Path
) -> None:
    # Xen's build names files by absolute path (its include dirs are absolute), and make -w
    # says where it runs; without compiler errors the detail is the output's last lines. None
    # of it may put the host's state dir (or a random name) into a published note.
    command = (
        'gcc -Wall -Werror -fsyntax-only "$(pwd)/main.c" && make -w -s'
        " && { test ! -f SECURITY || make -w -s security-review; }"  # fails XSA-2, not gcc
    )
    blocked = []
    for state in (tmp_path / "one", tmp_path / "elsewhere" / "two"):
        port = builder_gate(project, state, (1, 2, 3), command)
        result = port.gated_result(gate(port))
        blocked.append([o.blocked for o in result.outcomes if o.blocked is not None])
    first, second = blocked
    assert first == second
    assert [(b.xsa, b.paths) for b in first] == [(1, ("main.c",)), (2, ()), (3, ("main.c",))]
    assert first[0].detail.startswith("main.c:5:12: error: implicit declaration of function")
    assert "make: Entering directory '.'" in first[1].detail, first[1].detail
    assert str(tmp_path) not in "".join(b.detail for b in first)


def test_a_check_that_times_out_holds_no_xsa_back_and_is_not_kept(
    project: Project, tmp_path: Path
) -> None:
    # Only the trees with XSA-2 (it adds SECURITY) are slow: the base passes, so a timeout
    # taken for a failure would hold XSA-2 back as does-not-build, for good.
    state = tmp_path / "state"
    port = builder_gate(project, state, (2,), f"test -f SECURITY && sleep 5; {BUILD}", timeout=1)
    with pytest.raises(CheckTimedOut, match=r"tree [0-9a-f]{40} .*timed out after 1 s") as caught:
        gate(port)
    assert port.last is not None and caught.value.tree == port.last.tree_id  # the tip
    assert caught.value.timeout == 1
    assert isinstance(caught.value, SetupError)  # the pass reports it; nothing is published
    assert port.known(caught.value.tree) is None
    assert not (state / "checks/results" / f"{caught.value.tree}.json").exists()
    # nothing was decided: with the time it needs, the same gate holds nothing back
    slow = builder_gate(project, state, (2,), f"test -f SECURITY && sleep 5; {BUILD}", timeout=30)
    outcome = gate(slow)
    assert outcome.passed and outcome.blocked == () and outcome.build.xsas == (2,)


def test_a_move_across_more_headers_than_the_bound_builds_afresh_in_the_line_s_directory(
    project: Project, tmp_path: Path
) -> None:
    """Crossing many headers, make redoes most of the tree anyway: a fresh build costs the
    same, and its failure needs no confirmation. Here the bound is 0: util.h is one too many."""
    check = runner(project, tmp_path)
    check.far_headers = 0
    assert check.check(project.tree("RELEASE-1.0"), line="l").passed
    assert check.check(project.tree(project.shas["tidy"]), line="l").passed  # util.h differs
    assert check.check(project.tree(project.shas["docs"]), line="l").passed  # the README only
    assert [r.incremental for r in check.history] == [False, False, True]
    assert check.exports == 0  # built in the line's directory each time, no export beside it


def test_a_far_build_goes_to_the_other_directory_and_each_keeps_what_is_near_it(
    project: Project, tmp_path: Path
) -> None:
    """Two directories per line: a far tree is built fresh in the one built least recently,
    and a later tree moves the one holding the tree nearest it. util.h differs between A,
    {tidy, docs} and {clamp, xsa1} (bound 0: one header is too far)."""
    check = runner(project, tmp_path)
    check.far_headers = 0
    s = project.shas
    order = ["root", "tidy", "clamp", "docs", "xsa1"]
    for name in order:
        assert check.check(project.tree(s[name]), line="l").passed
    assert [r.incremental for r in check.history] == [False, False, False, True, True]
    marks = (tmp_path / "state" / "checks" / "build").glob("*/l/*.tree")
    held = {p.name: json.loads(p.read_text())["tree"] for p in marks}
    # the first directory: root, then clamp (fresh), then moved to xsa1; the second: tidy,
    # then moved to docs
    assert held == {"0.tree": project.tree(s["xsa1"]), "0.1.tree": project.tree(s["docs"])}


def test_a_directory_holding_a_tree_the_repository_lacks_is_built_afresh(
    project: Project, tmp_path: Path
) -> None:
    """A state dir's checks shared with another repository (or one restored from elsewhere):
    the tree a build directory says it holds is unknown here, which is no error."""
    check = runner(project, tmp_path)
    assert check.check(project.tree("RELEASE-1.0"), line="l").passed
    [mark] = (tmp_path / "state" / "checks" / "build").glob("*/l/0.tree")
    mark.write_text(json.dumps({"tree": "ab" * 20, "command": check.command}))
    assert check.check(project.tree(project.shas["docs"]), line="l").passed
    assert [r.incremental for r in check.history] == [False, False]
