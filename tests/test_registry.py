"""The registry adapter against a real MLflow server: bulk and per-model reads agree, immutable
facts are read once, and one unreadable model fails only itself."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest

from bot import registry as registry_module
from bot.registry import Registry


class Fleet:
    """A few registered models, each with two versions (with runs) and aliases."""

    def __init__(self, url: str, count: int = 3) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(url, registry_uri=url)
        self.names = [f"reg-{uuid.uuid4().hex[:8]}" for _ in range(count)]
        for name in self.names:
            self.client.create_registered_model(name)
            for accuracy in (0.8, 0.9):
                run_id = self.client.create_run("0").info.run_id
                self.client.log_metric(run_id, "accuracy", accuracy)
                self.client.set_terminated(run_id)
                self.client.create_model_version(name, f"s3://models/{name}/{accuracy}", run_id=run_id)
            self.client.set_registered_model_alias(name, "champion", "1")
            self.client.set_registered_model_alias(name, "candidate", "2")
            self.client.set_model_version_tag(name, "1", "releasebot.drift.status", "ok")


def counting(reg: Registry) -> Counter[str]:
    """Count the MLflow client calls ``reg`` makes, by method."""
    calls: Counter[str] = Counter()
    for method in (
        "get_registered_model",
        "get_model_version",
        "get_model_version_download_uri",
        "get_run",
        "search_registered_models",
        "search_model_versions",
    ):
        original = getattr(reg.client, method)

        def wrapped(*args, _original=original, _method=method, **kwargs):
            calls[_method] += 1
            return _original(*args, **kwargs)

        setattr(reg.client, method, wrapped)
    return calls


@pytest.fixture
def fleet(mlflow_url: str) -> Fleet:
    return Fleet(mlflow_url)


def test_bulk_and_per_model_reads_give_the_same_snapshot(
    fleet: Fleet, mlflow_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = {name: {"1"} for name in fleet.names}
    monkeypatch.setattr(registry_module, "BULK", 1000)
    one_by_one = Registry(mlflow_url).snapshot(wanted)
    monkeypatch.setattr(registry_module, "BULK", 1)
    bulk_registry = Registry(mlflow_url)
    calls = counting(bulk_registry)
    in_bulk = bulk_registry.snapshot(wanted)
    assert in_bulk == one_by_one
    state = in_bulk.models[fleet.names[0]]
    assert state.alias("candidate") == "2" and state.alias("champion") == "1"
    assert state.versions["1"].tag["releasebot.drift.status"] == "ok"
    assert dict(state.versions["2"].metrics) == {"accuracy": 0.9}
    assert state.versions["2"].storage_uri == f"s3://models/{fleet.names[0]}/0.9"
    # Aliases and tags come from searches, not one request per model or version (MLflow's client
    # asks for the registered model once inside each download-URI call: those are the only ones).
    assert calls["get_model_version"] == 0
    assert calls["get_registered_model"] == calls["get_model_version_download_uri"] == 6
    assert calls["search_model_versions"] == 1


def test_immutable_facts_are_read_once_even_across_processes(fleet: Fleet, mlflow_url: str, tmp_path: Path) -> None:
    wanted = {name: set() for name in fleet.names}
    cache = tmp_path / "facts.json"
    first = Registry(mlflow_url, cache_file=cache)
    first_calls = counting(first)
    snapshot = first.snapshot(wanted)
    assert first_calls["get_run"] == 6 and cache.exists()
    fleet.client.set_model_version_tag(fleet.names[0], "1", "releasebot.drift.status", "drift")
    second = Registry(mlflow_url, cache_file=cache)  # a new process would build exactly this
    second_calls = counting(second)
    again = second.snapshot(wanted)
    assert second_calls["get_run"] == 0 and second_calls["get_model_version_download_uri"] == 0
    # What can change is read afresh: the new drift tag is seen.
    assert again.models[fleet.names[0]].versions["1"].tag["releasebot.drift.status"] == "drift"
    assert again.models[fleet.names[1]] == snapshot.models[fleet.names[1]]


@pytest.mark.parametrize("bulk", [1, 1000])
def test_one_missing_model_fails_only_itself(
    fleet: Fleet, mlflow_url: str, monkeypatch: pytest.MonkeyPatch, bulk: int
) -> None:
    monkeypatch.setattr(registry_module, "BULK", bulk)
    wanted = {name: set() for name in fleet.names} | {"no-such-model": set()}
    snapshot = Registry(mlflow_url).snapshot(wanted)
    assert set(snapshot.models) == set(fleet.names)
    assert "no-such-model" in snapshot.problems["no-such-model"]


def test_a_cache_file_that_is_not_json_is_ignored(fleet: Fleet, mlflow_url: str, tmp_path: Path) -> None:
    cache = tmp_path / "facts.json"
    cache.write_text("{not json")
    snapshot = Registry(mlflow_url, cache_file=cache).snapshot({fleet.names[0]: set()})
    assert snapshot.models[fleet.names[0]].alias("champion") == "1"
