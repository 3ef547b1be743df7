"""Manifest texts for tests, written the way volunteers write them."""

from __future__ import annotations

from tests.gitrepo import XenLike


def manifest(
    x: XenLike,
    *xsas: tuple[int, list[str]] | dict[str, object],
    base: str = "RELEASE-4.19.0",
    branch: str = "xsa/4.19",
) -> str:
    """A manifest; each XSA is (number, [commit keys of `x.shas`]) or a raw YAML dict."""
    lines = ["tree: xen", f"base: {base}", f"source: {x.source}", f"branch: {branch}", "xsas:"]
    if not xsas:
        lines[-1] = "xsas: []"
    for item in xsas:
        if isinstance(item, dict):
            lines.append(f"  - xsa: {item['xsa']}")
            for key, value in item.items():
                if key != "xsa":
                    lines.append(f"    {key}: {value}")
            continue
        number, keys = item
        lines.append(f"  - xsa: {number}")
        lines.append("    commits: [" + ", ".join(x.shas[k] for k in keys) + "]")
    return "\n".join(lines) + "\n"
