"""What ``serve`` does with a work item, and a place to do it.

Three kinds of item reach the worker: :class:`Reconcile` (a model; coalescing), a
:class:`bot.intake.CheckRequest` (coalescing per commit) and a :class:`bot.intake.CommandRequest`
(one per delivery). All are frozen, hashable and picklable: they are the queue's keys, and they
cross to the worker process as they are. :func:`run` hands one to a :class:`Worker`, timing
reconciles and logging failures with their cause.

:class:`LocalWork` runs the worker in this process, on threads. ``releasebot serve`` runs it in a
process of its own instead (:mod:`bot.workerprocess`); this one is for tests of the receiver and
for tests whose HTTP mocks must see the worker's calls. Both offer the receiver the same surface
(:class:`Work`). Nothing here decides what to queue (that is :mod:`bot.server`) or what a piece
of work changes (that is the worker).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

from bot.catalog import Catalog
from bot.intake import CheckRequest, CommandRequest
from bot.metrics import Metrics
from bot.workqueue import CoalescingQueue

log = logging.getLogger("releasebot.work")


@dataclass(frozen=True)
class Reconcile:
    name: str


class Worker(Protocol):
    def reconcile(self, model: str) -> object: ...

    def look_again(self, model: str) -> float | None:
        """When (``time.time()``) the model's last reconcile asked to be run again: a walk
        waiting for a sync or a soak. None: only events and the resync bring it back."""
        ...

    def validate(self, check: CheckRequest) -> None: ...

    def command(self, request: CommandRequest) -> None: ...


class Work(Protocol):
    """Where the receiver's work goes: a queue to put items on, the catalog to route with (raises
    until there is one), start/stop (stop drains), and the worker's half of ``/metrics``."""

    queue: CoalescingQueue
    metrics: Metrics

    def catalog(self) -> Catalog: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def exposition(self) -> bytes: ...


def describe(item: Hashable) -> str:
    if isinstance(item, Reconcile):
        return f"reconcile {item.name}"
    if isinstance(item, CheckRequest):
        return f"validate {item.head_sha[:12]}"
    if isinstance(item, CommandRequest):
        return f"command on #{item.number}"
    return repr(item)


def run(worker: Worker, metrics: Metrics, item: Hashable) -> float | None:
    """Do one item; for a reconcile, say when it wants to run again (None: not by itself)."""
    start, outcome = time.monotonic(), "failed"
    try:
        when = None
        if isinstance(item, Reconcile):
            with metrics.reconcile_seconds.time():
                worker.reconcile(item.name)
            when = worker.look_again(item.name)
        elif isinstance(item, CheckRequest):
            worker.validate(item)
        elif isinstance(item, CommandRequest):
            worker.command(item)
        outcome = "done"
        return when
    finally:
        # One line per piece of work, whatever became of it; a failure's cause follows from failed().
        duration_ms = round((time.monotonic() - start) * 1000, 1)
        fields = {"key": describe(item), "outcome": outcome, "duration_ms": duration_ms}
        log.info("%s %s in %.1f ms", describe(item), outcome, duration_ms, extra=fields)


def failed(metrics: Metrics, item: Hashable, exc: BaseException) -> None:
    metrics.reconcile_failures.inc()
    causes, cause = [], exc.__cause__ or exc.__context__
    while cause is not None and len(causes) < 5:
        causes.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    because = f" (caused by {'; '.join(causes)})" if causes else ""
    log.error("%s failed: %s: %s%s", describe(item), type(exc).__name__, exc, because, exc_info=exc)


class LocalWork:
    """The worker on ``threads`` threads of this process."""

    def __init__(
        self, worker: Worker, catalog: Callable[[], Catalog], metrics: Metrics | None = None, threads: int = 1
    ) -> None:
        self.worker, self._catalog = worker, catalog
        self.metrics = metrics or Metrics()
        self.queue = CoalescingQueue(
            lambda item: run(worker, self.metrics, item), lambda item, exc: failed(self.metrics, item, exc), threads
        )
        self.metrics.queue_depth_from(self.queue.depth)
        self.metrics.worker_up.set(1)

    def catalog(self) -> Catalog:
        return self._catalog()

    def start(self) -> None:
        self.queue.start()

    def stop(self) -> None:
        self.queue.stop()  # drains what is queued

    def exposition(self) -> bytes:
        return self.metrics.worker_exposition()
