"""Benchmark (``make bench``): how fast ``releasebot serve`` answers webhooks, and how much work a
burst turns into. GitHub gives a webhook 10 seconds; the receiver should answer in milliseconds
whatever the worker is doing.

A real uvicorn server on 127.0.0.1 with the example catalog; the worker sleeps 200 ms per
reconcile (about what a no-op reconcile against a local repo costs). 2,000 signed MLflow alias
deliveries for the example's three registered models arrive back to back from 8 threads.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
import uvicorn

from bot.catalog import load_catalog
from bot.intake import sign_mlflow
from bot.server import Receiver, Settings, create_app
from bot.work import LocalWork
from tests.conftest import EXAMPLE_CATALOG
from tests.mlflow_server import free_port

DELIVERIES = 2000
SECRET = "bench-secret"


class SlowWorker:
    def __init__(self) -> None:
        self.reconciles = 0

    def reconcile(self, model: str) -> None:
        time.sleep(0.2)
        self.reconciles += 1

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
        body = json.dumps(
            {
                "entity": "model_version_alias",
                "action": "created",
                "data": {"name": models[i % len(models)], "alias": "champion", "version": str(i)},
            }
        ).encode()
        ts, delivery = str(int(time.time())), f"bench-{i}"
        headers = {
            "X-MLflow-Delivery-Id": delivery,
            "X-MLflow-Timestamp": ts,
            "X-MLflow-Signature": sign_mlflow(SECRET, delivery, ts, body),
            "Content-Type": "application/json",
        }
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
