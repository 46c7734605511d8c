"""JSON Schema checks that answer in the user's terms: file, line, JSON path, what was expected.

Two kinds of schema pass through here:

* our own (``schemas/catalog.schema.json``, JSON Schema 2020-12), used as written;
* upstream CRD ``openAPIV3Schema`` documents (``schemas/crds/``), which plain JSON Schema reads
  differently from the API server. :func:`crd_for_jsonschema` closes the gap the way the API
  server behaves: ``nullable: true`` admits ``null``; ``x-kubernetes-int-or-string`` admits only
  integers and strings; and an object that declares ``properties`` without
  ``x-kubernetes-preserve-unknown-fields`` refuses unknown keys. The API server would *silently
  drop* such a key (structural pruning), which is how a misspelt field ships unnoticed; we report it.
  A ``pattern`` is Go RE2 syntax; the one kind Python's ``re`` refuses (global flags after the
  start, as in PrometheusRule's ``^(?i)(abort|warn)?$``) is rewritten to mean the same in Python,
  and any other pattern Python cannot compile fails loudly rather than going unchecked.

Built-in kinds (CronJob, Deployment, ...) use kubernetes-validate's strict schemas, compiled once
per process by :func:`builtin_validator` (its own ``validate()`` re-reads a large definitions
file on every call).

Not covered: CEL ``x-kubernetes-validations`` rules (they need a CEL engine), and ``format``
checks beyond JSON Schema's own.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError
from kubernetes_validate import utils as k8s_schemas
from referencing import Registry, Resource

from bot.errors import Problem
from bot.resources import schemas_dir
from bot.yamlio import JsonPath, format_path, line_of


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "list", dict: "mapping"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(err: ValidationError) -> list[tuple[JsonPath, str]]:
    """Turn one jsonschema error into (path, message) pairs a person can act on."""
    path: JsonPath = tuple(err.absolute_path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    v = err.validator
    if v == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        pattern_props = schema.get("patternProperties", {})
        extra = [k for k in err.instance if k not in allowed and not pattern_props]
        hint = f" (expected one of: {', '.join(allowed)})" if allowed and len(allowed) <= 40 else ""
        return [((*path, k), f"unknown field {k!r}{hint}") for k in extra] or [(path, err.message)]
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return [(path, f"missing required field {missing!r}")]
    if v == "type":
        want = schema.get("type")
        want_text = " or ".join(want) if isinstance(want, list) else want
        return [(path, f"expected {want_text}, got {_type_name(err.instance)} {_short(err.instance)}")]
    if v == "enum":
        return [(path, f"{_short(err.instance)} is not one of {', '.join(map(str, schema.get('enum', [])))}")]
    if v == "const":
        return [(path, f"expected {_short(schema.get('const'))}, got {_short(err.instance)}")]
    if v in ("pattern", "maxLength", "minLength", "minimum", "maximum", "exclusiveMinimum", "format"):
        desc = schema.get("description")
        return [(path, f"{_short(err.instance)} is invalid: {desc or err.message}")]
    if v in ("anyOf", "oneOf"):
        desc = schema.get("description")
        if desc:
            return [(path, f"{_short(err.instance)} is invalid: {desc}")]
        # Quantities and int-or-string fields: say so rather than "not valid under any schema".
        branches = schema.get(v, [])
        types = [b.get("type") for b in branches if isinstance(b, dict) and "type" in b]
        if types and len(types) == len(branches):
            return [
                (
                    path,
                    f"expected {' or '.join(map(str, types))}, got {_type_name(err.instance)} {_short(err.instance)}",
                )
            ]
        best = jsonschema.exceptions.best_match(err.context) if err.context else None
        if best is not None:
            return describe(best)
    return [(path, err.message)]


def check(
    instance: Any, validator: jsonschema.protocols.Validator, file: str, doc: Any = None, prefix: JsonPath = ()
) -> list[Problem]:
    """Validate a plain instance; locate each error in ``doc`` (the round-trip original) for lines."""
    problems = []
    for err in validator.iter_errors(instance):
        for path, message in describe(err):
            full = (*prefix, *path)
            line = line_of(doc, full) if doc is not None else None
            problems.append(Problem(file, line, format_path(full), message))
    return sorted(set(problems), key=lambda p: (p.line or 0, p.path, p.message))


# --- schema loading --------------------------------------------------------------------------


@cache
def catalog_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((schemas_dir() / "catalog.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def crd_for_jsonschema(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a CRD openAPIV3Schema so that JSON Schema answers as the API server would."""
    out = copy.deepcopy(schema)

    def walk(node: Any, top: bool) -> None:
        if not isinstance(node, dict):
            return
        if node.get("x-kubernetes-int-or-string") and "anyOf" not in node and "type" not in node:
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if isinstance(node.get("pattern"), str):
            node["pattern"] = python_pattern(node["pattern"])
        if node.get("nullable") is True:
            t = node.get("type")
            if isinstance(t, str):
                node["type"] = [t, "null"]
            if "enum" in node and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
            if "anyOf" in node:
                node["anyOf"] = [*node["anyOf"], {"type": "null"}]
        if (
            node.get("type") in ("object", ["object", "null"])
            and "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
            and not node.get("x-kubernetes-embedded-resource")
        ):
            node["additionalProperties"] = False
            if top:
                # apiVersion/kind/metadata are implicit on every top-level object.
                for k in ("apiVersion", "kind", "metadata"):
                    node["properties"].setdefault(k, {})
        for key in ("properties", "patternProperties", "definitions"):
            for child in node.get(key, {}).values():
                walk(child, False)
        for key in ("items", "additionalProperties", "not"):
            walk(node.get(key), False)
        for key in ("anyOf", "oneOf", "allOf"):
            for child in node.get(key, []):
                walk(child, False)

    walk(out, True)
    out.pop("$schema", None)
    return out


# RE2 reads "^(?i)..." as: anchor, then case-insensitive for the rest. Python 3.11 refuses global
# flags anywhere but at the start; before the anchor they mean the same (an anchor has no case).
_LATE_FLAGS = re.compile(r"\^\(\?([aiLmsux]+)\)")


def python_pattern(pattern: str) -> str:
    """A CRD's RE2 ``pattern`` as Python's ``re`` reads it to the same effect."""
    try:
        re.compile(pattern)
        return pattern
    except re.error as exc:
        late = _LATE_FLAGS.match(pattern)
        if late:
            moved = f"(?{late.group(1)})^{pattern[late.end() :]}"
            re.compile(moved)
            return moved
        raise ValueError(f"CRD pattern {pattern!r} does not compile in Python: {exc}") from exc


@cache
def crd_validator(relpath: str) -> jsonschema.protocols.Validator:
    """A validator for one vendored CRD schema file, relative to ``schemas/crds/``."""
    raw = json.loads((schemas_dir() / "crds" / relpath).read_text())
    return jsonschema.Draft7Validator(crd_for_jsonschema(raw))


@cache
def builtin_validator(api_version: str, kind: str, k8s_version: str) -> jsonschema.protocols.Validator:
    """kubernetes-validate's strict schema for a built-in kind, chosen as its ``validate()`` does.

    Raises ``kubernetes_validate.SchemaNotFoundError`` for a kind that version does not have.
    """
    version = k8s_version.removeprefix("v")
    wanted = k8s_schemas.major_minor(version)
    if wanted > k8s_schemas.latest_version():
        raise k8s_schemas.VersionNotSupportedError(version=wanted)
    # The newest schema version not newer than the one asked for.
    found = [v for v in k8s_schemas.all_versions() if k8s_schemas.major_minor(v) <= wanted][-1]
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)  # rbac.authorization.k8s.io/v1 -> rbac-v1
    folder = f"kubernetes-json-schema/v{found}-local-strict"
    try:
        schema = k8s_schemas.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        raise k8s_schemas.SchemaNotFoundError(version=wanted, kind=kind, api_version=api_version) from None
    definitions = k8s_schemas.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)
