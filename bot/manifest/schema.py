"""The JSON Schema of manifests, so editors and other tools check them as they are written.

A manifest whose first line is the modeline

    # yaml-language-server: $schema=schema.json

is checked while typing by every editor that uses the YAML language server (VS Code's YAML
extension, Neovim and Emacs LSP clients, ...): `schema.json` is resolved next to the manifest,
and `manifests/schema.json` is this schema, committed (`xsabot schema > manifests/schema.json`)
and kept equal to the model by a test. The schema sees one file only; `xsabot lint` also checks
what needs context (namespace, trees, patch files, repeats, other manifests).
"""

from __future__ import annotations

import json
from typing import Any

from bot.manifest.model import Manifest

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# A URN, not a URL: the schema is found through the modeline, not fetched from anywhere.
SCHEMA_ID = "urn:xsabot:manifest"
MODELINE = "# yaml-language-server: $schema=schema.json"


def manifest_json_schema() -> dict[str, Any]:
    """pydantic's schema of `Manifest`, as a self-describing draft 2020-12 document."""
    generated = Manifest.model_json_schema()
    generated.pop("title", None)
    generated.pop("description", None)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "xsabot manifest",
        "description": (
            "One XSA-only branch: an upstream release tag plus the security fixes (XSAs) and"
            " the prerequisites they need, in order. `xsabot lint` checks everything this"
            " schema checks and what needs context. Put `" + MODELINE + "` first in a"
            " manifest to have editors check it."
        ),
        **generated,
    }


def manifest_json_schema_text() -> str:
    """The schema as committed in `manifests/schema.json` (stable key order, final newline)."""
    return json.dumps(manifest_json_schema(), indent=2, ensure_ascii=False) + "\n"
