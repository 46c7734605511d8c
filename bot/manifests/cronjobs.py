"""The two CronJobs of a model in an environment: the drift check and the retraining trigger.

The drift check runs ``releasebot drift run`` with the bot's image; everything it needs is in its
arguments, so the job does not need this repository. The retrain job submits the model's
training pipeline to the catalog's pipelines endpoint; it is created suspended, and its
``spec.suspend`` belongs to the drift policy, not to the catalog.
"""

from __future__ import annotations

import json
from typing import Any

from bot.blueprints import BlueprintSet
from bot.catalog import Catalog, Environment, Model
from bot.manifests.ownership import Owned, Sel

DRIFT = Sel("name", "drift-check")
SUBMIT = Sel("name", "submit-run")
_POD = ("spec", "jobTemplate", "spec", "template", "spec")

_COMMON = [
    Owned(("metadata", "name")),
    Owned(("metadata", "namespace")),
    Owned(("metadata", "labels", "releasebot.dev/environment")),
    Owned(("spec", "schedule")),
]
# The version the environment serves, as the drift check's ``--version``: the registry owns its
# value (every release and rollback commit sets it, so a pinned or rolled-back environment is
# checked on what it really serves); the catalog only makes sure the entry exists.
SERVED_VERSION_ENV = "RELEASEBOT_SERVED_VERSION"
_SERVED_VERSION = (*_POD, "containers", DRIFT, "env", Sel("name", SERVED_VERSION_ENV))
DRIFT_CATALOG_OWNED = [
    *_COMMON,
    Owned((*_POD, "containers", DRIFT, "image")),
    Owned((*_POD, "containers", DRIFT, "args")),
    Owned((*_POD, "containers", DRIFT, "resources")),
    Owned((*_POD, "containers", DRIFT, "env", Sel("name", "MLFLOW_TRACKING_URI"), "value")),
    Owned(_SERVED_VERSION, mode="presence"),
]
SERVED_VERSION_OWNED = [Owned((*_SERVED_VERSION, "value"))]


def served_version(version: str) -> dict[str, Any]:
    """The registry-owned part of a drift check: the version it checks."""
    env = [{"name": SERVED_VERSION_ENV, "value": version}]
    return {
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "drift-check", "env": env}]}}}}}
    }


RETRAIN_CATALOG_OWNED = [
    *_COMMON,
    Owned((*_POD, "containers", SUBMIT, "image")),
    Owned((*_POD, "containers", SUBMIT, "args")),
]
DRIFT_RUN_ANNOTATION = "releasebot.dev/drift-run"
DRIFT_VERSION_ANNOTATION = "releasebot.dev/drift-version"
DRIFT_REASON_ANNOTATION = "releasebot.dev/drift-reason"
DRIFT_OWNED = [
    Owned(("spec", "suspend")),
    Owned(("metadata", "annotations", DRIFT_RUN_ANNOTATION)),
    Owned(("metadata", "annotations", DRIFT_VERSION_ANNOTATION)),
    Owned(("metadata", "annotations", DRIFT_REASON_ANNOTATION)),
]


def drift_check_path(env: str, model: str) -> str:
    return f"{env}/{model}/drift-check-cronjob.yaml"


def retrain_path(env: str, model: str) -> str:
    return f"{env}/{model}/retrain-cronjob.yaml"


def drift_args(model: Model, env: Environment) -> list[str]:
    d = model.drift
    assert d is not None
    # The image's ENTRYPOINT is ``releasebot``: args start at the subcommand.
    args = [
        "drift",
        "run",
        "--model",
        model.name,
        "--env",
        env.name,
        "--registered-model",
        model.registered_model,
        "--alias",
        env.alias,
        # Kubernetes expands $(VAR) from the container's env; empty (nothing released yet) means the alias's.
        "--version",
        f"$({SERVED_VERSION_ENV})",
        "--current",
        d.current.uri,
    ]
    if d.reference is not None:
        args += ["--reference", d.reference.uri]
    args += ["--drift-share", str(d.dataset_drift_share), "--sample", str(d.sample), "--action", d.action]
    if d.method:
        args += ["--method", d.method]
    if d.threshold is not None:
        args += ["--threshold", str(d.threshold)]
    for column, method, threshold in d.columns:
        spec = f"{column}={method or ''}" + (f":{threshold}" if threshold is not None else "")
        args += ["--column", spec]
    return args


def drift_check(cat: Catalog, env: Environment, model: Model, bp: BlueprintSet) -> Any:
    assert model.drift is not None
    return bp.render(
        "drift-check-cronjob.yaml",
        {
            "model.name": model.name,
            "env.name": env.name,
            "env.namespace": env.namespace,
            "drift.schedule": model.drift.schedule,
            "drift.args": drift_args(model, env),
            "drift.resources": model.drift.resources.as_k8s(),
            "bot.image": cat.bot_image,
            "registry.trackingUri": cat.tracking_uri,
        },
    )


def retrain_body(model: Model, env: Environment) -> str:
    """The Kubeflow Pipelines v2 ``CreateRun`` request body, as compact JSON."""
    r = model.retrain
    assert r is not None
    body: dict[str, Any] = {
        "display_name": f"{model.name}-retrain-{env.name}",
        "pipeline_version_reference": {"pipeline_id": r.pipeline_id},
        "runtime_config": {"parameters": dict(r.parameters)},
    }
    if r.pipeline_version_id:
        body["pipeline_version_reference"]["pipeline_version_id"] = r.pipeline_version_id
    if r.experiment_id:
        body["experiment_id"] = r.experiment_id
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def retrain(cat: Catalog, env: Environment, model: Model, bp: BlueprintSet) -> Any:
    assert model.retrain is not None and cat.pipelines_endpoint is not None
    return bp.render(
        "retrain-cronjob.yaml",
        {
            "model.name": model.name,
            "env.name": env.name,
            "env.namespace": env.namespace,
            "retrain.schedule": model.retrain.schedule,
            "retrain.body": retrain_body(model, env),
            "pipelines.image": cat.pipelines_image,
            "pipelines.endpoint": cat.pipelines_endpoint,
        },
    )
