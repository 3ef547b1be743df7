"""The gate's decisions: bisection cost, and holding back breaking XSAs until the tip passes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from bot.core.gate import GateBuild, first_failing, gate


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13, 38, 67])
def test_bisection_finds_the_first_failing_xsa_in_log2_checks(count: int) -> None:
    worst = 0
    for first in range(1, count + 1):
        asked: list[int] = []

        def passes(i: int, first: int = first, asked: list[int] = asked) -> bool:
            asked.append(i)
            return i < first

        found = first_failing(count, passes)
        assert found.index == first
        assert found.checks == len(asked) <= math.ceil(math.log2(count))
        assert count not in asked and 0 not in asked  # the known ends are not checked again
        worst = max(worst, found.checks)
    assert worst == math.ceil(math.log2(count))


def test_bisection_starts_after_the_known_good_prefix() -> None:
    asked: list[int] = []
    found = first_failing(40, lambda i: asked.append(i) or i < 37, known_good=36)
    assert (found.index, found.checks) == (37, 2)
    assert min(asked) > 36


@pytest.mark.parametrize("count", [2, 5, 13, 48])
def test_suspects_never_change_the_answer_and_a_right_one_costs_at_most_two_checks(
    count: int,
) -> None:
    for first in range(1, count + 1):
        for suspects in ([first], [count, first], [1, count // 2, first], [count + 5, 0]):
            asked: list[int] = []

            def passes(i: int, first: int = first, asked: list[int] = asked) -> bool:
                assert i not in asked, f"prefix {i} checked twice"
                asked.append(i)
                return i < first

            found = first_failing(count, passes, suspects=lambda bad, s=suspects: s)
            assert found.index == first and found.checks == len(asked)
            assert count not in asked and 0 not in asked
            if suspects == [first]:
                assert found.checks <= 2  # the prefix before it passes, and it fails
            bound = math.ceil(math.log2(count)) + 2 * len(suspects)
            assert found.checks <= bound


def test_each_failing_prefix_is_asked_for_its_own_suspects() -> None:
    """The tip's errors point at XSA-40, whose prefix before fails: its errors point at
    XSA-19, the first to break. Three checks, where bisecting 48 takes six."""
    asked: list[int] = []

    def passes(i: int) -> bool:
        asked.append(i)
        return i < 19

    pointing = {48: [40], 39: [19]}
    found = first_failing(48, passes, suspects=lambda bad: pointing.get(bad, []))
    assert found.index == 19 and asked == [39, 18, 19] and found.checks == 3


def test_bisection_needs_a_failing_end_after_the_good_one() -> None:
    with pytest.raises(ValueError):
        first_failing(3, lambda i: True, known_good=3)


# -- the gate loop over a fake branch ---------------------------------------------------------


@dataclass
class FakeBranch:
    """XSAs 1..n; the tree after each names the XSAs in it. `breaks` fail the check once in;
    `needs[x] = y`: XSA x fails to pick without y (so it drops out when y is held back)."""

    xsas: list[int]
    breaks: set[int]
    needs: dict[int, int] = field(default_factory=dict)
    base_builds: bool = True
    points: bool = False  # the errors name files only the breaking XSAs change
    cache: dict[str, bool] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    builds: int = 0

    def build(self, held_back: frozenset[int]) -> GateBuild:
        self.builds += 1
        applied: list[int] = []
        for x in self.xsas:
            if x not in held_back and (x not in self.needs or self.needs[x] in applied):
                applied.append(x)
        trees = ["base"] + [
            "base+" + "+".join(map(str, applied[: i + 1])) for i in range(len(applied))
        ]
        return GateBuild(tuple(applied), tuple(trees))

    def passes(self, tree: str) -> bool:
        assert tree not in self.cache, f"{tree} checked twice"
        self.runs.append(tree)
        in_tree = {int(x) for x in tree.split("+")[1:]}
        self.cache[tree] = self.base_builds and not (in_tree & self.breaks)
        return self.cache[tree]

    def known(self, tree: str) -> bool | None:
        return self.cache.get(tree)

    def suspects(self, build: GateBuild, failing: int) -> tuple[int, ...]:
        """What the compiler's errors would point at: the breaking XSAs in the failing tree
        (when `points` is set)."""
        if not self.points:
            return ()
        return tuple(i for i in range(failing, 0, -1) if build.xsas[i - 1] in self.breaks)


def test_a_passing_tip_costs_one_check() -> None:
    branch = FakeBranch(list(range(1, 21)), breaks=set())
    result = gate(branch)
    assert result.passed and result.blocked == () and branch.runs == [result.build.tip]


def test_the_breaking_xsa_is_held_back_and_the_rest_published() -> None:
    branch = FakeBranch(list(range(1, 33)), breaks={19})
    result = gate(branch)
    assert result.passed
    assert [b.xsa for b in result.blocked] == [19]
    assert 19 not in result.build.xsas and len(result.build.xsas) == 31
    block = result.blocked[0]
    assert (block.tree, block.good_tree) == (
        "base+" + "+".join(map(str, range(1, 20))),
        "base+" + "+".join(map(str, range(1, 19))),
    )
    assert block.checks <= 5  # log2(32)
    # tip, bisection, new tip: no tree twice (FakeBranch asserts it) and far fewer than 32
    assert result.checks == len(branch.runs) == 1 + block.checks + 1


def test_errors_that_point_at_the_breaking_xsa_cost_two_checks_instead_of_a_bisection() -> None:
    plain = FakeBranch(list(range(1, 49)), breaks={19, 40})
    pointed = FakeBranch(list(range(1, 49)), breaks={19, 40}, points=True)
    a, b = gate(plain), gate(pointed)
    assert [x.xsa for x in a.blocked] == [x.xsa for x in b.blocked] == [19, 40]
    assert a.build == b.build and a.passed and b.passed
    # both are suspects at first, the latest tried first: its prefix before fails (it has
    # XSA-19), XSA-19's passes, XSA-19's fails; then XSA-40 alone: two checks
    assert [x.checks for x in b.blocked] == [3, 2]
    assert b.checks < a.checks


def test_two_breaking_xsas_the_second_bisected_from_the_first_good_tree() -> None:
    branch = FakeBranch(list(range(1, 17)), breaks={5, 12})
    result = gate(branch)
    assert result.passed and [b.xsa for b in result.blocked] == [5, 12]
    second = result.blocked[1]
    # prefix 4 passed in the first bisection: the second one looks only after it
    assert second.checks <= math.ceil(math.log2(16 - 4))


def test_an_xsa_that_needed_the_held_back_one_drops_out_without_a_check() -> None:
    branch = FakeBranch([1, 2, 3, 4], breaks={2}, needs={3: 2})
    result = gate(branch)
    assert result.passed and result.build.xsas == (1, 4) and [b.xsa for b in result.blocked] == [2]


def test_a_new_xsa_after_a_passing_tip_is_bisected_from_that_tip() -> None:
    branch = FakeBranch(list(range(1, 9)), breaks=set())
    assert gate(branch).passed
    branch.xsas.append(9)
    branch.breaks = {9}
    branch.runs.clear()
    result = gate(branch)
    assert [b.xsa for b in result.blocked] == [9]
    assert result.blocked[0].checks == 0  # prefix 8 is known to pass: nothing to bisect
    assert len(branch.runs) == 1  # the new tip; the one without XSA-9 is the cached old tip


def test_a_base_that_does_not_build_blames_no_xsa() -> None:
    branch = FakeBranch([1, 2, 3, 4], breaks=set(), base_builds=False)
    result = gate(branch)
    assert not result.passed and result.base_fails and result.blocked == ()
    assert "base" in branch.runs


def test_xsas_already_held_back_stay_out() -> None:
    branch = FakeBranch([1, 2, 3], breaks={2})
    result = gate(branch, held_back=frozenset({2}))
    assert result.passed and result.blocked == () and result.build.xsas == (1, 3)
