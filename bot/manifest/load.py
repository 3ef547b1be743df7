"""Reading manifest files: YAML with positions in, a validated `Manifest` or every problem out.

This module owns the file side of manifests: decoding, YAML syntax, mapping the model's
validation errors to line and column, and the checks that need context (the bot's namespace and
trees, patch files on disk, repeats within a file, branches two files cannot both publish, a
file name that cannot go in a branch name). Each file is parsed once, in ruamel's round-trip
mode because only it records where every key and value is; ruamel is imported on first use so
commands that never read a manifest do not pay for it. Patch paths are relative to the
manifests directory (`root`).

A manifest is untrusted input read on every pass beside all the others, so one file must never
be able to stop the process: it is read only when it is a regular file and not a symbolic link
(`files.py`), its size is capped, YAML anchors, aliases, tags and deep nesting are refused while
the document is composed (`yamldoc.py`), and control characters are refused in every key and
value. Whatever is wrong is a problem at its line and column, never an exception.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from bot.errors import InvalidInput, Problem, SetupError, printable
from bot.manifest import yamldoc
from bot.manifest.files import MAX_PATCH_BYTES, FileRefused, TooLarge, check_beneath, read_file
from bot.manifest.model import Manifest, patch_path_problem
from bot.manifest.positions import (
    Pos,
    first_content,
    item_pos,
    locate,
    node_pos,
    value_pos,
)
from bot.manifest.refname import check_ref_format
from bot.manifest.wording import (
    field_name,
    is_scalar,
    kind_of,
    plain,
    suggestion,
)

SUFFIXES = (".yaml", ".yml")
_FULL_SHA = re.compile(r"[0-9a-fA-F]{40}")
_TOKEN = re.compile(r"[^\s,\]}#]+")  # a plain scalar as written, up to the next flow indicator
# The shipped manifests are a few KiB; a cap far above that keeps a runaway or hostile file from
# costing the pass its memory and time (ruamel's pure-Python scanner reads about 5 MB/s).
MAX_BYTES = 1 << 20
# Keys whose values are prose, where a block scalar (`why: |`) writes line breaks and tabs.
FREE_TEXT = frozenset({"why"})
# A problem quotes at most this much of what the file holds (a whole file can be one value).
MAX_QUOTE = 200
# Problems reported per file, the first ones by position: a file of 100,000 bad values gets
# them all fixed long before the last would be read, and lint's output (an MR comment with
# `plan --mr`) stays readable.
MAX_PROBLEMS = 100


@dataclass(frozen=True)
class LoadedManifest:
    """A manifest that passed every check, with where it came from."""

    path: Path  # absolute path of the file
    name: str  # file stem, e.g. "4.19"
    manifest: Manifest
    text: str  # the file's text as read


@dataclass(frozen=True)
class ManifestSet:
    """The manifests of a directory: the valid ones, and each broken file with all its problems.

    A broken manifest stops only its own branch, so callers act on `loaded` and report `invalid`.
    """

    loaded: tuple[LoadedManifest, ...]  # valid ones, sorted by name
    # Every broken file with all its problems, named as it can be printed (`shown_path`).
    invalid: Mapping[Path, tuple[Problem, ...]]


def load_manifest(
    path: Path, *, root: Path, namespace: str = "xsa/", trees: Collection[str] | None = None
) -> LoadedManifest:
    """Load and check one manifest; raise `InvalidInput` with every problem of the file."""
    result = _Reader(path, root=root, namespace=namespace, trees=trees).read()
    if result.loaded is None:
        raise InvalidInput(list(result.problems))
    return result.loaded


def load_manifests(
    directory: Path,
    *,
    namespace: str = "xsa/",
    trees: Collection[str] | None = None,
    paths: Sequence[Path] | None = None,
) -> ManifestSet:
    """Load `*.yaml` and `*.yml` in `directory` (or only `paths`); a bad file never raises.

    Besides each file's own checks, no two files may publish the same branch or share a name
    (file stem). A symbolic link with a manifest's suffix is listed, to be refused unread.
    Raises `SetupError` only when `directory` itself cannot be listed.
    """
    if paths is None:
        try:
            paths = [
                p
                for p in directory.iterdir()
                if p.suffix in SUFFIXES and (p.is_symlink() or p.is_file())
            ]
        except OSError as exc:
            raise SetupError(f"cannot list manifests in {directory}: {exc.strerror}") from None
    results = [
        _Reader(p, root=directory, namespace=namespace, trees=trees).read()
        for p in sorted({p.absolute() for p in paths})
    ]
    problems = {r.path: list(r.problems) for r in results}
    _check_across(results, problems)
    loaded = [r.loaded for r in results if r.loaded is not None and not problems[r.path]]
    invalid: dict[Path, list[Problem]] = defaultdict(list)
    for path, found in problems.items():
        if found:
            invalid[shown_path(path)] += found
    return ManifestSet(
        loaded=tuple(sorted(loaded, key=lambda m: m.name)),
        invalid={path: tuple(_in_order(found)) for path, found in invalid.items()},
    )


def display_path(path: Path) -> str:
    """How problems name a file: relative to the working directory when it is inside it, with
    what cannot be printed escaped (`shown_path`)."""
    cwd = Path.cwd()
    return str(shown_path(path.relative_to(cwd) if path.is_relative_to(cwd) else path))


def shown_path(path: Path) -> Path:
    """`path` as it can be printed, in JSON or a terminal: bytes that are not UTF-8 as `\\xff`,
    control characters as `\\n` or `\\x1b`. The same path for any name a manifest may have."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return Path(printable(text))


class _Where(NamedTuple):
    value: str
    line: int  # 1-based, as in a Problem
    col: int


@dataclass(frozen=True)
class _Result:
    path: Path
    loaded: LoadedManifest | None
    problems: tuple[Problem, ...]
    branch: _Where | None  # the raw `branch`, kept for the check across files


def _check_across(results: list[_Result], problems: dict[Path, list[Problem]]) -> None:
    """Branches two files cannot both publish make both files invalid.

    The same branch would have the two overwrite each other's work. A branch and a branch under
    it (`xsa/4.19`, `xsa/4.19/lts`) cannot exist together in git, which keeps the first as a file
    where the second needs a directory: the pass's one atomic push would fail, and with it every
    branch, on every pass.
    """
    by_branch: dict[str, list[tuple[_Result, _Where]]] = defaultdict(list)
    by_name: dict[str, list[_Result]] = defaultdict(list)
    for r in results:
        by_name[r.path.stem].append(r)
        if r.branch is not None:
            by_branch[r.branch.value].append((r, r.branch))

    def report(r: _Result, where: _Where, message: str) -> None:
        problems[r.path].append(
            Problem(display_path(r.path), where.line, where.col, "branch", message)
        )

    for branch, group in by_branch.items():
        for r, where in group if len(group) > 1 else ():
            others = ", ".join(f"{display_path(o.path)}:{w.line}" for o, w in group if o is not r)
            report(r, where, f"branch `{branch}` is also published by {others}")
    clash = ": git cannot have a branch and branches under it"
    # Only the few branches above each one (one per `/`) are looked up, not every pair.
    for branch, group in by_branch.items():
        parts = branch.split("/")
        for above in ("/".join(parts[:i]) for i in range(1, len(parts))):
            for (r, where), (o, other) in product(group, by_branch.get(above, ())):
                at_o = f"{display_path(o.path)}:{other.line}"
                report(
                    r, where, f"branch `{branch}` clashes with `{above}` published by {at_o}{clash}"
                )
                at_r = f"{display_path(r.path)}:{where.line}"
                report(
                    o, other, f"branch `{above}` clashes with `{branch}` published by {at_r}{clash}"
                )
    # The name identifies a manifest in plans, state and proposals, so it must be unique too.
    for name, same in by_name.items():
        for r in same if len(same) > 1 else ():
            others = ", ".join(display_path(o.path) for o in same if o is not r)
            message = f"another manifest has the name `{name}`: {others}"
            problems[r.path].append(Problem(display_path(r.path), 1, 1, "", message))


def _in_order(problems: Collection[Problem]) -> list[Problem]:
    # Stable: problems at one place keep the order they were found in.
    return sorted(problems, key=lambda p: (p.line, p.col))


def _name_problem(name: str) -> str | None:
    """Why the manifest name `name` cannot be one component of a ref, or None.

    The name (the file stem, so never with a `/`) goes into proposal branches
    `xsabot/<name>/xsa-<N>`; a name git refuses would fail only then, at `git update-ref`.
    The whole-name rules (no trailing `.`, not `@`) are stricter than a middle component needs,
    which costs nothing and lets the name stand alone in a ref too.
    """
    if shown_path(Path(name)) != Path(name):
        return "is not UTF-8 text or has control characters"
    why = check_ref_format(name)
    if why is not None and why.startswith("has a component"):
        # check_ref_format's words for a multi-component ref; here the component is the name.
        why = "starts with `.`" if name.startswith(".") else "ends with `.lock`"
    return why


class _Reader:
    """Reads one file and collects every problem in it instead of stopping at the first."""

    def __init__(
        self, path: Path, *, root: Path, namespace: str, trees: Collection[str] | None
    ) -> None:
        self.path = path.absolute()
        self.shown = display_path(self.path)
        self.root = root.absolute()
        self.namespace = namespace
        self.trees = trees
        self.text = ""
        self.lines: list[str] | None = None  # `text` split, once, when a message quotes it
        self.problems: list[Problem] = []

    def read(self) -> _Result:
        why = _name_problem(self.path.stem)
        if why is not None:
            name = shown_path(Path(self.path.stem))
            message = f"the manifest's name `{name}` (its file name) is part of branch"
            self._problem((0, 0), "", f"{message} names, but it {why}: rename the file")
        doc = self._parse()
        if doc is None:
            return _Result(self.path, None, self._reported(), None)
        manifest = self._validate(doc)
        self._check_context(doc)
        branch = doc.get("branch")
        where = None
        if isinstance(branch, str):
            line, col = value_pos(doc, "branch")
            where = _Where(branch, line + 1, col + 1)
        loaded = None
        if manifest is not None and not self.problems:
            loaded = LoadedManifest(self.path, self.path.stem, manifest, self.text)
        return _Result(self.path, loaded, self._reported(), where)

    def _reported(self) -> tuple[Problem, ...]:
        """The problems in order, the first `MAX_PROBLEMS` of them and a count of the rest."""
        found = _in_order(self.problems)
        if len(found) <= MAX_PROBLEMS:
            return tuple(found)
        shown, rest = found[:MAX_PROBLEMS], found[MAX_PROBLEMS:]
        more = Problem(
            self.shown, rest[0].line, rest[0].col, "", f"{len(rest)} more problems not shown"
        )
        return (*shown, more)

    def _problem(self, pos: Pos, field: str, message: str) -> None:
        if len(message) > 2 * MAX_QUOTE:  # what quotes the file's content must not repeat it all
            message = message[: 2 * MAX_QUOTE] + "…"
        self.problems.append(Problem(self.shown, pos[0] + 1, pos[1] + 1, field, message))

    # -- YAML ------------------------------------------------------------------------------

    def _parse(self) -> Any:
        """The document as ruamel's CommentedMap, or None after recording why there is none."""
        try:
            data = read_file(self.path, MAX_BYTES)  # never through a link, never past the cap
        except TooLarge:
            self._problem((0, 0), "", "manifest is larger than 1 MiB")
            return None
        except FileRefused as exc:
            self._problem((0, 0), "", f"the file is not read: {exc}")
            return None
        text, bad_byte = yamldoc.decode(data)
        if text is None:
            self._problem(bad_byte, "", "the file is not UTF-8 text")
            return None
        self.text = text
        parsed = yamldoc.parse(text, "manifests")
        for pos, message in parsed.problems:
            self._problem(pos, "", message)
        doc = parsed.doc
        if parsed.problems:
            return None
        if doc is None:
            needs = "a manifest needs `base`, `source` and `branch`"
            self._problem(first_content(self.text), "", f"the file is empty; {needs}")
            return None
        if not isinstance(doc, dict):
            pos = node_pos(doc) if hasattr(doc, "lc") else first_content(self.text)
            kind = kind_of(doc)
            if len(kind) > MAX_QUOTE:
                kind = kind[:MAX_QUOTE] + "…"
            self._problem(pos, "", f"a manifest is a mapping (`key: value` lines), not {kind}")
            return None
        refused = list(yamldoc.text_problems(doc, FREE_TEXT))
        for pos, field, message in refused:
            self._problem(pos, field, message)
        # Nothing after this looks at a value holding such a character (a NUL in a path).
        return None if refused else doc

    # -- the model -------------------------------------------------------------------------

    def _validate(self, doc: Any) -> Manifest | None:
        try:
            return Manifest.model_validate(plain(doc))
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                self._validation_problem(doc, err)
            return None

    def _validation_problem(self, doc: Any, err: ErrorDetails) -> None:
        loc = err["loc"]
        pos = locate(doc, loc, at_key=err["type"] == "extra_forbidden")
        self._problem(pos, field_name(loc), self._message(err, pos))

    def _message(self, err: ErrorDetails, pos: Pos) -> str:
        kind, value, ctx = err["type"], err["input"], err.get("ctx", {})
        if kind == "value_error":
            return str(ctx["error"])
        if kind == "missing":
            return "required key is missing"
        if kind == "extra_forbidden":
            return f"unknown key{suggestion(err['loc'])}"
        if kind == "string_type" and is_scalar(value):
            # A SHA of digits only (or digits and one `e`) is a number to YAML, 4.19 too.
            token = self._token(pos)
            return f"YAML reads {token} as {kind_of(value)}; quote it: '{token}'"
        expected = {
            "string_type": "text",
            "int_type": "a whole number",
            "tuple_type": "a list",
            "list_type": "a list",
            "model_type": "a mapping (`key: value`)",
            "dict_type": "a mapping (`key: value`)",
            "literal_error": str(ctx.get("expected", "")),
        }.get(kind)
        if expected:
            return f"expected {expected}, got {kind_of(value)}"
        return err["msg"]

    def _token(self, pos: Pos) -> str:
        if self.lines is None:
            self.lines = self.text.splitlines()
        lines = self.lines
        match = _TOKEN.match(lines[pos[0]], pos[1]) if pos[0] < len(lines) else None
        return match.group() if match else "this value"

    # -- checks that need context ----------------------------------------------------------

    def _check_context(self, doc: Any) -> None:
        branch = doc.get("branch")
        ns = self.namespace
        if isinstance(branch, str) and not (branch.startswith(ns) and len(branch) > len(ns)):
            message = f"`{branch}` is outside the bot's namespace: branches start with `{ns}`"
            self._problem(value_pos(doc, "branch"), "branch", message)
        if self.trees is not None:
            self._check_tree(doc, self.trees)
        xsas = doc.get("xsas")
        if isinstance(xsas, list):
            self._check_xsas(xsas)

    def _check_tree(self, doc: Any, trees: Collection[str]) -> None:
        known = ", ".join(f"`{t}`" for t in sorted(trees)) or "none"
        if "tree" not in doc:
            default = Manifest.model_fields["tree"].default
            if default not in trees:
                message = f"no `tree` given and the default `{default}` is not configured "
                self._problem((doc.lc.line, doc.lc.col), "tree", message + f"(trees: {known})")
            return
        tree = doc["tree"]
        if isinstance(tree, str) and tree not in trees:
            message = f"unknown tree `{tree}`; the bot config has {known}"
            self._problem(value_pos(doc, "tree"), "tree", message)

    def _check_xsas(self, xsas: Any) -> None:
        numbers: dict[int, Pos] = {}
        commits: list[tuple[Pos, str, str]] = []  # where, field, lower-case SHA
        for i, entry in enumerate(xsas):
            if not isinstance(entry, dict):
                continue
            number = entry.get("xsa")
            if isinstance(number, int) and not isinstance(number, bool):
                pos = value_pos(entry, "xsa")
                if number in numbers:
                    line = numbers[number][0] + 1
                    self._problem(
                        pos,
                        f"xsas[{i}].xsa",
                        f"XSA-{number} is listed twice (first at line {line})",
                    )
                else:
                    numbers[number] = pos
            listed = _commits(entry, f"xsas[{i}]")
            commits += listed
            self._check_placements(entry, f"xsas[{i}]")
            self._check_partial(entry, f"xsas[{i}]", {sha for _, _, sha in listed})
            patches = entry.get("patches")
            for j, patch in enumerate(patches if isinstance(patches, list) else ()):
                if isinstance(patch, dict) and isinstance(patch.get("path"), str):
                    field = f"xsas[{i}].patches[{j}].path"
                    self._check_patch_file(value_pos(patch, "path"), field, patch["path"])
        first: dict[str, tuple[Pos, str]] = {}
        for pos, field, sha in sorted(commits):
            if sha in first:
                (line, _), where = first[sha]
                message = f"commit {sha[:12]} is listed twice (first at line {line + 1}, {where})"
                self._problem(pos, field, message)
            else:
                first[sha] = (pos, field)

    def _check_placements(self, entry: Any, where: str) -> None:
        """A prerequisite's `before` names one of the XSA's own `commits`: the builder puts it
        right before that commit, and any other commit would leave it nowhere."""
        prerequisites = entry.get("prerequisites")
        commits = entry.get("commits")
        listed = commits if isinstance(commits, list) else ()
        fixes = {c.lower() for c in listed if isinstance(c, str)}
        for j, prereq in enumerate(prerequisites if isinstance(prerequisites, list) else ()):
            before = prereq.get("before") if isinstance(prereq, dict) else None
            if not isinstance(before, str) or not _FULL_SHA.fullmatch(before):
                continue  # absent, or the model says what is wrong with it
            field = f"{where}.prerequisites[{j}].before"
            pos = value_pos(prereq, "before")
            if not fixes:
                message = "`before` places a prerequisite before one of the XSA's `commits`, "
                self._problem(pos, field, message + "and this XSA lists none")
            elif before.lower() not in fixes:
                message = f"`before` names {before[:12]}, which is not one of this XSA's `commits`"
                self._problem(pos, field, message)

    def _check_partial(self, entry: Any, where: str, listed: set[str]) -> None:
        """Each accepted partial pick names one of the entry's own commits, once."""
        partial = entry.get("partial")
        seen: dict[str, int] = {}
        for j, item in enumerate(partial if isinstance(partial, list) else ()):
            sha = item.get("commit") if isinstance(item, dict) else None
            if not (isinstance(sha, str) and _FULL_SHA.fullmatch(sha)):
                continue  # the model says what is wrong with it
            pos, field = value_pos(item, "commit"), f"{where}.partial[{j}].commit"
            if sha.lower() not in listed:
                message = f"commit {sha[:12]} is not one of this XSA's commits or prerequisites"
                self._problem(pos, field, message)
            elif sha.lower() in seen:
                message = f"commit {sha[:12]} is accepted twice (first at line {seen[sha.lower()]})"
                self._problem(pos, field, message)
            else:
                seen[sha.lower()] = pos[0] + 1

    def _check_patch_file(self, pos: Pos, field: str, path: str) -> None:
        if patch_path_problem(path) is not None:
            return  # the model says what is wrong with the path itself
        try:
            # Opened as the build reads it: no component a link, a regular file, under the cap.
            check_beneath(self.root, path, MAX_PATCH_BYTES)
        except FileRefused as exc:
            if exc.missing:
                where = display_path(self.root)
                self._problem(pos, field, f"no file `{path}` in the manifests directory ({where})")
            else:
                self._problem(pos, field, str(exc))


def _commits(entry: Any, where: str) -> list[tuple[Pos, str, str]]:
    """Every full SHA an XSA entry lists, fixes and prerequisites, with position and field."""
    out: list[tuple[Pos, str, str]] = []
    commits = entry.get("commits")
    for j, sha in enumerate(commits if isinstance(commits, list) else ()):
        if isinstance(sha, str) and _FULL_SHA.fullmatch(sha):
            out.append((item_pos(commits, j), f"{where}.commits[{j}]", sha.lower()))
    prerequisites = entry.get("prerequisites")
    for j, prereq in enumerate(prerequisites if isinstance(prerequisites, list) else ()):
        sha = prereq.get("commit") if isinstance(prereq, dict) else None
        if isinstance(sha, str) and _FULL_SHA.fullmatch(sha):
            pos = value_pos(prereq, "commit")
            out.append((pos, f"{where}.prerequisites[{j}].commit", sha.lower()))
    return out
