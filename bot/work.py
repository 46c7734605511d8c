"""What ``serve`` does with a work item, and a place to do it.

Three kinds of item reach the worker: :class:`Reconcile` (a model; coalescing), a
:class:`bot.intake.CheckRequest` (coalescing per commit) and a :class:`bot.intake.CommandRequest`
(one per delivery). All are frozen, hashable and picklable: they are the queue's keys, and they
cross to the worker process as they are. :func:`run` hands one to a :class:`Worker`, timing
reconciles and logging failures with their cause. :class:`Retries` reads the error tree's retry
bit: a retryable failure (a conflict, an upstream that is down or rate limited) puts its item
back after a bounded backoff, or after the delay the error names; a permanent one is logged
with its cause chain and dropped. Commands are never repeated (one may be half carried out).

:class:`LocalWork` runs the worker in this process, on threads. ``releasebot serve`` runs it in a
process of its own instead (:mod:`bot.workerprocess`); this one is for tests of the receiver and
for tests whose HTTP mocks must see the worker's calls. Both offer the receiver the same surface
(:class:`Work`). Nothing here decides what to queue (that is :mod:`bot.server`) or what a piece
of work changes (that is the worker).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bot.catalog import Catalog
from bot.errors import ReleasebotError
from bot.intake import CheckRequest, CommandRequest
from bot.metrics import Metrics
from bot.status import Row
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

    def status(self) -> Mapping[str, tuple[Row, ...]]:
        """The status page's rows per model, as the last pass over each saw them."""
        ...


def statuses(worker: object) -> dict[str, tuple[Row, ...]]:
    """The status rows ``worker`` recorded since it was last asked (``take_status``); a worker
    that keeps none (a test's) gives none."""
    take = getattr(worker, "take_status", None)
    return take() if take is not None else {}


class StatusBoard:
    """The receiver's copy of the status rows, per model, filled as passes finish: the page reads
    it and never waits on the worker or recomputes the fleet."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[Row, ...]] = {}
        self._lock = threading.Lock()

    def update(self, rows: Mapping[str, tuple[Row, ...]]) -> None:
        if rows:
            with self._lock:
                self._rows.update(rows)

    def rows(self) -> dict[str, tuple[Row, ...]]:
        with self._lock:
            return dict(self._rows)


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


def retryable(item: Hashable, exc: BaseException) -> bool:
    return isinstance(exc, ReleasebotError) and exc.retryable and not isinstance(item, CommandRequest)


def failed(metrics: Metrics, item: Hashable, exc: BaseException) -> None:
    """Count and log a failure with its cause chain; a retryable one as a warning (it is retried)."""
    metrics.reconcile_failures.inc()
    causes, cause = [], exc.__cause__ or exc.__context__
    while cause is not None and len(causes) < 5:
        causes.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    because = f" (caused by {'; '.join(causes)})" if causes else ""
    written = getattr(exc, "written", ())
    before = f"; written before it: {'; '.join(written)}" if written else ""
    if retryable(item, exc):
        log.warning("%s failed, to be retried: %s: %s%s%s", describe(item), type(exc).__name__, exc, because, before)
    else:
        log.error("%s failed: %s: %s%s%s", describe(item), type(exc).__name__, exc, because, before, exc_info=exc)


class Retries:
    """Puts failed items back on a queue later: at most ``limit`` times in a row per item, after
    ``first`` seconds doubling to ``most`` (or the delay the error asked for). A timer thread
    waits, never a worker or the receiver; a success forgets the count."""

    def __init__(self, put: Callable[[Hashable], None], limit: int = 5, first: float = 2.0, most: float = 300.0):
        self._put, self.limit, self.first, self.most = put, limit, first, most
        self._lock = threading.Lock()
        self._tries: dict[Hashable, int] = {}
        self._timers: dict[Hashable, threading.Timer] = {}

    def schedule(self, item: Hashable, delay: float | None) -> bool:
        """Put ``item`` back after a backoff; False (and logged) when its retries are used up."""
        with self._lock:
            tries = self._tries.get(item, 0) + 1
            if tries > self.limit:
                self._tries.pop(item, None)
                log.error("%s: giving up after %d retries", describe(item), self.limit)
                return False
            self._tries[item] = tries
            wait = delay if delay is not None else min(self.first * 2 ** (tries - 1), self.most)
            timer = threading.Timer(wait, self._fire, (item,))
            timer.daemon = True
            self._timers[item] = timer
        log.info("%s: retry %d of %d in %.0f s", describe(item), tries, self.limit, wait)
        timer.start()
        return True

    def _fire(self, item: Hashable) -> None:
        with self._lock:
            self._timers.pop(item, None)
        self._put(item)

    def succeeded(self, item: Hashable) -> None:
        with self._lock:
            self._tries.pop(item, None)

    def pending(self) -> int:
        """Retries scheduled and not yet put back."""
        with self._lock:
            return len(self._timers)

    def stop(self) -> None:
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()


class LocalWork:
    """The worker on ``threads`` threads of this process."""

    def __init__(
        self, worker: Worker, catalog: Callable[[], Catalog], metrics: Metrics | None = None, threads: int = 1
    ) -> None:
        self.worker, self._catalog = worker, catalog
        self.metrics = metrics or Metrics()
        self.queue = CoalescingQueue(self._run, self._failed, threads)
        self.retries = Retries(self.queue.put)
        self.metrics.queue_depth_from(self.queue.depth)
        self.metrics.worker_up.set(1)
        self.board = StatusBoard()

    def _run(self, item: Hashable) -> float | None:
        when = run(self.worker, self.metrics, item)
        self.board.update(statuses(self.worker))
        self.retries.succeeded(item)
        return when  # the queue puts the item back then (a walk's next look)

    def _failed(self, item: Hashable, exc: BaseException) -> None:
        self.board.update(statuses(self.worker))
        failed(self.metrics, item, exc)
        if retryable(item, exc):
            self.retries.schedule(item, getattr(exc, "delay", None))

    def catalog(self) -> Catalog:
        return self._catalog()

    def start(self) -> None:
        self.queue.start()

    def stop(self) -> None:
        self.retries.stop()  # a retry not yet due is the next run's (its resync's) business
        self.queue.stop()  # drains what is queued

    def exposition(self) -> bytes:
        return self.metrics.worker_exposition()

    def status(self) -> dict[str, tuple[Row, ...]]:
        return self.board.rows()
