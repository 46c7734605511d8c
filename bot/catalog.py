"""The catalog (``releasebot.yaml``): load, validate, and turn into frozen dataclasses.

This is the edge where raw YAML stops. :func:`load_catalog` checks the file against
``schemas/catalog.schema.json`` and then the rules a schema cannot express (unique names,
references between environments and models, cron syntax, replicas, scale-to-zero against the
KServe deployment mode, and the dangerous values of :mod:`bot.catalogsafety`), reporting every
problem with file, line and JSON path. Code past this
point works with :class:`Catalog` and never re-validates dicts.

It does not read blueprints or manifests; its only I/O is reading the one file (and checking that a
blueprint folder it names exists).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NewType

from bot import __version__, catalogsafety, yamlio, yamlplain
from bot.cron import cron_error
from bot.errors import InvalidInput, Problem
from bot.schemacheck import catalog_validator, check

ModelName = NewType("ModelName", str)
EnvName = NewType("EnvName", str)
Quantity = str | int

CATALOG_FILE = "releasebot.yaml"
# Top-level folders of an environments repo that an environment may not be named after.
RESERVED_DIRS = frozenset({"argocd", "releasebot", "github", "docs"})
DEFAULT_BOT_IMAGE = f"ghcr.io/releasebot/releasebot:{__version__}"
DEFAULT_BOT_NAMESPACE = "releasebot"
# kube-prometheus-stack's Prometheus selects ServiceMonitors and PrometheusRules by the label
# release=<its Helm release name>; this is the name its own install instructions use.
DEFAULT_MONITORING_LABELS = (("release", "kube-prometheus-stack"),)
# A catalog grows by about 400 bytes a model, so the general 2 MiB cap on YAML files would stop
# a fleet near 5,000 models. 8 MiB holds about 20,000; the hostile-input guard still bounds what
# aliases and nesting can make of it, so only honest size is allowed to grow.
MAX_CATALOG_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class SecretRef:
    """A key of a Secret, by reference: the Secret is created out of band in each environment's
    namespace, and no credential is ever written into the catalog or the manifests."""

    name: str
    key: str


def _secret(raw: dict[str, Any] | None) -> SecretRef | None:
    return SecretRef(name=raw["name"], key=raw["key"]) if raw else None


def seconds(duration: str) -> int:
    """``90s``, ``10m``, ``1h`` in seconds (the schema admits nothing else)."""
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


@dataclass(frozen=True)
class Query:
    """A catalog-named analysis query and the threshold the canary must meet."""

    name: str
    query: str
    max: float | None = None
    min: float | None = None
    max_ratio_to_stable: float | None = None


@dataclass(frozen=True)
class Canary:
    """An environment's canary walk: traffic steps, the soak each step serves before its analysis
    decides, the deadline for a step to be synced and Healthy, and the analysis itself."""

    steps: tuple[int, ...]
    interval: int  # seconds
    deadline: int  # seconds
    no_data: str = "fail"
    min_requests: int = 1
    max_error_ratio: float | None = 0.01
    max_latency_p95_ms: float | None = None
    max_latency_ratio: float | None = None
    queries: tuple[Query, ...] = ()


@dataclass(frozen=True)
class GateMetric:
    """One metric rule of a quality gate: which way is better, and how much better or worse
    than the baseline (absolute difference) or which absolute bound the candidate must meet."""

    name: str
    higher_is_better: bool
    min_improvement: float | None = None
    max_regression: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class QualityGate:
    """An environment's quality gate: the baseline (``"serving"`` or an alias name) and the
    metrics and tags a candidate must pass before a release change is proposed there."""

    against: str  # "serving", or an MLflow alias without its "@"
    metrics: tuple[GateMetric, ...] = ()
    tags: tuple[tuple[str, str | None], ...] = ()  # (name, required value or None: present)


def _gate(raw: dict[str, Any] | None) -> QualityGate | None:
    if raw is None:
        return None
    return QualityGate(
        against=raw.get("against", "serving").removeprefix("@"),
        metrics=tuple(
            GateMetric(
                m["name"],
                m["direction"] == "higher",
                m.get("minImprovement"),
                m.get("maxRegression"),
                m.get("min"),
                m.get("max"),
            )
            for m in raw.get("metrics", ())
        ),
        tags=tuple((t["name"], t.get("value")) for t in raw.get("tags", ())),
    )


def _canary(raw: dict[str, Any] | None) -> Canary | None:
    if raw is None:
        return None
    a = raw.get("analysis", {})
    return Canary(
        steps=tuple(raw["steps"]),
        interval=seconds(raw.get("interval", "10m")),
        deadline=seconds(raw.get("deadline", "15m")),
        no_data=a.get("noData", "fail"),
        min_requests=a.get("minRequests", 1),
        max_error_ratio=a.get("maxErrorRatio", 0.01),
        max_latency_p95_ms=a.get("maxLatencyP95Ms"),
        max_latency_ratio=a.get("maxLatencyRatio"),
        queries=tuple(
            Query(q["name"], q["query"], q.get("max"), q.get("min"), q.get("maxRatioToStable"))
            for q in a.get("queries", ())
        ),
    )


@dataclass(frozen=True)
class Resources:
    cpu: Quantity
    memory: Quantity
    gpus: int = 0
    limit_cpu: Quantity | None = None
    limit_memory: Quantity | None = None

    def as_k8s(self) -> dict[str, dict[str, Quantity]]:
        """Kubernetes requests/limits. Memory is limited at its request unless told otherwise
        (an over-committed model server is OOM-killed at random); CPU is not limited by default
        (throttling hurts latency more than it saves)."""
        requests: dict[str, Quantity] = {"cpu": self.cpu, "memory": self.memory}
        limits: dict[str, Quantity] = {"memory": self.limit_memory or self.memory}
        if self.limit_cpu is not None:
            limits = {"cpu": self.limit_cpu, **limits}
        if self.gpus:
            requests["nvidia.com/gpu"] = self.gpus
            limits["nvidia.com/gpu"] = self.gpus
        return {"requests": requests, "limits": limits}


@dataclass(frozen=True)
class Replicas:
    min: int
    max: int


@dataclass(frozen=True)
class Serving:
    format: str | None = None
    runtime: str | None = None
    protocol_version: str | None = None
    image: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Component:
    """A custom container (transformer, or custom explainer)."""

    image: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    resources: Resources | None = None


@dataclass(frozen=True)
class Explainer:
    art_type: str | None = None
    art_config: tuple[tuple[str, str], ...] = ()
    container: Component | None = None
    resources: Resources | None = None


@dataclass(frozen=True)
class DataRef:
    uri: str
    format: str | None = None


@dataclass(frozen=True)
class Drift:
    schedule: str
    current: DataRef
    action: str
    reference: DataRef | None = None  # None: the served version's training dataset
    dataset_drift_share: float = 0.5
    method: str | None = None
    threshold: float | None = None
    columns: tuple[tuple[str, str | None, float | None], ...] = ()
    sample: int = 100_000
    resources: Resources = Resources(cpu="500m", memory="1Gi")
    service_account: str | None = None  # None: jobs.serviceAccountName


@dataclass(frozen=True)
class Retrain:
    pipeline_id: str
    pipeline_version_id: str | None = None
    experiment_id: str | None = None
    schedule: str = "0 3 * * *"
    parameters: tuple[tuple[str, Any], ...] = ()
    service_account: str | None = None  # None: jobs.serviceAccountName


@dataclass(frozen=True)
class Model:
    name: ModelName
    registered_model: str
    serving: Serving
    resources: Resources
    replicas: Replicas
    description: str | None = None
    autoscaling: tuple[str, int] | None = None
    transformer: Component | None = None
    explainer: Explainer | None = None
    drift: Drift | None = None
    retrain: Retrain | None = None
    environments: tuple[EnvName, ...] | None = None  # None: all
    overrides: dict[EnvName, tuple[Replicas | None, Resources | None]] = field(default_factory=dict)

    def replicas_in(self, env: Environment) -> Replicas:
        replicas = (self.overrides.get(env.name, (None, None))[0]) or self.replicas
        if replicas.min == 0 and not env.scale_to_zero:
            # Scale-to-zero is the environment's decision: elsewhere keep one warm replica.
            return Replicas(min=1, max=max(replicas.max, 1))
        return replicas

    def resources_in(self, env: Environment) -> Resources:
        return (self.overrides.get(env.name, (None, None))[1]) or self.resources

    @property
    def gpus(self) -> bool:
        return self.resources.gpus > 0 or any(r and r.gpus for _, r in self.overrides.values())


@dataclass(frozen=True)
class Environment:
    name: EnvName
    alias: str
    namespace: str
    write_back: str
    server: str
    scale_to_zero: bool = False
    reviewer_users: tuple[str, ...] = ()
    reviewer_teams: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    pod_security: str = "baseline"  # the Pod Security level the namespace enforces
    canary: Canary | None = None  # None: a release goes to 100% in one change
    auto_merge: bool = False  # GitHub merges release pull requests once branch protection allows
    promotion: str = "ordered"  # or "independent": no wait for the environment before
    gate: QualityGate | None = None


@dataclass(frozen=True)
class Karpenter:
    node_role: str
    ami_alias: str = "al2023@latest"
    instance_categories: tuple[str, ...] = ("c", "m", "r")
    gpu_instance_families: tuple[str, ...] = ("g5", "g6")
    capacity_types: tuple[str, ...] = ("on-demand",)
    headroom: float = 1.2
    consolidation_policy: str = "WhenEmptyOrUnderutilized"
    consolidate_after: str = "5m"
    budgets: tuple[tuple[tuple[str, str], ...], ...] = ((("nodes", "10%"),),)


@dataclass(frozen=True)
class Catalog:
    source: str  # the name used in messages
    root: Path  # the folder holding releasebot.yaml
    tracking_uri: str
    storage_uri_map: tuple[tuple[str, str], ...]
    repo_url: str
    branch: str
    catalog_owner_users: tuple[str, ...]
    catalog_owner_teams: tuple[str, ...]
    cluster_name: str
    cluster_server: str
    kubernetes_version: str
    kserve_mode: str
    karpenter: Karpenter
    argocd_namespace: str
    argocd_project: str
    bot_image: str
    bot_namespace: str
    bot_secret: str
    bot_replicas: int
    bot_service_monitor: bool
    pipelines_endpoint: str | None
    pipelines_token: SecretRef | None
    registry_token: SecretRef | None
    jobs_service_account: str | None
    blueprints: Path | None
    environments: tuple[Environment, ...]
    models: tuple[Model, ...]
    kserve_version: str | None = None
    prometheus_url: str | None = None
    # releasebot/prometheusrule.yaml, releasebot/grafana-dashboard.yaml, and the labels that let
    # the Prometheus Operator select the rule and the ServiceMonitor (bot.monitoringLabels).
    bot_prometheus_rule: bool = True
    bot_grafana_dashboard: bool = True
    bot_monitoring_labels: tuple[tuple[str, str], ...] = DEFAULT_MONITORING_LABELS

    @property
    def standard_mode(self) -> bool:
        """KServe without Knative: RawDeployment, called Standard from KServe 0.20."""
        return self.kserve_mode in ("RawDeployment", "Standard")

    def environment(self, name: str) -> Environment:
        return self._environments[name]

    def service_account(self, job: Drift | Retrain) -> str | None:
        """The service account a model's drift or retrain pods run as (None: the namespace's
        default, with no token mounted)."""
        return job.service_account or self.jobs_service_account

    def model(self, name: str) -> Model:
        return self._models[name]

    def models_in(self, env: Environment) -> tuple[Model, ...]:
        return self._models_in[env.name]

    # Lookups by name, built once: a pass asks for a model per change, and a linear search per
    # question would make a full pass quadratic in the fleet.
    @cached_property
    def _environments(self) -> dict[str, Environment]:
        return {e.name: e for e in self.environments}

    @cached_property
    def _models(self) -> dict[str, Model]:
        return {m.name: m for m in self.models}

    @cached_property
    def _models_in(self) -> dict[str, tuple[Model, ...]]:
        return {
            e.name: tuple(m for m in self.models if m.environments is None or e.name in m.environments)
            for e in self.environments
        }


# --- building --------------------------------------------------------------------------------


def _resources(raw: dict[str, Any] | None) -> Resources | None:
    if raw is None:
        return None
    limits = raw.get("limits", {})
    return Resources(
        cpu=raw["cpu"],
        memory=raw["memory"],
        gpus=raw.get("gpus", 0),
        limit_cpu=limits.get("cpu"),
        limit_memory=limits.get("memory"),
    )


def drift_resources(sample: int) -> Resources:
    """Requests for a drift check sampling ``sample`` rows a side, from measured peaks at 20 columns:
    0.6 GiB for a 100k-row window, 1.2 GiB for a 1M-row window sampled to 100k (the window is read
    whole before sampling), 2.2 GiB for 1M rows unsampled. So: 1.5 GiB (reading a window of up to
    about 1M rows) plus 1.5 GiB per million sampled rows, rounded up. Larger windows: set
    ``drift.resources`` in the catalog."""
    import math

    return Resources(cpu="1", memory=f"{math.ceil(1.5 + 1.5 * sample / 1_000_000)}Gi")


def _component(raw: dict[str, Any] | None) -> Component | None:
    if raw is None:
        return None
    return Component(
        image=raw["image"],
        args=tuple(raw.get("args", ())),
        env=tuple(sorted(raw.get("env", {}).items())),
        resources=_resources(raw.get("resources")),
    )


def _data(raw: Any) -> DataRef | None:
    return DataRef(uri=raw["uri"], format=raw.get("format")) if isinstance(raw, dict) else None


def _model(raw: dict[str, Any]) -> Model:
    s = raw["serving"]
    serving = Serving(
        format=s.get("format"),
        runtime=s.get("runtime"),
        protocol_version=s.get("protocolVersion"),
        image=s.get("image"),
        args=tuple(s.get("args", ())),
        env=tuple(sorted(s.get("env", {}).items())),
    )
    ex = raw.get("explainer")
    explainer = None
    if ex is not None:
        art = ex.get("art")
        explainer = Explainer(
            art_type=art["type"] if art else None,
            art_config=tuple(sorted((art or {}).get("config", {}).items())),
            container=_component(ex) if "image" in ex else None,
            resources=_resources((art or {}).get("resources") or ex.get("resources")),
        )
    d = raw.get("drift")
    drift = None
    if d is not None:
        drift = Drift(
            schedule=d["schedule"],
            current=_data(d["current"]),
            action=d["action"],
            reference=_data(d.get("reference", "training")),
            dataset_drift_share=d.get("datasetDriftShare", 0.5),
            method=d.get("method"),
            threshold=d.get("threshold"),
            columns=tuple((c, v.get("method"), v.get("threshold")) for c, v in sorted(d.get("columns", {}).items())),
            sample=d.get("sample", 100_000),
            resources=_resources(d.get("resources")) or drift_resources(d.get("sample", 100_000)),
            service_account=d.get("serviceAccountName"),
        )
    r = raw.get("retrain")
    retrain = None
    if r is not None:
        retrain = Retrain(
            pipeline_id=r["pipelineId"],
            pipeline_version_id=r.get("pipelineVersionId"),
            experiment_id=r.get("experimentId"),
            schedule=r.get("schedule", "0 3 * * *"),
            parameters=tuple(sorted(r.get("parameters", {}).items())),
            service_account=r.get("serviceAccountName"),
        )
    auto = raw.get("autoscaling")
    return Model(
        name=ModelName(raw["name"]),
        registered_model=raw["registeredModel"],
        serving=serving,
        resources=_resources(raw["resources"]),
        replicas=Replicas(**raw["replicas"]),
        description=raw.get("description"),
        autoscaling=(auto["metric"], auto["target"]) if auto else None,
        transformer=_component(raw.get("transformer")),
        explainer=explainer,
        drift=drift,
        retrain=retrain,
        environments=tuple(EnvName(e) for e in raw["environments"]) if "environments" in raw else None,
        overrides={
            EnvName(k): (Replicas(**v["replicas"]) if "replicas" in v else None, _resources(v.get("resources")))
            for k, v in raw.get("overrides", {}).items()
        },
    )


def _build(raw: dict[str, Any], source: str, root: Path) -> Catalog:
    cluster = raw["cluster"]
    server = cluster.get("server", "https://kubernetes.default.svc")
    k = raw["karpenter"]
    dis = k.get("disruption", {})
    karpenter = Karpenter(
        node_role=k["nodeRole"],
        ami_alias=k.get("amiAlias", "al2023@latest"),
        instance_categories=tuple(k.get("instanceCategories", ("c", "m", "r"))),
        gpu_instance_families=tuple(k.get("gpuInstanceFamilies", ("g5", "g6"))),
        capacity_types=tuple(k.get("capacityTypes", ("on-demand",))),
        headroom=float(k.get("headroom", 1.2)),
        consolidation_policy=dis.get("consolidationPolicy", "WhenEmptyOrUnderutilized"),
        consolidate_after=dis.get("consolidateAfter", "5m"),
        budgets=tuple(tuple(b.items()) for b in dis.get("budgets", [{"nodes": "10%"}])),
    )
    envs = tuple(
        Environment(
            name=EnvName(e["name"]),
            alias=e["alias"],
            namespace=e["namespace"],
            write_back=e["writeBack"],
            server=e.get("server", server),
            scale_to_zero=e.get("scaleToZero", False),
            reviewer_users=tuple(e.get("reviewers", {}).get("users", ())),
            reviewer_teams=tuple(e.get("reviewers", {}).get("teams", ())),
            labels=tuple(e.get("labels", ())),
            pod_security=e.get("podSecurity", "baseline"),
            canary=_canary(e.get("canary")),
            auto_merge=e.get("autoMerge", False),
            promotion=e.get("promotion", "ordered"),
            gate=_gate(e.get("gate")),
        )
        for e in raw["environments"]
    )
    owners = raw["repository"].get("catalogOwners", {})
    return Catalog(
        source=source,
        root=root,
        tracking_uri=raw["registry"]["trackingUri"],
        storage_uri_map=tuple(raw["registry"].get("storageUriMap", {}).items()),
        repo_url=raw["repository"]["url"],
        branch=raw["repository"].get("branch", "main"),
        catalog_owner_users=tuple(owners.get("users", ())),
        catalog_owner_teams=tuple(owners.get("teams", ())),
        cluster_name=cluster["name"],
        cluster_server=server,
        kubernetes_version=cluster.get("kubernetesVersion", "1.30"),
        kserve_mode=cluster.get("kserveDeploymentMode", "Serverless"),
        karpenter=karpenter,
        argocd_namespace=raw.get("argocd", {}).get("namespace", "argocd"),
        argocd_project=raw.get("argocd", {}).get("project", "releasebot"),
        bot_image=raw.get("bot", {}).get("image", DEFAULT_BOT_IMAGE),
        bot_namespace=raw.get("bot", {}).get("namespace", DEFAULT_BOT_NAMESPACE),
        bot_secret=raw.get("bot", {}).get("secretName", "releasebot"),
        bot_replicas=raw.get("bot", {}).get("replicas", 1),
        bot_service_monitor=raw.get("bot", {}).get("serviceMonitor", True),
        pipelines_endpoint=raw.get("pipelines", {}).get("endpoint"),
        pipelines_token=_secret(raw.get("pipelines", {}).get("tokenSecret")),
        registry_token=_secret(raw["registry"].get("tokenSecret")),
        jobs_service_account=raw.get("jobs", {}).get("serviceAccountName"),
        blueprints=(root / raw["blueprints"]) if "blueprints" in raw else None,
        environments=envs,
        models=tuple(_model(m) for m in raw["models"]),
        kserve_version=cluster.get("kserveVersion"),
        prometheus_url=raw.get("prometheus", {}).get("url"),
        bot_prometheus_rule=raw.get("bot", {}).get("prometheusRule", raw.get("bot", {}).get("serviceMonitor", True)),
        bot_grafana_dashboard=raw.get("bot", {}).get("grafanaDashboard", True),
        bot_monitoring_labels=tuple(
            sorted(raw.get("bot", {}).get("monitoringLabels", dict(DEFAULT_MONITORING_LABELS)).items())
        ),
    )


# --- rules beyond the schema -----------------------------------------------------------------


def _canary_problems(raw: dict[str, Any], canary: dict[str, Any], where: tuple[Any, ...], add: Any) -> None:
    """A canary walk the catalog's KServe can carry out, judged on a Prometheus it names."""
    steps = canary["steps"]
    if any(b <= a for a, b in itertools.pairwise(steps)):
        add((*where, "steps"), f"canary steps must increase strictly, got {steps}", "canary")
    mode = raw["cluster"].get("kserveDeploymentMode", "Serverless")
    version = raw["cluster"].get("kserveVersion")
    if mode in ("RawDeployment", "Standard"):
        minor = int(version.split(".")[1]) if version else None
        if minor is None or minor < 20:
            said = f"cluster.kserveVersion is {version}" if version else "cluster.kserveVersion is not set"
            add(
                where,
                f"canary steps in {mode} mode need KServe 0.20 or later (spec.canary); {said}. "
                'Set cluster.kserveVersion to "0.20" or later, or use Serverless mode',
                "canary",
            )
    elif 0 in steps:
        add(
            (*where, "steps"),
            "a 0% step (dark launch) needs Standard mode's spec.canary; Serverless "
            "canaryTrafficPercent 0 would only pin traffic to the old revision",
            "canary",
        )
    if "prometheus" not in raw:
        add(where, "canary analysis needs prometheus.url: where the step queries are asked", "canary")
    for j, q in enumerate(canary.get("analysis", {}).get("queries", ())):
        if "{{revision}}" not in q["query"]:
            add(
                (*where, "analysis", "queries", j, "query"),
                f"query {q['name']!r} has no {{{{revision}}}}: it would measure canary and stable alike",
                "canary",
            )


def _semantic_problems(raw: dict[str, Any], doc: Any, source: str, root: Path) -> list[Problem]:
    problems: list[Problem] = []

    def add(path: tuple[Any, ...], message: str, rule: str) -> None:
        problems.append(Problem(source, yamlio.line_of(doc, path), yamlio.format_path(path), message, rule))

    env_names: dict[str, int] = {}
    for i, env in enumerate(raw["environments"]):
        if env["name"] in env_names:
            add(("environments", i, "name"), f"environment {env['name']!r} is defined twice", "duplicate")
        env_names.setdefault(env["name"], i)
        if env["name"] in RESERVED_DIRS:
            add(("environments", i, "name"), f"{env['name']!r} is reserved for the repo's own folders", "reserved")
    if "package" in raw.get("bot", {}):
        add(
            ("bot", "package"),
            "bot.package is no longer used: the validate workflow runs releasebot from bot.image; remove it",
            "not-supported",
        )
    if "image" in raw.get("pipelines", {}):
        add(
            ("pipelines", "image"),
            "pipelines.image is no longer used: the retrain CronJob runs `releasebot retrain submit` from "
            "bot.image; remove it",
            "not-supported",
        )
    for i, env in enumerate(raw["environments"]):
        if "canary" in env:
            _canary_problems(raw, env["canary"], ("environments", i, "canary"), add)
        # Accepted settings must do what they say: GitHub merges only pull requests.
        if env.get("autoMerge") is True and env["writeBack"] != "pull-request":
            add(
                ("environments", i, "autoMerge"),
                f"autoMerge needs writeBack: pull-request (this environment writes back by {env['writeBack']}: "
                "nothing waits to be merged)",
                "not-supported",
            )
    placements = {}
    for i, env in enumerate(raw["environments"]):
        key = (env.get("server", raw["cluster"].get("server")), env["namespace"])
        if key in placements:
            add(
                ("environments", i, "namespace"),
                f"namespace {env['namespace']!r} is already used by environment {placements[key]!r} on the same "
                "cluster; their InferenceServices would overwrite each other",
                "duplicate",
            )
        placements.setdefault(key, env["name"])
        if env["namespace"] == raw.get("bot", {}).get("namespace", DEFAULT_BOT_NAMESPACE):
            add(
                ("environments", i, "namespace"),
                f"namespace {env['namespace']!r} is releasebot's own (bot.namespace); give models their own",
                "duplicate",
            )
    raw_mode = raw["cluster"].get("kserveDeploymentMode", "Serverless")
    if raw_mode in ("RawDeployment", "Standard"):
        for i, env in enumerate(raw["environments"]):
            if env.get("scaleToZero"):
                add(
                    ("environments", i, "scaleToZero"),
                    "scale-to-zero needs KServe's Serverless mode (Knative); cluster.kserveDeploymentMode is "
                    f"{raw_mode}, where minReplicas 0 is not supported",
                    "scale-to-zero",
                )

    needs_pipelines = False
    seen_models: set[str] = set()
    for i, model in enumerate(raw["models"]):
        where = ("models", i)
        if model["name"] == "karpenter":
            add(
                (*where, "name"),
                "'karpenter' is reserved: each environment keeps its NodePools in <env>/karpenter/",
                "reserved",
            )
        if model["name"] in seen_models:
            add((*where, "name"), f"model {model['name']!r} is defined twice", "duplicate")
        seen_models.add(model["name"])
        for j, env in enumerate(model.get("environments", [])):
            if env not in env_names:
                add((*where, "environments", j), f"unknown environment {env!r}", "reference")
        for env in model.get("overrides", {}):
            if env not in env_names:
                add((*where, "overrides", env), f"unknown environment {env!r}", "reference")
        for path, rep in [((*where, "replicas"), model["replicas"])] + [
            ((*where, "overrides", e, "replicas"), o["replicas"])
            for e, o in model.get("overrides", {}).items()
            if "replicas" in o
        ]:
            if rep["min"] > rep["max"]:
                add((*path, "min"), f"min ({rep['min']}) is greater than max ({rep['max']})", "replicas")
            if rep["min"] == 0 and raw_mode in ("RawDeployment", "Standard"):
                add(
                    (*path, "min"),
                    f"minReplicas 0 needs KServe's Serverless mode; cluster.kserveDeploymentMode is {raw_mode}",
                    "scale-to-zero",
                )
        drift = model.get("drift")
        if drift:
            err = cron_error(drift["schedule"])
            if err:
                add((*where, "drift", "schedule"), f"invalid cron schedule {drift['schedule']!r}: {err}", "cron")
            if drift["action"] == "retrain":
                needs_pipelines = True
                if "retrain" not in model:
                    add(
                        (*where, "drift", "action"),
                        "action 'retrain' needs the model's 'retrain' section (which pipeline to submit)",
                        "reference",
                    )
        retrain = model.get("retrain")
        if retrain and "schedule" in retrain:
            err = cron_error(retrain["schedule"])
            if err:
                add((*where, "retrain", "schedule"), f"invalid cron schedule {retrain['schedule']!r}: {err}", "cron")
        if retrain:
            needs_pipelines = True
    if needs_pipelines and "pipelines" not in raw:
        add(
            ("pipelines",),
            "models retrain on drift, so 'pipelines.endpoint' (where runs are submitted) is required",
            "reference",
        )
    for i, budget in enumerate(raw["karpenter"].get("disruption", {}).get("budgets", [])):
        if "schedule" in budget and (err := cron_error(budget["schedule"])):
            add(("karpenter", "disruption", "budgets", i, "schedule"), f"invalid cron schedule: {err}", "cron")
    if "blueprints" in raw:
        folder = (root / raw["blueprints"]).resolve()
        if not folder.is_relative_to(root.resolve()):
            # The environments repo must carry its blueprints, or CI renders something else.
            add(
                ("blueprints",),
                f"blueprint folder {raw['blueprints']!r} must be inside the catalog's folder",
                "reference",
            )
        elif not folder.is_dir():
            add(("blueprints",), f"blueprint folder {raw['blueprints']!r} does not exist", "reference")
    for path, message, rule in catalogsafety.problems(raw):
        add(path, message, rule)
    return problems


def parse_catalog(text: str, source: str, root: Path, cache: Path | None = None) -> Catalog:
    """Validate catalog text; raise :class:`InvalidInput` listing every problem found.

    With a ``cache`` folder, a text validated before (same text, folder and releasebot version)
    is not parsed or validated again: its checked, plain form is read back from a JSON file. A
    thousand-model catalog takes seconds to parse round-trip, and the release loop reads the
    same catalog for every event until a pull request changes it.
    """
    remembered = _cache_file(cache, text, source, root) if cache is not None else None
    if remembered is not None:
        try:
            return _build(json.loads(remembered.read_text(encoding="utf-8")), source, root)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # absent or unreadable: validate afresh
    raw = _checked(text, source, root)
    if remembered is not None:
        try:
            remembered.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=remembered.parent, delete=False, encoding="utf-8") as out:
                json.dump(raw, out)
            os.replace(out.name, remembered)
        except OSError:
            pass  # a cache that cannot be written costs a parse next time, nothing else
    return _build(raw, source, root)


@functools.cache
def _rules() -> str:
    """What validated a remembered catalog: this module's rules and the schema, by content, so
    a catalog accepted by an older releasebot is checked again by a newer one."""
    from bot.resources import schemas_dir

    here = Path(__file__).parent
    rules = [Path(__file__), here / "catalogsafety.py", here / "imageref.py", here / "quantity.py"]
    code = b"".join(p.read_bytes() for p in rules) + (schemas_dir() / "catalog.schema.json").read_bytes()
    return hashlib.sha256(code).hexdigest()


def _cache_file(cache: Path, text: str, source: str, root: Path) -> Path:
    digest = hashlib.sha256("\0".join([__version__, _rules(), str(root), source, text]).encode()).hexdigest()[:32]
    return cache / f"catalog-{digest}.json"


def _checked(text: str, source: str, root: Path) -> dict[str, Any]:
    """The catalog as plain data, once every check passed."""
    raw = yamlplain.load(text, source, MAX_CATALOG_BYTES)
    if _problems(raw, None, source, root):
        # Rare: parse again round-trip, so that every problem gets its line.
        doc = yamlio.load(text, source, MAX_CATALOG_BYTES)
        raw = yamlio.to_plain(doc)
        problems = _problems(raw, doc, source, root)
        if problems:
            raise InvalidInput(problems)
    return raw


def _problems(raw: Any, doc: Any, source: str, root: Path) -> list[Problem]:
    """Schema problems, else the rules a schema cannot express; ``doc`` (round-trip) only locates them."""
    if not isinstance(raw, dict):
        return [Problem(source, 1, "$", f"expected a mapping, got {type(raw).__name__}")]
    problems = check(raw, catalog_validator(), source, doc)
    if problems:
        return problems
    return sorted(_semantic_problems(raw, doc, source, root), key=lambda p: (p.line or 0, p.path))


def load_catalog(path: Path, source: str | None = None) -> Catalog:
    """Read and validate a catalog file. ``source`` is the name shown in messages."""
    name = source or str(path)
    return parse_catalog(yamlio.read_text(path, name, MAX_CATALOG_BYTES), name, path.resolve().parent)
