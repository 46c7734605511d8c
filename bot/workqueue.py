"""A work queue that coalesces: a key queued many times before it runs, runs once.

Webhooks arrive in bursts (a PR merge fires push, pull_request and check events; MLflow retries
with the same delivery). Each names a model; what matters is that the model is reconciled once
*after* the last event, not once per event. One worker thread runs keys one at a time, so work
for a key is serialized. ``stop`` drains what is queued before returning.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable


class CoalescingQueue:
    def __init__(
        self, handler: Callable[[Hashable], None], on_error: Callable[[Hashable, BaseException], None]
    ) -> None:
        self._handler = handler
        self._on_error = on_error
        self._pending: OrderedDict[Hashable, int] = OrderedDict()
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="releasebot-work", daemon=True)
        self.coalesced = 0
        self.runs = 0

    def start(self) -> None:
        self._thread.start()

    def put(self, key: Hashable) -> None:
        with self._cond:
            if key in self._pending:
                self._pending[key] += 1
                self.coalesced += 1
            else:
                self._pending[key] = 1
            self._cond.notify()

    def depth(self) -> int:
        with self._cond:
            return len(self._pending)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending:
                    return
                key, _ = self._pending.popitem(last=False)
                self._busy = True
            try:
                self._handler(key)
            except BaseException as exc:  # one bad key must not stop the worker
                self._on_error(key, exc)
            finally:
                with self._cond:
                    self._busy = False
                    self.runs += 1
                    self._cond.notify_all()

    def join_idle(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is queued or running (for shutdown and tests)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Finish what is queued, then stop the worker."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
