"""Pack files: many new objects written as one pack instead of one loose file each.

A loose object costs about a millisecond on the disks the bot runs on (a file, a directory
entry, an fsync); a build makes thousands. The pack is written undeltified (header, zlib'd
objects, trailing SHA-1, as in gitformat-pack(5)) and `git index-pack` indexes it, which also
verifies every object and moves the pair into place under its content name.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

from bot.git.runner import git

TYPE_NUMBERS: dict[str, int] = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}
# Level 1: these packs are small and short-lived (the next repack recompresses them), and
# compressing merged C files at the default level 6 costs about three times as long.
_LEVEL = 1


def _entry_header(type_number: int, size: int) -> bytes:
    # Type in bits 4-6 of the first byte, size in little-endian 7-bit groups, 4 bits first;
    # the top bit of each byte says another follows.
    first = (type_number << 4) | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(first | 0x80)
        first = size & 0x7F
        size >>= 7
    out.append(first)
    return bytes(out)


def build_pack(objects: Iterable[tuple[str, bytes]], count: int) -> bytes:
    """A version 2 pack of `count` (kind, data) objects, none deltified."""
    sha = hashlib.sha1()
    chunks: list[bytes] = []

    def add(chunk: bytes) -> None:
        sha.update(chunk)
        chunks.append(chunk)

    add(b"PACK" + struct.pack(">II", 2, count))
    written = 0
    for kind, data in objects:
        add(_entry_header(TYPE_NUMBERS[kind], len(data)))
        add(zlib.compress(data, _LEVEL))
        written += 1
    if written != count:
        raise ValueError(f"pack header says {count} objects, {written} given")
    chunks.append(sha.digest())
    return b"".join(chunks)


def store_pack(git_dir: Path | str, pack: bytes) -> str:
    """Index `pack` into the repository at `git_dir`; returns the pack's name (its SHA-1)."""
    out = git(["--git-dir", str(git_dir), "index-pack", "--stdin"], input=pack).stdout
    # index-pack prints "pack\t<sha>" (or "keep\t<sha>" with --keep).
    return out.decode().split()[-1]
