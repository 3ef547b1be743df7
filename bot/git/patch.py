"""Advisory patches: read and verify (sha256 first, always), parse the mail, apply to a tree.

Patches are `git format-patch` mails. Applying is index-only (`git apply --cached` on a
temporary index), so no work tree exists and a patch that does not apply changes nothing.
The commit is deterministic: author and date from the mail, the bot as committer with the
same date, and a provenance line naming the file and its sha256.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import re
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bot.errors import GitError
from bot.git.commits import format_commit, identity_line
from bot.git.runner import git, git_text
from bot.manifest.files import MAX_PATCH_BYTES, FileRefused, read_beneath

_FAILED_PATH = re.compile(r"^error: (?:patch failed: )?([^:]+):", re.MULTILINE)


class PatchError(Exception):
    """The patch cannot be used; `reason` is a short code, the message says why."""

    def __init__(self, reason: str, message: str, paths: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.paths = paths


@dataclass(frozen=True)
class PatchMail:
    author: bytes  # "Name <email> <seconds> <zone>"
    message: bytes
    diff: bytes


def read_patch(*, path: str | None, url: str | None, sha256: str, root: Path, cache: Path) -> bytes:
    """The patch's bytes, verified against `sha256` before anything else looks at them.

    A path is read only through no symbolic link (`read_beneath`): a link committed to the
    manifests repository would otherwise publish any file of the host the bot can read.
    """
    if path is not None:
        try:
            data = read_beneath(root, path, MAX_PATCH_BYTES)
        except FileRefused as exc:
            reason = "patch-missing" if exc.missing else "patch-unreadable"
            raise PatchError(reason, f"{path}: {exc}") from None
        where = path
    else:
        assert url is not None
        cached = cache / f"{sha256}.patch"
        if cached.exists():
            data = cached.read_bytes()
        else:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    data = response.read(MAX_PATCH_BYTES)
            # urllib raises ValueError for a URL it cannot send (a control character), and
            # http.client its own errors for a server that breaks the protocol.
            except (OSError, ValueError, http.client.HTTPException) as exc:
                raise PatchError("patch-missing", f"{url}: cannot download: {exc}") from None
        where = url
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise PatchError(
            "sha256-mismatch", f"{where}: sha256 is {actual}, the manifest says {sha256}"
        )
    if url is not None:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / f"{sha256}.patch").write_bytes(data)
    return data


def parse_mail(repo: Path, data: bytes) -> PatchMail:
    with tempfile.TemporaryDirectory(prefix="xsabot-mail-") as tmp:
        msg, diff = Path(tmp) / "msg", Path(tmp) / "patch"
        try:
            info = git(["mailinfo", "-b", msg, diff], cwd=repo, input=data).stdout
        except GitError as exc:
            raise PatchError("patch-unreadable", f"not a patch mail: {exc}") from None
        fields = dict(
            line.split(": ", 1)
            for line in info.decode("utf-8", "replace").splitlines()
            if ": " in line
        )
        body = msg.read_bytes().strip()
        patch = diff.read_bytes()
    if not patch.strip():
        raise PatchError("patch-unreadable", "the mail holds no diff")
    parsed = email.utils.parsedate_tz(fields.get("Date", ""))
    if parsed is None or "Author" not in fields or "Email" not in fields:
        raise PatchError("patch-unreadable", "the mail lacks From: or Date:")
    seconds = email.utils.mktime_tz(parsed)
    offset = parsed[9] or 0
    sign = "-" if offset < 0 else "+"
    zone = f"{sign}{abs(offset) // 3600:02d}{abs(offset) % 3600 // 60:02d}"
    author = identity_line(fields["Author"], fields["Email"], f"{seconds} {zone}".encode())
    subject = fields.get("Subject", "").encode()
    message = subject + (b"\n\n" + body if body else b"") + b"\n"
    return PatchMail(author, message, patch)


def apply_to_tree(repo: Path, tree: str, diff: bytes) -> str:
    """The tree after applying `diff` to `tree` (whose objects must be in `repo`)."""
    with tempfile.TemporaryDirectory(prefix="xsabot-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(["read-tree", tree], cwd=repo, env=env)
        proc = git(["apply", "--cached", "-"], cwd=repo, env=env, input=diff, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace")
            paths = tuple(sorted(set(_FAILED_PATH.findall(err))))
            raise PatchError("patch-does-not-apply", err.strip(), paths)
        return git_text(["write-tree"], cwd=repo, env=env)


def patch_commit(
    mail: PatchMail, *, tree: str, parent: str, name: str, email_addr: str, provenance: str
) -> bytes:
    date = b" ".join(mail.author.rsplit(b" ", 2)[-2:])
    message = mail.message.rstrip() + b"\n\n" + provenance.encode() + b"\n"
    return format_commit(
        tree=tree,
        parents=(parent,),
        author=mail.author,
        committer=identity_line(name, email_addr, date),
        message=message,
    )
