"""``releasebot demo`` runs end to end and leaves a store and a repo to look at."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot import yamlio


def test_demo_runs_end_to_end(tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("demo", "--dir", "demo")
    assert result.code == 0, result.err
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # nothing written beside its folder
    envs = tmp_path / "demo" / "environments"
    log = subprocess.run(
        ["git", "-C", str(envs), "log", "--topo-order", "--format=%s", "main"], capture_output=True, text=True
    ).stdout
    # Promotion order: dev first; staging's branch once dev serves the version; production's only
    # once a person merged staging's.
    assert log.splitlines() == [
        "Release iris-classifier v2 to dev",
        "Merge releasebot/staging/iris-classifier/release",
        "Release iris-classifier v1 to staging",
        "Release iris-classifier v1 to dev",
        "Initial environments repository",
    ]
    branches = subprocess.run(
        ["git", "-C", str(envs), "branch", "--format=%(refname:short)"], capture_output=True, text=True
    ).stdout.split()
    # v2 is proposed for staging; production's v1 branch was closed: @champion moved on to v2,
    # which waits for staging.
    assert sorted(branches) == ["main", "releasebot/staging/iris-classifier/release"]
    assert "production waits for v2 to be promoted in staging (it serves v1)" in result.out + result.err
    dev = yamlio.to_plain(yamlio.load_file(envs / "dev/iris-classifier/inferenceservice.yaml"))
    assert dev["spec"]["predictor"]["model"]["storageUri"].startswith("pvc://mlflow-artifacts/")
    assert "Nothing to change." in result.out
    assert (tmp_path / "demo" / "mlflow" / "mlflow.db").is_file()
    assert run_cli("validate", envs).code == 0


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path, run_cli) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    result = run_cli("demo", "--dir", tmp_path)
    assert result.code == 1
    assert "was not made by `releasebot demo`" in result.err
    assert (tmp_path / "mine.txt").read_text() == "keep"
