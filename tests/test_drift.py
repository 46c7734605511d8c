"""The drift job with real Evidently and a real MLflow server, on synthetic data."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.catalog import load_catalog
from bot.cli import build_parser
from bot.drift import DriftJob, parse_column, validate_result
from bot.manifests.cronjobs import drift_args
from tests.conftest import EXAMPLE_CATALOG

COLUMNS = [f"f{i}" for i in range(6)]


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {c: rng.normal(size=n) + (shift if i < 4 else 0.0) for i, c in enumerate(COLUMNS)}
    data["segment"] = rng.choice(["a", "b", "c"], size=n)
    return pd.DataFrame(data)


class Served:
    """A registered model whose version recorded its training data as a run input."""

    def __init__(self, url: str, tmp: Path) -> None:
        from mlflow.entities import Dataset, DatasetInput
        from mlflow.tracking import MlflowClient

        self.url, self.tmp = url, tmp
        self.client = MlflowClient(url, registry_uri=url)
        self.name = f"drifty-{uuid.uuid4().hex[:8]}"
        self.model = f"m-{uuid.uuid4().hex[:6]}"
        self.reference = tmp / "train.parquet"
        frame(3000, seed=1).to_parquet(self.reference)
        run_id = self.client.create_run("0").info.run_id
        source = json.dumps({"uri": str(self.reference)})
        # MLflow keeps one dataset per (name, digest) in an experiment: a digest of its own, or
        # this model's run would point at another test's file.
        digest = uuid.uuid4().hex[:12]
        self.client.log_inputs(run_id, [DatasetInput(Dataset("train", digest, "local", source))])
        self.client.create_registered_model(self.name)
        self.version = self.client.create_model_version(self.name, "s3://m/1", run_id=run_id).version
        self.client.set_registered_model_alias(self.name, "champion", self.version)

    def window(self, data: pd.DataFrame, name: str = "window.parquet") -> str:
        path = self.tmp / name
        if name.endswith(".csv"):
            data.to_csv(path, index=False)
        else:
            data.to_parquet(path)
        return str(path)

    def run(self, run_cli, current: str, *extra: str):
        return run_cli(
            "drift",
            "run",
            "--model",
            self.model,
            "--env",
            "production",
            "--registered-model",
            self.name,
            "--alias",
            "champion",
            "--current",
            current,
            "--tracking-uri",
            self.url,
            *extra,
        )

    def tags(self) -> dict[str, str]:
        return {
            k: v
            for k, v in self.client.get_model_version(self.name, self.version).tags.items()
            if k.startswith("releasebot.drift")
        }

    def runs(self) -> list:
        exp = self.client.get_experiment_by_name(f"releasebot-drift/{self.model}")
        return self.client.search_runs([exp.experiment_id]) if exp else []


@pytest.fixture
def served(mlflow_url: str, tmp_path: Path) -> Served:
    return Served(mlflow_url, tmp_path)


def test_no_drift_is_recorded_as_ok(served: Served, run_cli) -> None:
    result = served.run(run_cli, served.window(frame(2000, seed=2)))
    assert result.code == 0, result.err
    assert ": ok (0/7 columns drifted: none;" in result.out
    tags = served.tags()
    assert (
        tags["releasebot.drift.production.status"] == "ok" and float(tags["releasebot.drift.production.share"]) == 0.0
    )
    (run,) = served.runs()
    assert tags["releasebot.drift.production.run_id"] == run.info.run_id
    assert run.data.metrics["drift_share"] == 0.0 and "score.f0" in run.data.metrics
    assert run.data.params["reference"] == str(served.reference)  # the training dataset, from the run inputs
    artifacts = {a.path for a in served.client.list_artifacts(run.info.run_id)}
    assert artifacts == {"drift-result.json", "report.html"}
    local = served.client.download_artifacts(run.info.run_id, "drift-result.json", str(served.tmp))
    document = json.loads(Path(local).read_text())
    validate_result(document)
    assert document["status"] == "ok" and document["window"]["referenceRows"] == 3000


def test_shifted_data_is_drift_with_the_drifted_columns_first(served: Served, run_cli) -> None:
    result = served.run(
        run_cli, served.window(frame(2000, seed=3, shift=0.8)), "--drift-share", "0.3", "--column", "f5=psi:0.2"
    )
    assert result.code == 0, result.err  # drift is a finding, not a failure
    assert ": drift (4/7 columns drifted: f0, f1, f2, f3;" in result.out
    assert served.tags()["releasebot.drift.production.status"] == "drift"
    (run,) = served.runs()
    assert run.data.params["method.f5"] == "psi@0.2"
    assert served.run(run_cli, served.window(frame(2000, seed=3, shift=0.8)), "--fail-on-drift").code == 1


def test_large_windows_are_sampled(served: Served, run_cli) -> None:
    result = served.run(run_cli, served.window(frame(5000, seed=4)), "--sample", "1000")
    assert result.code == 0, result.err
    (run,) = served.runs()
    local = served.client.download_artifacts(run.info.run_id, "drift-result.json", str(served.tmp))
    window = json.loads(Path(local).read_text())["window"]
    assert window["sampled"] is True and window["currentRows"] == 5000 and window["sample"] == 1000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            frame(500, seed=5).drop(columns=["f2", "segment"]),
            "the current window lacks column(s) of the reference: f2, segment",
        ),
        (frame(500, seed=5).iloc[0:0], "the current window is empty"),
        (
            frame(500, seed=5).assign(f1="text"),
            "column types differ between reference and current: f1 (float64 vs object)",
        ),
    ],
    ids=["missing-columns", "empty-window", "mismatched-types"],
)
def test_bad_data_fails_clearly_and_leaves_mlflow_untouched(served: Served, run_cli, data, message) -> None:
    result = served.run(run_cli, served.window(data))
    assert result.code == 2
    assert message in result.err
    assert served.runs() == [] and served.tags() == {}


def test_unreadable_or_missing_window(served: Served, run_cli) -> None:
    assert "current data not found" in served.run(run_cli, str(served.tmp / "nope.parquet")).err
    bad = served.tmp / "bad.parquet"
    bad.write_text("not parquet")
    result = served.run(run_cli, str(bad))
    assert result.code == 2 and "is not readable parquet" in result.err
    assert served.runs() == [] and served.tags() == {}


def test_csv_windows_work_too(served: Served, run_cli) -> None:
    assert served.run(run_cli, served.window(frame(800, seed=6), "window.csv")).code == 0


def test_the_cronjob_arguments_are_what_this_command_accepts() -> None:
    cat = load_catalog(EXAMPLE_CATALOG)
    model, env = cat.model("fraud-detector"), cat.environment("production")
    args = build_parser().parse_args(drift_args(model, env))
    assert (args.model, args.env, args.alias, args.action) == ("fraud-detector", "production", "champion", "retrain")
    assert args.drift_share == 0.3 and args.column == ["amount=psi:0.2"]
    assert parse_column(args.column[0]) == ("amount", "psi", 0.2)


def test_job_defaults() -> None:
    job = DriftJob("m", "e", "r", "a", "x")
    assert job.sample == 100_000 and job.reference is None


def test_the_result_names_its_run_and_experiment_so_links_resolve(served: Served, run_cli) -> None:
    assert served.run(run_cli, served.window(frame(2000, seed=2))).code == 0
    (run,) = served.runs()
    local = served.client.download_artifacts(run.info.run_id, "drift-result.json", str(served.tmp))
    document = json.loads(Path(local).read_text())
    assert document["runId"] == run.info.run_id and document["experimentId"] == run.info.experiment_id


def test_two_environments_serving_one_version_keep_separate_verdicts(served: Served, run_cli) -> None:
    shifted, steady = served.window(frame(2000, seed=3, shift=0.8), "a.parquet"), served.window(frame(2000, seed=2))
    assert served.run(run_cli, shifted, "--drift-share", "0.3").code == 0
    assert served.run(run_cli, steady, "--environment", "staging").code == 0  # the later flag wins
    tags = served.tags()
    assert tags["releasebot.drift.production.status"] == "drift"
    assert tags["releasebot.drift.staging.status"] == "ok"
    assert tags["releasebot.drift.production.run_id"] != tags["releasebot.drift.staging.run_id"]


def test_version_checks_the_served_version_not_the_aliased_one(served: Served, run_cli) -> None:
    newer = served.client.create_model_version(served.name, "s3://m/2").version
    served.client.set_registered_model_alias(served.name, "champion", newer)  # production pinned to the old one
    result = served.run(run_cli, served.window(frame(2000, seed=2)), "--version", served.version)
    assert result.code == 0, result.err
    assert f" v{served.version} in production: ok" in result.out
    assert served.tags()["releasebot.drift.production.status"] == "ok"
    missing = served.run(run_cli, served.window(frame(2000, seed=2)), "--version", "999")
    assert missing.code == 2 and "version 999" in missing.err


def test_a_training_reference_needs_no_storage_uri_map(served: Served, run_cli) -> None:
    run_id = served.client.get_model_version(served.name, served.version).run_id
    # A local path: KServe cannot read it, so only the planner would need a storageUriMap entry.
    source = f"{served.client.get_run(run_id).info.artifact_uri}/model"
    proxied = served.client.create_model_version(served.name, source, run_id=run_id)
    served.client.set_registered_model_alias(served.name, "champion", proxied.version)
    result = served.run(run_cli, served.window(frame(2000, seed=2)))
    assert result.code == 0, result.err


def test_a_local_store_keeps_drift_artifacts_beside_its_database(
    tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    store, cwd = tmp_path / "store", tmp_path / "cwd"
    store.mkdir()
    cwd.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("local")
    client.create_model_version("local", "s3://m/1")
    client.set_registered_model_alias("local", "champion", "1")
    frame(500, seed=1).to_parquet(tmp_path / "ref.parquet")
    frame(500, seed=2).to_parquet(tmp_path / "cur.parquet")
    monkeypatch.chdir(cwd)
    result = run_cli(
        "drift", "run", "--model", "local", "--env", "dev", "--alias", "champion", "--tracking-uri", uri,
        "--reference", tmp_path / "ref.parquet", "--current", tmp_path / "cur.parquet",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in (store / "mlartifacts").rglob("*") if p.is_file()) == [
        "drift-result.json",
        "report.html",
    ]
