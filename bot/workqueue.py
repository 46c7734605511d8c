"""A work queue that coalesces and runs independent keys in parallel, one at a time per key.

Webhooks arrive in bursts (a PR merge fires push, pull_request and check events; MLflow retries
with the same delivery). Each names a model; what matters is that the model is reconciled once
*after* the last event, not once per event. So a key queued while it waits is counted once, and
a key queued while it runs waits until that run ends (the run may have read the state before the
event), then runs once more.

Up to ``slots`` keys run at once, never the same key twice. The queue runs them itself on that
many threads when given a handler; without one, something else takes keys (:meth:`take`) and
reports them finished (:meth:`done`) or hands them back (:meth:`requeue`): the worker process
does that. ``stop`` drains what is queued before returning. This module knows nothing about
what a key means.

A key can also be put at a time (:meth:`put_at`): "look at this again at T", which is how a
release walk waits for a soak to end without anything sleeping. One timer thread holds the
earliest time per key; pending times are dropped at ``stop`` (a restarted ``serve`` finds them
again in Git and the cluster on its first pass).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class CoalescingQueue:
    def __init__(
        self,
        handler: Callable[[Hashable], float | None] | None,
        on_error: Callable[[Hashable, BaseException], None] | None = None,
        slots: int = 1,
    ) -> None:
        if slots < 1:
            raise ValueError("a queue needs at least one slot")
        self._handler = handler
        self._on_error = on_error
        self._slots = slots
        self._pending: OrderedDict[Hashable, None] = OrderedDict()  # may run now
        self._held: OrderedDict[Hashable, None] = OrderedDict()  # queued again while running
        self._running: set[Hashable] = set()
        self._cond = threading.Condition()
        self._stopping = False
        count = slots if handler is not None else 0
        self._threads = [
            threading.Thread(target=self._run, name=f"releasebot-work-{i}", daemon=True) for i in range(count)
        ]
        self.coalesced = 0
        self.runs = 0
        self._due: dict[Hashable, float] = {}  # key -> when (time.time()) it is put again
        self._heap: list[tuple[float, int, Hashable]] = []
        self._timer: threading.Thread | None = None
        self._seq = 0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def put(self, key: Hashable) -> None:
        with self._cond:
            if key in self._pending or key in self._held:
                self.coalesced += 1
            elif key in self._running:
                self._held[key] = None
            else:
                self._pending[key] = None
            self._cond.notify_all()

    def put_at(self, key: Hashable, when: float) -> None:
        """Put ``key`` at ``when`` (a ``time.time()`` value); the earliest time asked wins."""
        with self._cond:
            if self._stopping or (key in self._due and self._due[key] <= when):
                return
            self._due[key] = when
            self._seq += 1
            heapq.heappush(self._heap, (when, self._seq, key))
            if self._timer is None:
                self._timer = threading.Thread(target=self._wake, name="releasebot-timer", daemon=True)
                self._timer.start()
            self._cond.notify_all()

    def scheduled(self) -> dict[Hashable, float]:
        with self._cond:
            return dict(self._due)

    def _wake(self) -> None:
        with self._cond:
            while not self._stopping:
                now = time.time()
                while self._heap and self._heap[0][0] <= now:
                    when, _, key = heapq.heappop(self._heap)
                    if self._due.get(key) == when:
                        del self._due[key]
                        self._cond.release()
                        try:
                            self.put(key)
                        finally:
                            self._cond.acquire()
                wait = (self._heap[0][0] - now) if self._heap else None
                self._cond.wait(wait)

    def depth(self) -> int:
        """Keys waiting to run (a running key counts once more when it was queued again)."""
        with self._cond:
            return len(self._pending) + len(self._held)

    def running(self) -> list[Hashable]:
        with self._cond:
            return list(self._running)

    def take(self) -> Hashable | None:
        """The next key that may run, once a slot is free; None when stopping and nothing is left."""
        with self._cond:
            while not (self._pending and len(self._running) < self._slots):
                if self._stopping and not self._pending and not self._held and not self._running:
                    return None
                self._cond.wait()
            key, _ = self._pending.popitem(last=False)
            self._running.add(key)
            return key

    def done(self, key: Hashable) -> None:
        with self._cond:
            self._finish(key)
            self.runs += 1

    def requeue(self, key: Hashable) -> None:
        """A taken key that did not run after all (its worker went away): first in line again."""
        with self._cond:
            self._finish(key)
            self._pending[key] = None
            self._pending.move_to_end(key, last=False)

    def _finish(self, key: Hashable) -> None:
        self._running.discard(key)
        if key in self._held:
            del self._held[key]
            self._pending[key] = None
        self._cond.notify_all()

    def _run(self) -> None:
        assert self._handler is not None
        while (key := self.take()) is not None:
            try:
                when = self._handler(key)
                if isinstance(when, float):
                    self.put_at(key, when)
            except BaseException as exc:  # one bad key must not stop the worker
                if self._on_error is not None:
                    self._on_error(key, exc)
            finally:
                self.done(key)

    def join_idle(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is queued or running (for shutdown and tests)."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._pending or self._held or self._running), timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Finish what is queued, then stop the threads (and make :meth:`take` return None)."""
        with self._cond:
            self._stopping = True
            self._due.clear()
            self._heap.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        if self._timer is not None:
            self._timer.join(timeout)
