"""Property-based tests: whatever a manifest, a manifest's file name or the config holds, the
loaders answer with the project's own located errors (bot/errors.py), never another exception,
and a bad manifest leaves the good ones loading.

Inputs are random YAML documents, mutations of a valid file (inserted tokens that YAML, the OS or
git treat specially, deleted or duplicated spans, random bytes, deep nesting) and random field
values in a manifest's shape; file names are random bytes. The issue's reproductions are
`@example`s. Runs are bounded and reproducible: `derandomize=True`, no example database.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.config import Config, load_config
from bot.errors import InvalidConfig, InvalidInput, Problem, UsageError
from bot.git.commits import identity_line
from bot.manifest.load import load_manifest, load_manifests

Test = TypeVar("Test", bound=Callable[..., Any])
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

A = "a" * 40
SUM = "e" * 64
GOOD = (
    "tree: xen\nbase: RELEASE-4.19.3\nsource: stable-4.19\nbranch: xsa/{name}\nxsas:\n"
    f"  - xsa: 1\n    commits: [{A}]\n"
    "    prerequisites:\n"
    f"      - commit: {'b' * 40}\n        why: 'x86: a prerequisite'\n"
    "  - xsa: 2\n    patches:\n"
    f"      - path: patches/x.patch\n        sha256: {SUM}\n"
    f"      - url: https://xenbits.xen.org/xsa/xsa2.patch\n        sha256: {SUM}\n"
    "  - xsa: 3\n    status: blocked\n    why: |\n      needs a backport\n"
)
CONFIG = (
    "state: state\nmanifests: manifests\nnamespace: xsa/\n"
    "identity:\n  name: Xen Bot\n  email: bot@example.org\n"
    "trees:\n  xen:\n    upstream: upstream\n    mirror: mirror.git\n    check: make -j2\n"
    "forge:\n  kind: local\n"
)

# What YAML, the OS, git or a terminal treat specially, as a volunteer (or an attacker) types it.
TOKENS = [
    *("!!bool abc", "!!int 0x", "!!str abc", "!!float x", "!!binary ?", "!!timestamp x"),
    *("!!set abc", "!!omap abc", "!!pairs x", "!!null x", "!!python/object/apply:os.system [x]"),
    *("!x ", "! ", "&a ", "*a", "*undefined", "<<: ", "<<: *a", "? ", ": ", "- ", "-", ":"),
    *("[", "]", "{", "}", ",", "#", "'", '"', "|", ">", "|-\n  x\n", "\t", "\r", "\n", "  "),
    *('"\\0"', '"\\ud800"', '"\\e[2J"', '"\\x85"', '"\\u2028"', '"a\\nb"', '"\\\\"', '"\\x7f"'),
    *("---\n", "...\n", "%YAML 1.1\n", "%TAG ! tag:x.org,2000:\n", "\ufeff", "\x00", "\x1b"),
    *("0x", "0o17", "0b2", "1_000", "9" * 5000, "2024-13-45", "2024-02-30 25:61:61", "1e1000"),
    *(".nan", "-.inf", "~", "null", "yes", "NO", "on", "=", "@", "@{", "..", ".lock", "x.lock"),
    *("a" * 300, "/" + "a" * 255, "../", "/etc/passwd", "p/../x", "patches/link.patch"),
    *("patches", "patches/x.patch", "https://", "https://x.org/a b", "xsa/", "xsa/x/y", "é"),
    *("\U0001f600", "xsa: ", "xsas:", "commits: ", "patches: ", "path: ", "url: ", "sha256: "),
    *("prerequisites: ", "commit: ", "status: blocked", "status: ", "why: ", "branch: "),
    *("base: ", "tree: ", "source: ", "identity: ", "name: ", "email: ", "state: ", "trees: "),
    *("upstream: ", "mirror: ", "check: ", "forge: ", "kind: gitlab", "namespace: ", "~root/x"),
    *("~xsabot-no-such-user/x", "~/x", "<", ">", "x@y>", "a <b@c>", ",", ";"),
]
KEYS = [
    *("tree", "base", "source", "branch", "xsas", "xsa", "commits", "patches", "path", "url"),
    *("sha256", "prerequisites", "commit", "status", "why", "identity", "name", "email"),
    *("state", "manifests", "namespace", "trees", "xen", "upstream", "mirror", "check"),
    *("forge", "kind", "project", "token_file", "known_hosts", "token", "<<", "1", "~", "''"),
]


def scalars() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(TOKENS),
        st.sampled_from([A, SUM, "RELEASE-4.19.3", "stable-4.19", "xsa/fuzz", "xen", "1"]),
        st.integers().map(str),
        st.floats().map(repr),
        st.text(max_size=20).map(json.dumps),  # double-quoted YAML, any character escaped
        st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    )


def flow(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Nested flow collections of `values`, as one line of YAML."""
    return st.recursive(
        values,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
            st.dictionaries(st.sampled_from(KEYS), inner, max_size=4).map(
                lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"
            ),
        ),
        max_leaves=12,
    )


def documents() -> st.SearchStrategy[str]:
    """Block mappings of random keys to random values, nested a few levels."""
    value = flow(scalars())
    block = st.recursive(
        st.dictionaries(st.sampled_from(KEYS), value, min_size=1, max_size=5).map(
            lambda d: [f"{k}: {v}" for k, v in d.items()]
        ),
        lambda inner: st.dictionaries(st.sampled_from(KEYS), inner, min_size=1, max_size=3).map(
            lambda d: [line for k, lines in d.items() for line in (f"{k}:", *_indent(lines))]
        ),
        max_leaves=6,
    )
    return block.map(lambda lines: "\n".join(lines) + "\n")


def _indent(lines: Iterable[str]) -> list[str]:
    return ["  " + line for line in lines]


def manifests_with_random_values() -> st.SearchStrategy[str]:
    """A manifest's shape with any field given any value, sometimes under an odd key."""
    value = st.one_of(flow(scalars()), st.sampled_from([A, SUM, "patches/x.patch"]))

    def key(name: str) -> st.SearchStrategy[str]:
        return st.one_of(st.just(name), st.sampled_from(KEYS))

    return st.builds(
        lambda *parts: "".join(parts),
        *(st.builds("{}: {}\n".format, key(k), value) for k in ("tree", "base", "source")),
        st.builds("{}: xsa/{}\n".format, key("branch"), st.sampled_from(["fuzz", "a b", "x/"])),
        st.just("xsas:\n  - xsa: "),
        value,
        st.builds("\n    {}: {}".format, key("commits"), value),
        st.builds("\n    {}:\n      - path: {}".format, key("patches"), value),
        st.builds("\n        sha256: {}".format, value),
        st.builds("\n    {}:\n      - commit: {}".format, key("prerequisites"), value),
        st.builds("\n        why: {}\n".format, value),
    )


@st.composite
def mutations(draw: st.DrawFn, base: str) -> bytes:
    """`base` with a few spans inserted, deleted, replaced, duplicated or nested deep."""
    data = base.encode()
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["token", "token", "delete", "bytes", "line", "nest"]))
        if op == "token":
            data = data[:at] + draw(st.sampled_from(TOKENS)).encode() + data[at:]
        elif op == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 30)) :]
        elif op == "bytes":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif op == "line":
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at) + 1 or len(data)
            data = data[:end] + data[start:end] + data[end:]
        else:
            depth = draw(st.integers(1, 200))
            data = data[:at] + b"[" * depth + b"x" + b"]" * depth + data[at:]
    return data


def any_text(base: str) -> st.SearchStrategy[bytes]:
    """Every kind of input, weighted toward the shapes that reach the deepest code."""
    return st.one_of(
        mutations(base),
        mutations(base),
        documents().map(str.encode),
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
    )


# -- checks ------------------------------------------------------------------------------------


def assert_located(problems: Iterable[Problem], name: str, text: bytes) -> None:
    """Each problem names the file, a line of it and a column, and prints as one line."""
    decoded = text.decode("utf-8", "replace")
    lines = max(len(decoded.splitlines()), text.count(b"\n")) + 1
    problems = list(problems)
    assert problems
    for problem in problems:
        assert problem.path == name
        assert 1 <= problem.line <= lines and problem.col >= 1, problem
        shown = str(problem)
        assert "\n" not in shown and "\r" not in shown and "\x1b" not in shown
        shown.encode("utf-8")  # strict: no lone surrogate


@pytest.fixture(scope="module")
def root() -> Iterable[Path]:
    """A manifests directory with a patch, a link to one and a link to a directory."""
    with tempfile.TemporaryDirectory(prefix="xsabot-fuzz-") as tmp:
        path = Path(tmp)
        (path / "patches").mkdir()
        (path / "patches" / "x.patch").write_text("From: x\n")
        (path / "outside.patch").write_text("secret\n")
        (path / "patches" / "link.patch").symlink_to(path / "outside.patch")
        (path / "linked").symlink_to(path / "patches")
        yield path


ISSUE_MANIFESTS = [  # the shapes issue 11 reports, each of which once stopped every branch
    GOOD.format(name="x").replace("patches/x.patch", '"a\\0b"').encode(),
    GOOD.format(name="x").replace("patches/x.patch", "p" * 300).encode(),
    GOOD.format(name="x").replace("why: |", "why: !!bool abc\n    x: |").encode(),
    GOOD.format(name="x").replace("xsa: 1", "xsa: !!int 0x").encode(),
    b"!!str abc\n",
    GOOD.format(name="x").replace("patches/x.patch", "patches/link.patch").encode(),
    GOOD.format(name="x").replace("patches/x.patch", "linked/x.patch").encode(),
    b"xsas: " + b"[" * 10000 + b"]" * 10000 + b"\n",
    b"base: 2024-13-45\nxsas: [" + b"9" * 5000 + b"]\n",
]


def _examples(argument: str, cases: list[bytes]) -> Callable[[Test], Test]:
    """Each of `cases` as an `@example` of the argument the test draws."""

    def wrap(test: Test) -> Test:
        for case in reversed(cases):
            test = example(**{argument: case})(test)
        return test

    return wrap


# -- targets -----------------------------------------------------------------------------------


@FUZZ
@given(
    text=st.one_of(
        any_text(GOOD.format(name="fuzz")), manifests_with_random_values().map(str.encode)
    )
)
@_examples("text", ISSUE_MANIFESTS)
def test_a_manifest_loads_or_has_located_problems(root: Path, text: bytes) -> None:
    path = root / "m.yaml"
    path.write_bytes(text)
    try:
        loaded = load_manifest(path, root=root)
    except InvalidInput as exc:
        assert_located(exc.problems, str(path), text)
    else:
        assert loaded.name == "m" and loaded.text.encode() == text


def names() -> st.SearchStrategy[bytes]:
    """File names of any bytes the OS allows, under its 255-byte limit with a suffix."""
    return st.one_of(
        st.binary(min_size=1, max_size=60),
        st.text(min_size=1, max_size=60).map(str.encode),
        st.sampled_from([b"4.19", b"-x", b".hidden", b"x.lock", b"a..b", b"@", b"a b", b"\xff"]),
    ).filter(lambda n: b"/" not in n and b"\0" not in n and n not in (b".", b"..", b"good"))


@FUZZ
@given(name=names(), suffix=st.sampled_from([b".yaml", b".yml"]))
@example(name=b"bad\xff", suffix=b".yaml")
@example(name=b"two\nlines", suffix=b".yaml")
@example(name=b"\x1b[31mred", suffix=b".yml")
def test_any_file_name_loads_or_has_printable_located_problems(name: bytes, suffix: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="xsabot-fuzz-") as tmp:
        directory = Path(tmp)
        (directory / "good.yaml").write_text(GOOD.format(name="good").replace("patches/x", "x"))
        (directory / "x.patch").write_text("From: x\n")
        with open(os.fsencode(directory) + b"/" + name + suffix, "w") as file:
            file.write(GOOD.format(name="other").replace("patches/x", "x"))
        result = load_manifests(directory)
    assert "good" in [m.name for m in result.loaded]
    for path, problems in result.invalid.items():
        str(path).encode("utf-8")  # printable in JSON and on a terminal
        assert_located(problems, str(path), b"")
    for loaded in result.loaded:
        loaded.name.encode("utf-8")


@FUZZ
@given(bad=any_text(GOOD.format(name="fuzz")))
@_examples("bad", ISSUE_MANIFESTS)
def test_one_bad_manifest_leaves_the_good_ones_loading(bad: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="xsabot-fuzz-") as tmp:
        directory = Path(tmp)
        (directory / "patches").mkdir()
        (directory / "patches" / "x.patch").write_text("From: x\n")
        for name in ("good-a", "good-b"):
            (directory / f"{name}.yaml").write_text(GOOD.format(name=name))
        (directory / "bad.yaml").write_bytes(bad)
        result = load_manifests(directory)
    loaded = {m.name for m in result.loaded}
    for path, problems in result.invalid.items():
        if path.stem == "bad":
            continue
        # A broken manifest still claims its branch, so a good one publishing a branch it
        # clashes with stops too: the only way the bad file may affect a good one.
        assert all(p.field == "branch" and "bad.yaml" in p.message for p in problems), problems
    assert {"good-a", "good-b"} <= loaded | {p.stem for p in result.invalid}


ISSUE_CONFIGS = [
    CONFIG.replace("bot@example.org", '"bot@x\\nmalicious: y"').encode(),
    CONFIG.replace("bot@example.org", "bot@x> evil").encode(),
    CONFIG.replace("Xen Bot", "x <y@z> 0 +0000").encode(),
    CONFIG.replace("state: state", "state: caf\xe9").encode("latin-1"),
    CONFIG.replace("state: state", "state: a\x00b").encode(),
    CONFIG.replace("state: state", "state: ~xsabot-no-such-user/x").encode(),
    CONFIG.replace("upstream: upstream", "upstream: ~xsabot-no-such-user/x").encode(),
    b"trees: " + b"[" * 10000 + b"]" * 10000 + b"\n",
    CONFIG.replace("Xen Bot", "!!bool abc").encode(),
]


def configs_with_random_identities() -> st.SearchStrategy[bytes]:
    text = st.text(max_size=30)
    return st.builds(
        lambda name, email: (
            CONFIG.replace("Xen Bot", json.dumps(name))
            .replace("bot@example.org", json.dumps(email))
            .encode()
        ),
        st.one_of(text, st.sampled_from(TOKENS)),
        st.one_of(text, st.sampled_from(TOKENS)),
    )


@FUZZ
@given(text=st.one_of(any_text(CONFIG), configs_with_random_identities()))
@_examples("text", ISSUE_CONFIGS)
def test_a_config_loads_or_is_a_usage_error_naming_the_file(root: Path, text: bytes) -> None:
    path = root / "xsabot.yaml"
    path.write_bytes(text)
    try:
        config = load_config(path)
    except InvalidConfig as exc:
        assert_located(exc.problems, str(path), text)
    except UsageError as exc:  # only when the file cannot be read at all
        assert str(path) in str(exc)
    else:
        assert isinstance(config, Config)
        line = identity_line(config.identity.name, config.identity.email, b"0 +0000")
        # git's author/committer line: `name <email> date zone`, nothing that ends a field early
        assert line.count(b"<") == 1 and line.count(b">") == 1 and b"\n" not in line
        assert line.startswith(config.identity.name.encode() + b" <")
