"""The drift job (``releasebot drift run``): Evidently on the serving window, results into MLflow.

What the drift-check CronJob runs. It finds the version an environment serves (its MLflow
alias), loads the reference data (a URI, or the training dataset the version's run recorded)
and the current window, checks them (columns, types, emptiness) *before* touching MLflow, samples
large windows, runs Evidently's data drift preset with the catalog's methods and thresholds, and
then records:

* an MLflow run in the experiment ``releasebot-drift/<model>``: metrics (share and count of
  drifted columns, a score per column), params (methods, thresholds, window), artifacts (the
  HTML report, and ``drift-result.json`` valid against ``schemas/drift-result.schema.json``);
* tags on the served model version, scoped by environment so two environments serving the same
  version keep separate verdicts: ``releasebot.drift.<environment>.status`` (``ok`` or
  ``drift``), ``.share``, ``.run_id``, ``.checked_at``; the bot reacts to those tags, not to
  this process.

The version checked is ``--version`` when given (the version the environment's manifest serves,
so a pin or rollback is followed), else the one the environment's alias points at. The drift
job writes nothing outside MLflow: with a local SQLite store its experiment's artifacts go
beside the database file, never into the directory it happens to run in.

Evidently's current API reports scores, not verdicts; a column drifts when its "Value Drift"
test fails (p-value tests below, distance tests above their threshold), and the dataset drifts
when the drifted share reaches ``drift_share``. Memory is bounded by ``--sample`` (default
100,000 rows per side): Evidently needs ~1.6 GB and ~100 s for 1M x 20 columns.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bot.errors import ConfigError, PermanentUpstreamError
from bot.progress import Progress, silent
from bot.registry import Registry
from bot.resources import schemas_dir

DEFAULT_SAMPLE = 100_000
TAG = "releasebot.drift"


@dataclass(frozen=True)
class DriftJob:
    model: str
    environment: str
    registered_model: str
    alias: str
    current: str
    reference: str | None = None  # None: the served version's training dataset
    drift_share: float = 0.5
    sample: int = DEFAULT_SAMPLE
    action: str = "none"
    method: str | None = None
    threshold: float | None = None
    columns: tuple[tuple[str, str | None, float | None], ...] = ()
    version: str | None = None  # None: the version the alias points at


def parse_column(spec: str) -> tuple[str, str | None, float | None]:
    """``amount=psi:0.2`` -> ("amount", "psi", 0.2); method and threshold are optional."""
    match = re.fullmatch(r"([^=]+)=([A-Za-z_]*)(?::([0-9.eE+-]+))?", spec)
    if not match:
        raise ConfigError(f"--column {spec!r}: expected COLUMN=METHOD[:THRESHOLD]")
    name, method, threshold = match.groups()
    return name, method or None, float(threshold) if threshold else None


def load_frame(uri: str, what: str) -> Any:
    """Parquet or CSV from a local path or, with fsspec and its backend installed, an object store."""
    import pandas as pd

    kind = "csv" if uri.lower().endswith((".csv", ".csv.gz")) else "parquet"
    try:
        frame = pd.read_csv(uri) if kind == "csv" else pd.read_parquet(uri)
    except FileNotFoundError:
        raise ConfigError(f"{what} data not found: {uri}") from None
    except ImportError as exc:
        raise ConfigError(f"{what} data {uri}: {exc}") from None
    except Exception as exc:  # pandas raises many types for unreadable files
        raise ConfigError(f"{what} data {uri} is not readable {kind}: {type(exc).__name__}: {exc}") from None
    return frame


def check_frames(reference: Any, current: Any, columns: list[str]) -> None:
    """Refuse data the comparison would be meaningless on, naming the problem."""
    if len(reference) == 0:
        raise ConfigError("the reference data is empty")
    if len(current) == 0:
        raise ConfigError("the current window is empty: nothing was served, or the window is wrong")
    missing = [c for c in columns if c not in current.columns]
    if missing:
        raise ConfigError(f"the current window lacks column(s) of the reference: {', '.join(missing)}")
    import pandas as pd

    mismatched = []
    for column in columns:
        ref_numeric = pd.api.types.is_numeric_dtype(reference[column])
        cur_numeric = pd.api.types.is_numeric_dtype(current[column])
        if ref_numeric != cur_numeric:
            mismatched.append(f"{column} ({reference[column].dtype} vs {current[column].dtype})")
    if mismatched:
        raise ConfigError(f"column types differ between reference and current: {', '.join(mismatched)}")


def _training_reference(registry: Registry, registered_model: str, version: str) -> str:
    # Straight from the version's run: the artifact location (and so registry.storageUriMap, which
    # only KServe needs) plays no part in finding the training data.
    where = f"{registered_model} version {version}"
    mv = registry._call(where, registry.client.get_model_version, registered_model, version)
    run = registry._call(f"run of {where}", registry.client.get_run, mv.run_id) if mv.run_id else None
    for di in run.inputs.dataset_inputs if run is not None and run.inputs else []:
        try:
            source = json.loads(di.dataset.source)
        except json.JSONDecodeError:
            source = {"uri": di.dataset.source}
        uri = source.get("uri") or source.get("path") if isinstance(source, dict) else None
        if uri:
            return uri
    raise ConfigError(
        f"version {version} of {registered_model!r} recorded no loadable training dataset; "
        "set drift.reference in the catalog"
    )


def _served_version(job: DriftJob, registry: Registry) -> str:
    if job.version:
        where = f"{job.registered_model} version {job.version}"
        registry._call(where, registry.client.get_model_version, job.registered_model, job.version)
        return job.version
    version = registry.aliases(job.registered_model).get(job.alias)
    if version is None:
        raise PermanentUpstreamError(f"alias @{job.alias} is not set on {job.registered_model!r}: nothing is served")
    return version


def _run_evidently(job: DriftJob, reference: Any, current: Any) -> tuple[dict[str, Any], Any]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    per_method = {c: m for c, m, _ in job.columns if m}
    per_threshold = {c: t for c, _, t in job.columns if t is not None}
    preset = DataDriftPreset(
        drift_share=job.drift_share,
        method=job.method,
        threshold=job.threshold,
        per_column_method=per_method or None,
        per_column_threshold=per_threshold or None,
    )
    snapshot = Report([preset], include_tests=True).run(current_data=current, reference_data=reference)
    return snapshot.dict(), snapshot


def _result(job: DriftJob, version: str, raw: dict[str, Any], rows: dict[str, Any], now: datetime) -> dict[str, Any]:
    failed = {
        str(t["name"]).removeprefix("Value Drift for column ")
        for t in raw.get("tests", [])
        if str(t.get("name", "")).startswith("Value Drift for column ") and str(t.get("status")).endswith("FAIL")
    }
    columns = []
    summary = {"count": 0.0, "share": 0.0}
    for metric in raw["metrics"]:
        name = metric["metric_name"]
        if name.startswith("DriftedColumnsCount"):
            summary = metric["value"]
        elif name.startswith("ValueDrift("):
            cfg = metric.get("config") or {}
            column = cfg.get("column") or re.search(r"column=([^,]+)", name).group(1)
            columns.append(
                {
                    "column": column,
                    "method": str(cfg.get("method", "")),
                    "threshold": float(cfg.get("threshold", 0)),
                    "score": float(metric["value"]),
                    "drifted": column in failed,
                }
            )
    columns.sort(key=lambda c: (not c["drifted"], c["column"]))
    share = float(summary["share"])
    drifted = share >= job.drift_share and share > 0
    return {
        "model": job.model,
        "environment": job.environment,
        "registeredModel": job.registered_model,
        "version": version,
        "alias": job.alias,
        "checkedAt": now.isoformat(timespec="seconds"),
        "status": "drift" if drifted else "ok",
        "datasetDrift": drifted,
        "driftShare": share,
        "driftShareThreshold": job.drift_share,
        "driftedColumns": int(summary["count"]),
        "columns": len(columns),
        "action": job.action,
        "window": rows,
        "columnResults": columns,
    }


def validate_result(result: dict[str, Any]) -> None:
    import jsonschema

    schema = json.loads((schemas_dir() / "drift-result.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(result)


def run(job: DriftJob, registry: Registry, now: datetime | None = None, progress: Progress = silent) -> dict[str, Any]:
    """Run one drift check; return the result document. MLflow is written only at the end.
    ``progress`` hears of each of its steps."""
    now = now or datetime.now(UTC)
    steps = 5
    progress(0, steps, "finding the served version")
    version = _served_version(job, registry)
    reference_uri = job.reference or _training_reference(registry, job.registered_model, version)
    progress(1, steps, "reading the reference")
    reference = load_frame(reference_uri, "reference")
    progress(2, steps, "reading the current window")
    current = load_frame(job.current, "current")
    columns = list(reference.columns)
    check_frames(reference, current, columns)
    current = current[columns]
    rows = {
        "current": job.current,
        "reference": reference_uri,
        "currentRows": len(current),
        "referenceRows": len(reference),
        "sample": job.sample,
    }
    sampled = False
    if len(current) > job.sample:
        current, sampled = current.sample(n=job.sample, random_state=0), True
    if len(reference) > job.sample:
        reference, sampled = reference.sample(n=job.sample, random_state=0), True
    rows["sampled"] = sampled
    progress(3, steps, "comparing with Evidently")
    raw, snapshot = _run_evidently(job, reference, current)
    result = _result(job, version, raw, rows, now)
    validate_result(result)
    progress(4, steps, "recording in MLflow")
    _record(job, registry, version, result, snapshot)
    progress(steps, steps, "")
    return result


def _artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts, when the client (not a server) decides.

    MLflow puts a database store's artifacts in ``./mlruns`` of the current directory: for a job
    that would be wherever it happens to run. A tracking server or a file store decides itself."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("http", "https", "databricks", "file", ""):
        return None
    if parsed.scheme == "sqlite" and parsed.path not in ("", "/", "/:memory:"):
        database = Path(parsed.path[1:])  # sqlite:///relative.db, sqlite:////absolute.db
        return (database.parent / "mlartifacts").resolve().as_uri()
    raise ConfigError(
        f"MLflow experiment {experiment!r} does not exist and the tracking URI {parsed.scheme}://... leaves its "
        "artifact location to this process; create the experiment with an artifact location, or use a tracking server"
    )


def _record(job: DriftJob, registry: Registry, version: str, result: dict[str, Any], snapshot: Any) -> None:
    client = registry.client
    name = f"releasebot-drift/{job.model}"
    experiment = client.get_experiment_by_name(name)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(name, artifact_location=_artifact_location(registry.tracking_uri, name))
    )
    run_ = client.create_run(
        experiment_id,
        run_name=f"{job.environment}-v{version}",
        tags={"releasebot.environment": job.environment, "releasebot.version": version},
    )
    run_id = run_.info.run_id
    # The document names its own run, so whoever links to it (an alert, a retrain PR) can.
    result["runId"], result["experimentId"] = run_id, str(experiment_id)
    validate_result(result)
    metrics = {"drift_share": result["driftShare"], "drifted_columns": float(result["driftedColumns"])}
    metrics |= {f"score.{_key(c['column'])}": c["score"] for c in result["columnResults"]}
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    params = {
        "drift_share_threshold": job.drift_share,
        "sample": job.sample,
        "current": job.current,
        "reference": result["window"]["reference"],
        "action": job.action,
    }
    params |= {f"method.{_key(c['column'])}": f"{c['method']}@{c['threshold']}" for c in result["columnResults"]}
    for key, value in params.items():
        client.log_param(run_id, key, str(value)[:6000])
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "drift-result.json").write_text(json.dumps(result, indent=2))
        snapshot.save_html(str(Path(tmp) / "report.html"))
        client.log_artifact(run_id, str(Path(tmp) / "drift-result.json"))
        client.log_artifact(run_id, str(Path(tmp) / "report.html"))
    # MLflow's client prints the run's link on stdout as a run ends; stdout is the command's
    # result (one JSON document with --output json), which names the run already.
    with contextlib.redirect_stdout(io.StringIO()):
        client.set_terminated(run_id)
    for key, value in drift_tags(job.environment, result).items():
        client.set_model_version_tag(job.registered_model, version, key, value)


def drift_tags(environment: str, result: dict[str, Any]) -> dict[str, str]:
    """The model version tags one result sets, all scoped by the environment checked."""
    values = {
        "status": result["status"],
        "share": f"{result['driftShare']:.4f}",
        "run_id": result["runId"],
        "checked_at": result["checkedAt"],
    }
    return {f"{TAG}.{environment}.{key}": value for key, value in values.items()}


def _key(column: str) -> str:
    # MLflow metric and param names allow only these characters.
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", column)[:200]
