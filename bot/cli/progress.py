"""Progress for long work on a terminal; silent when output is piped or captured."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any


class Progress:
    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._console: Any = None

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        if not self.enabled:
            with nullcontext():
                yield
            return
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        with self._console.status(message):
            yield
