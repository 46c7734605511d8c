"""A real MLflow server sends a real alias webhook to the receiver on 127.0.0.1; the PR request follows."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from bot.cli import build_parser, build_server
from tests.github_api import GitHubMock, example, pull_request
from tests.mlflow_server import free_port, mlflow_server
from tests.test_release_loop import World

ML_SECRET = "mlflow-e2e-secret"


def test_an_mlflow_alias_webhook_opens_the_release_pull_request(tmp_path: Path, run_cli, monkeypatch) -> None:
    webhook_env = {
        # Loopback delivery must be allowed explicitly; one Fernet key for every worker.
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    (tmp_path / "mlflow").mkdir()
    with mlflow_server(tmp_path / "mlflow", webhook_env) as url:
        world = World(url, tmp_path, run_cli, staging_mode="pull-request")
        port = free_port()
        args = build_parser().parse_args(
            [
                *("serve", "--repo", str(world.remote), "--workdir", str(tmp_path / "served"), "--tracking-uri", url),
                *("--host", "127.0.0.1", "--port", str(port), "--resync", "3600"),
            ]
        )
        monkeypatch.setenv("RELEASEBOT_GITHUB_WEBHOOK_SECRET", "gh-secret")  # as an operator would
        monkeypatch.setenv("RELEASEBOT_MLFLOW_WEBHOOK_SECRET", ML_SECRET)
        monkeypatch.setenv("RELEASEBOT_GITHUB_TOKEN", "ghs_test")
        # What `releasebot serve` runs, with the worker on a thread of this process: the GitHub
        # mock intercepts this process's HTTP only. test_serve_process runs the worker process.
        server, work = build_server(args, in_process=True)
        done = work.worker.done
        thread = threading.Thread(target=server.run, daemon=True)
        with GitHubMock() as gh:
            gh.passthru(url)
            gh.passthru(f"http://127.0.0.1:{port}")
            branch = "releasebot/staging/fraud/release"
            gh.add(
                "pulls/list",
                {"owner": "acme", "repo": "envs"},
                200,
                [],
                query={"state": "open", "head": f"acme:{branch}", "base": "main"},
            )
            gh.add("pulls/create", {"owner": "acme", "repo": "envs"}, 201, pull_request(4, branch, "t", "b"))
            gh.add(
                "issues/add-labels", {"owner": "acme", "repo": "envs", "issue_number": 4}, 200, example("label-items")
            )
            thread.start()
            try:
                deadline = time.monotonic() + 10
                while not server.started and time.monotonic() < deadline:
                    time.sleep(0.05)
                world.client.create_webhook(
                    "releasebot",
                    f"http://127.0.0.1:{port}/webhooks/mlflow",
                    ["model_version_alias.created"],
                    secret=ML_SECRET,
                )
                time.sleep(1.5)  # the server caches its webhook list for MLFLOW_WEBHOOK_CACHE_TTL
                version = world.version(0.93)
                world.alias("champion", version)
                deadline = time.monotonic() + 60
                while not done and time.monotonic() < deadline:
                    time.sleep(0.1)
                scraped = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            finally:
                server.should_exit = True
                thread.join(20)
        assert any("opened pull request #4" in line for line in done), done
        assert gh.checked == 3
        assert f"releasebot.dev/version: '{version}'" in world.show(
            f"refs/heads/{branch}", "staging/fraud/inferenceservice.yaml"
        )
    metrics = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in scraped.splitlines() if line[:1] != "#"
    }
    assert metrics['releasebot_events_total{outcome="queued",source="mlflow",type="model_version_alias.created"}'] == 1
    assert metrics['releasebot_github_calls_total{outcome="ok"}'] == 3
    assert metrics['releasebot_pull_requests_total{action="opened"}'] == 1
    assert metrics["releasebot_github_rate_limit_remaining"] == 4997  # from the last answer's header
    assert metrics["releasebot_reconcile_seconds_count"] >= 1
