"""The release loop against a real MLflow server and real git repositories.

Each test registers its own model (the server is shared by the session), creates an environments
repo with ``releasebot init``, makes a bare clone of it the remote, and drives
``releasebot plan/reconcile/history`` as a user would.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from bot import yamlio
from bot.validate import check_manifest
from tests.conftest import EXAMPLE_CATALOG, PROJECT, seed_remote

CATALOG = """version: 1
registry:
  trackingUri: {url}
  storageUriMap:
    "s3://raw-artifacts/": s3://serving-artifacts/
repository:
  url: https://github.com/acme/envs.git
cluster:
  name: test
karpenter:
  nodeRole: NodeRole
environments:
  - name: dev
    alias: candidate
    namespace: models-dev
    writeBack: commit
  - name: staging
    alias: champion
    namespace: models-staging
    writeBack: branch
    promotion: independent  # these tests are about one environment's loop; the order has its own
models:
  - name: fraud
    registeredModel: {registered}
    serving:
      format: mlflow
    resources:
      cpu: 250m
      memory: 512Mi
    replicas:
      min: 1
      max: 2
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


class World:
    """A registered model in the shared MLflow server and an environments repo for it."""

    def __init__(self, url: str, tmp: Path, run_cli, staging_mode: str = "branch", extra_model: str = "") -> None:
        from mlflow.tracking import MlflowClient

        self.url, self.tmp, self.run_cli = url, tmp, run_cli
        self.name = f"fraud-{uuid.uuid4().hex[:8]}"
        self.client = MlflowClient(url, registry_uri=url)
        self.client.create_registered_model(self.name)
        text = CATALOG.format(url=url, registered=self.name) + extra_model + "blueprints: ./blueprints\n"
        own = tmp / "catalog" / "blueprints" / "karpenter"  # the catalog's own blueprints, in the repo
        own.mkdir(parents=True)
        (own / "ec2nodeclass.yaml").write_text((PROJECT / "blueprints/karpenter/ec2nodeclass.yaml").read_text())
        text = text.replace("    writeBack: branch\n", f"    writeBack: {staging_mode}\n")
        self.remote = seed_remote(tmp, run_cli, text)
        self.loop = ["--repo", str(self.remote), "--workdir", str(tmp / "work")]

    def version(self, accuracy: float, source: str | None = None) -> str:
        # The explicit client only: MLflow's fluent API keeps process-wide state (active experiment).
        run_id = self.client.create_run("0").info.run_id
        self.client.log_metric(run_id, "accuracy", accuracy)
        self.client.log_metric(run_id, "f1", accuracy - 0.05)
        self.client.log_param(run_id, "C", "1.0")
        self.client.set_terminated(run_id)
        uri = (source or f"s3://models/{self.name}/{uuid.uuid4().hex[:6]}").replace("{run_id}", run_id)
        mv = self.client.create_model_version(self.name, uri, run_id=run_id)
        return str(mv.version)

    def alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.name, alias, version)

    def refs(self) -> dict[str, str]:
        out = git(self.remote, "for-each-ref", "--format=%(refname) %(objectname)")
        return dict(line.split() for line in out.splitlines())

    def reconcile(self, *extra: str):
        return self.run_cli("reconcile", *self.loop, *extra)

    def show(self, ref: str, path: str) -> str:
        return git(self.remote, "show", f"{ref}:{path}")

    def merge(self, branch: str) -> None:
        """A person merges the bot's branch into main."""
        clone = self.tmp / f"person-{uuid.uuid4().hex[:6]}"
        subprocess.run(["git", "clone", "--quiet", str(self.remote), str(clone)], check=True)
        git(
            clone,
            "-c",
            "user.name=Person",
            "-c",
            "user.email=person@example.com",
            "merge",
            "--quiet",
            "--no-ff",
            "-m",
            f"Merge {branch}",
            f"origin/{branch}",
        )
        git(clone, "push", "--quiet", "origin", "main")


@pytest.fixture
def world(mlflow_url: str, tmp_path: Path, run_cli) -> World:
    return World(mlflow_url, tmp_path, run_cli)


STAGING = "refs/heads/releasebot/staging/fraud/release"
ISVC = "staging/fraud/inferenceservice.yaml"


def test_setting_an_alias_yields_exactly_one_change(world: World) -> None:
    before = world.refs()
    v1 = world.version(0.91)
    world.alias("champion", v1)
    result = world.reconcile()
    assert result.code == 0, result.err
    after = world.refs()
    assert set(after) - set(before) == {STAGING}
    assert after["refs/heads/main"] == before["refs/heads/main"]
    assert git(world.remote, "rev-list", "--count", f"main..{STAGING}").strip() == "1"
    message = git(world.remote, "log", "-1", "--format=%B", STAGING)
    assert f"Releasebot-Version: {v1}" in message and "Releasebot-Environment: staging" in message
    assert "Releasebot-Model: fraud" in message and "Releasebot-Run: " in message


def test_reconciling_twice_writes_nothing_the_second_time(world: World) -> None:
    world.alias("champion", world.version(0.9))
    assert world.reconcile().code == 0
    refs = world.refs()
    second = world.reconcile()
    assert second.code == 0 and "Nothing to change." in second.out
    assert world.refs() == refs


def test_moving_the_alias_before_merge_updates_the_same_branch(world: World) -> None:
    v2, v3 = world.version(0.90), world.version(0.93)
    world.alias("champion", v2)
    assert world.reconcile().code == 0
    world.alias("champion", v3)
    result = world.reconcile()
    assert result.code == 0
    assert f"(supersedes v{v2})" in result.out
    refs = world.refs()
    assert [r for r in refs if r.startswith("refs/heads/releasebot/")] == [STAGING]
    assert git(world.remote, "rev-list", "--count", f"main..{STAGING}").strip() == "1"  # rebuilt, not stacked
    assert f"releasebot.dev/version: '{v3}'" in world.show(STAGING, ISVC)


def test_moving_the_alias_back_to_the_deployed_version_closes_the_branch(world: World) -> None:
    v1, v2 = world.version(0.90), world.version(0.92)
    world.alias("champion", v1)
    assert world.reconcile().code == 0
    world.merge("releasebot/staging/fraud/release")
    world.alias("champion", v2)
    assert world.reconcile().code == 0
    assert STAGING in world.refs()
    world.alias("champion", v1)
    result = world.reconcile()
    assert result.code == 0
    assert f"main already serves version {v1}" in result.out
    assert STAGING not in world.refs()


def test_commit_mode_commits_to_main_with_trailers_and_history_reads_them(world: World) -> None:
    v1, v2 = world.version(0.8), world.version(0.85)
    for v in (v1, v2):
        world.alias("candidate", v)
        assert world.reconcile().code == 0
    assert f"releasebot.dev/version: '{v2}'" in world.show("main", "dev/fraud/inferenceservice.yaml")
    result = world.run_cli("history", "fraud", "--env", "dev", *world.loop)
    lines = result.out.splitlines()
    assert [line.split()[2] for line in lines[1:]] == [v2, v1]


def test_changed_manifest_differs_only_in_owned_fields_and_validates(world: World) -> None:
    world.alias("champion", world.version(0.9, source="s3://raw-artifacts/3/models/m-abc/artifacts"))
    assert world.reconcile().code == 0
    old, new = world.show("main", ISVC), world.show(STAGING, ISVC)
    removed = [line for line in old.splitlines() if line not in new.splitlines()]
    added = [line for line in new.splitlines() if line not in old.splitlines()]
    assert removed == []
    assert [a.split(":")[0].strip() for a in added] == ["releasebot.dev/version", "releasebot.dev/run-id", "storageUri"]
    assert "storageUri: s3://serving-artifacts/3/models/m-abc/artifacts" in new  # mapped by the catalog
    assert check_manifest(ISVC, yamlio.load(new, ISVC)) == []


def test_a_persons_commit_on_the_bot_branch_stops_rewrites(world: World) -> None:
    v1, v2 = world.version(0.9), world.version(0.95)
    world.alias("champion", v1)
    assert world.reconcile().code == 0
    clone = world.tmp / "person"
    subprocess.run(
        ["git", "clone", "--quiet", "-b", "releasebot/staging/fraud/release", str(world.remote), str(clone)], check=True
    )
    (clone / ISVC).write_text((clone / ISVC).read_text() + "# tuned by hand\n")
    git(clone, "-c", "user.name=Person", "-c", "user.email=person@example.com", "commit", "-qam", "tweak")
    git(clone, "push", "--quiet")
    head = world.refs()[STAGING]
    world.alias("champion", v2)
    result = world.reconcile()
    assert result.code == 0
    assert "has commits by a person" in result.err and "will not rewrite it" in result.err
    assert world.refs()[STAGING] == head


def test_a_deleted_model_version_is_a_clear_error_and_writes_nothing(world: World) -> None:
    v1, v2 = world.version(0.9), world.version(0.91)
    world.alias("candidate", v1)
    assert world.reconcile().code == 0
    world.alias("candidate", v2)
    world.client.delete_model_version(world.name, v2)  # MLflow drops the alias with it, silently
    refs = world.refs()
    result = world.reconcile()
    assert result.code == 1
    assert "alias @candidate is not set" in result.err and "deleted" in result.err
    assert world.refs() == refs


def test_unreachable_mlflow_is_a_clear_error_and_writes_nothing(world: World) -> None:
    from tests.mlflow_server import free_port

    refs = world.refs()
    result = world.reconcile("--tracking-uri", f"http://127.0.0.1:{free_port()}")
    assert result.code == 3
    assert "unreachable" in result.err and "nothing was written" in result.err
    assert world.refs() == refs


def test_an_artifact_location_kserve_cannot_read_is_refused(world: World) -> None:
    # The server keeps artifacts on its own disk: the download URI is a local path.
    world.alias("champion", world.version(0.9, source="runs:/{run_id}/model"))
    refs = world.refs()
    result = world.reconcile()
    assert result.code == 1
    assert "KServe cannot read the artifact location" in result.err
    assert "map it with registry.storageUriMap" in result.err
    assert world.refs() == refs


@pytest.mark.json_output("plan")
def test_plan_writes_nothing_and_speaks_json(world: World) -> None:
    world.alias("champion", world.version(0.9))
    refs = world.refs()
    result = world.run_cli("plan", *world.loop, "--output", "json")
    assert result.code == 0
    changes = result.json()["changes"]
    assert [(c["environment"], c["write_back"], c["version"], c["previous"]) for c in changes] == [
        ("staging", "branch", "1", None)
    ]
    assert world.refs() == refs


def test_example_catalog_is_untouched_by_the_loop() -> None:
    assert "trackingUri: http://mlflow.mlflow.svc.cluster.local:5000" in EXAMPLE_CATALOG.read_text()


def test_mlflow_proxied_artifacts_need_a_mapping() -> None:
    from bot.errors import PermanentUpstreamError
    from bot.registry import map_storage_uri

    uri = "mlflow-artifacts:/0/models/m-1/artifacts"
    with pytest.raises(PermanentUpstreamError, match=r"map it with registry\.storageUriMap"):
        map_storage_uri(uri, (), "m v1")
    assert map_storage_uri(uri, [("mlflow-artifacts:/", "s3://b/a/")], "m v1") == "s3://b/a/0/models/m-1/artifacts"


def test_rollback_pins_the_previous_version_until_unblocked(world: World) -> None:
    v1, v2, v3 = world.version(0.9), world.version(0.8), world.version(0.95)
    for v in (v1, v2):
        world.alias("candidate", v)
        assert world.reconcile().code == 0
    result = world.run_cli("rollback", "fraud", "--env", "dev", *world.loop)
    assert result.code == 0, result.err
    dev = world.show("main", "dev/fraud/inferenceservice.yaml")
    assert f"releasebot.dev/pinned-version: '{v1}'" in dev and f"releasebot.dev/blocked-versions: '{v2}'" in dev
    assert f"releasebot.dev/version: '{v1}'" in dev
    # While pinned, a new alias move does not release.
    world.alias("candidate", v3)
    refs = world.refs()
    assert world.reconcile().code == 0 and world.refs() == refs
    # Unblocking hands control back to the alias.
    assert world.run_cli("unblock", "fraud", "--env", "dev", *world.loop).code == 0
    assert "pinned-version" not in world.show("main", "dev/fraud/inferenceservice.yaml")
    assert world.reconcile().code == 0
    assert f"releasebot.dev/version: '{v3}'" in world.show("main", "dev/fraud/inferenceservice.yaml")
    history = world.run_cli("history", "fraud", "--env", "dev", *world.loop).out.splitlines()[1:]
    assert [line.split()[2] for line in history] == [v3, v1, v2, v1]


def test_a_blocked_version_is_not_released_again(world: World) -> None:
    v1, v2 = world.version(0.9), world.version(0.8)
    for v in (v1, v2):
        world.alias("candidate", v)
        assert world.reconcile().code == 0
    assert world.run_cli("rollback", "fraud", "--env", "dev", "--to", v1, *world.loop).code == 0
    assert world.run_cli("unblock", "fraud", "--env", "dev", "--version", "99", *world.loop).code == 2
    result = world.run_cli("plan", *world.loop, "--env", "dev")
    assert "pinned" not in result.out  # the pin holds v1, alias v2 is blocked: nothing to do
    assert result.code == 0


def test_pull_request_mode_end_to_end(mlflow_url: str, tmp_path: Path, run_cli, monkeypatch) -> None:
    from tests.github_api import GitHubMock, example, pull_request, pull_simple

    world = World(mlflow_url, tmp_path, run_cli, staging_mode="pull-request")
    monkeypatch.setenv("RELEASEBOT_GITHUB_TOKEN", "ghs_test")
    repo = {"owner": "acme", "repo": "envs"}
    query = {"state": "open", "head": "acme:releasebot/staging/fraud/release", "base": "main"}
    branch = "releasebot/staging/fraud/release"
    v1, v2 = world.version(0.9), world.version(0.93)
    world.alias("champion", v1)
    bodies: list[dict] = []
    with GitHubMock() as gh:
        gh.passthru(mlflow_url)
        gh.add("pulls/list", repo, 200, [], query=query)
        gh.add(
            "pulls/create", repo, 201, pull_request(3, branch, "t", "b"), check_request=lambda h, b: bodies.append(b)
        )
        gh.add("issues/add-labels", {**repo, "issue_number": 3}, 200, example("label-items"))
        result = world.reconcile()
        assert result.code == 0, result.err
        new_release_calls = gh.checked
    assert "opened pull request #3" in result.out
    assert STAGING in world.refs()
    assert bodies[0]["title"] == f"Release fraud v{v1} to staging"
    assert "### Metrics" in bodies[0]["body"] and "| accuracy |" in bodies[0]["body"]
    run_id = world.client.get_model_version(world.name, v1).run_id
    assert f"{mlflow_url}/#/experiments/0/runs/{run_id}" in bodies[0]["body"]  # the run's own experiment
    assert new_release_calls == 3

    with GitHubMock() as gh:  # nothing registered: any GitHub call would fail the test
        gh.passthru(mlflow_url)
        assert world.reconcile().code == 0
        assert gh.checked == 0  # a no-op reconcile makes no GitHub call

    world.alias("champion", v2)
    with GitHubMock() as gh:
        gh.passthru(mlflow_url)
        gh.add("pulls/list", repo, 200, [pull_simple(3, branch, bodies[0]["title"], bodies[0]["body"])], query=query)
        gh.add(
            "pulls/update",
            {**repo, "pull_number": 3},
            200,
            pull_request(3, branch, "t", "b"),
            check_request=lambda h, b: bodies.append(b),
        )
        result = world.reconcile()
        assert result.code == 0, result.err
        assert gh.checked == 2
    assert bodies[1]["title"] == f"Release fraud v{v2} to staging (supersedes v{v1})"
    assert f"releasebot.dev/version: '{v2}'" in world.show(STAGING, ISVC)


def test_rollback_of_a_model_not_in_the_environment_is_refused(world: World) -> None:
    result = world.run_cli("rollback", "ghost", "--env", "dev", *world.loop)
    assert result.code == 2 and "unknown model 'ghost' in environment 'dev'; known: fraud" in result.err


def test_main_moving_during_a_reconcile_is_replanned_not_overwritten(world: World, monkeypatch) -> None:
    import bot.reconcile

    v1 = world.version(0.9)
    world.alias("candidate", v1)
    original, calls = bot.reconcile.observe_plan, []

    def racing(*args, **kwargs):
        planned = original(*args, **kwargs)
        if not calls:  # a person pushes to main after releasebot planned, before it pushes
            clone = world.tmp / "racer"
            subprocess.run(["git", "clone", "--quiet", str(world.remote), str(clone)], check=True)
            path = clone / "dev/fraud/inferenceservice.yaml"
            path.write_text(path.read_text() + "# tuned by a person\n")
            git(clone, "-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qam", "tune")
            git(clone, "push", "--quiet", "origin", "main")
        calls.append(1)
        return planned

    monkeypatch.setattr(bot.reconcile, "observe_plan", racing)
    result = world.reconcile()
    assert result.code == 0, result.err
    assert len(calls) == 2  # the rejected push led to a fresh plan
    final = world.show("main", "dev/fraud/inferenceservice.yaml")
    assert "# tuned by a person" in final and f"releasebot.dev/version: '{v1}'" in final
