"""Credentials of the drift and retrain jobs come from the catalog by reference only: a service
account per job (its token mounted only then), the MLflow token from a Secret key. The drift job
runs as Kubernetes starts it against a real MLflow behind a proxy on 127.0.0.1 that refuses any
request without the Secret's bearer token.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot import yamlio
from tests import kubeexec
from tests.conftest import copy_catalog
from tests.test_run_as_kubernetes import DOCKERFILE, Example

TOKEN = "mlflow-bearer-81c2"
CREDENTIALS = """\
  tokenSecret:
    name: mlflow-token
    key: token
"""
JOBS = """\
jobs:
  serviceAccountName: model-jobs

"""


def _with_credentials(text: str) -> str:
    text = text.replace("  storageUriMap:\n", CREDENTIALS + "  storageUriMap:\n", 1)
    text = text.replace("# Environments, in promotion order", JOBS + "# Environments, in promotion order", 1)
    # One model reads its windows with an account of its own.
    return text.replace("      action: retrain\n", "      action: retrain\n      serviceAccountName: fraud-drift\n", 1)


def _pod(path: Path) -> dict[str, Any]:
    manifest = yamlio.to_plain(yamlio.load(path.read_text(), path.name))
    return manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_jobs_run_as_the_named_account_with_its_token_and_read_the_mlflow_token_by_reference(
    tmp_path: Path, run_cli, example_text: str
) -> None:
    text = _with_credentials(example_text)
    repo = tmp_path / "envs"
    assert run_cli("init", repo, "--catalog", copy_catalog(tmp_path, text)).code == 0
    accounts = {}
    for path in sorted(repo.glob("*/*/*-cronjob.yaml")):
        pod = _pod(path)
        where = path.relative_to(repo).as_posix()
        accounts[where] = pod["serviceAccountName"]
        assert pod["automountServiceAccountToken"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        [container] = pod["containers"]
        env = {e["name"]: e for e in container.get("env", [])}
        if path.name.startswith("drift"):
            assert env["MLFLOW_TRACKING_TOKEN"] == {
                "name": "MLFLOW_TRACKING_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "mlflow-token", "key": "token"}},
            }
        else:
            assert "MLFLOW_TRACKING_TOKEN" not in env  # the retrain job does not talk to MLflow
    assert accounts["dev/fraud-detector/drift-check-cronjob.yaml"] == "fraud-drift"
    assert accounts["dev/fraud-detector/retrain-cronjob.yaml"] == "model-jobs"
    assert accounts["production/credit-risk/drift-check-cronjob.yaml"] == "model-jobs"
    assert run_cli("validate", repo).code == 0

    # The catalog drops them: render takes the account, the token and the mounted token away again.
    (repo / "releasebot.yaml").write_text(example_text)
    result = run_cli("render", repo)
    assert result.code == 0, result.err
    for path in sorted(repo.glob("*/*/*-cronjob.yaml")):
        pod = _pod(path)
        assert "serviceAccountName" not in pod and pod["automountServiceAccountToken"] is False, path
        assert "MLFLOW_TRACKING_TOKEN" not in {e["name"] for e in pod["containers"][0].get("env", [])}, path
    assert run_cli("render", repo, "--check").code == 0


class _BearerProxy:
    """Forwards to MLflow only requests carrying ``Authorization: Bearer <TOKEN>``; others get
    401 the way an authenticating gateway answers."""

    def __init__(self, upstream: str) -> None:
        self.refused = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    outer.refused += 1
                    self._reply(401, b'{"error_code": "UNAUTHENTICATED", "message": "bearer token required"}', {})
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
                request = urllib.request.Request(upstream + self.path, data=body, headers=headers, method=self.command)
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        self._reply(response.status, response.read(), response.headers)
                except urllib.error.HTTPError as exc:
                    self._reply(exc.code, exc.read(), exc.headers)

            def _reply(self, status: int, data: bytes, headers: Any) -> None:
                self.send_response(status)
                self.send_header("Content-Type", headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.mark.slow
def test_the_drift_job_reaches_an_authenticating_mlflow_with_the_secrets_token(
    tmp_path: Path, mlflow_url: str, run_cli
) -> None:
    example = Example(tmp_path, mlflow_url, run_cli)
    catalog = example.repo / "releasebot.yaml"
    catalog.write_text(catalog.read_text().replace("  storageUriMap:\n", CREDENTIALS + "  storageUriMap:\n", 1))
    assert run_cli("render", example.repo).code == 0
    path = example.repo / "staging/fraud-detector/drift-check-cronjob.yaml"
    [container] = kubeexec.pod_containers(yamlio.to_plain(yamlio.load(path.read_text(), path.name)))
    with _BearerProxy(mlflow_url) as proxy:
        runs = []
        for secret in ("not-the-token", TOKEN):
            cwd, tmp = tmp_path / f"cwd-{secret}", tmp_path / f"tmp-{secret}"
            cwd.mkdir()
            tmp.mkdir()
            runs.append(
                kubeexec.run(
                    DOCKERFILE,
                    container,
                    cwd,
                    tmp,
                    resolved={"MLFLOW_TRACKING_TOKEN": secret},  # what the kubelet reads from the Secret
                    overrides={"MLFLOW_TRACKING_URI": proxy},
                )
            )
    wrong, right = runs
    assert wrong.returncode != 0 and ("401" in wrong.stderr or "UNAUTHENTICATED" in wrong.stderr)
    assert right.returncode == 0, right.stderr[-3000:]
    assert "fraud-detector v1 in staging: drift" in right.stdout
    tags = example.client.get_model_version(example.names["fraud-detector"], "1").tags
    assert tags["releasebot.drift.staging.status"] == "drift"
