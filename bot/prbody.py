"""The pull request text: the evidence a reviewer needs to approve a release. Pure.

Model, version, run and artifact; the run's metrics against the version serving in that
environment today, with deltas; dataset lineage (MLflow dataset inputs, and a DVC revision when
the run carries one as a tag); the files changed; how to roll back. A hidden marker carries the
change's fingerprint, so an unchanged plan causes no write. A canary step's analysis verdict
becomes a table (check, query, values, threshold, result) for the step's PR and check run.

Everything that came from MLflow is untrusted text: token-like strings are redacted,
``@mentions`` neutralised (a run tag must not page a team), table cells escaped, and title and
body truncated within GitHub's limits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC
from typing import TYPE_CHECKING

from bot.redact import redact as redact_urls

if TYPE_CHECKING:
    from bot.catalog import Canary, Catalog, Environment, Model
    from bot.plan.types import FileEdit, Verdict, Version

TITLE_LIMIT = 256
BODY_LIMIT = 65_536
MARKER = "<!-- releasebot:fingerprint={fp} -->"
_MARKER_RE = re.compile(r"<!-- releasebot:fingerprint=([0-9a-f]+) -->")
DVC_TAGS = ("dvc.rev", "dvc_rev", "dvc.revision", "dvc_commit")

_SECRETS = re.compile(
    r"(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}|sk-[A-Za-z0-9]{20,}"
    r"|(?i:(?:password|passwd|secret|token|api[_-]?key)\s*[=:]\s*)[^\s,;]+)"
)


def redact(text: str) -> str:
    return _SECRETS.sub("[redacted]", redact_urls(text))


def neutralise_mentions(text: str) -> str:
    # A zero-width joiner after @ keeps the text readable and stops GitHub from notifying.
    return re.sub(r"(?<![\w`])@(?=[A-Za-z0-9])", "@\u200d", text)


def clean(text: object) -> str:
    return neutralise_mentions(redact(str(text)))


def cell(text: object) -> str:
    return clean(text).replace("|", "\\|").replace("\n", " ")


def truncate(text: str, limit: int, marker: str = "") -> str:
    if len(text) <= limit:
        return text
    note = "\n\n…(truncated)\n" + marker
    return text[: limit - len(note)] + note


def title(text: str) -> str:
    return truncate(clean(text).replace("\n", " "), TITLE_LIMIT)


def fingerprint_in(body: str | None) -> str | None:
    match = _MARKER_RE.search(body or "")
    return match.group(1) if match else None


def _metrics_table(new: Version, old: Version | None) -> list[str]:
    new_m, old_m = dict(new.metrics), dict(old.metrics) if old else {}
    if not new_m and not old_m:
        return ["_The run logged no metrics._"]
    head_old = f"v{old.version}" if old else "serving now"
    rows = [f"| metric | v{new.version} | {head_old} | delta |", "|---|---:|---:|---:|"]
    for name in sorted(set(new_m) | set(old_m)):
        a, b = new_m.get(name), old_m.get(name)
        delta = f"{a - b:+.4g}" if a is not None and b is not None else "—"
        fmt = lambda x: "—" if x is None else f"{x:.4g}"  # noqa: E731
        rows.append(f"| {cell(name)} | {fmt(a)} | {fmt(b)} | {delta} |")
    return rows


def _lineage(v: Version) -> list[str]:
    lines = []
    for d in v.datasets:
        lines.append(
            f"- dataset `{cell(d.name)}` digest `{cell(d.digest)}` from {cell(d.source_type)} `{cell(d.source)}`"
        )
    tags = dict(v.run_tags) | v.tag
    for tag in DVC_TAGS:
        if tag in tags:
            lines.append(f"- DVC revision `{cell(tags[tag])}`")
    return lines or ["_The run recorded no dataset inputs._"]


def release_body(
    cat: Catalog,
    env: Environment,
    model: Model,
    new: Version,
    old: Version | None,
    old_label: str | None,
    edits: Iterable[FileEdit],
    fp: str,
    supersedes: str | None,
    branch: str,
) -> str:
    run = (
        f"{cat.tracking_uri.rstrip('/')}/#/experiments/{new.experiment_id}/runs/{new.run_id}"
        if new.run_id and new.experiment_id
        else "none"
    )
    was = f"v{old_label}" if old_label else "nothing yet"
    lines = [
        f"Releases **{cell(model.name)}** version **{new.version}** to **{env.name}** "
        f"(MLflow `{cell(model.registered_model)}`, alias `@{env.alias}`; serving today: {was}).",
    ]
    if supersedes:
        lines.append(f"\nThis supersedes the earlier proposal of v{supersedes} on this branch.")
    lines += [
        "",
        "| | |",
        "|---|---|",
        f"| model version | `{cell(new.registered_model)}` v{new.version} ({cell(new.status)}) |",
        f"| run | `{cell(new.run_id or 'none')}` ({cell(run)}) |",
        f"| artifact | `{cell(new.storage_uri)}` |",
        "",
        "### Metrics",
        *_metrics_table(new, old),
        "",
        "### Lineage",
        *_lineage(new),
        "",
        "### Files changed",
        *[f"- `{e.path}`: {', '.join(f'`{f}`' for f in e.fields)}" for e in edits],
        "",
        "### Rolling back",
        f"After merging, `releasebot rollback {model.name} --env {env.name}` opens a change that pins the "
        "previous version and blocks this one until `releasebot unblock`. Closing this pull request "
        f"without merging changes nothing; moving `@{env.alias}` updates it.",
        "",
        f"<sub>Generated by releasebot on `{branch}`. Edits to this branch by a person stop releasebot "
        "from rewriting it.</sub>",
    ]
    marker = MARKER.format(fp=fp)
    return truncate("\n".join(lines), BODY_LIMIT - len(marker) - 1, "") + "\n" + marker


def _value(x: float | None) -> str:
    return "no data" if x is None else f"{x:.4g}"


def _code(text: str) -> str:
    # A backtick in a catalog query would end the code span early; PromQL needs none.
    return "`" + cell(text).replace("`", "'") + "`"


def analysis_table(verdict: Verdict) -> str:
    """A canary step's verdict as Markdown, for the step's PR body and its check run summary:
    one row per check with the PromQL that ran, both values, the threshold and the outcome."""
    start, end = (t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC) for t in (verdict.start, verdict.end))
    span = f"{start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S} UTC"
    if verdict.error:
        return f"**Analysis could not run** ({span}): {cell(verdict.error)}"
    outcome = "passed" if verdict.passed else "failed"
    rows = [
        f"**Canary analysis {outcome}** over {span}.",
        "",
        "| check | query | canary | stable | threshold | result |",
        "|---|---|---:|---:|---|---|",
    ]
    for m in verdict.measurements:
        result = ("✅ pass" if m.passed else "❌ fail") + (f": {cell(m.note)}" if m.note else "")
        rows.append(
            f"| {cell(m.name)} | {_code(m.query)} | {_value(m.canary)} | {_value(m.stable)} "
            f"| {cell(m.threshold)} | {result} |"
        )
    if not verdict.measurements:
        rows.append("| — | — | — | — | — | no checks |")
    return "\n".join(rows)


# --- a release walk -------------------------------------------------------------------------------


def walk_plan(canary: Canary, mode: str) -> str:
    """What happens after this pull request is merged, step by step."""
    steps = " → ".join(f"{p}%" for p in canary.steps)
    return "\n".join(
        [
            "### The walk",
            f"This is the first of {len(canary.steps) + 1} changes: canary {steps}, then promotion ({mode} mode).",
            f"Each step waits until Argo CD has synced it and the InferenceService is Healthy (deadline "
            f"{canary.deadline}s), serves for {canary.interval}s, and is then compared with the stable revision "
            "on Prometheus; only a passing step leads to the next change. A failing one rolls back in Git and "
            "blocks the version. Each verdict is a `releasebot/rollout` check on the commit it judged.",
        ]
    )


def walk_step_body(head: str, verdict: Verdict | None) -> str:
    lines = [head]
    if verdict is not None:
        lines += ["", "### Analysis of the step before", analysis_table(verdict)]
    return "\n".join(lines)
