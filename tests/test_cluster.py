"""The Kubernetes adapter against a fake API server, with the real ``kubernetes`` client, and its
parsers on upstream's own status objects; plus the fake's own fidelity (Argo CD's health.lua
verdicts, CRD status schemas, RBAC)."""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bot.catalog import load_catalog
from bot.cluster import Cluster, app_status, isvc_status
from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.manifests.argocd import application_name
from tests.conftest import EXAMPLE_CATALOG, EXAMPLE_DIR
from tests.kubeapi import (
    ARGO,
    FIXTURES,
    HEALTH_DIRS,
    ISVC_TESTDATA,
    T0,
    TOKEN,
    FakeKube,
    application,
    argocd_health,
    kube_api,
    load,
    rbac_rules,
    revision_name,
    serverless,
    standard,
    status_errors,
    write_kubeconfig,
)

SHA_OLD, SHA_NEW = "1" * 40, "2" * 40
ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"
APP_PATH = "/apis/argoproj.io/v1alpha1/namespaces/{ns}/applications/{name}"


@pytest.fixture
def kube(tmp_path: Path):
    with kube_api(tmp_path) as fake:
        yield fake


@pytest.fixture
def cluster(kube: FakeKube):
    with Cluster(kube.kubeconfig, timeout=(2, 2)) as c:
        yield c


# --- the adapter, end to end -------------------------------------------------------------------


def test_application_synced_to_a_commit_with_history(kube: FakeKube, cluster: Cluster) -> None:
    earlier, later = T0, T0 + timedelta(minutes=7)
    kube.put(serverless("fraud", "prod", state="promoted", revision=2, previous=1))
    kube.put(
        application(
            "releasebot-production",
            destination="prod",
            revision=SHA_NEW,
            history=[(SHA_OLD, earlier), (SHA_NEW, later)],
            message="successfully synced (all tasks run)",
        )
    )
    app = cluster.application("releasebot-production", "argocd")
    assert app is not None
    assert (app.name, app.sync_status, app.sync_revision, app.health) == (
        "releasebot-production",
        "Synced",
        SHA_NEW,
        "Healthy",
    )
    assert (app.operation_phase, app.operation_message) == ("Succeeded", "successfully synced (all tasks run)")
    assert app.history == ((SHA_OLD, earlier), (SHA_NEW, later))
    assert all(d.tzinfo is not None for _, d in app.history)
    assert dict(app.resources) == {("InferenceService", "prod", "fraud"): "Healthy"}
    assert kube.paths() == [APP_PATH.format(ns="argocd", name="releasebot-production")]
    assert {r.token for r in kube.requests} == {TOKEN}  # the kubeconfig's credentials reach the server


def test_application_health_is_what_argocd_computes_for_a_failed_canary(kube: FakeKube, cluster: Cluster) -> None:
    kube.put(serverless("fraud", "prod", state="failed", revision=3, previous=2))
    kube.put(serverless("churn", "prod", state="promoted", revision=1))
    kube.put(application("releasebot-production", destination="prod", revision=SHA_NEW, operation="Running"))
    app = cluster.application("releasebot-production", "argocd")
    assert app is not None and app.operation_phase == "Running"
    assert dict(app.resources) == {
        ("InferenceService", "prod", "fraud"): "Degraded",
        ("InferenceService", "prod", "churn"): "Healthy",
    }
    assert app.health == "Degraded"  # the worst of its resources, as Argo CD rolls it up


def test_inference_service_canary_fields(kube: FakeKube, cluster: Cluster) -> None:
    kube.put(serverless("fraud", "prod", state="canary", revision=3, previous=2, percent=10, generation=5))
    isvc = cluster.inference_service("prod", "fraud")
    assert isvc is not None
    assert (isvc.namespace, isvc.name, isvc.generation, isvc.observed_generation) == ("prod", "fraud", 5, 5)
    assert isvc.ready and isvc.reason is None and isvc.deployment_mode == "Serverless"
    new, old = revision_name("fraud", 3), revision_name("fraud", 2)
    assert (isvc.latest_created_revision, isvc.latest_ready_revision) == (new, new)
    assert (isvc.latest_rolledout_revision, isvc.previous_rolledout_revision) == (old, old)
    assert [(t.revision, t.percent, t.latest, t.tag) for t in isvc.traffic] == [
        (new, 10, True, "latest"),
        (old, 90, False, "prev"),
    ]
    assert isvc.transition_status == "UpToDate" and isvc.failure is None


def test_inference_service_progressing_and_failed(kube: FakeKube, cluster: Cluster) -> None:
    kube.put(serverless("fraud", "prod", state="progressing", revision=2, previous=1))
    kube.put(serverless("churn", "prod", state="failed", revision=4, previous=3))
    progressing = cluster.inference_service("prod", "fraud")
    assert progressing is not None and not progressing.ready
    assert progressing.reason is not None and progressing.reason.startswith("PredictorConfigurationReady: Unknown")
    assert progressing.latest_created_revision == revision_name("fraud", 2)
    assert progressing.latest_ready_revision == revision_name("fraud", 1)
    failed = cluster.inference_service("prod", "churn")
    assert failed is not None and not failed.ready and failed.transition_status == "BlockedByFailedLoad"
    assert failed.reason == "IngressReady: False: Predictor ingress not created"
    assert failed.failure is not None and failed.failure.startswith("ModelLoadFailed: Failed to load model")
    assert revision_name("churn", 4) in failed.failure and "\n" not in failed.failure
    assert [(t.revision, t.percent) for t in failed.traffic] == [(revision_name("churn", 3), 100)]


def test_standard_canary_statuses(kube: FakeKube, cluster: Cluster) -> None:
    kube.put(standard("fraud", "prod", canary=("fraud-v7", "s3://models/fraud/7", 20), canary_ready=False))
    isvc = cluster.inference_service("prod", "fraud")
    assert isvc is not None and isvc.ready and isvc.deployment_mode == "Standard"
    assert [(c.name, c.ready, c.traffic_percent) for c in isvc.canaries] == [("fraud-v7", False, 20)]
    assert isvc.traffic == ()


def test_a_full_pass_lists_a_namespace_in_one_call(kube: FakeKube, cluster: Cluster) -> None:
    for name in ("a", "b", "c"):
        kube.put(serverless(name, "prod", state="promoted", revision=1))
    kube.put(serverless("elsewhere", "dev", state="promoted", revision=1))
    found = cluster.inference_services("prod")
    assert sorted(found) == ["a", "b", "c"] and all(s.ready for s in found.values())
    assert kube.paths() == [ISVC_PATH.format(ns="prod")]
    assert cluster.inference_services("empty") == {}


def test_absent_objects_are_none(kube: FakeKube, cluster: Cluster) -> None:
    assert cluster.application("releasebot-production", "argocd") is None
    assert cluster.inference_service("prod", "fraud") is None


def test_forbidden_names_the_missing_permission(kube: FakeKube, cluster: Cluster) -> None:
    kube.rules = []  # the bot's ServiceAccount may do nothing
    with pytest.raises(PermanentUpstreamError) as info:
        cluster.application("releasebot-production", "argocd")
    message = str(info.value)
    assert "'get'" in message and "'applications'" in message and "'argoproj.io'" in message
    assert "'argocd'" in message and "cannot get resource" in message
    assert info.value.__cause__ is not None and not info.value.retryable
    with pytest.raises(PermanentUpstreamError, match="verb 'list' on resource 'inferenceservices'"):
        cluster.inference_services("prod")


def test_the_generated_rbac_grants_exactly_the_adapters_reads(kube: FakeKube, cluster: Cluster) -> None:
    names = ("clusterrole.yaml", "clusterrolebinding.yaml", "argocd-role.yaml", "argocd-rolebinding.yaml")
    docs = [yaml.safe_load((EXAMPLE_DIR / "releasebot" / n).read_text()) for n in names]
    kube.rules = rbac_rules(docs, "releasebot", "releasebot")
    kube.put(serverless("fraud", "models-prod", state="promoted", revision=1))
    kube.put(application("releasebot-production", destination="models-prod", revision=SHA_NEW))
    assert cluster.application("releasebot-production", "argocd") is not None
    assert cluster.inference_service("models-prod", "fraud") is not None
    assert set(cluster.inference_services("models-prod")) == {"fraud"}
    with pytest.raises(PermanentUpstreamError, match="'applications'"):
        cluster.application("releasebot-production", "default")  # Applications only in Argo CD's namespace
    kube.rules = rbac_rules(docs, "releasebot", "someone-else")
    with pytest.raises(PermanentUpstreamError, match="forbids"):
        cluster.inference_service("models-prod", "fraud")


def test_rejected_credentials_are_permanent(kube: FakeKube, cluster: Cluster) -> None:
    kube.fail(401)
    with pytest.raises(PermanentUpstreamError, match="rejected the bot's credentials"):
        cluster.inference_service("prod", "fraud")


@pytest.mark.parametrize("code", [500, 503, 429])
def test_server_errors_are_transient(kube: FakeKube, cluster: Cluster, code: int) -> None:
    kube.fail(code)
    with pytest.raises(TransientUpstreamError, match=f"HTTP {code}") as info:
        cluster.inference_service("prod", "fraud")
    assert info.value.retryable and info.value.__cause__ is not None
    assert cluster.inference_service("prod", "fraud") is None  # the next request is answered again
    assert len(kube.requests) == 2  # the client did not retry on its own


def test_a_slow_server_times_out_as_transient(kube: FakeKube, tmp_path: Path) -> None:
    kube.delay = 3
    with Cluster(kube.kubeconfig, timeout=(1, 0.3)) as c, pytest.raises(TransientUpstreamError, match="Timeout"):
        c.inference_service("prod", "fraud")


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    with Cluster(kubeconfig) as c, pytest.raises(TransientUpstreamError, match=r"unreachable.*ConnectionError") as info:
        c.application("releasebot-dev", "argocd")
    assert info.value.__cause__ is not None


def test_kubeconfig_from_environment_and_context(kube: FakeKube, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    with Cluster() as c:
        assert c.host == kube.url
    with pytest.raises(PermanentUpstreamError, match="cannot load credentials"):
        Cluster(kube.kubeconfig, context="no-such-context")
    with pytest.raises(PermanentUpstreamError, match="cannot load credentials"):
        Cluster(tmp_path / "missing")


def test_in_cluster_config_is_used_inside_a_pod(monkeypatch, tmp_path: Path) -> None:
    from kubernetes.config import incluster_config

    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("pod-token")
    ca.write_text("not really a certificate")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with Cluster() as c:
        assert c.host == "https://10.0.0.1:443"


def test_application_name_is_the_applicationsets() -> None:
    cat = load_catalog(EXAMPLE_CATALOG)
    env = cat.environments[0].name
    appset = yaml.safe_load((EXAMPLE_DIR / "argocd" / "applicationset.yaml").read_text())
    template = appset["spec"]["template"]["metadata"]["name"]
    assert template.replace("{{.env}}", env) == application_name(cat, env) == f"{cat.argocd_project}-{env}"
    assert appset["metadata"]["namespace"] == cat.argocd_namespace


# --- the pure parsers on upstream's objects ----------------------------------------------------


def test_app_status_of_upstream_diff_cache() -> None:
    obj = load(ARGO / "controller" / "testdata" / "diff-cache.yaml")
    app = app_status(obj)
    assert (app.name, app.sync_status, app.sync_revision, app.health) == ("velero-test", "Synced", "rev1", "Healthy")
    assert app.operation_phase == "Succeeded" and app.operation_message == "successfully synced (all tasks run)"
    assert len(app.history) == len(obj["status"]["history"]) == 10
    assert app.history[0] == (
        "ea8759964626a583667a2bfd08f334ec2070040a",
        datetime(2024, 3, 4, 22, 0, 6, tzinfo=UTC),
    )
    assert [d for _, d in app.history] == sorted(d for _, d in app.history)
    expected = {
        (r["kind"], r.get("namespace") or "", r["name"]): r["health"]["status"]
        for r in obj["status"]["resources"]
        if r.get("health")
    }
    assert expected and dict(app.resources) == expected


def test_app_status_without_sync_is_not_synced_to_anything() -> None:
    base = ARGO / "gitops-engine" / "pkg" / "health" / "testdata"
    for file, health in (("application-healthy.yaml", "Healthy"), ("application-degraded.yaml", "Degraded")):
        app = app_status(load(base / file))
        assert (app.health, app.sync_status, app.sync_revision, app.history) == (health, None, None, ())


@pytest.mark.parametrize("path", sorted(ISVC_TESTDATA.glob("*.yaml")), ids=lambda p: p.stem)
def test_isvc_status_of_upstream_testdata_agrees_with_argocd(path: Path) -> None:
    obj = load(path)
    isvc = isvc_status(obj)
    health, _ = argocd_health(obj)
    assert isvc.name == "helloworld" and isvc.namespace == "default"
    # Ready (and not Stopped) is the bot's reading of Healthy for every upstream example,
    # except ModelMesh's, whose conditions are all True while the model failed to load.
    if path.stem == "degraded_modelmesh":
        assert isvc.ready and isvc.transition_status == "BlockedByFailedLoad" and health == "Degraded"
    else:
        assert isvc.ready == (health == "Healthy"), (path.stem, isvc, health)
    assert (isvc.reason is None) == isvc.ready
    if path.stem == "stopped":
        assert isvc.reason is not None and "Stopped" in isvc.reason
    if path.stem == "healthy_raw":
        assert isvc.deployment_mode == "RawDeployment"


def test_isvc_status_without_status() -> None:
    isvc = isvc_status({"metadata": {"name": "x", "namespace": "y", "generation": 1}, "spec": {}})
    assert not isvc.ready and isvc.observed_generation is None and isvc.generation == 1
    assert isvc.reason == "InferenceService has not reported its conditions yet"


def test_isvc_status_of_the_rollout_walkthrough_split() -> None:
    """The only upstream canary status: the JSON in KServe's rollout README (tag routing)."""
    text = (FIXTURES / "kserve" / "docs" / "samples" / "v1beta1" / "rollout" / "README.md").read_text()
    start = text.index("{", text.index('jsonpath="{.status.components.predictor}"') + 45)
    predictor = json.JSONDecoder().raw_decode(text[start:])[0]
    obj = {"metadata": {"name": "my-model", "namespace": "default"}, "status": {"components": {"predictor": predictor}}}
    isvc = isvc_status(obj)
    assert [(t.percent, t.latest, t.tag) for t in isvc.traffic] == [(10, True, "latest"), (90, False, "prev")]
    assert isvc.latest_rolledout_revision == isvc.previous_rolledout_revision == "my-model-predictor-default-00001"
    assert status_errors({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", **obj}) == []


# --- the fake's fidelity -------------------------------------------------------------------------


def _health_cases() -> list[tuple[str, Path, dict[str, str]]]:
    cases = []
    for (_, kind), base in HEALTH_DIRS.items():
        for test in load(base / "health_test.yaml")["tests"]:
            cases.append((kind, base / test["inputPath"], test["healthStatus"]))
    return cases


@pytest.mark.parametrize("kind,path,want", _health_cases(), ids=lambda v: v.stem if isinstance(v, Path) else "")
def test_argocd_health_lua_reproduces_upstream_expectations(kind: str, path: Path, want: dict[str, str]) -> None:
    status, message = argocd_health(load(path))
    assert (status, message) == (want["status"], want.get("message") or "")


def test_all_thirteen_upstream_health_expectations_are_checked() -> None:
    assert len(_health_cases()) == 13


def test_the_fake_refuses_a_status_its_crd_refuses(kube: FakeKube) -> None:
    bad = serverless("fraud", "prod", state="canary", revision=2, previous=1, percent=10)
    bad["status"]["components"]["predictor"]["traffic"][0]["percentage"] = 10  # misspelt: not KServe's
    with pytest.raises(AssertionError, match="percentage"):
        kube.put(bad)
    bad = standard("fraud", "prod", canary=("c", "s3://m/2", 10))
    del bad["status"]["canaryStatuses"][0]["ready"]
    with pytest.raises(AssertionError, match="ready"):
        kube.put(bad)


def test_every_walk_state_is_schema_valid_and_classified_as_argocd_does() -> None:
    states = {
        "progressing": ("Progressing", False),
        "canary": ("Healthy", True),
        "promoted": ("Healthy", True),
        "failed": ("Degraded", False),
    }
    for state, (health, ready) in states.items():
        obj = serverless("m", "ns", state=state, revision=2, previous=1, percent=10)
        assert status_errors(obj) == [], state
        assert argocd_health(obj)[0] == health and isvc_status(obj).ready is ready, state
    for obj in (
        standard("m", "ns"),
        standard("m", "ns", canary=("c", "s3://m/2", 0)),
        standard("m", "ns", ready=False),
    ):
        assert status_errors(obj) == []
    assert argocd_health(standard("m", "ns", ready=False))[0] == "Progressing"
    assert status_errors(application("releasebot-dev", destination="ns", revision=SHA_NEW)) == []


def test_vendored_fixtures_match_their_recorded_sha256() -> None:
    entries = json.loads((FIXTURES / "provenance.json").read_text())["files"]
    on_disk = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.is_file()} - {
        "provenance.json",
        "README.md",
    }
    assert {e["file"] for e in entries} == on_disk
    for entry in entries:
        assert hashlib.sha256((FIXTURES / entry["file"]).read_bytes()).hexdigest() == entry["sha256"], entry["file"]
