"""The drift policies: retrain when the served version drifts, or raise an alert. Pure.

The drift job tags the served version in MLflow; ``retrain`` unsuspends the model's retrain
CronJob while it drifts and suspends it again once a newer version serves; ``alert`` keeps one
issue per (environment, model) open while it drifts. ``none`` only records.
"""

from __future__ import annotations

from bot import prbody, yamlio
from bot.catalog import Catalog, Environment, Model
from bot.manifests import cronjobs
from bot.manifests import inferenceservice as isvc
from bot.manifests.ownership import apply_owned
from bot.plan.facts import plain, served
from bot.plan.lifecycle import Outcome, _held, _moot, _wanted
from bot.plan.types import Alert, Change, FileEdit, Key, RegistrySnapshot, RepoState, Version, fingerprint


def _drift_table(result: dict, tracking_uri: str, limit: int = 10) -> list[str]:
    rows = [c for c in result.get("columnResults", []) if c.get("drifted")][:limit]
    lines = ["| column | score | method | threshold |", "|---|---:|---|---:|"]
    lines += [
        f"| {prbody.cell(c['column'])} | {c['score']:.4g} | {prbody.cell(c['method'])} | {c['threshold']:g} |"
        for c in rows
    ]
    run_id, exp = result.get("runId"), result.get("experimentId")
    link = f"{tracking_uri.rstrip('/')}/#/experiments/{exp}/runs/{run_id}" if exp else f"run `{run_id}`"
    return [
        *(lines if rows else ["_No column details were recorded._"]),
        "",
        f"Report: {prbody.clean(link)} (artifact `report.html`)",
    ]


def _serving(
    env: Environment, model: Model, registry: RegistrySnapshot, repo: RepoState
) -> tuple[str | None, Version | None] | None:
    """The version the environment's manifest on main serves, and its registry record (whose tags
    carry the drift result); None when the manifest or the registered model is missing."""
    path = isvc.path_of(env.name, model.name)
    text, state = repo.main_files.get(path), registry.models.get(model.registered_model)
    if text is None or state is None:
        return None
    serving = served(text, path).version
    return serving, state.versions.get(serving) if serving else None


def _plan_retrain(cat: Catalog, env: Environment, model: Model, registry: RegistrySnapshot, repo: RepoState) -> Outcome:
    """Unsuspend the retrain CronJob when the served version drifts; suspend it once a newer one
    serves; close an open retrain branch that no longer says what is wanted."""
    key = Key(env.name, model.name, "retrain")
    branch = repo.branches.get(key.branch)
    if model.drift is None or model.drift.action != "retrain" or model.retrain is None:
        return _moot(key, branch, f"{model.name} no longer retrains on drift in the catalog")
    path = cronjobs.retrain_path(env.name, model.name)
    text, found = repo.main_files.get(path), _serving(env, model, registry, repo)
    if text is None:
        return _moot(key, branch, f"{path} is not on the main branch")
    if found is None:
        return [], [], []  # the manifest or the registered model cannot be read: decide nothing
    serving, version = found
    doc = plain(text, path)
    suspended = (doc.get("spec") or {}).get("suspend") is True
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    status = version.drift_tag(env.name, "status") if version else None
    run_id = (version.drift_tag(env.name, "run_id") if version else None) or ""
    if suspended and status == "drift":
        assert version is not None
        result = version.drift.get(env.name, {})
        share, wanted_share = version.drift_tag(env.name, "share") or "?", model.drift.dataset_drift_share
        reason = f"{share} of columns drifted (threshold {wanted_share}) on v{serving} in {env.name}"
        desired = {
            "spec": {"suspend": False},
            "metadata": {
                "annotations": {
                    cronjobs.DRIFT_RUN_ANNOTATION: run_id,
                    cronjobs.DRIFT_VERSION_ANNOTATION: serving,
                    cronjobs.DRIFT_REASON_ANNOTATION: reason,
                }
            },
        }
        title = f"Retrain {model.name}: drift in {env.name}"
        why = [
            f"The drift check found drift on **{model.name}** v{serving} in **{env.name}**: {reason}.",
            "Merging unsuspends the retrain CronJob, which submits the training pipeline on its schedule "
            f"(`{model.retrain.schedule}`) until a newer version is released here.",
            "",
            *_drift_table(result, registry.tracking_uri),
        ]
    elif not suspended and annotations.get(cronjobs.DRIFT_VERSION_ANNOTATION) not in (None, serving):
        desired = {"spec": {"suspend": True}}
        title = f"Stop retraining {model.name} in {env.name}: v{serving} is released"
        why = [
            f"v{serving} now serves in {env.name} (the drift was on "
            f"v{annotations.get(cronjobs.DRIFT_VERSION_ANNOTATION)}); the retrain CronJob is suspended again."
        ]
    else:
        verdict = status or "no drift check yet"
        return _moot(key, branch, f"v{serving} in {env.name} does not call for retraining now (drift: {verdict})")
    loaded = yamlio.load(text, path)
    changed = apply_owned(loaded, yamlio.quote_ambiguous(desired), cronjobs.DRIFT_OWNED)
    if not changed:
        return _moot(key, branch, f"main already has the retrain CronJob {'running' if not suspended else 'suspended'}")
    edit = FileEdit(path, text, yamlio.dump(loaded, yamlio.guess_style(text)), tuple(changed))
    fp = fingerprint(key.branch, edit.new)
    held, notes = _held(key, branch, fp)
    if notes:  # a person's branch now: said, and left alone
        return [], [], notes
    message = (
        f"{title}\n\n{why[0]}\n\nReleasebot-Model: {model.name}\nReleasebot-Environment: {env.name}\n"
        f"Releasebot-Drift-Run: {run_id or 'none'}\n"
    )
    body = "\n".join([*why, "", f"<!-- releasebot:fingerprint={fp} -->"])
    change = Change(
        key=key,
        write_back=env.write_back,
        edits=(edit,),
        version=serving or "-",
        previous=serving,
        commit_message=message,
        title=title,
        body=body,
        fingerprint=fp,
        labels=("releasebot", "drift", *env.labels),
    )
    return _wanted(change, branch, held)


def _plan_alert(env: Environment, model: Model, registry: RegistrySnapshot, repo: RepoState) -> list[Alert]:
    """Raise an alert while the served version drifts; resolve it when a check finds none."""
    if model.drift is None or model.drift.action != "alert":
        return []
    found = _serving(env, model, registry, repo)
    serving, version = found if found is not None else (None, None)
    if version is None:
        return []
    status, run_id = version.drift_tag(env.name, "status"), version.drift_tag(env.name, "run_id") or ""
    key = Key(env.name, model.name, "alert")
    fp = fingerprint(key.branch, status or "", run_id)
    labels = ("releasebot", "drift", *env.labels)
    if status == "drift":
        share, checked = version.drift_tag(env.name, "share") or "?", version.drift_tag(env.name, "checked_at") or "?"
        lines = [
            f"The drift check found drift on **{model.name}** v{serving} in **{env.name}**: {share} of columns "
            f"drifted (threshold {model.drift.dataset_drift_share}), checked {checked}.",
            "",
            *_drift_table(version.drift.get(env.name, {}), registry.tracking_uri),
            "",
            f"The model's drift policy is `alert`: releasebot changes nothing. Retrain, then move "
            f"`@{env.alias}` to the new version; this issue is updated by every check that still finds drift "
            "and closed by the first one that does not.",
        ]
        title = f"Drift: {model.name} v{serving} in {env.name}"
        return [Alert(key, True, title, "\n".join([*lines, "", f"<!-- releasebot:fingerprint={fp} -->"]), fp, labels)]
    if status == "ok":
        body = f"The drift check on v{serving} in {env.name} found no drift (run `{prbody.clean(run_id)}`)."
        return [Alert(key, False, f"No drift: {model.name} v{serving} in {env.name}", body, fp, labels)]
    return []
