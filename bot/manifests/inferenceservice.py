"""KServe InferenceService: one per (environment, model), built from the inferenceservice blueprints.

The blueprint set expresses the five deployment levels: a custom image (``predictor-image``), an
MLflow or framework model by storageUri (``predictor-model``), autoscaling down to zero (replica and
scale fields), a transformer in front, and an explainer beside it. Which field belongs to which
owner is declared here: the catalog owns shape and sizing, the registry owns what is served.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.blueprints import BlueprintSet
from bot.catalog import Catalog, Component, Environment, Model, Resources
from bot.manifests.ownership import Owned, Sel, get

KSERVE = Sel("name", "kserve-container")
STORAGE_URI_ENV = "STORAGE_URI"

CATALOG_OWNED = [
    Owned(("metadata", "name")),
    Owned(("metadata", "namespace")),
    Owned(("metadata", "labels", "releasebot.dev/environment")),
    Owned(("metadata", "annotations", "serving.kserve.io/deploymentMode")),
    Owned(("metadata", "annotations", "releasebot.dev/registered-model")),
    Owned(("spec", "predictor", "minReplicas")),
    Owned(("spec", "predictor", "maxReplicas")),
    Owned(("spec", "predictor", "scaleMetric")),
    Owned(("spec", "predictor", "scaleTarget")),
    Owned(("spec", "predictor", "nodeSelector", "karpenter.sh/nodepool")),
    Owned(("spec", "predictor", "tolerations", Sel("key", "nvidia.com/gpu"))),
    # A model format and a custom image exclude each other: the catalog decides which exists.
    Owned(("spec", "predictor", "model"), "presence"),
    Owned(("spec", "predictor", "model", "modelFormat")),
    Owned(("spec", "predictor", "model", "runtime")),
    Owned(("spec", "predictor", "model", "protocolVersion")),
    Owned(("spec", "predictor", "model", "args")),
    Owned(("spec", "predictor", "model", "resources")),
    Owned(("spec", "predictor", "containers"), "presence"),
    Owned(("spec", "predictor", "containers", KSERVE, "image")),
    Owned(("spec", "predictor", "containers", KSERVE, "args")),
    Owned(("spec", "predictor", "containers", KSERVE, "resources")),
    Owned(("spec", "transformer")),
    Owned(("spec", "explainer")),
]

# What the release loop writes when an alias moves. Render keeps these as they are in the file.
VERSION_ANNOTATION = "releasebot.dev/version"
RUN_ANNOTATION = "releasebot.dev/run-id"
PINNED_ANNOTATION = "releasebot.dev/pinned-version"
BLOCKED_ANNOTATION = "releasebot.dev/blocked-versions"
REGISTRY_OWNED = [
    Owned(("spec", "predictor", "model", "storageUri")),
    Owned(("spec", "predictor", "containers", KSERVE, "env", Sel("name", STORAGE_URI_ENV), "value")),
]
RELEASE_ANNOTATIONS = [
    Owned(("metadata", "annotations", VERSION_ANNOTATION)),
    Owned(("metadata", "annotations", RUN_ANNOTATION)),
]
# Written by `releasebot rollback` and cleared by `releasebot unblock`: Git holds the pin.
PIN_ANNOTATIONS = [
    Owned(("metadata", "annotations", PINNED_ANNOTATION)),
    Owned(("metadata", "annotations", BLOCKED_ANNOTATION)),
]


def blocked_in(annotations: Any) -> set[str]:
    """The versions a manifest's annotations block (a comma-separated list)."""
    return {v.strip() for v in str(annotations.get(BLOCKED_ANNOTATION, "")).split(",") if v.strip()}


def blocked_text(versions: Iterable[str]) -> str:
    """The blocked-versions annotation for ``versions``, in version order (2 before 10)."""
    return ",".join(sorted(versions, key=lambda v: (len(v), v)))


def path_of(env: str, model: str) -> str:
    """Where the InferenceService of ``model`` in ``env`` lives in the environments repo."""
    return f"{env}/{model}/inferenceservice.yaml"


def catalog_owned(model: Model) -> list[Owned]:
    """The fixed paths, plus the environment variables this model's catalog entry declares.

    Variables are owned one by one, by name: a variable a person adds beside them is theirs.
    """
    container = ("spec", "predictor", "containers", KSERVE) if model.serving.image else ("spec", "predictor", "model")
    return CATALOG_OWNED + [Owned((*container, "env", Sel("name", name), "value")) for name, _ in model.serving.env]


# Set by the rollout (a person today, canary steps later): KServe keeps two predictor revisions.
CANARY = ("spec", "predictor", "canaryTrafficPercent")


def canary_percent(doc: Any) -> int | None:
    value = get(doc, CANARY)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def storage_uri_in(doc: Any) -> str | None:
    """The storage URI a manifest currently serves, wherever its predictor shape keeps it."""
    for rule in REGISTRY_OWNED:
        value = get(doc, rule.path)
        if isinstance(value, str):
            return value
    return None


def _env_list(pairs: tuple[tuple[str, str], ...], storage_uri: str | None = None) -> list[dict[str, str]] | None:
    items = [{"name": k, "value": v} for k, v in pairs]
    if storage_uri is not None:
        items.append({"name": STORAGE_URI_ENV, "value": storage_uri})
    return items or None


def _component_values(c: Component, pool: str, replicas: Any, default: Resources) -> dict[str, Any]:
    return {
        "component.image": c.image,
        "component.args": list(c.args) or None,
        "component.env": _env_list(c.env),
        "component.resources": (c.resources or default).as_k8s(),
        "nodePool": pool,
        "replicas.min": replicas.min,
        "replicas.max": replicas.max,
    }


def desired(cat: Catalog, env: Environment, model: Model, bp: BlueprintSet, storage_uri: str | None = None) -> Any:
    """The InferenceService the catalog asks for, serving ``storage_uri`` (None before a release)."""
    from bot.manifests.karpenter import cpu_pool_name, gpu_pool_name

    replicas = model.replicas_in(env)
    resources = model.resources_in(env)
    gpu = resources.gpus > 0
    pool = gpu_pool_name(env) if gpu else cpu_pool_name(env)
    s = model.serving
    values: dict[str, Any] = {
        "replicas.min": replicas.min,
        "replicas.max": replicas.max,
        "autoscaling.metric": model.autoscaling[0] if model.autoscaling else None,
        "autoscaling.target": model.autoscaling[1] if model.autoscaling else None,
        "nodePool": pool,
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
        if gpu
        else None,
        "serving.format": s.format,
        "serving.runtime": s.runtime,
        "serving.protocolVersion": s.protocol_version,
        "serving.image": s.image,
        "serving.args": list(s.args) or None,
        "serving.env": _env_list(s.env, storage_uri if s.image else None),
        "release.storageUri": storage_uri,
        "resources": resources.as_k8s(),
    }
    predictor = bp.render(
        "inferenceservice/predictor-image.yaml" if s.image else "inferenceservice/predictor-model.yaml", values
    )
    small = Resources(cpu="500m", memory="1Gi")
    cpu_pool = cpu_pool_name(env)
    transformer = (
        bp.render("inferenceservice/transformer.yaml", _component_values(model.transformer, cpu_pool, replicas, small))
        if model.transformer
        else None
    )
    explainer = None
    if model.explainer is not None and model.explainer.art_type:
        explainer = bp.render(
            "inferenceservice/explainer-art.yaml",
            {
                "nodePool": cpu_pool,
                "explainer.type": model.explainer.art_type,
                "explainer.config": dict(model.explainer.art_config) or None,
                "explainer.resources": (model.explainer.resources or small).as_k8s(),
            },
        )
    elif model.explainer is not None and model.explainer.container:
        explainer = bp.render(
            "inferenceservice/explainer-image.yaml",
            _component_values(model.explainer.container, cpu_pool, replicas, small),
        )
    return bp.render(
        "inferenceservice.yaml",
        {
            "model.name": model.name,
            "model.registeredModel": model.registered_model,
            "env.name": env.name,
            "env.namespace": env.namespace,
            "cluster.kserveDeploymentMode": cat.kserve_mode,
            "predictor": predictor,
            "transformer": transformer,
            "explainer": explainer,
        },
    )
