"""The check gate's decisions: which XSA breaks the build, and what is left to publish.

Pure: the git side builds the branch (with some XSAs held back) and runs the check through a
`GatePort`; this module only decides which trees to check. A check costs minutes on Xen (about
40 s for the hypervisor alone), so the first failing XSA is found by bisection over the XSAs
added since the last tree known to pass, not by one check per XSA. The bisection tries the
port's suspects first (the XSAs that wrote the lines the compiler's errors are on): a right
guess costs at most two checks (the tree before the XSA passes, the tree with it fails), one step
apart, which an incremental build makes cheap; a wrong one narrows the range all the same.

Bisection assumes the breakage stays once it is in (a later XSA does not repair what an
earlier one broke); where that does not hold it still finds an XSA after which the check
starts failing, and the gate loop goes on until the tip passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Bisection:
    index: int  # the first prefix that fails: XSA number `index` (1-based) of the list broke it
    checks: int  # how many times `passes` was called


def first_failing(
    count: int,
    passes: Callable[[int], bool],
    known_good: int = 0,
    suspects: Callable[[int], Sequence[int]] | None = None,
) -> Bisection:
    """A first failing prefix of XSAs 1..count, where prefix `known_good` passes and prefix
    `count` fails (neither is checked again): one that fails while the prefix before it
    passes. Without `suspects`, by bisection: at most ceil(log2(count - known_good)) checks.

    `suspects(bad)`: prefixes guessed to be that one, most likely first, from what the
    check said of the failing prefix `bad`. Before each bisection step the first guess not
    tried yet (and within the range) is tried instead: the prefix before it is checked, then
    itself; every answer narrows the range as a bisection step would, and a new failing
    prefix is asked for its own suspects. A right guess costs at most two checks."""
    if not 0 <= known_good < count:
        raise ValueError(f"need 0 <= known_good < count, got {known_good} and {count}")
    good, bad, checks = known_good, count, 0
    tried: set[int] = set()
    while bad - good > 1:
        guess = next(
            (g for g in (suspects(bad) if suspects else ()) if good < g <= bad and g not in tried),
            None,
        )
        if guess is not None:
            tried.add(guess)
            for index in (guess - 1, guess):
                if not good < index < bad:
                    continue
                checks += 1
                if passes(index):
                    good = index
                else:
                    bad = index
                    break
            continue
        middle = (good + bad) // 2
        checks += 1
        if passes(middle):
            good = middle
        else:
            bad = middle
    return Bisection(bad, checks)


@dataclass(frozen=True)
class GateBuild:
    """A branch as built for the gate: the XSAs that changed the tree, in order, and the
    trees: `trees[0]` before the first of them (the base), `trees[i]` after `xsas[i-1]`."""

    xsas: tuple[int, ...]
    trees: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.trees) != len(self.xsas) + 1:
            raise ValueError("a GateBuild has one tree more than it has XSAs")

    @property
    def tip(self) -> str:
        return self.trees[-1]


class GatePort(Protocol):
    def build(self, held_back: frozenset[int]) -> GateBuild:
        """Build the manifest's branch without the XSAs in `held_back` (as if blocked)."""
        ...

    def passes(self, tree: str) -> bool:
        """Run the check on `tree` (or read its cached result)."""
        ...

    def known(self, tree: str) -> bool | None:
        """The cached result of the check on `tree`, without running anything; None: unknown."""
        ...

    def suspects(self, build: GateBuild, failing: int) -> Sequence[int]:
        """The prefixes of `build` up to `failing` (1-based) whose XSA most likely broke the
        check on `build.trees[failing]`, most likely first; () when nothing points at one."""
        ...


@dataclass(frozen=True)
class GateBlock:
    """An XSA held back because the branch stops passing the check when it is added."""

    xsa: int
    tree: str  # the first failing tree: its check log holds the compiler errors
    good_tree: str  # the tree just before the XSA: where build prerequisites are looked for
    checks: int  # checks the bisection that found it asked for (cached ones included)


@dataclass(frozen=True)
class GateResult:
    passed: bool  # the final build's tip passes: it may be published
    build: GateBuild  # the branch to publish (without the `blocked` XSAs)
    blocked: tuple[GateBlock, ...] = ()
    base_fails: bool = False  # the base itself fails the check: no XSA is to blame
    checks: int = 0  # checks this gate ran (tip checks included; cached results not counted)
    trees_checked: tuple[str, ...] = field(default=())  # the trees of those checks, in order


def gate(port: GatePort, *, held_back: frozenset[int] = frozenset()) -> GateResult:
    """Hold back one breaking XSA at a time until the tip passes.

    Each round checks the tip; when it fails, bisects between the last tree known to pass and
    the first known to fail, holds that XSA back and rebuilds (the XSAs after it are picked
    again: they may land differently, or not at all, without it). The trees before the held-back
    XSA do not change, so the next round starts from a tree known to pass. At most one round
    per XSA.
    """
    blocks: list[GateBlock] = []
    seen: dict[str, bool] = {}
    checked: list[str] = []

    def passes(tree: str) -> bool:
        found = seen.get(tree)
        if found is None:
            found = port.known(tree)
        if found is None:
            found = port.passes(tree)
            checked.append(tree)
        seen[tree] = found
        return found

    def result(build: GateBuild, passed: bool, base_fails: bool = False) -> GateResult:
        return GateResult(passed, build, tuple(blocks), base_fails, len(checked), tuple(checked))

    held = frozenset(held_back)
    while True:
        build = port.build(held)
        if passes(build.tip):
            return result(build, True)
        if not build.xsas:
            return result(build, False, base_fails=True)
        good, bad, assumed = _bounds(build, seen, port)
        bisection = _bisect(build, good, bad, passes, port)
        index = bisection.index
        if index == 1 and assumed and not passes(build.trees[0]):
            return result(build, False, base_fails=True)
        blocks.append(
            GateBlock(
                build.xsas[index - 1], build.trees[index], build.trees[index - 1], bisection.checks
            )
        )
        if build.xsas[index - 1] in held:
            raise ValueError(f"the build still has XSA-{build.xsas[index - 1]}, held back")
        held = held | {build.xsas[index - 1]}


def _bisect(
    build: GateBuild, good: int, bad: int, passes: Callable[[str], bool], port: GatePort
) -> Bisection:
    """The first failing prefix of `build` between `good` and `bad`, following the errors."""
    return first_failing(
        bad,
        lambda i: passes(build.trees[i]),
        known_good=good,
        suspects=lambda failing: port.suspects(build, failing),
    )


def _bounds(build: GateBuild, seen: dict[str, bool], port: GatePort) -> tuple[int, int, bool]:
    """(last prefix known to pass, first known to fail after it, whether the passing one is
    only assumed: the base, never checked). Earlier rounds and passes fill the cache."""

    def known(i: int) -> bool | None:
        tree = build.trees[i]
        return seen[tree] if tree in seen else port.known(tree)

    count = len(build.xsas)
    good = next((i for i in range(count - 1, -1, -1) if known(i) is True), None)
    start = good or 0
    bad = next((i for i in range(start + 1, count + 1) if known(i) is False), count)
    return start, bad, good is None
