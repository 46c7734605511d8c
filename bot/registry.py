"""MLflow, as the planner needs it: which version each alias points at, and the evidence behind it.

:class:`Registry` reads, for each registered model of the catalog, its aliases (from the
registered model: MLflow's version search leaves them out), and for each version the planner
may need: the physical artifact location mapped to a ``storageUri`` KServe can read, run id,
metrics, params, tags and dataset lineage. The result is a frozen :class:`RegistrySnapshot`;
nothing downstream talks to MLflow.

MLflow's client retries a failing server for minutes by default; this adapter bounds retries and
timeouts, and turns failures into :class:`TransientUpstreamError` (unreachable, 5xx) or
:class:`PermanentUpstreamError` (a deleted version, a URI KServe cannot read). It never writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.plan.types import Dataset, ModelState, RegistrySnapshot, Version

__all__ = ["Dataset", "ModelState", "Registry", "RegistrySnapshot", "Version", "map_storage_uri"]

# Schemes KServe's storage initializer can download from.
KSERVE_SCHEMES = ("s3://", "gs://", "https://", "http://", "pvc://", "hdfs://", "webhdfs://", "oci://", "hf://")


def map_storage_uri(uri: str, mapping: Iterable[tuple[str, str]], where: str) -> str:
    """Rewrite an MLflow artifact location to one KServe can read, or refuse it clearly."""
    for prefix, replacement in mapping:
        if uri.startswith(prefix):
            uri = replacement + uri[len(prefix) :]
            break
    if not uri.startswith(KSERVE_SCHEMES):
        hint = (
            "map it with registry.storageUriMap in releasebot.yaml (e.g. 'mlflow-artifacts:/' -> 's3://bucket/')"
            if uri.startswith(("mlflow-artifacts:", "/", "file:", "models:", "runs:"))
            else f"KServe reads {', '.join(KSERVE_SCHEMES)}"
        )
        raise PermanentUpstreamError(f"{where}: KServe cannot read the artifact location {uri!r}; {hint}")
    return uri


class Registry:
    """A read-only view of an MLflow tracking server (or local store) with bounded retries."""

    def __init__(
        self, tracking_uri: str, storage_uri_map: Iterable[tuple[str, str]] = (), timeout: int = 10, retries: int = 1
    ) -> None:
        # Read by MLflow on every request; set only where the operator has not chosen otherwise.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        from mlflow.tracking import MlflowClient  # mlflow takes ~1.5 s to import: only when needed

        self.tracking_uri = tracking_uri
        self.storage_uri_map = tuple(storage_uri_map)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        from mlflow.exceptions import MlflowException
        from requests.exceptions import RequestException

        try:
            return fn(*args)
        except MlflowException as exc:
            code = getattr(exc, "error_code", "")
            if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                raise PermanentUpstreamError(f"MLflow: {what}: {exc.message}") from exc
            if any(s in str(exc) for s in ("Failed to establish", "Connection refused", "timed out")):
                raise TransientUpstreamError(f"MLflow at {self.tracking_uri} is unreachable ({what})") from exc
            if "Max retries exceeded" in str(exc) or code in ("TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR", ""):
                raise TransientUpstreamError(f"MLflow at {self.tracking_uri} failed: {what}: {exc.message}") from exc
            raise PermanentUpstreamError(f"MLflow: {what}: {exc.message}") from exc
        except (RequestException, OSError) as exc:
            raise TransientUpstreamError(f"MLflow at {self.tracking_uri} is unreachable ({what})") from exc

    def aliases(self, registered_model: str) -> dict[str, str]:
        model = self._call(f"registered model {registered_model!r}", self.client.get_registered_model, registered_model)
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}

    def version(self, registered_model: str, version: str) -> Version:
        where = f"{registered_model} version {version}"
        mv = self._call(where, self.client.get_model_version, registered_model, version)
        raw_uri = self._call(where, self.client.get_model_version_download_uri, registered_model, version)
        storage_uri = map_storage_uri(raw_uri, self.storage_uri_map, where)
        metrics: dict[str, float] = {}
        params: dict[str, str] = {}
        run_tags: dict[str, str] = {}
        datasets: list[Dataset] = []
        experiment_id = None
        if mv.run_id:
            run = self._call(f"run {mv.run_id} of {where}", self.client.get_run, mv.run_id)
            experiment_id = run.info.experiment_id
            metrics, params = dict(run.data.metrics), dict(run.data.params)
            run_tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
            for di in run.inputs.dataset_inputs if run.inputs else []:
                d = di.dataset
                datasets.append(Dataset(d.name, d.digest, d.source, d.source_type))
        drift = self._drift_result(dict(mv.tags or {}))
        return Version(
            drift=drift,
            registered_model=registered_model,
            version=str(mv.version),
            storage_uri=storage_uri,
            run_id=mv.run_id or None,
            status=str(mv.status),
            experiment_id=experiment_id,
            metrics=tuple(sorted(metrics.items())),
            params=tuple(sorted(params.items())),
            tags=tuple(sorted((mv.tags or {}).items())),
            run_tags=tuple(sorted(run_tags.items())),
            datasets=tuple(datasets),
        )

    def _drift_result(self, tags: dict[str, str]) -> dict[str, Any] | None:
        """The drift job's result behind a version's ``releasebot.drift.*`` tags, when it found drift."""
        run_id = tags.get("releasebot.drift.run_id")
        if tags.get("releasebot.drift.status") != "drift" or not run_id:
            return None
        import json
        import tempfile

        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = self.client.download_artifacts(run_id, "drift-result.json", tmp)
                result = json.loads(Path(path).read_text(encoding="utf-8"))
            result["experimentId"] = self.client.get_run(run_id).info.experiment_id
            return result
        except Exception:  # the tags alone still say drift; the table is a nicety
            return {"runId": run_id, "columnResults": [], "experimentId": None}

    def snapshot(self, wanted: dict[str, set[str]]) -> RegistrySnapshot:
        """Aliases of every registered model in ``wanted``, plus the versions they point at and
        the extra versions named (for instance those serving today, to compare metrics)."""
        models = {}
        for name, extra in sorted(wanted.items()):
            aliases = self.aliases(name)
            versions = {}
            for v in sorted(set(aliases.values()), key=_version_order):
                versions[v] = self.version(name, v)
            for v in sorted(extra - set(versions), key=_version_order):
                # Versions serving today are read for comparison only; one may have been deleted.
                try:
                    versions[v] = self.version(name, v)
                except PermanentUpstreamError:
                    continue
            models[name] = ModelState(name, tuple(sorted(aliases.items())), versions)
        return RegistrySnapshot(self.tracking_uri, models)


def _version_order(v: str) -> int:
    return int(v) if v.isdigit() else 0
