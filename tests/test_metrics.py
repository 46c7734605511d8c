"""releasebot's own metrics, read as Prometheus reads them: the text exposition of the real
``prometheus_client`` registries, after real passes (a real MLflow server, a real git remote) and
real deliveries to the receiver."""

from __future__ import annotations

import platform
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from bot import __version__
from bot.catalog import load_catalog
from bot.metrics import KeyState, Metrics, WalkState
from bot.server import Receiver, Settings, create_app
from bot.service import Service
from bot.work import LocalWork
from tests.conftest import EXAMPLE_CATALOG, seed_remote


def samples(text: bytes | str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    raw = text.decode() if isinstance(text, bytes) else text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(raw)
        for s in family.samples
    }


def value(text: bytes | str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def series(text: bytes | str, name: str) -> set[frozenset[tuple[str, str]]]:
    return {labels for n, labels in samples(text) if n == name}


KEY = {"environment": "production", "model": "fraud"}
WALK_FAMILIES = (
    "releasebot_walk_step",
    "releasebot_walk_canary_percent",
    "releasebot_walk_step_started_timestamp_seconds",
    "releasebot_walk_step_deadline_seconds",
)


def test_a_pass_sets_each_keys_series_and_a_failed_key_keeps_the_last_good_ones() -> None:
    m = Metrics()
    walk = WalkState(step=2, percent=50, started=1_700_000_000.0, deadline=900.0)
    m.record_pass("fraud", [KeyState("production", "fraud", True, drift=True, walk=walk)], at=1_800_000_000.0)
    text = m.worker_exposition()
    assert value(text, "releasebot_last_successful_reconcile_timestamp_seconds", **KEY) == 1_800_000_000.0
    assert value(text, "releasebot_drift_detected", **KEY) == 1
    assert value(text, "releasebot_walk_step", **KEY) == 2
    assert value(text, "releasebot_walk_canary_percent", **KEY) == 50
    assert value(text, "releasebot_walk_step_started_timestamp_seconds", **KEY) == 1_700_000_000.0
    assert value(text, "releasebot_walk_step_deadline_seconds", **KEY) == 900

    m.record_pass("fraud", [KeyState("production", "fraud", False)], at=1_800_000_999.0)
    assert m.worker_exposition() == text  # a failed pass says nothing new about the key

    m.record_pass("fraud", [KeyState("production", "fraud", True, drift=False)], at=1_800_001_000.0)
    text = m.worker_exposition()
    assert value(text, "releasebot_last_successful_reconcile_timestamp_seconds", **KEY) == 1_800_001_000.0
    assert value(text, "releasebot_drift_detected", **KEY) == 0
    for family in WALK_FAMILIES:  # the walk ended: its series are gone, not zero
        assert series(text, family) == set(), family


def test_a_walk_without_its_landing_time_has_no_age_and_no_drift_verdict_has_no_series() -> None:
    m = Metrics()
    walk = WalkState(step=1, percent=10, started=None, deadline=900.0)
    m.record_pass(None, [KeyState("production", "fraud", True, drift=None, walk=walk)], at=1.0)
    text = m.worker_exposition()
    assert value(text, "releasebot_walk_step", **KEY) == 1
    assert series(text, "releasebot_walk_step_started_timestamp_seconds") == set()
    assert series(text, "releasebot_drift_detected") == set()


def test_keys_that_left_the_catalog_lose_their_series_and_other_models_keep_theirs() -> None:
    m = Metrics()
    keys = [KeyState(e, mdl, True, drift=True) for e in ("dev", "production") for mdl in ("fraud", "credit")]
    m.record_pass(None, keys, at=5.0)
    m.record_pass("fraud", [KeyState("production", "fraud", True, drift=True)], at=6.0)  # dev left fraud
    text = m.worker_exposition()
    left = {frozenset({"environment": e, "model": mdl}.items()) for e, mdl in [("production", "fraud")]}
    others = {frozenset({"environment": e, "model": "credit"}.items()) for e in ("dev", "production")}
    assert series(text, "releasebot_drift_detected") == left | others
    assert series(text, "releasebot_last_successful_reconcile_timestamp_seconds") == left | others
    m.record_pass(None, [], at=7.0)  # a full pass over an empty catalog
    assert series(m.worker_exposition(), "releasebot_drift_detected") == set()


class Idle:
    def reconcile(self, model: str) -> None:
        pass

    def look_again(self, model: str) -> float | None:
        return None

    def validate(self, check) -> None:
        pass

    def command(self, request) -> None:
        pass


def test_the_receiver_exposes_its_build_its_resync_and_refused_signatures_from_zero() -> None:
    cat = load_catalog(EXAMPLE_CATALOG)
    receiver = Receiver(Settings("gh", "ml", resync_seconds=120), LocalWork(Idle(), lambda: cat))
    with TestClient(create_app(receiver)) as client:
        before = client.get("/metrics").text
        build = {"version": __version__, "python": platform.python_version()}
        assert value(before, "releasebot_build_info", **build) == 1
        assert value(before, "releasebot_resync_interval_seconds") == 120
        refused = {"source": "github", "type": "pull_request", "outcome": "unauthorized"}
        # Present at 0 before the first refusal: increase() over a series born at 1 would miss it.
        assert value(before, "releasebot_events_total", **refused) == 0
        assert value(before, "releasebot_events_total", source="mlflow", type="unknown", outcome="unauthorized") == 0
        response = client.post(
            "/webhooks/github",
            content=b"{}",
            headers={"X-GitHub-Event": "pull_request", "X-Hub-Signature-256": "sha256=" + "0" * 64},
        )
        assert response.status_code == 401
        assert value(client.get("/metrics").text, "releasebot_events_total", **refused) == 1


# --- real passes ------------------------------------------------------------------------------

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
  url: http://prometheus.invalid:9090  # never asked: without the cluster the walk waits before any analysis
environments:
  - name: production
    alias: champion
    namespace: models-prod
    writeBack: commit
    canary:
      steps: [10, 50, 100]
      interval: 10m
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
    drift:
      schedule: "0 * * * *"
      current:
        uri: s3://features/fraud/latest.parquet
      action: none
  - name: ghost
    registeredModel: ghost-{registered}
    serving:
      format: mlflow
    resources:
      cpu: 250m
      memory: 512Mi
    replicas:
      min: 1
      max: 2
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def fleet(mlflow_url: str, tmp_path: Path, run_cli):
    from mlflow.tracking import MlflowClient

    registered = f"fraud-{uuid.uuid4().hex[:8]}"  # "ghost-..." is never registered: its keys fail
    client = MlflowClient(mlflow_url, registry_uri=mlflow_url)
    client.create_registered_model(registered)
    remote = seed_remote(tmp_path, run_cli, CATALOG.format(url=mlflow_url, registered=registered))
    config = {
        "RELEASEBOT_REPO": str(remote),
        "RELEASEBOT_WORKDIR": str(tmp_path / "served"),
        "MLFLOW_TRACKING_URI": mlflow_url,
    }
    metrics = Metrics()

    def version() -> str:
        run_id = client.create_run("0").info.run_id
        client.set_terminated(run_id)
        return str(client.create_model_version(registered, f"s3://models/fraud/{run_id[:8]}", run_id=run_id).version)

    return Service(config, metrics), metrics, client, registered, remote, version


def test_a_real_pass_reports_when_it_succeeded_the_walk_on_main_and_drift(fleet) -> None:
    service, metrics, client, registered, remote, version = fleet
    v1, v2 = version(), version()
    client.set_registered_model_alias(registered, "champion", v1)
    service.reconcile("fraud")  # the first release: nothing to compare, straight to 100%
    client.set_registered_model_alias(registered, "champion", v2)
    service.reconcile("fraud")  # starts the walk: step 1 (10%) committed to main
    step_landed = int(git(remote, "log", "-1", "--format=%ct", "main"))
    client.set_model_version_tag(registered, v2, "releasebot.drift.production.status", "drift")

    before = time.time()
    service.reconcile("fraud")  # sees the walk under way on main (no cluster here: it waits)
    after = time.time()
    text = metrics.worker_exposition()
    stamp = value(text, "releasebot_last_successful_reconcile_timestamp_seconds", **KEY)
    assert stamp is not None and before <= stamp <= after
    assert value(text, "releasebot_walk_step", **KEY) == 1
    assert value(text, "releasebot_walk_canary_percent", **KEY) == 10
    assert value(text, "releasebot_walk_step_started_timestamp_seconds", **KEY) == step_landed
    assert value(text, "releasebot_walk_step_deadline_seconds", **KEY) == 300 + 600
    assert value(text, "releasebot_drift_detected", **KEY) == 1

    service.reconcile("ghost")  # its registered model does not exist: the key fails, and says nothing
    text = metrics.worker_exposition()
    assert not any(dict(labels).get("model") == "ghost" for _, labels in samples(text))

    client.set_registered_model_alias(registered, "champion", v1)  # back to the stable version
    service.reconcile("fraud")  # ends the walk on main
    service.reconcile("fraud")
    text = metrics.worker_exposition()
    for family in WALK_FAMILIES:
        assert series(text, family) == set(), family
    assert value(text, "releasebot_drift_detected", **KEY) is None  # v1 serves, and v1 was never checked
