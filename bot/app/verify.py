"""`verify`: rebuild a published branch from its manifest and the upstream, independently of
the bot, and say whether the mirror holds exactly that, or what differs.

A published tip is verified when it is the rebuilt tip (created or fast-forwarded), or a
pseudo-merge whose second parent is the rebuilt tip and whose tree is its tree. The rebuild
uses what the published build itself says where only the bot's configuration could tell:
the committer (of the build the record names), the XSAs the check gate held back and the
source tip the build saw (the build record's). Everything else comes from the manifest and
the upstream: a manifest or base tag other than the published one shows as a difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bot.app.branch import prepare
from bot.config import Config, Identity
from bot.core.outcome import DOES_NOT_BUILD, Blocked
from bot.core.ports import NoProgress, Progress
from bot.core.record import BuildRecord, UnreadableRecord
from bot.errors import UsageError
from bot.git.build import Builder
from bot.git.objects import ObjectStore
from bot.git.publish import read_record
from bot.git.verify import Commit, after_base, changed_paths, commit, identity_of, remote_url
from bot.git.workrepo import WorkRepo

SHOWN_PATHS = 20  # differing paths named before `and N more`


@dataclass(frozen=True)
class Verdict:
    branch: str
    manifest: str
    mirror: str
    tip: str | None  # the published tip
    build: str = ""  # the rebuilt tip
    how: str = ""  # how the tip is the build, when it is
    differences: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())  # what the rebuild took from the record

    @property
    def verified(self) -> bool:
        return self.tip is not None and not self.differences


def mirror_location(given: str | None, config: Config, tree: str) -> str:
    """The mirror to verify: `given` (a path, a URL, or a remote name of the repository in
    the working directory), else the configured one."""
    if not given:
        return config.mirror_of(tree)
    if Path(given).exists():
        return str(Path(given).resolve())
    if "://" in given or ":" in given:  # a URL, or scp-like `host:path`
        return given
    url = remote_url(given)
    if url is None:
        raise UsageError(
            f"--mirror {given}: no such directory, and not a remote of the git repository here"
        )
    return url


def manifest_of_branch(config: Config, mirror: str | None, branch: str) -> Path:
    """The manifest a published branch was built from, by the name in its build record."""
    for tree in sorted(config.trees):
        work = WorkRepo.for_tree(config.state, tree)
        work.fetch_mirror(mirror_location(mirror, config, tree), config.namespace, create=False)
        tip = work.mirror_branch(branch)
        if tip is None:
            continue
        record = read_record(work, tip, work.mirror_notes(), branch)
        if not isinstance(record, BuildRecord):
            why = record.problem if record is not None else "its tip has no build record"
            raise UsageError(f"{branch}: {why}; give the manifest's path instead")
        path = config.manifests / f"{record.manifest}.yaml"
        if not path.is_file():
            raise UsageError(
                f"{branch} was built from manifest {record.manifest!r}: no {path}; "
                "give --manifests DIR or the manifest's path"
            )
        return path
    raise UsageError(f"{branch} is not published in the mirror")


def verify(
    config: Config,
    manifest: Path | None,
    *,
    branch: str | None = None,
    mirror: str | None = None,
    progress: Progress | None = None,
) -> Verdict:
    progress = progress or NoProgress()
    if manifest is None:
        if branch is None:
            raise UsageError("give a manifest (a path) or --branch BRANCH")
        manifest = manifest_of_branch(config, mirror, branch)
    single = prepare(config, manifest, progress)
    m = single.loaded.manifest
    if branch is not None and branch != m.branch:
        raise UsageError(f"{manifest} publishes {m.branch}, not {branch}")
    work, store = single.work, single.store
    location = mirror_location(mirror, config, m.tree)
    with progress.step(f"fetching {m.tree} mirror"):
        work.fetch_mirror(location, config.namespace, create=False)
    tip = work.mirror_branch(m.branch)
    if tip is None:
        return Verdict(
            m.branch,
            str(manifest),
            location,
            None,
            differences=(f"{m.branch} is not in the mirror",),
        )
    found = read_record(work, tip, work.mirror_notes(), m.branch)
    record = found if isinstance(found, BuildRecord) else None
    notes: list[str] = []
    differences: list[str] = []
    if isinstance(found, UnreadableRecord):
        notes.append(found.problem)
    elif found is None:
        notes.append("the tip has no build record of the branch")

    published = commit(store, tip)
    published_build = published.parents[1] if len(published.parents) == 2 else tip
    who = _identity(store, record, config)
    if who != config.identity:
        notes.append(f"committer {who.name} <{who.email}>, as the published build's")
    held = [x.xsa for x in record.xsas if x.reason == DOES_NOT_BUILD] if record else []
    if held:
        notes.append("held back by the check gate: " + ", ".join(f"XSA-{n}" for n in held))
    source = single.source
    if record and record.source_commit and store.contains(record.source_commit):
        source = record.source_commit
    if record and record.base_commit != single.base:
        differences.append(
            f"base {m.base} is {single.base} in the upstream, the build record says "
            f"{record.base_commit}"
        )

    builder = Builder(work.repo, store, who, patch_cache=config.state / "patches")
    leave_out = {x: Blocked(x, None, (), DOES_NOT_BUILD, "held back") for x in held}
    with progress.step(f"building {single.loaded.name}"):
        result = builder.build(
            m,
            manifests_root=single.root,
            base_commit=single.base,
            source_commit=source,
            leave_out=leave_out,
        )
    store.flush([result.tip])
    how = ""
    if tip == result.tip:
        how = "the tip is the rebuilt tip"
    elif published_build == result.tip and published.tree == result.tree_id:
        how = "the tip is a pseudo-merge of the rebuilt tip"
    else:
        if published.tree != result.tree_id:
            paths = changed_paths(work, result.tree_id, published.tree)
            differences.append(f"the tip's tree differs from the rebuilt tree in {_paths(paths)}")
        if published_build != result.tip:
            differences += _commits(store, published_build, result.tip, single.base)
    if record and record.build != result.tip:
        differences.append(
            f"the build record names the build {record.build}, the rebuild gives {result.tip}"
        )
    return Verdict(
        m.branch,
        str(manifest),
        location,
        tip,
        build=result.tip,
        how=how,
        differences=tuple(differences),
        notes=tuple(notes),
    )


def _identity(store: ObjectStore, record: BuildRecord | None, config: Config) -> Identity:
    """The committer of the build the record names (the bot's, as configured where it ran);
    without a record, the configured one."""
    if record is None or not store.contains(record.build):
        return config.identity
    found = identity_of(commit(store, record.build).committer)
    if found is None:
        return config.identity
    try:
        return Identity(name=found[0], email=found[1])
    except ValueError:
        return config.identity


def _paths(paths: list[str]) -> str:
    more = f" and {len(paths) - SHOWN_PATHS} more" if len(paths) > SHOWN_PATHS else ""
    count = f"{len(paths)} path" + ("" if len(paths) == 1 else "s")
    return f"{count}: " + ", ".join(paths[:SHOWN_PATHS]) + more


def _commits(store: ObjectStore, published: str, rebuilt: str, base: str) -> list[str]:
    """Where the published build's commits part from the rebuilt ones."""
    theirs = after_base(store, published, base)
    ours = after_base(store, rebuilt, base) or []
    if theirs is None:
        return [f"the published build {published} is not built on the base {base}"]
    lines: list[str] = []
    pairs = enumerate(zip(theirs, ours, strict=False), start=1)
    parted = next(((n, a, b) for n, (a, b) in pairs if a.sha != b.sha), None)
    if parted is not None:
        n, a, b = parted
        lines.append(f"commit {n} after the base: published {_one(a)}, rebuilt {_one(b)}")
    if len(theirs) != len(ours):
        lines.append(
            f"the published build has {len(theirs)} commits after the base, the rebuild {len(ours)}"
        )
        if parted is None:
            longer, which = (theirs, "published") if len(theirs) > len(ours) else (ours, "rebuilt")
            rest = longer[min(len(theirs), len(ours)) :]
            lines.append(f"{which} only: " + "; ".join(_one(c) for c in rest[:5]))
    return lines


def _one(c: Commit) -> str:
    return f"{c.sha[:12]} ({c.subject})"
