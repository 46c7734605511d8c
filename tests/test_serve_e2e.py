"""A real MLflow server sends a real alias webhook to the receiver on 127.0.0.1; the PR request follows."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn
from cryptography.fernet import Fernet

from bot.server import create_app
from bot.service import build_receiver
from tests.github_api import GitHubMock, example, pull_request
from tests.mlflow_server import free_port, mlflow_server
from tests.test_release_loop import World

ML_SECRET = "mlflow-e2e-secret"


def test_an_mlflow_alias_webhook_opens_the_release_pull_request(tmp_path: Path, run_cli) -> None:
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
        config = {
            "RELEASEBOT_REPO": str(world.remote),
            "RELEASEBOT_WORKDIR": str(tmp_path / "served"),
            "MLFLOW_TRACKING_URI": url,
            "RELEASEBOT_GITHUB_WEBHOOK_SECRET": "gh-secret",
            "RELEASEBOT_MLFLOW_WEBHOOK_SECRET": ML_SECRET,
            "RELEASEBOT_GITHUB_TOKEN": "ghs_test",
            "RELEASEBOT_RESYNC_SECONDS": "3600",
        }
        receiver, service = build_receiver(config)
        done = service.done
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(receiver), host="127.0.0.1", port=port, log_level="warning"))
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
            finally:
                server.should_exit = True
                thread.join(20)
        assert any("opened pull request #4" in line for line in done), done
        assert gh.checked == 3
        assert f"releasebot.dev/version: '{version}'" in world.show(
            f"refs/heads/{branch}", "staging/fraud/inferenceservice.yaml"
        )
