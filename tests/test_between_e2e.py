"""Between environments, end to end: sandbox → preprod → live in order, and a quality gate.

Real MLflow, real git, a real Prometheus scraping scripted KServe metrics, the real Kubernetes
client against the fake API (tests/kubeapi.py), and GitHub (for the gate's tracking issue)
through mocks checked against GitHub's REST description. Each reconcile is the CLI's.

The catalog: ``sandbox`` follows @candidate and releases at once; ``preprod`` follows @candidate
and walks a canary (50%, then promotion); ``live`` follows @champion, walks the same canary, and
has a quality gate (accuracy may regress by at most 0.01 against the version live serves).
"""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import yamlplain
from tests.conftest import seed_remote
from tests.github_api import GitHubMock, issue
from tests.kubeapi import application, kube_api, revision_name, serverless
from tests.prometheus import Traffic

SOAK = 10  # seconds of soak per step and after a promotion

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
  - name: sandbox
    alias: candidate
    namespace: {ns}-sandbox
    writeBack: commit
  - name: preprod
    alias: candidate
    namespace: {ns}-preprod
    writeBack: commit
    canary:
      steps: [50]
      interval: {soak}s
      deadline: 5m
  - name: live
    alias: champion
    namespace: {ns}-live
    writeBack: commit
    canary:
      steps: [50]
      interval: {soak}s
      deadline: 5m
    gate:
      metrics:
        - name: accuracy
          direction: higher
          maxRegression: 0.01
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
ENVS = ("sandbox", "preprod", "live")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


class Fleet:
    def __init__(self, mlflow_url: str, prometheus, kube, tmp: Path, run_cli) -> None:
        from mlflow.tracking import MlflowClient

        self.tmp, self.run_cli, self.kube, self.prometheus = tmp, run_cli, kube, prometheus
        self.ns = f"b{uuid.uuid4().hex[:8]}"
        self.registered = f"fraud-{uuid.uuid4().hex[:8]}"
        self.client = MlflowClient(mlflow_url, registry_uri=mlflow_url)
        self.client.create_registered_model(self.registered)
        text = CATALOG.format(
            url=mlflow_url, prometheus=prometheus.url, ns=self.ns, soak=SOAK, registered=self.registered
        )
        self.remote = seed_remote(tmp, run_cli, text)
        self.loop = ["--repo", str(self.remote), "--workdir", str(tmp / "work"), "--tracking-uri", mlflow_url]
        self.start = git(self.remote, "rev-parse", "main").strip()
        self.history: dict[str, list[tuple[str, datetime]]] = {e: [] for e in ENVS}
        self.revision = dict.fromkeys(ENVS, 0)

    def version(self, accuracy: float) -> str:
        run_id = self.client.create_run("0").info.run_id
        self.client.log_metric(run_id, "accuracy", accuracy)
        self.client.set_terminated(run_id)
        mv = self.client.create_model_version(self.registered, f"s3://models/fraud/{run_id[:8]}", run_id=run_id)
        return str(mv.version)

    def aliases(self, version: str) -> None:
        for alias in ("candidate", "champion"):
            self.client.set_registered_model_alias(self.registered, alias, version)

    def reconcile(self, *extra: str) -> str:
        result = self.run_cli("reconcile", *self.loop, "--kubeconfig", self.kube.kubeconfig, *extra)
        assert result.code == 0, result.out + result.err
        return result.out + result.err

    def commits(self) -> list[str]:
        return git(self.remote, "log", "--first-parent", "--format=%s", f"{self.start}..main").splitlines()[::-1]

    def manifest(self, env: str) -> dict:
        path = f"{env}/fraud/inferenceservice.yaml"
        return yamlplain.load(git(self.remote, "show", f"main:{path}"), path)

    def deploy(self, env: str) -> None:
        """Argo CD syncs main's head to ``env`` (deployed one soak ago) and KServe reports the
        split main asks for: a new revision when the version changed."""
        head = git(self.remote, "rev-parse", "main").strip()
        self.history[env].append((head, datetime.now(UTC) - timedelta(seconds=SOAK + 1)))
        predictor = self.manifest(env)["spec"]["predictor"]
        percent = predictor.get("canaryTrafficPercent")
        uri = predictor["model"]["storageUri"]
        if percent is not None or self.revision[env] == 0:
            self.revision[env] += 1
        state = "canary" if percent is not None else "promoted"
        r = self.revision[env]
        self.kube.put(
            serverless(
                "fraud", f"{self.ns}-{env}", state=state, revision=r, previous=r - 1 or None, percent=percent,
                storage_uri=uri,
            )
        )  # fmt: skip
        self.kube.put(
            application(f"releasebot-{env}", destination=f"{self.ns}-{env}", revision=head, history=self.history[env])
        )

    def serve_traffic(self, env: str) -> None:
        """The stable revision of ``env`` and the canary it is about to get serve well for a whole
        soak before the canary is deployed (Argo CD's history dates it one soak back)."""
        exporter, ns, r = self.prometheus.exporter, f"{self.ns}-{env}", self.revision[env] + 1
        exporter.serve(ns, revision_name("fraud", r - 1), Traffic(rps=20, error_ratio=0.0, latency_ms=50))
        exporter.serve(ns, revision_name("fraud", r), Traffic(rps=20, error_ratio=0.0, latency_ms=52))
        selector = f'revision_request_count{{namespace_name="{ns}",revision_name="{revision_name("fraud", r)}"}}'
        self.prometheus.wait_for_window(selector, SOAK + 2)

    def tag(self, version: str, name: str) -> str | None:
        return self.client.get_model_version(self.registered, version).tags.get(name)


@pytest.fixture
def fleet(mlflow_url: str, prometheus_server, tmp_path: Path, run_cli):
    with kube_api(tmp_path) as kube:
        yield Fleet(mlflow_url, prometheus_server, kube, tmp_path, run_cli)


def walk(fleet: Fleet, env: str) -> None:
    """The canary step on main deploys, soaks and passes; the promotion lands and deploys."""
    fleet.serve_traffic(env)
    fleet.deploy(env)
    fleet.reconcile()
    assert fleet.commits()[-1].startswith("Promote fraud v"), git(fleet.remote, "log", "-1", "--format=%B", "main")
    fleet.deploy(env)


def test_versions_walk_sandbox_preprod_live_in_order_and_a_regression_stops_at_the_gate(fleet: Fleet) -> None:
    v1 = fleet.version(0.93)
    fleet.aliases(v1)
    # The first release: sandbox at once; preprod and live each wait for the one before.
    fleet.reconcile()
    assert fleet.commits() == [f"Release fraud v{v1} to sandbox"]
    fleet.reconcile()
    assert fleet.commits()[-1] == f"Release fraud v{v1} to preprod"
    out = fleet.reconcile()
    assert f"live waits for v{v1} to settle in preprod: Argo CD Application for preprod not found" in out
    fleet.deploy("preprod")
    fleet.reconcile()
    assert fleet.commits()[-1] == f"Release fraud v{v1} to live"
    fleet.deploy("live")

    # v2 is as good: it walks sandbox → preprod → live, live's walk only after preprod's promotion.
    v2 = fleet.version(0.935)
    fleet.aliases(v2)
    fleet.reconcile()  # sandbox; each pass plans from main as it was, so preprod follows next pass
    fleet.reconcile()
    assert fleet.commits()[-2:] == [
        f"Release fraud v{v2} to sandbox",
        f"Release fraud v{v2} to preprod: canary 50% (1 of 2)",
    ]
    out = fleet.reconcile("--env", "live")
    assert f"live waits for v{v2} to finish its walk in preprod (step 1 of 2, 50%)" in out
    walk(fleet, "preprod")
    fleet.reconcile()
    assert fleet.commits()[-1] == f"Release fraud v{v2} to live: canary 50% (1 of 2)"
    assert fleet.tag(v2, "releasebot.quality.live") == "passed"
    body = git(fleet.remote, "log", "-1", "--format=%B", "main")
    assert "Releasebot-Step: 1/2" in body
    walk(fleet, "live")
    subjects = fleet.commits()
    order = [s for s in subjects if f"v{v2}" in s]
    assert order == [
        f"Release fraud v{v2} to sandbox",
        f"Release fraud v{v2} to preprod: canary 50% (1 of 2)",
        f"Promote fraud v{v2} in preprod to 100% (2 of 2)",
        f"Release fraud v{v2} to live: canary 50% (1 of 2)",
        f"Promote fraud v{v2} in live to 100% (2 of 2)",
    ]

    # v3 regresses accuracy by 0.024: it walks to preprod, and live's gate stops it.
    v3 = fleet.version(0.911)
    fleet.aliases(v3)
    fleet.reconcile()
    fleet.reconcile()
    walk(fleet, "preprod")
    before = fleet.commits()
    with GitHubMock() as gh:
        gh.passthru("http://127.0.0.1")  # MLflow, Prometheus and the Kubernetes API
        repo = {"owner": "acme", "repo": "envs"}
        raised: list = []
        gh.add("issues/list-for-repo", repo, 200, [], query={"state": "all", "labels": "releasebot"})
        created = issue(7, "Quality gate", "body")
        gh.add("issues/create", repo, 201, created, check_request=lambda h, b: raised.append(b))
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("RELEASEBOT_GITHUB_TOKEN", "test-token")
            out = fleet.reconcile("--env", "live")
    assert fleet.commits() == before  # nothing for live: no commit, no branch
    assert "releasebot/live/fraud/release" not in git(fleet.remote, "branch", "--list")
    assert f"v{v3} failed the quality gate of live: accuracy 0.911 is not ≥ baseline - 0.01" in out
    (sent,) = raised
    assert sent["title"] == f"Quality gate: fraud v{v3} is not released to live"
    assert "| accuracy | 0.911 | 0.935 | ≥ baseline - 0.01 | ❌ |" in sent["body"]
    assert "<!-- releasebot:quality=live/fraud -->" in sent["body"]
    assert fleet.tag(v3, "releasebot.quality.live").startswith("failed: accuracy 0.911 is not ≥ baseline - 0.01")
    assert fleet.manifest("live")["metadata"]["annotations"]["releasebot.dev/version"] == v2
