"""The webhook receiver: genuine deliveries are routed to models; anything else gets 4xx and no work."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bot.catalog import load_catalog
from bot.intake import CheckRequest, CommandRequest, sign_mlflow
from bot.server import MAX_BODY, Receiver, Settings, create_app
from bot.work import LocalWork
from tests.conftest import EXAMPLE_CATALOG

HOOKS = Path(__file__).parent / "fixtures/github/webhooks"
GH_SECRET, ML_SECRET = "gh-test-secret", "mlflow-test-secret"
CAT = load_catalog(EXAMPLE_CATALOG)


class RecordingWorker:
    """Records the work the receiver hands over: a model name, ("validate", sha, pr) or ("command", ...)."""

    def __init__(self) -> None:
        self.calls: list = []
        self.gate = threading.Event()
        self.gate.set()

    def reconcile(self, model: str) -> None:
        self.gate.wait(10)
        self.calls.append(model)

    def look_again(self, model: str) -> float | None:
        return None

    def validate(self, check: CheckRequest) -> None:
        self.calls.append(("validate", check.head_sha, check.head_branch, check.pull_number))

    def command(self, request: CommandRequest) -> None:
        self.calls.append(("command", request.number, request.on_pull_request, request.user, request.line))


class Harness:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.worker = RecordingWorker()
        self.calls, self.gate = self.worker.calls, self.worker.gate
        self.now = now
        self.receiver = Receiver(
            Settings(GH_SECRET, ML_SECRET, resync_seconds=3600),
            LocalWork(self.worker, lambda: CAT),
            clock=lambda: self.now,
        )
        self.client = TestClient(create_app(self.receiver))

    def github(self, event: str, payload: dict | bytes, delivery: str = "d-1", secret: str = GH_SECRET):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return self.client.post(
            "/webhooks/github",
            content=body,
            headers={
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": sig,
                "Content-Type": "application/json",
            },
        )

    def mlflow(
        self, payload: dict | bytes, delivery: str = "m-1", timestamp: float | None = None, secret: str = ML_SECRET
    ):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        ts = str(int(self.now if timestamp is None else timestamp))
        return self.client.post(
            "/webhooks/mlflow",
            content=body,
            headers={
                "X-MLflow-Delivery-Id": delivery,
                "X-MLflow-Timestamp": ts,
                "X-MLflow-Signature": sign_mlflow(secret, delivery, ts, body),
                "Content-Type": "application/json",
            },
        )

    def settle(self) -> list[str]:
        assert self.receiver.queue.join_idle(10)
        return self.calls


def recorded(name: str) -> dict:
    return json.loads((HOOKS / name).read_text())


def merged_pr(branch: str = "releasebot/production/fraud-detector/release") -> dict:
    payload = recorded("pull_request_pull_request.closed.json")
    assert payload["action"] == "closed" and payload["pull_request"]["merged"] is True
    payload["pull_request"]["head"]["ref"] = branch
    return payload


ALIAS_MOVED = {
    "entity": "model_version_alias",
    "action": "created",
    "timestamp": "2026-11-22T02:34:04+00:00",
    "data": {"name": "fraud-detector", "alias": "champion", "version": "3"},
}


@pytest.fixture
def h():
    harness = Harness()
    with harness.client:
        yield harness


def test_a_merged_bot_pull_request_reconciles_its_model(h: Harness) -> None:
    response = h.github("pull_request", merged_pr())
    assert response.status_code == 202 and response.json()["queued"] == ["fraud-detector"]
    assert h.settle() == ["fraud-detector"]


def test_a_push_to_main_reconciles_the_models_whose_files_changed(h: Harness) -> None:
    payload = recorded("push_with-new-branch.payload.json")
    payload["ref"] = "refs/heads/main"
    payload["commits"][0].update(
        added=[],
        removed=[],
        modified=["staging/credit-risk/inferenceservice.yaml", "production/review-sentiment/drift-check-cronjob.yaml"],
    )
    assert h.github("push", payload).json()["queued"] == ["credit-risk", "review-sentiment"]
    payload["commits"][0]["modified"] = ["releasebot.yaml"]
    assert h.github("push", payload, delivery="d-2").json()["queued"] == [
        "credit-risk",
        "fraud-detector",
        "review-sentiment",
    ]


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ("ping", "ping_with-app_id.payload.json"),
        ("pull_request_review", "pull_request_review_approved.json"),  # on a person's branch
        ("issue_comment", "issue_comment_comment.json"),  # "trigger abc": not a command
    ],
)
def test_other_events_are_acknowledged_without_work(h: Harness, event: str, name: str) -> None:
    response = h.github(event, recorded(name))
    assert response.status_code == 202 and response.json()["queued"] == []
    assert h.settle() == []


def test_an_approval_on_a_bot_pull_request_reconciles_its_model(h: Harness) -> None:
    payload = recorded("pull_request_review_approved.json")
    payload["pull_request"]["head"]["ref"] = "releasebot/staging/credit-risk/release"
    assert h.github("pull_request_review", payload).json()["queued"] == ["credit-risk"]


def test_an_installation_looks_at_every_model(h: Harness) -> None:
    assert h.github("installation", recorded("installation_created.payload.json")).json()["queued"] == [
        "credit-risk",
        "fraud-detector",
        "review-sentiment",
    ]


@pytest.mark.parametrize("action", ["opened", "synchronize"])
def test_a_pull_request_to_main_is_validated_at_its_head(h: Harness, action: str) -> None:
    payload = recorded(f"pull_request_{action}.payload.json")
    sha = payload["pull_request"]["head"]["sha"]
    payload["pull_request"]["base"]["ref"] = "main"
    assert h.github("pull_request", payload).json()["queued"] == [f"validate {sha[:12]}"]
    assert h.settle() == [("validate", sha, "changes", 2)]
    payload["pull_request"]["base"]["ref"] = "some-feature"  # not into main: not ours to check
    assert h.github("pull_request", payload, delivery="d-2").json()["queued"] == []


def test_a_rerequested_check_run_validates_that_commit_again(h: Harness) -> None:
    payload = recorded("check_run_rerequested.payload.json")
    sha = payload["check_run"]["head_sha"]
    assert h.github("check_run", payload).json()["queued"] == [f"validate {sha[:12]}"]
    assert h.settle() == [("validate", sha, "master", None)]


def test_a_releasebot_comment_is_a_command_and_bots_are_never_obeyed(h: Harness) -> None:
    payload = recorded("issue_comment_comment.json")
    payload["comment"]["body"] = "Looks odd.\n/releasebot rollback 3\n"
    assert h.github("issue_comment", payload).json()["queued"] == ["command on #2"]
    assert h.settle() == [("command", 2, True, "lts-def", "/releasebot rollback 3")]
    payload["comment"]["user"]["type"] = "Bot"
    assert h.github("issue_comment", payload, delivery="d-2").json()["queued"] == []


def test_a_bad_github_signature_is_401_and_queues_nothing(h: Harness) -> None:
    assert h.github("pull_request", merged_pr(), secret="wrong").status_code == 401
    body = json.dumps(merged_pr()).encode()
    unsigned = h.client.post("/webhooks/github", content=body, headers={"X-GitHub-Event": "pull_request"})
    assert unsigned.status_code == 401
    assert h.settle() == [] and h.receiver.queue.depth() == 0


@pytest.mark.parametrize(("body", "status"), [(b"{not json", 400), (b"[" * (MAX_BODY + 1), 413)])
def test_malformed_or_oversized_github_bodies_get_4xx_and_queue_nothing(h: Harness, body: bytes, status: int) -> None:
    assert h.github("pull_request", body).status_code == status  # signed correctly, still refused
    assert h.settle() == [] and h.receiver.queue.depth() == 0


def test_a_duplicated_delivery_is_worked_once(h: Harness) -> None:
    first = h.github("pull_request", merged_pr(), delivery="same")
    h.settle()
    second = h.github("pull_request", merged_pr(), delivery="same")
    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json()["note"] == "duplicate delivery"
    assert h.settle() == ["fraud-detector"]


def test_a_burst_of_100_events_for_one_model_is_one_reconcile(h: Harness) -> None:
    h.gate.clear()  # hold the worker on a first model while the burst arrives
    h.github("pull_request", merged_pr("releasebot/dev/review-sentiment/release"), delivery="first")
    time.sleep(0.2)
    for i in range(100):
        assert h.mlflow(ALIAS_MOVED, delivery=f"burst-{i}").status_code == 202
    h.gate.set()
    assert h.settle() == ["review-sentiment", "fraud-detector"]
    assert h.receiver.queue.coalesced == 99


def test_mlflow_alias_and_tag_events_reconcile_the_registered_model(h: Harness) -> None:
    assert h.mlflow(ALIAS_MOVED).json()["queued"] == ["fraud-detector"]
    tag = {
        "entity": "model_version_tag",
        "action": "set",
        "data": {"name": "credit-risk", "version": "1", "key": "releasebot.drift.status"},
    }
    assert h.mlflow(tag, delivery="m-2").json()["queued"] == ["credit-risk"]
    other = {"entity": "registered_model", "action": "created", "data": {"name": "fraud-detector"}}
    assert h.mlflow(other, delivery="m-3").json()["queued"] == []
    assert sorted(h.settle()) == ["credit-risk", "fraud-detector"]


@pytest.mark.parametrize(
    ("case", "status"),
    [("stale", 401), ("future", 401), ("bad-signature", 401), ("malformed", 400), ("oversized", 413)],
)
def test_bad_mlflow_deliveries_get_4xx_and_queue_nothing(h: Harness, case: str, status: int) -> None:
    if case == "stale":
        response = h.mlflow(ALIAS_MOVED, timestamp=h.now - 301)
    elif case == "future":
        response = h.mlflow(ALIAS_MOVED, timestamp=h.now + 301)
    elif case == "bad-signature":
        response = h.mlflow(ALIAS_MOVED, secret="wrong")
    elif case == "malformed":
        response = h.mlflow(b"{not json")
    else:
        response = h.mlflow(b"x" * (MAX_BODY + 1))
    assert response.status_code == status
    assert h.settle() == [] and h.receiver.queue.depth() == 0


def test_metrics_move(h: Harness) -> None:
    def value(metric: str) -> float:
        for line in h.client.get("/metrics").text.splitlines():
            if line.split(" ")[0] == metric:
                return float(line.split(" ")[-1])
        return 0.0

    queued = 'releasebot_events_total{outcome="queued",source="mlflow",type="model_version_alias.created"}'
    refused = 'releasebot_events_total{outcome="unauthorized",source="github",type="pull_request"}'
    before = value(queued)
    h.mlflow(ALIAS_MOVED, delivery="x-1")
    h.github("pull_request", merged_pr(), secret="wrong")
    h.settle()
    assert value(queued) == before + 1 and value(refused) == 1
    assert value("releasebot_reconcile_seconds_count") == 1
    assert value("releasebot_queue_depth") == 0


def test_health_and_readiness(h: Harness) -> None:
    assert h.client.get("/healthz").text == "ok"
    assert h.client.get("/readyz").text == "ready"


def test_serve_refuses_to_start_without_webhook_secrets(run_cli, monkeypatch) -> None:
    monkeypatch.delenv("RELEASEBOT_GITHUB_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("RELEASEBOT_MLFLOW_WEBHOOK_SECRET", "x")
    result = run_cli("serve", "--port", "0")
    assert result.code == 2 and "RELEASEBOT_GITHUB_WEBHOOK_SECRET" in result.err and "not starting" in result.err


def test_unknown_event_names_do_not_become_metric_labels(h: Harness) -> None:
    for i in range(5):
        h.client.post("/webhooks/github", content=b"{}", headers={"X-GitHub-Event": f"made-up-{i}"})
    text = h.client.get("/metrics").text
    assert "made-up" not in text
    assert 'releasebot_events_total{outcome="unauthorized",source="github",type="other"} 5.0' in text


UPSTREAM_HOOKS = Path(__file__).resolve().parents[2] / "shared" / "upstream" / "github-webhooks" / "payload-examples"


def upstream(name: str) -> dict:
    return json.loads((UPSTREAM_HOOKS / name).read_text())


def test_a_completed_check_suite_on_a_bot_branch_reconciles_its_model(h: Harness) -> None:
    payload = upstream("check_suite/completed.payload.json")
    assert h.github("check_suite", payload).json()["queued"] == []  # a person's branch
    payload["check_suite"]["head_branch"] = "releasebot/production/credit-risk/release"
    assert h.github("check_suite", payload, delivery="d-2").json()["queued"] == ["credit-risk"]
    assert h.settle() == ["credit-risk"]


def test_a_status_on_main_brings_waiting_walks_forward(h: Harness) -> None:
    from bot.work import Reconcile

    # A walk waiting for its soak asked to be looked at in an hour; the other key waits for nothing.
    h.receiver.queue.put_at(Reconcile("fraud-detector"), time.time() + 3600)
    payload = upstream("status/payload.json")
    assert h.github("status", payload).json()["note"] == "status: nothing to do"  # not on main
    payload["branches"][0]["name"] = "main"
    response = h.github("status", payload, delivery="d-2")
    assert response.status_code == 202 and response.json()["note"].endswith("walks look again")
    assert h.settle() == ["fraud-detector"]


def test_a_merge_group_is_validated_at_the_groups_head(h: Harness) -> None:
    payload = recorded("merge_group_checks_requested.payload.json")
    group = payload["merge_group"]
    # The queue's temporary branch for main; head_sha is the commit to check, not head_commit.id.
    assert group["base_ref"] == "refs/heads/main" and group["head_sha"] != group["head_commit"]["id"]
    response = h.github("merge_group", payload)
    assert response.status_code == 202 and response.json()["queued"] == [f"validate {group['head_sha'][:12]}"]
    branch = group["head_ref"].removeprefix("refs/heads/")
    assert branch.startswith("gh-readonly-queue/main/pr-104-")
    assert h.settle() == [("validate", group["head_sha"], branch, None)]
    group["base_ref"] = "refs/heads/release-1"  # a queue into another branch: not ours to check
    assert h.github("merge_group", payload, delivery="d-2").json()["queued"] == []
    destroyed = payload | {"action": "destroyed"}  # the group merged or left the queue: nothing to check
    assert h.github("merge_group", destroyed, delivery="d-3").json()["queued"] == []


# --- the status page ------------------------------------------------------------------------


class StatusWorker(RecordingWorker):
    """Leaves status rows behind each reconcile, as the service does (a message that is
    someone's text, and a failure)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict = {}

    def reconcile(self, model: str) -> None:
        from bot import status

        super().reconcile(model)
        at = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
        said = status.Reconciled(at, "error", "catalog says <script>alert(1)</script>")
        self.rows[model] = tuple(
            status.Row(e.name, model, e.alias, serving="3", reconciled=said, observed_at=at)
            for e in CAT.environments
            if model in {m.name for m in CAT.models_in(e)}
        )

    def take_status(self) -> dict:
        taken, self.rows = self.rows, {}
        return taken


def page_keys(text: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr class="[^"]*" data-environment="([^"]+)" data-model="([^"]+)">', text)


def test_the_status_page_before_any_pass_lists_every_key_and_says_no_reconcile_yet(h: Harness) -> None:
    response = h.client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "script-src" not in response.headers["content-security-policy"]  # default-src 'none' forbids scripts
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert page_keys(response.text) == [(e.name, m.name) for e in CAT.environments for m in CAT.models_in(e)]
    assert response.text.count("no reconcile yet") >= len(page_keys(response.text))


def test_the_status_page_shows_the_rows_a_pass_left_with_user_text_escaped() -> None:
    worker = StatusWorker()
    receiver = Receiver(Settings(GH_SECRET, ML_SECRET, resync_seconds=3600), LocalWork(worker, lambda: CAT))
    with TestClient(create_app(receiver)) as client:
        body = json.dumps(ALIAS_MOVED).encode()
        ts = "1800000000"
        receiver.clock = lambda: 1_800_000_000.0
        headers = {
            "X-MLflow-Delivery-Id": "m-1",
            "X-MLflow-Timestamp": ts,
            "X-MLflow-Signature": sign_mlflow(ML_SECRET, "m-1", ts, body),
        }
        assert client.post("/webhooks/mlflow", content=body, headers=headers).status_code == 202
        assert receiver.queue.join_idle(10)
        text = client.get("/").text
    fraud = text.split('data-model="fraud-detector">')[1].split("</tr>")[0]
    assert "reconcile failed" in fraud and "&lt;script&gt;alert(1)&lt;/script&gt;" in fraud and "<script" not in text
    other = text.split('data-model="credit-risk">')[1].split("</tr>")[0]
    assert "no reconcile yet" in other


def test_the_status_page_is_never_a_5xx() -> None:
    class Starting(LocalWork):
        def catalog(self):
            raise RuntimeError("the worker process is starting")

    class Broken(LocalWork):
        def status(self):
            raise RuntimeError("rows unreadable")

    for work, said in ((Starting, "not ready: the worker process is starting"), (Broken, "could not be built")):
        receiver = Receiver(Settings(GH_SECRET, ML_SECRET, resync_seconds=3600), work(RecordingWorker(), lambda: CAT))
        with TestClient(create_app(receiver)) as client:
            response = client.get("/")
        assert response.status_code == 200 and said in response.text
