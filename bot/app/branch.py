"""One manifest's branch outside a pass, for `build`, `check` and `deps`: load the manifest,
fetch its upstream, resolve base and source, and hold a builder ready; and the `build` and
`check` use cases on it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config import Config
from bot.core.outcome import DOES_NOT_BUILD, Blocked, BuildResult
from bot.core.ports import NoProgress, Progress
from bot.errors import UsageError
from bot.git.build import Builder
from bot.git.objects import ObjectStore
from bot.git.workrepo import WorkRepo, is_local
from bot.manifest.load import LoadedManifest, load_manifest
from bot.manifest.model import Manifest
from bot.manifest.refname import check_ref_format

if TYPE_CHECKING:
    from bot.check.runner import CheckResult


@dataclass
class SingleBranch:
    loaded: LoadedManifest
    root: Path  # the manifests directory patch paths are relative to
    upstream: str
    work: WorkRepo
    store: ObjectStore
    builder: Builder
    base: str
    source: str

    def build(self, manifest: Manifest | None = None, **options: Any) -> BuildResult:
        return self.builder.build(
            manifest or self.loaded.manifest,
            manifests_root=self.root,
            base_commit=self.base,
            source_commit=self.source,
            **options,
        )


def manifests_root(config: Config, path: Path) -> Path:
    """Patch paths are relative to the manifests dir the file sits in."""
    configured = config.manifests
    return configured if path.resolve().parent == configured.resolve() else path.resolve().parent


def prepare(config: Config, path: Path, progress: Progress | None = None) -> SingleBranch:
    if not path.is_file():
        raise UsageError(f"{path}: no such manifest")
    root = manifests_root(config, path)
    loaded = load_manifest(path, root=root, namespace=config.namespace, trees=config.trees.keys())
    m = loaded.manifest
    upstream = config.upstream_of(m.tree)
    work = WorkRepo.for_tree(config.state, m.tree)
    with (progress or NoProgress()).step(f"fetching {m.tree} upstream"):
        work.fetch_upstream(upstream)
    base = work.upstream(m.base, "tags")
    source = work.upstream(m.source, "heads")
    if base is None or source is None:
        missing = m.base if base is None else m.source
        raise UsageError(f"{path}: {missing!r} not found in {upstream}")
    store = ObjectStore(work.repo)
    builder = Builder(work.repo, store, config.identity, patch_cache=config.state / "patches")
    return SingleBranch(loaded, root, upstream, work, store, builder, base, source)


def build_branch(
    config: Config,
    path: Path,
    *,
    hold_back: Collection[int] = (),
    ref: str | None = None,
    replace_ref: bool = False,
    progress: Progress | None = None,
) -> tuple[SingleBranch, BuildResult]:
    """`build`: the branch as its manifest makes it, with the XSAs in `hold_back` left out as
    the check gate left them out; with `ref`, the tip is also written to that ref of the local
    upstream (an existing ref only with `replace_ref`)."""
    if ref is not None and (check_ref_format(ref) is not None or not ref.startswith("refs/")):
        raise UsageError(f"--ref {ref!r}: not a valid full ref name")
    progress = progress or NoProgress()
    branch = prepare(config, path, progress)
    if ref is not None and not is_local(branch.upstream):
        raise UsageError("--ref needs a local upstream repository (--upstream PATH)")
    held = {x: Blocked(x, None, (), DOES_NOT_BUILD, "held back (--hold-back)") for x in hold_back}
    with progress.step(f"building {branch.loaded.name}"):
        result = branch.build(leave_out=held)
    if ref is not None:
        branch.store.flush()
        branch.work.write_ref(branch.upstream, result.tip, ref, replace=replace_ref)
    return branch, result


def check_command(config: Config, tree: str) -> str:
    """The tree's check command; a usage error names both ways to give one."""
    command = config.trees[tree].check_text
    if not command:
        raise UsageError(
            f"no check command for tree {tree!r}: set trees.{tree}.check in the config "
            f"or give --check {tree}=COMMAND"
        )
    return command


def check_tip(
    config: Config,
    branch: SingleBranch,
    result: BuildResult,
    *,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> CheckResult:
    """`check`: run the tree's check command on a built tip (its tree, really: verdicts are
    cached by tree ID)."""
    from bot.check.runner import CheckRunner

    tree = branch.loaded.manifest.tree
    check_command(config, tree)  # there is one
    branch.store.flush([result.tip])  # the check exports the tree with git
    runner = CheckRunner.for_tree(config, tree, repo_path=branch.work.path, timeout=timeout)
    with (progress or NoProgress()).step(f"checking {branch.loaded.name}"):
        return runner.check(result.tree_id)
