"""Loading manifests: every problem of a file, each at its line and column, and the valid model."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from bot.errors import InvalidInput, Problem, SetupError
from bot.manifest.load import load_manifest, load_manifests
from bot.manifest.model import Manifest, Patch, Prerequisite, Xsa
from bot.manifest.wording import plain

A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)
SUM = "e" * 64

Found = tuple[int, int, str, str]  # line, column, field, message


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # problems name files relative to the working directory


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems_of(path: Path, **options: object) -> list[Found]:
    """The problems `load_manifest` raises for `path`, without the file name."""
    with pytest.raises(InvalidInput) as caught:
        load_manifest(path, root=path.parent, **options)  # type: ignore[arg-type]
    assert all(p.path == path.name for p in caught.value.problems)
    return [(p.line, p.col, p.field, p.message) for p in caught.value.problems]


def manifest(body: str = "", *, branch: str = "xsa/4.19.3") -> str:
    """A valid head plus `body` (XSA entries indented under `xsas:`): lines 1-5 are the head."""
    head = f"tree: xen\nbase: RELEASE-4.19.3\nsource: stable-4.19\nbranch: {branch}\nxsas:\n"
    entries = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
    return head + (entries + "\n" if body else "  []\n")


# -- the valid case ---------------------------------------------------------------------------


def test_valid_manifest_loads_into_the_model(tmp_path: Path) -> None:
    (tmp_path / "patches").mkdir()
    (tmp_path / "patches" / "xsa471.patch").write_text("From x\n")
    path = write(
        tmp_path,
        "4.19.yaml",
        f"""
        # yaml-language-server: $schema=schema.json
        tree: xen
        base: RELEASE-4.19.3
        source: stable-4.19
        branch: xsa/4.19.3
        xsas:
          - xsa: 467
            commits: [{A}]
          - xsa: 470
            prerequisites:
              - commit: {B}
                why: "x86/amd: Stop updating the Zenbleed mitigation dynamically"
            commits:
              - {C}
              - {D}
          - xsa: 471
            patches:
              - path: patches/xsa471.patch
                sha256: {SUM}
              - url: https://xenbits.xen.org/xsa/xsa471.patch
                sha256: {SUM}
          - xsa: 472
            status: blocked
            why: needs a manual backport
        """,
    )
    loaded = load_manifest(path, root=tmp_path, trees={"xen"})
    assert loaded.path == path.absolute()
    assert loaded.name == "4.19"
    assert loaded.text == path.read_text()
    assert loaded.manifest == Manifest(
        tree="xen",
        base="RELEASE-4.19.3",
        source="stable-4.19",
        branch="xsa/4.19.3",
        xsas=(
            Xsa(xsa=467, commits=(A,)),
            Xsa(
                xsa=470,
                prerequisites=(
                    Prerequisite(
                        commit=B, why="x86/amd: Stop updating the Zenbleed mitigation dynamically"
                    ),
                ),
                commits=(C, D),
            ),
            Xsa(
                xsa=471,
                patches=(
                    Patch(path="patches/xsa471.patch", sha256=SUM),
                    Patch(url="https://xenbits.xen.org/xsa/xsa471.patch", sha256=SUM),
                ),
            ),
            Xsa(xsa=472, status="blocked", why="needs a manual backport"),
        ),
    )
    assert loaded.manifest.commit_ids() == [A, B, C, D]
    # Plain Python values, not ruamel's round-trip subclasses.
    assert type(loaded.manifest.xsas[0].commits[0]) is str
    assert type(loaded.manifest.xsas[0].xsa) is int


def test_tree_defaults_to_xen(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", "base: R\nsource: s\nbranch: xsa/m\n")
    assert load_manifest(path, root=tmp_path, trees={"xen"}).manifest.tree == "xen"


# -- YAML itself ------------------------------------------------------------------------------


QUOTE_HINT = '; hint: quote a value that holds ": " (why: "x86: fix the thing")'


def test_yaml_syntax_error_is_reported_at_its_mark(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", "base: R\nsource: s: t\n")
    assert problems_of(path) == [
        (2, 10, "", "YAML syntax: mapping values are not allowed here" + QUOTE_HINT)
    ]


def test_unclosed_flow_list_names_where_it_started(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", f"base: R\nxsas: [{{xsa: 1, commits: [{A}]}}\n")
    assert problems_of(path) == [
        (
            3,
            1,
            "",
            "YAML syntax: expected ',' or ']', but got '<stream end>'"
            " (while parsing a flow sequence at line 2)",
        )
    ]


def test_duplicate_key_points_at_the_second_and_names_the_first(tmp_path: Path) -> None:
    text = manifest(f"  - xsa: 467\n    commits: [{A}]\n    xsa: 468\n")
    path = write(tmp_path, "m.yaml", text)
    assert problems_of(path) == [(8, 5, "", "duplicate key `xsa` (first at line 6)")]


def test_duplicate_key_in_a_flow_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", manifest(f"  - {{xsa: 1, commits: [{A}], xsa: 2}}\n"))
    assert problems_of(path) == [(6, 67, "", "duplicate key `xsa` (first at line 6)")]


def test_a_value_ruamel_cannot_build_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", manifest(branch="xsa/good"))
    write(tmp_path, "m.yaml", "base: 2024-13-45\n")
    result = load_manifests(tmp_path)
    assert [m.name for m in result.loaded] == ["good"]
    assert [str(p) for p in result.invalid[tmp_path / "m.yaml"]] == [
        "m.yaml:1:7: YAML cannot be read: month must be in 1..12"
    ]


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file_is_a_problem(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "m.yaml", text)
    needs = "the file is empty; a manifest needs `base`, `source` and `branch`"
    assert problems_of(path) == [(1, 1, "", needs)]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("# a list\n- base: R\n", (2, 1, "a list")),
        ("# text\n\n  just text\n", (3, 3, "the text 'just text'")),
        ("467\n", (1, 1, "a number")),
    ],
)
def test_a_manifest_must_be_a_mapping(
    tmp_path: Path, text: str, found: tuple[int, int, str]
) -> None:
    path = write(tmp_path, "m.yaml", text)
    line, col, kind = found
    message = f"a manifest is a mapping (`key: value` lines), not {kind}"
    assert problems_of(path) == [(line, col, "", message)]


def test_file_that_is_not_utf8_is_reported_at_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(b"base: R\nsource: caf\xe9\n")
    assert problems_of(path) == [(2, 12, "", "the file is not UTF-8 text")]


# -- anchors, aliases and size: a manifest must not be able to stop the other manifests -------


def alias_problem(line: int, col: int, token: str) -> Found:
    return (line, col, "", f"anchors and aliases are not allowed in manifests (`{token}`)")


def test_anchors_and_aliases_are_problems_at_their_marks(tmp_path: Path) -> None:
    text = f"""
    tree: xen
    base: &rel RELEASE-4.19.3
    source: stable-4.19
    branch: xsa/4.19
    xsas:
      - xsa: 467
        commits: &fix [{A}]
      - xsa: 468
        commits: *fix
    """
    path = write(tmp_path, "m.yaml", text)
    assert problems_of(path) == [
        alias_problem(2, 7, "&rel"),
        alias_problem(7, 14, "&fix"),
        alias_problem(9, 14, "*fix"),
    ]


def test_an_alias_merged_in_reports_only_the_anchor_and_alias(tmp_path: Path) -> None:
    # `<<: *d` would merge keys; the alias is not followed, so ruamel's complaint about merging
    # what stands in for it must not show up as a second, misleading problem.
    path = write(tmp_path, "m.yaml", "d: &d {tree: xen}\n<<: *d\nbase: *undefined\n")
    assert problems_of(path) == [
        alias_problem(1, 4, "&d"),
        alias_problem(2, 5, "*d"),
        alias_problem(3, 7, "*undefined"),
    ]


def test_a_syntax_error_after_an_alias_is_reported_too(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", "base: &b R\nsource: s: t\n")
    assert problems_of(path) == [
        alias_problem(1, 7, "&b"),
        (2, 10, "", "YAML syntax: mapping values are not allowed here" + QUOTE_HINT),
    ]


def test_a_file_over_1_mib_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", manifest(branch="xsa/good"))
    big = manifest(branch="xsa/big") + "# " + "x" * (1 << 20) + "\n"
    write(tmp_path, "big.yaml", big)
    result = load_manifests(tmp_path)
    assert [m.name for m in result.loaded] == ["good"]
    assert [str(p) for p in result.invalid[tmp_path / "big.yaml"]] == [
        "big.yaml:1:1: manifest is larger than 1 MiB"
    ]


def test_plain_keeps_shared_containers_shared() -> None:
    # What YAML shares (an alias) stays one object, so converting never multiplies it.
    shared: list[object] = ["x"]
    for _ in range(3):
        shared = [shared, shared]
    converted = plain({"k": shared})
    assert converted == {"k": shared}
    assert converted["k"][0] is converted["k"][1]


# -- the model's errors, mapped to positions --------------------------------------------------


def test_unknown_key_points_at_the_key_and_suggests_the_close_one(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", manifest(f"  - xsa: 467\n    comits: [{A}]\n"))
    assert problems_of(path) == [(7, 5, "xsas[0].comits", "unknown key (did you mean `commits`?)")]


def test_unknown_top_level_key_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", manifest() + "owner: me\n")
    known = "`tree`, `base`, `source`, `branch`, `xsas`"
    assert problems_of(path) == [(7, 1, "owner", f"unknown key (known keys: {known})")]


def test_missing_key_points_at_the_mapping_that_lacks_it(tmp_path: Path) -> None:
    text = "# header\ntree: xen\nbranch: xsa/x\nxsas:\n  - commits: [" + A + "]\n"
    path = write(tmp_path, "m.yaml", text)
    assert problems_of(path) == [
        (2, 1, "base", "required key is missing"),
        (2, 1, "source", "required key is missing"),
        (5, 5, "xsas[0].xsa", "required key is missing"),
    ]


def test_bad_values_point_at_the_value(tmp_path: Path) -> None:
    body = f"""
      - xsa: 467
        commits: [{A[:12]}, {A.upper()}, not-a-sha]
      - xsa: -1
        status: maybe
        why: ""
    """
    path = write(tmp_path, "m.yaml", manifest(body))
    assert problems_of(path) == [
        (7, 15, "xsas[0].commits[0]", "a commit ID has 40 hex digits, this one has 12"),
        (7, 29, "xsas[0].commits[1]", "write the commit ID in lower case"),
        (7, 71, "xsas[0].commits[2]", "not a commit ID: use 40 hex digits (0-9, a-f)"),
        (8, 10, "xsas[1].xsa", "Input should be greater than 0"),
        (9, 13, "xsas[1].status", "expected 'blocked' or 'not-affected', got the text 'maybe'"),
    ]


def test_entry_level_rules_point_at_the_entry(tmp_path: Path) -> None:
    body = f"""
      - xsa: 467
        status: blocked
      - xsa: 468
        patches:
          - sha256: {SUM}
    """
    path = write(tmp_path, "m.yaml", manifest(body))
    assert problems_of(path) == [
        (6, 5, "xsas[0]", "`status: blocked` needs a `why`"),
        (10, 9, "xsas[1].patches[0]", "give exactly one of `path` or `url`"),
    ]


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("base", "RELEASE..4.19", "contains `..`"),
        ("base", "-RELEASE", "starts with `-`"),
        ("source", "stable-4.19.lock", "has a component ending with `.lock` ('stable-4.19.lock')"),
        ("source", "'stable 4.19'", "contains a space"),
        ("branch", "xsa/4.19^", "contains `^`"),
        ("branch", "xsa/.hidden", "has a component starting with `.` ('.hidden')"),
        ("branch", "xsa/4.19.", "ends with `.`"),
    ],
)
def test_invalid_ref_names_are_reported_at_the_value(
    tmp_path: Path, key: str, value: str, why: str
) -> None:
    text = manifest().replace(f"{key}: ", f"{key}: {value} #", 1)
    path = write(tmp_path, "m.yaml", text)
    line = {"base": 2, "source": 3, "branch": 4}[key]
    col = len(key) + 3
    assert problems_of(path) == [(line, col, key, f"not a valid git ref name: {why}")]


def test_shas_that_yaml_reads_as_numbers_must_be_quoted(tmp_path: Path) -> None:
    digits = "0123456789" * 4
    exponent = "12345e" + "6" * 34
    body = f"""
      - xsa: 467
        prerequisites:
          - commit: {exponent}
        commits:
          - {digits}
        patches:
          - url: https://xenbits.xen.org/xsa/xsa467.patch
            sha256: {"1" * 64}
    """
    path = write(tmp_path, "m.yaml", manifest(body))
    assert problems_of(path) == [
        (
            8,
            17,
            "xsas[0].prerequisites[0].commit",
            f"YAML reads {exponent} as a number; quote it: '{exponent}'",
        ),
        (10, 9, "xsas[0].commits[0]", f"YAML reads {digits} as a number; quote it: '{digits}'"),
        (
            13,
            17,
            "xsas[0].patches[0].sha256",
            f"YAML reads {'1' * 64} as a number; quote it: '{'1' * 64}'",
        ),
    ]


def test_a_quoted_numeric_sha_is_fine(tmp_path: Path) -> None:
    digits = "0123456789" * 4
    path = write(tmp_path, "m.yaml", manifest(f"  - xsa: 467\n    commits: ['{digits}']\n"))
    assert load_manifest(path, root=tmp_path).manifest.xsas[0].commits == (digits,)


def test_a_version_yaml_reads_as_a_number_must_be_quoted(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", manifest().replace("stable-4.19", "4.19"))
    assert problems_of(path) == [(3, 9, "source", "YAML reads 4.19 as a number; quote it: '4.19'")]


# -- checks that need context -----------------------------------------------------------------


def test_duplicate_xsa_points_at_the_second_and_names_the_first(tmp_path: Path) -> None:
    body = f"""
      - xsa: 467
        commits: [{A}]
      - xsa: 468
        commits: [{B}]
      - xsa: 467
        commits: [{C}]
    """
    path = write(tmp_path, "m.yaml", manifest(body))
    assert problems_of(path) == [
        (10, 10, "xsas[2].xsa", "XSA-467 is listed twice (first at line 6)")
    ]


def test_same_commit_twice_anywhere_is_a_problem(tmp_path: Path) -> None:
    body = f"""
      - xsa: 467
        commits: [{A}, {A}]
      - xsa: 468
        prerequisites:
          - commit: {A}
        commits: [{B}]
      - xsa: 469
        commits:
          - {B}
    """
    path = write(tmp_path, "m.yaml", manifest(body))
    first = "(first at line 7, xsas[0].commits[0])"
    assert problems_of(path) == [
        (7, 57, "xsas[0].commits[1]", f"commit aaaaaaaaaaaa is listed twice {first}"),
        (10, 17, "xsas[1].prerequisites[0].commit", f"commit aaaaaaaaaaaa is listed twice {first}"),
        (
            14,
            9,
            "xsas[2].commits[0]",
            "commit bbbbbbbbbbbb is listed twice (first at line 11, xsas[1].commits[0])",
        ),
    ]


def test_prerequisite_written_after_the_fix_is_the_second_one(tmp_path: Path) -> None:
    body = f"""
      - xsa: 467
        commits: [{A}]
        prerequisites:
          - commit: {A}
    """
    path = write(tmp_path, "m.yaml", manifest(body))
    assert problems_of(path) == [
        (
            9,
            17,
            "xsas[0].prerequisites[0].commit",
            "commit aaaaaaaaaaaa is listed twice (first at line 7, xsas[0].commits[0])",
        )
    ]


@pytest.mark.parametrize("branch", ["stable-4.19", "xsa-4.19", "other/xsa/4.19"])
def test_branch_outside_the_namespace_is_a_problem(tmp_path: Path, branch: str) -> None:
    path = write(tmp_path, "m.yaml", manifest(branch=branch))
    message = f"`{branch}` is outside the bot's namespace: branches start with `xsa/`"
    assert problems_of(path) == [(4, 9, "branch", message)]


def test_namespace_is_the_configured_one(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", manifest(branch="security/4.19"))
    loaded = load_manifest(path, root=tmp_path, namespace="security/")
    assert loaded.manifest.branch == "security/4.19"
    message = "`security/4.19` is outside the bot's namespace: branches start with `xsa/`"
    assert problems_of(path) == [(4, 9, "branch", message)]


def test_tree_must_be_configured(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", manifest().replace("tree: xen", "tree: xen-arm"))
    assert load_manifest(path, root=tmp_path).manifest.tree == "xen-arm"  # no trees: no check
    message = "unknown tree `xen-arm`; the bot config has `qemu`, `xen`"
    assert problems_of(path, trees={"xen", "qemu"}) == [(1, 7, "tree", message)]


def test_default_tree_must_be_configured_too(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", "# m\nbase: R\nsource: s\nbranch: xsa/m\n")
    message = "no `tree` given and the default `xen` is not configured (trees: `qemu`)"
    assert problems_of(path, trees={"qemu"}) == [(2, 1, "tree", message)]


def patch_entry(path: str) -> str:
    return f"  - xsa: 471\n    patches:\n      - path: {path}\n        sha256: {SUM}\n"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ("/etc/passwd", "use a path relative to the manifests directory, not an absolute one"),
        ("../secrets.patch", "the path leaves the manifests directory"),
        ("patches/../../secrets.patch", "the path leaves the manifests directory"),
        ("patches/missing.patch", "no file `patches/missing.patch` in the manifests directory"),
    ],
)
def test_patch_path_must_be_an_existing_file_inside_the_manifests_dir(
    tmp_path: Path, patch: str, message: str
) -> None:
    root = tmp_path / "manifests"
    root.mkdir()
    (tmp_path / "secrets.patch").write_text("x")
    path = write(root, "m.yaml", manifest(patch_entry(patch)))
    with pytest.raises(InvalidInput) as caught:
        load_manifest(path, root=root)
    [problem] = caught.value.problems
    assert (problem.line, problem.col, problem.field) == (8, 15, "xsas[0].patches[0].path")
    assert problem.message.startswith(message)


def test_patch_path_with_dotdot_inside_the_dir_is_fine(tmp_path: Path) -> None:
    (tmp_path / "patches").mkdir()
    (tmp_path / "patches" / "x.patch").write_text("x")
    path = write(tmp_path, "m.yaml", manifest(patch_entry("patches/../patches/x.patch")))
    patch = load_manifest(path, root=tmp_path).manifest.xsas[0].patches[0]
    assert patch.path == "patches/../patches/x.patch"


def test_patch_symlink_is_a_problem(tmp_path: Path) -> None:
    root = tmp_path / "manifests"
    root.mkdir()
    (tmp_path / "secret").write_text("x")
    os.symlink(tmp_path / "secret", root / "link.patch")
    path = write(root, "m.yaml", manifest(patch_entry("link.patch")))
    with pytest.raises(InvalidInput) as caught:
        load_manifest(path, root=root)
    assert [(p.line, p.col, p.message) for p in caught.value.problems] == [
        (8, 15, "`link.patch` is a symbolic link; links are never followed")
    ]


# -- all at once ------------------------------------------------------------------------------


def test_every_problem_of_a_file_is_reported_in_order(tmp_path: Path) -> None:
    text = f"""
    tree: arm
    base: RELEASE..4
    source: stable-4.19
    branch: other/4.19
    bogus: 1
    xsas:
      - xsa: 467
        commits: [{A}, abc]
      - xsa: 467
        prerequisites:
          - commit: {A}
      - xsa: 470
        patches:
          - path: /abs.patch
            sha256: {SUM}
    """
    path = write(tmp_path, "m.yaml", text)
    found = problems_of(path, trees={"xen"})
    assert [(line, col, field) for line, col, field, _ in found] == [
        (1, 7, "tree"),
        (2, 7, "base"),
        (4, 9, "branch"),
        (5, 1, "bogus"),
        (8, 57, "xsas[0].commits[1]"),
        (9, 5, "xsas[1]"),  # prerequisites alone: no `commits`
        (9, 10, "xsas[1].xsa"),
        (11, 17, "xsas[1].prerequisites[0].commit"),
        (14, 15, "xsas[2].patches[0].path"),
    ]


def test_invalid_input_prints_path_line_col_field_message(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", manifest(branch="main"))
    with pytest.raises(InvalidInput) as caught:
        load_manifest(path, root=tmp_path)
    assert str(caught.value) == (
        "m.yaml:4:9: branch: `main` is outside the bot's namespace: branches start with `xsa/`"
    )
    assert caught.value.exit_status == 1


def test_files_outside_the_working_directory_are_named_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "m.yaml", manifest(branch="main"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(InvalidInput) as caught:
        load_manifest(path, root=tmp_path)
    assert caught.value.problems[0].path == str(path.absolute())


# -- a directory of manifests -----------------------------------------------------------------


def test_a_broken_file_does_not_hide_the_valid_ones(tmp_path: Path) -> None:
    write(tmp_path, "4.19.yaml", manifest(branch="xsa/4.19"))
    write(tmp_path, "4.18.yml", manifest(branch="xsa/4.18"))
    broken = write(tmp_path, "4.17.yaml", manifest(branch="xsa/4.17") + "owner: me\n")
    empty = write(tmp_path, "4.16.yaml", "")
    write(tmp_path, "notes.txt", "not a manifest")
    (tmp_path / "old").mkdir()
    write(tmp_path / "old", "4.15.yaml", "not: [valid\n")
    result = load_manifests(tmp_path, trees={"xen"})
    assert [m.name for m in result.loaded] == ["4.18", "4.19"]
    assert [m.manifest.branch for m in result.loaded] == ["xsa/4.18", "xsa/4.19"]
    assert set(result.invalid) == {broken.absolute(), empty.absolute()}
    [problem] = result.invalid[broken.absolute()]
    assert problem == Problem(
        "4.17.yaml", 7, 1, "owner", problem.message
    ) and problem.message.startswith("unknown key")


def test_two_manifests_publishing_one_branch_are_both_invalid(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", manifest(branch="xsa/4.19"))
    second = write(tmp_path, "b.yaml", "# same\n" + manifest(branch="xsa/4.19"))
    third = write(tmp_path, "c.yaml", manifest(branch="xsa/4.18"))
    result = load_manifests(tmp_path)
    assert [m.path for m in result.loaded] == [third.absolute()]
    assert result.invalid == {
        first.absolute(): (
            Problem("a.yaml", 4, 9, "branch", "branch `xsa/4.19` is also published by b.yaml:5"),
        ),
        second.absolute(): (
            Problem("b.yaml", 5, 9, "branch", "branch `xsa/4.19` is also published by a.yaml:4"),
        ),
    }


def test_a_broken_manifest_still_claims_its_branch(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", manifest(branch="xsa/4.19"))
    write(tmp_path, "b.yaml", manifest(branch="xsa/4.19") + "owner: me\n")
    result = load_manifests(tmp_path)
    assert result.loaded == ()
    assert [p.message for p in result.invalid[(tmp_path / "a.yaml").absolute()]] == [
        "branch `xsa/4.19` is also published by b.yaml:4"
    ]


def test_a_branch_under_another_manifests_branch_clashes_in_git(tmp_path: Path) -> None:
    # git keeps `xsa/4.19` as a file and `xsa/4.19/lts` in a directory of that name: the pass's
    # atomic push would fail for every branch. Siblings and mere string prefixes are fine.
    write(tmp_path, "a.yaml", manifest(branch="xsa/4.19"))
    write(tmp_path, "b.yaml", "# under a\n" + manifest(branch="xsa/4.19/lts"))
    write(tmp_path, "c.yaml", manifest(branch="xsa/4.19/lts/old"))
    write(tmp_path, "d.yaml", manifest(branch="xsa/4.19-lts"))
    write(tmp_path, "e.yaml", manifest(branch="xsa/4.1"))
    result = load_manifests(tmp_path)
    assert [m.name for m in result.loaded] == ["d", "e"]
    why = "git cannot have a branch and branches under it"
    assert {p.name: [str(x) for x in ps] for p, ps in result.invalid.items()} == {
        "a.yaml": [
            f"a.yaml:4:9: branch: branch `xsa/4.19` clashes with `xsa/4.19/lts`"
            f" published by b.yaml:5: {why}",
            f"a.yaml:4:9: branch: branch `xsa/4.19` clashes with `xsa/4.19/lts/old`"
            f" published by c.yaml:4: {why}",
        ],
        "b.yaml": [
            f"b.yaml:5:9: branch: branch `xsa/4.19/lts` clashes with `xsa/4.19`"
            f" published by a.yaml:4: {why}",
            f"b.yaml:5:9: branch: branch `xsa/4.19/lts` clashes with `xsa/4.19/lts/old`"
            f" published by c.yaml:4: {why}",
        ],
        "c.yaml": [
            f"c.yaml:4:9: branch: branch `xsa/4.19/lts/old` clashes with `xsa/4.19`"
            f" published by a.yaml:4: {why}",
            f"c.yaml:4:9: branch: branch `xsa/4.19/lts/old` clashes with `xsa/4.19/lts`"
            f" published by b.yaml:5: {why}",
        ],
    }


@pytest.mark.parametrize(
    ("stem", "why"),
    [
        ("4.19 lts", "contains a space"),
        (".4.19", "starts with `.`"),
        ("4..19", "contains `..`"),
        ("4.19~1", "contains `~`"),
        ("4.19^", "contains `^`"),
        ("xen:4.19", "contains `:`"),
        ("4.19.lock", "ends with `.lock`"),
        ("4.19.", "ends with `.`"),
        ("@", "is `@`, which git reads as HEAD"),
    ],
)
def test_a_name_that_cannot_go_in_a_branch_name_is_a_problem(
    tmp_path: Path, stem: str, why: str
) -> None:
    # The name goes into proposal branches `xsabot/<name>/xsa-<N>`; git would refuse them later.
    write(tmp_path, "good.yaml", manifest(branch="xsa/good"))
    path = write(tmp_path, f"{stem}.yaml", manifest(branch="xsa/other"))
    message = f"the manifest's name `{stem}` (its file name) is part of branch names, but it {why}"
    assert problems_of(path) == [(1, 1, "", f"{message}: rename the file")]
    result = load_manifests(tmp_path)
    assert [m.name for m in result.loaded] == ["good"]
    assert list(result.invalid) == [path.absolute()]


def test_two_files_with_the_same_name_are_both_invalid(tmp_path: Path) -> None:
    write(tmp_path, "4.19.yaml", manifest(branch="xsa/4.19"))
    write(tmp_path, "4.19.yml", manifest(branch="xsa/4.19-b"))
    result = load_manifests(tmp_path)
    assert result.loaded == ()
    assert [str(p) for ps in result.invalid.values() for p in ps] == [
        "4.19.yaml:1:1: another manifest has the name `4.19`: 4.19.yml",
        "4.19.yml:1:1: another manifest has the name `4.19`: 4.19.yaml",
    ]


def test_paths_restrict_what_is_loaded(tmp_path: Path) -> None:
    wanted = write(tmp_path, "4.19.yaml", manifest(branch="xsa/4.19"))
    write(tmp_path, "4.18.yaml", manifest(branch="xsa/4.19") + "owner: me\n")
    result = load_manifests(tmp_path, paths=[wanted])
    assert [m.name for m in result.loaded] == ["4.19"]
    assert result.invalid == {}


def test_a_missing_directory_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="cannot list manifests"):
        load_manifests(tmp_path / "nope")


def test_an_empty_directory_has_no_manifests(tmp_path: Path) -> None:
    assert load_manifests(tmp_path) == load_manifests(tmp_path, paths=[])
    assert load_manifests(tmp_path).loaded == ()
