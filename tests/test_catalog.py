"""The catalog: the example loads; bad input is refused with file, line and JSON path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.catalog import load_catalog, parse_catalog
from bot.errors import InvalidInput, YamlError
from tests.conftest import EXAMPLE_CATALOG, EXAMPLE_DIR


def refuse(text: str) -> str:
    with pytest.raises(InvalidInput) as info:
        parse_catalog(text, "releasebot.yaml", EXAMPLE_CATALOG.parent)
    return str(info.value)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[nth - 1]


def test_example_catalog_loads_into_typed_objects() -> None:
    cat = load_catalog(EXAMPLE_CATALOG)
    assert [e.name for e in cat.environments] == ["dev", "staging", "production"]
    fraud = cat.model("fraud-detector")
    assert fraud.replicas_in(cat.environment("dev")).min == 0  # dev allows scale-to-zero
    assert fraud.replicas_in(cat.environment("staging")).min == 1  # staging keeps one warm
    assert fraud.replicas_in(cat.environment("production")).max == 10  # override
    assert [m.name for m in cat.models_in(cat.environment("dev"))] == ["fraud-detector", "review-sentiment"]
    assert cat.model("review-sentiment").resources.as_k8s()["limits"]["nvidia.com/gpu"] == 1


def test_unknown_catalog_key_is_named_with_line_and_path(example_text: str) -> None:
    text = example_text.replace("  branch: main\n", "  branch: main\n  brnch: develop\n")
    message = refuse(text)
    assert f"releasebot.yaml:{line_of(text, 'brnch')}: $.repository.brnch: unknown field 'brnch'" in message


def test_float_cpu_quantity_is_refused(example_text: str) -> None:
    text = example_text.replace("cpu: 500m", "cpu: 0.5")
    message = refuse(text)
    assert f"releasebot.yaml:{line_of(text, 'cpu: 0.5')}: $.models[0].resources.cpu: 0.5 is invalid" in message
    assert "Floats are refused" in message


@pytest.mark.parametrize("bad", ["credit..risk", "credit/risk", "Credit-Risk", "-credit", "x" * 41])
def test_invalid_model_names_are_refused(example_text: str, bad: str) -> None:
    text = example_text.replace("- name: credit-risk", f"- name: {bad}")
    message = refuse(text)
    assert f"releasebot.yaml:{line_of(text, bad)}: $.models[2].name:" in message
    assert "RFC 1123 label" in message


def test_invalid_cron_in_catalog(example_text: str) -> None:
    text = example_text.replace('schedule: "15 2 * * *"', 'schedule: "15 25 * * *"')
    message = refuse(text)
    assert f":{line_of(text, '15 25')}: $.models[2].drift.schedule: invalid cron schedule" in message
    assert "hour: 25 is outside 0-23" in message


def test_reference_to_unknown_environment(example_text: str) -> None:
    text = example_text.replace("environments: [staging, production]", "environments: [staging, prod]")
    assert "$.models[2].environments[1]: unknown environment 'prod'" in refuse(text)


def test_min_replicas_above_max(example_text: str) -> None:
    text = example_text.replace("replicas: {min: 2, max: 10}", "replicas: {min: 12, max: 10}")
    assert "$.models[0].overrides.production.replicas.min: min (12) is greater than max (10)" in refuse(text)


def test_scale_to_zero_needs_serverless(example_text: str) -> None:
    text = example_text.replace("kserveDeploymentMode: Serverless", "kserveDeploymentMode: RawDeployment")
    message = refuse(text)
    assert "$.environments[0].scaleToZero: scale-to-zero needs KServe's Serverless mode" in message
    assert "$.models[0].replicas.min: minReplicas 0 needs KServe's Serverless mode" in message


def test_retrain_needs_a_pipeline_endpoint(example_text: str) -> None:
    start = example_text.index("pipelines:")
    end = example_text.index("# Environments, in promotion order")
    assert "'pipelines.endpoint' (where runs are submitted) is required" in refuse(
        example_text[:start] + example_text[end:]
    )


def test_pipelines_take_a_v2beta1_runs_endpoint_and_no_curl_image(example_text: str) -> None:
    endpoint = "http://ml-pipeline.kubeflow.svc.cluster.local:8888/apis/v2beta1/runs"
    text = example_text.replace(endpoint, endpoint.replace("v2beta1", "v1beta1"))
    assert f"releasebot.yaml:{line_of(text, 'apis/v1beta1')}: $.pipelines.endpoint:" in refuse(text)
    text = example_text.replace(
        "  tokenSecret:\n    name: kfp", "  image: curlimages/curl:8.11.1\n  tokenSecret:\n    name: kfp"
    )
    message = refuse(text)
    assert f"releasebot.yaml:{line_of(text, 'curlimages')}: $.pipelines.image: pipelines.image is no longer" in message
    secret = load_catalog(EXAMPLE_CATALOG).pipelines_token
    assert secret is not None and (secret.name, secret.key) == ("kfp-token", "token")


def test_duplicate_environment_and_shared_namespace(example_text: str) -> None:
    text = example_text.replace("name: staging\n", "name: dev\n").replace("models-staging", "models-dev")
    message = refuse(text)
    assert "environment 'dev' is defined twice" in message
    assert "namespace 'models-dev' is already used by environment 'dev'" in message


def test_missing_required_section(example_text: str) -> None:
    text = example_text.replace("version: 1\n", "")
    assert "releasebot.yaml:1: $: missing required field 'version'" in refuse(text)


def test_serving_needs_exactly_one_of_format_or_image(example_text: str) -> None:
    text = example_text.replace("      format: xgboost\n", "      format: xgboost\n      image: ghcr.io/x/y:1\n")
    assert "$.models[2].serving" in refuse(text)


def test_hostile_catalog_is_a_yaml_error(tmp_path: Path) -> None:
    path = tmp_path / "releasebot.yaml"
    path.write_text("version: 1\nversion: 1\n")
    with pytest.raises(YamlError, match=r"releasebot.yaml:2: duplicate key 'version'"):
        load_catalog(path)


def test_blueprint_folder_must_exist(example_text: str) -> None:
    text = example_text.replace("version: 1\n", "version: 1\nblueprints: ./nowhere\n")
    assert "blueprint folder './nowhere' does not exist" in refuse(text)


def test_a_validated_catalog_is_read_back_from_the_cache_not_parsed_again(
    tmp_path: Path, example_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot import yamlio

    cache = tmp_path / "cache"
    first = parse_catalog(example_text, "releasebot.yaml", EXAMPLE_DIR, cache=cache)
    [remembered] = list(cache.iterdir())

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(yamlio, "load", no_parsing)
    assert parse_catalog(example_text, "releasebot.yaml", EXAMPLE_DIR, cache=cache) == first
    monkeypatch.undo()
    # Another text is validated afresh, and its problems are reported as always.
    with pytest.raises(InvalidInput):
        parse_catalog(example_text.replace("version: 1", "version: 2"), "releasebot.yaml", EXAMPLE_DIR, cache=cache)
    remembered.write_text("{broken")
    assert parse_catalog(example_text, "releasebot.yaml", EXAMPLE_DIR, cache=cache) == first


def test_settings_nothing_acts_on_yet_are_refused_where_they_stand(example_text: str) -> None:
    text = example_text.replace(
        "    autoMerge: false\n",
        "    autoMerge: true\n    canary:\n      steps: [10, 100]\n",
    ).replace("bot:\n", "bot:\n  package: releasebot==0.1.0\n")
    text = text.replace("    writeBack: branch\n", "    writeBack: branch\n    autoMerge: true\n")
    message = refuse(text)
    assert f"releasebot.yaml:{line_of(text, 'package: releasebot')}: $.bot.package: bot.package is no longer" in message
    # Auto-merge is carried out for pull requests; on a branch nothing waits to be merged.
    at = text.index("writeBack: branch\n    autoMerge: true")
    line = text[:at].count("\n") + 2
    assert f"releasebot.yaml:{line}: $.environments[1].autoMerge: autoMerge needs writeBack: pull-request" in message
    assert "environments[2].autoMerge" not in message
    # A canary walk is carried out, so it is refused only for what it would lack: here Prometheus.
    assert (
        f"releasebot.yaml:{line_of(text, 'canary:')}: $.environments[2].canary: canary analysis needs prometheus.url"
        in message
    )
    # false asks for nothing, so it stays accepted.
    assert load_catalog(EXAMPLE_CATALOG).environment("production").write_back == "pull-request"


CANARY = "    canary:\n      steps: [10, 50, 100]\n"


def test_canary_walk_is_parsed_with_its_defaults(example_text: str) -> None:
    text = example_text.replace("    autoMerge: false\n", "    autoMerge: false\n" + CANARY + "      interval: 90s\n")
    text += "prometheus:\n  url: http://prometheus-operated.monitoring.svc:9090\n"
    cat = parse_catalog(text, "releasebot.yaml", EXAMPLE_DIR)
    canary = cat.environment("production").canary
    assert canary is not None
    assert (canary.steps, canary.interval, canary.deadline, canary.no_data) == ((10, 50, 100), 90, 900, "fail")
    assert canary.max_error_ratio == 0.01 and canary.queries == ()
    assert cat.environment("staging").canary is None
    assert cat.prometheus_url == "http://prometheus-operated.monitoring.svc:9090"


@pytest.mark.parametrize(
    ("canary", "cluster", "expected"),
    [
        ("      steps: [50, 10]\n", "", "$.environments[2].canary.steps: canary steps must increase strictly"),
        ("      steps: [0, 50]\n", "", "$.environments[2].canary.steps: a 0% step (dark launch) needs Standard"),
        (
            "      steps: [10]\n",
            "  kserveDeploymentMode: Standard\n",
            "$.environments[2].canary: canary steps in Standard mode need KServe 0.20 or later (spec.canary); "
            "cluster.kserveVersion is not set",
        ),
        (
            "      steps: [10]\n",
            '  kserveDeploymentMode: RawDeployment\n  kserveVersion: "0.15"\n',
            "canary steps in RawDeployment mode need KServe 0.20 or later (spec.canary); cluster.kserveVersion is 0.15",
        ),
        (
            "      steps: [10]\n      analysis:\n        queries:\n          - {name: q, query: up, max: 1}\n",
            "",
            "$.environments[2].canary.analysis.queries[0].query: query 'q' has no {{revision}}",
        ),
    ],
)
def test_canary_walk_the_cluster_cannot_do_is_refused(
    example_text: str, canary: str, cluster: str, expected: str
) -> None:
    text = example_text.replace("    autoMerge: false\n", "    autoMerge: false\n    canary:\n" + canary)
    text = text.replace("  kserveDeploymentMode: Serverless\n", cluster or "  kserveDeploymentMode: Serverless\n")
    text += "prometheus:\n  url: http://prometheus-operated.monitoring.svc:9090\n"
    assert expected in refuse(text)


def test_canary_in_standard_mode_on_kserve_0_20_is_accepted(example_text: str) -> None:
    text = example_text.replace("    autoMerge: false\n", "    autoMerge: false\n    canary:\n      steps: [0, 10]\n")
    text = text.replace(
        "  kserveDeploymentMode: Serverless\n", '  kserveDeploymentMode: Standard\n  kserveVersion: "0.20"\n'
    )
    text = text.replace("    scaleToZero: true\n", "").replace("      min: 0\n", "      min: 1\n")
    text += "prometheus:\n  url: http://prometheus-operated.monitoring.svc:9090\n"
    cat = parse_catalog(text, "releasebot.yaml", EXAMPLE_DIR)
    assert cat.standard_mode and cat.environment("production").canary.steps == (0, 10)
