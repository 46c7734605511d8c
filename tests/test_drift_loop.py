"""Drift drives retraining through Git: real MLflow, real git, real Evidently."""

from __future__ import annotations

from pathlib import Path

from bot import yamlio
from tests.test_drift import frame
from tests.test_release_loop import World, git

DRIFT_POLICY = """    drift:
      schedule: "0 * * * *"
      current:
        uri: /unused/in/this/test.parquet
      datasetDriftShare: 0.3
      action: retrain
    retrain:
      pipelineId: fraud-training
pipelines:
  endpoint: http://pipelines.example/apis/v2beta1/runs
"""
RETRAIN = "refs/heads/releasebot/staging/fraud/retrain"
CRON = "staging/fraud/retrain-cronjob.yaml"


def cron(world: World, ref: str) -> dict:
    return yamlio.to_plain(yamlio.load(world.show(ref, CRON), CRON))


def check_drift(world: World, run_cli, data, name: str) -> None:
    reference, window = world.tmp / "reference.parquet", world.tmp / name
    frame(3000, seed=1).to_parquet(reference)
    data.to_parquet(window)
    result = run_cli(
        "drift",
        "run",
        "--model",
        "fraud",
        "--env",
        "staging",
        "--registered-model",
        world.name,
        "--alias",
        "champion",
        "--reference",
        reference,
        "--current",
        window,
        "--drift-share",
        "0.3",
        "--tracking-uri",
        world.url,
    )
    assert result.code == 0, result.err


def test_drift_unsuspends_retraining_once_and_a_newer_release_suspends_it(
    mlflow_url: str, tmp_path: Path, run_cli
) -> None:
    world = World(mlflow_url, tmp_path, run_cli, extra_model=DRIFT_POLICY)
    v1 = world.version(0.9)
    world.alias("champion", v1)
    assert world.reconcile().code == 0
    world.merge("releasebot/staging/fraud/release")
    assert "deleted branch releasebot/staging/fraud/release" in world.reconcile().out  # merged: cleaned up
    assert cron(world, "main")["spec"]["suspend"] is True

    # No drift: status ok, nothing to change.
    check_drift(world, run_cli, frame(2000, seed=2), "calm.parquet")
    refs = world.refs()
    assert world.reconcile().code == 0 and world.refs() == refs

    # Drift: exactly one retrain change, with the run and the reason on the CronJob.
    check_drift(world, run_cli, frame(2000, seed=3, shift=0.8), "shifted.parquet")
    result = world.reconcile()
    assert result.code == 0, result.err
    assert set(world.refs()) - set(refs) == {RETRAIN}
    proposed = cron(world, RETRAIN)
    assert proposed["spec"]["suspend"] is False
    annotations = proposed["metadata"]["annotations"]
    assert annotations["releasebot.dev/drift-version"] == v1
    assert "of columns drifted (threshold 0.3)" in annotations["releasebot.dev/drift-reason"]
    body = git(world.remote, "log", "-1", "--format=%B", RETRAIN)
    assert body.startswith("Retrain fraud: drift in staging") and "Releasebot-Drift-Run: " in body
    old, new = world.show("main", CRON).splitlines(), world.show(RETRAIN, CRON).splitlines()
    assert [line for line in old if line not in new] == ["  suspend: true"]  # only drift-owned fields move
    assert [line.strip().split(":")[0] for line in new if line not in old] == [
        "annotations",
        "releasebot.dev/drift-run",
        "releasebot.dev/drift-version",
        "releasebot.dev/drift-reason",
        "suspend",
    ]

    # The job runs again and finds drift again: still one change.
    check_drift(world, run_cli, frame(2000, seed=4, shift=0.8), "shifted-again.parquet")
    assert world.reconcile().code == 0
    assert [r for r in world.refs() if r.startswith("refs/heads/releasebot/")] == [RETRAIN]
    assert git(world.remote, "rev-list", "--count", f"main..{RETRAIN}").strip() == "1"

    # Retraining runs; a newer version is released; the CronJob is suspended again.
    world.merge("releasebot/staging/fraud/retrain")
    assert cron(world, "main")["spec"]["suspend"] is False
    v2 = world.version(0.95)
    world.alias("champion", v2)
    assert world.reconcile().code == 0
    world.merge("releasebot/staging/fraud/release")
    result = world.reconcile()
    assert result.code == 0, result.err
    assert f"Stop retraining fraud in staging: v{v2} is released" in result.out
    world.merge("releasebot/staging/fraud/retrain")
    assert cron(world, "main")["spec"]["suspend"] is True
