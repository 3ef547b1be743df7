"""The ref name checks agree with the real `git check-ref-format` on a table of names."""

from __future__ import annotations

import re
import subprocess

import pytest

from bot.manifest.refname import (
    BRANCH_NAME_PATTERN,
    REF_NAME_PATTERN,
    TAG_NAME_PATTERN,
    check_branch_name,
    check_ref_format,
    check_tag_name,
)

NAMES = [
    "foo",
    "stable-4.19",
    "RELEASE-4.19.3",
    "xsa/4.19.3",
    "refs/heads/xsa/4.19",
    "a/b/c",
    "a@b",
    "a/@",
    "x@",
    "é/ü",
    "a/b.lock.x",
    "a.lock1",
    "HEAD",
    "refs/heads/HEAD",
    "a..b",
    "a.",
    "a/b.",
    ".a",
    "a/.b",
    ".",
    "a/./b",
    "a/../b",
    "a.lock",
    "a/b.lock",
    "a.lock/b",
    "a/",
    "/a",
    "a//b",
    "a b",
    "a\tb",
    "a\x7fb",
    "a\x01b",
    "a~b",
    "a^b",
    "a:b",
    "a?b",
    "a*b",
    "a[b",
    "a]b",
    "a\\b",
    "a@{b",
    "@{-1}",
    "@",
    "@@",
    "a{b}",
    "xsa/4.19-with-dashes_and_underscores+plus",
]


def git_accepts(*args: str) -> bool:
    result = subprocess.run(
        ["git", "check-ref-format", *args], capture_output=True, check=False, timeout=30
    )
    return result.returncode == 0


# `-foo` would be read as an option by `git check-ref-format` itself, so it is not compared.
@pytest.mark.parametrize("name", NAMES)
def test_check_ref_format_matches_git_allow_onelevel(name: str) -> None:
    assert (check_ref_format(name) is None) == git_accepts("--allow-onelevel", name)


@pytest.mark.parametrize("name", ["a", "HEAD", "a/b", "refs/heads/x", "a/", "/a"])
def test_check_ref_format_matches_git_without_onelevel(name: str) -> None:
    assert (check_ref_format(name, allow_onelevel=False) is None) == git_accepts(name)


# `--branch` expands `@` and `@{-N}` as revision shorthands, so those are checked below instead.
@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("@", "@{-1}")])
def test_check_branch_name_matches_git_branch(name: str) -> None:
    assert (check_branch_name(name) is None) == git_accepts("--branch", name)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "is empty"),
        ("@", "is `@`, which git reads as HEAD"),
        ("-foo", "starts with `-`"),
        ("HEAD", "is `HEAD`, which git reserves"),
        ("@{-1}", "contains `@{`"),
    ],
)
def test_check_branch_name_rejects_shorthands_and_options(name: str, why: str) -> None:
    assert check_branch_name(name) == why


def test_check_tag_name_rejects_option_like_names_but_allows_head() -> None:
    assert check_tag_name("-v1") == "starts with `-`"
    assert check_tag_name("RELEASE-4.19.3") is None
    assert check_tag_name("a..b") == "contains `..`"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a..b", "contains `..`"),
        ("a b", "contains a space"),
        ("a\tb", "contains the control character '\\t'"),
        ("a~b", "contains `~`"),
        ("a\\b", "contains a backslash"),
        ("a@{b", "contains `@{`"),
        ("a/", "ends with `/`"),
        ("/a", "starts with `/`"),
        ("a//b", "contains `//`"),
        ("a.", "ends with `.`"),
        ("a/.b", "has a component starting with `.` ('.b')"),
        ("a.lock/b", "has a component ending with `.lock` ('a.lock')"),
    ],
)
def test_check_ref_format_says_why(name: str, why: str) -> None:
    assert check_ref_format(name) == why


def test_full_names_need_a_slash_without_onelevel() -> None:
    assert check_ref_format("main", allow_onelevel=False) == "needs at least one `/`"


@pytest.mark.parametrize("name", [*NAMES, "", "-foo"])
def test_schema_patterns_agree_with_the_checks(name: str) -> None:
    assert (re.fullmatch(REF_NAME_PATTERN, name) is not None) == (check_ref_format(name) is None)
    assert (re.fullmatch(TAG_NAME_PATTERN, name) is not None) == (check_tag_name(name) is None)
    branch_ok = re.fullmatch(BRANCH_NAME_PATTERN, name) is not None
    assert branch_ok == (check_branch_name(name) is None)
