"""Karpenter capacity for an environment: a CPU NodePool, a GPU NodePool when a model needs GPUs,
and the EC2NodeClass they share.

The NodePool ``limits`` come from :mod:`bot.capacity` and belong to the capacity owner;
requirements, taints and disruption belong to the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot import capacity
from bot.blueprints import BlueprintSet
from bot.catalog import Catalog, Environment
from bot.manifests.ownership import Owned

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}

NODEPOOL_CATALOG_OWNED = [
    Owned(("metadata", "name")),
    Owned(("metadata", "labels", "releasebot.dev/environment")),
    Owned(("spec", "template", "spec", "nodeClassRef", "name")),
    Owned(("spec", "template", "spec", "requirements")),
    Owned(("spec", "template", "spec", "taints")),
    Owned(("spec", "disruption")),
]
CAPACITY_OWNED = [Owned(("spec", "limits"))]


def pool_path(env: str, gpu: bool) -> str:
    return f"{env}/karpenter/nodepool{'-gpu' if gpu else ''}.yaml"


NODECLASS_CATALOG_OWNED = [
    Owned(("metadata", "name")),
    Owned(("spec", "role")),
    Owned(("spec", "amiSelectorTerms")),
    Owned(("spec", "subnetSelectorTerms")),
    Owned(("spec", "securityGroupSelectorTerms")),
]


def cpu_pool_name(env: Environment) -> str:
    return f"releasebot-{env.name}"


def gpu_pool_name(env: Environment) -> str:
    return f"releasebot-{env.name}-gpu"


def _requirements(cat: Catalog, gpu: bool) -> list[dict[str, Any]]:
    k = cat.karpenter
    family = (
        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": list(k.gpu_instance_families)}
        if gpu
        else {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": list(k.instance_categories)}
    )
    return [
        family,
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(k.capacity_types)},
    ]


def nodepool(cat: Catalog, env: Environment, bp: BlueprintSet, gpu: bool, canaries: Iterable[str] = ()) -> Any:
    k = cat.karpenter
    return bp.render(
        "karpenter/nodepool.yaml",
        {
            "nodePool.name": gpu_pool_name(env) if gpu else cpu_pool_name(env),
            "env.name": env.name,
            "nodeClass.name": cpu_pool_name(env),
            "nodePool.requirements": _requirements(cat, gpu),
            "nodePool.taints": [GPU_TAINT] if gpu else None,
            "nodePool.limits": capacity.limits(cat, env, canaries)["gpu" if gpu else "cpu"],
            "nodePool.disruption": {
                "consolidationPolicy": k.consolidation_policy,
                "consolidateAfter": k.consolidate_after,
                "budgets": [dict(b) for b in k.budgets],
            },
        },
    )


def ec2nodeclass(cat: Catalog, env: Environment, bp: BlueprintSet) -> Any:
    return bp.render(
        "karpenter/ec2nodeclass.yaml",
        {
            "nodeClass.name": cpu_pool_name(env),
            "env.name": env.name,
            "karpenter.nodeRole": cat.karpenter.node_role,
            "karpenter.amiAlias": cat.karpenter.ami_alias,
            "cluster.name": cat.cluster_name,
        },
    )
