"""The two CronJobs of a model in an environment: the drift check and the retraining trigger.

Both run the bot's image and take everything they need from their arguments, so neither needs
this repository. The drift check runs ``releasebot drift run``. The retrain job runs
``releasebot retrain submit``, which posts a Kubeflow Pipelines v2beta1 ``CreateRun`` for the
model's pipeline, with the bearer token of the catalog's ``pipelines.tokenSecret`` mounted as a
file when one is named; it is created suspended, and its ``spec.suspend`` belongs to the drift
policy, not to the catalog.

Credentials are referenced, never written: a Secret named in the catalog is mounted or read by
reference, and created out of band in each environment's namespace.
"""

from __future__ import annotations

from typing import Any

from bot import pipelines
from bot.blueprints import BlueprintSet
from bot.catalog import Catalog, Environment, Model, Resources
from bot.manifests.ownership import Owned, Sel

DRIFT = Sel("name", "drift-check")
SUBMIT = Sel("name", "submit-run")
_POD = ("spec", "jobTemplate", "spec", "template", "spec")

_COMMON = [
    Owned(("metadata", "name")),
    Owned(("metadata", "namespace")),
    Owned(("metadata", "labels", "releasebot.dev/environment")),
    Owned(("spec", "schedule")),
    Owned((*_POD, "serviceAccountName")),
    Owned((*_POD, "automountServiceAccountToken")),
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
    Owned((*_POD, "containers", DRIFT, "env", Sel("name", "MLFLOW_TRACKING_TOKEN"))),
]
SERVED_VERSION_OWNED = [Owned((*_SERVED_VERSION, "value"))]


def served_version(version: str) -> dict[str, Any]:
    """The registry-owned part of a drift check: the version it checks."""
    env = [{"name": SERVED_VERSION_ENV, "value": version}]
    return {
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "drift-check", "env": env}]}}}}}
    }


TOKEN_VOLUME = "pipelines-token"
RETRAIN_CATALOG_OWNED = [
    *_COMMON,
    Owned((*_POD, "containers", SUBMIT, "image")),
    Owned((*_POD, "containers", SUBMIT, "args")),
    Owned((*_POD, "containers", SUBMIT, "resources")),
    Owned((*_POD, "containers", SUBMIT, "env", Sel("name", pipelines.TOKEN_FILE_ENV))),
    Owned((*_POD, "containers", SUBMIT, "volumeMounts", Sel("name", TOKEN_VOLUME))),
    Owned((*_POD, "volumes", Sel("name", TOKEN_VOLUME))),
    # Jobs made before releasebot ran the submission itself lack these; people may tune them after.
    Owned((*_POD, "containers", SUBMIT, "volumeMounts", Sel("name", "tmp")), "presence"),
    Owned((*_POD, "volumes", Sel("name", "tmp")), "presence"),
    Owned(("spec", "jobTemplate", "spec", "podFailurePolicy"), "presence"),
]
# Measured: `releasebot retrain submit` peaks at about 35 MiB; tests/test_retrain_submit.py keeps it
# under three quarters of the limit.
RETRAIN_RESOURCES = Resources(cpu="50m", memory="128Mi")
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


def _identity(prefix: str, account: str | None) -> dict[str, Any]:
    """The pod's service account, and its token mounted only when one is named: a cloud's workload
    identity (IRSA, GKE or Azure workload identity, EKS Pod Identity) works from that account's
    token, and a pod with no account named needs none (Pod Security "restricted" either way)."""
    return {f"{prefix}.serviceAccountName": account, f"{prefix}.automountToken": account is not None}


def drift_check(cat: Catalog, env: Environment, model: Model, bp: BlueprintSet) -> Any:
    assert model.drift is not None
    token = cat.registry_token
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
            # MLflow's client sends MLFLOW_TRACKING_TOKEN as a bearer token.
            "registry.tokenEnv": (
                {
                    "name": "MLFLOW_TRACKING_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": token.name, "key": token.key}},
                }
                if token
                else None
            ),
            **_identity("drift", cat.service_account(model.drift)),
        },
    )


def retrain_request(cat: Catalog, model: Model, env: Environment) -> pipelines.RunRequest:
    """The run the retrain job submits (KFP v2beta1 ``CreateRun``)."""
    r = model.retrain
    assert r is not None and cat.pipelines_endpoint is not None
    return pipelines.RunRequest(
        endpoint=cat.pipelines_endpoint,
        display_name=f"{model.name}-retrain-{env.name}",
        pipeline_id=r.pipeline_id,
        pipeline_version_id=r.pipeline_version_id,
        experiment_id=r.experiment_id,
        description=f"releasebot: {model.registered_model} drifted in {env.name}",
        parameters=r.parameters,
    )


def retrain_args(cat: Catalog, model: Model, env: Environment) -> list[str]:
    """``releasebot retrain submit`` arguments that rebuild :func:`retrain_request` exactly."""
    req = retrain_request(cat, model, env)
    # The image's ENTRYPOINT is ``releasebot``: args start at the subcommand.
    args = ["retrain", "submit", "--endpoint", req.endpoint, "--display-name", req.display_name]
    args += ["--pipeline-id", req.pipeline_id]
    if req.pipeline_version_id:
        args += ["--pipeline-version-id", req.pipeline_version_id]
    if req.experiment_id:
        args += ["--experiment-id", req.experiment_id]
    if req.description:
        args += ["--description", req.description]
    for name, value in req.parameters:
        args += ["--parameter", pipelines.parameter_arg(name, value)]
    return args


def retrain(cat: Catalog, env: Environment, model: Model, bp: BlueprintSet) -> Any:
    assert model.retrain is not None and cat.pipelines_endpoint is not None
    secret = cat.pipelines_token
    return bp.render(
        "retrain-cronjob.yaml",
        {
            "model.name": model.name,
            "env.name": env.name,
            "env.namespace": env.namespace,
            "retrain.schedule": model.retrain.schedule,
            "retrain.args": retrain_args(cat, model, env),
            "retrain.resources": RETRAIN_RESOURCES.as_k8s(),
            **_identity("retrain", cat.service_account(model.retrain)),
            "bot.image": cat.bot_image,
            # No Secret named: KFP without authentication; the job says so in its log.
            "retrain.env": [{"name": pipelines.TOKEN_FILE_ENV, "value": pipelines.TOKEN_FILE}] if secret else None,
            "pipelines.tokenMount": (
                {"name": TOKEN_VOLUME, "mountPath": pipelines.TOKEN_MOUNT, "readOnly": True} if secret else None
            ),
            "pipelines.tokenVolume": (
                {
                    "name": TOKEN_VOLUME,
                    "secret": {"secretName": secret.name, "items": [{"key": secret.key, "path": "token"}]},
                }
                if secret
                else None
            ),
        },
    )
