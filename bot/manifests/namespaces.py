"""Each environment's Namespace (``<env>/namespace.yaml``), with its Pod Security admission labels.

The environments' Argo CD project may create exactly these Namespaces, by name
(:func:`whitelist`), and nothing else cluster-wide apart from the Karpenter kinds. A Namespace in
Git rather than Argo CD's ``CreateNamespace=true``: it is reviewed, validated like every other
manifest, carries its labels without ``managedNamespaceMetadata``, and needs the same project
permission either way.

It does not create releasebot's own namespace: that one holds the Secret made out of band before
the bot's first sync, so it exists already.
"""

from __future__ import annotations

from typing import Any

from bot.blueprints import BlueprintSet
from bot.catalog import Catalog, Environment
from bot.manifests.ownership import Owned

FILE = "namespace.yaml"
_LABELS = ("metadata", "labels")
CATALOG_OWNED = [
    Owned(("metadata", "name")),
    Owned((*_LABELS, "releasebot.dev/environment")),
    *(
        Owned((*_LABELS, f"pod-security.kubernetes.io/{mode}{suffix}"))
        for mode in ("enforce", "warn", "audit")
        for suffix in ("", "-version")
    ),
    Owned(("metadata", "annotations", "argocd.argoproj.io/sync-options"), "presence"),
]


def path_of(env: str) -> str:
    return f"{env}/{FILE}"


def namespace(cat: Catalog, env: Environment, bp: BlueprintSet) -> Any:
    return bp.render(
        "namespace.yaml",
        {
            "env.name": env.name,
            "env.namespace": env.namespace,
            "env.podSecurity": env.pod_security,
            # The policy as of the cluster's version, so an upgrade does not tighten it unreviewed.
            "cluster.podSecurityVersion": f"v{cat.kubernetes_version}",
        },
    )


def whitelist(cat: Catalog) -> list[dict[str, str]]:
    """The AppProject's ``clusterResourceWhitelist`` entries for the environments' Namespaces."""
    names = dict.fromkeys(e.namespace for e in cat.environments)  # in catalog order, once each
    return [{"group": "", "kind": "Namespace", "name": name} for name in names]
