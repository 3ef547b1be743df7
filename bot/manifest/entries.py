"""Where each XSA's entry is written in a manifest that loaded: for reports that point a
volunteer at the entry (`manifests/4.19.yaml:12`)."""

from __future__ import annotations

from typing import Any

from bot.manifest.positions import item_pos


def xsa_lines(text: str) -> dict[int, int]:
    """The 1-based line of each XSA's entry (its `- xsa: N`) in the text of a manifest that
    loaded (so valid YAML without aliases)."""
    from ruamel.yaml import YAML

    doc: Any = YAML(typ="rt").load(text)
    entries = doc.get("xsas") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return {}
    return {
        entry["xsa"]: item_pos(entries, i)[0] + 1
        for i, entry in enumerate(entries)
        if isinstance(entry, dict) and isinstance(entry.get("xsa"), int)
    }
