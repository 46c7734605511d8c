"""Benchmark (``make bench``): how fast ``releasebot serve`` answers webhooks, and how much work a
burst turns into. GitHub gives a webhook 10 seconds; the receiver should answer in milliseconds
whatever the worker is doing.

A real uvicorn server on 127.0.0.1 with the example catalog.

* Burst: the worker sleeps 200 ms per reconcile (about what a no-op reconcile against a local
  repo costs). 2,000 signed MLflow alias deliveries for the example's three registered models
  arrive back to back from 8 threads.
* Steady load while the worker computes: 200 signed deliveries per second for 10 s, each sent at
  its scheduled time, while every reconcile parses YAML for 1 s (real CPU work, not a sleep).
  Once with the worker on a thread of the receiver's process (as before the split), once with
  the worker process ``serve`` runs; each next to the same load with a worker that does
  nothing (the floor).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
import uvicorn

from bot import yamlio
from bot.catalog import load_catalog
from bot.metrics import Metrics
from bot.server import Receiver, Settings, create_app
from bot.work import LocalWork
from bot.workerprocess import Factory, WorkerProcess
from tests.conftest import EXAMPLE_CATALOG
from tests.mlflow_server import free_port, mlflow_delivery

DELIVERIES = 2000
SECRET = "bench-secret"


class SlowWorker:
    def __init__(self) -> None:
        self.reconciles = 0

    def reconcile(self, model: str) -> None:
        time.sleep(0.2)
        self.reconciles += 1

    def look_again(self, model: str) -> float | None:
        return None

    def validate(self, check) -> None:
        pass

    def command(self, request) -> None:
        pass


def bench_webhook_ack_latency_and_coalescing() -> None:
    cat = load_catalog(EXAMPLE_CATALOG)
    worker = SlowWorker()
    receiver = Receiver(Settings("gh", SECRET, resync_seconds=3600), LocalWork(worker, lambda: cat))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(receiver), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    models = [m.registered_model for m in cat.models]
    session = requests.Session()

    def deliver(i: int) -> float:
        payload = {
            "entity": "model_version_alias",
            "action": "created",
            "data": {"name": models[i % len(models)], "alias": "champion", "version": str(i)},
        }
        body, headers = mlflow_delivery(SECRET, payload, f"bench-{i}")
        start = time.perf_counter()
        response = session.post(f"http://127.0.0.1:{port}/webhooks/mlflow", data=body, headers=headers, timeout=10)
        assert response.status_code == 202
        return time.perf_counter() - start

    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            latencies = sorted(pool.map(deliver, range(DELIVERIES)))
        wall = time.perf_counter() - started
        assert receiver.queue.join_idle(60)
    finally:
        server.should_exit = True
        thread.join(20)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(
        f"\n{DELIVERIES} MLflow deliveries in {wall:.2f} s ({DELIVERIES / wall:.0f}/s): ack p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, max {latencies[-1] * 1000:.1f} ms; {worker.reconciles} reconciles "
        f"({receiver.queue.coalesced} coalesced)"
    )


RATE, SECONDS, WORK_SECONDS = 200, 10.0, 1.0
MANIFEST = (EXAMPLE_CATALOG.parent / "production/fraud-detector/inferenceservice.yaml").read_text()


class YamlWorker:
    """Each reconcile parses a KServe manifest over and over for ``seconds`` of CPU time; with
    ``seconds`` 0 it does nothing. Built in the worker process from its name, or in this one."""

    def __init__(self, seconds: float, metrics: Metrics) -> None:
        self.seconds = seconds
        self.cat = load_catalog(EXAMPLE_CATALOG)

    def catalog(self):
        return self.cat

    def reconcile(self, model: str) -> None:
        end = time.thread_time() + self.seconds
        while time.thread_time() < end:
            yamlio.load(MANIFEST, "inferenceservice.yaml")

    def look_again(self, model: str) -> float | None:
        return None

    def validate(self, check) -> None:
        pass

    def command(self, request) -> None:
        pass


def _steady_load(work) -> tuple[list[float], int]:
    """200 deliveries a second for 10 s against a receiver over ``work``; ack latencies (s)."""
    cat = load_catalog(EXAMPLE_CATALOG)
    receiver = Receiver(Settings("gh", SECRET, resync_seconds=3600), work)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(receiver), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    models = [m.registered_model for m in cat.models]
    latencies: list[float] = []
    late = [0]
    counter = iter(range(int(RATE * SECONDS)))
    lock = threading.Lock()
    try:
        while not server.started:
            time.sleep(0.05)
        while True:  # the worker process needs a moment to start and send its catalog
            try:
                work.catalog()
                break
            except Exception:
                time.sleep(0.05)
        start = time.perf_counter() + 0.2

        def client() -> None:
            session = requests.Session()
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                at = start + i / RATE
                if (wait := at - time.perf_counter()) > 0:
                    time.sleep(wait)
                elif wait < -0.05:
                    late[0] += 1
                payload = {
                    "entity": "model_version_alias",
                    "action": "created",
                    "data": {"name": models[i % 3], "alias": "champion", "version": str(i)},
                }
                body, headers = mlflow_delivery(SECRET, payload, f"steady-{i}")
                sent = time.perf_counter()
                response = session.post(
                    f"http://127.0.0.1:{port}/webhooks/mlflow", data=body, headers=headers, timeout=10
                )
                assert response.status_code == 202
                with lock:
                    latencies.append(time.perf_counter() - sent)

        clients = [threading.Thread(target=client) for _ in range(8)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
    finally:
        server.should_exit = True
        thread.join(60)
    return sorted(latencies), late[0]


def _figures(latencies: list[float]) -> str:
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    return f"p50 {p50:5.1f} ms, p99 {p99:5.1f} ms, max {latencies[-1] * 1000:6.1f} ms"


def bench_webhook_ack_while_the_worker_computes() -> None:
    print(
        f"\nack latency at {RATE}/s for {SECONDS:.0f} s; busy: every reconcile parses YAML for "
        f"{WORK_SECONDS:.0f} s of CPU ({os.cpu_count()} cores)"
    )
    for label, make in (
        (
            "worker on a thread of the receiver",
            lambda s: LocalWork(w := YamlWorker(s, Metrics()), w.catalog),
        ),
        ("worker process (serve)", lambda s: WorkerProcess(Factory("tests.benchmarks.bench_serve:YamlWorker", (s,)))),
    ):
        idle_work, busy_work = make(0.0), make(WORK_SECONDS)
        idle, idle_late = _steady_load(idle_work)
        busy, busy_late = _steady_load(busy_work)
        print(f"  {label:36s} idle (floor): {_figures(idle)}; {idle_late} sent late")
        print(f"  {label:36s} busy:         {_figures(busy)}; {busy_late} sent late; {busy_work.queue.runs} reconciles")
