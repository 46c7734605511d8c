"""Capacity: NodePool limits follow the fleet, canaries count twice, and ride in their cause's change."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from bot import yamlio
from bot.blueprints import BlueprintSet
from bot.capacity import limits, report
from bot.catalog import CATALOG_FILE, load_catalog, parse_catalog
from bot.errors import InvalidInput
from bot.manifests import inferenceservice, karpenter
from bot.manifests.render import dir_reader, list_files, plan_render, write_changes
from bot.plan import Change, Key, RepoState, attach_capacity, canary_edit, plan
from bot.registry import RegistrySnapshot
from bot.schemacheck import crd_validator
from bot.validate import CRD_SCHEMAS
from tests.conftest import EXAMPLE_CATALOG, EXAMPLE_DIR

CAT = load_catalog(EXAMPLE_CATALOG)
PROD = CAT.environment("production")
ISVC = inferenceservice.path_of("production", "fraud-detector")
POOL = karpenter.pool_path("production", gpu=False)
NO_REGISTRY = RegistrySnapshot("http://mlflow", {})


def main_files(root: Path = EXAMPLE_DIR) -> dict[str, str]:
    return {p: (root / p).read_text() for p in list_files(root) if p.endswith(".yaml")}


def test_limits_are_max_replicas_times_requests_times_headroom() -> None:
    # fraud 10 x (500m, 1Gi) + credit 3 x (1, 2Gi) + its explainer 3 x (500m, 1Gi)
    # + the sentiment transformer 2 x (1, 2Gi) = 11.5 cores, 23Gi; x1.2 rounded up.
    assert limits(CAT, PROD)["cpu"] == {"cpu": 14, "memory": "28Gi"}
    assert limits(CAT, PROD)["gpu"] == {"cpu": 5, "memory": "20Gi", "nvidia.com/gpu": 2}
    assert yamlio.to_plain(yamlio.load_file(EXAMPLE_DIR / POOL))["spec"]["limits"] == {"cpu": 14, "memory": "28Gi"}


def test_a_canary_counts_its_predictor_twice() -> None:
    assert limits(CAT, PROD, {"fraud-detector"})["cpu"] == {"cpu": 20, "memory": "40Gi"}  # (11.5 + 5) x 1.2


def test_starting_a_canary_raises_the_limits_in_the_same_change_and_ending_it_lowers_them() -> None:
    files = main_files()
    start = canary_edit(ISVC, files[ISVC], 10)
    change = Change(
        Key("production", "fraud-detector", "release"),
        "pull-request",
        (start,),
        "3",
        "2",
        "Canary\n\nReleasebot-Model: fraud-detector\n",
        "t",
        "body\n### Rolling back\nx",
        "fp",
    )
    started = attach_capacity(CAT, change, RepoState(files))
    assert [e.path for e in started.edits] == [ISVC, POOL]
    pool = started.edits[1]
    assert yamlio.to_plain(yamlio.load(pool.new, POOL))["spec"]["limits"] == {"cpu": 20, "memory": "40Gi"}
    assert [(a, b) for a, b in zip(pool.old.splitlines(), pool.new.splitlines(), strict=True) if a != b] == [
        ("    cpu: 14", "    cpu: 20"),
        ("    memory: 28Gi", "    memory: 40Gi"),
    ]
    assert "Capacity (a canary starts" in started.commit_message
    assert started.commit_message.rstrip().endswith("Releasebot-Model: fraud-detector")
    assert "### Capacity" in started.body

    after = files | {e.path: e.new for e in started.edits}
    end = canary_edit(ISVC, after[ISVC], None)
    ended = attach_capacity(
        CAT,
        Change(change.key, "pull-request", (end,), "3", "3", change.commit_message, "t", "b", "fp2"),
        RepoState(after),
    )
    assert yamlio.to_plain(yamlio.load(ended.edits[1].new, POOL))["spec"]["limits"] == {"cpu": 14, "memory": "28Gi"}
    assert "a canary ends" in ended.commit_message


def test_a_change_that_leaves_canaries_alone_carries_no_capacity_edit() -> None:
    files = main_files()
    edit = canary_edit(ISVC, files[ISVC], None)
    assert edit is None  # nothing to end
    change = Change(Key("production", "fraud-detector", "release"), "commit", (), "3", "2", "m\n", "t", "b", "fp")
    assert attach_capacity(CAT, change, RepoState(files)) is change


def test_headroom_change_alone_is_a_capacity_change_of_its_own(example_text: str) -> None:
    cat = parse_catalog(example_text.replace("headroom: 1.2", "headroom: 1.5"), CATALOG_FILE, EXAMPLE_DIR)
    p = plan(cat, NO_REGISTRY, RepoState(main_files()), env="production")
    capacity_changes = [c for c in p.changes if c.key.kind == "capacity"]
    assert len(capacity_changes) == 1
    c = capacity_changes[0]
    assert c.key.branch == "releasebot/production/karpenter/capacity"
    assert [e.path for e in c.edits] == [POOL, karpenter.pool_path("production", gpu=True)]
    assert yamlio.to_plain(yamlio.load(c.edits[0].new, POOL))["spec"]["limits"] == {"cpu": 18, "memory": "35Gi"}
    assert "cpu 14 -> 18" in c.commit_message and c.write_back == "pull-request"


def test_render_keeps_the_room_a_running_canary_needs(env_repo: Path) -> None:
    path = env_repo / ISVC
    path.write_text(canary_edit(ISVC, path.read_text(), 25).new)
    cat = load_catalog(env_repo / CATALOG_FILE, CATALOG_FILE)
    plan_ = plan_render(cat, BlueprintSet(), dir_reader(env_repo), list_files(env_repo))
    assert [c.path for c in plan_.changes] == [POOL]
    write_changes(env_repo, plan_.changes)
    assert yamlio.to_plain(yamlio.load_file(env_repo / POOL))["spec"]["limits"] == {"cpu": 20, "memory": "40Gi"}


@pytest.mark.parametrize(("kind", "files"), [("NodePool", "nodepool"), ("EC2NodeClass", "ec2nodeclass")])
def test_every_pool_and_node_class_passes_main_and_released_schemas(kind: str, files: str) -> None:
    schemas = next(v for (api, k), v in CRD_SCHEMAS.items() if k == kind)
    assert any("released/" in s for s in schemas) and any("released/" not in s for s in schemas)
    paths = sorted(p for p in list_files(EXAMPLE_DIR) if f"/karpenter/{files}" in p)
    assert paths
    for rel in paths:
        doc = yamlio.to_plain(yamlio.load_file(EXAMPLE_DIR / rel))
        for schema in schemas:
            errors = list(crd_validator(schema).iter_errors(doc))
            assert not errors, (rel, schema, [e.message for e in errors])
    # and the check is real: a float limit fails every one of them
    bad = yamlio.to_plain(yamlio.load_file(EXAMPLE_DIR / paths[0]))
    bad.setdefault("spec", {})["limits" if kind == "NodePool" else "role"] = {"cpu": 1.5} if kind == "NodePool" else 7
    for schema in schemas:
        with pytest.raises(jsonschema.ValidationError):
            crd_validator(schema).validate(bad)


@pytest.mark.json_output("plan")
def test_plan_capacity_prints_requests_limits_gpus_and_nodes(env_repo: Path, tmp_path: Path, run_cli) -> None:
    loop = ("--repo", env_repo, "--workdir", tmp_path / "w")
    table = run_cli("plan", "--capacity", *loop, "--env", "production")
    assert table.code == 0, table.err
    assert table.out.splitlines() == [
        "ENVIRONMENT  POOL  CPU REQUESTS  MEMORY REQUESTS  GPUS  CPU LIMIT  MEMORY LIMIT  NODES (EST.)",
        "production   cpu   11.5          23.0Gi           0     14         28Gi          2",
        "production   gpu   4             16.0Gi           2     5          20Gi          2",
    ]
    assert [r["nodes (est.)"] for r in report(CAT, PROD)] == ["2", "2"]
    result = run_cli("plan", "--capacity", *loop, "--output", "json")
    assert result.code == 0, result.err
    pools = result.json()["pools"]
    assert [(p["environment"], p["pool"]) for p in pools] == [
        (env, pool) for env in ("dev", "staging", "production") for pool in ("cpu", "gpu")
    ]
    # Numbers as numbers: cores, bytes, counts.
    assert pools[4] == {
        "environment": "production",
        "pool": "cpu",
        "cpu_requests": 11.5,
        "memory_requests_bytes": 23 * 2**30,
        "gpus": 0,
        "cpu_limit": 14,
        "memory_limit_bytes": 28 * 2**30,
        "nodes_estimate": 2,
    }
    assert pools[5]["gpus"] == 2 and pools[5]["nodes_estimate"] == 2
    refused = run_cli("plan", "--capacity", *loop, "--model", "fraud-detector")
    assert refused.code == 2 and "--model does not apply" in refused.err


def test_a_model_named_karpenter_is_refused(example_text: str) -> None:
    with pytest.raises(InvalidInput, match="'karpenter' is reserved"):
        parse_catalog(example_text.replace("- name: credit-risk", "- name: karpenter"), CATALOG_FILE, EXAMPLE_DIR)


def test_a_person_s_commit_on_the_capacity_branch_is_respected_and_said(example_text: str) -> None:
    from bot.plan import BotBranch

    cat = parse_catalog(example_text.replace("headroom: 1.2", "headroom: 1.5"), CATALOG_FILE, EXAMPLE_DIR)
    branch = BotBranch("releasebot/production/karpenter/capacity", "sha", None, "old", ("c0ffee00",))
    p = plan(cat, NO_REGISTRY, RepoState(main_files(), {branch.name: branch}), env="production")
    assert not [c for c in p.changes if c.key.kind == "capacity"]
    assert [n.message for n in p.notes if n.tell] == [
        "releasebot/production/karpenter/capacity has commits by a person (c0ffee00); releasebot will not rewrite it"
    ]
