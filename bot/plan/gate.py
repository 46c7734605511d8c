"""The quality gate: may a candidate version be proposed in an environment at all? Pure.

An environment's ``gate`` (:class:`bot.catalog.QualityGate`) compares the candidate's MLflow run
metrics with a baseline — the version the environment serves (the stable one while a walk is
under way), or the version an alias names — and checks the tags it must carry. It is
fail-closed: a metric missing on the candidate, or on a baseline that exists, fails, and so does
a missing or different tag. A first release has no baseline: only the absolute bounds and the
tags apply to it, and the rows say so.

The verdict is a :class:`Gate` with one row per rule, for the pull request (passed) or the
environment's tracking issue (failed), and a one-line summary that becomes the model version tag
``releasebot.quality.<environment>`` in MLflow. It reads nothing and decides nothing else: the
release policy (:mod:`.release`) asks it before proposing a new version.
"""

from __future__ import annotations

import math

from bot import prbody
from bot.catalog import Environment, GateMetric, QualityGate
from bot.plan.types import QUALITY_TAG, Gate, GateRow, Key, ModelState, Version


def tag_name(environment: str) -> str:
    return f"{QUALITY_TAG}.{environment}"


def tag_value(gate: Gate) -> str:
    """The MLflow tag that says the verdict where data scientists look."""
    return "passed" if gate.passed else f"failed: {gate.summary}"


def baseline_of(gate: QualityGate, state: ModelState | None, serving: str | None) -> str | None:
    """The version a candidate is compared with: what the environment serves, or an alias's."""
    if gate.against == "serving":
        return serving
    return state.alias(gate.against) if state is not None else None


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:.6g}"


def _metric_rows(
    rule: GateMetric, candidate: float | None, baseline: float | None, has_baseline: bool
) -> list[GateRow]:
    rows = []
    sign = 1.0 if rule.higher_is_better else -1.0
    better = "≥" if rule.higher_is_better else "≤"
    c, b = _number(candidate), _number(baseline)
    for margin, words in ((rule.min_improvement, "improvement"), (rule.max_regression, "regression")):
        if margin is None:
            continue
        offset = margin if words == "improvement" else -margin
        shown = f"baseline {'+' if sign * offset >= 0 else '-'} {abs(offset):.6g}"
        if not has_baseline:
            rows.append(
                GateRow(rule.name, c, None, f"{better} {shown} (no baseline: first release)", candidate is not None)
            )
            continue
        passed = (
            candidate is not None
            and baseline is not None
            and math.isfinite(candidate)
            and sign * (candidate - baseline) >= offset - 1e-12
        )
        rows.append(GateRow(rule.name, c, b, f"{better} {shown}", passed))
    if rule.min is not None:
        ok = candidate is not None and math.isfinite(candidate) and candidate >= rule.min
        rows.append(GateRow(rule.name, c, None, f"≥ {rule.min:.6g}", ok))
    if rule.max is not None:
        ok = candidate is not None and math.isfinite(candidate) and candidate <= rule.max
        rows.append(GateRow(rule.name, c, None, f"≤ {rule.max:.6g}", ok))
    return rows


def _tag(version: Version, name: str) -> str | None:
    """A tag of the model version, or else of its run (where training code usually writes)."""
    found = version.tag.get(name)
    return found if found is not None else dict(version.run_tags).get(name)


def evaluate(
    env: Environment, key: Key, candidate: Version, baseline: Version | None, baseline_name: str | None
) -> Gate:
    """The gate's verdict on ``candidate`` for ``env``. ``baseline_name`` is the version the
    gate compares with (None: a first release); ``baseline`` is that version as MLflow has it,
    None when it is not there — which fails every comparison, closed."""
    assert env.gate is not None
    have, base = dict(candidate.metrics), dict(baseline.metrics) if baseline is not None else {}
    rows: list[GateRow] = []
    for rule in env.gate.metrics:
        rows += _metric_rows(rule, have.get(rule.name), base.get(rule.name), baseline_name is not None)
    for name, wanted in env.gate.tags:
        value = _tag(candidate, name)
        rule = f"tag = {wanted}" if wanted is not None else "tag present"
        rows.append(GateRow(f"tag {name}", value, None, rule, value is not None and wanted in (None, value)))
    failed = [r for r in rows if not r.passed]
    against = f"v{baseline_name}" if baseline_name else "no baseline (first release)"
    if baseline_name is not None and baseline is None:
        summary = f"the baseline v{baseline_name} is not in MLflow; nothing to compare with"
        return Gate(key, candidate.version, baseline_name, False, tuple(rows), summary)
    if not failed:
        return Gate(
            key, candidate.version, baseline_name, True, tuple(rows), f"passed {len(rows)} check(s) against {against}"
        )
    said = "; ".join(_why(r) for r in failed[:3]) + (f"; and {len(failed) - 3} more" if len(failed) > 3 else "")
    return Gate(key, candidate.version, baseline_name, False, tuple(rows), f"{said} (against {against})")


def _why(row: GateRow) -> str:
    if row.candidate is None:
        return f"{row.name} is missing on the candidate"
    if row.baseline is None and "baseline" in row.rule and "no baseline" not in row.rule:
        return f"{row.name} is missing on the baseline"
    got = f"{row.name} {row.candidate}"
    return f"{got} is not {row.rule}" + (f" (baseline {row.baseline})" if row.baseline is not None else "")


def table(gate: Gate) -> str:
    """The gate's rows as a markdown table, for the pull request, the ``releasebot/quality``
    check and the tracking issue. Values come from MLflow, so every cell is cleaned."""
    baseline = f"v{gate.baseline}" if gate.baseline else "baseline"
    lines = [f"| check | v{gate.version} | {baseline} | rule | |", "|---|---:|---:|---|:---:|"]
    for r in gate.rows:
        cells = (prbody.cell(r.name), prbody.cell(r.candidate or "missing"), prbody.cell(r.baseline or "—"))
        lines.append(f"| {' | '.join(cells)} | {prbody.cell(r.rule)} | {'✅' if r.passed else '❌'} |")
    if not gate.rows:
        lines.append("| — | — | — | — | no checks |")
    return "\n".join(lines)


def with_table(body: str, gate: Gate) -> str:
    """A release body with the gate's evidence before its closing marker (the marker stays last)."""
    section = f"### Quality gate\n\n{gate.summary}.\n\n{table(gate)}\n"
    head, sep, marker = body.rpartition("\n<!-- releasebot:")
    if not sep:
        return f"{body}\n\n{section}"
    return f"{head}\n\n{section}{sep}{marker}"
