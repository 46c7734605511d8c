"""A fake Kubernetes API server for tests: real API paths, upstream status shapes, Argo CD's own health.

There is no API server on a test machine, so :class:`FakeKube` serves the paths the official
``kubernetes`` client calls (``/apis/<group>/<version>/namespaces/<ns>/<plural>[/<name>]`` and
``/version``) from in-memory objects, on 127.0.0.1 and a free port, and writes a kubeconfig for
the real client. 404s, 403s and 5xx answers are ``Status`` objects as the API server sends them.
It records every request (method and path, and the bearer token), so a test can assert that a
pass read only what its key needs.

What it serves is checked against upstream, not against our own idea of it:

* every object's ``status`` is validated against the vendored CRD schema's status part
  (``schemas/crds/``) when it is stored, with nulls dropped and unknown fields refused as
  :mod:`bot.schemacheck` does; a helper that writes a field KServe or Argo CD does not have fails;
* the health an Application reports for each InferenceService it manages is computed by Argo CD's
  own ``health.lua`` for that kind, run in Lua 5.1 through ``lupa`` (Argo CD embeds gopher-lua, a
  Lua 5.1), so it is what Argo CD would say about that object;
* the object builders start from upstream's examples in ``tests/fixtures/cluster-status/``
  (Argo CD's InferenceService health testdata, KServe's canary rollout walkthrough and status
  model docs, Argo CD's ``diff-cache.yaml`` Application) and change only names, revisions,
  percentages and times.

Optionally it enforces RBAC: :func:`rbac_rules` turns the bot's generated ClusterRole/Role and
their bindings into the rules the fake checks, answering 403 for anything else.

Deliberately missing: writes, watches, label/field selectors, pagination, resourceVersion
semantics and authentication beyond recording the token. The walk only reads.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from bot.resources import schemas_dir
from bot.schemacheck import crd_for_jsonschema

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cluster-status"
ARGO = FIXTURES / "argo-cd"
HEALTH_DIRS = {
    ("serving.kserve.io", "InferenceService"): ARGO
    / "resource_customizations"
    / "serving.kserve.io"
    / "InferenceService",
    ("karpenter.sh", "NodePool"): ARGO / "resource_customizations" / "karpenter.sh" / "NodePool",
}
ISVC_TESTDATA = HEALTH_DIRS[("serving.kserve.io", "InferenceService")] / "testdata"
ROLLOUT = FIXTURES / "kserve" / "docs" / "samples" / "v1beta1" / "rollout"
RESOURCES = {
    ("argoproj.io", "applications"): ("v1alpha1", "Application", "argoproj.io_v1alpha1_Application.json"),
    ("serving.kserve.io", "inferenceservices"): (
        "v1beta1",
        "InferenceService",
        "serving.kserve.io_v1beta1_InferenceService.json",
    ),
}
TOKEN = "fake-serviceaccount-token"
T0 = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
# gitops-engine's order, best to worst: an Application is as healthy as its worst resource.
HEALTH_ORDER = ("Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def drop_nulls(value: Any) -> Any:
    """The API server prunes null values of fields that are not nullable; none of these are."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value if v is not None]
    return value


# --- upstream checks: CRD status schemas and Argo CD's health scripts ------------------------


@cache
def status_validator(crd_file: str) -> jsonschema.protocols.Validator:
    raw = json.loads((schemas_dir() / "crds" / crd_file).read_text())
    return jsonschema.Draft7Validator(crd_for_jsonschema(raw)["properties"]["status"])


def status_errors(obj: Mapping[str, Any]) -> list[str]:
    """Why the object's ``status`` would be refused by its CRD (empty when it is fine or absent)."""
    group = str(obj.get("apiVersion", "")).split("/")[0]
    files = [f for (g, _), (_, kind, f) in RESOURCES.items() if g == group and kind == obj.get("kind")]
    if not files or obj.get("status") is None:
        return []
    validator = status_validator(files[0])
    return [
        f"status.{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(drop_nulls(obj["status"]))
    ]


def _to_lua(lua: Any, value: Any) -> Any:
    """Decoded JSON as Argo CD hands it to Lua: arrays are 1-based tables, nulls are nil."""
    if isinstance(value, dict):
        table = lua.table()
        for k, v in value.items():
            if v is not None:
                table[k] = _to_lua(lua, v)
        return table
    if isinstance(value, list):
        table = lua.table()
        for i, v in enumerate(value, start=1):
            table[i] = _to_lua(lua, v)
        return table
    return value


@cache
def _health_script(group: str, kind: str) -> str:
    return (HEALTH_DIRS[(group, kind)] / "health.lua").read_text()


def argocd_health(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(status, message) that Argo CD's own health.lua for the object's kind returns."""
    import lupa.lua51 as lua51  # Lua 5.1, as gopher-lua in Argo CD

    group = str(obj.get("apiVersion", "")).split("/")[0]
    script = _health_script(group, str(obj.get("kind")))
    # A fresh runtime per call: the script reads the global ``obj``, and requests arrive on threads.
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = _to_lua(lua, copy.deepcopy(dict(obj)))
    result = lua.execute("return function() " + script + "\nend")()
    return str(result["status"]), str(result["message"] or "")


# --- RBAC, as the API server's authorizer would apply the bot's rules -----------------------


@dataclass(frozen=True)
class Rule:
    verbs: frozenset[str]
    group: str
    resource: str
    namespace: str | None  # None: every namespace (a ClusterRole bound by a ClusterRoleBinding)


def rbac_rules(docs: Iterable[Mapping[str, Any]], namespace: str, serviceaccount: str) -> list[Rule]:
    """The rules that ServiceAccount ``namespace/serviceaccount`` gets from these RBAC objects."""
    docs = list(docs)
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs if "Role" in d["kind"]}
    out = []
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding.get("subjects") or []
        if not any(
            s.get("kind") == "ServiceAccount" and s.get("name") == serviceaccount and s.get("namespace") == namespace
            for s in subjects
        ):
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role = roles.get((ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"]))
        for rule in (role or {}).get("rules") or []:
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    out.append(Rule(frozenset(rule.get("verbs") or ()), group, resource, scope))
    return out


def _allowed(rules: list[Rule], verb: str, group: str, resource: str, namespace: str) -> bool:
    return any(
        (verb in r.verbs or "*" in r.verbs)
        and r.group in (group, "*")
        and r.resource in (resource, "*")
        and r.namespace in (None, namespace)
        for r in rules
    )


# --- the server --------------------------------------------------------------------------------


def status_object(code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``Status`` as the API server answers a failed request."""
    out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message}
    out.update({"reason": reason, "code": code})
    if details:
        out["details"] = dict(details)
    return out


_PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?$"
)


@dataclass
class Request:
    method: str
    path: str
    token: str | None


@dataclass
class FakeKube:
    """Objects by (group, plural, namespace, name), the requests seen, and scripted failures."""

    url: str = ""
    kubeconfig: Path = Path()
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    rules: list[Rule] | None = None  # None: everything allowed
    delay: float = 0.0  # seconds before each answer (for timeouts)
    serviceaccount: str = "system:serviceaccount:releasebot:releasebot"
    _failures: list[int] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- scripting ---------------------------------------------------------------------------

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store (or replace) an object; its status must be what its CRD admits."""
        obj = copy.deepcopy(dict(obj))
        errors = status_errors(obj)
        assert not errors, f"{obj.get('kind')} {obj['metadata'].get('name')}: status refused by its CRD: {errors[:3]}"
        group = str(obj["apiVersion"]).split("/")[0]
        plural = next(p for (g, p), (_, kind, _) in RESOURCES.items() if g == group and kind == obj["kind"])
        meta = obj["metadata"]
        meta.setdefault("uid", f"00000000-0000-4000-8000-{abs(hash((group, meta['name']))) % 10**12:012d}")
        meta.setdefault("creationTimestamp", stamp(T0))
        with self._lock:
            meta["resourceVersion"] = str(len(self.requests) + len(self.objects) + 1000)
            self.objects[(group, plural, meta["namespace"], meta["name"])] = obj
        return obj

    def delete(self, group: str, plural: str, namespace: str, name: str) -> None:
        with self._lock:
            self.objects.pop((group, plural, namespace, name), None)

    def fail(self, *codes: int) -> None:
        """Answer the next requests with these HTTP codes (500, 503, 429, 401, ...), in order."""
        with self._lock:
            self._failures.extend(codes)

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- answering ---------------------------------------------------------------------------

    def answer(self, method: str, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(Request(method, path, token))
            failure = self._failures.pop(0) if self._failures else None
        if self.delay:
            self._stopping.wait(self.delay)
        if failure is not None:
            reason = {401: "Unauthorized", 403: "Forbidden", 429: "TooManyRequests"}.get(failure, "InternalError")
            return failure, status_object(failure, reason, f"scripted failure {failure}")
        if method != "GET":
            return 405, status_object(405, "MethodNotAllowed", "the fake API serves reads only")
        if path == "/version":
            return 200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"}
        m = _PATH.match(path)
        if (
            not m
            or (m["group"], m["plural"]) not in RESOURCES
            or RESOURCES[(m["group"], m["plural"])][0] != m["version"]
        ):
            return 404, status_object(404, "NotFound", "the server could not find the requested resource")
        group, plural, ns, name = m["group"], m["plural"], m["ns"], m["name"]
        verb = "get" if name else "list"
        if self.rules is not None and not _allowed(self.rules, verb, group, plural, ns):
            what = f'{plural}.{group} "{name}"' if name else f"{plural}.{group}"
            return 403, status_object(
                403,
                "Forbidden",
                f'{what} is forbidden: User "{self.serviceaccount}" cannot {verb} resource "{plural}" '
                f'in API group "{group}" in the namespace "{ns}"',
                {"name": name or "", "group": group, "kind": plural},
            )
        version, kind, _ = RESOURCES[(group, plural)]
        if name is None:
            with self._lock:
                items = [
                    self._served(o)
                    for (g, p, n, _), o in sorted(self.objects.items())
                    if (g, p, n) == (group, plural, ns)
                ]
            return 200, {
                "apiVersion": f"{group}/{version}",
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(1000 + len(self.requests))},
                "items": items,
            }
        with self._lock:
            obj = self.objects.get((group, plural, ns, name))
            served = None if obj is None else self._served(obj)
        if served is None:
            return 404, status_object(
                404, "NotFound", f'{plural}.{group} "{name}" not found', {"name": name, "group": group, "kind": plural}
            )
        return 200, served

    def _served(self, obj: dict[str, Any]) -> dict[str, Any]:
        """An Application reports the health Argo CD computes for the InferenceServices it manages."""
        out = copy.deepcopy(obj)
        if out["kind"] != "Application" or out.get("status") is None or "resources" in out["status"]:
            return out  # anything but an Application helper's: served as stored
        status = out["status"]
        managed = (out.get("spec") or {}).get("destination", {}).get("namespace")
        resources = []
        for (g, p, ns, _), isvc in sorted(self.objects.items()):
            if (g, p, ns) != ("serving.kserve.io", "inferenceservices", managed):
                continue
            health, message = argocd_health(isvc)
            entry = {
                "group": "serving.kserve.io",
                "version": "v1beta1",
                "kind": "InferenceService",
                "namespace": ns,
                "name": isvc["metadata"]["name"],
                "status": status.get("sync", {}).get("status", "Unknown"),
                "health": {"status": health},
            }
            if message:
                entry["health"]["message"] = message
            resources.append(entry)
        status["resources"] = resources
        if "health" not in status:  # an Application stored with a health keeps it (a scripted override)
            worst = max((r["health"]["status"] for r in resources), key=HEALTH_ORDER.index, default="Healthy")
            status["health"] = {"status": worst}
        errors = status_errors(out)
        assert not errors, f"served Application status refused by its CRD: {errors[:3]}"
        return out


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKube

    def do_GET(self) -> None:
        self._respond()

    def do_POST(self) -> None:
        self._respond()

    def _respond(self) -> None:
        auth = self.headers.get("Authorization") or ""
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        code, body = self.server.fake.answer(self.command, self.path.split("?")[0], token)  # type: ignore[attr-defined]
        data = json.dumps(body).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (a timeout test): nobody is left to answer

    def log_message(self, format: str, *args: Any) -> None:  # the test output is not a server log
        pass


def write_kubeconfig(path: Path, url: str, token: str = TOKEN) -> Path:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "releasebot", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "releasebot"}}],
        "current-context": "fake",
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@contextmanager
def kube_api(tmp_path: Path) -> Iterator[FakeKube]:
    """A running fake API on 127.0.0.1 and a free port, with a kubeconfig in ``tmp_path``; stopped on exit."""
    fake = FakeKube()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.fake = fake  # type: ignore[attr-defined]
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    fake.kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", fake.url)
    thread = threading.Thread(target=server.serve_forever, name="fake-kube-api", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake._stopping.set()  # wake handlers sleeping on a scripted delay
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- objects: InferenceServices in the states a walk goes through ----------------------------


def revision_name(name: str, revision: int) -> str:
    """Knative revision names as KServe's predictor Configuration creates them."""
    return f"{name}-predictor-{revision:05d}"


def _conditions(testdata: str, at: datetime, name: str, revision: int) -> list[dict[str, Any]]:
    """An upstream example's conditions, with its names and revisions moved to ours."""
    conditions = load(ISVC_TESTDATA / testdata)["status"]["conditions"]
    out = []
    for c in conditions:
        c = dict(c, lastTransitionTime=stamp(at))
        for key in ("message",):
            if key in c:
                text = re.sub(r'Revision "[^"]+"', f'Revision "{revision_name(name, revision)}"', c[key])
                c[key] = re.sub(r'Configuration "[^"]+"', f'Configuration "{name}-predictor"', text)
        out.append(c)
    return out


def _isvc_base(name: str, namespace: str, storage_uri: str, generation: int) -> dict[str, Any]:
    """KServe's rollout sample (default.yaml), placed and pointed at ``storage_uri``."""
    sample = load(ROLLOUT / "default.yaml")
    return {
        "apiVersion": sample["apiVersion"],
        "kind": sample["kind"],
        "metadata": {"name": name, "namespace": namespace, "generation": generation},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": storage_uri}}},
    }


def _predictor_status(name: str, namespace: str) -> dict[str, Any]:
    return {
        "url": f"http://{name}-predictor.{namespace}.example.com",
        "address": {"url": f"http://{name}-predictor.{namespace}.svc.cluster.local"},
    }


def serverless(
    name: str,
    namespace: str,
    *,
    state: str,
    revision: int,
    previous: int | None = None,
    percent: int | None = None,
    storage_uri: str = "s3://models/model/1",
    generation: int | None = None,
    at: datetime = T0,
) -> dict[str, Any]:
    """A Serverless (Knative) InferenceService in one of the walk's states.

    ``revision`` is the newest Knative revision (the one the latest spec created); ``previous``
    the last one rolled out at 100%. States:

    * ``progressing``: the new revision is not Ready yet (conditions of Argo CD's
      ``progressing.yaml``); traffic stays on ``previous`` if there is one;
    * ``canary``: Ready with ``percent`` on the new revision (tag ``latest``) and the rest on
      ``previous`` (tag ``prev``), as in KServe's rollout walkthrough;
    * ``promoted``: Ready with 100% on the new revision, which is now the rolled-out one;
    * ``failed``: the new revision failed to load (``degraded.yaml``: RevisionFailed,
      BlockedByFailedLoad), traffic stays on ``previous``.
    """
    generation = generation if generation is not None else revision
    obj = _isvc_base(name, namespace, storage_uri, generation)
    if state == "canary":
        assert previous is not None and percent is not None, "a canary splits traffic with a previous revision"
        obj["spec"]["predictor"]["canaryTrafficPercent"] = percent
    obj["metadata"]["annotations"] = {"serving.kserve.io/deploymentMode": "Serverless"}
    new, old = revision_name(name, revision), revision_name(name, previous) if previous else None
    predictor = _predictor_status(name, namespace)
    predictor["latestCreatedRevision"] = new
    status: dict[str, Any] = {"observedGeneration": generation, "deploymentMode": "Serverless"}
    if state == "progressing":
        status["conditions"] = _conditions("progressing.yaml", at, name, revision)
        if old:
            predictor.update(latestReadyRevision=old, latestRolledoutRevision=old)
            predictor["traffic"] = [{"revisionName": old, "percent": 100, "latestRevision": False}]
    elif state == "canary":
        status["conditions"] = _conditions("healthy.yaml", at, name, revision)
        status["modelStatus"] = {"transitionStatus": "UpToDate"}
        predictor.update(latestReadyRevision=new, latestRolledoutRevision=old, previousRolledoutRevision=old)
        predictor["traffic"] = [
            {"revisionName": new, "percent": percent, "latestRevision": True, "tag": "latest"},
            {"revisionName": old, "percent": 100 - percent, "latestRevision": False, "tag": "prev"},
        ]
    elif state == "promoted":
        status["conditions"] = _conditions("healthy.yaml", at, name, revision)
        status["modelStatus"] = {"transitionStatus": "UpToDate"}
        predictor.update(latestReadyRevision=new, latestRolledoutRevision=new)
        if old:
            predictor["previousRolledoutRevision"] = old
        predictor["traffic"] = [{"revisionName": new, "percent": 100, "latestRevision": True}]
    elif state == "failed":
        status["conditions"] = _conditions("degraded.yaml", at, name, revision)
        status["modelStatus"] = {
            "transitionStatus": "BlockedByFailedLoad",
            "lastFailureInfo": {
                "reason": "ModelLoadFailed",
                "message": "Failed to load model: pickle data was truncated",
                "modelRevisionName": new,
                "time": stamp(at),
            },
        }
        if old:
            predictor.update(latestReadyRevision=old, latestRolledoutRevision=old)
            predictor["traffic"] = [{"revisionName": old, "percent": 100, "latestRevision": False}]
    else:
        raise ValueError(f"unknown state {state!r}")
    status["components"] = {"predictor": predictor}
    status["url"] = f"http://{name}.{namespace}.example.com"
    obj["status"] = status
    return obj


def standard(
    name: str,
    namespace: str,
    *,
    storage_uri: str = "s3://models/model/1",
    canary: tuple[str, str, int] | None = None,
    canary_ready: bool = True,
    ready: bool = True,
    generation: int = 1,
    at: datetime = T0,
) -> dict[str, Any]:
    """A Standard (KServe 0.20, RawDeployment) InferenceService, with an optional named canary.

    ``canary`` is (name, storageUri, trafficPercent) of one ``spec.canary[]`` entry; its
    ``status.canaryStatuses[]`` entry reports ``canary_ready`` and the percentage. Conditions come
    from Argo CD's ``healthy_raw.yaml`` (or ``progressing.yaml`` when not ``ready``).
    """
    obj = _isvc_base(name, namespace, storage_uri, generation)
    obj["metadata"]["annotations"] = {"serving.kserve.io/deploymentMode": "Standard"}
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "deploymentMode": "Standard",
        "conditions": _conditions("healthy_raw.yaml" if ready else "progressing.yaml", at, name, generation),
        "components": {"predictor": _predictor_status(name, namespace)},
        "url": f"http://{name}-{namespace}.example.com",
    }
    if canary is not None:
        canary_name, canary_uri, percent = canary
        obj["spec"]["canary"] = [
            {
                "predictor": {
                    "name": canary_name,
                    "model": {"modelFormat": {"name": "sklearn"}, "storageUri": canary_uri},
                },
                "trafficPercent": percent,
            }
        ]
        status["canaryStatuses"] = [{"name": canary_name, "ready": canary_ready, "trafficPercent": percent}]
    obj["status"] = status
    return obj


# --- objects: Argo CD Applications ------------------------------------------------------------


def application(
    name: str,
    *,
    namespace: str = "argocd",
    destination: str,
    revision: str | None,
    sync: str = "Synced",
    history: Iterable[tuple[str, datetime]] = (),
    health: str | None = None,
    operation: str | None = "Succeeded",
    message: str | None = None,
    repo_url: str = "https://github.com/example/environments.git",
    path: str | None = None,
    project: str = "releasebot",
) -> dict[str, Any]:
    """An Argo CD Application shaped like upstream's ``diff-cache.yaml``, for one environment folder.

    ``destination`` is the namespace it deploys to: when served, ``status.resources`` lists
    every InferenceService the fake holds there with Argo CD's health for it, and
    ``status.health`` is the worst of those unless ``health`` pins it. ``history`` is
    (revision, deployedAt) oldest first; ``operation`` is the last sync's phase (``Running``
    while it goes on), with ``revision`` as its sync result.
    """
    upstream = load(ARGO / "controller" / "testdata" / "diff-cache.yaml")
    env_path = path if path is not None else name.split("-", 1)[-1]
    source = {"repoURL": repo_url, "path": env_path, "targetRevision": "main", "directory": {"recurse": True}}
    obj: dict[str, Any] = {
        "apiVersion": upstream["apiVersion"],
        "kind": upstream["kind"],
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": 1,
            "labels": {"app.kubernetes.io/managed-by": "releasebot"},
            "finalizers": upstream["metadata"]["finalizers"],
        },
        "spec": {
            "project": project,
            "source": source,
            "destination": {"server": "https://kubernetes.default.svc", "namespace": destination},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }
    status: dict[str, Any] = {
        "controllerNamespace": namespace,
        "sourceType": "Directory",
        "reconciledAt": stamp(T0),
        "sync": {
            "status": sync,
            "comparedTo": {"source": source, "destination": obj["spec"]["destination"]},
        },
        "history": [],
    }
    if revision is not None:
        status["sync"]["revision"] = revision
    for i, (rev, deployed) in enumerate(history, start=1):
        status["history"].append(
            {
                "id": i,
                "revision": rev,
                "deployStartedAt": stamp(deployed - timedelta(seconds=1)),
                "deployedAt": stamp(deployed),
                "source": source,
            }
        )
    if operation is not None:
        last = max((d for _, d in history), default=T0)
        op_state = upstream["status"]["operationState"]
        status["operationState"] = {
            "phase": operation,
            "message": message if message is not None else op_state["message"],
            "startedAt": stamp(last - timedelta(seconds=1)),
            "operation": {"sync": {"revision": revision or ""}, "initiatedBy": {"automated": True}},
            "syncResult": {"revision": revision or "", "source": source},
        }
        if operation != "Running":
            status["operationState"]["finishedAt"] = stamp(last)
    if health is not None:
        status["health"] = {"status": health}
    obj["status"] = status
    return obj
