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
    assert result.code == 3 and "https://***@127.0.0.1:9/acme/envs.git" in result.err, result.err
    tracking = f"http://admin:{PASSWORD}@127.0.0.1:9"
    result2 = run_cli(
        "--log-level", "debug", "plan", "--repo", env_repo, "--workdir", tmp_path / "w2", "--tracking-uri", tracking
    )
    assert result2.code == 3 and "http://***@127.0.0.1:9" in result2.err, result2.err
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


WEBHOOK_SECRET = "whsec-TEST-0123456789"


def test_no_log_line_request_body_or_commit_of_a_release_carries_a_credential(
    mlflow_url: str, tmp_path: Path, run_cli, monkeypatch, caplog
) -> None:
    """The grep: a release through the real parts (MLflow, git, the GitHub forge against its mocks)
    with every credential in play — a tracking URI with a password in the environment (the
    catalog refuses one), a GitHub token, a webhook secret, a repository URL with a token — and
    a failure whose text quotes the tracking URI said back on a pull request. Nothing any of it
    writes may hold one."""
    from bot.errors import PermanentUpstreamError
    from bot.forge.github import GitHubForge, TokenSource
    from bot.repo import EnvRepo
    from tests.github_api import GitHubMock, example, pull_request
    from tests.test_release_loop import World, git

    world = World(mlflow_url, tmp_path, run_cli, staging_mode="pull-request")
    secret_uri = mlflow_url.replace("http://", f"http://admin:{PASSWORD}@")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", secret_uri)
    monkeypatch.setenv("RELEASEBOT_GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("RELEASEBOT_WEBHOOK_SECRET", WEBHOOK_SECRET)
    repo = {"owner": "acme", "repo": "envs"}
    v1 = world.version(0.9)
    world.alias("candidate", v1)  # dev: a commit on main
    world.alias("champion", v1)  # staging: a pull request
    caplog.set_level(logging.DEBUG)
    outputs: list[str] = []
    with GitHubMock() as gh:
        gh.passthru(mlflow_url)
        gh.passthru(secret_uri)
        gh.add("pulls/list", repo, 200, [])
        gh.add("pulls/create", repo, 201, pull_request(3, "releasebot/staging/fraud/release", "t", "b"))
        gh.add("issues/add-labels", {**repo, "issue_number": 3}, 200, example("label-items"))
        gh.add("issues/create-comment", {**repo, "issue_number": 3}, 201, example("issue-comment"))
        result = run_cli("--log-level", "debug", "reconcile", *world.loop)
        assert result.code == 0, result.err
        outputs += [result.out, result.err]
        # A failure that quotes the tracking URI, said back on the pull request as serve does.
        failure = PermanentUpstreamError(f"MLflow at {secret_uri} refused: token={TOKEN}")
        forge = GitHubForge(EnvRepo(str(world.remote), tmp_path / "work"), "acme/envs", TokenSource(token=TOKEN))
        forge.comment(3, f"releasebot could not do that: {failure}")
        sent = [
            f"{c.request.method} {c.request.url} {c.request.body or b''!r}"
            for c in gh.rsps.calls
            if "api.github.com" in c.request.url
        ]
    assert len(sent) == 4
    assert "***@127.0.0.1" in sent[3]  # the credentials were in play, and said back redacted
    remote = f"https://x-access-token:{TOKEN}@127.0.0.1:9/acme/envs.git"
    failed = run_cli("--log-level", "debug", "plan", "--repo", remote, "--workdir", tmp_path / "w2")
    assert failed.code == 3
    outputs += [failed.out, failed.err]
    commits = git(world.remote, "log", "--all", "--format=%B")
    assert "Release fraud" in commits
    logged = [caplog.text, *(r.getMessage() for r in caplog.records)]
    for where, texts in (("output", outputs), ("log", logged), ("GitHub request", sent), ("commit", [commits])):
        for text in texts:
            for secret in (TOKEN, PASSWORD, WEBHOOK_SECRET):
                assert secret not in text, f"a {where} holds {secret}: {text[:2000]}"
