"""Capacity: what an environment's models can ask of the cluster, as Karpenter NodePool limits. Pure.

The limits of an environment's NodePools are its cost ceiling: the sum over its models of max
replicas x requests (predictor, transformer, explainer), times the catalog's headroom, rounded
up. While a model's canary runs KServe keeps two predictor revisions up, so that model's
predictor counts twice. GPU models count towards the GPU pool, everything else towards the CPU
pool. GPUs are whole devices, so the GPU count gets no headroom.

The node estimate assumes a typical node per pool (:data:`CPU_NODE`, :data:`GPU_NODE`); Karpenter
picks real instance types, so it is a guide for budgets, not a promise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot import quantity
from bot.catalog import Catalog, Environment, Resources

SMALL = Resources(cpu="500m", memory="1Gi")  # transformer/explainer without resources of their own
CPU_NODE = (Decimal(8), Decimal(32) * quantity.GIB)  # e.g. m7i.2xlarge
GPU_NODE = (Decimal(4), Decimal(16) * quantity.GIB, 1)  # e.g. g5.xlarge


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
            out["nvidia.com/gpu"] = self.gpus
        return out

    def nodes(self, gpu: bool) -> int:
        if gpu:
            cores, memory, per_node = GPU_NODE
            return max(math.ceil(self.gpus / per_node), math.ceil(self.cpu / cores), math.ceil(self.memory / memory))
        cores, memory = CPU_NODE
        return max(math.ceil(self.cpu / cores), math.ceil(self.memory / memory))


def totals(cat: Catalog, env: Environment, canaries: Iterable[str] = ()) -> tuple[Totals, Totals]:
    """(CPU pool, GPU pool) requests at every model's max replicas; canary predictors twice."""
    in_canary = set(canaries)
    cpu, gpu = Totals(), Totals()
    for model in cat.models_in(env):
        replicas = model.replicas_in(env).max
        resources = model.resources_in(env)
        revisions = 2 if model.name in in_canary else 1
        (gpu if resources.gpus else cpu).add(resources, replicas * revisions)
        if model.transformer:
            cpu.add(model.transformer.resources or SMALL, replicas)
        if model.explainer:
            cpu.add(model.explainer.resources or SMALL, replicas)
    return cpu, gpu


def needs_gpu_pool(cat: Catalog, env: Environment) -> bool:
    return any(m.resources_in(env).gpus for m in cat.models_in(env))


def limits(cat: Catalog, env: Environment, canaries: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """``{"cpu": limits, "gpu": limits}``; the GPU entry only when some model needs GPUs."""
    cpu, gpu = totals(cat, env, canaries)
    out = {"cpu": cpu.limits(cat.karpenter.headroom)}
    if needs_gpu_pool(cat, env):
        out["gpu"] = gpu.limits(cat.karpenter.headroom)
    return out


@dataclass(frozen=True)
class PoolUsage:
    """One pool of one environment: what its models request at max replicas, its limits, nodes."""

    environment: str
    pool: str  # "cpu" or "gpu"
    cpu_requests: Decimal  # cores
    memory_requests: Decimal  # bytes
    gpus: int
    cpu_limit: int  # cores
    memory_limit: str  # as the NodePool says it ("28Gi")
    nodes: int  # the estimate, on the typical node of the pool

    @property
    def memory_limit_bytes(self) -> int:
        return int(quantity.parse(self.memory_limit))


def usage(cat: Catalog, env: Environment, canaries: Iterable[str] = ()) -> list[PoolUsage]:
    """The CPU pool, and the GPU pool when some model needs GPUs."""
    cpu, gpu = totals(cat, env, canaries)
    out = []
    for pool, t, is_gpu in (("cpu", cpu, False), ("gpu", gpu, True)):
        if is_gpu and not needs_gpu_pool(cat, env):
            continue
        lim = t.limits(cat.karpenter.headroom)
        out.append(PoolUsage(env.name, pool, t.cpu, t.memory, t.gpus, lim["cpu"], lim["memory"], t.nodes(is_gpu)))
    return out


def rows(pools: Iterable[PoolUsage]) -> list[dict[str, str]]:
    """One row per pool for people (``releasebot plan --capacity``); scripts read the values."""
    return [
        {
            "environment": u.environment,
            "pool": u.pool,
            "cpu requests": f"{u.cpu_requests.normalize():f}",
            "memory requests": f"{(u.memory_requests / quantity.GIB).quantize(Decimal('0.1'))}Gi",
            "gpus": str(u.gpus),
            "cpu limit": str(u.cpu_limit),
            "memory limit": u.memory_limit,
            "nodes (est.)": str(u.nodes),
        }
        for u in pools
    ]


def report(cat: Catalog, env: Environment, canaries: Iterable[str] = ()) -> list[dict[str, str]]:
    """:func:`rows` of one environment."""
    return rows(usage(cat, env, canaries))
