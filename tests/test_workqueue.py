"""The work queue: a burst for one key is one run after the last put; independent keys run at
the same time, the same key never twice at once."""

from __future__ import annotations

import threading
import time

from bot.workqueue import CoalescingQueue


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.most_at_once = 0
        self.overlap_per_key = 0
        self.runs: list[str] = []

    def __call__(self, key: str) -> None:
        with self.lock:
            self.running[key] = self.running.get(key, 0) + 1
            self.overlap_per_key = max(self.overlap_per_key, self.running[key])
            self.most_at_once = max(self.most_at_once, sum(self.running.values()))
        time.sleep(0.05)
        with self.lock:
            self.running[key] -= 1
            self.runs.append(key)


def test_independent_keys_run_in_parallel_and_one_key_one_at_a_time() -> None:
    record = Recorder()
    q = CoalescingQueue(record, slots=3)
    q.start()
    for _ in range(20):
        for key in ("a", "b", "c"):
            q.put(key)
            time.sleep(0.002)
    assert q.join_idle(10)
    q.stop()
    assert record.most_at_once == 3  # three keys at once ...
    assert record.overlap_per_key == 1  # ... never one key twice
    # Puts while a key waits coalesce; a put while it runs makes one more run after it.
    assert 3 <= len(record.runs) < 60 and q.coalesced == 60 - len(record.runs)
    assert record.runs[-3:] and set(record.runs[-3:]) == {"a", "b", "c"}


def test_a_key_put_while_it_runs_runs_again_after() -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def handler(key: str) -> None:
        runs.append(key)
        if len(runs) == 1:
            started.set()
            release.wait(5)

    q = CoalescingQueue(handler, slots=2)
    q.start()
    q.put("a")
    assert started.wait(5)
    q.put("a")  # the running pass may have read the state before this event
    q.put("a")
    assert q.depth() == 1 and q.coalesced == 1
    release.set()
    assert q.join_idle(5)
    q.stop()
    assert runs == ["a", "a"]


def test_stop_drains_and_a_requeued_key_goes_first() -> None:
    q = CoalescingQueue(None, slots=1)  # someone else takes the keys (the worker process)
    for key in ("a", "b"):
        q.put(key)
    assert q.take() == "a"
    q.requeue("a")  # its worker went away before finishing it
    assert q.take() == "a"
    q.done("a")
    q.stop(0)
    assert q.take() == "b"
    q.done("b")
    assert q.take() is None and q.runs == 2


def test_a_key_put_at_a_time_runs_then_and_the_earliest_time_wins() -> None:
    ran = threading.Event()
    seen: list[str] = []

    def handle(key):
        seen.append(key)
        ran.set()

    q = CoalescingQueue(handle)
    q.start()
    try:
        q.put_at("later", time.time() + 3600)
        q.put_at("soon", time.time() + 3600)
        q.put_at("soon", time.time() + 0.05)  # asked again, earlier: the earlier time wins
        q.put_at("soon", time.time() + 7200)  # a later time does not push it back
        assert ran.wait(10), "the scheduled key never ran"
        assert seen == ["soon"]
        assert list(q.scheduled()) == ["later"]
    finally:
        q.stop()
    assert q.scheduled() == {}  # a restart finds pending walks again in Git and the cluster


def test_a_handler_that_asks_to_look_again_is_put_at_that_time() -> None:
    runs: list[float] = []
    twice = threading.Event()

    def handle(key):
        runs.append(time.time())
        if len(runs) == 2:
            twice.set()
            return None
        return time.time() + 0.05

    q = CoalescingQueue(handle)
    q.start()
    try:
        q.put("walk")
        assert twice.wait(10), "the key was not run again at the time it asked for"
    finally:
        q.stop()


class Flaky:
    """A worker whose reconciles fail with ``errors`` in turn, then succeed; ``finished`` is set
    when the ``last`` call starts (the queue is busy until that call and its failure handling end)."""

    def __init__(self, errors: list[Exception], last: int) -> None:
        self.errors, self.calls, self.last = errors, 0, last
        self.finished = threading.Event()

    def reconcile(self, model: str) -> None:
        self.calls += 1
        if self.calls == self.last:
            self.finished.set()
        if self.errors:
            raise self.errors.pop(0)

    def look_again(self, model: str) -> float | None:
        return None

    def validate(self, check) -> None: ...

    def command(self, request) -> None: ...


def _local(worker: Flaky):
    from bot.work import LocalWork, Reconcile

    work = LocalWork(worker, lambda: None)  # type: ignore[arg-type,return-value]
    work.retries.first = 0.0  # back off by nothing: the test waits for the runs, not the clock
    work.start()
    work.queue.put(Reconcile("fraud"))
    return work


def test_serve_retries_a_retryable_failure_after_a_backoff() -> None:
    from bot.errors import ConflictError, TransientUpstreamError

    worker = Flaky([TransientUpstreamError("GitHub 502", delay=0.0), ConflictError("main moved")], last=3)
    work = _local(worker)
    try:
        assert worker.finished.wait(30)
        assert work.queue.join_idle(30)
    finally:
        work.stop()
    assert worker.calls == 3 and work.retries.pending() == 0


def test_serve_gives_up_on_a_retryable_failure_after_the_bound(caplog) -> None:
    from bot.errors import TransientUpstreamError

    worker = Flaky([TransientUpstreamError("GitHub 503") for _ in range(6)], last=6)
    work = _local(worker)
    try:
        assert worker.finished.wait(30)
        assert work.queue.join_idle(30)
    finally:
        work.stop()
    assert worker.calls == 6 and work.retries.pending() == 0  # the first try and five retries
    assert "reconcile fraud: giving up after 5 retries" in caplog.text


def test_serve_logs_a_permanent_failure_with_its_cause_and_does_not_retry(caplog) -> None:
    from bot.errors import PermanentUpstreamError

    try:
        raise OSError("disk full")
    except OSError as cause:
        error = PermanentUpstreamError("git commit-tree failed")
        error.__cause__ = cause
    worker = Flaky([error], last=1)
    work = _local(worker)
    try:
        assert worker.finished.wait(30)
        assert work.queue.join_idle(30)
    finally:
        work.stop()
    assert worker.calls == 1 and work.retries.pending() == 0
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "reconcile fraud failed: PermanentUpstreamError: git commit-tree failed" in record.getMessage()
    assert "caused by OSError: disk full" in record.getMessage() and record.exc_info is not None
