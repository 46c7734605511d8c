"""Every documented exit code, triggered for real, and documented alike everywhere.

0 nothing to do or done; 1 found something; 2 usage or configuration (an upstream's refusal
included); 3 an upstream unavailable; 70 a bug. Findings and failures never share a code: a
``render --check`` difference is 1, a broken catalog under ``render --check`` is 2; drift under
``--fail-on-drift`` is 1 (tests/test_drift.py), MLflow refusing or not answering is 2 or 3.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from bot import cli
from bot.output import EXIT_CODES, Exit
from tests.conftest import PROJECT, tree
from tests.mlflow_server import free_port

README = PROJECT / "README.md"
ENVS = "unknown environment 'nope'; known: dev, staging, production"
MODELS = "unknown model 'nope'; known: fraud-detector, review-sentiment, credit-risk"


@pytest.fixture
def loop(env_repo: Path, tmp_path: Path) -> list[str]:
    return ["--repo", str(env_repo), "--workdir", str(tmp_path / "work")]


@pytest.fixture
def quick_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's client gives up at once instead of retrying a closed port for minutes."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


def test_the_codes_are_documented_alike_in_help_the_module_and_the_readme(run_cli) -> None:
    assert [code for code, _ in EXIT_CODES] == [0, 1, 2, 3, 70]
    shown = run_cli("--help")
    assert shown.code == 0
    help_text = " ".join(shown.out.split())
    readme = README.read_text()
    for code, meaning in EXIT_CODES:
        assert f" {code} {meaning}" in help_text, code
        assert f"| {code} | {meaning} |" in readme, code
        assert f"\n    {code} " in cli.__doc__, code


def test_0_when_there_is_nothing_to_do(env_repo: Path, run_cli) -> None:
    assert run_cli("validate", env_repo).code == 0
    assert run_cli("render", "--check", env_repo).code == 0


def test_1_for_findings_and_2_for_failures_of_the_same_command(env_repo: Path, run_cli) -> None:
    catalog = env_repo / "releasebot.yaml"
    text = catalog.read_text()
    catalog.write_text(text.replace("nodeRole: KarpenterNodeRole-ml-prod", "nodeRole: NewRole"))
    assert run_cli("render", "--check", env_repo).code == 1  # a difference
    catalog.write_text(text.replace("cpu: 500m", "cpu: 0.5"))
    broken = run_cli("render", "--check", env_repo)
    assert broken.code == 2 and "$.models[0].resources.cpu: 0.5 is invalid" in broken.err  # a failure
    assert run_cli("validate", env_repo).code == 1  # validate's finding is the same catalog problem


def test_2_for_a_command_line_argparse_refuses(run_cli) -> None:
    result = run_cli("plan", "--no-such-flag")
    assert result.code == 2 and "unrecognized arguments: --no-such-flag" in result.err
    assert run_cli("completion", "tcsh").code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "--env", "nope"], ENVS),
        (["plan", "--capacity", "--env", "nope"], ENVS),
        (["plan", "--model", "nope"], MODELS),
        (
            ["plan", "--env", "dev", "--model", "credit-risk"],
            "unknown model 'credit-risk' in environment 'dev'; known: fraud-detector, review-sentiment",
        ),
        (["reconcile", "--env", "nope"], ENVS),
        (["reconcile", "--model", "nope"], MODELS),
        (["rollback", "fraud-detector", "--env", "nope"], ENVS),
        (
            ["rollback", "nope", "--env", "staging"],
            "unknown model 'nope' in environment 'staging'; known: fraud-detector, review-sentiment, credit-risk",
        ),
        (["unblock", "fraud-detector", "--env", "nope"], ENVS),
        (["history", "fraud-detector", "--env", "nope"], ENVS),
        (["history", "nope"], MODELS),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_2_for_an_unknown_environment_or_model_naming_the_known_ones(
    argv: list[str], message: str, loop: list[str], env_repo: Path, run_cli
) -> None:
    before = tree(env_repo)
    result = run_cli(*argv, *loop)
    assert result.code == 2, result.err
    assert result.err == f"releasebot: {message}; nothing was written\n"
    assert result.out == "" and tree(env_repo) == before


def test_2_in_json_mode_is_a_json_error_on_stderr_and_nothing_on_stdout(loop: list[str], run_cli) -> None:
    result = run_cli("reconcile", "--env", "nope", *loop, "--output", "json")
    assert result.code == 2 and result.out == ""
    [line] = result.err.splitlines()
    assert json.loads(line) == {"error": {"kind": "usage", "exit_code": 2, "message": ENVS, "written": []}}


def test_2_for_a_catalog_with_problems_lists_them_in_json_mode(tmp_path: Path, run_cli, example_text: str) -> None:
    from tests.conftest import copy_catalog

    catalog = copy_catalog(tmp_path, example_text.replace("cpu: 500m", "cpu: 0.5"))
    result = run_cli("init", tmp_path / "out", "--catalog", catalog, "--output", "json")
    assert result.code == 2 and result.out == ""
    error = json.loads(result.err)["error"]
    assert error["kind"] == "config" and error["exit_code"] == 2
    assert [(p["path"], p["rule"]) for p in error["problems"]] == [("$.models[0].resources.cpu", "schema")]


def test_2_when_an_upstream_refuses_and_3_when_it_does_not_answer(
    mlflow_url: str, tmp_path: Path, run_cli, quick_mlflow
) -> None:
    window = tmp_path / "window.csv"
    window.write_text("a\n1\n")
    drift = ["drift", "run", "--model", "m", "--env", "dev", "--alias", "champion", "--current", window]
    drift += ["--fail-on-drift"]  # drift would be 1; neither of these is drift
    refused = run_cli(*drift, "--registered-model", "never-registered-model", "--tracking-uri", mlflow_url)
    assert refused.code == 2, refused.err
    assert "never-registered-model" in refused.err
    closed = f"http://127.0.0.1:{free_port()}"
    silent = run_cli(*drift, "--tracking-uri", closed, "--output", "json")
    assert silent.code == 3, silent.err
    assert json.loads(silent.err.splitlines()[-1])["error"]["kind"] == "unavailable" and silent.out == ""


def test_3_when_mlflow_does_not_answer(loop: list[str], run_cli, quick_mlflow) -> None:
    result = run_cli("plan", *loop, "--tracking-uri", f"http://127.0.0.1:{free_port()}")
    assert result.code == 3, result.err
    assert "unreachable" in result.err and result.out == ""


def test_3_when_the_git_remote_does_not_answer(tmp_path: Path, run_cli) -> None:
    remote = f"http://127.0.0.1:{free_port()}/acme/envs.git"
    result = run_cli("reconcile", "--repo", remote, "--workdir", tmp_path / "w")
    assert result.code == 3, result.err
    assert "cannot reach the environments repo" in result.err


def test_3_when_kfp_does_not_answer(run_cli) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/apis/v2beta1/runs"
    result = run_cli("retrain", "submit", "--endpoint", endpoint, "--display-name", "r", "--pipeline-id", "p")
    assert result.code == 3, result.err


def test_70_for_a_bug_with_its_traceback(env_repo: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        return {}["no such key"]

    monkeypatch.setattr(cli, "validate_repo", broken)
    result = run_cli("validate", env_repo)
    assert result.code == Exit.INTERNAL == 70
    assert "Traceback (most recent call last)" in result.err and "KeyError: 'no such key'" in result.err
    assert result.err.rstrip().endswith("this is a bug (exit 70); please report it with the traceback above")


def test_the_console_script_exits_with_the_code(env_repo: Path, tmp_path: Path) -> None:
    import subprocess

    script = Path(sys.executable).parent / "releasebot"
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run(
        [str(script), "plan", "--repo", str(env_repo), "--workdir", str(tmp_path / "w"), "--env", "nope"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2 and ENVS in done.stderr


def test_2_when_serve_cannot_listen(env_repo: Path, tmp_path: Path) -> None:
    import socket
    import subprocess

    env = {**os.environ, "RELEASEBOT_GITHUB_WEBHOOK_SECRET": "gh", "RELEASEBOT_MLFLOW_WEBHOOK_SECRET": "ml"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["serve", "--repo", str(env_repo), "--workdir", str(tmp_path / "w"), "--port", str(port)]
        done = subprocess.run(
            [str(Path(sys.executable).parent / "releasebot"), *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    # uvicorn's own code for this is 3, which would say "try again later".
    assert done.returncode == 2, done.stderr
    assert f"could not listen on 127.0.0.1:{port}" in done.stderr and "address already in use" in done.stderr


def test_0_for_the_history_of_a_model_that_left_the_catalog(env_repo: Path, loop: list[str], run_cli) -> None:
    import subprocess

    trailers = "Releasebot-Model: retired\nReleasebot-Version: 3\nReleasebot-Run: r1\nReleasebot-Environment: legacy"
    git = ["git", "-C", str(env_repo), "-c", "user.name=P", "-c", "user.email=p@example.com"]
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", f"Release retired v3\n\n{trailers}"], check=True)
    result = run_cli("history", "retired", "--env", "legacy", *loop)
    assert result.code == 0, result.err
    assert result.out.splitlines()[1].split()[1:3] == ["legacy", "3"]
    assert run_cli("history", "retired", "--env", "nope", *loop).err.startswith(f"releasebot: {ENVS}")
