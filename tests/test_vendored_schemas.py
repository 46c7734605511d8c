"""Vendored upstream schemas are byte-for-byte what their provenance says."""

from __future__ import annotations

import hashlib
import json

from bot.resources import schemas_dir
from bot.schemacheck import crd_validator
from bot.validate import CRD_SCHEMAS


def test_every_vendored_crd_matches_its_recorded_sha256() -> None:
    crds = schemas_dir() / "crds"
    entries = json.loads((crds / "provenance.json").read_text())["files"]
    on_disk = {p.relative_to(schemas_dir()).as_posix() for p in crds.rglob("*.json") if p.name != "provenance.json"}
    assert {e["file"] for e in entries} == on_disk
    for entry in entries:
        data = (schemas_dir() / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file"]
        assert entry["license"] == "Apache-2.0" and len(entry["commit"]) == 40


def test_every_schema_the_validator_names_exists_and_compiles() -> None:
    for files in CRD_SCHEMAS.values():
        for rel in files:
            crd_validator(rel).check_schema(crd_validator(rel).schema)


def test_catalog_schema_is_2020_12_with_an_id() -> None:
    schema = json.loads((schemas_dir() / "catalog.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/catalog.schema.json")


def test_a_crd_pattern_python_refuses_is_read_to_the_same_effect() -> None:
    """PrometheusRule's partial_response_strategy pattern, ``^(?i)(abort|warn)?$``, is RE2 that
    Python's re refuses (flags after the anchor); it is checked as RE2 means it, not dropped."""
    import re

    import pytest

    from bot.schemacheck import python_pattern

    with pytest.raises(re.error):
        re.compile("^(?i)(abort|warn)?$")
    moved = python_pattern("^(?i)(abort|warn)?$")
    assert [bool(re.search(moved, s)) for s in ("Warn", "ABORT", "", "abortx", "x")] == [True, True, True, False, False]
    assert python_pattern("^[a-z]+$") == "^[a-z]+$"  # what Python reads already is left alone
    with pytest.raises(ValueError, match="does not compile in Python"):
        python_pattern("(?<name>x)")  # RE2's named group syntax Python lacks: loud, never skipped
    validator = crd_validator("monitoring.coreos.com_v1_PrometheusRule.json")
    group = {"name": "g", "partial_response_strategy": "Warn", "rules": [{"record": "r", "expr": "up"}]}
    doc = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "spec": {"groups": [group]}}
    assert list(validator.iter_errors(doc)) == []
    group["partial_response_strategy"] = "sometimes"
    assert [e.message for e in validator.iter_errors(doc)] == ["'sometimes' does not match '(?i)^(abort|warn)?$'"]
