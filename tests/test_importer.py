"""Intake from a stable branch: which commits are fixes, and the manifest `import stable` prints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

import bot.cli.main
from bot.app.importer import find_xsa_commits, render_manifest
from bot.core.xsa_messages import XsaCommit, origin_of, support_until, xsa_commit, xsa_numbers
from bot.errors import UsageError
from bot.manifest.model import Manifest
from tests.gitrepo import XenLike, make_xenlike, scrub_git_env

# Statements as they appear on stable-4.17 .. stable-4.22 (and a few older forms).
FIXES = [
    ("x86/mm: check\n\nThis is XSA-479 / CVE-2026-23553.\n", (479,)),
    ("This is XSA-470 / CVE-2025-27465\n", (470,)),
    ("This is XSA-425/CVE-2022-42330.\n", (425,)),
    ("This is XSA-473.\n\nSigned-off-by: A <a@b>\n", (473,)),
    ("This is part of XSA-456.\n", (456,)),
    ("This is part of XSA-456 / CVE-2024-2201.\n", (456,)),
    ("This is part of XSA-452 / CVE-2023-28746 / CVE-2024-1234.\n", (452,)),
    ("This is part of CVE-2024-31142 / XSA-455.\n", (455,)),
    ("This is CVE-2025-27466 / XSA-467.\n", (467,)),
    ("This is CVE-2026-62427 / part of XSA-499.\n", (499,)),
    ("This CVE-2023-34323 / XSA-440.\n", (440,)),
    (
        "gnttab: cope\n\nThis is CVE-2026-62436.\n\nThis is CVE-2026-62435.\n\n"
        "Everything together is XSA-501.\n",
        (501,),
    ),
    # XSA-425's fix is a revert; its own statement makes it a fix.
    ('Revert "tools/xenstore: simplify loop"\n\nThis is XSA-425/CVE-2022-42330.\n', (425,)),
    # Older forms seen on earlier stable lines.
    ("This is part of the fix to a security issue, XSA-108.\n", (108,)),
    ("This is a security issue, part of XSA-240 / CVE-2017-15595.\n", (240,)),
    ("This is CVE-2015-7971, part of XSA-152.\n", (152,)),
    ("This is CVE-2019-18420 and CVE-2019-18421 / XSA-295.\n", (295,)),
    ("This is XSA-237 / CVE-2017-xxxx.\n", (237,)),
    ("This patch is part of XSA-111.\n", (111,)),
    # Wrapped, and one commit fixing two advisories: the first named comes first.
    ("This is part of\nXSA-12.\n", (12,)),
    ("This is XSA-7 / XSA-3.\n", (7, 3)),
    ("This is XSA-7.\n\nThis is also part of XSA-9, but not stated as such.\n", (7,)),
]

NOT_FIXES = [
    "This is a follow-up to XSA-385.\n",
    "This is a followup to XSA-345 and XSA-346.\n",
    "tools/xenstore: fix XSA-417 patch\n\nThe fix for XSA-417 had a bug.\n",
    "x86/spec-ctrl: Rename\n\nXSA-455 was ultimately caused by too-similar names.\n",
    'Revert "x86/foo"\n\nThis reverts commit abcdef0; the XSA-123 fix made it redundant.\n',
    # A quoted statement is another commit's claim, not this one's.
    'Revert "grant: fix"\n\nThe reverted commit said:\n\n    This is XSA-123.\n',
    "This is (not really) XSA-86 (but necessary to simplify the logic).\n",
    "This documents, but does not fix, XSA-77.\n",
    "This is an update to the fix for XSA-155.\n",
    "This patch was originally released as part of XSA-240.  It retains the same\n",
    "This XSA-123 fix broke the build.\n",
    "This is CVE-2026-42494.\n",
    "This is XSA-12abc.\n",
    "",
]


@pytest.mark.parametrize(("message", "expected"), FIXES)
def test_fix_statements_name_their_xsas(message: str, expected: tuple[int, ...]) -> None:
    assert xsa_numbers(message) == expected


@pytest.mark.parametrize("message", NOT_FIXES)
def test_mentions_of_an_xsa_are_not_fixes(message: str) -> None:
    assert xsa_numbers(message) == ()


@pytest.mark.parametrize(
    ("message", "origin"),
    [
        ("x\n\nmaster commit: " + "a" * 40 + "\nmaster date: 2026-01-01\n", "a" * 40),
        ("x\n\n(cherry picked from commit " + "b" * 40 + ")\n", "b" * 40),
        (
            "x\n\nmaster commit: " + "c" * 40 + "\n(cherry picked from commit " + "d" * 40 + ")\n",
            "c" * 40,
        ),
        ("x\n\nSigned-off-by: A <a@b>\n", None),
    ],
)
def test_origin_is_the_first_named_source_commit(message: str, origin: str | None) -> None:
    assert origin_of(message) == origin


def test_a_message_without_a_fix_statement_is_no_fix_commit() -> None:
    message = "x86: tidy\n\nThis is a follow-up to XSA-385.\n\nmaster commit: " + "a" * 40 + "\n"
    assert xsa_commit("f" * 40, message) is None
    fix = xsa_commit("f" * 40, "x86: fix\n\nThis is XSA-9.\n\nmaster commit: " + "a" * 40 + "\n")
    assert fix == XsaCommit("f" * 40, (9,), "x86: fix", "a" * 40)


def test_security_support_end_is_read_from_support_md() -> None:
    text = "# Support statement\n\n    Xen-Version: 4.19\n    Security-Support-Until: 2027-07-29\n"
    assert support_until(text) == "2027-07-29"
    assert support_until("# Support statement\n\n    Xen-Version: unstable\n") is None


@pytest.fixture
def xen(tmp_path: Path) -> XenLike:
    scrub_git_env()
    return make_xenlike(tmp_path / "xen")


def _shas(groups: list[tuple[int, list[XsaCommit]]]) -> list[tuple[int, list[str]]]:
    return [(n, [c.sha for c in commits]) for n, commits in groups]


def test_fix_commits_are_grouped_by_xsa_in_stable_order(xen: XenLike) -> None:
    s = xen.shas
    groups = find_xsa_commits(xen.path, xen.base_tag, xen.source)
    assert _shas(groups) == [
        (1, [s["xsa1"]]),
        (2, [s["xsa2"]]),
        (3, [s["xsa3a"], s["xsa3b"]]),
        (4, [s["xsa4"]]),
        (5, [s["xsa5"]]),
    ]
    first = groups[0][1][0]
    assert first == XsaCommit(s["xsa1"], (1,), "x86/mm: check the page type", "1" * 40)
    assert groups[1][1][0].origin is None


def test_late_part_joins_its_group_and_two_xsa_commit_goes_to_the_first(xen: XenLike) -> None:
    b = xen.builder
    b.checkout(xen.source)
    both = b.commit("grant: one for two\n\nThis is XSA-6 / XSA-3.\n", {"a.c": "6\n"})
    late = b.commit("grant: part three\n\nThis is part of XSA-3.\n", {"b.c": "3\n"})
    groups = dict(_shas(find_xsa_commits(xen.path, xen.base_tag, xen.source)))
    assert list(groups) == [1, 2, 3, 4, 5, 6]
    assert groups[3] == [xen.shas["xsa3a"], xen.shas["xsa3b"], late]
    assert groups[6] == [both]


def test_commits_already_in_base_are_not_listed(xen: XenLike) -> None:
    b = xen.builder
    b.tag("RELEASE-4.19.1", xen.shas["xsa3b"])
    groups = find_xsa_commits(xen.path, "RELEASE-4.19.1", xen.source)
    assert [n for n, _ in groups] == [4, 5]


@pytest.mark.parametrize(
    ("base", "source", "needle"),
    [("RELEASE-4.19.9", "stable-4.19", "RELEASE-4.19.9"), ("RELEASE-4.19.0", "nope", "nope")],
)
def test_unknown_refs_are_usage_errors(xen: XenLike, base: str, source: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        find_xsa_commits(xen.path, base, source)


def test_rendering_reads_back_as_the_same_strings() -> None:
    commit = XsaCommit("e" * 40, (9,), "x86: subject # with a hash: and colon", None)
    text = render_manifest(
        tree="xen", base="4.19", source="stable-4.19", branch="xsa/4.19", groups=[(9, [commit])]
    )
    manifest = Manifest.model_validate(YAML(typ="safe").load(text))
    assert (manifest.base, manifest.xsas[0].commits) == ("4.19", ("e" * 40,))
    empty = render_manifest(tree="xen", base="B", source="S", branch="xsa/S", groups=[])
    assert Manifest.model_validate(YAML(typ="safe").load(empty)).xsas == ()


# --- the command, end to end in-process ---------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Build only the `import` subparser: the other subcommands' modules are not this test's
    # subject and must not make it fail. No config file from the working directory either.
    monkeypatch.setattr(bot.cli.main, "COMMANDS", {"import": bot.cli.main.COMMANDS["import"]})
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XSABOT_UPSTREAM_XEN", raising=False)
    yield


def _import(
    capsys: pytest.CaptureFixture[str], upstream: str, *extra: str, base: str = "RELEASE-4.19.0"
) -> tuple[int, str, str]:
    argv = ["import", "stable", "--upstream", upstream, "--source", "stable-4.19"]
    status = bot.cli.main.main([*argv, "--base", base, "--state", "state", *extra])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.usefixtures("cli")
def test_import_prints_a_manifest_that_validates(
    xen: XenLike, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _import(capsys, f"xen={xen.path}")
    assert (status, err) == (0, "")
    manifest = Manifest.model_validate(YAML(typ="safe").load(out))
    assert (manifest.tree, manifest.base, manifest.source, manifest.branch) == (
        "xen",
        "RELEASE-4.19.0",
        "stable-4.19",
        "xsa/4.19",
    )
    assert [(x.xsa, len(x.commits)) for x in manifest.xsas] == [
        (1, 1),
        (2, 1),
        (3, 2),
        (4, 1),
        (5, 1),
    ]
    assert f"- {xen.shas['xsa3b']}  # grant: part two\n" in out
    assert out.startswith("# Generated by:\n#   xsabot import stable ")


@pytest.mark.usefixtures("cli")
def test_import_output_is_byte_identical_and_path_forms_agree(
    xen: XenLike, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _import(capsys, f"xen={xen.path}")
    again = _import(capsys, f"xen={xen.path}")
    plain = _import(capsys, str(xen.path))
    assert first == again == plain
    assert first[0] == 0


@pytest.mark.usefixtures("cli")
def test_import_from_a_url_fetches_into_the_state_cache(
    xen: XenLike, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = _import(capsys, f"xen={xen.path}")
    fetched = _import(capsys, f"xen={xen.path.as_uri()}")
    assert fetched == local
    assert (tmp_path / "state" / "repos" / "xen.git" / "refs").is_dir()
    assert not (xen.path / ".git" / "FETCH_HEAD").exists()  # the upstream is only read


@pytest.mark.usefixtures("cli")
def test_import_branch_and_tree_options(xen: XenLike, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _import(capsys, f"qemu={xen.path}", "--tree", "qemu", "--branch", "xsa/q")
    manifest = Manifest.model_validate(YAML(typ="safe").load(out))
    assert (status, manifest.tree, manifest.branch) == (0, "qemu", "xsa/q")
    status, out, err = _import(capsys, f"xen={xen.path}", "--branch", "main")
    assert (status, out) == (2, "")
    assert "namespace" in err


@pytest.mark.usefixtures("cli")
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"base": "RELEASE-4.19.9"}, "unknown base 'RELEASE-4.19.9'"),
        ({"upstream": "xen=/nonexistent/xen"}, "no repository at /nonexistent/xen"),
    ],
)
def test_import_errors_are_one_line_and_exit_2(
    xen: XenLike, capsys: pytest.CaptureFixture[str], args: dict[str, str], needle: str
) -> None:
    status, out, err = _import(
        capsys, args.get("upstream", f"xen={xen.path}"), base=args.get("base", "RELEASE-4.19.0")
    )
    assert (status, out) == (2, "")
    assert needle in err
    assert err.count("\n") == 1


@pytest.mark.usefixtures("cli")
def test_import_unknown_source_branch_exits_2(
    xen: XenLike, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["import", "stable", "--upstream", f"xen={xen.path}", "--source", "stable-9.9"]
    status = bot.cli.main.main([*argv, "--base", "RELEASE-4.19.0", "--state", "state"])
    err = capsys.readouterr().err
    assert status == 2
    assert err == f"xsabot import: unknown source 'stable-9.9': no such branch in {xen.path}\n"
