"""The GitHub REST description the mocks check against is what it says it is."""

from __future__ import annotations

import hashlib
import json

from tests.fixtures.github.extract_extra import refs
from tests.github_api import FIXTURES, SPEC

# The sha256 the upstream provenance manifest records for the subset.
UPSTREAM_SUBSET_SHA256 = "909602b7e6add66b5ba155ae5664a443a592929cd33b1b67b4b0ddd0ad18f271"


def test_subset_is_the_upstream_copy_byte_for_byte():
    raw = (FIXTURES / "api.github.com.subset.json").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == UPSTREAM_SUBSET_SHA256


def test_extra_operations_are_self_contained_and_unmodified_by_octokit():
    extra = json.loads((FIXTURES / "api.github.com.extra.json").read_text())
    ops = {(m, p): op["operationId"] for p, item in extra["paths"].items() for m, op in item.items()}
    assert ops == {
        ("post", "/repos/{owner}/{repo}/issues"): "issues/create",
        ("get", "/repos/{owner}/{repo}/issues"): "issues/list-for-repo",
        ("get", "/repos/{owner}/{repo}/collaborators/{username}/permission"): "repos/get-collaborator-permission-level",
        ("post", "/app-manifests/{code}/conversions"): "apps/create-from-manifest",
        ("get", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses"): "repos/list-deployment-statuses",
    }
    assert not any("x-octokit" in op for item in extra["paths"].values() for op in item.values())
    for ref in refs(extra, set()):
        _, _, kind, name = ref.split("/")
        assert name in extra["components"][kind], ref
    # Loading merged them; every shared component was asserted identical on the way.
    assert "issues/create" in {op.get("operationId") for item in SPEC["paths"].values() for op in item.values()}
