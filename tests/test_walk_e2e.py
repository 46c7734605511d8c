"""A release walk end to end: real MLflow, real git, a real Prometheus, the real Kubernetes client.

``releasebot reconcile`` runs as a user runs it, with ``--kubeconfig`` pointing at the fake API
server of :mod:`tests.kubeapi` (status objects in upstream's shapes, validated against the CRDs,
Argo CD's own health script deciding the Application's health for the InferenceService) and the
catalog's ``prometheus.url`` at the session's Prometheus, which scrapes scripted KServe request
metrics. The test plays Argo CD and KServe: after each commit it "deploys" main's head (the
Application's sync revision and history) and reports the InferenceService's split. It asserts the
exact sequence of commits on main, with nothing moving before the cluster says so.
"""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import yamlplain
from tests.conftest import seed_remote
from tests.kubeapi import application, kube_api, revision_name, serverless
from tests.prometheus import Traffic

SOAK = 10  # seconds: each step serves this long (in Argo CD's history) before it is judged

CATALOG = """version: 1
registry:
  trackingUri: {url}
repository:
  url: https://github.com/acme/envs.git
cluster:
  name: test
karpenter:
  nodeRole: NodeRole
prometheus:
  url: {prometheus}
environments:
  - name: production
    alias: champion
    namespace: {namespace}
    writeBack: commit
    canary:
      steps: [10, 50, 100]
      interval: {soak}s
      deadline: 5m
models:
  - name: fraud
    registeredModel: {registered}
    serving:
      format: mlflow
    resources:
      cpu: 250m
      memory: 512Mi
    replicas:
      min: 1
      max: 2
"""
ISVC = "production/fraud/inferenceservice.yaml"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


class Walk:
    def __init__(self, mlflow_url: str, prometheus, kube, tmp: Path, run_cli) -> None:
        from mlflow.tracking import MlflowClient

        self.tmp, self.run_cli, self.kube, self.prometheus = tmp, run_cli, kube, prometheus
        self.namespace = f"walk-{uuid.uuid4().hex[:8]}"
        self.registered = f"fraud-{uuid.uuid4().hex[:8]}"
        self.client = MlflowClient(mlflow_url, registry_uri=mlflow_url)
        self.client.create_registered_model(self.registered)
        text = CATALOG.format(
            url=mlflow_url,
            prometheus=prometheus.url,
            namespace=self.namespace,
            soak=SOAK,
            registered=self.registered,
        )
        self.remote = seed_remote(tmp, run_cli, text)
        self.loop = ["--repo", str(self.remote), "--workdir", str(tmp / "work"), "--tracking-uri", mlflow_url]
        self.history: list[tuple[str, datetime]] = []
        self.start = git(self.remote, "rev-parse", "main").strip()

    def version(self) -> str:
        run_id = self.client.create_run("0").info.run_id
        self.client.set_terminated(run_id)
        mv = self.client.create_model_version(self.registered, f"s3://models/fraud/{run_id[:8]}", run_id=run_id)
        return str(mv.version)

    def alias(self, version: str) -> None:
        self.client.set_registered_model_alias(self.registered, "champion", version)

    def reconcile(self):
        result = self.run_cli("reconcile", *self.loop, "--kubeconfig", self.kube.kubeconfig)
        assert result.code == 0, result.out + result.err
        return result

    def commits(self) -> list[str]:
        return git(self.remote, "log", "--first-parent", "--format=%s", f"{self.start}..main").splitlines()[::-1]

    def main_manifest(self) -> dict:
        return yamlplain.load(git(self.remote, "show", f"main:{ISVC}"), ISVC)

    def deploy(self, state: str, percent: int | None = None, revision: int = 2) -> None:
        """Argo CD syncs main's head (deployed one soak ago) and KServe reports ``state``."""
        head = git(self.remote, "rev-parse", "main").strip()
        self.history.append((head, datetime.now(UTC) - timedelta(seconds=SOAK + 1)))
        previous = revision - 1 if revision > 1 else None
        uri = self.main_manifest()["spec"]["predictor"]["model"]["storageUri"]
        self.kube.put(
            serverless(
                "fraud",
                self.namespace,
                state=state,
                revision=revision,
                previous=previous,
                percent=percent,
                storage_uri=uri,
            )
        )
        self.kube.put(
            application("releasebot-production", destination=self.namespace, revision=head, history=self.history)
        )


@pytest.fixture
def walk(mlflow_url: str, prometheus_server, tmp_path: Path, run_cli):
    with kube_api(tmp_path) as kube:
        yield Walk(mlflow_url, prometheus_server, kube, tmp_path, run_cli)


def serve_traffic(walk: Walk, canary: Traffic) -> None:
    """The stable and the canary revision serve for a whole soak before anything is judged."""
    exporter = walk.prometheus.exporter
    exporter.serve(walk.namespace, revision_name("fraud", 1), Traffic(rps=20, error_ratio=0.0, latency_ms=50))
    exporter.serve(walk.namespace, revision_name("fraud", 2), canary)
    selector = (
        f'revision_request_count{{namespace_name="{walk.namespace}",revision_name="{revision_name("fraud", 2)}"}}'
    )
    walk.prometheus.wait_for_window(selector, SOAK + 2)


def start(walk: Walk) -> tuple[str, str]:
    v1 = walk.version()
    walk.alias(v1)
    walk.reconcile()  # the first release: nothing to compare with, straight to 100%
    walk.deploy("promoted", revision=1)
    v2 = walk.version()
    walk.alias(v2)
    walk.reconcile()
    return v1, v2


def test_a_good_canary_walks_10_50_100_and_is_promoted(walk: Walk) -> None:
    serve_traffic(walk, Traffic(rps=20, error_ratio=0.0, latency_ms=55))
    v1, v2 = start(walk)
    assert walk.main_manifest()["spec"]["predictor"]["canaryTrafficPercent"] == 10
    # Merged, not deployed: the walk waits for Argo CD and says so.
    waiting = walk.reconcile()
    assert "syncing" in waiting.out and len(walk.commits()) == 2
    for percent in (10, 50, 100):
        walk.deploy("canary", percent=percent)
        out = walk.reconcile().out
        assert "analysis passed" in out
    walk.deploy("promoted")
    assert walk.reconcile().out.strip().endswith("Nothing to change.")
    assert walk.commits() == [
        f"Release fraud v{v1} to production",
        f"Release fraud v{v2} to production: canary 10% (1 of 4)",
        f"Step fraud v{v2} in production to 50% (2 of 4)",
        f"Step fraud v{v2} in production to 100% (3 of 4)",
        f"Promote fraud v{v2} in production to 100% (4 of 4)",
    ]
    predictor = walk.main_manifest()["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    # Each step's commit carries the analysis of the step before, judged on the real Prometheus.
    body = git(walk.remote, "log", "-1", "--format=%B", "main~1")
    assert "Releasebot-Step: 4/4" not in body and "Releasebot-Step: 3/4" in body


def test_a_bad_canary_at_10_percent_is_rolled_back_and_blocked(walk: Walk) -> None:
    serve_traffic(walk, Traffic(rps=20, error_ratio=0.3, latency_ms=55))
    v1, v2 = start(walk)
    walk.deploy("canary", percent=10)
    walk.reconcile()
    assert walk.commits()[-1] == f"Roll back fraud in production to v{v1}: canary v{v2} failed at 10%"
    message = git(walk.remote, "log", "-1", "--format=%B", "main")
    assert "analysis failed at 10%" in message and f"Version {v2} is blocked" in message
    manifest = walk.main_manifest()
    annotations = manifest["metadata"]["annotations"]
    assert annotations["releasebot.dev/version"] == v1
    assert annotations["releasebot.dev/blocked-versions"] == v2
    assert "canaryTrafficPercent" not in manifest["spec"]["predictor"]
    # Sticky: the alias still points at the bad version, and nothing proposes it again.
    walk.deploy("promoted", revision=3)
    again = walk.run_cli("reconcile", *walk.loop, "--kubeconfig", walk.kube.kubeconfig)
    assert "blocked in Git" in again.err and len(walk.commits()) == 3
