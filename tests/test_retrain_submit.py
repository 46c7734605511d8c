"""The retrain CronJobs submit what Kubeflow Pipelines describes: each generated job's command line,
composed from the Dockerfile's ENTRYPOINT and the manifest as Kubernetes composes it, runs against
a KFP stand-in on 127.0.0.1 that holds the request to ``kfp-server-api`` (the API client KFP
publishes) and to the request that client itself sends for the same run.

The token Secret is mounted by the kubelet, which these tests are not: the manifest's volume must
name the catalog's Secret and key and be mounted where the job's environment says, and the test
puts the Secret's content at a local path standing in for that mount.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import pipelines, yamlio
from bot.errors import ConfigError
from tests import kubeexec
from tests.conftest import FIXTURES, PROJECT, copy_catalog
from tests.kfp_api import RUNS_PATH, KfpServer, reference_request, run_problems

DOCKERFILE = PROJECT / "Dockerfile"
EXAMPLE_ENDPOINT = "http://ml-pipeline.kubeflow.svc.cluster.local:8888/apis/v2beta1/runs"
TOKEN = "kfp-bearer-3f9a"


def _init(tmp_path: Path, run_cli, text: str) -> Path:
    repo = tmp_path / "envs"
    result = run_cli("init", repo, "--catalog", copy_catalog(tmp_path, text))
    assert result.code == 0, result.err
    return repo


def _load(path: Path) -> dict:
    return yamlio.to_plain(yamlio.load(path.read_text(), path.name))


def _pod(manifest: dict) -> dict:
    return manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _run(path: Path, tmp_path: Path, token_file: Path | None = None) -> kubeexec.Ran:
    [container] = kubeexec.pod_containers(_load(path))
    where = tmp_path / "run" / path.parent.name / path.parent.parent.name
    (where / "cwd").mkdir(parents=True, exist_ok=True)
    (where / "tmp").mkdir(parents=True, exist_ok=True)
    overrides = {pipelines.TOKEN_FILE_ENV: str(token_file)} if token_file else {}
    ran = kubeexec.run(DOCKERFILE, container, where / "cwd", where / "tmp", overrides=overrides, timeout=120)
    assert list((where / "cwd").iterdir()) == [], "the job wrote to its read-only root filesystem"
    return ran


def _mebibytes(quantity: str) -> int:
    assert quantity.endswith("Mi"), quantity
    return int(quantity[:-2]) * 2**20


def test_every_retrain_cronjob_submits_the_run_kfp_describes_with_the_secret_token(
    tmp_path: Path, run_cli, example_text: str
) -> None:
    with KfpServer() as kfp:
        repo = _init(tmp_path, run_cli, example_text.replace(EXAMPLE_ENDPOINT, kfp.url))
        paths = sorted(repo.glob("*/*/retrain-cronjob.yaml"))
        assert [p.relative_to(repo).parts[0] for p in paths] == ["dev", "production", "staging"]
        secret = tmp_path / "secret-token"
        secret.write_text(TOKEN + "\n")  # `kubectl create secret --from-file` keeps the newline
        for path in paths:
            pod = _pod(_load(path))
            [container] = pod["containers"]
            # The kubelet's part, checked on the manifest: the catalog's Secret, mounted where the
            # job is told to read it.
            [volume] = [v for v in pod["volumes"] if "secret" in v]
            assert volume["secret"] == {"secretName": "kfp-token", "items": [{"key": "token", "path": "token"}]}
            [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
            env = {e["name"]: e["value"] for e in container["env"]}
            assert env[pipelines.TOKEN_FILE_ENV] == f"{mount['mountPath']}/token" and mount["readOnly"] is True

            ran = _run(path, tmp_path, token_file=secret)
            where = path.relative_to(repo)
            assert ran.returncode == 0, f"{where}: {ran.args}\n{ran.stderr[-3000:]}"
            assert f"KFP run run-{len(kfp.seen)} of pipeline 6f1c2a0e-fraud-training" in ran.stdout
            limit = _mebibytes(container["resources"]["limits"]["memory"])
            peak = f"{where}: peak {ran.max_rss >> 20} MiB against a {limit >> 20} MiB limit"
            assert ran.max_rss < 0.75 * limit, peak
        assert len(kfp.seen) == 3
        for seen in kfp.seen:
            assert (seen.method, seen.path) == ("POST", RUNS_PATH)
            assert run_problems(seen.body) == []
            assert seen.headers["authorization"] == f"Bearer {TOKEN}"
            assert seen.headers["content-type"] == "application/json"
        assert {s.body["display_name"] for s in kfp.seen} == {
            f"fraud-detector-retrain-{env}" for env in ("dev", "staging", "production")
        }

        # KFP's own client, asked for the same run, sends the same request.
        ours = next(s for s in kfp.seen if s.body["display_name"] == "fraud-detector-retrain-dev")
        reference_request(
            kfp.port,
            TOKEN,
            display_name="fraud-detector-retrain-dev",
            pipeline_id="6f1c2a0e-fraud-training",
            description="releasebot: fraud-detector drifted in dev",
            parameters={"lookback_days": 30},
        )
        theirs = kfp.seen[-1]
        assert (ours.path, ours.body) == (theirs.path, theirs.body)
        assert ours.headers["authorization"] == theirs.headers["authorization"]


def test_without_a_token_secret_the_run_goes_without_authorization_and_the_log_says_so(
    tmp_path: Path, run_cli, example_text: str
) -> None:
    text = example_text.replace(EXAMPLE_ENDPOINT, "http://127.0.0.1:1/apis/v2beta1/runs")
    start = text.index("  tokenSecret:", text.index("\npipelines:"))
    text = text[:start] + text[text.index("\n", text.index("key:", start)) + 1 :]
    with KfpServer() as kfp:
        repo = _init(tmp_path, run_cli, text.replace("http://127.0.0.1:1/apis/v2beta1/runs", kfp.url))
        path = repo / "staging/fraud-detector/retrain-cronjob.yaml"
        pod = _pod(_load(path))
        assert [v["name"] for v in pod["volumes"]] == ["tmp"]
        assert "env" not in pod["containers"][0]
        ran = _run(path, tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "no pipelines token" in ran.stderr and "without an Authorization header" in ran.stderr
    [seen] = kfp.seen
    assert "authorization" not in seen.headers
    assert run_problems(seen.body) == []


def test_a_refused_run_fails_the_job_at_once_and_an_outage_is_left_to_backoff(
    tmp_path: Path, run_cli, example_text: str
) -> None:
    with KfpServer() as kfp:
        repo = _init(tmp_path, run_cli, example_text.replace(EXAMPLE_ENDPOINT, kfp.url))
        path = repo / "production/fraud-detector/retrain-cronjob.yaml"
        manifest = _load(path)
        [rule] = manifest["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
        assert rule["action"] == "FailJob" and rule["onExitCodes"]["operator"] == "In"
        fail_job = set(rule["onExitCodes"]["values"])
        secret = tmp_path / "token"
        secret.write_text(TOKEN)

        # KFP's error body is a google.rpc.Status; its message reaches the job's log.
        kfp.answer = (400, {"code": 3, "message": "Failed to create a new run: pipeline not found", "details": []})
        refused = _run(path, tmp_path, token_file=secret)
        assert refused.returncode in fail_job
        assert "KFP answered 400" in refused.stderr and "pipeline not found" in refused.stderr
        assert TOKEN not in refused.stderr + refused.stdout

        kfp.answer = (503, {"code": 14, "message": "upstream connect error"})
        outage = _run(path, tmp_path, token_file=secret)
        assert outage.returncode not in fail_job and outage.returncode != 0
        assert "KFP answered 503" in outage.stderr
    # Nothing listens any more: a refused connection is an outage too.
    gone = _run(path, tmp_path, token_file=secret)
    assert gone.returncode == outage.returncode
    assert "failed" in gone.stderr

    secret.write_text("")
    empty = _run(path, tmp_path, token_file=secret)
    assert empty.returncode in fail_job and "is empty" in empty.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [("lookback_days=30", ("lookback_days", 30)), ('region="eu"', ("region", "eu")), ("full=true", ("full", True))],
)
def test_parameters_keep_their_json_type(text: str, expected: tuple) -> None:
    assert pipelines.parse_parameter(text) == expected
    assert pipelines.parse_parameter(pipelines.parameter_arg(*expected)) == expected


@pytest.mark.parametrize("text", ["lookback_days", "=3", "region=eu", "x={}", "x=null"])
def test_malformed_parameters_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--parameter"):
        pipelines.parse_parameter(text)


def test_render_moves_a_curl_retrain_job_to_the_submit_verb_keeping_the_drift_policys_fields(
    tmp_path: Path, run_cli, example_text: str
) -> None:
    with KfpServer() as kfp:
        repo = _init(tmp_path, run_cli, example_text.replace(EXAMPLE_ENDPOINT, kfp.url))
        path = repo / "dev/fraud-detector/retrain-cronjob.yaml"
        old = (FIXTURES / "retrain-cronjob-curl.yaml").read_text().replace(EXAMPLE_ENDPOINT, kfp.url)
        # Drift had unsuspended it: that field is the drift policy's, not the catalog's.
        path.write_text(old.replace("suspend: true", "suspend: false"))
        result = run_cli("render", repo)
        assert result.code == 0, result.err
        assert "update dev/fraud-detector/retrain-cronjob.yaml" in result.out
        manifest = _load(path)
        assert manifest["spec"]["suspend"] is False
        assert manifest["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"][0]["action"] == "FailJob"
        assert run_cli("validate", repo).code == 0
        secret = tmp_path / "token"
        secret.write_text(TOKEN)
        ran = _run(path, tmp_path, token_file=secret)
    assert ran.returncode == 0, ran.stderr
    [seen] = kfp.seen
    assert run_problems(seen.body) == [] and seen.headers["authorization"] == f"Bearer {TOKEN}"
