"""What each verb prints with ``--output json``: one document per run, built from the values the
core returned. Pure.

The keys are a contract with scripts: snake_case, stable, documented in the README ("Machine-
readable output"); a key is added, never renamed or retyped. Values are typed: counts and
quantities are numbers (CPU in cores, memory in bytes), flags are booleans, times are ISO 8601
strings, and what is absent is ``null`` (never ``"-"`` or ``"—"``, which are for people).
Model versions stay strings, as MLflow's REST API gives them; commits are full 40-hex ids.

This module builds plain dicts and prints nothing: :mod:`bot.output` writes them, and text
output for people is made elsewhere (:mod:`bot.commands`, :mod:`bot.cli`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.capacity import PoolUsage
from bot.errors import Problem
from bot.plan import Alert, Change, Close, Key, Note, Plan, Walk
from bot.plan.types import Deployment, Gate, Verdict, VersionTag

if TYPE_CHECKING:  # names only: the adapters behind them are not needed to build a document
    from bot.generate import Created
    from bot.manifests.render import FileChange, RenderPlan
    from bot.pipelines import RunRequest
    from bot.repo import Release
    from bot.validate import Report

Doc = dict[str, Any]


def time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _number(value: str | None) -> float | str | None:
    """A value as MLflow holds it: a metric becomes a number, a tag stays text."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _key(key: Key) -> Doc:
    return {"environment": key.environment, "model": key.model, "kind": key.kind}


def problem(p: Problem) -> Doc:
    return p.as_dict()


# --- plan and reconcile ------------------------------------------------------------------------


def gate(g: Gate) -> Doc:
    return {
        **_key(g.key),
        "version": g.version,
        "baseline": g.baseline,
        "passed": g.passed,
        "summary": g.summary,
        "rows": [
            {
                "name": r.name,
                "candidate": _number(r.candidate),
                "baseline": _number(r.baseline),
                "rule": r.rule,
                "passed": r.passed,
            }
            for r in g.rows
        ],
    }


def change(c: Change) -> Doc:
    return {
        **_key(c.key),
        "write_back": c.write_back,
        "version": c.version,
        "previous": c.previous,
        "supersedes": c.supersedes,
        "branch": c.key.branch,
        "title": c.title,
        "files": [edit.path for edit in c.edits],
        "fields": sorted({f for edit in c.edits for f in edit.fields}),
        "labels": list(c.labels),
        "fingerprint": c.fingerprint,
        "held_at": c.held,  # the open branch's head that already says this change, or null
        "auto_merge": c.auto_merge,
        "reviewers": list(c.reviewers),
        "team_reviewers": list(c.team_reviewers),
        "gate": gate(c.gate) if c.gate is not None else None,
    }


def close(x: Close) -> Doc:
    return {**_key(x.key), "branch": x.branch.name, "version": x.branch.version, "reason": x.reason}


def note(n: Note) -> Doc:
    return {**_key(n.key), "message": n.message, "error": n.error}


def alert(a: Alert) -> Doc:
    return {**_key(a.key), "raised": a.raised, "title": a.title}


def verdict(v: Verdict) -> Doc:
    return {
        "passed": v.passed,
        "error": v.error,
        "start": time(v.start),
        "end": time(v.end),
        "measurements": [
            {
                "name": m.name,
                "query": m.query,
                "canary": m.canary,
                "stable": m.stable,
                "threshold": m.threshold,
                "passed": m.passed,
                "note": m.note or None,
            }
            for m in v.measurements
        ],
    }


def walk(w: Walk) -> Doc:
    return {
        **_key(w.key),
        "version": w.version,
        "stable": w.stable,
        "phase": w.phase,
        "step": w.step + 1 if w.step is not None else None,  # 1-based, as people read it
        "percent": w.percent,
        "since": time(w.since),
        "next_look": time(w.next_look),
        "message": w.message or None,
        "verdict": verdict(w.verdict) if w.verdict is not None else None,
    }


def deployment(d: Deployment) -> Doc:
    return {
        **_key(d.key),
        "sha": d.sha,
        "version": d.version,
        "step": d.step,
        "percent": d.percent,
        "state": d.state,
        "description": d.description,
    }


def version_tag(t: VersionTag) -> Doc:
    return {"registered_model": t.registered_model, "version": t.version, "name": t.name, "value": t.value}


def plan(p: Plan) -> Doc:
    return {
        "ok": not p.errors,
        "changes": [change(c) for c in p.changes],
        "held": [change(c) for c in p.held],
        "closes": [close(x) for x in p.closes],
        "notes": [note(n) for n in p.notes],
        # Resolved ones ("raised": false) only make sure an issue is closed.
        "alerts": [alert(a) for a in p.alerts],
        "walks": [walk(w) for w in p.walks],
        "gates": [gate(g) for g in p.gates],
        "deployments": [deployment(d) for d in p.deployments],
        "version_tags": [version_tag(t) for t in p.tags],
        "next_look": time(p.next_look),
    }


def reconcile(p: Plan, written: Sequence[str], skipped: Sequence[str]) -> Doc:
    """The plan carried out: what was written (one line per write, as the text output says it)
    and what was skipped, beside the plan itself."""
    return {"written": list(written), "skipped": list(skipped), **plan(p)}


def capacity(pools: Iterable[PoolUsage]) -> Doc:
    return {
        "pools": [
            {
                "environment": u.environment,
                "pool": u.pool,
                "cpu_requests": float(u.cpu_requests),
                "memory_requests_bytes": int(u.memory_requests),
                "gpus": u.gpus,
                "cpu_limit": u.cpu_limit,
                "memory_limit_bytes": u.memory_limit_bytes,
                "nodes_estimate": u.nodes,
            }
            for u in pools
        ]
    }


# --- the rest ----------------------------------------------------------------------------------


def created(made: Created) -> Doc:
    return {"path": str(made.path.resolve()), "files": made.files, "commit": made.commit, "branch": made.branch}


def unified_diff(c: FileChange) -> str:
    """A file change as ``diff -u`` shows it (``render --diff``)."""
    old, new = (c.old or "").splitlines(True), (c.new or "").splitlines(True)
    return "".join(difflib.unified_diff(old, new, f"a/{c.path}", f"b/{c.path}"))


def render(plan: RenderPlan, check: bool, diff: bool) -> Doc:
    return {
        "check": check,
        "written": not check and bool(plan.changes),
        "changes": [
            {
                "path": c.path,
                "action": c.action,
                "fields": list(c.fields),
                "diff": unified_diff(c) if diff and c.action == "update" else None,
            }
            for c in plan.changes
        ],
        "orphans": list(plan.orphans),
    }


def validation(report: Report) -> Doc:
    return {"ok": report.ok, "files_checked": report.files_checked, "problems": [problem(p) for p in report.problems]}


def history(model: str, environment: str | None, releases: Iterable[Release]) -> Doc:
    return {
        "model": model,
        "environment": environment,
        "releases": [
            {
                "commit": r.sha,
                "date": r.date,  # git's strict ISO 8601, with the author's offset
                "environment": r.environment,
                "version": r.version,
                "run": None if r.run == "none" else r.run,
                "subject": r.subject,
            }
            for r in releases
        ],
    }


def pin(action: str, environment: str, model: str, done: Change | Note, written: str | None) -> Doc:
    return {
        "action": action,
        "environment": environment,
        "model": model,
        "written": written,
        "message": written if written is not None else done.message if isinstance(done, Note) else None,
        "change": change(done) if isinstance(done, Change) else None,
    }


def retrain(request: RunRequest, answer: Mapping[str, Any]) -> Doc:
    return {
        "run_id": answer.get("run_id"),
        "display_name": request.display_name,
        "pipeline_id": request.pipeline_id,
        "pipeline_version_id": request.pipeline_version_id,
        "experiment_id": answer.get("experiment_id") or request.experiment_id,
        "state": answer.get("state"),
    }


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake(value: Any) -> Any:
    """A document with camelCase keys (the drift job's ``drift-result.json``) in snake_case."""
    if isinstance(value, dict):
        return {_CAMEL.sub(r"_\1", k).lower(): snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake(v) for v in value]
    return value
