"""Workers for tests of the worker process: built in the child from a ``"module:callable"`` name,
so they live in a module of their own with few imports. They write what they did to files."""

from __future__ import annotations

import os
from pathlib import Path

from bot.catalog import load_catalog
from bot.intake import CheckRequest, CommandRequest
from bot.metrics import Metrics
from tests.conftest import EXAMPLE_CATALOG


class CrashingWorker:
    """Reconciles by writing the model's name to ``calls``; the first reconcile of ``crash_on``
    ends the process, as a segfault or the OOM killer would."""

    def __init__(self, folder: str, crash_on: str, metrics: Metrics) -> None:
        self.folder, self.crash_on = Path(folder), crash_on
        self.cat = load_catalog(EXAMPLE_CATALOG)

    def catalog(self):
        return self.cat

    def _said(self, line: str) -> None:
        with (self.folder / "calls").open("a") as f:
            f.write(line + "\n")

    def reconcile(self, model: str) -> None:
        if model == self.crash_on and not (self.folder / "crashed").exists():
            (self.folder / "crashed").touch()
            os._exit(17)
        self._said(model)

    def look_again(self, model: str) -> float | None:
        return None

    def validate(self, check: CheckRequest) -> None:
        self._said(f"validate {check.head_sha}")

    def command(self, request: CommandRequest) -> None:
        self._said(f"command {request.number}")
