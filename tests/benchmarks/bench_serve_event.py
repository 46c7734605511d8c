"""Benchmark (``make bench``): one MLflow alias webhook through ``releasebot serve`` to a commit on
the remote, at N models (issue 10: releasebot's own share beyond the MLflow and git floors).

Per N, on the fleet of :mod:`tests.benchmarks.bench_fleet` (bulk-registered MLflow store, real
``mlflow server``, settled environments repo, bare remote): a real ``releasebot serve`` process is
started and warmed by its first pass. Then, five times, one model's ``@candidate`` moves and the
webhook MLflow would send for it (the same bytes, signed with the same scheme) is posted; the
figure is the time from the post to the new commit on the remote. Floors, measured in this
process beside it: the MLflow reads a scoped pass needs (the registered model, the versions it
names), and plain git (a fetch, a one-file commit, a push). The share is figure - floors.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
import uuid
from pathlib import Path

import requests

from tests.benchmarks.bench_fleet import BIN, GIT_ID, SIZES, dev_version, flip, git, register_fleet, settle
from tests.benchmarks.fleet import fleet_catalog, model_name
from tests.mlflow_server import free_port, mlflow_delivery, mlflow_server

SECRET = "bench-mlflow-secret"
EVENTS = 5


def _post(url: str, name: str, version: str) -> None:
    payload = {"entity": "model_version_alias", "action": "created", "data": {"name": name, "alias": "candidate"}}
    payload["data"]["version"] = version
    body, headers = mlflow_delivery(SECRET, payload, uuid.uuid4().hex)
    assert requests.post(f"{url}/webhooks/mlflow", data=body, headers=headers, timeout=10).status_code == 202


def _wait(check, timeout: float = 120.0, step: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)


def bench_serve_event(tmp_path: Path) -> None:
    rows = []
    for n in SIZES:
        rows.append(_measure(tmp_path / f"n{n}", n))
    print("\n  serve: MLflow alias webhook -> commit on the remote (median of 5)")
    print(f"  {'N':>6} {'webhook->commit':>16} {'MLflow floor':>13} {'git floor':>10} {'releasebot share':>17}")
    for n, total, mlflow_floor, git_floor in rows:
        share = total - mlflow_floor - git_floor
        print(
            f"  {n:>6} {total * 1000:>13.0f} ms {mlflow_floor * 1000:>10.0f} ms {git_floor * 1000:>7.0f} ms "
            f"{share * 1000:>14.0f} ms"
        )
    if len(rows) > 1:
        print(
            f"  target: releasebot's share <= 300 ms at N=1000; N={rows[-1][0]} vs N={rows[0][0]}: "
            f"{rows[-1][1] / rows[0][1]:.2f}x the webhook->commit time"
        )


def _measure(tmp: Path, n: int) -> tuple[int, float, float, float]:
    from mlflow.tracking import MlflowClient

    tmp.mkdir(parents=True)
    run_ids = register_fleet(tmp, n)
    with mlflow_server(tmp) as mlflow_url:
        catalog = tmp / "releasebot.yaml"
        catalog.write_text(fleet_catalog(n, mlflow_url))
        seed, remote = tmp / "seed", tmp / "remote.git"
        subprocess.run(
            [str(BIN / "releasebot"), "init", str(seed), "--catalog", str(catalog)], check=True, capture_output=True
        )
        settle(seed, n, run_ids)
        subprocess.run(["git", "clone", "--quiet", "--bare", str(seed), str(remote)], check=True)
        client = MlflowClient(mlflow_url, registry_uri=mlflow_url)
        port = free_port()
        env = {
            **os.environ,
            "RELEASEBOT_GITHUB_WEBHOOK_SECRET": "unused",
            "RELEASEBOT_MLFLOW_WEBHOOK_SECRET": SECRET,
            "MLFLOW_TRACKING_URI": mlflow_url,
        }
        argv = [
            str(BIN / "releasebot"),
            "serve",
            "--repo",
            str(remote),
            "--workdir",
            str(tmp / "work"),
            "--port",
            str(port),
            "--resync",
            "3600",
        ]
        log = (tmp / "serve.log").open("wb")
        serve = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(lambda: _ready(url))
            # Warm-up: one event, as a long-running serve has seen many before.
            totals = [_event(client, url, remote, model_name(n - 1)) for _ in range(1 + EVENTS)][1:]
        finally:
            serve.terminate()
            serve.wait(60)
        mlflow_floor = statistics.median(_mlflow_floor(client, model_name(n - 1)) for _ in range(EVENTS))
        git_floor = statistics.median(_git_floor(tmp, remote) for _ in range(EVENTS))
    return n, statistics.median(totals), mlflow_floor, git_floor


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=1).text == "ready"
    except requests.ConnectionError:
        return False


def _event(client, url: str, remote: Path, name: str) -> float:
    version = flip(dev_version(remote, name))
    client.set_registered_model_alias(name, "candidate", version)
    before = git(remote, "rev-parse", "main")
    start = time.perf_counter()
    _post(url, name, version)
    _wait(lambda: git(remote, "rev-parse", "main") != before)
    elapsed = time.perf_counter() - start
    assert dev_version(remote, name) == version
    return elapsed


def _mlflow_floor(client, name: str) -> float:
    start = time.perf_counter()
    client.get_registered_model(name)
    for v in ("1", "2"):
        client.get_model_version(name, v)
    return time.perf_counter() - start


def _git_floor(tmp: Path, remote: Path) -> float:
    clone = tmp / "floor"
    if not clone.exists():
        subprocess.run(["git", "clone", "--quiet", str(remote), str(clone)], check=True)
    start = time.perf_counter()
    git(clone, "fetch", "--quiet", "origin")
    git(clone, "reset", "--quiet", "--hard", "origin/main")
    with (clone / "dev" / model_name(0) / "inferenceservice.yaml").open("a") as f:
        f.write(f"# {uuid.uuid4().hex}\n")
    git(clone, *GIT_ID, "commit", "--quiet", "-am", "floor")
    git(clone, "push", "--quiet", "origin", "HEAD:main")
    return time.perf_counter() - start
