"""The build record: what was published for a branch, and from which inputs.

It is stored as a git note (`refs/notes/xsabot`) on the published tip in the mirror, so any
machine (a fresh replica, a downstream) can tell what a tip holds and whether the manifest
changed since, without rebuilding: equal input digests mean nothing to do.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.core.outcome import BuildResult
from bot.manifest.model import Manifest

FORMAT = 2  # 2: a note holds records by branch


def inputs_digest(
    manifest: Manifest,
    *,
    base_commit: str,
    committer: tuple[str, str],
    bot_version: str,
    check: str | None = None,
) -> str:
    """Everything a build's commits depend on, and nothing else (`why` texts do not count)."""
    xsas = [
        {
            "xsa": x.xsa,
            "status": x.status,
            "prerequisites": [p.commit for p in x.prerequisites],
            "commits": list(x.commits),
            # The file name is in the commit's provenance line, so it is an input too.
            "patches": [[p.sha256, posixpath.basename(p.path or p.url or "")] for p in x.patches],
        }
        for x in manifest.xsas
    ]
    payload = {
        "format": FORMAT,
        "bot": bot_version,
        "committer": list(committer),
        "tree": manifest.tree,
        "source": manifest.source,
        "base": base_commit,
        "xsas": xsas,
    }
    if check:  # a new check command re-evaluates the branch; none keeps old digests valid
        payload["check"] = check
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class XsaRecord:
    xsa: int
    state: str
    prerequisites: tuple[str, ...] = ()
    commits: tuple[str, ...] = ()
    patches: tuple[str, ...] = ()
    blocked_commit: str | None = None
    paths: tuple[str, ...] = ()
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class BuildRecord:
    manifest: str
    branch: str
    inputs: str
    base: str
    base_commit: str
    build: str  # the tip `xsabot build` gives; the published tip is it or a pseudo-merge of it
    xsas: tuple[XsaRecord, ...] = field(default=())
    bot: str = ""
    source_commit: str = ""  # the source tip the build saw

    def states(self, state: str) -> list[int]:
        return [x.xsa for x in self.xsas if x.state == state]

    def stale_for(self, source_commit: str) -> bool:
        """A commit that was not on the source may be there now: only then does the source
        tip matter (every other input is in the digest)."""
        waiting = any(x.reason == "bad-source" for x in self.xsas)
        return waiting and source_commit != self.source_commit

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildRecord | None:
        try:
            fields = dict(data)
            xsas = tuple(_xsa_record(x) for x in fields.pop("xsas"))
            return cls(xsas=xsas, **fields)
        except (ValueError, TypeError, KeyError):
            return None  # an unreadable record only costs a rebuild


def note_text(existing: str | None, records: list[BuildRecord]) -> str:
    """The note of one published commit: the records of every branch at that commit (two
    manifests can build the same commit), `existing` ones kept unless replaced."""
    by_branch = dict(note_records(existing)) if existing else {}
    for record in records:
        by_branch[record.branch] = record
    data = {
        "format": FORMAT,
        "records": {b: r.as_dict() for b, r in sorted(by_branch.items())},
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def note_records(text: str) -> dict[str, BuildRecord]:
    """The records in a note, by branch; an unreadable note has none (it costs a rebuild)."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return {}
        found = {b: BuildRecord.from_dict(r) for b, r in data["records"].items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}
    return {b: r for b, r in found.items() if r is not None}


def _xsa_record(data: dict[str, Any]) -> XsaRecord:
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return XsaRecord(**fields)


def make_record(
    *, name: str, manifest: Manifest, inputs: str, result: BuildResult, bot: str
) -> BuildRecord:
    outcomes = {o.xsa: o for o in result.outcomes}
    xsas = []
    for entry in manifest.xsas:
        outcome = outcomes.get(entry.xsa)
        blocked = outcome.blocked if outcome else None
        xsas.append(
            XsaRecord(
                xsa=entry.xsa,
                state=outcome.state if outcome else "not-built",
                prerequisites=tuple(p.commit for p in entry.prerequisites),
                commits=entry.commits,
                patches=tuple(p.sha256 for p in entry.patches),
                blocked_commit=blocked.commit if blocked else None,
                paths=blocked.paths if blocked else (),
                reason=blocked.reason if blocked else "",
                detail=blocked.detail if blocked else "",
            )
        )
    return BuildRecord(
        manifest=name,
        branch=manifest.branch,
        inputs=inputs,
        base=manifest.base,
        base_commit=result.base_commit,
        build=result.tip,
        xsas=tuple(xsas),
        bot=bot,
        source_commit=result.source_commit,
    )
