"""What ``init`` generates runs: each container's command line, composed from the Dockerfile's
ENTRYPOINT and the manifest's command/args as Kubernetes composes it, run against the installed
releasebot, a real MLflow server and real Parquet windows.

The windows live on local disk under the same object paths the example names in S3 (a ``file://``
prefix stands in for the bucket); MLflow's service DNS name is replaced by the test server's
address. Everything else (image command, args, env) is the generated manifest's.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot import yamlio
from tests import kubeexec
from tests.conftest import EXAMPLE_CATALOG, PROJECT, copy_catalog

DOCKERFILE = PROJECT / "Dockerfile"
pytestmark = pytest.mark.slow


def _features(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"amount": rng.gamma(2.0, 30.0, n) + shift * 40, "age": rng.normal(40, 10, n) + shift * 8})


# A model served by its own container (KServe reads its model location from STORAGE_URI), so
# the example is also a catalog with a custom-image model.
CUSTOM_IMAGE_MODEL = """
  - name: custom-scorer
    registeredModel: custom-scorer
    serving:
      image: ghcr.io/acme/custom-scorer:1.0.0
    resources: {cpu: 500m, memory: 1Gi}
    replicas: {min: 1, max: 2}
    drift:
      schedule: "0 * * * *"
      reference:
        uri: s3://acme-features/credit/reference/2026-10.parquet
      current:
        uri: s3://acme-features/credit/serving-window/latest.parquet
      action: none
"""


def _load(path: Path) -> dict:
    return yamlio.to_plain(yamlio.load(path.read_text(), path.name))


class Example:
    """The example catalog with its buckets on local disk and its registered models made unique
    for this test, each environment's alias set on a version that recorded its training data."""

    def __init__(self, tmp: Path, mlflow_url: str, run_cli) -> None:
        from mlflow.entities import Dataset, DatasetInput
        from mlflow.tracking import MlflowClient

        self.bucket = tmp / "acme-features"
        suffix = uuid.uuid4().hex[:8]
        text = (EXAMPLE_CATALOG.read_text() + CUSTOM_IMAGE_MODEL).replace(
            "s3://acme-features/", self.bucket.as_uri() + "/"
        )
        self.names = {}
        for model in ("fraud-detector", "review-sentiment", "credit-risk", "custom-scorer"):
            self.names[model] = f"{model}-{suffix}"
            text = text.replace(f"registeredModel: {model}\n", f"registeredModel: {model}-{suffix}\n")
        catalog = copy_catalog(tmp, text)
        for rel, frame in {
            "fraud/serving-window/latest.parquet": _features(2000, 2, shift=1.0),
            "fraud/training/v1.parquet": _features(3000, 1),
            "reviews/serving-window/latest.parquet": _features(2000, 3),
            "reviews/training/v1.parquet": _features(3000, 1),
            "credit/reference/2026-10.parquet": _features(3000, 1),
            "credit/serving-window/latest.parquet": _features(2000, 4),
        }.items():
            (self.bucket / rel).parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(self.bucket / rel)
        client = MlflowClient(mlflow_url, registry_uri=mlflow_url)
        for model, name in self.names.items():
            run_id = client.create_run("0").info.run_id
            folder = "fraud" if model == "fraud-detector" else "reviews"
            source = json.dumps({"uri": f"{self.bucket.as_uri()}/{folder}/training/v1.parquet"})
            client.log_inputs(run_id, [DatasetInput(Dataset("train", "d1", "s3", source))])
            client.create_registered_model(name)
            version = client.create_model_version(name, f"s3://models/{model}/1", run_id=run_id).version
            for alias in ("candidate", "champion"):
                client.set_registered_model_alias(name, alias, version)
        self.client = client
        self.repo = tmp / "envs"
        result = run_cli("init", self.repo, "--catalog", catalog)
        assert result.code == 0, result.err


def test_every_drift_check_cronjob_runs_as_kubernetes_starts_it(tmp_path: Path, mlflow_url: str, run_cli) -> None:
    example = Example(tmp_path, mlflow_url, run_cli)
    cronjobs = sorted(example.repo.glob("*/*/drift-check-cronjob.yaml"))
    # fraud, reviews and the custom-image scorer in three environments, credit in two
    assert len(cronjobs) == 11
    for path in cronjobs:
        manifest = _load(path)
        [container] = kubeexec.pod_containers(manifest)
        cwd = tmp_path / "cwd" / path.parent.relative_to(example.repo)
        cwd.mkdir(parents=True)
        tmp = tmp_path / "tmp" / path.parent.relative_to(example.repo)
        tmp.mkdir(parents=True)
        proc = kubeexec.run(DOCKERFILE, container, cwd, tmp, overrides={"MLFLOW_TRACKING_URI": mlflow_url})
        where = path.relative_to(example.repo)
        assert proc.returncode == 0, f"{where}: {kubeexec.argv(DOCKERFILE, container, {})}\n{proc.stderr[-3000:]}"
        env, model = where.parts[0], where.parts[1]
        assert f"{model} v1 in {env}: " in proc.stdout
        # A read-only root filesystem: the job writes nothing where it runs.
        assert list(cwd.iterdir()) == [], f"{where} wrote {list(cwd.iterdir())}"
    fraud = example.client.get_model_version(example.names["fraud-detector"], "1").tags
    assert fraud["releasebot.drift.production.status"] == "drift"


def test_every_generated_pod_meets_pod_security_restricted(env_repo: Path) -> None:
    paths = [*sorted(env_repo.glob("*/*/*-cronjob.yaml")), env_repo / "releasebot/deployment.yaml"]
    assert len(paths) == 12  # eight drift checks, three retrain jobs (fraud-detector), the bot
    for path in paths:
        manifest = _load(path)
        spec = (manifest["spec"]["jobTemplate"]["spec"] if manifest["kind"] == "CronJob" else manifest["spec"])[
            "template"
        ]["spec"]
        where = path.relative_to(env_repo)
        # Only the bot reads the Kubernetes API (its walk's status reads); no job gets a token.
        assert spec["automountServiceAccountToken"] is (manifest["kind"] == "Deployment"), where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"], where
