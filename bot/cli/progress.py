"""Progress for long work: on a terminal a spinner with the step, its count (`building 4.19
(3/6)`) and the elapsed time; with `-v` one log line per step with its timing; nothing when
stderr is piped or captured, or with `-q`.

`main` calls `configure` once from the command line, so every `Progress()` a command makes
follows `-v` and `-q` without being handed them.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("bot.progress")
_settings = {"verbose": False, "quiet": False}


def configure(*, verbose: bool, quiet: bool) -> None:
    _settings.update(verbose=verbose, quiet=quiet)


def label(message: str, of: tuple[int, int] | None) -> str:
    return f"{message} ({of[0]}/{of[1]})" if of else message


class Progress:
    def __init__(self, enabled: bool | None = None) -> None:
        self.verbose = _settings["verbose"]
        if enabled is None:
            # Log lines and a spinner on the same terminal would tear each other apart.
            enabled = sys.stderr.isatty() and not _settings["quiet"] and not self.verbose
        self.enabled = enabled
        self._live: Any = None
        self._depth = 0

    @contextmanager
    def step(self, message: str, of: tuple[int, int] | None = None) -> Iterator[None]:
        text = label(message, of)
        start = time.monotonic()
        if self.verbose:
            log.info("%s ...", text)
        try:
            if self.enabled:
                with self._shown(text):
                    yield
            else:
                yield
        except BaseException:
            if self.verbose:
                log.info("%s: failed after %s", text, _seconds(time.monotonic() - start))
            raise
        if self.verbose:
            log.info("%s: %s", text, _seconds(time.monotonic() - start))

    @contextmanager
    def _shown(self, text: str) -> Iterator[None]:
        """One live display for nested steps (proposals around searches): the innermost
        step's line, with the time since it began."""
        from rich.progress import Progress as Live
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        if self._live is None:
            from rich.console import Console

            self._live = Live(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
        if self._depth == 0:
            self._live.start()
        self._depth += 1
        task = self._live.add_task(text, total=None)
        try:
            yield
        finally:
            self._live.remove_task(task)
            self._depth -= 1
            if self._depth == 0:
                self._live.stop()


def _seconds(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:.0f} s"
