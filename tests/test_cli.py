"""The command's own behaviour: exit statuses and what a user sees when something breaks."""

from __future__ import annotations

from pathlib import Path

from bot.app.wiring import Adapters
from tests.conftest import Bot
from tests.gitrepo import XenLike
from tests.manifests import manifest


def test_an_unexpected_error_is_one_line_and_a_traceback_file_exit_2(
    bot: Bot, xenlike: XenLike
) -> None:
    def broken_push(*args: object, **kw: object) -> None:
        raise RuntimeError("push adapter fell over")

    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    bot.adapters = Adapters(push=broken_push)  # type: ignore[arg-type]
    run = bot("reconcile")
    assert run.status == 2
    [line] = run.err.strip().splitlines()
    assert "internal error (RuntimeError: push adapter fell over)" in line
    assert "Traceback" not in run.err
    where = Path(line.split("the full traceback is in ", 1)[1].split(";")[0])
    assert where.parent == bot.state / "logs"
    text = where.read_text()
    assert text.startswith("Traceback") and "broken_push" in text
