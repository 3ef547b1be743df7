"""Bot edits to a manifest keep every comment, blank line, key order and quote of the volunteers."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from bot.manifest.edit import ManifestEditError, add_prerequisites, mark_blocked
from bot.manifest.model import Manifest

A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)
F1, F2, F3 = ("f1" * 20, "f2" * 20, "f3" * 20)

MANIFEST = f"""\
# Maintained by the 4.19 volunteers.
tree: xen
base: RELEASE-4.19.3   # the tag downstreams run
source: stable-4.19
branch: xsa/4.19.3
xsas:                      # applied in this order
  - xsa: 467
    commits: [{F1}]    # one fix

  # 470 needed two attempts upstream
  - xsa: 470
    commits:
      - {F2}  # x86/amd: Mitigate the thing
      - {F3}  # x86/amd: Mitigate it harder
  - xsa: 472
    status: blocked        # waiting for a backport
    why: 'needs a manual backport'
"""


def parses(text: str) -> Manifest:
    return Manifest.model_validate(YAML(typ="safe").load(text))


def test_add_prerequisites_goes_before_the_commits_and_keeps_comments() -> None:
    prereqs = [(A, "x86/amd: Stop updating the Zenbleed mitigation dynamically"), (B, "cpu: 'q'")]
    result = add_prerequisites(MANIFEST, 470, prereqs)
    assert result == MANIFEST.replace(
        "  - xsa: 470\n",
        "  - xsa: 470\n"
        "    prerequisites:\n"
        f"      - commit: {A}\n"
        '        why: "x86/amd: Stop updating the Zenbleed mitigation dynamically"\n'
        f"      - commit: {B}\n"
        "        why: \"cpu: 'q'\"\n",
    )
    entry = parses(result).xsas[1]
    assert [(p.commit, p.why) for p in entry.prerequisites] == prereqs
    assert entry.commits == (F2, F3)


def test_add_prerequisites_puts_new_ones_first_and_skips_those_listed() -> None:
    once = add_prerequisites(MANIFEST, 470, [(A, "first")])
    assert add_prerequisites(once, 470, [(A, "first")]) == once
    twice = add_prerequisites(once, 470, [(A, "first"), (C, "third")])
    # New ones go first: the finder proved them with everything listed picked after them.
    assert twice == once.replace(
        f"      - commit: {A}\n",
        f'      - commit: {C}\n        why: "third"\n      - commit: {A}\n',
    )
    assert [p.commit for p in parses(twice).xsas[1].prerequisites] == [C, A]


def test_add_prerequisites_to_a_flow_style_fix_list() -> None:
    result = add_prerequisites(MANIFEST, 467, [(D, "sched: prepare")])
    assert result == MANIFEST.replace(
        "  - xsa: 467\n",
        f'  - xsa: 467\n    prerequisites:\n      - commit: {D}\n        why: "sched: prepare"\n',
    )


def test_new_entries_follow_the_style_of_existing_ones() -> None:
    text = f"xsas:\n- xsa: 1\n  prerequisites:\n  - {{commit: {A}, why: x}}\n  commits: [{F1}]\n"
    assert add_prerequisites(text, 1, [(B, "y")]) == text.replace(
        f"  - {{commit: {A}, why: x}}\n",
        f'  - {{commit: {B}, why: "y"}}\n  - {{commit: {A}, why: x}}\n',
    )


def test_mark_blocked_sets_status_and_why_and_keeps_the_commits() -> None:
    result = mark_blocked(MANIFEST, 470, "no prerequisite set found")
    assert result == MANIFEST.replace(
        "  - xsa: 470\n",
        '  - xsa: 470\n    status: blocked\n    why: "no prerequisite set found"\n',
    )
    entry = parses(result).xsas[1]
    assert (entry.status, entry.why, entry.commits) == (
        "blocked",
        "no prerequisite set found",
        (F2, F3),
    )


def test_mark_blocked_replaces_an_existing_why_in_place() -> None:
    result = mark_blocked(MANIFEST, 472, "still waiting")
    assert result == MANIFEST.replace("'needs a manual backport'", '"still waiting"')
    assert mark_blocked(result, 472, "still waiting") == result


def test_a_document_start_and_the_comments_before_it_survive() -> None:
    text = "# top\n---\n# inside\nxsas:\n- xsa: 1\n  commits: [x]\n"
    assert mark_blocked(text, 1, "why") == (
        '# top\n---\n# inside\nxsas:\n- xsa: 1\n  status: blocked\n  why: "why"\n  commits: [x]\n'
    )


def test_an_xsa_not_in_the_manifest_is_a_clear_error() -> None:
    with pytest.raises(
        ManifestEditError, match=r"XSA-999 is not in the manifest \(it lists: 467, 470, 472\)"
    ):
        add_prerequisites(MANIFEST, 999, [(A, "x")])
    with pytest.raises(ManifestEditError, match="XSA-999"):
        mark_blocked(MANIFEST, 999, "x")
    with pytest.raises(ManifestEditError, match="no `xsas` list"):
        mark_blocked("tree: xen\n", 1, "x")
