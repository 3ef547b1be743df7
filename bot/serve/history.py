"""What the service keeps between restarts: the last status it read and a bounded history
of its passes, in one JSON file under the state dir (`serve/service.json`).

The file is written atomically (a temporary file in the same directory, flushed to disk,
then renamed over the old one), so a crash mid-write leaves the old file or the new one.
Losing it loses no branch: the mirror and its build records are the truth, and the next
pass writes a new file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.core.reports import StatusReport

log = logging.getLogger(__name__)

HISTORY_LIMIT = 100  # passes kept; at one pass every 15 minutes, about a day
Result = Literal["ok", "blocked", "error", "crashed", "abandoned"]


class PassRecord(BaseModel):
    """One pass the service ran: when, why, how long, and how it ended."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    started: datetime
    seconds: float
    trigger: Literal["schedule", "hook", "start"]
    result: Result
    exit_status: int | None = None  # the pass report's, as `xsabot reconcile` exits
    errors: tuple[str, ...] = ()
    notifications_sent: int = 0
    notifications_failed: int = 0


class ServiceState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    passes: tuple[PassRecord, ...] = ()  # oldest first, at most HISTORY_LIMIT
    status: StatusReport | None = None  # read after the last pass
    last_success: dict[str, float] = {}  # branch -> Unix time of its last clean pass

    def with_pass(
        self, record: PassRecord, status: StatusReport | None, ok_branches: list[str]
    ) -> ServiceState:
        stamp = record.started.timestamp() + record.seconds
        return ServiceState(
            passes=(*self.passes, record)[-HISTORY_LIMIT:],
            status=status if status is not None else self.status,
            last_success=self.last_success | dict.fromkeys(ok_branches, stamp),
        )


def state_file(state_dir: Path) -> Path:
    return state_dir / "serve" / "service.json"


def load(path: Path) -> ServiceState:
    """The kept state; an empty one when there is none or it cannot be read (said in the log:
    the next pass rebuilds it). Removes what a write cut short left behind."""
    for left in path.parent.glob(".service-*.json") if path.parent.is_dir() else ():
        left.unlink(missing_ok=True)
    try:
        return ServiceState.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return ServiceState()
    except (OSError, ValidationError, ValueError) as exc:
        log.warning("%s: not read, starting with no pass history (%s)", path, exc)
        return ServiceState()


def save(path: Path, state: ServiceState) -> None:
    """Replace `path` with `state` atomically: readers and a crash see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".service-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(state.model_dump_json(indent=1).encode())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
