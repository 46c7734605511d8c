"""The status rows and their renderings, with plain data: no MLflow, no git, no browser.

The rows come from the real planner's output over the example catalog (with a canary in
production); the renderings are checked for what a reader and a script rely on: escaping, the
labels of what needs attention, the JSON keys and their types.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot import status, statuspage, yamlio
from bot.blueprints import BlueprintSet
from bot.catalog import parse_catalog
from bot.manifests import inferenceservice
from bot.plan import BotBranch, Key, Plan, RepoState, Walk, plan, release_edit
from bot.plan.types import Gate, Measurement, Verdict
from bot.registry import ModelState, RegistrySnapshot, Version
from tests.conftest import EXAMPLE_CATALOG, EXAMPLE_DIR

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
PROD = "production/fraud-detector/inferenceservice.yaml"
STAGING = "staging/fraud-detector/inferenceservice.yaml"
RELEASE = "releasebot/production/fraud-detector/release"


def catalog():
    text = EXAMPLE_CATALOG.read_text().replace(
        "    autoMerge: false\n",
        "    autoMerge: false\n    canary:\n      steps: [10, 50, 100]\n      interval: 10m\n      deadline: 15m\n",
    )
    return parse_catalog(text + "prometheus:\n  url: http://prometheus:9090\n", "releasebot.yaml", EXAMPLE_DIR)


CAT = catalog()


def version(v: str, **tags: str) -> Version:
    return Version("fraud-detector", v, f"s3://models/fraud/{v}", f"run{v}", "READY", tags=tuple(sorted(tags.items())))


def serving(env: str, v: str) -> str:
    doc = inferenceservice.desired(CAT, CAT.environment(env), CAT.model("fraud-detector"), BlueprintSet())
    return release_edit(inferenceservice.path_of(env, "fraud-detector"), yamlio.dump(doc), version(v)).new


def fleet():
    """Production serves v2 and drifts there; champion wants v3, whose quality gate failed; its
    release pull request is open. Staging serves v3."""
    versions = {
        "2": version("2", **{"releasebot.drift.production.status": "drift", "releasebot.drift.staging.status": "ok"}),
        "3": version("3", **{"releasebot.quality.production": "failed: accuracy 0.91 < 0.93"}),
    }
    reg = RegistrySnapshot(
        "http://mlflow", {"fraud-detector": ModelState("fraud-detector", (("champion", "3"),), versions)}
    )
    branch = BotBranch(RELEASE, "abc123", "3", "fp")
    state = RepoState({PROD: serving("production", "2"), STAGING: serving("staging", "3")}, {RELEASE: branch})
    return reg, state


def fraud_rows(p: Plan | None = None, wrote: bool = False, skipped=()) -> dict[str, status.Row]:
    reg, state = fleet()
    p = p if p is not None else plan(CAT, reg, state, model="fraud-detector")
    found = status.rows(CAT, state, reg, p, T0, "fraud-detector", wrote, skipped)
    return {r.environment: r for r in found}


def test_a_row_says_what_serves_what_is_wanted_and_what_needs_attention() -> None:
    rows = fraud_rows()
    assert set(rows) == {"dev", "staging", "production"}  # fraud-detector's keys, in catalog order
    prod = rows["production"]
    assert (prod.serving, prod.alias, prod.wanted) == ("2", "champion", "3")
    assert prod.drift == "drift"
    assert prod.gate == status.GateStatus("3", False, "failed: accuracy 0.91 < 0.93")
    assert prod.branches == (
        status.OpenBranch(
            "release",
            RELEASE,
            "3",
            "https://github.com/acme/ml-environments/pulls?q=is:pr%20is:open%20head:" + RELEASE.replace("/", "%2F"),
        ),
    )
    assert prod.attention == ("gate_failed", "drift")
    assert (rows["staging"].serving, rows["staging"].drift, rows["staging"].attention) == ("3", None, ())
    # dev has no manifest on this main: nothing serves, and nothing is made up.
    assert (rows["dev"].serving, rows["dev"].wanted, rows["dev"].gate) == (None, None, None)


def test_a_branch_outside_pull_request_mode_has_no_link() -> None:
    reg, state = fleet()
    name = "releasebot/staging/fraud-detector/release"
    state = replace(state, branches={name: BotBranch(name, "def456", "4", "fp")})
    rows = {(r.environment, r.model): r for r in status.rows(CAT, state, reg, plan(CAT, reg, state), T0)}
    row = rows[("staging", "fraud-detector")]
    assert row.branches == (status.OpenBranch("release", name, "4", None),)


def test_the_last_reconcile_says_what_the_pass_did_for_the_key() -> None:
    looked = fraud_rows()["production"].reconciled
    assert looked is not None and looked.at == T0 and looked.outcome == "planned"
    assert "Release fraud-detector v3 to production" in looked.message
    done = fraud_rows(wrote=True)["production"].reconciled
    assert done is not None and done.outcome == "changed"
    skipped = fraud_rows(wrote=True, skipped={RELEASE})["production"].reconciled
    assert skipped is not None and skipped.outcome == "skipped"
    assert skipped.message.startswith("pull-request write-back is not configured here")
    assert fraud_rows()["staging"].reconciled == status.Reconciled(T0, "unchanged", "nothing to do")


def test_the_gate_this_pass_evaluated_wins_over_an_older_tag() -> None:
    judged = Gate(Key("production", "fraud-detector", "release"), "3", "2", True, (), "passed 1 of 1 checks")
    prod = fraud_rows(Plan((), (), (), gates=(judged,)))["production"]
    assert prod.gate == status.GateStatus("3", True, "passed") and "gate_failed" not in prod.attention


def walking(phase: str, verdict: Verdict | None) -> Plan:
    walk = Walk(Key("production", "fraud-detector", "release"), "3", "2", 1, 50, phase, "why", T0, None, verdict)
    return Plan((), (), (), walks=(walk,))


def test_a_walk_shows_its_step_of_all_its_changes_and_a_failed_analysis_is_a_failed_canary() -> None:
    failed = Verdict(
        False,
        (Measurement("error rate", "q", 0.3, 0.0, "≤ 0.01", False),),
        T0 - timedelta(minutes=10),
        T0,
    )
    prod = fraud_rows(walking("rolling back", failed))["production"]
    assert prod.walk == status.WalkStatus("rolling back", "3", "2", 2, 4, 50, T0, None, "why")
    assert prod.analysis == status.Analysis("failed", T0 - timedelta(minutes=10), T0, "error rate: ≤ 0.01")
    assert "canary_failed" in prod.attention
    soaking = fraud_rows(walking("soaking", None))["production"]
    assert soaking.analysis is None and "canary_failed" not in soaking.attention
    # Prometheus not answering is not a verdict on the model.
    error = Verdict(False, (), T0, T0, error="Prometheus is not configured here")
    assert "canary_failed" not in fraud_rows(walking("analysing", error))["production"].attention


def test_the_board_is_in_catalog_order_and_says_which_keys_no_pass_covered() -> None:
    kept = {"fraud-detector": tuple(fraud_rows().values()), "gone": (status.Row("dev", "gone", "candidate"),)}
    rows = status.board(CAT, kept)
    keys = [(r.environment, r.model) for r in rows]
    assert keys == [(e.name, m.name) for e in CAT.environments for m in CAT.models_in(e)]
    assert ("dev", "gone") not in keys
    others = [r for r in rows if r.model != "fraud-detector"]
    assert others and all(r.reconciled is None and r.observed_at is None for r in others)


def test_a_failed_pass_keeps_what_the_last_good_one_saw() -> None:
    before = tuple(fraud_rows().values())
    after = {r.environment: r for r in status.failed(CAT, "fraud-detector", before, T0, "GitHub 502: try again")}
    assert after["production"].serving == "2" and after["production"].reconciled == status.Reconciled(
        T0, "failed", "GitHub 502: try again"
    )
    assert "reconcile_failed" in after["production"].attention
    fresh = status.failed(CAT, "credit-risk", (), T0, "boom")
    assert [r.environment for r in fresh] == [
        e.name for e in CAT.environments if CAT.model("credit-risk") in CAT.models_in(e)
    ]
    assert all(r.serving is None and r.reconciled.outcome == "failed" for r in fresh)


# --- renderings -------------------------------------------------------------------------------


def test_json_has_stable_snake_case_keys_and_typed_values() -> None:
    rows = fraud_rows(walking("soaking", None))
    doc = json.loads(statuspage.document(list(rows.values()), T0))
    assert doc["generated_at"] == "2026-11-22T09:00:00Z"
    prod = next(r for r in doc["rows"] if r["environment"] == "production")
    assert set(prod) == {
        "environment",
        "model",
        "alias",
        "serving_version",
        "wanted_version",
        "pinned_version",
        "blocked_versions",
        "walk",
        "open_branches",
        "quality_gate",
        "analysis",
        "drift",
        "problem",
        "last_reconcile",
        "observed_at",
        "attention",
    }
    assert prod["walk"] == {
        "phase": "soaking",
        "version": "3",
        "stable_version": "2",
        "step": 2,
        "steps": 4,
        "percent": 50,
        "since": "2026-11-22T09:00:00Z",
        "next_look": None,
        "message": "why",
    }
    assert prod["quality_gate"] == {"version": "3", "passed": False, "detail": "failed: accuracy 0.91 < 0.93"}
    assert prod["open_branches"][0]["pull_request_url"].startswith("https://github.com/acme/ml-environments/pulls?q=")
    assert (prod["analysis"], prod["pinned_version"], prod["blocked_versions"]) == (None, None, [])
    assert prod["attention"] == ["gate_failed", "drift"]
    assert prod["last_reconcile"]["at"] == "2026-11-22T09:00:00Z"
    nothing = statuspage.as_dict(status.Row("dev", "m", "candidate"))
    assert nothing["walk"] is None and nothing["last_reconcile"] is None and nothing["observed_at"] is None


def test_html_escapes_user_text_and_labels_what_needs_attention() -> None:
    prod = fraud_rows()["production"]
    evil = "<script>alert(1)</script>"
    row = replace(prod, reconciled=status.Reconciled(T0, "error", f"catalog says {evil}"))
    page = statuspage.html([row], T0)
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'name="viewport"' in page and "http" not in page.split("<body>")[0]  # nothing fetched from anywhere
    assert 'class="row gate_failed drift reconcile_failed attention"' in page
    for label in ("gate failed", "drift", "reconcile failed"):
        assert f">{label}</span>" in page
    assert f'href="{prod.branches[0].url}"' in page
    empty = statuspage.html([status.Row("dev", "m", "candidate")], T0)
    assert "no reconcile yet" in empty


def test_the_table_has_a_line_per_key() -> None:
    out = statuspage.table(list(fraud_rows().values())).splitlines()
    assert out[0].split()[:4] == ["ENVIRONMENT", "MODEL", "SERVING", "WANTS"]
    assert len(out) == 4
    prod = next(line for line in out if line.startswith("production"))
    assert "v2" in prod and "champion → v3" in prod and "gate_failed,drift" in prod
