"""``releasebot validate``: is this environments repository something the cluster will accept?

Checks, each reported with file, line and JSON path:

* the catalog against ``schemas/catalog.schema.json`` and its own rules;
* every YAML file parses under the hostile-input guards;
* every manifest against the upstream CRD schema(s) of its kind (``schemas/crds``); where
  upstream's main branch and latest release differ, against both;
* built-in kinds (CronJob, ...) with kubernetes-validate in strict mode, so unknown fields count;
* what neither schema source checks: cron schedules, RFC 1123 names and namespaces;
* cross-file consistency: every catalog model has its files, every manifest sits where the
  catalog puts it (right namespace), and nothing in an environment folder is unaccounted for.

Each file is read and parsed once, into plain data by the fast reader (:mod:`bot.yamlplain`);
only a file with a problem is parsed again round-trip, to give each problem its line. Nothing is
rendered: the cross-file checks need only the paths the catalog asks for.

It reads files and writes nothing. CEL validation rules of the CRDs are not evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
from jsonschema.exceptions import ValidationError

from bot import yamlio, yamlplain
from bot.blueprints import Blueprint, BlueprintSet
from bot.catalog import CATALOG_FILE, Catalog, load_catalog
from bot.cron import cron_error
from bot.errors import InvalidInput, Problem, YamlError
from bot.manifests.render import blueprint_prefix, dir_reader, list_files, orphans, target_paths
from bot.progress import Progress, silent
from bot.schemacheck import builtin_validator, check, crd_validator, describe

# (apiVersion, kind) -> the vendored schemas a manifest must pass, relative to schemas/crds/.
CRD_SCHEMAS: dict[tuple[str, str], tuple[str, ...]] = {
    ("serving.kserve.io/v1beta1", "InferenceService"): ("serving.kserve.io_v1beta1_InferenceService.json",),
    ("karpenter.sh/v1", "NodePool"): (
        "karpenter.sh_v1_NodePool.json",
        "released/karpenter-v1.14.1/karpenter.sh_v1_NodePool.json",
        "karpenter.sh_v1_NodePool.aws-provider.json",
        "released/karpenter-provider-aws-v1.14.1/karpenter.sh_v1_NodePool.aws-provider.json",
    ),
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): (
        "karpenter.k8s.aws_v1_EC2NodeClass.json",
        "released/karpenter-provider-aws-v1.14.1/karpenter.k8s.aws_v1_EC2NodeClass.json",
    ),
    ("argoproj.io/v1alpha1", "AppProject"): ("argoproj.io_v1alpha1_AppProject.json",),
    ("argoproj.io/v1alpha1", "Application"): (
        "argoproj.io_v1alpha1_Application.json",
        "released/argo-cd-v3.5.1/argoproj.io_v1alpha1_Application.json",
    ),
    ("argoproj.io/v1alpha1", "ApplicationSet"): (
        "argoproj.io_v1alpha1_ApplicationSet.json",
        "released/argo-cd-v3.5.1/argoproj.io_v1alpha1_ApplicationSet.json",
    ),
    ("monitoring.coreos.com/v1", "PrometheusRule"): ("monitoring.coreos.com_v1_PrometheusRule.json",),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("monitoring.coreos.com_v1_ServiceMonitor.json",),
    # A kind without a vendored upstream CRD would name a schema of schemas/local/ here (see its
    # README); its problems are reported as "local-schema".
}
CLUSTER_SCOPED = {"NodePool", "EC2NodeClass", "Namespace", "ClusterRole", "ClusterRoleBinding"}
# KServe derives Service and Knative names from an InferenceService name: a DNS-1035 label.
_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NOT_MANIFESTS = (".github/", ".releasebot/")
DEFAULT_K8S_VERSION = "1.30"


@dataclass(frozen=True)
class Report:
    problems: list[Problem]
    files_checked: int

    @property
    def ok(self) -> bool:
        return not self.problems


def _name_problems(file: str, doc: Any, raw: dict[str, Any], kind: str) -> list[Problem]:
    out = []
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    name, namespace = meta.get("name"), meta.get("namespace")

    def add(key: str, message: str) -> None:
        out.append(Problem(file, yamlio.line_of(doc, ("metadata", key)), f"$.metadata.{key}", message, "name"))

    if not isinstance(name, str) or not name:
        add("name", "metadata.name is required")
    else:
        pattern, what, limit = _DNS1123_SUBDOMAIN, "an RFC 1123 subdomain", 253
        if kind == "InferenceService":
            pattern, what, limit = _DNS1035, "a DNS-1035 label (KServe derives Service names from it)", 63
        elif kind == "CronJob":
            # Job names get an 11-character suffix and must stay a 63-character label.
            pattern, what, limit = _DNS1123_LABEL, "an RFC 1123 label of at most 52 characters", 52
        if not pattern.fullmatch(name) or len(name) > limit:
            add("name", f"{name!r} is not {what}")
    if namespace is not None and (not isinstance(namespace, str) or not _DNS1123_LABEL.fullmatch(namespace)):
        add("namespace", f"{namespace!r} is not an RFC 1123 label")
    return out


def _cron_problems(file: str, doc: Any, raw: dict[str, Any], kind: str) -> list[Problem]:
    places: list[tuple[tuple[Any, ...], Any]] = []
    spec = raw.get("spec") if isinstance(raw.get("spec"), dict) else {}
    if kind == "CronJob" and "schedule" in spec:
        places.append((("spec", "schedule"), spec["schedule"]))
    if kind == "NodePool":
        budgets = (spec.get("disruption") or {}).get("budgets") or []
        for i, b in enumerate(budgets):
            if isinstance(b, dict) and "schedule" in b:
                places.append((("spec", "disruption", "budgets", i, "schedule"), b["schedule"]))
    out = []
    for path, value in places:
        err = cron_error(value)
        if err:
            out.append(
                Problem(
                    file,
                    yamlio.line_of(doc, path),
                    yamlio.format_path(path),
                    f"invalid cron schedule {value!r}: {err}",
                    "cron",
                )
            )
    return out


def check_manifest(file: str, doc: Any, k8s_version: str = DEFAULT_K8S_VERSION) -> list[Problem]:
    """Every check that needs only the one (round-trip) document."""
    return _manifest_problems(file, yamlio.to_plain(doc), doc, k8s_version)


def _manifest_problems(file: str, raw: Any, doc: Any, k8s_version: str) -> list[Problem]:
    """The checks of :func:`check_manifest` on plain data; ``doc``, when given, only locates them."""
    if not isinstance(raw, dict):
        return [Problem(file, 1, "$", "a manifest must be a mapping", "shape")]
    api, kind = raw.get("apiVersion"), raw.get("kind")
    if not isinstance(api, str) or not isinstance(kind, str):
        return [Problem(file, 1, "$", "a manifest needs apiVersion and kind", "shape")]
    problems: list[Problem] = []
    schemas = CRD_SCHEMAS.get((api, kind))
    if schemas:
        seen: set[tuple[str, str]] = set()
        for rel in schemas:
            for p in check(raw, crd_validator(rel), file, doc):
                if (p.path, p.message) not in seen:
                    seen.add((p.path, p.message))
                    label = f" (release {rel.split('/')[1]})" if rel.startswith("released/") else ""
                    rule = "local-schema" if rel.startswith("../local/") else "crd"
                    problems.append(Problem(p.file, p.line, p.path, p.message + label, rule))
    elif "." in api.split("/")[0] and not api.endswith(".k8s.io/" + api.split("/")[-1]):
        problems.append(
            Problem(
                file,
                yamlio.line_of(doc, ("kind",)),
                "$.kind",
                f"no schema for {kind} ({api}): releasebot only deploys the kinds it knows",
                "unknown-kind",
            )
        )
    else:
        try:
            validator = builtin_validator(api, kind, k8s_version)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                Problem(
                    file,
                    yamlio.line_of(doc, ("kind",)),
                    "$.kind",
                    f"{kind} {api} does not exist in Kubernetes {k8s_version}",
                    "unknown-kind",
                )
            )
        else:
            # As kubernetes-validate reports it: the first error only.
            err: ValidationError | None = next(iter(validator.iter_errors(raw)), None)
            for path, message in describe(err) if err is not None else []:
                problems.append(Problem(file, yamlio.line_of(doc, path), yamlio.format_path(path), message, "k8s"))
    problems += _name_problems(file, doc, raw, kind)
    problems += _cron_problems(file, doc, raw, kind)
    return problems


def _placement_problems(cat: Catalog, file: str, raw: Any, doc: Any) -> list[Problem]:
    """A manifest in ``<env>/`` must target that environment's namespace."""
    env_name = file.split("/", 1)[0]
    try:
        env = cat.environment(env_name)
    except KeyError:
        return []
    if not isinstance(raw, dict) or raw.get("kind") in CLUSTER_SCOPED:
        return []
    namespace = (raw.get("metadata") or {}).get("namespace")
    if namespace != env.namespace:
        return [
            Problem(
                file,
                yamlio.line_of(doc, ("metadata", "namespace")),
                "$.metadata.namespace",
                f"expected namespace {env.namespace!r} (environment {env.name}), found {namespace!r}",
                "placement",
            )
        ]
    return []


def validate_repo(root: Path, progress: Progress = silent) -> Report:
    """Every check, over every file under ``root``; ``progress`` hears of each manifest checked."""
    problems: list[Problem] = []
    files = list_files(root)
    cat: Catalog | None = None
    if CATALOG_FILE not in files:
        problems.append(Problem(CATALOG_FILE, None, "", "no catalog: releasebot.yaml is missing", "catalog"))
    else:
        try:
            cat = load_catalog(root / CATALOG_FILE, CATALOG_FILE)
        except InvalidInput as exc:
            problems += exc.problems
        except YamlError as exc:
            problems.append(_from_yaml_error(exc))
    k8s_version = cat.kubernetes_version if cat else DEFAULT_K8S_VERSION
    blueprints = blueprint_prefix(cat) if cat else None
    manifests = [rel for rel in files if rel.endswith((".yaml", ".yml")) and rel != CATALOG_FILE]
    checked = 0
    for rel in manifests:
        progress(checked, len(manifests), rel)
        checked += 1
        try:
            text = yamlio.read_text(root / rel, rel)
            found = _file_problems(cat, rel, yamlplain.load_all(text, rel), None, k8s_version, blueprints)
            if found:
                # Rare: parse it again round-trip, so that every problem gets its line.
                docs = yamlio.load_all(text, rel)
                found = _file_problems(cat, rel, [yamlio.to_plain(d) for d in docs], docs, k8s_version, blueprints)
        except YamlError as exc:
            problems.append(_from_yaml_error(exc))
            continue
        problems += found
    progress(checked, len(manifests), "")
    if cat is not None:
        problems += _cross_file_problems(cat, root, files)
    return Report(sorted(set(problems), key=lambda p: (p.file, p.line or 0, p.path, p.message)), checked)


def _file_problems(
    cat: Catalog | None, rel: str, raws: list[Any], docs: list[Any] | None, k8s_version: str, blueprints: str | None
) -> list[Problem]:
    """Problems of one parsed file: ``raws`` its plain documents, ``docs`` the round-trip ones (for
    lines) or None when the question is only whether there are any."""
    if rel.startswith(_NOT_MANIFESTS):
        return []
    if blueprints and rel.startswith(blueprints):
        try:
            Blueprint(docs[0] if docs is not None else raws[0], rel)  # placeholders only in values
        except YamlError as exc:
            return [_from_yaml_error(exc)]
        return []
    if len(raws) != 1:
        return [Problem(rel, 1, "$", f"expected one manifest per file, found {len(raws)}", "shape")]
    doc = docs[0] if docs is not None else None
    found = _manifest_problems(rel, raws[0], doc, k8s_version)
    # Where a kind is unknown, so is whether it is namespaced: say nothing about its namespace.
    if cat is not None and not any(p.rule == "unknown-kind" for p in found):
        found += _placement_problems(cat, rel, raws[0], doc)
    return found


def _cross_file_problems(cat: Catalog, root: Path, files: Iterable[str]) -> list[Problem]:
    present = set(files)
    try:
        expected = target_paths(cat, BlueprintSet(cat.blueprints), dir_reader(root))
    except (YamlError, InvalidInput):
        return []  # already reported against the file itself
    out = []
    for path in expected:
        if path not in present:
            out.append(
                Problem(
                    path,
                    None,
                    "",
                    "missing: the catalog asks for this file (run `releasebot render` to create it)",
                    "missing-file",
                )
            )
    for path in orphans(cat, {*expected, CATALOG_FILE}, present):
        out.append(
            Problem(
                path,
                None,
                "",
                "orphan: no catalog entry accounts for this file (remove it, or `releasebot render --prune`)",
                "orphan",
            )
        )
    return out


def _from_yaml_error(exc: YamlError) -> Problem:
    loc = exc.location
    path = loc.path if loc and loc.path != "$" else ""
    return Problem(loc.file if loc else "?", loc.line if loc else None, path, exc.message, "yaml")
