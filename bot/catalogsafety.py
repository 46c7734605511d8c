"""Catalog values that would be dangerous in the manifests releasebot writes from them.

* A credential in any URL (``https://user:pass@host``): it would be committed in clear, into every
  drift CronJob for a tracking URI. The message points at the Secret-based setting instead.
* A ``file://`` URL where a pod in the cluster would fetch (a storage URI, the pipelines endpoint,
  the tracking URI; a drift window may be a mounted file), or a link-local or cloud-metadata
  address there or in a drift window or API server (169.254.0.0/16, fe80::/10,
  ``metadata.google.internal``, Alibaba's 100.100.100.200, AWS's fd00:ec2::254).
  Such an address hands out the node's cloud credentials to whoever can name it.
* An image that is not an OCI reference (``x; rm -rf / #``), see :mod:`bot.imageref`.
* A resource quantity Kubernetes cannot hold: more than 2^63-1 in magnitude (for CPU, in
  millicores, the unit the scheduler counts in).

:func:`problems` takes the schema-valid plain catalog and returns ``(json path, message, rule)``
triples; :mod:`bot.catalog` locates and reports them with the rest. Pure: no name is resolved,
so a hostname that only resolves to a metadata address is not caught here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from bot import imageref, quantity

INT64_MAX = 2**63 - 1
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")})
Path = tuple[Any, ...]

# Where a credential belongs instead, by the first keys of its JSON path.
_SECRET_HINTS = {
    ("registry",): "put the token in a Secret and name it in registry.tokenSecret",
    ("pipelines",): "put the token in a Secret and name it in pipelines.tokenSecret",
    ("repository",): "releasebot's git credentials come from its own Secret (bot.secretName), never the URL",
}
_STORAGE_HINT = "KServe reads storage credentials from a Secret attached to the service account, never the URI"


def _walk(node: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str):
                yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*path, i))


def _credential(url: str) -> bool:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return False
    userinfo = parts.netloc.rpartition("@")[0]
    # ssh://git@host names a user, not a secret; any userinfo on http(s) can be a token.
    return ":" in userinfo or parts.scheme not in ("ssh", "git+ssh")


def _metadata_host(url: str) -> bool:
    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:  # an unbalanced IPv6 bracket
        return False
    if host in METADATA_HOSTS:
        return True
    try:
        address = ipaddress.ip_address(int(host) if host.isdigit() else host)  # 2852039166 is 169.254.169.254
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_link_local or address in METADATA_ADDRESSES


def _fetched_by_cluster(path: Path) -> bool:
    """Values a pod in the cluster fetches from: storage URIs, the KFP endpoint, the tracking URI
    (the drift job), a drift window or reference."""
    return (
        path[:2] in (("registry", "trackingUri"), ("registry", "storageUriMap"), ("pipelines", "endpoint"))
        or (len(path) >= 2 and path[-1] == "uri" and "drift" in path)
        or path[:1] == ("cluster",)
        or (len(path) == 3 and path[0] == "environments" and path[2] == "server")
    )


def _hint(path: Path) -> str:
    if path[:2] == ("registry", "storageUriMap"):
        return _STORAGE_HINT
    return _SECRET_HINTS.get(path[:1], "put credentials in a Secret, never in the catalog")


def _url_problems(path: Path, value: str) -> Iterator[tuple[Path, str, str]]:
    if "://" not in value:
        return
    if _credential(value):
        yield path, f"holds a credential in the URL; {_hint(path)}", "credential"
    if _fetched_by_cluster(path):
        # A drift window may be a file on a volume mounted into the job; the others never are.
        if value[:7].lower() == "file://" and path[-1] != "uri":
            yield path, "file:// would read the pod's own filesystem; give a URL the cluster can fetch from", "fetch"
        elif _metadata_host(value):
            yield (
                path,
                "points at a link-local or cloud metadata address, which hands out the node's cloud credentials",
                "fetch",
            )


def _quantity_problem(value: Any, cpu: bool) -> str | None:
    try:
        amount = quantity.parse(value)
    except (ValueError, ArithmeticError):
        return None  # the schema's pattern reports a malformed quantity
    units = amount * 1000 if cpu else amount
    if abs(units) > INT64_MAX:
        what = "millicores" if cpu else "units"
        return f"{value} is more than Kubernetes can hold (at most 2^63-1 {what})"
    return None


def problems(raw: dict[str, Any]) -> list[tuple[Path, str, str]]:
    found: list[tuple[Path, str, str]] = []
    for key, target in raw.get("registry", {}).get("storageUriMap", {}).items():
        # The map's keys are prefixes of MLflow's own locations; only its targets reach the cluster.
        found += _url_problems(("registry", "storageUriMap", key), target)
        if _credential(key):
            message = f"holds a credential in the URL; {_STORAGE_HINT}"
            found.append((("registry", "storageUriMap", key), message, "credential"))
    for path, value in _walk(raw):
        if path[:2] == ("registry", "storageUriMap"):
            continue
        if isinstance(value, str):
            found += _url_problems(path, value)
            if path and path[-1] == "image" and (why := imageref.problem(value)):
                found.append((path, f"{value!r} {why}", "image"))
        elif isinstance(value, dict) and path and path[-1] in ("resources", "limits"):
            for name in ("cpu", "memory"):
                if name in value and (why := _quantity_problem(value[name], name == "cpu")):
                    found.append(((*path, name), why, "quantity"))
    return found
