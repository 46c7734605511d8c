"""``releasebot validate``: each defect is reported with file, line and JSON path, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import schemacheck
from bot.validate import validate_repo


def plant(repo: Path, rel: str, old: str, new: str) -> int:
    """Replace ``old`` by ``new`` in a file; return the 1-based line of the change."""
    path = repo / rel
    text = path.read_text()
    assert old in text, (rel, old)
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new, 1))
    return line


def messages(repo: Path) -> list[str]:
    return [str(p) for p in validate_repo(repo).problems]


def test_example_repo_is_valid(env_repo: Path, run_cli) -> None:
    result = run_cli("validate", env_repo)
    assert result.code == 0, result.err
    # 37, a Namespace per environment, the bot's RBAC, its alerts and dashboard
    assert "OK: 46 file(s) checked, 0 problem(s)" in result.out


def test_misspelt_field_in_an_inferenceservice(env_repo: Path) -> None:
    rel = "production/fraud-detector/inferenceservice.yaml"
    line = plant(env_repo, rel, "    minReplicas: 2\n", "    minReplica: 2\n")
    assert messages(env_repo) == [f"{rel}:{line}: $.spec.predictor.minReplica: unknown field 'minReplica'"]


def test_float_cpu_quantity_in_an_inferenceservice(env_repo: Path) -> None:
    rel = "staging/credit-risk/inferenceservice.yaml"
    line = plant(env_repo, rel, "cpu: '1'", "cpu: 1.5")
    assert messages(env_repo) == [
        f"{rel}:{line}: $.spec.predictor.model.resources.requests.cpu: expected integer or string, got float 1.5"
    ]


def test_invalid_cron_in_a_cronjob(env_repo: Path) -> None:
    rel = "dev/fraud-detector/drift-check-cronjob.yaml"
    line = plant(env_repo, rel, "schedule: 0 * * * *", "schedule: 0 * * * * *")
    assert messages(env_repo) == [
        f"{rel}:{line}: $.spec.schedule: invalid cron schedule '0 * * * * *': expected 5 fields "
        "(minute hour day-of-month month day-of-week), found 6"
    ]


@pytest.mark.parametrize("bad", ["fraud..detector", "fraud/detector"])
def test_model_name_with_dots_or_slash_in_a_manifest(env_repo: Path, bad: str) -> None:
    rel = "dev/fraud-detector/inferenceservice.yaml"
    line = plant(env_repo, rel, "  name: fraud-detector\n", f"  name: {bad}\n")
    found = messages(env_repo)
    assert (
        f"{rel}:{line}: $.metadata.name: '{bad}' is not a DNS-1035 label (KServe derives Service names from it)"
        in found
    )


@pytest.mark.parametrize("bad", ["fraud..detector", "fraud/detector"])
def test_model_name_with_dots_or_slash_in_the_catalog(env_repo: Path, bad: str) -> None:
    line = plant(env_repo, "releasebot.yaml", "  - name: fraud-detector\n", f"  - name: {bad}\n")
    found = messages(env_repo)
    assert any(m.startswith(f'releasebot.yaml:{line}: $.models[0].name: "{bad}" is invalid') for m in found), found


def test_unknown_catalog_key(env_repo: Path) -> None:
    line = plant(env_repo, "releasebot.yaml", "  project: releasebot\n", "  project: releasebot\n  projet: x\n")
    found = messages(env_repo)
    assert (
        found[0]
        == f"releasebot.yaml:{line + 1}: $.argocd.projet: unknown field 'projet' (expected one of: namespace, project)"
    )


def test_unknown_field_in_a_builtin_kind_is_reported(env_repo: Path) -> None:
    rel = "dev/fraud-detector/retrain-cronjob.yaml"
    line = plant(env_repo, rel, "  concurrencyPolicy: Forbid\n", "  concurrencyPolicy: Forbid\n  concurency: 1\n")
    found = messages(env_repo)
    assert len(found) == 1 and found[0].startswith(f"{rel}:{line + 1}: $.spec") and "concurency" in found[0]


def test_nodepool_checked_against_main_and_released_schemas(env_repo: Path) -> None:
    rel = "production/karpenter/nodepool.yaml"
    line = plant(env_repo, rel, "    consolidateAfter: 5m\n", "    consolidateAfter: five minutes\n")
    found = messages(env_repo)
    assert found and all(m.startswith(f"{rel}:{line}: $.spec.disruption.consolidateAfter") for m in found)


def test_manifest_in_the_wrong_namespace(env_repo: Path) -> None:
    rel = "staging/fraud-detector/inferenceservice.yaml"
    line = plant(env_repo, rel, "namespace: models-staging", "namespace: models-production")
    assert messages(env_repo) == [
        f"{rel}:{line}: $.metadata.namespace: expected namespace 'models-staging' (environment staging), "
        "found 'models-production'"
    ]


def test_missing_and_orphan_files(env_repo: Path) -> None:
    (env_repo / "dev/fraud-detector/drift-check-cronjob.yaml").unlink()
    (env_repo / "dev/old-model").mkdir()
    (env_repo / "dev/old-model/inferenceservice.yaml").write_text(
        (env_repo / "dev/fraud-detector/inferenceservice.yaml").read_text().replace("fraud-detector", "old-model")
    )
    found = messages(env_repo)
    assert any(m.startswith("dev/fraud-detector/drift-check-cronjob.yaml: missing") for m in found)
    assert any(m.startswith("dev/old-model/inferenceservice.yaml: orphan") for m in found)


def test_unknown_kind_is_refused(env_repo: Path) -> None:
    (env_repo / "dev/karpenter/extra.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"
    )
    assert messages(env_repo) == [
        "dev/karpenter/extra.yaml:2: $.kind: no schema for Widget (example.com/v1): releasebot only deploys the "
        "kinds it knows"
    ]


def test_hostile_manifest_is_reported_not_crashed(env_repo: Path) -> None:
    (env_repo / "dev/karpenter/nodepool.yaml").write_text("a: &a [1]\nb: !!python/object:os.system [*a]\n")
    found = messages(env_repo)
    assert any(m.startswith("dev/karpenter/nodepool.yaml:2: YAML tag") for m in found), found


@pytest.mark.json_output("validate")
def test_json_output_for_machines(env_repo: Path, run_cli) -> None:
    rel = "production/fraud-detector/inferenceservice.yaml"
    line = plant(env_repo, rel, "    minReplicas: 2\n", "    minReplica: 2\n")
    result = run_cli("validate", env_repo, "--output", "json")
    assert result.code == 1
    report = result.json()
    manifests = [p for p in env_repo.rglob("*.y*ml") if ".git" not in p.parts and p.name != "releasebot.yaml"]
    assert report["ok"] is False and report["files_checked"] == len(manifests)
    assert report["problems"] == [
        {
            "file": rel,
            "line": line,
            "path": "$.spec.predictor.minReplica",
            "message": "unknown field 'minReplica'",
            "rule": "crd",
        }
    ]


def test_crd_adaptation_matches_the_api_server() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "percent": {"type": "integer", "nullable": True},
                    "port": {"x-kubernetes-int-or-string": True},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
                },
            }
        },
    }
    import jsonschema

    v = jsonschema.Draft7Validator(schemacheck.crd_for_jsonschema(schema))
    assert v.is_valid({"spec": {"percent": None, "port": "http", "free": {"anything": 1}}})
    assert v.is_valid({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"}, "spec": {"port": 8080}})
    assert not v.is_valid({"spec": {"port": {"a": 1}}})
    assert not v.is_valid({"spec": {"port": 1.5}})
    assert not v.is_valid({"spec": {"typo": 1}})


def test_each_manifest_is_parsed_once_and_only_a_broken_one_again_round_trip(
    env_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot import yamlio, yamlplain

    fast: list[str] = []
    round_trip: list[str] = []
    real_fast, real_round_trip = yamlplain.load_all, yamlio.load_all

    def count_fast(text: str, source: str, *args: object) -> list[object]:
        fast.append(source)
        return real_fast(text, source, *args)

    def count_round_trip(text: str, source: str, *args: object) -> list[object]:
        round_trip.append(source)
        return real_round_trip(text, source, *args)

    monkeypatch.setattr(yamlplain, "load_all", count_fast)
    monkeypatch.setattr(yamlio, "load_all", count_round_trip)
    report = validate_repo(env_repo)
    assert report.ok
    assert len(fast) == report.files_checked == len(set(fast))
    assert round_trip == []

    fast.clear()
    rel = "production/fraud-detector/inferenceservice.yaml"
    line = plant(env_repo, rel, "    minReplicas: 2\n", "    minReplica: 2\n")
    assert [str(p) for p in validate_repo(env_repo).problems] == [
        f"{rel}:{line}: $.spec.predictor.minReplica: unknown field 'minReplica'"
    ]
    assert len(fast) == len(set(fast)) and round_trip == [rel]


def test_validate_renders_no_manifest(env_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.manifests import cronjobs, inferenceservice, karpenter

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("validate rendered a manifest")

    for module, name in [
        (inferenceservice, "desired"),
        (cronjobs, "drift_check"),
        (cronjobs, "retrain"),
        (karpenter, "nodepool"),
        (karpenter, "ec2nodeclass"),
    ]:
        monkeypatch.setattr(module, name, refuse)
    (env_repo / "dev/fraud-detector/drift-check-cronjob.yaml").unlink()
    assert [str(p) for p in validate_repo(env_repo).problems] == [
        "dev/fraud-detector/drift-check-cronjob.yaml: missing: the catalog asks for this file "
        "(run `releasebot render` to create it)"
    ]


@pytest.mark.parametrize(
    "manifest",
    [
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "a"}, "spec": {"schedule": 5}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "a"}, "spec": {"schedule": "* * * * *"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}, "extra": 1},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}, "spec": {"replicas": "two"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "a"}, "rules": [{}]},
    ],
)
def test_builtin_kinds_are_checked_as_kubernetes_validate_checks_them(manifest: dict) -> None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(manifest, "1.30", strict=True)
        expected = None
    except kubernetes_validate.ValidationError as err:
        expected = (list(err.absolute_path), err.message)
    found = next(
        iter(schemacheck.builtin_validator(manifest["apiVersion"], manifest["kind"], "1.30").iter_errors(manifest)),
        None,
    )
    assert (None if found is None else (list(found.absolute_path), found.message)) == expected


def test_builtin_kind_missing_from_the_kubernetes_version_is_named() -> None:
    import kubernetes_validate

    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        schemacheck.builtin_validator("batch/v1beta1", "CronJob", "1.30")
