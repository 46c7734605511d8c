"""A synthetic fleet for the benchmarks: a catalog of N models in three environments.

Every model is a small CPU model served from a storage URI; one in ten drifts into retraining,
the others carry a drift check that only records. All three environments write back by commit,
so a benchmark measures releasebot and git, not a mocked forge. Model names sort in creation
order (``m00000``, ``m00001``, ...), so "the first model" is the same at every N.

This module only writes text; registering the models in MLflow is the benchmark's business.
"""

from __future__ import annotations

ENVIRONMENTS = (
    ("dev", "candidate", "models-dev"),
    ("staging", "champion", "models-staging"),
    ("production", "champion", "models-production"),
)


def model_name(i: int) -> str:
    return f"m{i:05d}"


def fleet_catalog(n: int, tracking_uri: str, repo_url: str = "https://github.com/acme/fleet.git") -> str:
    """The catalog text of an ``n``-model fleet whose registry is ``tracking_uri``."""
    lines = [
        "version: 1",
        "registry:",
        f"  trackingUri: {tracking_uri}",
        "repository:",
        f"  url: {repo_url}",
        "  branch: main",
        "cluster:",
        "  name: fleet",
        '  kubernetesVersion: "1.30"',
        "  kserveDeploymentMode: Serverless",
        "karpenter:",
        "  nodeRole: KarpenterNodeRole-fleet",
        "  amiAlias: al2023@latest",
        "  headroom: 1.2",
        "argocd:",
        "  namespace: argocd",
        "  project: releasebot",
        "pipelines:",
        "  endpoint: http://ml-pipeline.kubeflow.svc.cluster.local:8888/apis/v2beta1/runs",
        "environments:",
    ]
    for name, alias, namespace in ENVIRONMENTS:
        lines += [f"  - name: {name}", f"    alias: {alias}", f"    namespace: {namespace}", "    writeBack: commit"]
    lines.append("models:")
    for i in range(n):
        name = model_name(i)
        retrain = i % 10 == 0
        lines += [
            f"  - name: {name}",
            f"    registeredModel: {name}",
            "    serving:",
            "      format: sklearn",
            "    resources:",
            "      cpu: 250m",
            "      memory: 512Mi",
            "    replicas:",
            "      min: 1",
            "      max: 2",
            "    drift:",
            f'      schedule: "{i % 60} * * * *"',
            "      reference:",
            f"        uri: s3://fleet-features/{name}/reference.parquet",
            "      current:",
            f"        uri: s3://fleet-features/{name}/window.parquet",
            f"      action: {'retrain' if retrain else 'none'}",
        ]
        if retrain:
            lines += [
                "    retrain:",
                f"      pipelineId: {name}-training",
                '      schedule: "0 3 * * *"',
            ]
    return "\n".join(lines) + "\n"
