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


ALERT_POLICY = """    drift:
      schedule: "0 * * * *"
      current:
        uri: /unused/in/this/test.parquet
      datasetDriftShare: 0.3
      action: alert
"""


def test_alert_policy_keeps_one_github_issue_and_closes_it_when_drift_ends(
    mlflow_url: str, tmp_path: Path, run_cli, monkeypatch
) -> None:
    from tests.github_api import GitHubMock, example, issue

    monkeypatch.setenv("RELEASEBOT_GITHUB_TOKEN", "ghs_test")
    world = World(mlflow_url, tmp_path, run_cli, extra_model=ALERT_POLICY)
    world.alias("champion", world.version(0.9))
    assert world.reconcile().code == 0
    world.merge("releasebot/staging/fraud/release")
    repo = {"owner": "acme", "repo": "envs"}
    query = {"state": "all", "labels": "releasebot", "sort": "created", "direction": "desc"}

    check_drift(world, run_cli, frame(2000, seed=3, shift=0.8), "shifted.parquet")
    created: list[dict] = []
    with GitHubMock() as gh:
        gh.passthru(mlflow_url)
        gh.add("issues/list-for-repo", repo, 200, [], query=query)
        gh.add("issues/create", repo, 201, issue(21, "t", "b"), check_request=lambda h, b: created.append(b))
        result = world.reconcile()
        assert result.code == 0, result.err
    assert "opened drift alert issue #21" in result.out
    assert created[0]["title"].startswith("Drift: fraud v1 in staging")
    assert "| column | score | method | threshold |" in created[0]["body"]
    assert not [r for r in world.refs() if "/retrain" in r or "/alert" in r]  # an alert changes no file

    # The same drift run again: the issue is found and left as it is.
    opened = issue(21, created[0]["title"], created[0]["body"])
    with GitHubMock() as gh:
        gh.passthru(mlflow_url)
        gh.add("issues/list-for-repo", repo, 200, [opened], query=query)
        result = world.reconcile()
        assert result.code == 0 and "drift alert" not in result.out
        assert gh.checked == 1

    # The next check finds no drift: the issue is closed with the reason.
    check_drift(world, run_cli, frame(2000, seed=2), "calm.parquet")
    closing: list[dict] = []
    with GitHubMock() as gh:
        gh.passthru(mlflow_url)
        gh.add("issues/list-for-repo", repo, 200, [opened], query=query)
        gh.add("issues/create-comment", {**repo, "issue_number": 21}, 201, example("issue-comment"))
        gh.add(
            "issues/update",
            {**repo, "issue_number": 21},
            200,
            issue(21, "t", "b", state="closed"),
            check_request=lambda h, b: closing.append(b),
        )
        result = world.reconcile()
        assert result.code == 0, result.err
    assert "closed drift alert issue #21" in result.out and closing[0]["state"] == "closed"
