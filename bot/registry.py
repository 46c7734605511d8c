"""MLflow, as the planner needs it: which version each alias points at, and the evidence behind it.

:class:`Registry` reads, for each registered model of the catalog, its aliases (from the
registered model: MLflow's version search leaves them out), and for each version the planner
may need: the physical artifact location mapped to a ``storageUri`` KServe can read, run id,
metrics, params, tags and dataset lineage. The result is a frozen :class:`RegistrySnapshot`;
nothing downstream talks to MLflow.

Reads scale with the keys, not the fleet: a pass over a few models asks for each model and
version; a pass over many pages through MLflow's searches (a registered model carries all its
aliases, a version search returns the tags of many versions at once). What never changes — a
version's artifact location, a run's metrics and lineage, a drift run's result — is read once
and remembered, in memory and, when given a cache file, across processes; what can change
(aliases, version tags such as the drift verdict) is read every pass.

MLflow's client retries a failing server for minutes by default; this adapter bounds retries and
timeouts, and turns failures into :class:`TransientUpstreamError` (unreachable, 5xx) or
:class:`PermanentUpstreamError` (a deleted version, a URI KServe cannot read). It never writes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.plan.types import DRIFT_TAG, Dataset, ModelState, RegistrySnapshot, Version
from bot.redact import redact

__all__ = ["Dataset", "ModelState", "Registry", "RegistrySnapshot", "Version", "map_storage_uri", "registry_cache"]

# Past this many registered models in one pass, read through MLflow's searches instead of one
# request per model: a search page carries a thousand models' aliases.
BULK = 10
SEARCH_PAGE = 1000  # MLflow's maximum for registered model searches
VERSIONS_PAGE = 10_000
NAMES_PER_SEARCH = 50  # a search is a GET: its filter must fit comfortably in a URL

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
    """A view of an MLflow tracking server (or local store) with bounded retries. It reads, and
    writes only releasebot's own verdicts: the quality gate's model version tags."""

    def __init__(
        self,
        tracking_uri: str,
        storage_uri_map: Iterable[tuple[str, str]] = (),
        timeout: int = 10,
        retries: int = 1,
        cache_file: Path | None = None,
    ) -> None:
        # Read by MLflow on every request; set only where the operator has not chosen otherwise.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        from mlflow.tracking import MlflowClient  # mlflow takes ~1.5 s to import: only when needed

        self.tracking_uri = tracking_uri
        self.storage_uri_map = tuple(storage_uri_map)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.cache = _Immutable(cache_file, tracking_uri)

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        from mlflow.exceptions import MlflowException
        from requests.exceptions import RequestException

        try:
            return fn(*args)
        except MlflowException as exc:
            code = getattr(exc, "error_code", "")
            if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                raise PermanentUpstreamError(redact(f"MLflow: {what}: {exc.message}")) from exc
            if any(s in str(exc) for s in ("Failed to establish", "Connection refused", "timed out")):
                raise TransientUpstreamError(redact(f"MLflow at {self.tracking_uri} is unreachable ({what})")) from exc
            if "Max retries exceeded" in str(exc) or code in ("TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR", ""):
                raise TransientUpstreamError(
                    redact(f"MLflow at {self.tracking_uri} failed: {what}: {exc.message}")
                ) from exc
            raise PermanentUpstreamError(redact(f"MLflow: {what}: {exc.message}")) from exc
        except (RequestException, OSError) as exc:
            raise TransientUpstreamError(redact(f"MLflow at {self.tracking_uri} is unreachable ({what})")) from exc

    def set_tag(self, registered_model: str, version: str, name: str, value: str) -> None:
        """Say a verdict where data scientists look: a tag on the model version."""
        where = f"tag {registered_model} version {version}"
        self._call(where, self.client.set_model_version_tag, registered_model, version, name, value)

    def aliases(self, registered_model: str) -> dict[str, str]:
        model = self._call(f"registered model {registered_model!r}", self.client.get_registered_model, registered_model)
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}

    def version(self, registered_model: str, version: str, mv: Any = None) -> Version:
        """One version with its evidence; ``mv`` is its registry record when a search already
        brought it (its tags are the only part read afresh every pass)."""
        where = f"{registered_model} version {version}"
        if mv is None:
            mv = self._call(where, self.client.get_model_version, registered_model, version)
        raw_uri = self.cache.get("uri", f"{registered_model}/{version}")
        if raw_uri is None:
            raw_uri = self._call(where, self.client.get_model_version_download_uri, registered_model, version)
            self.cache.put("uri", f"{registered_model}/{version}", raw_uri)
        storage_uri = map_storage_uri(raw_uri, self.storage_uri_map, where)
        run = self._run(mv.run_id, where) if mv.run_id else {}
        tags = dict(mv.tags or {})
        return Version(
            drift=self._drift_results(tags),
            registered_model=registered_model,
            version=str(mv.version),
            storage_uri=storage_uri,
            run_id=mv.run_id or None,
            status=str(mv.status),
            experiment_id=run.get("experiment_id"),
            metrics=tuple(sorted((k, float(v)) for k, v in run.get("metrics", {}).items())),
            params=tuple(sorted(run.get("params", {}).items())),
            tags=tuple(sorted(tags.items())),
            run_tags=tuple(sorted(run.get("tags", {}).items())),
            datasets=tuple(Dataset(*d) for d in run.get("datasets", [])),
        )

    def _run(self, run_id: str, where: str) -> dict[str, Any]:
        """A run's evidence (experiment, metrics, params, tags, datasets), read once."""
        found = self.cache.get("run", run_id)
        if found is None:
            run = self._call(f"run {run_id} of {where}", self.client.get_run, run_id)
            found = {
                "experiment_id": run.info.experiment_id,
                "metrics": dict(run.data.metrics),
                "params": dict(run.data.params),
                "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
                "datasets": [
                    [di.dataset.name, di.dataset.digest, di.dataset.source, di.dataset.source_type]
                    for di in (run.inputs.dataset_inputs if run.inputs else [])
                ],
            }
            self.cache.put("run", run_id, found)
        return found

    def _drift_results(self, tags: dict[str, str]) -> dict[str, dict[str, Any]]:
        """The drift job's result behind each environment's ``releasebot.drift.<env>.*`` tags that say drift."""
        found = {}
        for key, status in tags.items():
            parts = key.split(".")
            if len(parts) == 4 and key.startswith(DRIFT_TAG + ".") and parts[3] == "status" and status == "drift":
                run_id = tags.get(f"{DRIFT_TAG}.{parts[2]}.run_id")
                if run_id:
                    found[parts[2]] = self._drift_result(run_id)
        return found

    def _drift_result(self, run_id: str) -> dict[str, Any]:
        found = self.cache.get("drift", run_id)
        if found is not None:
            return found
        import json
        import tempfile

        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = self.client.download_artifacts(run_id, "drift-result.json", tmp)
                result = json.loads(Path(path).read_text(encoding="utf-8"))
            result["experimentId"] = self.client.get_run(run_id).info.experiment_id
        except Exception:  # the tags alone still say drift; the table is a nicety
            return {"runId": run_id, "columnResults": [], "experimentId": None}
        self.cache.put("drift", run_id, result)
        return result

    def snapshot(self, wanted: dict[str, set[str]]) -> RegistrySnapshot:
        """Aliases of every registered model in ``wanted``, plus the versions they point at and
        the extra versions named (for instance those serving today, to compare metrics)."""
        bulk = len(wanted) >= BULK
        aliases = self._all_aliases(set(wanted)) if bulk else {}
        records = self._version_records(sorted(wanted)) if bulk else {}
        models, problems = {}, {}
        for name, extra in sorted(wanted.items()):
            # A model that cannot be read (deleted, an artifact location KServe cannot use) fails
            # its own keys; an unreachable server (transient) fails the pass, to be retried.
            try:
                models[name] = self._model(name, extra, aliases if bulk else None, records)
            except PermanentUpstreamError as exc:
                problems[name] = str(exc)
        self.cache.save()
        return RegistrySnapshot(self.tracking_uri, models, problems)

    def _model(
        self, name: str, extra: set[str], aliases: dict[str, dict[str, str]] | None, records: dict[tuple[str, str], Any]
    ) -> ModelState:
        if aliases is not None and name not in aliases:
            raise PermanentUpstreamError(f"MLflow: registered model {name!r} does not exist")
        found = aliases[name] if aliases is not None else self.aliases(name)
        versions = {}
        for v in sorted(set(found.values()), key=_version_order):
            versions[v] = self.version(name, v, records.get((name, v)))
        for v in sorted(extra - set(versions), key=_version_order):
            # Versions serving today are read for comparison only; one may have been deleted.
            if aliases is not None and (name, v) not in records:
                continue
            try:
                versions[v] = self.version(name, v, records.get((name, v)))
            except PermanentUpstreamError:
                continue
        return ModelState(name, tuple(sorted(found.items())), versions)

    def _all_aliases(self, names: set[str]) -> dict[str, dict[str, str]]:
        """Aliases of the registered models named, from MLflow's paged search of all of them."""
        found: dict[str, dict[str, str]] = {}
        token = None
        while True:
            page = self._call(
                "search registered models", self.client.search_registered_models, None, SEARCH_PAGE, None, token
            )
            for model in page:
                if model.name in names:
                    found[model.name] = {alias: str(version) for alias, version in (model.aliases or {}).items()}
            token = page.token
            if not token:
                return found

    def _version_records(self, names: list[str]) -> dict[tuple[str, str], Any]:
        """Every version of the named models (tags included), a few dozen models per search."""
        found = {}
        for i in range(0, len(names), NAMES_PER_SEARCH):
            quoted = ", ".join("'" + n.replace("'", "''") + "'" for n in names[i : i + NAMES_PER_SEARCH])
            token = None
            while True:
                page = self._call(
                    "search model versions",
                    self.client.search_model_versions,
                    f"name IN ({quoted})",
                    VERSIONS_PAGE,
                    None,
                    token,
                )
                for mv in page:
                    found[(mv.name, str(mv.version))] = mv
                token = page.token
                if not token:
                    break
        return found


class _Immutable:
    """Facts MLflow never changes, by kind and key, optionally kept in a JSON file.

    A version's artifact location and a run's evidence are fixed once written; remembering them
    makes a pass cost the mutable reads only. The file is a cache: unreadable means empty, and
    it is replaced whole (never half-written) when something new was learned.
    """

    def __init__(self, path: Path | None, tracking_uri: str) -> None:
        self.path, self.scope = path, tracking_uri
        self.data: dict[str, dict[str, Any]] = {}
        self.dirty = False
        self.lock = threading.Lock()  # one registry serves the keys ``serve`` runs at once
        if path is not None:
            try:
                import json

                loaded = json.loads(path.read_text(encoding="utf-8"))
                if loaded.get("scope") == tracking_uri and loaded.get("format") == 1:
                    self.data = loaded["facts"]
            except (OSError, ValueError, KeyError, AttributeError):
                self.data = {}

    def get(self, kind: str, key: str) -> Any:
        with self.lock:
            return self.data.get(kind, {}).get(key)

    def put(self, kind: str, key: str, value: Any) -> None:
        with self.lock:
            self.data.setdefault(kind, {})[key] = value
            self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        import json
        import tempfile

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.lock:
                text = json.dumps({"format": 1, "scope": self.scope, "facts": self.data})
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False, encoding="utf-8") as out:
                out.write(text)
            os.replace(out.name, self.path)
            self.dirty = False
        except OSError:
            pass  # a cache that cannot be written costs reads, nothing else


def registry_cache(cache_dir: Path) -> Path:
    """The file of immutable registry facts in a clone's cache folder (``EnvRepo.cache_dir``)."""
    return cache_dir / "registry-facts.json"


def _version_order(v: str) -> int:
    return int(v) if v.isdigit() else 0
