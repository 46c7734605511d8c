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
