"""The forge's CI as the check gate: candidates pushed to `xsa-candidate/...`, published only on
success, on the tiny C project whose XSA-1 and XSA-3 merge but do not build.

The local forge is the CI here (it runs `make` on the pushed commit's tree); the fake GitLab,
driven by the real python-gitlab, stands in for a pipeline whose statuses the test scripts.
Waiting is injected: no test sleeps.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.app.pass_ import run_pass
from bot.app.wiring import Adapters, ci_forge
from bot.check.forge_ci import CiState, CiStatus, ForgeCiRunner
from bot.check.gate import BuilderGate
from bot.check.runner import CheckTimedOut
from bot.config import Config, ForgeConfig, Identity, Tree
from bot.core.gate import gate
from bot.core.refs import candidate_ref
from bot.errors import SetupError
from bot.forges.gitlab import GitLabForge
from bot.forges.http import RetryPolicy
from bot.forges.local import CI_CONTEXT, LocalForge
from bot.git.build import Builder
from bot.git.objects import ObjectStore
from bot.git.runner import git, git_text
from bot.git.workrepo import WorkRepo
from bot.manifest.model import Manifest, Xsa
from tests.cproject import BUILD, Project, make_project
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.repos import bare_manifests_repo
from tests.gitrepo import RepoBuilder

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc and make"
)

CANDIDATE = "refs/heads/xsa-candidate/1.0"
PUBLISHED = "refs/heads/xsa/1.0"
TOKEN = "glpat-ForgeCiT0k3n"
PROJECT = "xen-project/xen-xsa"


class Clock:
    """Injected time: each sleep advances the clock; `on_sleep` lets a test act meanwhile."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))


class Scripted:
    """A forge whose CI says the same thing about every commit, and counts the questions."""

    def __init__(self, state: CiState) -> None:
        self.state = state
        self.asked: list[str] = []

    def check_status(self, sha: str) -> CiState:
        self.asked.append(sha)
        return self.state


class Held:
    """The local forge's CI behind a pipeline that stays pending until released."""

    def __init__(self, forge: CiStatus) -> None:
        self.forge = forge
        self.released = False

    def check_status(self, sha: str) -> CiState:
        return self.forge.check_status(sha) if self.released else "pending"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "upstream")


def _manifest(p: Project, xsas: tuple[int, ...]) -> str:
    entries = "".join(f"  - xsa: {x}\n    commits: [{p.shas[f'xsa{x}']}]\n" for x in xsas)
    return f"base: RELEASE-1.0\nsource: stable-1.0\nbranch: xsa/1.0\nxsas:\n{entries}"


def _config(tmp_path: Path, project: Project, xsas: tuple[int, ...]) -> Config:
    repo = RepoBuilder(tmp_path / "manifests-repo")
    repo.commit("add 1.0\n", {"manifests/1.0.yaml": _manifest(project, xsas)})
    tree = Tree(upstream=str(project.path), check=BUILD, check_timeout=60, check_via="forge-ci")
    return Config(state=tmp_path / "state", manifests=repo.path / "manifests", trees={"xen": tree})


def _forge_ci(forge_for: Callable[[Config, str], CiStatus], clock: Clock) -> Adapters:
    """The pass with forge CI as the check, made as the default wiring makes it, but with a
    forge of the test's choosing and a fake clock (no real waiting)."""

    def check(config: Config, tree: str, work: WorkRepo) -> ForgeCiRunner:
        return ForgeCiRunner(
            forge_for(config, tree),
            work=work,
            mirror=config.mirror_of(tree),
            namespace=config.namespace,
            state=config.state,
            timeout=config.trees[tree].check_timeout,
            poll=5,
            grace=30,
            clock=clock,
            sleep=clock.sleep,
        )

    return Adapters(check=check)


def _ref(repo: Path | str, ref: str) -> str | None:
    found = git(["rev-parse", "--verify", "--quiet", ref], cwd=repo, check=False)
    return found.stdout.decode().strip() or None


def _statuses(config: Config) -> dict[str, str]:
    """The local forge's CI verdict on each commit it was asked about."""
    folder = config.state / "proposals" / "statuses"
    return {p.stem: json.loads(p.read_text())[CI_CONTEXT]["state"] for p in folder.glob("*.json")}


def _contains(repo: str, commit: str, source: str) -> bool:
    """Whether `commit`'s history has a pick of the source commit `source`."""
    log = git_text(["log", "--format=%B", commit], cwd=repo)
    return f"(cherry picked from commit {source})" in log


# -- through the pass, with the local forge as CI --------------------------------------------


def test_a_passing_candidate_is_pushed_then_promoted_to_the_published_branch(
    tmp_path: Path, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, project, (2,))  # the config's own wiring: no patching
    [branch] = run_pass(config, publish=True).report.branches
    mirror = config.mirror_of("xen")

    assert branch.published and branch.check is not None
    assert branch.check["command"] == "forge-ci" and branch.check["passed"] is True
    tip = _ref(mirror, PUBLISHED)
    assert tip is not None and _ref(mirror, CANDIDATE) == tip  # the very commit CI passed
    assert _statuses(config) == {tip: "success"}
    # The local CI really built that tree (and no other) with the tree's check command.
    [built] = (config.state / "proposals/ci/checks/results").glob("*.json")
    assert built.stem == git_text(["rev-parse", f"{tip}^{{tree}}"], cwd=mirror)
    assert json.loads(built.read_text())["command"] == BUILD


def test_the_published_branch_moves_only_once_ci_reports_success(
    tmp_path: Path, project: Project
) -> None:
    config = _config(tmp_path, project, (2,))
    clock = Clock()
    held: dict[str, Held] = {}

    def forge_for(config: Config, tree: str) -> Held:
        return held.setdefault(tree, Held(ci_forge(config, tree)))

    adapters = _forge_ci(forge_for, clock)
    mirror = config.mirror_of("xen")

    [first] = run_pass(config, publish=True, adapters=adapters).report.branches
    assert not first.published and _ref(mirror, PUBLISHED) is None
    assert _ref(mirror, CANDIDATE) is not None  # CI has something to run on
    assert _statuses(config) == {}  # and has not reported yet

    held["xen"].released = True
    [second] = run_pass(config, publish=True, adapters=adapters).report.branches
    tip = _ref(mirror, PUBLISHED)
    assert second.published and tip is not None
    assert _statuses(config)[tip] == "success"
    assert _contains(mirror, tip, project.shas["xsa2"])


def test_a_failing_candidate_is_not_promoted_and_the_breaking_xsas_are_held_back(
    tmp_path: Path, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, project, (1, 2, 3))  # the config's own wiring: no patching
    [branch] = run_pass(config, publish=True).report.branches
    mirror = config.mirror_of("xen")

    assert branch.published and branch.check is not None
    assert branch.check["held_back"] == [1, 3] and branch.check["passed"] is True
    assert [b.xsa for b in branch.blocked] == [1, 3]
    tip = _ref(mirror, PUBLISHED)
    assert tip is not None
    statuses = _statuses(config)
    # Every candidate went through the forge once: bisection, not one build per prefix.
    assert len(statuses) == branch.check["checks_run"] == len(branch.check["trees_checked"])
    failed = [sha for sha, state in statuses.items() if state == "failure"]
    passed = {sha for sha, state in statuses.items() if state == "success"}
    # Failing: the tip with 1-3, then the prefix with 1; without 1, the tip with 2-3.
    # Passing: the base (is XSA-1 to blame?), and the prefix with 2, published.
    assert len(failed) == 3 and passed == {tip, project.upstream.repo.git.rev_parse("RELEASE-1.0")}
    for sha in failed:  # each failing candidate has a breaking XSA, and none was published
        assert _contains(mirror, sha, project.shas["xsa1"]) or _contains(
            mirror, sha, project.shas["xsa3"]
        )
        assert git_text(["branch", "--contains", sha, "--format=%(refname)"], cwd=mirror) == ""
    assert _contains(mirror, tip, project.shas["xsa2"])
    assert not _contains(mirror, tip, project.shas["xsa1"])
    assert not _contains(mirror, tip, project.shas["xsa3"])


# -- the runner on its own --------------------------------------------------------------------


def _work(project: Project, tmp_path: Path) -> tuple[WorkRepo, str]:
    """The bot's work repository (borrowing the upstream's objects), and a mirror path."""
    work = WorkRepo.for_tree(tmp_path / "state", "xen")
    work.fetch_upstream(str(project.path))
    mirror = tmp_path / "mirror.git"
    work.fetch_mirror(str(mirror), "xsa/", create=True)
    return work, str(mirror)


def _runner(
    forge: CiStatus, project: Project, tmp_path: Path, clock: Clock, **kw: float
) -> ForgeCiRunner:
    work, mirror = _work(project, tmp_path)
    runner = ForgeCiRunner(
        forge,
        work=work,
        mirror=mirror,
        namespace="xsa/",
        state=tmp_path / "state",
        clock=clock,
        sleep=clock.sleep,
        **kw,
    )
    base = project.upstream.repo.git.rev_parse("RELEASE-1.0")
    runner.add_candidate(project.tree("RELEASE-1.0"), base, "xsa/1.0")
    return runner


def test_candidate_refs_live_beside_the_namespace() -> None:
    assert candidate_ref("xsa/4.19", "xsa/") == "refs/heads/xsa-candidate/4.19"
    assert candidate_ref("xsa/4.19.3", "xsa/") == "refs/heads/xsa-candidate/4.19.3"
    with pytest.raises(ValueError, match="namespace"):
        candidate_ref("stable-4.19", "xsa/")


def test_a_status_pending_past_the_timeout_is_a_timeout_and_is_asked_again(
    tmp_path: Path, project: Project
) -> None:
    clock, forge = Clock(), Scripted("pending")
    runner = _runner(forge, project, tmp_path, clock, timeout=60, poll=25)
    tree, base = project.tree("RELEASE-1.0"), project.upstream.repo.git.rev_parse("RELEASE-1.0")

    result = runner.check(tree)
    assert (result.status, result.exit_status, result.passed) == ("timeout", None, False)
    assert clock.sleeps == [25, 25, 10] and result.seconds == 60
    assert _ref(tmp_path / "mirror.git", CANDIDATE) == base
    assert "no verdict within 60 s" in result.tail
    # The pipeline outlives the wait: next time the forge is asked again, not the cache.
    assert runner.cached(tree) is None
    assert not (tmp_path / "state/checks/results" / f"{tree}.json").exists()
    forge.state = "success"
    again = runner.check(tree)
    assert again.passed and not again.cached and runner.runs == 2
    assert runner.check(tree).cached and runner.runs == 2  # a verdict is kept


class Slow:
    """CI that passes the commits in `done` and keeps the others pending."""

    def __init__(self, done: set[str]) -> None:
        self.done = done

    def check_status(self, sha: str) -> CiState:
        return "success" if sha in self.done else "pending"


def test_a_pipeline_past_the_timeout_holds_no_xsa_back(tmp_path: Path, project: Project) -> None:
    # The base's pipeline has passed, the tip's is still running: taken for a failure, the
    # timeout would hold XSA-2 back as does-not-build, and the pass would not ask again.
    work, mirror = _work(project, tmp_path)
    base = project.upstream.repo.git.rev_parse("RELEASE-1.0")
    clock, forge = Clock(), Slow({base})
    runner = ForgeCiRunner(
        forge,
        work=work,
        mirror=mirror,
        namespace="xsa/",
        state=tmp_path / "state",
        timeout=60,
        poll=25,
        clock=clock,
        sleep=clock.sleep,
    )
    port = BuilderGate(
        Builder(work.repo, ObjectStore(work.repo), Identity()),
        runner,
        Manifest(
            base="RELEASE-1.0",
            source="stable-1.0",
            branch="xsa/1.0",
            xsas=(Xsa(xsa=2, commits=(project.shas["xsa2"],)),),
        ),
        manifests_root=tmp_path,
        base_commit=base,
        source_commit=work.upstream("stable-1.0", "heads") or "",
    )

    with pytest.raises(CheckTimedOut, match=r"tree [0-9a-f]{40} \(forge-ci\) timed out after 60 s"):
        gate(port)
    assert port.last is not None
    tip, tree = port.last.tip, port.last.tree_id
    assert port.known(tree) is None and runner.cached(tree) is None
    assert not (tmp_path / "state/checks/results" / f"{tree}.json").exists()
    assert _ref(tmp_path / "mirror.git", CANDIDATE) == tip  # only the candidate moved

    forge.done.add(tip)  # the pipeline finishes: the next pass asks, and publishes XSA-2
    outcome = gate(port)
    assert outcome.passed and outcome.blocked == () and outcome.build.xsas == (2,)


def test_a_forge_that_never_knows_the_commit_is_a_setup_error(
    tmp_path: Path, project: Project
) -> None:
    manifests = RepoBuilder(tmp_path / "manifests-repo")
    manifests.commit("init\n", {"manifests/README": "x\n"})
    no_ci = LocalForge(manifests.path / "manifests", tmp_path / "state", Identity())
    clock = Clock()
    runner = _runner(no_ci, project, tmp_path, clock, timeout=600, poll=20, grace=45)
    tree = project.tree("RELEASE-1.0")

    with pytest.raises(SetupError, match=r"no status .* after 45 s.*xsa-candidate/1\.0"):
        runner.check(tree)
    assert sum(clock.sleeps) == 45  # the grace period, not the whole timeout
    assert runner.cached(tree) is None and runner.runs == 0  # no XSA is blamed for it


def test_a_tree_no_build_made_cannot_be_checked(tmp_path: Path, project: Project) -> None:
    runner = _runner(Scripted("success"), project, tmp_path, Clock())
    with pytest.raises(ValueError, match="no built commit"):
        runner.check(project.tree("stable-1.0"))


# -- with GitLab's statuses, through python-gitlab ---------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeGitLab]:
    server = FakeGitLab(TOKEN)
    server.start()
    yield server
    server.stop()
    assert not server.unknown, f"requests the fake does not know: {server.unknown}"
    assert not server.errors, server.errors[0]


def _gitlab(fake: FakeGitLab, tmp_path: Path) -> GitLabForge:
    fake.add_project(PROJECT)
    config = ForgeConfig(
        kind="gitlab", url=fake.url, project=PROJECT, git_url=str(bare_manifests_repo(tmp_path))
    )
    return GitLabForge(
        config,
        token=TOKEN,
        cache=tmp_path / "state" / "forges" / "gitlab.git",
        identity=Identity(),
        policy=RetryPolicy(backoff=0.01, max_wait=1.0, sleep=lambda _s: None),
    )


@pytest.mark.parametrize(("final", "status"), [("success", "passed"), ("failed", "failed")])
def test_gitlab_pipeline_statuses_on_the_candidate_are_the_verdict(
    tmp_path: Path, project: Project, fake: FakeGitLab, final: str, status: str
) -> None:
    base = project.upstream.repo.git.rev_parse("RELEASE-1.0")

    def pipeline(sleeps: int) -> None:  # the pipeline starts, then its job finishes
        if sleeps == 2:
            fake.add_status(PROJECT, base, "build", "running")
        if sleeps == 3:
            fake.add_status(PROJECT, base, "build", final)
            fake.add_status(PROJECT, base, "lint", "failed", allow_failure=True)

    clock = Clock(pipeline)
    runner = _runner(_gitlab(fake, tmp_path), project, tmp_path, clock, poll=10, grace=15)
    result = runner.check(project.tree("RELEASE-1.0"))

    assert result.status == status and clock.sleeps == [10, 5, 10]
    assert _ref(tmp_path / "mirror.git", CANDIDATE) == base
    record = json.loads((tmp_path / "state/checks/results" / f"{result.tree}.json").read_text())
    assert record["command"] == "forge-ci" and record["commit"] == base
