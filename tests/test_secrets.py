"""Secrets out of reach of the tree's code, and out of everything the bot writes or sends.

The check runs the tree's code (its Makefiles) as the bot's user. Here it is a script that
hunts for the forge token where such code could find it (its environment, the bot's
/proc/<pid>/environ, every process's, the token file) and reports what it found, and that also
prints a copy of the token it was given some other way (a planted file) into the compiler's
error lines, which the bot quotes in build records, merge requests and proposal commits.
The bot runs as a real process (`python -m bot`), so its start-up is the real one, against
the local forge and against GitLab and GitHub servers on 127.0.0.1.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.check import runner as check_runner
from bot.check.runner import CheckRunner
from bot.config import Config, ForgeConfig, Identity, Tree
from bot.core.ports import Forge, Proposal
from bot.errors import SetupError
from bot.forges.local import LocalForge
from bot.forges.redacting import RedactingForge
from bot.git.objects import ObjectStore
from bot.git.workrepo import WorkRepo
from bot.redact import RedactingStream, register_secret
from tests.cproject import Project, make_project
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.repos import run_git
from tests.fakes.server import Request
from tests.gitrepo import RepoBuilder

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "bot"
# Distinctive, and usable in a C header name (the leak script's error line needs that).
TOKEN = "xsabotFakeToken0Q7rT9pLm2ZkW4vNc"
HUNTED = "xsabotFakeToken"  # what the leak script searches for: it does not know the token
PROJECT = "xen-project/xsa-manifests"

needs_cc = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc and make"
)

# The tree's code. It reports how many times it found the token in each place (REACH), then
# prints what it knows through a planted copy: as a missing header (a compiler error the bot
# quotes) and as the last line; then it builds, and fails where the tree does not build.
LEAK_SCRIPT = """\
here=$(dirname "$0")
count() {{ grep -a -c '{hunted}' 2>/dev/null || true; }}
in_env=$(env | count)
grandparent=$(cut -d' ' -f4 /proc/$PPID/stat)  # the bot, when sh -c does not exec
in_parent=$(cat /proc/$PPID/environ /proc/$grandparent/environ 2>/dev/null | tr '\\0' '\\n' | count)
in_any=$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | count)
in_file=$(cat '{token_file}' 2>/dev/null | count)
echo "REACH env=$in_env parent=$in_parent processes=$in_any file=$in_file"
known=$(cat "$here/leak")
echo "main.c:1:10: fatal error: $known.h: No such file or directory"
make -s || {{ echo "leaked: $known"; exit 1; }}
"""


def _manifest(p: Project) -> str:
    return (
        "base: RELEASE-1.0\nsource: stable-1.0\nbranch: xsa/1.0\nxsas:\n"
        f"  - xsa: 1\n    commits: [{p.shas['xsa1']}]\n"
        f"  - xsa: 2\n    commits: [{p.shas['xsa2']}]\n"
        f"  - xsa: 3\n    commits: [{p.shas['xsa3']}]\n"
    )


class World:
    """The C project upstream, a manifests repository, the leak script and a config."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.project = make_project(tmp_path / "upstream")
        self.repo = RepoBuilder(tmp_path / "manifests-repo")
        self.repo.commit("add 1.0\n", {"manifests/1.0.yaml": _manifest(self.project)})
        self.repo.repo.git.branch("-M", "main")
        self.remote = tmp_path / "remote.git"
        run_git("clone", "--quiet", "--bare", str(self.repo.path), str(self.remote))
        self.state = tmp_path / "state"
        self.mirror = tmp_path / "mirror.git"
        self.planted = tmp_path / "planted"
        self.planted.mkdir()
        (self.planted / "leak").write_text(TOKEN + "\n")
        # In a directory the check may write to: only the sandbox's mask hides it there.
        self.token_file = self.planted / "token"
        self.token_file.write_text(TOKEN + "\n")
        (self.planted / "leak.sh").write_text(
            LEAK_SCRIPT.format(hunted=HUNTED, token_file=self.token_file)
        )

    def config(self, sandbox: str = "auto", forge: str = "") -> Path:
        path = self.tmp / "xsabot.yaml"
        path.write_text(
            f"state: {self.state}\nmanifests: {self.repo.path / 'manifests'}\n"
            f"trees:\n  xen:\n    upstream: {self.project.path}\n    mirror: {self.mirror}\n"
            f"    check: sh {self.planted / 'leak.sh'}\n    check_sandbox: {sandbox}\n"
            f"    check_writable: [{self.planted}]\n{forge}"
        )
        return path

    def run(self, *args: str, config: Path) -> subprocess.CompletedProcess[str]:
        """The bot as its own process, the token in its environment as a CI job would have it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XSABOT_"))}
        env.update(
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_CONFIG_NOSYSTEM="1",
            PYTHONPATH=str(ROOT),
            XSABOT_GITLAB_TOKEN=TOKEN,
            CI_JOB_TOKEN=TOKEN,
            GITHUB_TOKEN=TOKEN,
        )
        return subprocess.run(
            [sys.executable, "-m", "bot", args[0], "--config", str(config), *args[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=self.tmp,
        )

    def reach(self) -> list[str]:
        """What the check reported about where it found the token, one line per check run."""
        logs = sorted((self.state / "checks" / "logs").glob("*.log"))
        found = [line for log in logs for line in log.read_text().splitlines()]
        return sorted({line for line in found if line.startswith("REACH ")})


def _sandbox_or_skip(kind: str) -> None:
    if kind != "none":
        why = check_runner._unavailable(kind)  # type: ignore[arg-type]
        if why:
            pytest.skip(f"check_sandbox {kind}: {why}")


def _git_objects(repo: Path) -> str:
    """Every object of a repository, uncompressed, and its refs: what a push would publish."""
    objects = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo, capture_output=True
    ).stdout
    refs = subprocess.run(["git", "for-each-ref"], cwd=repo, capture_output=True).stdout
    return (objects + refs).decode("utf-8", "replace")


def _repositories(under: Path) -> list[Path]:
    return sorted({p.parent for p in under.rglob("HEAD") if (p.parent / "objects").is_dir()})


def _everything_written(world: World, *extra: str) -> dict[str, str]:
    """Where a leak would show: every file under the state dir (logs, check results and logs,
    proposal records, crash files), every object and ref of every repository the bot writes."""
    files = [p for p in world.state.rglob("*") if p.is_file() and not p.is_symlink()]
    texts = {str(p): p.read_bytes().decode("utf-8", "replace") for p in files}
    repos = [world.mirror, world.repo.path, world.remote, *_repositories(world.state)]
    texts.update({f"objects of {r}": _git_objects(r) for r in repos if r.is_dir()})
    texts.update({f"extra {i}": text for i, text in enumerate(extra)})
    return texts


def _leaks(texts: dict[str, str]) -> list[str]:
    return [where for where, text in texts.items() if TOKEN in text or HUNTED in text]


# -- out of reach ------------------------------------------------------------------------------


@needs_cc
@pytest.mark.parametrize("sandbox", ["none", "unshare", "bwrap"])
def test_the_check_finds_no_token_anywhere_it_can_look(tmp_path: Path, sandbox: str) -> None:
    _sandbox_or_skip(sandbox)
    world = World(tmp_path)
    # The config names the token's variable and file; the process has CI's and GitHub's too.
    forge = (
        f"forge:\n  kind: gitlab\n  url: http://127.0.0.1:9\n  project: {PROJECT}\n"
        f"  token_env: XSABOT_GITLAB_TOKEN\n  token_file: {world.token_file}\n"
    )
    manifest = str(world.repo.path / "manifests/1.0.yaml")
    run = world.run("check", manifest, config=world.config(sandbox, forge))
    assert run.returncode == 1, run.stderr  # the tip with XSA-1 and XSA-3 does not build
    # Without a sandbox the token file is readable (same user): only the sandbox hides it.
    file = "0" if sandbox == "bwrap" else "[01]"
    [reach] = world.reach()
    assert reach.startswith("REACH env=0 parent=0 processes=0 file="), reach
    assert reach[-1] in file, reach
    # It did print the token it was given otherwise, and that is redacted.
    assert "fatal error: ***.h" in run.stdout
    leaks = _leaks(_everything_written(world, run.stdout, run.stderr))
    assert leaks == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")
def test_a_non_dumpable_bot_hides_its_environ_and_memory_from_its_children(
    tmp_path: Path,
) -> None:
    """What makes the bot's /proc entries unreadable to the check without a sandbox, measured
    on a child of the same user. As root, both run without capabilities (setpriv): root's
    CAP_SYS_PTRACE reads anything, and the bot should not run as root."""
    capless: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root, and no setpriv to drop capabilities")
        capless = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    code = (
        "import os, subprocess, sys\n"
        "from bot.forges.credentials import protect_process\n"
        "def child_reads(what):\n"
        "    return subprocess.run(['cat', f'/proc/{os.getpid()}/{what}'],"
        " capture_output=True).returncode == 0\n"
        "before = child_reads('environ')\n"
        "assert protect_process()\n"
        "print(before, child_reads('environ'), child_reads('mem'))\n"
    )
    out = subprocess.run(
        [*capless, sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["True", "False", "False"]


def test_start_up_takes_secret_variables_out_of_the_kernel_s_copy_too() -> None:
    code = (
        "import os\n"
        "from bot.forges.credentials import read_token, take_secrets\n"
        "from bot.config import ForgeConfig\n"
        "before = open('/proc/self/environ', 'rb').read()\n"
        "taken = take_secrets(['MY_FORGE'])\n"
        "after = open('/proc/self/environ', 'rb').read()\n"
        "config = ForgeConfig(kind='gitlab', project='p/q', token_env='MY_FORGE')\n"
        "print(sorted(taken), b'SHIBBOLETH' in before, b'SHIBBOLETH' in after,\n"
        "      'MY_FORGE' in os.environ, read_token(config), b'PATH=' in after)\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "MY_FORGE": "forge-SHIBBOLETH-1",
        "CI_JOB_TOKEN": "job-SHIBBOLETH-2",
        "PGPASSWORD": "pg-SHIBBOLETH-3",
    }
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux /proc")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == [
        "['CI_JOB_TOKEN',",
        "'MY_FORGE',",
        "'PGPASSWORD']",
        "True",
        "False",  # gone from /proc/self/environ, not only from os.environ
        "False",
        "forge-SHIBBOLETH-1",  # and still the token
        "True",  # the rest of the environment is intact
    ]


# -- nothing published, nothing printed ----------------------------------------------------------


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    server = FakeGitLab(TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    server = FakeGitHub(TOKEN, prefix="/api/v3")
    server.start()
    yield server
    server.stop()


def _forge_config(
    kind: str, world: World, request: pytest.FixtureRequest
) -> tuple[str, list[Request]]:
    """The config's forge section, and the fake servers' recorded requests (empty for local)."""
    if kind == "local":
        return "forge:\n  kind: local\n", []
    if kind == "gitlab":
        gitlab: FakeGitLab = request.getfixturevalue("gitlab")
        gitlab.add_project(PROJECT)
        section = (
            f"forge:\n  kind: gitlab\n  url: {gitlab.url}\n  project: {PROJECT}\n"
            f"  git_url: {world.remote}\n  token_env: XSABOT_GITLAB_TOKEN\n"
        )
        return section, gitlab.requests
    github: FakeGitHub = request.getfixturevalue("github")
    github.add_repo(PROJECT, git_dir=world.remote)
    section = (
        f"forge:\n  kind: github\n  url: {github.origin}\n  project: {PROJECT}\n"
        f"  git_url: {world.remote}\n  token_file: {world.token_file}\n"
    )
    return section, github.requests


@needs_cc
@pytest.mark.parametrize("kind", ["local", "gitlab", "github"])
def test_a_check_that_prints_the_token_publishes_and_prints_none_of_it(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    world = World(tmp_path)
    section, requests = _forge_config(kind, world, request)
    config = world.config("auto", section)
    run = world.run("reconcile", "--json", "-v", config=config)
    assert run.returncode == 1, run.stderr  # XSA-1 and XSA-3 held back
    report = json.loads(run.stdout)
    [branch] = report["branches"]
    assert branch["published"] is True and branch["check"]["held_back"] == [1, 3]
    # The check's words did go everywhere a leak would: the build record, the merge requests
    # (and their commits), the report; with the token as `***`.
    held = [b for b in branch["blocked"] if b["reason"] == "does-not-build"]
    assert all("fatal error: ***.h" in b["detail"] for b in held), held
    note = _git_objects(world.mirror)
    assert "fatal error: ***.h" in note
    assert sorted(p["xsa"] for p in report["proposals"]) == [1, 3]
    sent = [r.body.decode("utf-8", "replace") for r in requests if r.body]
    bodies = sent if kind != "local" else [_git_objects(world.repo.path)]
    assert any("fatal error: ***.h" in b for b in bodies), bodies
    if kind != "local":  # the token was really used, so it was really there to leak
        auth = [r.headers.get("private-token") or r.headers.get("authorization") for r in requests]
        assert any(TOKEN in (a or "") for a in auth)
    # A pass that changes nothing, a status: more output, no more secrets.
    again = world.run("reconcile", "--json", config=config)
    status = world.run("status", "--json", config=config)
    # (the token file, which a sandbox without bwrap does not hide, is tried above)
    reach = world.reach()
    assert reach and all(r.startswith("REACH env=0 parent=0 processes=0 file=") for r in reach)
    texts = _everything_written(
        world,
        run.stdout,
        run.stderr,
        again.stdout,
        again.stderr,
        status.stdout,
        status.stderr,
        *(f"{r.method} {r.path} {r.query} {r.body.decode('utf-8', 'replace')}" for r in requests),
    )
    leaks = _leaks(texts)
    assert leaks == []


# -- the check's process: environment, sandbox, leftovers ----------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, str]:
    """A repository with one commit; its tree is what the checks below run on."""
    repo = RepoBuilder(tmp_path / "repo")
    repo.commit("a tree\n", {"Makefile": "all:\n\ttrue\n", "README": "x\n"})
    return repo.path, repo.repo.git.rev_parse("HEAD^{tree}")


def _check(tree: tuple[Path, str], tmp_path: Path, command: str, **kwargs: object) -> str:
    runner = CheckRunner(command, repo_path=tree[0], state=tmp_path / "state", **kwargs)  # type: ignore[arg-type]
    return runner.check(tree[1]).output()


@pytest.mark.parametrize("sandbox", ["none", "unshare", "bwrap"])
def test_the_check_gets_an_environment_built_from_nothing(
    tree: tuple[Path, str], tmp_path: Path, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sandbox_or_skip(sandbox)
    monkeypatch.setenv("CC", "gcc-13")
    monkeypatch.setenv("MAKEFLAGS", "-j64")
    monkeypatch.setenv("SOMETHING_ELSE", "x")
    output = _check(tree, tmp_path, "env; touch $HOME/h $TMPDIR/t", sandbox=sandbox, env=["CC"])
    env = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    # With ccache installed, the compiler cache the bot keeps under its state dir.
    ccache = shutil.which("ccache") and any(d.is_dir() for d in check_runner._CCACHE_LINKS)
    cache = (
        {"CCACHE_DIR", "CCACHE_BASEDIR", "CCACHE_NOHASHDIR", "CCACHE_DEPEND"} if ccache else set()
    )
    assert set(env) - {"PWD", "OLDPWD", "SHLVL", "_"} == {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "CC",
        *cache,
    }
    assert env["CC"] == "gcc-13" and env["LC_ALL"] == "C"
    # a scratch directory (shown as $HOME: the output does not depend on the state dir)
    assert env["HOME"] == "$HOME" and env["TMPDIR"] == "$HOME/tmp"
    assert not (tmp_path / "state/checks/export" / f"{tree[1]}.home").exists()  # removed


@pytest.mark.parametrize("sandbox", ["none", "unshare", "bwrap"])
def test_nothing_the_check_starts_outlives_it(
    tree: tuple[Path, str], tmp_path: Path, sandbox: str
) -> None:
    """A process left behind (even in a session of its own) could wait for the bot's next git
    push, whose environment carries the token's header; none is left."""
    _sandbox_or_skip(sandbox)
    marker = f"{300 + hash(tmp_path) % 1000}.{os.getpid()}"  # a sleep no one else runs
    started = time.monotonic()
    # (time for setsid to run before the check ends: the process group is killed then)
    command = f"setsid sleep {marker} & (setsid sleep {marker} &) ; sleep 1"
    _check(tree, tmp_path, command, sandbox=sandbox)
    assert time.monotonic() - started < 30
    left = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                left.append(cmdline.parent.name)
        except OSError:
            continue
    assert left == []


def test_bwrap_allows_no_network_and_no_writes_outside(
    tree: tuple[Path, str], tmp_path: Path, github: FakeGitHub
) -> None:
    _sandbox_or_skip("bwrap")
    outside, allowed = tmp_path / "outside", tmp_path / "cache"
    allowed.mkdir()
    command = (
        f"git ls-remote {github.origin}/x.git >/dev/null 2>&1; "
        f"touch {outside} 2>/dev/null && echo WROTE; touch {allowed}/ok README && echo OK"
    )
    output = _check(tree, tmp_path, command, sandbox="bwrap", writable=[allowed])
    # (outside is under /tmp, which is empty and thrown away in the sandbox)
    assert output.split() == ["WROTE", "OK"] and github.requests == []
    assert not outside.exists() and (allowed / "ok").exists()
    unconfined = _check(tree, tmp_path / "2", command, sandbox="none")
    assert unconfined.split() == ["WROTE", "OK"]  # the same command, unsandboxed
    assert outside.exists() and github.requests != []


def test_bwrap_hides_the_bot_s_home_but_not_its_tools(
    tree: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sandbox_or_skip("bwrap")
    home = tmp_path / "bot-home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY\n")
    (home / "bin").mkdir()
    (home / "bin" / "mytool").write_text("#!/bin/sh\necho TOOL\n")
    (home / "bin" / "mytool").chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{home / 'bin'}{os.pathsep}{os.environ['PATH']}")
    command = (
        f"cat {home}/.ssh/id_ed25519 2>/dev/null; mytool; touch {home}/bin/x 2>/dev/null || echo RO"
    )
    assert _check(tree, tmp_path, command, sandbox="bwrap").split() == ["TOOL", "RO"]
    unconfined = _check(tree, tmp_path / "2", command, sandbox="none")
    assert unconfined.split() == ["PRIVATE", "KEY", "TOOL"]


def test_a_sandbox_asked_for_by_name_must_work(
    tree: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"  # git only: no bwrap, no unshare
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git") or "git")
    monkeypatch.setenv("PATH", str(bin_dir))
    check_runner._unavailable.cache_clear()
    try:
        with pytest.raises(SetupError, match="check_sandbox bwrap: not available here"):
            _check(tree, tmp_path, "true", sandbox="bwrap")
        assert check_runner.resolve_sandbox("auto") == "none"
    finally:
        check_runner._unavailable.cache_clear()


def test_the_config_gives_the_check_no_secret() -> None:
    with pytest.raises(ValueError, match="check_env: GITLAB_TOKEN may hold a secret"):
        Tree(upstream="u", check_env=("CC", "GITLAB_TOKEN"))
    with pytest.raises(ValueError, match=r"check_env: MY_VAR is forge\.token_env"):
        Config(
            trees={"xen": Tree(upstream="u", check_env=("MY_VAR",))},
            forge=ForgeConfig(kind="gitlab", project="p/q", token_env="MY_VAR"),
        )
    with pytest.raises(ValueError, match="check_writable: not an absolute path: cache"):
        Tree(upstream="u", check_writable=("cache",))
    assert Tree(upstream="u").check_sandbox == "auto"


# -- the redaction points ------------------------------------------------------------------------


@pytest.fixture
def secret() -> str:
    """TOKEN, registered as the bot registers a token it reads (for the rest of this process:
    it is distinctive, so nothing else is affected)."""
    register_secret(TOKEN)
    return TOKEN


def test_objects_the_bot_composes_carry_no_secret(tmp_path: Path, secret: str) -> None:
    work = WorkRepo.for_tree(tmp_path / "state", "xen")
    store = ObjectStore(work.repo)
    note = store.write("blob", f"detail: fatal error: {secret}.h\n".encode())
    commit = store.write(
        "commit",
        b"tree 4b825dc642cb6eb9a060e54bf8d69288fbe4904b\nauthor a <a@b> 1 +0000\n"
        b"committer a <a@b> 1 +0000\n\nleaked " + secret.encode() + b"\n",
    )
    store.flush()
    assert work.repo[note].data == b"detail: fatal error: ***.h\n"
    assert work.repo[commit].message == "leaked ***\n"


def test_every_forge_text_is_redacted(tmp_path: Path, secret: str) -> None:
    repo = RepoBuilder(tmp_path / "manifests-repo")
    repo.commit("add\n", {"manifests/1.0.yaml": "xsas: []\n"})
    local = LocalForge(repo.path / "manifests", tmp_path / "state", Identity())
    forge = RedactingForge(local)
    proposal = Proposal(
        branch="xsabot/1.0/xsa-1",
        title=f"1.0: add XSA-1 ({secret})",
        body=f"the compiler said: {secret}.h",
        files={"manifests/1.0.yaml": "xsas: [1]\n"},
    )
    mr = forge.open(proposal)
    forge.update(mr, replace_body(proposal, f"still {secret}"))
    forge.comment(mr.id, "plan", f"plan {secret}")
    forge.set_status(repo.rev("HEAD"), "failure", "xsabot/ci", f"failed: {secret}")
    forge.close(mr, f"moot: {secret}")
    record = (tmp_path / "state/proposals" / f"{mr.id}.json").read_text()
    statuses = "".join(p.read_text() for p in (tmp_path / "state/proposals").rglob("*.json"))
    commits = _git_objects(repo.path)
    assert secret not in record + statuses + commits
    assert "still ***" in record and "plan ***" in record and "moot: ***" in record
    assert "failed: ***" in statuses and "1.0: add XSA-1 (***)" in commits


def replace_body(proposal: Proposal, body: str) -> Proposal:
    from dataclasses import replace

    return replace(proposal, body=body)


def test_the_output_streams_redact_whole_lines(secret: str) -> None:
    import io

    sink = io.StringIO()
    stream = RedactingStream(sink)  # type: ignore[arg-type]
    stream.write(f"half {secret[:10]}")  # a secret written in two pieces
    stream.write(f"{secret[10:]} and more\nnext ")
    assert sink.getvalue() == "half *** and more\n"
    stream.write(f"{secret}")
    stream.flush()  # a partial line goes out redacted too (progress lines)
    assert sink.getvalue() == "half *** and more\nnext ***"
    with pytest.raises(AttributeError):
        stream.buffer  # noqa: B018  (bytes there would bypass the redaction)


def test_logs_go_through_the_redacted_stderr(
    secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.redact import redacting_streams

    with redacting_streams():
        handler = logging.StreamHandler(sys.stderr)
        logging.getLogger("bot.test_secrets").addHandler(handler)
        try:
            logging.getLogger("bot.test_secrets").warning("token %s in a log", secret)
            print(json.dumps({"detail": secret}))
        finally:
            logging.getLogger("bot.test_secrets").removeHandler(handler)
    out, err = capsys.readouterr()
    assert (out, err) == ('{"detail": "***"}\n', "token *** in a log\n")


# -- no way around them --------------------------------------------------------------------------


def _calls(path: Path) -> Iterator[tuple[str, int]]:
    """The dotted names called in `path`, with their lines (`os.write`, `CheckRunner`)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), node.lineno


def _where(names: set[str], strings: tuple[str, ...] = ()) -> set[str]:
    found = set()
    for path in BOT.rglob("*.py"):
        rel = str(path.relative_to(ROOT))
        found |= {rel for name, _ in _calls(path) if name in names or name.endswith(tuple(names))}
        text = path.read_text()
        found |= {rel for s in strings if s in text}
    return found


def test_the_check_runs_only_confined() -> None:
    """Every check runner is made from the config, which carries its confinement."""
    assert _where({"CheckRunner"}) == set()
    assert _where({"CheckRunner.for_tree"}) == {"bot/app/branch.py", "bot/app/wiring.py"}


def test_output_has_no_way_around_the_redacted_streams() -> None:
    """Printed text goes to sys.stdout/sys.stderr, which `main` redacts: nothing writes to a
    file descriptor or the original streams, and only `main` sets up log handlers."""
    raw = {"os.write", "sys.stdout.buffer.write", "sys.stderr.buffer.write"}
    assert _where(raw, ("sys.__stdout__", "sys.__stderr__")) == set()
    handlers = {"logging.basicConfig", "addHandler", "logging.FileHandler"}
    assert _where(handlers) == {"bot/cli/main.py"}


def test_forges_are_made_only_where_they_are_wrapped() -> None:
    from bot.app.wiring import DEFAULT, redacted_forge

    assert DEFAULT.forge is redacted_forge
    made = _where({"LocalForge", "GitLabForge", "GitHubForge", "from_config"})
    assert made == {"bot/app/wiring.py", "bot/forges/registry.py"}
    assert _where({"load_forge"}) == {"bot/app/wiring.py"}
    port = {n for n in vars(Forge) if not n.startswith("_")}
    assert port <= set(vars(RedactingForge)), port - set(vars(RedactingForge))


def test_the_bot_s_own_text_reaches_git_objects_only_through_the_store() -> None:
    """Objects with text the bot composes: through `ObjectStore.write_bin` (the mirror) or
    the proposal commits of `bot.git.proposal_branch` (whose text comes through the forge
    wrapper). libgit2's blobs are merged source files."""
    writers = {"odb.write", "create_commit", "create_tag", "create_note"}
    assert _where(writers, ('"commit-tree"', '"hash-object"', '"mktag"', '"notes"')) == {
        "bot/git/objects.py",
        "bot/git/proposal_branch.py",
    }
