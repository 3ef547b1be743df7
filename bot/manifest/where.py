"""Where fields of a loaded manifest are written, for findings made after loading (the
repository checks): pydantic-style locations in, 1-based (line, col) out.

The text is parsed again only when there is something to place, so a clean pass pays nothing;
it is a text that loaded already (size-capped, no anchors or aliases), so the plain
round-trip loader is safe here.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.manifest.positions import locate

Loc = tuple[str | int, ...]


def places(text: str, locs: Iterable[Loc]) -> dict[Loc, tuple[int, int]]:
    """The 1-based (line, col) of each location's value in `text`."""
    from ruamel.yaml import YAML

    doc = YAML(typ="rt").load(text)
    out: dict[Loc, tuple[int, int]] = {}
    for loc in locs:
        line, col = locate(doc, loc, at_key=False)
        out[loc] = (line + 1, col + 1)
    return out
