"""Reading manifest files: YAML with positions in, a validated `Manifest` or every problem out.

This module owns the file side of manifests: decoding, YAML syntax, mapping the model's
validation errors to line and column, and the checks that need context (the bot's namespace and
trees, patch files on disk, repeats within a file, branches two files cannot both publish, a
file name that cannot go in a branch name). Each file is parsed once, in ruamel's round-trip
mode because only it records where every key and value is; ruamel is imported on first use so
commands that never read a manifest do not pay for it. Patch paths are relative to the
manifests directory (`root`).

A manifest is untrusted input read on every pass beside all the others, so one file must never
be able to stop the process: its size is capped and YAML anchors and aliases are refused while
the document is composed, before anything could expand them (see `_AliasFree`).
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from bot.errors import InvalidInput, Problem, SetupError
from bot.manifest.model import Manifest, patch_path_problem
from bot.manifest.positions import (
    Pos,
    find_duplicate,
    first_content,
    item_pos,
    locate,
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

if TYPE_CHECKING:
    from ruamel.yaml.composer import Composer

SUFFIXES = (".yaml", ".yml")
_FULL_SHA = re.compile(r"[0-9a-fA-F]{40}")
_TOKEN = re.compile(r"[^\s,\]}#]+")  # a plain scalar as written, up to the next flow indicator
# The shipped manifests are a few KiB; a cap far above that keeps a runaway or hostile file from
# costing the pass its memory and time (ruamel's pure-Python scanner reads about 5 MB/s).
MAX_BYTES = 1 << 20


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
    invalid: Mapping[Path, tuple[Problem, ...]]  # every broken file with all its problems


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
    (file stem). Raises `SetupError` only when `directory` itself cannot be listed.
    """
    if paths is None:
        try:
            paths = [p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file()]
        except OSError as exc:
            raise SetupError(f"cannot list manifests in {directory}: {exc.strerror}") from None
    results = [
        _Reader(p, root=directory, namespace=namespace, trees=trees).read()
        for p in sorted({p.absolute() for p in paths})
    ]
    problems = {r.path: list(r.problems) for r in results}
    _check_across(results, problems)
    loaded = [r.loaded for r in results if r.loaded is not None and not problems[r.path]]
    return ManifestSet(
        loaded=tuple(sorted(loaded, key=lambda m: m.name)),
        invalid={path: tuple(_in_order(found)) for path, found in problems.items() if found},
    )


def display_path(path: Path) -> str:
    """How problems name a file: relative to the working directory when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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
    why = check_ref_format(name)
    if why is not None and why.startswith("has a component"):
        # check_ref_format's words for a multi-component ref; here the component is the name.
        why = "starts with `.`" if name.startswith(".") else "ends with `.lock`"
    return why


@functools.cache
def _alias_free_composer() -> type[Composer]:
    """ruamel's composer, refusing anchors and aliases (created on first use, like ruamel)."""
    from ruamel.yaml.composer import Composer
    from ruamel.yaml.events import AliasEvent
    from ruamel.yaml.nodes import ScalarNode

    class _AliasFree(Composer):
        """Records every anchor and alias instead of resolving aliases.

        An alias shares the anchored node, so a few hundred bytes of nested aliases describe
        billions of values: anything that walks the document as a tree (`plain`, pydantic, the
        duplicate-key search) expands them. Manifests have no use for them, so each is recorded
        as a problem and an alias composes to a fresh null in place of the shared node: the
        document the constructor sees is a tree the size of the text. Checking here costs one
        look at each event the parser already produced, instead of a second pass over the text.
        """

        def __init__(self, loader: Any = None) -> None:
            super().__init__(loader=loader)
            self.refused: list[tuple[str, Pos]] = []  # `&name` or `*name`, where it is written

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.parser.peek_event()
            if isinstance(event, AliasEvent):
                self.parser.get_event()
                self._refuse(f"*{event.anchor}", event.start_mark)
                tag = self.resolver.resolve(ScalarNode, "", (True, False))
                return ScalarNode(tag, "", event.start_mark, event.end_mark)
            if event.anchor is not None:
                self._refuse(f"&{event.anchor}", event.start_mark)
            return super().compose_node(parent, index)

        def _refuse(self, token: str, mark: Any) -> None:
            self.refused.append((token, (mark.line, mark.column)))

    return _AliasFree


def _manifest_yaml() -> Any:
    """A round-trip loader for manifests: positions kept, anchors and aliases refused."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.Composer = _alias_free_composer()
    return yaml


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
        self.problems: list[Problem] = []

    def read(self) -> _Result:
        why = _name_problem(self.path.stem)
        if why is not None:
            message = f"the manifest's name `{self.path.stem}` (its file name) is part of branch"
            self._problem((0, 0), "", f"{message} names, but it {why}: rename the file")
        doc = self._parse()
        if doc is None:
            return _Result(self.path, None, tuple(self.problems), None)
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
        return _Result(self.path, loaded, tuple(_in_order(self.problems)), where)

    def _problem(self, pos: Pos, field: str, message: str) -> None:
        self.problems.append(Problem(self.shown, pos[0] + 1, pos[1] + 1, field, message))

    # -- YAML ------------------------------------------------------------------------------

    def _parse(self) -> Any:
        """The document as ruamel's CommentedMap, or None after recording why there is none."""
        try:
            with self.path.open("rb") as file:
                data = file.read(MAX_BYTES + 1)  # never more than the cap into memory
        except OSError as exc:
            self._problem((0, 0), "", f"cannot read the file: {exc.strerror}")
            return None
        if len(data) > MAX_BYTES:
            self._problem((0, 0), "", "manifest is larger than 1 MiB")
            return None
        try:
            self.text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line_start = data.rfind(b"\n", 0, exc.start) + 1
            pos = (data.count(b"\n", 0, exc.start), exc.start - line_start)
            self._problem(pos, "", "the file is not UTF-8 text")
            return None
        from ruamel.yaml.composer import ComposerError
        from ruamel.yaml.error import YAMLError
        from ruamel.yaml.parser import ParserError
        from ruamel.yaml.scanner import ScannerError

        yaml = _manifest_yaml()
        error: Exception | None = None
        try:
            doc = yaml.load(self.text)
        except (YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            # ruamel lets some bad values through as plain Python errors (a date like
            # 2024-13-45, nesting too deep); a bad file must never stop the other manifests.
            doc, error = None, exc
        refused = yaml.composer.refused
        for token, pos in refused:
            self._problem(pos, "", f"anchors and aliases are not allowed in manifests (`{token}`)")
        if error is not None:
            # A syntax error is the file's own; a construction error may come from the nulls that
            # stand in for aliases (`<<: *defaults`), so it waits until the aliases are gone.
            if not refused or isinstance(error, ScannerError | ParserError | ComposerError):
                self._load_error(error)
            return None
        if refused:
            return None
        if doc is None:
            needs = "a manifest needs `base`, `source` and `branch`"
            self._problem(first_content(self.text), "", f"the file is empty; {needs}")
            return None
        if not isinstance(doc, dict):
            pos = (doc.lc.line, doc.lc.col) if hasattr(doc, "lc") else first_content(self.text)
            self._problem(
                pos, "", f"a manifest is a mapping (`key: value` lines), not {kind_of(doc)}"
            )
            return None
        return doc

    def _load_error(self, exc: Exception) -> None:
        """Record why ruamel could not load the file."""
        from ruamel.yaml.constructor import DuplicateKeyError
        from ruamel.yaml.error import MarkedYAMLError, YAMLError

        if isinstance(exc, DuplicateKeyError):
            mark = exc.problem_mark
            self._duplicate_key(mark.index, (mark.line, mark.column))
        elif isinstance(exc, MarkedYAMLError):
            self._syntax_error(exc)
        elif isinstance(exc, YAMLError):
            self._problem((0, 0), "", f"not valid YAML: {exc}")
        else:
            self._problem((0, 0), "", f"YAML cannot be read: {exc or type(exc).__name__}")

    def _syntax_error(self, exc: Any) -> None:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "cannot parse"
        if exc.problem and exc.context and exc.context_mark is not None:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        pos = (mark.line, mark.column) if mark is not None else (0, 0)
        self._problem(pos, "", f"YAML syntax: {message}")

    def _duplicate_key(self, index: int, fallback: Pos) -> None:
        # ruamel's message points at the repeated key only; composing the node tree (no
        # construction, so no duplicate check) finds the first one. Only on this error path.
        found = find_duplicate(_manifest_yaml().compose(self.text), index)
        if found is None:
            self._problem(fallback, "", "duplicate key")
            return
        key, first, second = found
        self._problem(second, "", f"duplicate key `{key}` (first at line {first[0] + 1})")

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
        lines = self.text.splitlines()
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
        target = self.root / path
        if not target.resolve().is_relative_to(self.root.resolve()):
            self._problem(pos, field, "the path leaves the manifests directory (symlink)")
        elif not target.is_file():
            where = display_path(self.root)
            self._problem(pos, field, f"no file `{path}` in the manifests directory ({where})")


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
