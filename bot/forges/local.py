"""The local forge: proposals as branches of the manifests repository, with no server.

The embedded default. The manifests directory lives in a git repository; a proposal is the
branch `xsabot/...` in it, holding the manifest edit committed by the bot, plus a JSON record
(id, branch, title, body, state, draft, comments) in `<state>/proposals/<id>.json`.
A volunteer reviews with `git show xsabot/4.19/xsa-470` and accepts with
`git merge xsabot/4.19/xsa-470`: a proposal whose branch tip is in the default branch counts
as merged; the next pass records it so (`tidy_merged`) and deletes the branch if its tip is
the bot's own proposal commit. Commit statuses are kept per commit in
`<state>/proposals/statuses/<sha>.json`, as they belong to commits, not to proposals (the
plan's status goes on a volunteer's commit).
Given a `CheckRunner` on the mirror (`check`), the local forge is also the CI of the forge-CI
check gate: asked about a commit the mirror has and its CI has not judged yet, it runs the
check command on that commit's tree and records the verdict as the status `CI_CONTEXT`.

The bot writes only refs under `refs/heads/xsabot/`, never the work tree or the index, and
moves its branch only from a commit of its own: the one its record says it wrote there, or
any proposal commit it made (its committer is the bot and its last line the bot's
`Xsabot-Proposal:` trailer for that branch, on top of the default branch's history). So a
volunteer's manual backport pushed to a draft proposal's branch, or a maintainer's own
`xsabot/...` branch, is never overwritten, while a lost state dir, a second replica with its
own, or a process killed between moving a branch and writing its record never blocks the
bot's own branch. Proposal commits are deterministic (dated as the commit they are made on),
so two replicas make the same one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bot.config import Identity
from bot.core.ports import (
    BOT_BRANCH_PREFIX,
    CommitState,
    MergedProposal,
    MergeRequest,
    Proposal,
    content_hash_in,
    proposal_trailer_in,
)
from bot.errors import ForgeConflict, ForgeError, ForgeNotFound, GitError, SetupError
from bot.forges.branch import check_proposal
from bot.git.export import tree_of
from bot.git.proposal_branch import (
    branch_tip,
    branch_tips,
    checked_out_branch,
    commit_date,
    commit_files,
    commit_info,
    delete_branch,
    is_ancestor,
    move_branch,
    top_level,
)

if TYPE_CHECKING:
    from bot.check.runner import CheckRunner

Record = dict[str, Any]
CI_CONTEXT = "xsabot/ci"  # the status the local forge's CI sets


def manifests_repository(manifests: Path) -> Path:
    """The top level of the git repository holding the manifests directory."""
    if not manifests.is_dir():
        raise SetupError(f"{manifests}: the manifests directory does not exist")
    top = top_level(manifests)
    if top is None:
        raise SetupError(
            f"{manifests} is not in a git repository; the local forge keeps proposals as "
            f"branches of the manifests repository. Make it one: git init {manifests} && "
            f"git -C {manifests} add . && git -C {manifests} commit -m 'Manifests'"
        )
    return top


class LocalForge:
    """`Forge` over a local git repository and a directory of proposal records."""

    def __init__(
        self,
        manifests: Path,
        state: Path,
        identity: Identity,
        default_branch: str | None = None,
        *,
        check: CheckRunner | None = None,
    ) -> None:
        self.repo = manifests_repository(manifests)
        self.records = state / "proposals"
        self.identity = identity
        self.check = check  # the CI: its `repo_path` is the mirror candidates are pushed to
        self._default = default_branch or self._detect_default_branch()
        self._cache: tuple[int, dict[int, Record]] | None = None  # (directory mtime, records)

    # -- Forge ------------------------------------------------------------------------------

    def default_branch(self) -> str:
        return self._default

    def find(self, branch: str) -> MergeRequest | None:
        matching = [r for r in self._all_records() if r["branch"] == branch]
        return self._merge_request(max(matching, key=lambda r: int(r["id"]))) if matching else None

    def list_open(self) -> list[MergeRequest]:
        # Two git calls for all of them (the tips, and which are merged), not two per record.
        records = [
            r
            for r in self._all_records()
            if r["state"] == "open" and str(r["branch"]).startswith(BOT_BRANCH_PREFIX)
        ]
        if not records:
            return []
        tips = branch_tips(self.repo, BOT_BRANCH_PREFIX)
        merged = branch_tips(self.repo, BOT_BRANCH_PREFIX, merged_into=self._default)
        mrs = []
        for record in records:
            tip = tips.get(record["branch"])
            if tip is None:  # deleted after merging, perhaps: the bot's last commit tells
                is_open = not self._is_merged(record["head"])
            else:
                is_open = merged.get(record["branch"]) != tip
            if is_open:
                mrs.append(self._merge_request(record, state="open"))
        return mrs

    def open(self, proposal: Proposal) -> MergeRequest:
        check_proposal(proposal)
        previous = self.find(proposal.branch)
        if previous is not None and previous.state == "open":
            return previous
        record = self._load(previous.id) if previous is not None else None
        expected = self._movable_tip(proposal.branch, record)
        head = self._commit(proposal)
        self._move(proposal.branch, head, expected)
        new: Record = {
            "branch": proposal.branch,
            "title": proposal.title,
            "body": proposal.body_with_marker(),
            "state": "open",
            "draft": proposal.draft,
            "base": self._default,
            "head": head,
            "comments": [],
        }
        return self._merge_request(self._create(new))

    def update(self, mr: MergeRequest, proposal: Proposal) -> MergeRequest:
        check_proposal(proposal)
        record = self._load(mr.id)
        if record["branch"] != proposal.branch:
            raise ForgeError(
                f"merge request !{mr.id} is from {record['branch']}, not {proposal.branch}"
            )
        if self._state(record) != "open":
            raise ForgeConflict(f"merge request !{mr.id} is {self._state(record)}; not updating it")
        if content_hash_in(record["body"]) == proposal.content_hash():
            return self._merge_request(record)
        expected = self._movable_tip(proposal.branch, record)
        head = self._commit(proposal)
        self._move(proposal.branch, head, expected)
        record.update(
            title=proposal.title,
            body=proposal.body_with_marker(),
            draft=proposal.draft,
            base=self._default,
            head=head,
        )
        self._save(record)
        return self._merge_request(record)

    def close(self, mr: MergeRequest, comment: str) -> None:
        record = self._load(mr.id)
        state = self._state(record)
        if state == "merged":
            raise ForgeConflict(f"merge request !{mr.id} is merged; not closing it")
        if state == "closed":
            return
        record["comments"].append({"key": None, "body": comment})
        record["state"] = "closed"
        self._save(record)

    def comment(self, mr_id: int, key: str, body: str) -> None:
        record = self._load(mr_id)
        mine = next((c for c in record["comments"] if c["key"] == key), None)
        if mine is not None and mine["body"] == body:
            return
        if mine is not None:
            mine["body"] = body
        else:
            record["comments"].append({"key": key, "body": body})
        self._save(record)

    def tidy_merged(self, open_mrs: Sequence[MergeRequest] = ()) -> list[MergedProposal]:
        """Records found merged become `merged`; the branch goes if its tip is the bot's."""
        open_records = [
            r
            for r in self._all_records()
            if r["state"] == "open" and str(r["branch"]).startswith(BOT_BRANCH_PREFIX)
        ]
        if not open_records:
            return []
        tips = branch_tips(self.repo, BOT_BRANCH_PREFIX)
        merged = branch_tips(self.repo, BOT_BRANCH_PREFIX, merged_into=self._default)
        done = []
        for record in open_records:
            branch = str(record["branch"])
            tip = tips.get(branch)
            if tip is None:
                if not self._is_merged(record["head"]):
                    continue
            elif merged.get(branch) != tip:
                continue
            record["state"] = "merged"  # before the branch goes: its tip told it was merged
            self._save(record)
            removed = tip is not None and self._remove_merged_branch(branch, tip, record)
            done.append(MergedProposal(self._merge_request(record), branch_removed=removed))
        return done

    def _remove_merged_branch(self, branch: str, tip: str, record: Record) -> bool:
        """Delete the merged `branch` if its tip is the bot's own commit and nobody has it
        checked out; a maintainer's commit there keeps it."""
        if tip != record["head"] and not self._is_proposal_commit(branch, tip):
            return False
        if checked_out_branch(self.repo) == branch:
            return False
        try:
            delete_branch(self.repo, branch, tip)
        except GitError:
            return False  # moved meanwhile: whoever moved it owns it now
        return True

    def set_status(
        self, sha: str, state: CommitState, context: str, description: str, url: str | None = None
    ) -> None:
        path = self._status_path(sha)
        statuses = _read_json(path) if path.exists() else {}
        statuses[context] = {"state": state, "description": description, "url": url}
        _write_json(path, statuses)

    def check_status(self, sha: str) -> Literal["pending", "success", "failure", "unknown"]:
        path = self._status_path(sha)
        statuses = _read_json(path) if path.exists() else {}
        if self.check is not None and CI_CONTEXT not in statuses:
            # A real forge's CI runs on push; here it runs when first asked, which is as soon
            # as the bot has pushed the candidate. A commit the mirror lacks was never pushed:
            # no CI ran, so its status stays unknown, as on a real forge.
            tree = tree_of(self.check.repo_path, sha)
            if tree:
                result = self.check.check(tree)
                state: CommitState = "success" if result.passed else "failure"
                self.set_status(sha, state, CI_CONTEXT, f"{result.status}: {self.check.command}")
                statuses = _read_json(path)
        states = {s["state"] for s in statuses.values()}
        if not states:
            return "unknown"
        if states & {"failure", "error"}:
            return "failure"
        return "pending" if "pending" in states else "success"

    # -- git --------------------------------------------------------------------------------

    def _detect_default_branch(self) -> str:
        head = checked_out_branch(self.repo)
        # A volunteer may have a proposal checked out to try it; that is not the default.
        if head and not head.startswith(BOT_BRANCH_PREFIX):
            return head
        for name in ("main", "master"):
            if branch_tip(self.repo, name):
                return name
        raise SetupError(
            f"{self.repo}: cannot tell the default branch of the manifests repository "
            "(HEAD is detached or on a proposal branch); check out the default branch"
        )

    def _default_tip(self) -> str:
        tip = branch_tip(self.repo, self._default)
        if tip is None:
            raise SetupError(
                f"{self.repo}: branch {self._default} has no commits; commit the manifests first"
            )
        return tip

    def _is_merged(self, commit: str) -> bool:
        return is_ancestor(self.repo, commit, self._default_tip())

    def _commit(self, proposal: Proposal) -> str:
        base = self._default_tip()
        return commit_files(
            self.repo,
            base=base,
            files=proposal.files,
            message=proposal.commit_message(),
            name=self.identity.name,
            email=self.identity.email,
            date=commit_date(self.repo, base),
        )

    def _movable_tip(self, branch: str, record: Record | None) -> str | None:
        """The branch's tip if the bot may move it: its own last commit (as its record says,
        or as the commit itself says), or one already merged."""
        tip = branch_tip(self.repo, branch)
        if tip is None or (record is not None and tip == record["head"]) or self._is_merged(tip):
            return tip
        if self._is_proposal_commit(branch, tip):
            return tip
        raise ForgeConflict(
            f"{branch} has commits the bot did not make (a manual backport?); the bot leaves "
            f"it alone. Merge it, or delete it to let the bot propose again: git branch -D {branch}"
        )

    def _is_proposal_commit(self, branch: str, commit: str) -> bool:
        """Whether `commit` is a proposal commit the bot made for `branch`: committed by the
        bot, ending with its trailer for that branch, on top of the default branch."""
        info = commit_info(self.repo, commit)
        trailer = proposal_trailer_in(info.message)
        return (
            trailer is not None
            and trailer[0] == branch
            and info.committer_email == self.identity.email
            and len(info.parents) == 1
            and self._is_merged(info.parents[0])
        )

    def _move(self, branch: str, new: str, old: str | None) -> None:
        if checked_out_branch(self.repo) == branch:
            raise ForgeConflict(f"{branch} is checked out in {self.repo}; switch branches first")
        try:
            move_branch(self.repo, branch, new, old)
        except GitError as exc:
            raise ForgeConflict(f"{branch} moved while the bot was updating it: {exc}") from None

    # -- records ----------------------------------------------------------------------------

    def _state(self, record: Record) -> Literal["open", "merged", "closed"]:
        if record["state"] == "merged":
            return "merged"
        if record["state"] != "open":
            return "closed"
        # The branch tip, or the bot's last commit if a volunteer deleted the branch after merging.
        tip = branch_tip(self.repo, record["branch"]) or record["head"]
        return "merged" if self._is_merged(tip) else "open"

    def _merge_request(
        self, record: Record, state: Literal["open", "merged", "closed"] | None = None
    ) -> MergeRequest:
        return MergeRequest(
            id=int(record["id"]),
            branch=record["branch"],
            title=record["title"],
            state=state or self._state(record),
            draft=bool(record["draft"]),
            url=self._record_path(int(record["id"])).as_uri(),
            content_hash=content_hash_in(record["body"]),
        )

    def _record_path(self, mr_id: int) -> Path:
        return self.records.resolve() / f"{mr_id}.json"

    def _status_path(self, sha: str) -> Path:
        if not sha or not all(ch in "0123456789abcdef" for ch in sha):
            raise ForgeError(f"not a commit ID: {sha!r}")
        return self.records / "statuses" / f"{sha}.json"

    def _all_records(self) -> list[Record]:
        """Every record, read again only when the directory changed since (a pass asks for
        them once per proposal: hundreds of proposals must not read hundreds of files each)."""
        if not self.records.is_dir():
            return []
        stamp = self.records.stat().st_mtime_ns
        if self._cache is None or self._cache[0] != stamp:
            paths = sorted(self.records.glob("*.json"))
            self._cache = (stamp, {int(p.stem): _read_json(p) for p in paths if p.stem.isdigit()})
        return list(self._cache[1].values())

    def _wrote(self, record: Record) -> None:
        """Keep the records read in step with one the bot just wrote."""
        if self._cache is not None:
            records = dict(self._cache[1])
            records[int(record["id"])] = json.loads(json.dumps(record))
            self._cache = (self.records.stat().st_mtime_ns, records)

    def _load(self, mr_id: int) -> Record:
        path = self._record_path(mr_id)
        if not path.is_file():
            raise ForgeNotFound(f"no local merge request !{mr_id} (no {path})")
        return _read_json(path)

    def _save(self, record: Record) -> None:
        _write_json(self._record_path(int(record["id"])), record)
        self._wrote(record)

    def _create(self, record: Record) -> Record:
        """Store a new record under the next free id; linking makes the claim atomic."""
        self.records.mkdir(parents=True, exist_ok=True)
        ids = [int(p.stem) for p in self.records.glob("*.json") if p.stem.isdigit()]
        mr_id = max(ids, default=0) + 1
        while True:
            record["id"] = mr_id
            tmp = _write_temp(self.records, record)
            try:
                os.link(tmp, self._record_path(mr_id))
            except FileExistsError:
                mr_id += 1
                continue
            finally:
                tmp.unlink()
            self._wrote(record)
            return record


def _read_json(path: Path) -> Record:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ForgeError(f"{path}: unreadable proposal record: {exc}") from None
    if not isinstance(data, dict):
        raise ForgeError(f"{path}: unreadable proposal record: not a JSON object")
    return data


def _write_temp(directory: Path, data: object) -> Path:
    fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    return Path(name)


def _write_json(path: Path, data: object) -> None:
    """Replace the file in one step, so a reader never sees half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(_write_temp(path.parent, data), path)
