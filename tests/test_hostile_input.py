"""Hostile input: every manifest, file name, patch path and config value that once stopped the
bot with a traceback (issue 11) is now a problem at its file, line and field, and one bad
manifest never stops the others."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import subprocess
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.config import load_config, with_overrides
from bot.errors import InvalidConfig, Problem, UsageError
from bot.git.commits import identity_line
from bot.git.patch import PatchError, read_patch
from bot.manifest.load import load_manifests
from tests.conftest import Bot
from tests.gitrepo import XenLike
from tests.manifests import manifest

A = "a" * 40
SUM = "e" * 64
HEAD = "tree: xen\nbase: RELEASE-4.19.3\nsource: stable-4.19\nbranch: xsa/{name}\nxsas:\n"
NO_USER = "~xsabot-no-such-user"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # problems name files relative to the working directory


def good(name: str) -> str:
    return HEAD.format(name=name) + f"  - xsa: 1\n    commits: [{A}]\n"


def entry(**keys: str) -> str:
    """One XSA entry (lines 6 on) with `keys` written as given, after `xsa: 1`."""
    return "  - xsa: 1\n" + "".join(f"    {k}: {v}\n" for k, v in keys.items())


def patch(path: str) -> str:
    return f"  - xsa: 1\n    patches:\n      - path: {path}\n        sha256: {SUM}\n"


def assert_printable(problems: object) -> None:
    """What lint prints and `plan --mr` posts: one line per problem, valid UTF-8."""
    for problem in problems:  # type: ignore[attr-defined]
        text = str(problem)
        assert "\n" not in text and "\r" not in text and "\x1b" not in text
        text.encode("utf-8")  # a lone surrogate (a file name that is not UTF-8) raises here


# (text of bad.yaml, (line, col, field, message start)); every one stopped all branches before.
MANIFESTS = {
    "nul-in-a-patch-path": (
        HEAD + patch('"a\\0b"'),
        (8, 15, "xsas[0].patches[0].path", "the value has the control character \\x00"),
    ),
    "a-raw-nul-byte": (
        HEAD.replace("tree: xen", "tree: x\0en"),
        (1, 8, "", "YAML does not allow the character \\x00"),
    ),
    "a-300-character-patch-path": (
        HEAD + patch("p" * 300),
        (8, 15, "xsas[0].patches[0].path", f"cannot open `{'p' * 300}`: File name too long"),
    ),
    "a-bool-tag-with-a-bad-value": (
        HEAD + entry(status="blocked", why="!!bool abc"),
        (8, 10, "", "tags are not allowed in manifests (`!!bool`)"),
    ),
    "an-int-tag-with-a-bad-value": (
        HEAD + "  - xsa: !!int 0x\n",
        (6, 10, "", "tags are not allowed in manifests (`!!int`)"),
    ),
    "a-top-level-str-tag": ("!!str abc\n", (1, 1, "", "tags are not allowed in manifests")),
    "a-set-tag-on-a-scalar": (
        HEAD + "  - xsa: !!set abc\n",
        (6, 10, "", "tags are not allowed in manifests (`!!set`)"),
    ),
    "a-python-tag": (
        "base: !!python/object/apply:os.system [true]\n",
        (1, 7, "", "tags are not allowed in manifests (`!!python/object/apply:os.system`)"),
    ),
    "deep-flow-nesting": (
        HEAD + "  - xsa: " + "[" * 5000 + "]" * 5000 + "\n",
        (6, 39, "", "YAML syntax: values are nested more than 32 levels deep"),
    ),
    "deep-block-nesting": (
        "".join(" " * i + "k:\n" for i in range(40)),
        (33, 33, "", "YAML syntax: values are nested more than 32 levels deep"),
    ),
    "a-lone-surrogate": (
        HEAD + entry(status="blocked", why='"\\ud800"'),
        (8, 10, "xsas[0].why", "the value has \\ud800, which is not a character"),
    ),
    "terminal-escapes-in-why": (
        HEAD + entry(status="blocked", why='"\\e[2J"'),
        (8, 10, "xsas[0].why", "the value has the control character \\x1b"),
    ),
    "a-line-break-in-a-url": (
        HEAD
        + f'  - xsa: 1\n    patches:\n      - url: "https://x.org/a\\nb"\n        sha256: {SUM}\n',
        (8, 14, "xsas[0].patches[0].url", "the value has a line break"),
    ),
    "an-integer-too-long-to-convert": (
        HEAD + "  - xsa: " + "9" * 5000 + "\n",
        (6, 10, "", "YAML cannot be read: Exceeds the limit"),
    ),
    "a-date-that-does-not-exist": (
        "base: 2024-13-45\n",
        (1, 7, "", "YAML cannot be read: month must be in 1..12"),
    ),
    "a-control-character-in-a-key": (
        HEAD + '  - "xsa\\x07": 1\n',
        (6, 5, "xsas[0].xsa\x07", "the key has the control character \\x07"),
    ),
}


@pytest.mark.parametrize("case", MANIFESTS)
def test_a_hostile_manifest_is_a_located_problem_and_the_others_load(
    tmp_path: Path, case: str
) -> None:
    text, (line, col, field, message) = MANIFESTS[case]
    (tmp_path / "good.yaml").write_text(good("good"))
    (tmp_path / "bad.yaml").write_bytes(text.format(name="bad").encode("utf-8"))
    result = load_manifests(tmp_path)
    assert [m.name for m in result.loaded] == ["good"]
    [problem] = result.invalid[tmp_path / "bad.yaml"]
    assert (problem.path, problem.line, problem.col, problem.field) == (
        "bad.yaml",
        line,
        col,
        field,
    )
    assert problem.message.startswith(message), problem.message
    assert_printable([problem])


def test_a_file_of_many_bad_values_reports_the_first_hundred(tmp_path: Path) -> None:
    # Quoting each value once split the whole text per problem: quadratic, minutes per pass.
    numbers = ", ".join(str(n) for n in range(5000))
    (tmp_path / "bad.yaml").write_text(
        HEAD.format(name="bad") + f"  - xsa: 1\n    commits: [{numbers}]\n"
    )
    problems = load_manifests(tmp_path).invalid[tmp_path / "bad.yaml"]
    assert len(problems) == 101
    assert (
        str(problems[0])
        == "bad.yaml:7:15: xsas[0].commits[0]: YAML reads 0 as a number; quote it: '0'"
    )
    assert str(problems[-1]).endswith(": 4900 more problems not shown")


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        (b"bad\xff.yaml", "bad\\xff.yaml"),
        (b"two\nlines.yaml", "two\\nlines.yaml"),
        (b"red\x1b[31m.yaml", "red\\x1b[31m.yaml"),
    ],
)
def test_a_file_name_that_is_not_utf8_or_has_control_characters_is_a_problem(
    tmp_path: Path, name: bytes, shown: str
) -> None:
    (tmp_path / "good.yaml").write_text(good("good"))
    with open(os.fsencode(tmp_path) + b"/" + name, "w") as file:
        file.write(good("other"))
    result = load_manifests(tmp_path)
    assert [m.name for m in result.loaded] == ["good"]
    [(path, problems)] = result.invalid.items()
    assert path == tmp_path / shown  # printable: reports and JSON can show it
    assert [str(p) for p in problems] == [
        f"{shown}:1:1: the manifest's name `{shown.removesuffix('.yaml')}` (its file name) is "
        "part of branch names, but it is not UTF-8 text or has control characters: rename the file"
    ]


def test_a_manifest_that_is_a_symlink_is_refused_unread(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "good.yaml").write_text(good("good"))
    secret = tmp_path / "secret"
    secret.write_text("token-4f9a1c\n")  # YAML reads it as a text the old message quoted
    (manifests / "secret.yaml").symlink_to(secret)
    (manifests / "inside.yaml").symlink_to("good.yaml")  # even a link to a good manifest
    (manifests / "dangling.yml").symlink_to(tmp_path / "nowhere")
    result = load_manifests(manifests)
    assert [m.name for m in result.loaded] == ["good"]
    assert {str(p) for found in result.invalid.values() for p in found} == {
        f"manifests/{name}:1:1: the file is not read: `{name}` is a symbolic link; "
        "links are never followed"
        for name in ("secret.yaml", "inside.yaml", "dangling.yml")
    }


def test_lint_never_quotes_a_linked_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `plan --mr` posts what lint reports as a merge request comment.
    (tmp_path / "manifests").mkdir()
    (tmp_path / "secret").write_text("token-4f9a1c\n")
    link = tmp_path / "manifests" / "x.yaml"
    link.symlink_to(tmp_path / "secret")
    for args in (["lint"], ["lint", str(link)]):
        assert main(args) == 1
        out, err = capsys.readouterr()
        assert "symbolic link" in out
        assert "token-4f9a1c" not in out + err


@pytest.mark.timeout(30)
def test_a_fifo_given_as_a_manifest_is_refused_not_waited_for(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert load_manifests(tmp_path).invalid == {}  # not listed: not a file
    result = load_manifests(tmp_path, paths=[fifo])
    assert [str(p) for p in result.invalid[fifo]] == [
        "pipe.yaml:1:1: the file is not read: `pipe.yaml` is not a regular file"
    ]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("file", "`p/x.patch` is a symbolic link; links are never followed"),
        ("directory", "`p` is a symbolic link; links are never followed"),
    ],
)
def test_a_patch_that_is_a_symlink_is_refused_before_reading(
    tmp_path: Path, layout: str, message: str
) -> None:
    root = tmp_path / "manifests"
    (root / "p").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    data = b"From: secret\n"
    (outside / "x.patch").write_bytes(data)
    if layout == "file":
        (root / "p" / "x.patch").symlink_to(outside / "x.patch")
    else:
        (root / "p").rmdir()
        (root / "p").symlink_to(outside)
    digest = hashlib.sha256(data).hexdigest()  # the link's target would verify
    with pytest.raises(PatchError) as caught:
        read_patch(path="p/x.patch", url=None, sha256=digest, root=root, cache=tmp_path)
    assert (caught.value.reason, str(caught.value)) == ("patch-unreadable", f"p/x.patch: {message}")
    # lint says the same, at the path
    (root / "m.yaml").write_text(HEAD.format(name="m") + patch("p/x.patch").replace(SUM, digest))
    [problem] = load_manifests(root).invalid[root / "m.yaml"]
    assert (problem.line, problem.field, problem.message) == (8, "xsas[0].patches[0].path", message)


def test_a_patch_path_or_url_that_reaches_the_os_badly_is_a_patch_error(tmp_path: Path) -> None:
    # The loader refuses these first; the build's reader must not crash on them either.
    for path, url in (("a\0b", None), ("p" * 300, None), (None, "https://x.invalid/a\nb")):
        with pytest.raises(PatchError):
            read_patch(path=path, url=url, sha256=SUM, root=tmp_path, cache=tmp_path / "c")


# -- whole passes -----------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_a_base_tag_of_a_tree_stops_only_its_branch(bot: Bot, xenlike: XenLike) -> None:
    tree = _git(xenlike.path, "rev-parse", "HEAD^{tree}")
    _git(xenlike.path, "tag", "-a", "-m", "a tag of a tree", "TREE-TAG", tree)
    _git(xenlike.path, "tag", "LIGHT-TREE-TAG", tree)
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    bot.write("4.18", manifest(xenlike, (1, ["xsa1"]), base="TREE-TAG", branch="xsa/4.18"))
    bot.write("4.17", manifest(xenlike, (1, ["xsa1"]), base="LIGHT-TREE-TAG", branch="xsa/4.17"))
    run = bot("reconcile", "--json")
    assert run.status == 1
    by_name = {b["manifest"]: b for b in json.loads(run.out)["branches"]}
    assert by_name["4.19"]["published"] is True
    for name, tag in (("4.18", "TREE-TAG"), ("4.17", "LIGHT-TREE-TAG")):
        assert by_name[name]["action"] == "error"
        [problem] = by_name[name]["problems"]
        assert problem.endswith(f":2:7: base: the tag `{tag}` names a tree, not a commit")
    assert _git(bot.mirror, "for-each-ref", "--format=%(refname)", "refs/heads") == (
        "refs/heads/xsa/4.19"
    )
    build = bot("build", str(bot.manifests / "4.18.yaml"))
    assert build.status == 2 and "internal error" not in build.err


def test_reconcile_with_hostile_manifests_publishes_the_good_branch(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    for i, (text, _) in enumerate(MANIFESTS.values()):
        (bot.manifests / f"bad-{i}.yaml").write_bytes(text.format(name=f"bad-{i}").encode())
    with open(os.fsencode(bot.manifests) + b"/latin\xe9.yaml", "w") as file:
        file.write(good("latin"))
    (tmp_path / "secret").write_text("token-4f9a1c\n")
    (bot.manifests / "link.yaml").symlink_to(tmp_path / "secret")
    for args in (("--json",), ()):  # the JSON and the text renderings both print every name
        run = bot("reconcile", *args)
        assert run.status == 1, run.err
        assert "internal error" not in run.err and "token-4f9a1c" not in run.out + run.err
    data = json.loads(bot("plan", "--json").out)
    errors = {b["manifest"] for b in data["branches"] if b["action"] == "error"}
    assert errors == {f"bad-{i}" for i in range(len(MANIFESTS))} | {"latin\\xe9", "link"}
    assert _git(bot.mirror, "for-each-ref", "--format=%(refname)", "refs/heads") == (
        "refs/heads/xsa/4.19"
    )
    lint = bot("lint")
    assert lint.status == 1
    assert len(lint.out.splitlines()) == len(MANIFESTS) + 2  # one line per problem


# -- the config -------------------------------------------------------------------------------


def config_problems(tmp_path: Path, text: str | bytes) -> list[tuple[int, int, str, str]]:
    path = tmp_path / "xsabot.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(InvalidConfig) as caught:
        load_config(path)
    assert all(p.path == str(path) for p in caught.value.problems)
    assert_printable(caught.value.problems)
    return [(p.line, p.col, p.field, p.message) for p in caught.value.problems]


# (text of xsabot.yaml, (line, col, field, message))
CONFIGS: dict[str, tuple[str | bytes, tuple[int, int, str, str]]] = {
    # a line break or `<`/`>` would write a malformed author/committer header
    "a-line-break-in-the-email": (
        'identity:\n  email: "bot@x\\nmalicious: y"\n',
        (2, 10, "identity.email", "the value has a line break"),
    ),
    "a-closing-bracket-in-the-email": (
        "identity:\n  email: bot@x> evil\n",
        (2, 10, "identity.email", "git does not allow '>' in an identity's email"),
    ),
    "an-opening-bracket-in-the-name": (
        "identity:\n  name: x <y@z> 0 +0000\n",
        (2, 9, "identity.name", "git does not allow '<' in an identity's name"),
    ),
    "a-tab-in-the-name": (
        'identity:\n  name: "x\\ty"\n',
        (2, 9, "identity.name", "the value has a tab"),
    ),
    "a-name-of-crud-only": (
        'identity:\n  name: ",; <>"\n',
        (2, 9, "identity.name", "the name is empty once git strips spaces and `,:;<>\"\\'`"),
    ),
    "not-utf8": (b"state: caf\xe9\n", (1, 11, "", "the config is not UTF-8 text")),
    "a-raw-nul-byte": (b"state: a\x00b\n", (1, 9, "", "YAML does not allow the character \\x00")),
    "an-escaped-nul": (
        'state: "a\\0b"\n',
        (1, 8, "state", "the value has the control character \\x00"),
    ),
    "deep-nesting": (
        "trees: " + "[" * 3000 + "]" * 3000 + "\n",
        (1, 39, "", "not valid YAML: values are nested more than 32 levels deep"),
    ),
    "a-bool-tag-with-a-bad-value": (
        "identity:\n  name: !!bool abc\n",
        (2, 9, "", "tags are not allowed in the config (`!!bool`)"),
    ),
    "an-int-tag-with-a-bad-value": (
        "forge: !!int 0x\n",
        (1, 8, "", "tags are not allowed in the config (`!!int`)"),
    ),
    "an-unknown-user-in-the-state-dir": (
        f"state: {NO_USER}/state\n",
        (1, 8, "state", f"cannot expand `{NO_USER}`: no such user"),
    ),
    "an-unknown-user-in-an-upstream": (
        f"trees:\n  xen:\n    upstream: {NO_USER}/xen\n",
        (3, 15, "trees.xen.upstream", f"cannot expand `{NO_USER}`: no such user"),
    ),
    "an-unknown-user-in-the-token-file": (
        f"forge:\n  token_file: {NO_USER}/t\n",
        (2, 15, "forge.token_file", f"cannot expand `{NO_USER}`: no such user"),
    ),
    "a-namespace-git-refuses": (
        "namespace: ../\n",
        (1, 12, "namespace", "branches under it are not valid git ref names: it contains `..`"),
    ),
    "a-model-check-at-its-mapping": (
        "namespace: xsa/\nforge:\n  kind: gitlab\n",
        (3, 3, "forge", "forge kind 'gitlab' needs `project` (e.g. group/manifests)"),
    ),
}


@pytest.mark.parametrize("case", CONFIGS)
def test_a_hostile_config_is_a_located_usage_error(tmp_path: Path, case: str) -> None:
    text, found = CONFIGS[case]
    assert config_problems(tmp_path, text) == [found]


def test_the_identity_is_stripped_of_crud_as_git_does(tmp_path: Path) -> None:
    path = tmp_path / "xsabot.yaml"
    path.write_text('identity:\n  name: " Xen Bot, "\n  email: "<bot@example.org>"\n')
    identity = load_config(path).identity
    assert (identity.name, identity.email) == ("Xen Bot", "bot@example.org")
    assert identity_line(identity.name, identity.email, b"0 +0000") == (
        b"Xen Bot <bot@example.org> 0 +0000"
    )


def test_a_home_directory_in_a_path_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = tmp_path / "xsabot.yaml"
    path.write_text("state: ~/state\ntrees:\n  xen:\n    upstream: ~/xen\n")
    config = load_config(path)
    assert config.state == tmp_path / "home" / "state"
    assert config.upstream_of("xen") == str(tmp_path / "home" / "xen")


def test_an_unknown_user_on_the_command_line_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=f"cannot expand `{NO_USER}`: no such user"):
        with_overrides(load_config(None, cwd=tmp_path), upstreams={"xen": f"{NO_USER}/xen"})


def test_the_cli_reports_a_hostile_config_with_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "xsabot.yaml"
    path.write_text("identity:\n  email: bot@x> evil\n")
    assert main(["lint", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2:10: identity.email: git does not allow '>'" in err
    assert "internal error" not in err


def test_no_such_user_exists() -> None:
    # The cases above rely on it; a machine with this user would make them meaningless.
    with pytest.raises(KeyError):
        pwd.getpwnam(NO_USER[1:])


def test_problem_lines_cannot_be_forged() -> None:
    problem = Problem("m.yaml\n", 1, 2, "k\u2028", "a\nm.yaml:9:9: fake")
    assert str(problem) == "m.yaml\\n:1:2: k\\u2028: a\\nm.yaml:9:9: fake"
