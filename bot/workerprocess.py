"""The worker of ``releasebot serve`` in a process of its own, so that it never holds the
receiver's GIL: a reconcile parsing YAML for a second must not delay a webhook's 202.

:class:`WorkerProcess` is the receiver's side. It keeps the :class:`CoalescingQueue` (coalescing
and "one at a time per key" are decided here, where the deliveries arrive) and hands at most
``threads`` keys at a time to the child, which runs each on a thread of its own pool and says
when it is done. The child is started with the ``spawn`` method (never ``fork``: the receiver
has threads by then) and builds its worker from ``factory``, a ``"module:callable"`` name and
arguments, so that this process never imports the worker's modules (MLflow, git, GitHub).

What crosses, all picklable: work items (frozen dataclasses) one way; the catalog (sent again
whenever it changes, for routing and readiness), the status page's rows of the models a pass
covered (:mod:`bot.status`), "done" for each item, and the child's log records the other way;
and on a pipe, the child's half of ``/metrics`` when asked, with a short timeout (the last good
copy is served when the child is busy or gone).

A child that exits unasked is logged, counted (``releasebot_worker_restarts_total``), marked
not ready, and started again after a backoff (1 s, doubling to 30 s; reset once a child has run
for a minute). Its unfinished reconciles and checks are queued again, first in line; its
unfinished commands are logged and dropped, since a command may have been half carried out and
is not safe to repeat. A reconcile or check that failed retryably is put back here, in the
receiver's process, after a backoff (:class:`bot.work.Retries`). ``stop`` drains the queue, then
asks the child to finish and waits for it.

This module does not know what the work is; :mod:`bot.service` does.
"""

from __future__ import annotations

import faulthandler
import importlib
import logging
import logging.handlers
import multiprocessing
import multiprocessing.connection
import os
import queue as stdqueue
import signal
import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bot.catalog import Catalog
from bot.intake import CommandRequest
from bot.metrics import Metrics
from bot.status import Row
from bot.work import Retries, StatusBoard, describe, failed, retryable, run, statuses
from bot.workqueue import CoalescingQueue

log = logging.getLogger("releasebot.workerprocess")
SCRAPE_TIMEOUT = 2.0  # Prometheus' default scrape timeout is 10 s; leave it most of that
BACKOFF_FIRST, BACKOFF_MAX, STEADY_SECONDS = 1.0, 30.0, 60.0


class NotReady(Exception):
    pass


@dataclass(frozen=True)
class Factory:
    """``target`` is ``"module:callable"``; the child calls it with ``*args`` and its own
    :class:`Metrics` to get the worker (which has ``catalog()`` besides the Worker methods)."""

    target: str
    args: tuple[Any, ...] = ()

    def build(self, metrics: Metrics) -> Any:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)(*self.args, metrics)


@dataclass
class _Child:
    process: multiprocessing.process.BaseProcess
    inbox: Any  # multiprocessing queues: fresh ones per child, since a killed reader can leave one locked
    outbox: Any
    scrape: multiprocessing.connection.Connection
    started: float = field(default_factory=time.monotonic)
    up: bool = False

    def close(self) -> None:
        self.scrape.close()
        for q in (self.inbox, self.outbox):
            q.cancel_join_thread()  # nobody reads it any more; do not wait to flush it at exit
            q.close()


class WorkerProcess:
    def __init__(
        self, factory: Factory, metrics: Metrics | None = None, threads: int = 4, method: str = "spawn"
    ) -> None:
        if method == "fork":
            raise ValueError("fork after threads exist can copy a held lock into the child; use spawn or forkserver")
        self.factory, self.threads = factory, threads
        self.metrics = metrics or Metrics()
        self.queue = CoalescingQueue(None, slots=threads)
        self.retries = Retries(self.queue.put)
        self.metrics.queue_depth_from(self.queue.depth)
        self.metrics.worker_up.set(0)
        self._ctx = multiprocessing.get_context(method)
        self._lock = threading.Lock()  # guards _child, _catalog, _reason and what was handed to the child
        self._child: _Child | None = None
        self._catalog: Catalog | None = None
        self._reason = "the worker process is starting"
        self._stopping = threading.Event()
        self._up = threading.Condition(self._lock)
        self._scrape_lock = threading.Lock()
        self._scrape_seq = 0
        self._last_scrape = b""
        self.board = StatusBoard()
        self._threads = [
            threading.Thread(target=self._supervise, name="releasebot-supervisor", daemon=True),
            threading.Thread(target=self._dispatch, name="releasebot-dispatch", daemon=True),
        ]

    # -- what the receiver sees -----------------------------------------------------------

    def catalog(self) -> Catalog:
        with self._lock:
            if self._catalog is None or self._child is None or not self._child.up:
                raise NotReady(self._reason)
            return self._catalog

    def exposition(self) -> bytes:
        """The child's metrics, or the last good copy when it does not answer in time."""
        with self._scrape_lock:
            with self._lock:
                child = self._child if self._child is not None and self._child.up else None
            if child is None:
                return self._last_scrape
            self._scrape_seq += 1
            deadline = time.monotonic() + SCRAPE_TIMEOUT
            try:
                child.scrape.send(self._scrape_seq)
                while (left := deadline - time.monotonic()) > 0 and child.scrape.poll(left):
                    seq, text = child.scrape.recv()
                    if seq == self._scrape_seq:  # an older answer came after its request gave up
                        self._last_scrape = text
                        break
                else:
                    log.warning("the worker process did not answer a scrape in %.0f s", SCRAPE_TIMEOUT)
            except (OSError, EOFError):  # it went away meanwhile; the supervisor reports that
                pass
            return self._last_scrape

    def status(self) -> dict[str, tuple[Row, ...]]:
        """The status rows the child sent as its passes finished (kept across its restarts)."""
        return self.board.rows()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Finish what is queued, then stop the child."""
        if not self.queue.join_idle(timeout):
            log.error("stopping with %d work items unfinished", self.queue.depth() + len(self.queue.running()))
        self.queue.stop(0)
        self.retries.stop()
        with self._lock:
            self._stopping.set()
            self._up.notify_all()
            child = self._child
        if child is not None:
            child.inbox.put(None)
        for thread in self._threads:
            thread.join(timeout)
        if child is not None and child.process.is_alive():
            child.process.kill()
            child.process.join(5)
        with self._lock:
            self._child = None  # its queues' semaphores are freed with it, not at interpreter exit

    # -- the receiver's threads -----------------------------------------------------------

    def _dispatch(self) -> None:
        while (item := self.queue.take()) is not None:
            with self._lock:
                while not self._stopping.is_set() and (self._child is None or not self._child.up):
                    self._up.wait()
                if self._child is None or not self._child.up:
                    self.queue.requeue(item)
                    return
                self._child.inbox.put(item)

    def _spawn(self) -> _Child:
        inbox, outbox = self._ctx.Queue(), self._ctx.Queue()
        here, there = self._ctx.Pipe()
        level = logging.getLogger("releasebot").getEffectiveLevel()
        process = self._ctx.Process(
            target=_child_main,
            args=(self.factory, self.threads, inbox, outbox, there, level),
            name="releasebot-worker",
            daemon=True,  # never outlives the receiver
        )
        process.start()
        there.close()
        return _Child(process, inbox, outbox, here)

    def _supervise(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            with self._lock:  # stop() sees either no child or this one
                if self._stopping.is_set():
                    break
                child = self._child = self._spawn()
            self._follow(child)
            with self._scrape_lock:
                child.close()
            if self._stopping.is_set():
                break
            code = child.process.exitcode
            with self._lock:
                child.up = False
                self._reason = f"the worker process exited (code {code}); restarting in {backoff:.0f} s"
                lost = self._take_back()
            self.metrics.worker_up.set(0)
            self.metrics.worker_restarts.inc()
            log.error("%s; work queued again: %s", self._reason, ", ".join(lost) or "none")
            if time.monotonic() - child.started > STEADY_SECONDS:
                backoff = BACKOFF_FIRST
            if self._stopping.wait(backoff):
                break
            backoff = min(backoff * 2, BACKOFF_MAX)
        self.metrics.worker_up.set(0)

    def _take_back(self) -> list[str]:
        """What the dead child had not finished: queued again, commands excepted."""
        again = []
        for item in self.queue.running():
            if isinstance(item, CommandRequest):
                self.queue.done(item)
                log.error("%s was not answered: the worker process exited while on it", describe(item))
            else:
                self.queue.requeue(item)
                again.append(describe(item))
        return again

    def _follow(self, child: _Child) -> None:
        """Handle what the child sends until it has exited and everything it sent is read."""
        gone = False
        while True:
            try:
                message = child.outbox.get(timeout=0.2)
            except stdqueue.Empty:
                if gone:
                    return
                gone = not child.process.is_alive()  # one more round: read what it sent last
                continue
            kind = message[0]
            if kind == "done":
                self.retries.succeeded(message[1])
                self.queue.done(message[1])
                if message[2] is not None:  # a walk asked to be looked at again then
                    self.queue.put_at(message[1], message[2])
            elif kind == "retry":  # the child failed it, retryably; it is put back from here
                self.retries.schedule(message[1], message[2])
                self.queue.done(message[1])
            elif kind == "catalog":
                with self._lock:
                    self._catalog = message[1]
                    if not child.up:
                        log.info("the worker process is up (pid %s)", child.process.pid)
                    child.up = True
                    self._up.notify_all()
                self.metrics.worker_up.set(1)
            elif kind == "status":
                self.board.update(message[1])
            elif kind == "log":
                record = message[1]
                logging.getLogger(record.name).handle(record)
            elif kind == "failed":
                with self._lock:
                    self._reason = f"the worker could not start: {message[1]}"


# -- the child ------------------------------------------------------------------------------


class _ToParent(logging.handlers.QueueHandler):
    def enqueue(self, record: logging.LogRecord) -> None:
        self.queue.put_nowait(("log", record))


def _child_main(
    factory: Factory,
    threads: int,
    inbox: Any,
    outbox: Any,
    scrape: multiprocessing.connection.Connection,
    level: int,
) -> None:
    # The receiver owns the lifecycle: a Ctrl-C or SIGTERM to the process group must not cut a
    # commit in half; the receiver drains and then tells the child to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints where its threads are
    # When the cores are busy, the scheduler serves the receiver first: an acknowledgement is
    # owed within milliseconds, a reconcile is not.
    os.nice(10)
    root = logging.getLogger()
    root.handlers[:] = [_ToParent(outbox)]
    root.setLevel(level)
    metrics = Metrics()
    try:
        worker = factory.build(metrics)
        catalog = worker.catalog()
    except Exception as exc:
        outbox.put(("failed", f"{type(exc).__name__}: {exc}"))
        log.error("the worker could not start: %s", exc, exc_info=exc)
        raise SystemExit(3) from None
    sent = [catalog]
    outbox.put(("catalog", catalog))
    sending = threading.Lock()

    def answer_scrapes() -> None:
        try:
            while True:
                seq = scrape.recv()
                scrape.send((seq, metrics.worker_exposition()))
        except (EOFError, OSError):
            return

    def work(item: Hashable) -> None:
        outcome: tuple[Any, ...] = ("done", item, None)
        try:
            outcome = ("done", item, run(worker, metrics, item))
        except BaseException as exc:  # one bad item must not stop the worker
            failed(metrics, item, exc)
            if retryable(item, exc):
                outcome = ("retry", item, getattr(exc, "delay", None))
        finally:
            try:
                now = worker.catalog()
            except Exception:  # keep routing with the last one
                now = sent[0]
            rows = statuses(worker)
            with sending:
                if now is not sent[0] and now != sent[0]:  # a deep comparison only when it may differ
                    sent[0] = now
                    outbox.put(("catalog", now))
                if rows:  # before "done": whoever waits on the item finds its rows there
                    outbox.put(("status", rows))
                outbox.put(outcome)

    threading.Thread(target=answer_scrapes, name="releasebot-scrape", daemon=True).start()
    parent = multiprocessing.parent_process()
    with ThreadPoolExecutor(threads, thread_name_prefix="releasebot-work") as pool:
        while True:
            try:
                item = inbox.get(timeout=1.0)
            except stdqueue.Empty:
                if parent is not None and not parent.is_alive():
                    os._exit(4)  # the receiver is gone: nobody will read what we do
                continue
            if item is None:
                break
            pool.submit(work, item)


def from_config(config: Mapping[str, str], metrics: Metrics) -> Any:
    """The production worker (:class:`bot.service.Service`), built in the child."""
    from bot.service import Service

    return Service(config, metrics)


def service_factory(config: Mapping[str, str]) -> Factory:
    return Factory("bot.workerprocess:from_config", (dict(config),))


__all__: Sequence[str] = ("Factory", "NotReady", "WorkerProcess", "service_factory")
