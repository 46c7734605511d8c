"""The status rows of :mod:`bot.status` as HTML, a terminal table, or JSON. Pure.

* :func:`html`: one self-contained page. Every value is escaped (model names, versions and
  messages are other people's text); the only CSS is inline, and there is no script, font or
  image from anywhere (clusters are often air-gapped, and the ``serve`` answer forbids them in
  its Content-Security-Policy besides). Wide screens get a table, narrow ones (a phone at 375 px)
  a card per row. What needs a person (a failed canary, a blocked version, a failed gate, drift,
  a failed reconcile) gets a class, a colour and a text label, never colour alone.
* :func:`table`: aligned columns for a terminal.
* :func:`document`: the JSON document, with snake_case keys, ints for steps and percentages,
  ISO 8601 UTC times and null for what is missing. README.md lists the keys.

It renders; it does not decide what a row says.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from bot.status import NO_RECONCILE, Row

DASH = "—"
_LABELS = {
    "canary_failed": ("canary failed", "bad"),
    "blocked": ("blocked", "bad"),
    "gate_failed": ("gate failed", "bad"),
    "drift": ("drift", "warn"),
    "reconcile_failed": ("reconcile failed", "bad"),
}


def iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at is not None else None


def _short(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if at is not None else DASH


# --- JSON ------------------------------------------------------------------------------------


def as_dict(row: Row) -> dict[str, Any]:
    w, g, a, r = row.walk, row.gate, row.analysis, row.reconciled
    return {
        "environment": row.environment,
        "model": row.model,
        "alias": row.alias,
        "serving_version": row.serving,
        "wanted_version": row.wanted,
        "pinned_version": row.pinned,
        "blocked_versions": list(row.blocked),
        "walk": None
        if w is None
        else {
            "phase": w.phase,
            "version": w.version,
            "stable_version": w.stable,
            "step": w.step,
            "steps": w.steps,
            "percent": w.percent,
            "since": iso(w.since),
            "next_look": iso(w.next_look),
            "message": w.message,
        },
        "open_branches": [
            {"kind": b.kind, "branch": b.branch, "version": b.version, "pull_request_url": b.url} for b in row.branches
        ],
        "quality_gate": None if g is None else {"version": g.version, "passed": g.passed, "detail": g.detail},
        "analysis": None
        if a is None
        else {"outcome": a.outcome, "start": iso(a.start), "end": iso(a.end), "detail": a.detail},
        "drift": row.drift,
        "problem": row.problem,
        "last_reconcile": None if r is None else {"at": iso(r.at), "outcome": r.outcome, "message": r.message},
        "observed_at": iso(row.observed_at),
        "attention": list(row.attention),
    }


def document(rows: Sequence[Row], generated: datetime) -> str:
    return json.dumps({"generated_at": iso(generated), "rows": [as_dict(r) for r in rows]}, indent=2)


# --- words shared by the table and the page ---------------------------------------------------


def _v(version: str | None) -> str:
    return f"v{version}" if version else DASH


def walk_words(row: Row) -> str:
    w = row.walk
    if w is None:
        return DASH
    parts = [w.phase]
    if w.step is not None and w.steps is not None:
        parts.append(f"step {w.step} of {w.steps}")
    if w.percent is not None:
        parts.append(f"{w.percent}%")
    return f"v{w.version} " + " · ".join(parts)


def gate_words(row: Row) -> str:
    return f"{row.gate.detail} (v{row.gate.version})" if row.gate is not None else DASH


def analysis_words(row: Row) -> str:
    a = row.analysis
    if a is None:
        return DASH
    return a.outcome + (f": {a.detail}" if a.detail else "")


def reconcile_words(row: Row) -> str:
    r = row.reconciled
    if r is None:
        return NO_RECONCILE
    return f"{_short(r.at)} {r.outcome}: {r.message}"


def _serving_words(row: Row) -> str:
    words = _v(row.serving)
    if row.pinned:
        words += f" (pinned v{row.pinned})"
    if row.blocked:
        words += " blocked " + ",".join(f"v{b}" for b in row.blocked)
    return words


# --- the terminal table -------------------------------------------------------------------------


def table(rows: Sequence[Row]) -> str:
    columns = ["environment", "model", "serving", "wants", "walk", "branch", "gate", "drift", "attention", "reconciled"]
    lines = [
        {
            "environment": r.environment,
            "model": r.model,
            "serving": _serving_words(r),
            "wants": f"{r.alias} → {_v(r.wanted)}",  # no "@": where this is pasted it would mention a user
            "walk": walk_words(r) + (f" (analysis {r.analysis.outcome})" if r.analysis is not None else ""),
            "branch": ", ".join(f"{b.kind} {_v(b.version)}" for b in r.branches) or DASH,
            "gate": r.gate.detail if r.gate is not None else DASH,
            "drift": r.drift or DASH,
            "attention": ",".join(r.attention) or DASH,
            "reconciled": reconcile_words(r),
        }
        for r in rows
    ]
    # Messages may hold line breaks; a table row is one line.
    lines = [{k: " ".join(v.split()) for k, v in line.items()} for line in lines]
    widths = {c: max([len(c)] + [len(line[c]) for line in lines]) for c in columns}
    out = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    out += ["  ".join(line[c].ljust(widths[c]) for c in columns).rstrip() for line in lines]
    return "\n".join(out)


# --- the page ---------------------------------------------------------------------------------

_CSS = """
:root{--ink:#101828;--muted:#5d6675;--line:#e4e7ec;--ok:#067647;
 --bad:#b42318;--bad-bg:#fef3f2;--warn:#93370d;--warn-bg:#fffaeb}
*{box-sizing:border-box}
body{margin:0;padding:16px;color:var(--ink);background:#fff;
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
h1{font-size:20px;margin:0 0 4px}
p.meta{margin:0 0 12px;color:var(--muted)}
p.notice{margin:0 0 12px;padding:8px 12px;border:1px solid var(--line);border-radius:6px;background:#f9fafb}
.fleet{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid var(--line)}
th{font-size:12px;font-weight:600;text-transform:uppercase;letter-spacing:.02em;color:var(--muted);white-space:nowrap}
td>div{min-width:0;overflow-wrap:break-word}
tr.attention>td:first-child{box-shadow:inset 4px 0 var(--bad)}
tr.canary_failed,tr.blocked,tr.gate_failed,tr.reconcile_failed{background:var(--bad-bg)}
tr.drift{background:var(--warn-bg)}
td.bad{color:var(--bad)}
td.warn{color:var(--warn)}
.label{display:inline-block;margin:0 4px 2px 0;padding:0 6px;border:1px solid;border-radius:4px;
 font-size:11px;font-weight:700;text-transform:uppercase;background:#fff;white-space:nowrap}
.label.bad{color:var(--bad)}
.label.warn{color:var(--warn)}
.label.ok{color:var(--ok)}
small{display:block;color:var(--muted)}
code{font-size:12px}
a{color:#175cd3}
@media (max-width:720px){
 body{padding:12px}
 thead{display:none}
 table,tbody,tr,td{display:block;width:100%}
 tr{margin:0 0 12px;border:1px solid #d0d5dd;border-radius:8px;padding:4px 0}
 tr.attention>td:first-child{box-shadow:none}
 tr.attention{border-left:6px solid var(--bad)}
 td{display:grid;grid-template-columns:7.5em minmax(0,1fr);gap:8px;border:0;padding:3px 12px}
 td::before{content:attr(data-label);font-size:12px;color:var(--muted);text-transform:uppercase}
}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _labels(row: Row) -> str:
    return "".join(f'<span class="label {_LABELS[f][1]}">{_e(_LABELS[f][0])}</span>' for f in row.attention)


def _cell(label: str, inner: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<td data-label="{_e(label)}"{klass}><div>{inner}</div></td>'


def _branch_name(name: str) -> str:
    # A narrow column breaks a long branch name at its slashes rather than mid-word.
    return "<code>" + "/<wbr>".join(_e(part) for part in name.split("/")) + "</code>"


def _branches(row: Row) -> str:
    out = []
    for b in row.branches:
        what = f"{b.kind} {_v(b.version)}"
        if b.url is not None:
            out.append(f'<a href="{_e(b.url)}">pull request: {_e(what)}</a><small>{_branch_name(b.branch)}</small>')
        else:
            out.append(f"branch: {_e(what)}<small>{_branch_name(b.branch)}</small>")
    return "".join(f"<div>{o}</div>" for o in out) or DASH


def _walk_cell(row: Row) -> str:
    w = row.walk
    if w is None:
        return DASH
    inner = f"<strong>{_e(walk_words(row))}</strong>"
    if w.stable:
        inner += f"<small>beside v{_e(w.stable)}</small>"
    if w.message:
        inner += f"<small>{_e(w.message)}</small>"
    if w.next_look is not None:
        inner += f'<small>next look <time datetime="{iso(w.next_look)}">{_short(w.next_look)}</time></small>'
    return inner


def _row_html(row: Row) -> str:
    flags = row.attention
    classes = " ".join(("row", *flags, *(("attention",) if any(_LABELS[f][1] == "bad" for f in flags) else ())))
    serving = _e(_v(row.serving))
    if row.pinned:
        serving += f"<small>pinned v{_e(row.pinned)}</small>"
    if row.blocked:
        serving += f"<small>blocked {_e(', '.join('v' + b for b in row.blocked))}</small>"
    if row.problem:
        serving += f"<small>{_e(row.problem)}</small>"
    gate = DASH
    if row.gate is not None:
        verdict, tone = ("passed", "ok") if row.gate.passed else ("failed", "bad")
        gate = f'<span class="label {tone}">{verdict}</span>'
        gate += f"<small>{_e(gate_words(row))}</small>"
    analysis = DASH
    if row.analysis is not None:
        tone = {"passed": "ok", "failed": "bad"}.get(row.analysis.outcome, "warn")
        analysis = f'<span class="label {tone}">{_e(row.analysis.outcome)}</span>'
        if row.analysis.detail:
            analysis += f"<small>{_e(row.analysis.detail)}</small>"
    drift = DASH
    if row.drift is not None:
        drift = f'<span class="label {"warn" if row.drift == "drift" else "ok"}">{_e(row.drift)}</span>'
    r = row.reconciled
    if r is None:
        reconciled = f'<span class="muted">{NO_RECONCILE}</span>'
    else:
        reconciled = f'<time datetime="{iso(r.at)}">{_short(r.at)}</time> <strong>{_e(r.outcome)}</strong>'
        reconciled += f"<small>{_e(r.message)}</small>"
    cells = [
        _cell("Environment", _e(row.environment)),
        _cell("Model", f"<strong>{_e(row.model)}</strong>" + (f"<div>{_labels(row)}</div>" if flags else "")),
        _cell("Serving", serving, "bad" if row.blocked else ""),
        _cell("Alias wants", f"{_e(row.alias)} → {_e(_v(row.wanted))}"),
        _cell("Walk", _walk_cell(row), "bad" if "canary_failed" in flags else ""),
        _cell("Change", _branches(row)),
        _cell("Quality gate", gate, "bad" if "gate_failed" in flags else ""),
        _cell("Analysis", analysis, "bad" if row.analysis is not None and row.analysis.outcome == "failed" else ""),
        _cell("Drift", drift, "warn" if "drift" in flags else ""),
        _cell("Last reconcile", reconciled, "bad" if "reconcile_failed" in flags else ""),
    ]
    return (
        f'<tr class="{_e(classes)}" data-environment="{_e(row.environment)}" data-model="{_e(row.model)}">'
        + "".join(cells)
        + "</tr>"
    )


HEADERS = (
    "Environment",
    "Model",
    "Serving",
    "Alias wants",
    "Walk",
    "Change",
    "Quality gate",
    "Analysis",
    "Drift",
    "Last reconcile",
)


def html(rows: Sequence[Row], generated: datetime, notice: str | None = None, title: str = "releasebot status") -> str:
    """The whole page. ``notice`` is said above the table (the worker starting, say)."""
    attention = sum(1 for r in rows if r.attention)
    meta = f"{len(rows)} environment/model key(s); {attention} need attention. Generated {_short(generated)}."
    if rows and all(r.reconciled is None for r in rows) and notice is None:
        notice = f"{NO_RECONCILE}: rows fill in as the worker passes over each model."
    body = [f"<h1>{_e(title)}</h1>", f'<p class="meta">{_e(meta)}</p>']
    if notice:
        body.append(f'<p class="notice" role="status">{_e(notice)}</p>')
    if rows:
        head = "".join(f'<th scope="col">{_e(h)}</th>' for h in HEADERS)
        body.append(
            '<div class="fleet"><table><thead><tr>'
            + head
            + "</tr></thead><tbody>"
            + "".join(_row_html(r) for r in rows)
            + "</tbody></table></div>"
        )
    body.append(
        '<p class="meta">Each row is what the last pass over its model saw when that pass began; '
        "what the pass then wrote shows on its next pass.</p>"
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>" + "".join(body) + "</body></html>\n"
    )
