"""Credentials in URLs never reach output: CLI errors, log lines (text and serve's JSON lines)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bot import logs
from bot.redact import redact
from tests.test_server import GH_SECRET, ML_SECRET, Harness, merged_pr

TOKEN = "ghs_0123456789abcdefTESTTOKEN"
PASSWORD = "pa55-w0rd-TEST"


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (f"https://x-access-token:{TOKEN}@github.com/a/b.git", "https://***@github.com/a/b.git"),
        (f"fatal: unable to access 'http://user:{PASSWORD}@host:5000/': refused", "'http://***@host:5000/'"),
        (f"http://user:p@ss{PASSWORD}@host/x", "http://***@host/x"),  # an unescaped @ in the password
        (f"s3://key:{PASSWORD}@bucket/a and https://{TOKEN}@h", "s3://***@bucket/a and https://***@h"),
        ("git@github.com:acme/envs.git and https://github.com/acme", "git@github.com:acme/envs.git"),
    ],
)
def test_redact_hides_the_userinfo_of_every_url(text: str, clean: str) -> None:
    out = redact(text)
    assert clean in out and TOKEN not in out and PASSWORD not in out


def test_cli_errors_and_logs_never_print_url_credentials(tmp_path: Path, run_cli, monkeypatch, env_repo: Path) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    remote = f"https://x-access-token:{TOKEN}@127.0.0.1:9/acme/envs.git"
    result = run_cli("--log-level", "debug", "plan", "--repo", remote, "--workdir", tmp_path / "w1")
    assert result.code == 1 and "https://***@127.0.0.1:9/acme/envs.git" in result.err, result.err
    tracking = f"http://admin:{PASSWORD}@127.0.0.1:9"
    result2 = run_cli(
        "--log-level", "debug", "plan", "--repo", env_repo, "--workdir", tmp_path / "w2", "--tracking-uri", tracking
    )
    assert result2.code == 1 and "http://***@127.0.0.1:9" in result2.err, result2.err
    for output in (result.out, result.err, result2.out, result2.err):
        assert TOKEN not in output and PASSWORD not in output


def test_serve_logs_json_lines_per_event_and_per_work_item_without_secrets(capsys) -> None:
    handler = logs.configure("info", json_lines=True)
    try:
        h = Harness()
        with h.client:
            assert h.github("pull_request", merged_pr()).status_code == 202
            assert h.github("pull_request", merged_pr(), delivery="d-2", secret="wrong").status_code == 401
            logging.getLogger("releasebot.test").error("cannot reach https://x-access-token:%s@github.com/", TOKEN)
            h.settle()
    finally:
        logging.getLogger().removeHandler(handler)
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    received = [x for x in lines if x.get("logger") == "releasebot.server" and x.get("outcome") == "queued"]
    assert received and received[0]["source"] == "github" and received[0]["queued"] == ["fraud-detector"]
    refused = [x for x in lines if x.get("outcome") == "unauthorized"]
    assert refused and refused[0]["level"] == "warning" and refused[0]["status"] == 401
    work = [x for x in lines if x.get("logger") == "releasebot.work"]
    assert work and work[0]["key"] == "reconcile fraud-detector" and work[0]["outcome"] == "done"
    assert isinstance(work[0]["duration_ms"], float)
    assert "https://***@github.com/" in err
    for secret in (TOKEN, GH_SECRET, ML_SECRET):
        assert secret not in err
