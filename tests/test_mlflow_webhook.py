"""`releasebot mlflow webhook create` against a real MLflow server: one webhook for the events
releasebot routes, however often it runs, and MLflow's own test delivery passes serve's
signature check only with the right secret."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from mlflow.tracking import MlflowClient

from bot.intake import MLFLOW_EVENTS
from bot.server import Receiver, Settings, create_app
from bot.work import LocalWork
from tests.mlflow_server import free_port
from tests.test_server import CAT, RecordingWorker


@pytest.fixture
def client(mlflow_url: str) -> Iterator[MlflowClient]:
    """The session's MLflow, and afterwards none of the webhooks a test registered: the server
    would go on delivering every alias move of other tests to ports nobody listens on."""
    mlflow = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
    before = {w.webhook_id for w in mlflow.list_webhooks()}
    yield mlflow
    for hook in mlflow.list_webhooks():
        if hook.webhook_id not in before:
            mlflow.delete_webhook(hook.webhook_id)


def _secret(tmp_path: Path, text: str, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _ours(client: MlflowClient, url: str) -> list:
    return [w for w in client.list_webhooks() if w.url == url]


@pytest.mark.json_output("mlflow webhook create")
def test_create_registers_one_webhook_for_the_routed_events_and_a_second_run_leaves_one(
    client: MlflowClient, mlflow_url: str, run_cli, tmp_path: Path, monkeypatch
) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    url = f"{base}/webhooks/mlflow"
    secret = _secret(tmp_path, "s3cret-1")
    first = run_cli(
        *("mlflow", "webhook", "create", "--url", base, "--tracking-uri", mlflow_url),
        *("--secret-file", secret, "--output", "json"),
    )
    assert first.code == 0, first.err
    report = first.json()
    assert report["action"] == "created" and report["url"] == url and report["test"] is None
    assert report["events"] == sorted(MLFLOW_EVENTS)
    [hook] = _ours(client, url)
    assert hook.webhook_id == report["webhook_id"] and hook.name == "releasebot"
    assert sorted(str(e) for e in hook.events) == sorted(MLFLOW_EVENTS)
    assert str(hook.status) == "ACTIVE"

    # Again, with the secret from the environment serve reads it from, and a trailing slash.
    monkeypatch.setenv("RELEASEBOT_MLFLOW_WEBHOOK_SECRET", "s3cret-2")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    second = run_cli("mlflow", "webhook", "create", "--url", base + "/")
    assert second.code == 0, second.err
    assert second.out.startswith(f"Updated MLflow webhook {hook.webhook_id} (releasebot): {url} for ")
    assert [w.webhook_id for w in _ours(client, url)] == [hook.webhook_id]
    assert "s3cret" not in first.out + second.out


@pytest.fixture
def receiver_port() -> Iterator[int]:
    """serve's receiver on 127.0.0.1, checking MLflow signatures with the secret "right"."""
    receiver = Receiver(Settings("gh", "right", resync_seconds=3600), LocalWork(RecordingWorker(), lambda: CAT))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(receiver), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def test_mlflow_s_test_delivery_passes_serve_s_signature_check_only_with_the_same_secret(
    client: MlflowClient, mlflow_url: str, run_cli, tmp_path: Path, receiver_port: int
) -> None:
    base = f"http://127.0.0.1:{receiver_port}"
    create = ("mlflow", "webhook", "create", "--url", base, "--tracking-uri", mlflow_url, "--test")
    right = run_cli(*create, "--secret-file", _secret(tmp_path, "right"))
    assert right.code == 0, right.err
    assert "MLflow's test delivery: accepted, answered 202" in right.out

    wrong = run_cli(*create, "--secret-file", _secret(tmp_path, "wrong", "other"), "--output", "json")
    assert wrong.code == 1, wrong.err
    test = json.loads(wrong.out)["test"]
    assert test["success"] is False and test["status"] == 401 and "X-MLflow-Signature" in test["said"]
    assert len(_ours(client, f"{base}/webhooks/mlflow")) == 1


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--url", "https://bot.acme.dev?x=1"], "no query or fragment"),
        (["--url", "ftp://bot.acme.dev"], "expected an absolute https or http:// URL"),
        (["--url", "https://bot.acme.dev", "--secret-file", "MISSING"], "No such file"),
        (["--url", "https://bot.acme.dev", "--secret-file", "NEWLINE"], "starts or ends with whitespace"),
        (["--url", "https://bot.acme.dev"], "no secret"),
    ],
)
def test_refused_input_is_exit_2_before_mlflow_is_asked(
    run_cli, tmp_path: Path, monkeypatch, args: list[str], said: str
) -> None:
    monkeypatch.delenv("RELEASEBOT_MLFLOW_WEBHOOK_SECRET", raising=False)
    files = {"MISSING": str(tmp_path / "missing"), "NEWLINE": str(_secret(tmp_path, "abc\n"))}
    args = [files.get(a, a) for a in args]
    # Nothing listens there: asking MLflow would be exit 3, not 2.
    result = run_cli("mlflow", "webhook", "create", *args, "--tracking-uri", f"http://127.0.0.1:{free_port()}")
    assert result.code == 2 and said in result.err, result.err


def test_no_tracking_uri_is_exit_2_and_an_unreachable_mlflow_exit_3(run_cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("RELEASEBOT_MLFLOW_WEBHOOK_SECRET", "s")
    missing = run_cli("mlflow", "webhook", "create", "--url", "https://bot.acme.dev")
    assert missing.code == 2 and "no MLflow tracking URI" in missing.err
    down = run_cli(
        "mlflow",
        "webhook",
        "create",
        "--url",
        "https://bot.acme.dev",
        "--tracking-uri",
        f"http://127.0.0.1:{free_port()}",
    )
    assert down.code == 3 and "unreachable" in down.err


def test_mlflow_s_refusal_is_passed_on(client: MlflowClient, mlflow_url: str, run_cli, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    result = run_cli(
        *("mlflow", "webhook", "create", "--url", base, "--tracking-uri", mlflow_url),
        *("--secret-file", _secret(tmp_path, "s"), "--name", "not a name!"),
    )
    assert result.code == 2 and "Webhook name 'not a name!' is invalid" in result.err  # refused: 2
    assert _ours(client, f"{base}/webhooks/mlflow") == []
