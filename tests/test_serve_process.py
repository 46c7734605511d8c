"""The worker in a process of its own, as ``releasebot serve`` runs it: a crashed worker process is
reported and started again, and its unfinished work is not lost; a real ``releasebot serve``
turns a signed MLflow alias webhook into a commit on the remote, exports the worker's metrics
through the receiver, and drains its queue on SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from starlette.testclient import TestClient

from bot.server import Receiver, Settings, create_app
from bot.workerprocess import Factory, WorkerProcess
from tests.mlflow_server import free_port, mlflow_delivery
from tests.test_release_loop import World, git
from tests.test_server import ALIAS_MOVED

GH_SECRET, ML_SECRET = "gh-test-secret", "mlflow-test-secret"


def signed_mlflow(payload: dict, delivery: str) -> tuple[bytes, dict[str, str]]:
    return mlflow_delivery(ML_SECRET, payload, delivery)


def eventually(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.rsplit(" ", 1)[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_crashed_worker_process_is_reported_restarted_and_its_work_done(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="releasebot")
    work = WorkerProcess(Factory("tests.workers:CrashingWorker", (str(tmp_path), "fraud-detector")), threads=2)
    receiver = Receiver(Settings(GH_SECRET, ML_SECRET, resync_seconds=3600), work)
    calls = tmp_path / "calls"
    with TestClient(create_app(receiver)) as client:
        eventually(lambda: client.get("/readyz").text == "ready")
        body, headers = signed_mlflow(ALIAS_MOVED, "m-1")
        assert client.post("/webhooks/mlflow", content=body, headers=headers).json()["queued"] == ["fraud-detector"]
        seen = set()

        def worked() -> bool:
            response = client.get("/readyz")
            seen.add((response.status_code, response.text))
            return calls.exists() and "fraud-detector" in calls.read_text()

        eventually(worked)
        assert any(code == 503 and "exited (code 17)" in text for code, text in seen), seen
        eventually(lambda: client.get("/readyz").text == "ready")
        scraped = client.get("/metrics").text
        # The receiver's families and the new worker process's, in one exposition.
        assert metric(scraped, "releasebot_worker_restarts_total") == 1
        assert metric(scraped, "releasebot_worker_up") == 1
        assert metric(scraped, "releasebot_reconcile_seconds_count") == 1
        process = work._child.process
    assert any(
        "exited (code 17)" in r.getMessage() and "reconcile fraud-detector" in r.getMessage() for r in caplog.records
    )
    assert not process.is_alive()


@pytest.fixture
def world(mlflow_url: str, tmp_path: Path, run_cli) -> World:
    return World(mlflow_url, tmp_path, run_cli)


def test_serve_commits_through_its_worker_process_and_drains_on_sigterm(world: World, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "RELEASEBOT_GITHUB_WEBHOOK_SECRET": GH_SECRET,
        "RELEASEBOT_MLFLOW_WEBHOOK_SECRET": ML_SECRET,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "releasebot"),
            *("serve", *world.loop, "--tracking-uri", world.url, "--port", str(port), "--resync", "3600"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    alias = {"entity": "model_version_alias", "action": "created", "data": {"name": world.name, "alias": "candidate"}}
    path = "dev/fraud/inferenceservice.yaml"
    try:

        def ready() -> bool:
            try:
                return requests.get(f"{url}/readyz", timeout=1).text == "ready"
            except requests.ConnectionError:
                return False

        eventually(ready, 60)
        v1 = world.version(0.9)
        world.alias("candidate", v1)
        body, headers = signed_mlflow({**alias, "data": {**alias["data"], "version": v1}}, "m-1")
        assert requests.post(f"{url}/webhooks/mlflow", data=body, headers=headers, timeout=5).json()["queued"] == [
            "fraud"
        ]
        eventually(lambda: f"releasebot.dev/version: '{v1}'" in world.show("main", path))

        def scrape() -> str | None:
            text = requests.get(f"{url}/metrics", timeout=5).text
            return text if metric(text, "releasebot_reconcile_seconds_count") else None

        scraped = eventually(scrape)
        assert metric(scraped, "releasebot_reconcile_seconds_count") == 1  # counted in the worker process
        assert metric(scraped, "releasebot_queue_depth") == 0 and metric(scraped, "releasebot_worker_up") == 1

        v2 = world.version(0.91)
        world.alias("candidate", v2)
        body, headers = signed_mlflow({**alias, "data": {**alias["data"], "version": v2}}, "m-2")
        assert requests.post(f"{url}/webhooks/mlflow", data=body, headers=headers, timeout=5).status_code == 202
        serve.send_signal(signal.SIGTERM)  # at once: the reconcile has hardly begun
        # uvicorn shuts down gracefully (the lifespan drains), then dies of the signal it caught.
        assert serve.wait(60) == -signal.SIGTERM
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert f"releasebot.dev/version: '{v2}'" in world.show("main", path), output  # drained before exiting
    pid = int(output.split("the worker process is up (pid ")[1].split(")")[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert git(world.remote, "log", "--format=%s", "main").count("\n") == 3  # init + two releases
