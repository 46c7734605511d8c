"""The rollout-owned fields of an InferenceService: where a canary walk keeps its state. Pure.

A walk is written into the manifest it moves, so Git alone says where every walk stands:

* ``releasebot.dev/rollout-step`` — the index of the canary step main asks for;
* ``releasebot.dev/rollout-stable`` — the version that serves the rest of the traffic, the one
  a failed step returns to;
* the traffic split itself, in the shape the cluster's KServe reads:

  - **Serverless / Knative**: ``spec.predictor.canaryTrafficPercent`` beside the new
    ``storageUri``; KServe keeps the last revision rolled out at 100% for the rest. Promotion
    removes the field; rollback serves the stable ``storageUri`` again at 100%.
  - **Standard / RawDeployment** (KServe 0.20 ``spec.canary[]``): the new version is a named
    canary predictor with its ``trafficPercent`` (0 is a dark launch) beside the untouched
    stable predictor. Promotion moves the canary into ``spec.predictor`` under the canary's
    name (KServe keeps the canary's Deployment); rollback removes ``spec.canary``.

This module edits loaded documents and reads plain ones; it decides nothing about when.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from bot.manifests import inferenceservice as isvc
from bot.manifests.ownership import Owned, apply_owned, get

STEP_ANNOTATION = "releasebot.dev/rollout-step"
STABLE_ANNOTATION = "releasebot.dev/rollout-stable"
CANARIES = ("spec", "canary")
PREDICTOR_NAME = ("spec", "predictor", "name")

ROLLOUT_OWNED = [
    Owned(("metadata", "annotations", STEP_ANNOTATION)),
    Owned(("metadata", "annotations", STABLE_ANNOTATION)),
    Owned(isvc.CANARY),
    Owned(CANARIES),
]
# A canary predictor runs with fixed replicas (KServe 0.20 CanarySpec): autoscaling stays with
# the stable predictor, and a copy must not carry a traffic split of its own.
_NOT_COPIED = ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "canaryTrafficPercent", "name")


def canary_name(version: str) -> str:
    """The canary predictor's name for ``version``: a DNS label KServe accepts."""
    return "v" + re.sub(r"[^a-z0-9-]+", "-", version.lower()).strip("-")


def walk_of(doc: Any) -> tuple[int | None, str | None]:
    """The step and stable version a (plain or loaded) manifest's walk is at, or (None, None)."""
    annotations = get(doc, ("metadata", "annotations")) or {}
    step, stable = annotations.get(STEP_ANNOTATION), annotations.get(STABLE_ANNOTATION)
    try:
        index = int(str(step)) if step is not None else None
    except ValueError:
        index = None
    return index, (str(stable) if stable is not None else None)


def _with_storage(predictor: Any, storage_uri: str) -> dict[str, Any]:
    """A plain copy of ``predictor`` serving ``storage_uri``, in whichever shape it has."""
    out = {k: copy.deepcopy(v) for k, v in predictor.items() if k not in _NOT_COPIED}
    if isinstance(out.get("model"), dict):
        out["model"]["storageUri"] = storage_uri
        # A canary's model is a container spec whose name the CRD requires (the stable
        # predictor's defaults to this one).
        out["model"].setdefault("name", isvc.KSERVE.value)
    for container in out.get("containers") or ():
        if container.get("name") == isvc.KSERVE.value:
            env = [e for e in container.get("env") or () if e.get("name") != isvc.STORAGE_URI_ENV]
            container["env"] = [*env, {"name": isvc.STORAGE_URI_ENV, "value": storage_uri}]
    return out


def _annotations(step: int | None, stable: str | None) -> dict[str, Any]:
    annotations = {}
    if step is not None:
        annotations[STEP_ANNOTATION] = str(step)
    if stable is not None:
        annotations[STABLE_ANNOTATION] = stable
    return annotations


def set_walk(
    doc: Any,
    standard: bool,
    step: int | None,
    percent: int | None,
    stable: str | None,
    canary: tuple[str, str] | None = None,
) -> list[str]:
    """Write a walk's state into a loaded ISVC: the step, the stable version, and the split.

    ``percent`` None ends the walk (no split). In Standard mode ``canary`` is (version, storage
    URI) of the canary predictor; a running canary keeps its predictor when it is not given.
    """
    desired: dict[str, Any] = {"metadata": {"annotations": _annotations(step, stable)}}
    if percent is not None and not standard:
        desired["spec"] = {"predictor": {"canaryTrafficPercent": percent}}
    elif percent is not None:
        existing = get(doc, CANARIES)
        if canary is not None:
            predictor = _with_storage(get(doc, ("spec", "predictor")) or {}, canary[1])
            predictor = {"name": canary_name(canary[0]), **predictor}
        elif isinstance(existing, list) and existing:
            predictor = existing[0].get("predictor")
        else:
            raise ValueError("a Standard canary step needs the canary's predictor")
        desired["spec"] = {"canary": [{"predictor": predictor, "trafficPercent": percent}]}
    return apply_owned(doc, desired, ROLLOUT_OWNED)


def promote_standard(doc: Any) -> list[str]:
    """Make the running canary the stable predictor, under its own name, and end the walk."""
    canaries = get(doc, CANARIES)
    if not isinstance(canaries, list) or not canaries:
        return []
    predictor = canaries[0]["predictor"]
    stable = get(doc, ("spec", "predictor"))
    changed: list[str] = []
    # Keep the stable predictor's own fields (autoscaling, person's additions); take the model.
    for field in ("name", "model", "containers"):
        if field in predictor and stable.get(field) != predictor[field]:
            stable[field] = copy.deepcopy(predictor[field])
            changed.append(f"spec.predictor.{field}")
    return changed + set_walk(doc, True, None, None, None)


def canary_in(doc: Any) -> int | None:
    """The canary traffic percentage a manifest asks for, in either shape (None: no canary)."""
    percent = isvc.canary_percent(doc)
    if percent is not None:
        return percent
    canaries = get(doc, CANARIES)
    if isinstance(canaries, list) and canaries and isinstance(canaries[0], dict):
        value = canaries[0].get("trafficPercent", 0)
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0
    return None


def canary_storage_uri(doc: Any) -> str | None:
    """The storage URI of a Standard canary predictor, if one runs."""
    canaries = get(doc, CANARIES)
    if not isinstance(canaries, list) or not canaries:
        return None
    return isvc.storage_uri_in({"spec": {"predictor": canaries[0].get("predictor") or {}}})
