"""One manifest's branch outside a pass, for `build`, `check` and `deps`: load the manifest,
fetch its upstream, resolve base and source, and hold a builder ready."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.core.outcome import BuildResult
from bot.core.ports import NoProgress, Progress
from bot.errors import UsageError
from bot.git.build import Builder
from bot.git.objects import ObjectStore
from bot.git.workrepo import WorkRepo
from bot.manifest.load import LoadedManifest, load_manifest
from bot.manifest.model import Manifest


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
