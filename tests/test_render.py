"""Render: generated manifests validate against the CRDs; owned fields follow the catalog, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import yamlio
from bot.blueprints import BlueprintSet
from bot.catalog import CATALOG_FILE, load_catalog
from bot.manifests import inferenceservice
from bot.manifests.ownership import Owned, Sel, apply_owned
from bot.manifests.render import dir_reader, list_files, plan_render, write_changes
from bot.validate import check_manifest
from tests.conftest import FIXTURES

LEVELS = FIXTURES / "five-levels.yaml"


def render(root: Path, prune: bool = False) -> list[str]:
    cat = load_catalog(root / CATALOG_FILE, CATALOG_FILE)
    plan = plan_render(cat, BlueprintSet(cat.blueprints), dir_reader(root), list_files(root), prune=prune)
    write_changes(root, plan.changes)
    return [c.describe() for c in plan.changes] + [f"orphan {o}" for o in plan.orphans]


def edit_catalog(root: Path, old: str, new: str) -> None:
    path = root / CATALOG_FILE
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("storage_uri", [None, "s3://bucket/models/m-1/artifacts"])
def test_five_deployment_levels_validate_against_the_kserve_crd(storage_uri: str | None) -> None:
    cat = load_catalog(LEVELS)
    env = cat.environment("dev")
    bp = BlueprintSet()
    for model in cat.models:
        doc = yamlio.load(yamlio.dump(inferenceservice.desired(cat, env, model, bp, storage_uri)), model.name)
        assert check_manifest(model.name, doc) == [], model.name
        plain = yamlio.to_plain(doc)
        assert inferenceservice.storage_uri_in(plain) == storage_uri
    by_name = {m.name: yamlio.to_plain(inferenceservice.desired(cat, env, m, bp)) for m in cat.models}
    assert by_name["level1-custom-image"]["spec"]["predictor"]["containers"][0]["image"].endswith("2.0.1")
    assert by_name["level2-mlflow-uri"]["spec"]["predictor"]["model"]["modelFormat"] == {"name": "mlflow"}
    assert by_name["level3-scale-to-zero"]["spec"]["predictor"]["minReplicas"] == 0
    assert by_name["level3-scale-to-zero"]["spec"]["predictor"]["scaleMetric"] == "rps"
    assert "transformer" in by_name["level4-transformer"]["spec"]
    assert by_name["level4-transformer"]["spec"]["predictor"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert by_name["level5-explainer"]["spec"]["explainer"]["art"]["type"] == "SquareAttack"
    assert by_name["level5-custom-explainer"]["spec"]["explainer"]["containers"][0]["name"] == "kserve-container"


def test_every_file_of_the_example_repo_validates(env_repo: Path) -> None:
    for rel in list_files(env_repo):
        if rel.endswith(".yaml") and not rel.startswith((".", "releasebot")):
            assert check_manifest(rel, yamlio.load_file(env_repo / rel, rel)) == [], rel


def test_second_render_writes_nothing(env_repo: Path) -> None:
    assert render(env_repo) == []


def test_switching_from_model_format_to_custom_image_keeps_the_served_uri(env_repo: Path) -> None:
    isvc = env_repo / "staging/credit-risk/inferenceservice.yaml"
    doc = yamlio.load_file(isvc)
    doc["spec"]["predictor"]["model"]["storageUri"] = "s3://bucket/credit/v7"
    isvc.write_text(yamlio.dump(doc))
    edit_catalog(env_repo, "      format: xgboost\n", "      image: ghcr.io/acme/credit:3.1.0\n")
    render(env_repo)
    predictor = yamlio.to_plain(yamlio.load_file(isvc))["spec"]["predictor"]
    assert "model" not in predictor
    assert predictor["containers"][0]["image"] == "ghcr.io/acme/credit:3.1.0"
    assert {"name": "STORAGE_URI", "value": "s3://bucket/credit/v7"} in predictor["containers"][0]["env"]
    assert check_manifest("x", yamlio.load_file(isvc)) == []


def test_a_new_gpu_model_brings_its_pool_and_tolerations(env_repo: Path) -> None:
    edit_catalog(
        env_repo,
        '      cpu: "1"\n      memory: 2Gi\n    replicas:\n      min: 1\n      max: 3\n',
        '      cpu: "1"\n      memory: 2Gi\n      gpus: 2\n    replicas:\n      min: 1\n      max: 3\n',
    )
    # credit-risk (staging, production) now needs GPUs; dev already had a GPU pool.
    changes = render(env_repo)
    assert "update staging/credit-risk/inferenceservice.yaml: " in "\n".join(changes)
    isvc = yamlio.to_plain(yamlio.load_file(env_repo / "staging/credit-risk/inferenceservice.yaml"))
    assert isvc["spec"]["predictor"]["nodeSelector"] == {"karpenter.sh/nodepool": "releasebot-staging-gpu"}
    assert isvc["spec"]["predictor"]["tolerations"][0]["effect"] == "NoSchedule"
    gpu_pool = yamlio.to_plain(yamlio.load_file(env_repo / "staging/karpenter/nodepool-gpu.yaml"))
    assert gpu_pool["spec"]["limits"]["nvidia.com/gpu"] == 2 * 1 + 2 * 3  # review-sentiment + credit-risk


def test_removing_the_last_gpu_model_leaves_the_gpu_pool_as_an_orphan(env_repo: Path) -> None:
    edit_catalog(env_repo, "      gpus: 1\n", "")
    changes = render(env_repo)
    assert "orphan dev/karpenter/nodepool-gpu.yaml" in changes
    assert (env_repo / "dev/karpenter/nodepool-gpu.yaml").exists()
    assert "delete dev/karpenter/nodepool-gpu.yaml" in render(env_repo, prune=True)
    assert not (env_repo / "dev/karpenter/nodepool-gpu.yaml").exists()


def test_a_person_s_own_toleration_and_comment_survive(env_repo: Path) -> None:
    path = env_repo / "production/review-sentiment/inferenceservice.yaml"
    text = path.read_text().replace(
        "        effect: NoSchedule\n",
        "        effect: NoSchedule\n      # spot nodes are fine for this one\n      - key: spot\n"
        "        operator: Exists\n",
    )
    path.write_text(text)
    edit_catalog(env_repo, "      max: 2\n    transformer:", "      max: 4\n    transformer:")
    render(env_repo)
    after = path.read_text()
    # The predictor and its transformer both follow the model's replicas; nothing else moves.
    assert after == text.replace("    maxReplicas: 2\n", "    maxReplicas: 4\n")


def test_codeowners_block_is_replaced_and_human_lines_kept(env_repo: Path) -> None:
    path = env_repo / "CODEOWNERS"
    path.write_text("# ours\n/docs/ @acme/writers\n\n" + path.read_text())
    edit_catalog(env_repo, "      users: [alice-ml]\n", "      users: [bob-ml]\n")
    render(env_repo)
    text = path.read_text()
    assert text.startswith("# ours\n/docs/ @acme/writers\n\n# BEGIN releasebot")
    assert "/production/ @bob-ml @acme/ml-platform" in text and "alice" not in text


def test_apply_owned_presence_copies_whole_subtree_once() -> None:
    existing = yamlio.load("spec:\n  a: 1\n", "x")
    desired = {"spec": {"a": 2, "sub": {"x": 1, "keep": True}}}
    rules = [Owned(("spec", "sub"), "presence"), Owned(("spec", "sub", "x")), Owned(("spec", "a"))]
    assert apply_owned(existing, desired, rules) == ["$.spec.sub", "$.spec.a"]
    existing["spec"]["sub"]["keep"] = False  # a person's change inside a presence-owned subtree
    desired["spec"]["sub"]["x"] = 5
    assert apply_owned(existing, desired, rules) == ["$.spec.sub.x"]
    assert yamlio.to_plain(existing) == {"spec": {"a": 2, "sub": {"x": 5, "keep": False}}}


def test_apply_owned_selector_creates_and_deletes_list_entries() -> None:
    existing = yamlio.load("env:\n- name: A\n  value: '1'\n", "x")
    rule = [Owned(("env", Sel("name", "B"), "value"))]
    assert apply_owned(existing, {"env": [{"name": "B", "value": "2"}]}, rule) == ["$.env[name=B].value"]
    assert yamlio.to_plain(existing)["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert apply_owned(existing, {"env": []}, rule) == ["$.env[name=B].value"]


def test_workflow_image_followed_even_after_a_person_adds_steps(env_repo: Path) -> None:
    # (Was: the install step followed bot.package. The workflow now runs from bot.image instead.)
    path = env_repo / ".github/workflows/validate.yml"
    text = path.read_text().replace(
        "      - uses: actions/checkout@v4\n", "      - uses: actions/checkout@v4\n      - run: echo hello\n"
    )
    path.write_text(text)
    edit_catalog(
        env_repo,
        "  image: ghcr.io/releasebot/releasebot:0.1.0\n",
        "  image: ghcr.io/releasebot/releasebot:0.2.0\n",
    )
    changed = render(env_repo)
    assert "update .github/workflows/validate.yml: $.jobs.validate.container.image" in changed
    assert path.read_text() == text.replace("releasebot/releasebot:0.1.0", "releasebot/releasebot:0.2.0")


@pytest.mark.parametrize(
    "model",
    [
        "level1-custom-image",
        "level2-mlflow-uri",
        "level3-scale-to-zero",
        "level4-transformer",
        "level5-explainer",
        "level5-custom-explainer",
    ],
)
def test_every_deployment_level_releases_into_a_manifest_render_and_validate_accept(
    model: str, tmp_path: Path, run_cli
) -> None:
    """A release writes the registry-owned field where that predictor shape keeps it (a custom
    container reads STORAGE_URI, a model spec storageUri), so render has nothing to undo."""
    from bot.plan import Version, release_edit

    repo = tmp_path / "levels"
    assert run_cli("init", repo, "--catalog", LEVELS).code == 0
    path = inferenceservice.path_of("dev", model)
    version = Version("registered", "7", "s3://models/registered/7/artifacts", "run-7", "READY")
    edit = release_edit(path, (repo / path).read_text(), version)
    assert edit is not None
    (repo / path).write_text(edit.new)
    doc = yamlio.to_plain(yamlio.load(edit.new, path))
    predictor = doc["spec"]["predictor"]
    if model == "level1-custom-image":
        assert "model" not in predictor
        [container] = predictor["containers"]
        assert {"name": "STORAGE_URI", "value": version.storage_uri} in container["env"]
    else:
        assert predictor["model"]["storageUri"] == version.storage_uri
    check = run_cli("render", "--check", repo)
    assert check.code == 0, check.out + check.err
    assert run_cli("validate", repo).code == 0
