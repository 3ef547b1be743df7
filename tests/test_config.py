"""The config file: the embedded default, relative paths, overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import XEN_UPSTREAM, load_config, with_overrides
from bot.errors import UsageError


def test_no_file_is_the_embedded_default(tmp_path: Path) -> None:
    config = load_config(None, cwd=tmp_path)
    assert config.upstream_of("xen") == XEN_UPSTREAM
    assert config.mirror_of("xen") == str(tmp_path / ".xsabot" / "mirrors" / "xen.git")
    assert config.manifests == tmp_path / "manifests"
    assert (config.forge.kind, config.namespace) == ("local", "xsa/")


def test_paths_in_a_config_file_are_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "xsabot.yaml"
    path.write_text(
        "state: ../var\ntrees:\n  xen:\n    upstream: ../src/xen\n    mirror: git@example.org:xen.git\n"
        "  qemu-xen:\n    upstream: https://xenbits.xen.org/git-http/qemu-xen.git\n"
        "    mirror: ../mirrors/qemu.git\n"
    )
    config = load_config(path)
    assert config.state == tmp_path / "var"
    assert config.upstream_of("xen") == str(tmp_path / "src" / "xen")
    assert config.mirror_of("xen") == "git@example.org:xen.git"  # scp-like URLs stay as they are
    assert config.upstream_of("qemu-xen").startswith("https://")
    assert config.mirror_of("qemu-xen") == str(tmp_path / "mirrors" / "qemu.git")


def test_environment_points_a_tree_at_a_local_clone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XSABOT_UPSTREAM_QEMU_XEN", "clones/qemu")
    config = with_overrides(load_config(None), upstreams={"qemu-xen": "https://example.org/q.git"})
    assert config.upstream_of("qemu-xen") == str(tmp_path / "clones" / "qemu")


def test_a_bare_upstream_applies_to_every_tree(tmp_path: Path) -> None:
    config = with_overrides(load_config(None, cwd=tmp_path), upstreams={"": str(tmp_path)})
    assert config.upstream_of("xen") == str(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("namespace: xsa\n", "namespace"),
        ("trees:\n  Xen!:\n    upstream: x\n", "trees"),
        ("forge:\n  kind: gitlab\n", "needs `project`"),
        ("forge:\n  kind: local\n  token: glpat-abc\n", "forge.token"),
        ("- a list\n", "must be a mapping"),
        ("trees: [\n", "not valid YAML"),
    ],
)
def test_a_bad_config_is_a_usage_error_naming_the_file(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "xsabot.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        load_config(path)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)
