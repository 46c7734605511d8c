"""Every verb's ``--output json``: one document on stdout, snake_case keys, typed values.

The first test walks the real parser: a verb without ``--output json``, or without a test marked
``@pytest.mark.json_output("<verb>")`` that parses its document, fails it — so a verb added later
is caught. The others run each verb for real (git repositories in tmp_path, the session's MLflow
server, a KFP stand-in, a ``serve`` process) and read the document back with ``json.loads``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import requests

from bot.cli import build_parser
from tests import cli_verbs
from tests.conftest import EXAMPLE_CATALOG, tree
from tests.test_release_loop import World

SHA = re.compile(r"[0-9a-f]{40}")


def _problems(parser: argparse.ArgumentParser, marked: dict[str, list[str]]) -> list[str]:
    verbs = cli_verbs.leaf_verbs(parser)
    problems = [f"{verb}: no --output json" for verb, p in verbs.items() if "json" not in cli_verbs.output_choices(p)]
    problems += [f"{verb}: no test marked json_output({verb!r})" for verb in verbs if verb not in marked]
    problems += [f"{verb}: marked in {where} but no such verb" for verb, where in marked.items() if verb not in verbs]
    return problems


def test_every_verb_speaks_json_and_a_test_reads_it() -> None:
    verbs = cli_verbs.leaf_verbs(build_parser())
    assert {"init", "validate", "plan", "drift run", "retrain submit", "serve", "completion"} <= set(verbs)
    assert _problems(build_parser(), cli_verbs.marked_verbs()) == []


def test_a_verb_added_without_json_or_a_test_is_caught() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.add_parser("fleet").add_argument("--output", choices=["table", "html"])
    group = sub.add_parser("gadget").add_subparsers()
    group.add_parser("make").add_argument("--output", choices=["text", "json"])
    marked = {**cli_verbs.marked_verbs(), "gone": ["test_x.py::test_y"]}
    assert _problems(parser, marked) == [
        "fleet: no --output json",
        "fleet: no test marked json_output('fleet')",
        "gadget make: no test marked json_output('gadget make')",
        "gone: marked in ['test_x.py::test_y'] but no such verb",
    ]


def test_a_marked_test_that_never_parsed_its_verb_is_caught() -> None:
    assert cli_verbs.missing_json(["plan", "drift run"], {"plan"}) == ["drift run"]
    assert cli_verbs.verb_of(["--log-level", "debug", "drift", "run", "--model", "m"]) == "drift run"
    assert cli_verbs.verb_of(["plan", "--output", "json"]) == "plan"


@pytest.mark.json_output("init", "render", "validate")
def test_init_render_and_validate_speak_json(tmp_path: Path, run_cli) -> None:
    repo = tmp_path / "envs"
    made = run_cli("init", repo, "--catalog", EXAMPLE_CATALOG, "--output", "json")
    assert made.code == 0, made.err
    doc = made.json()
    assert doc == {"path": str(repo.resolve()), "files": doc["files"], "commit": doc["commit"], "branch": "main"}
    assert doc["files"] == len(tree(repo)) - 1 and SHA.fullmatch(doc["commit"])  # every file but the catalog

    same = run_cli("render", "--check", repo, "--output", "json")
    assert same.code == 0 and same.json() == {"check": True, "written": False, "changes": [], "orphans": []}

    catalog = repo / "releasebot.yaml"
    catalog.write_text(catalog.read_text().replace("nodeRole: KarpenterNodeRole-ml-prod", "nodeRole: NewRole"))
    before = tree(repo)
    differs = run_cli("render", "--check", "--diff", repo, "--output", "json")
    assert differs.code == 1 and differs.err == ""  # a finding, with its document; stderr is for failures
    doc = differs.json()
    assert doc["check"] is True and doc["written"] is False and doc["orphans"] == []
    first = doc["changes"][0]
    assert first["path"] == "dev/karpenter/ec2nodeclass.yaml" and first["action"] == "update"
    assert first["fields"] == ["$.spec.role"]
    assert "-  role: KarpenterNodeRole-ml-prod\n+  role: NewRole\n" in first["diff"]
    assert tree(repo) == before

    written = run_cli("render", repo, "--output", "json")
    assert written.code == 0 and written.json()["written"] is True
    assert [c["diff"] for c in written.json()["changes"]] == [None] * len(doc["changes"])  # no --diff asked

    checked = run_cli("validate", repo, "--output", "json")
    assert checked.code == 0
    assert checked.json() == {"ok": True, "files_checked": checked.json()["files_checked"], "problems": []}
    assert isinstance(checked.json()["files_checked"], int) and checked.json()["files_checked"] > 40


@pytest.fixture
def world(mlflow_url: str, tmp_path: Path, run_cli) -> World:
    return World(mlflow_url, tmp_path, run_cli)


@pytest.mark.json_output("plan", "reconcile", "history", "rollback", "unblock")
def test_the_release_loop_speaks_json(world: World) -> None:
    v1, v2 = world.version(0.9), world.version(0.93)
    world.alias("candidate", v1)
    planned = world.run_cli("plan", *world.loop, "--env", "dev", "--output", "json")
    assert planned.code == 0, planned.err
    plan = planned.json()
    assert plan["ok"] is True and plan["next_look"] is None
    [change] = plan["changes"]
    assert {k: change[k] for k in ("environment", "model", "kind", "write_back", "version", "previous")} == {
        "environment": "dev",
        "model": "fraud",
        "kind": "release",
        "write_back": "commit",
        "version": v1,
        "previous": None,
    }
    assert change["files"] == ["dev/fraud/inferenceservice.yaml"] and change["auto_merge"] is False
    assert change["gate"] is None and change["branch"] == "releasebot/dev/fraud/release"

    done = world.reconcile("--output", "json")
    assert done.code == 0, done.err
    doc = done.json()
    assert doc["ok"] is True and doc["skipped"] == [] and done.err == ""
    assert [c["environment"] for c in doc["changes"]] == ["dev"]
    [line] = doc["written"]
    assert line.startswith(f"committed Release fraud v{v1} to dev to main (")
    world.alias("candidate", v2)
    assert world.reconcile("--output", "json").json()["changes"][0]["previous"] == v1

    history = world.run_cli("history", "fraud", "--env", "dev", *world.loop, "--output", "json")
    assert history.code == 0, history.err
    doc = history.json()
    assert doc["model"] == "fraud" and doc["environment"] == "dev"
    assert [r["version"] for r in doc["releases"]] == [v2, v1]
    for release in doc["releases"]:
        assert SHA.fullmatch(release["commit"]) and datetime.fromisoformat(release["date"]).tzinfo is not None
        assert release["environment"] == "dev" and release["subject"].startswith("Release fraud v")
        assert isinstance(release["run"], str)

    rolled = world.run_cli("rollback", "fraud", "--env", "dev", *world.loop, "--output", "json")
    assert rolled.code == 0, rolled.err
    doc = rolled.json()
    assert (doc["action"], doc["environment"], doc["model"]) == ("rollback", "dev", "fraud")
    assert doc["written"].startswith("committed Roll back fraud in dev to v") and doc["message"] == doc["written"]
    assert (doc["change"]["kind"], doc["change"]["version"], doc["change"]["previous"]) == ("pin", v1, v2)

    unblocked = world.run_cli("unblock", "fraud", "--env", "dev", *world.loop, "--output", "json")
    assert unblocked.code == 0 and unblocked.json()["change"]["kind"] == "pin"
    again = world.run_cli("unblock", "fraud", "--env", "dev", *world.loop, "--output", "json")
    assert again.code == 0  # nothing to do is not a failure
    assert again.json() == {
        "action": "unblock",
        "environment": "dev",
        "model": "fraud",
        "written": None,
        "message": "nothing is pinned or blocked for fraud in dev",
        "change": None,
    }


@pytest.mark.json_output("drift run")
def test_drift_run_speaks_json(mlflow_url: str, tmp_path: Path, run_cli) -> None:
    from tests.test_drift import Served, frame

    served = Served(mlflow_url, tmp_path)
    result = served.run(run_cli, served.window(frame(2000, seed=3, shift=0.8)), "--fail-on-drift", "--output", "json")
    assert result.code == 1, result.err  # drift found; the document says what
    doc = result.json()
    assert set(doc) == {
        "model",
        "environment",
        "registered_model",
        "version",
        "alias",
        "checked_at",
        "status",
        "dataset_drift",
        "drift_share",
        "drift_share_threshold",
        "drifted_columns",
        "columns",
        "action",
        "run_id",
        "experiment_id",
        "window",
        "column_results",
    }
    assert doc["status"] == "drift" and doc["dataset_drift"] is True and isinstance(doc["drift_share"], float)
    assert doc["drifted_columns"] == 4 and doc["columns"] == 7 and doc["version"] == served.version
    assert datetime.fromisoformat(doc["checked_at"]).tzinfo is not None
    assert doc["window"]["current_rows"] == 2000 and doc["window"]["sampled"] is False
    assert set(doc["column_results"][0]) == {"column", "method", "threshold", "score", "drifted"}
    assert doc["run_id"] == served.tags()["releasebot.drift.production.run_id"]


@pytest.mark.json_output("retrain submit")
def test_retrain_submit_speaks_json(run_cli) -> None:
    from tests.kfp_api import KfpServer

    with KfpServer() as kfp:
        result = run_cli(
            "retrain", "submit", "--endpoint", kfp.url, "--display-name", "retrain fraud",
            "--pipeline-id", "p-1", "--output", "json",
        )  # fmt: skip
    assert result.code == 0, result.err
    assert result.json() == {
        "run_id": "run-1",
        "display_name": "retrain fraud",
        "pipeline_id": "p-1",
        "pipeline_version_id": None,
        "experiment_id": None,
        "state": "PENDING",
    }
    # Without a token the request goes out anyway, and stderr says so, as a JSON line.
    notices = [json.loads(line)["notice"]["message"] for line in result.err.splitlines() if '"notice"' in line]
    assert [n for n in notices if n.startswith("no pipelines token")], result.err


@pytest.mark.json_output("serve")
def test_serve_says_where_it_listens_as_one_json_line(env_repo: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "RELEASEBOT_GITHUB_WEBHOOK_SECRET": "gh",
        "RELEASEBOT_MLFLOW_WEBHOOK_SECRET": "ml",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
    }
    argv = ["serve", "--repo", str(env_repo), "--workdir", str(tmp_path / "w"), "--port", "0", "--output", "json"]
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "releasebot"), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        doc = cli_verbs.parse(argv, proc.stdout.readline())  # blocks until it listens (or exits)
        assert doc["host"] == "127.0.0.1" and isinstance(doc["port"], int) and doc["port"] > 0
        assert doc["url"] == f"http://127.0.0.1:{doc['port']}" and doc["pid"] == proc.pid
        assert requests.get(f"{doc['url']}/healthz", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.stdout.read() == ""  # one line, and nothing else on stdout


@pytest.mark.json_output("completion")
def test_completion_speaks_json(run_cli) -> None:
    result = run_cli("completion", "bash", "--output", "json")
    assert result.code == 0
    doc = result.json()
    assert doc["shell"] == "bash" and doc["script"] == run_cli("completion", "bash").out


def test_the_plan_document_types_every_value() -> None:
    from datetime import UTC

    from bot import documents
    from bot.plan import Alert, BotBranch, Change, Close, FileEdit, Key, Note, Plan, Walk
    from bot.plan.types import Deployment, Gate, GateRow, Measurement, Verdict, VersionTag

    at = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    key = Key("production", "fraud", "release")
    gate = Gate(key, "7", "6", True, (GateRow("accuracy", "0.93", "0.91", "≥ baseline", True),), "passed 1 of 1")
    change = Change(
        key, "pull-request", (FileEdit("production/fraud/inferenceservice.yaml", "a", "b", ("$.spec.x",)),),
        "7", "6", "msg", "Release fraud v7 to production", "body", "fp", auto_merge=True, reviewers=("ana",),
        gate=gate,
    )  # fmt: skip
    verdict = Verdict(False, (Measurement("error rate", "q", 0.2, 0.01, "≤ 0.05", False),), at, at)
    walk = Walk(key, "7", "6", 1, 25, "soaking", "", since=at, next_look=at, verdict=verdict)
    branch = BotBranch("releasebot/staging/fraud/release", "abc", "5", "fp")
    doc = documents.plan(
        Plan(
            changes=(change,),
            closes=(Close(Key("staging", "fraud", "release"), branch, "main serves v5"),),
            notes=(Note(key, "held", error=True),),
            alerts=(Alert(Key("production", "fraud", "alert"), True, "drift", "body", "fp"),),
            walks=(walk,),
            deployments=(Deployment(key, "d" * 40, "7", "2/4", 25, "in_progress", "canary 25%"),),
            tags=(VersionTag("fraud", "7", "releasebot.quality.production", "passed"),),
            gates=(gate,),
        )
    )
    json.dumps(doc)  # plain JSON all the way down
    assert doc["ok"] is False and doc["next_look"] == "2026-11-22T03:00:00+00:00" and doc["held"] == []
    c = doc["changes"][0]
    assert (c["write_back"], c["previous"], c["auto_merge"], c["reviewers"]) == ("pull-request", "6", True, ["ana"])
    assert c["fields"] == ["$.spec.x"] and c["held_at"] is None and c["supersedes"] is None
    assert c["gate"]["rows"] == [
        {"name": "accuracy", "candidate": 0.93, "baseline": 0.91, "rule": "≥ baseline", "passed": True}
    ]
    w = doc["walks"][0]
    assert (w["step"], w["percent"], w["since"], w["message"]) == (2, 25, "2026-11-22T03:00:00+00:00", None)
    assert w["verdict"]["measurements"][0] == {
        "name": "error rate",
        "query": "q",
        "canary": 0.2,
        "stable": 0.01,
        "threshold": "≤ 0.05",
        "passed": False,
        "note": None,
    }
    assert doc["closes"] == [
        {
            "environment": "staging",
            "model": "fraud",
            "kind": "release",
            "branch": "releasebot/staging/fraud/release",
            "version": "5",
            "reason": "main serves v5",
        }
    ]
    assert doc["notes"][0]["error"] is True and doc["alerts"][0]["raised"] is True
    assert doc["deployments"][0]["percent"] == 25 and doc["version_tags"][0]["value"] == "passed"
