"""Karpenter capacity for an environment: a CPU NodePool, a GPU NodePool when a model needs GPUs,
and the EC2NodeClass they share.

The NodePool ``limits`` are the environment's cost ceiling: the sum over its models of max
replicas x requests (predictor, transformer, explainer), times the catalog's headroom, rounded up.
They belong to the capacity owner; requirements, taints and disruption belong to the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot import quantity
from bot.blueprints import BlueprintSet
from bot.catalog import Catalog, Environment, Resources
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


@dataclass
class Totals:
    cpu: Decimal = Decimal(0)
    memory: Decimal = Decimal(0)
    gpus: int = 0

    def add(self, r: Resources, count: int) -> None:
        self.cpu += quantity.parse(r.cpu) * count
        self.memory += quantity.parse(r.memory) * count
        self.gpus += r.gpus * count

    def limits(self, headroom: float) -> dict[str, Any]:
        factor = Decimal(str(headroom))
        out: dict[str, Any] = {
            "cpu": quantity.cpu_ceiling(self.cpu * factor),
            "memory": quantity.memory_ceiling(self.memory * factor),
        }
        if self.gpus:
            out["nvidia.com/gpu"] = self.gpus  # GPUs are whole devices: no headroom on a count
        return out


def totals(cat: Catalog, env: Environment) -> tuple[Totals, Totals]:
    """(CPU pool, GPU pool) requests at every model's max replicas."""
    cpu, gpu = Totals(), Totals()
    small = Resources(cpu="500m", memory="1Gi")
    for model in cat.models_in(env):
        replicas = model.replicas_in(env).max
        resources = model.resources_in(env)
        (gpu if resources.gpus else cpu).add(resources, replicas)
        if model.transformer:
            cpu.add(model.transformer.resources or small, replicas)
        if model.explainer:
            cpu.add(model.explainer.resources or small, replicas)
    return cpu, gpu


def needs_gpu_pool(cat: Catalog, env: Environment) -> bool:
    return any(m.resources_in(env).gpus for m in cat.models_in(env))


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


def nodepool(cat: Catalog, env: Environment, bp: BlueprintSet, gpu: bool) -> Any:
    cpu_totals, gpu_totals = totals(cat, env)
    k = cat.karpenter
    return bp.render(
        "karpenter/nodepool.yaml",
        {
            "nodePool.name": gpu_pool_name(env) if gpu else cpu_pool_name(env),
            "env.name": env.name,
            "nodeClass.name": cpu_pool_name(env),
            "nodePool.requirements": _requirements(cat, gpu),
            "nodePool.taints": [GPU_TAINT] if gpu else None,
            "nodePool.limits": (gpu_totals if gpu else cpu_totals).limits(k.headroom),
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
