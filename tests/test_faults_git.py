"""Faults injected against real git and a real MLflow server: each test names the fault it injects
and what releasebot must do to survive it.

The racing writer is a real ``pre-receive`` hook in the bare remote; the second process on one
workdir is a real process. Nothing here is mocked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_release_loop import World, git

RELEASEBOT = str(Path(sys.executable).parent / "releasebot")
DEV_ISVC = "dev/fraud/inferenceservice.yaml"


@pytest.fixture
def world(mlflow_url: str, tmp_path: Path, run_cli) -> World:
    return World(mlflow_url, tmp_path, run_cli)


def _race_main_once(world: World) -> str:
    """Arrange for another writer to move main while our push is being received, once.

    A person's commit is parked under ``refs/racer/main``; the remote's ``pre-receive`` hook moves
    main to it the first time anything is pushed. Git then fails our ref update with "cannot lock
    ref ... but expected", after the remote advertised the old main: no fetch of ours could have
    seen it coming. Returns the person's commit.
    """
    clone = world.tmp / "racer"
    subprocess.run(["git", "clone", "--quiet", str(world.remote), str(clone)], check=True)
    (clone / "NOTES.md").write_text("written by a person while releasebot pushed\n")
    git(clone, "add", "NOTES.md")
    git(clone, "-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qm", "notes")
    git(clone, "push", "--quiet", "origin", "HEAD:refs/racer/main")
    hook = world.remote / "hooks" / "pre-receive"
    # The hook runs inside git's object quarantine, where ref updates are refused; the racer is
    # another writer, so it steps outside it.
    hook.write_text(
        "#!/bin/sh\n"
        'if [ ! -e "$GIT_DIR/raced" ]; then\n'
        '  touch "$GIT_DIR/raced"\n'
        "  env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES \\\n"
        "    git update-ref refs/heads/main refs/racer/main\n"
        "fi\n"
    )
    hook.chmod(0o755)
    return git(clone, "rev-parse", "HEAD").strip()


def test_main_moved_by_another_push_during_ours_is_refetched_and_replanned(world: World) -> None:
    v1 = world.version(0.9)
    world.alias("candidate", v1)
    person = _race_main_once(world)
    result = world.reconcile()
    assert result.code == 0, result.err
    assert (world.remote / "raced").exists()  # the race happened
    assert "cannot lock ref" not in result.err
    # The release landed on top of the person's commit, which survived.
    assert git(world.remote, "rev-parse", "main~1").strip() == person
    assert f"releasebot.dev/version: '{v1}'" in world.show("main", DEV_ISVC)
    assert world.show("main", "NOTES.md").startswith("written by a person")


def test_a_push_refused_by_the_remote_for_another_reason_is_not_retried_as_a_race(world: World) -> None:
    world.alias("candidate", world.version(0.9))
    hook = world.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\necho x >> \"$GIT_DIR/refusals\"\nexit 1\n")
    hook.chmod(0o755)
    refs = world.refs()
    result = world.reconcile()
    assert result.code == 2  # refused: the same push would be refused again
    assert "main is protected" in result.err and "Traceback" not in result.err
    assert (world.remote / "refusals").read_text() == "x\n"  # asked once: a refusal is not a race
    assert world.refs() == refs


def _releasebot(world: World, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [RELEASEBOT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=world.tmp,
    )


def test_a_workdir_held_by_another_process_fails_clearly_after_a_bounded_wait(world: World) -> None:
    world.alias("candidate", world.version(0.9))
    workdir = world.tmp / "work"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from bot.repo import WorkdirLock; "
            "WorkdirLock(Path(sys.argv[1])).acquire(); print('held', flush=True); sys.stdin.read()",
            str(workdir),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        refs = world.refs()
        proc = _releasebot(world, "reconcile", *world.loop, env={"RELEASEBOT_WORKDIR_WAIT": "0.5"})
        _, err = proc.communicate(timeout=120)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert proc.returncode == 3, err  # busy: the same command goes through later
    assert f"another releasebot process is using the workdir {workdir}" in err
    assert "Traceback" not in err and "BUG" not in err
    assert world.refs() == refs
    # Once the other process is gone, the same command goes through.
    again = _releasebot(world, "reconcile", *world.loop)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err


def test_two_processes_on_one_workdir_take_turns(world: World) -> None:
    v1 = world.version(0.9)
    world.alias("candidate", v1)
    world.alias("champion", v1)
    # Both start on a workdir that does not exist yet: even the first clone is contended.
    procs = [_releasebot(world, "reconcile", *world.loop) for _ in range(2)]
    outcomes = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outcomes, strict=True):
        assert proc.returncode == 0, err
        assert "BUG" not in err and "Traceback" not in err
    # One release commit on main and one bot branch, whoever came first.
    assert git(world.remote, "rev-list", "--count", "main").strip() == "2"
    assert [r for r in world.refs() if r.startswith("refs/heads/releasebot/")] == [
        "refs/heads/releasebot/staging/fraud/release"
    ]


PIN = "refs/heads/releasebot/staging/fraud/pin"


def _person_commits_on(world: World, branch: str) -> str:
    clone = world.tmp / f"person-on-{branch.replace('/', '-')}"
    subprocess.run(["git", "clone", "--quiet", "-b", branch, str(world.remote), str(clone)], check=True)
    path = clone / "staging/fraud/inferenceservice.yaml"
    path.write_text(path.read_text() + "# reviewed and adjusted by a person\n")
    git(clone, "-c", "user.name=Person", "-c", "user.email=person@example.com", "commit", "-qam", "adjust")
    git(clone, "push", "--quiet")
    return git(clone, "rev-parse", "HEAD").strip()


def test_a_second_rollback_never_force_pushes_over_a_persons_commit_on_the_pin_branch(world: World) -> None:
    v1, v2 = world.version(0.9), world.version(0.95)
    for v in (v1, v2):  # staging serves v1, then v2, each merged by a person
        world.alias("champion", v)
        assert world.reconcile().code == 0
        world.merge("releasebot/staging/fraud/release")
    first = world.run_cli("rollback", "fraud", "--env", "staging", *world.loop)
    assert first.code == 0, first.err
    person = _person_commits_on(world, "releasebot/staging/fraud/pin")
    second = world.run_cli("rollback", "fraud", "--env", "staging", "--to", v1, *world.loop)
    assert second.code == 2
    assert "releasebot/staging/fraud/pin has commits by a person" in second.err and "will not rewrite" in second.err
    assert world.refs()[PIN] == person
    assert "Traceback" not in second.err


@pytest.mark.parametrize(
    "key",
    [
        ("production", "credit-risk", "release"),
        ("production", "credit-risk", "pin"),
        ("production", "karpenter", "capacity"),
        ("production", "credit-risk", "retrain"),
    ],
    ids=lambda k: k[2],
)
def test_no_kind_of_bot_branch_is_force_pushed_over_a_persons_commit(
    env_repo: Path, tmp_path: Path, key: tuple[str, str, str]
) -> None:
    """The last check before any force push, whichever path reached it (the planner holds such a
    branch for every kind already; this is what stops a path that did not ask)."""
    from bot.errors import ConflictError
    from bot.forge.git import GitForge
    from bot.plan import Change, FileEdit, Key
    from bot.reconcile import write_back
    from bot.repo import EnvRepo
    from tests.test_observe import _push_branch, _remote

    k = Key(*key)
    remote = _remote(env_repo, tmp_path)
    person = _push_branch(remote, tmp_path, k.branch, "person@example.com")
    repo = EnvRepo(str(remote), tmp_path / "work")
    repo.sync()
    old = repo.read("CODEOWNERS") or ""
    change = Change(
        key=k,
        write_back="branch",
        edits=(FileEdit("CODEOWNERS", old, old + "# by releasebot\n", ()),),
        version="2",
        previous="1",
        commit_message="m",
        title="t",
        body="b",
        fingerprint="fp",
    )
    with pytest.raises(ConflictError, match="has commits by a person"):
        write_back(repo, change, lambda mode: GitForge(repo))
    assert git(remote, "rev-parse", k.branch).strip() == person


def test_a_failure_after_earlier_changes_landed_says_what_was_written(
    mlflow_url: str, tmp_path: Path, run_cli, monkeypatch
) -> None:
    from tests.github_api import GitHubMock

    world = World(mlflow_url, tmp_path, run_cli, staging_mode="pull-request")
    monkeypatch.setenv("RELEASEBOT_GITHUB_TOKEN", "ghs_test")
    repo = {"owner": "acme", "repo": "envs"}
    v1 = world.version(0.9)
    world.alias("candidate", v1)  # dev: a commit on main
    world.alias("champion", v1)  # staging: a branch and a pull request, which GitHub refuses
    refused = {"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com"}
    with GitHubMock() as gh:
        gh.passthru(mlflow_url)
        gh.add("pulls/list", repo, 200, [])
        gh.add("pulls/create", repo, 403, refused)
        result = world.reconcile()
    assert result.code == 2  # GitHub refused (403)
    assert "nothing was written" not in result.err
    assert result.err.startswith("releasebot: 2 change(s) were written (committed Release fraud v1 to dev to main (")
    assert "pushed branch releasebot/staging/fraud/release at " in result.err and "(not yet proposed)" in result.err
    assert "then it failed: GitHub 403: open a pull request" in result.err
    assert result.err.rstrip().endswith("nothing else was written")
    # What it says is what happened.
    assert f"releasebot.dev/version: '{v1}'" in world.show("main", DEV_ISVC)
    assert "refs/heads/releasebot/staging/fraud/release" in world.refs()


GHOST = """  - name: ghost
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


def test_a_model_missing_from_mlflow_fails_only_its_own_keys(mlflow_url: str, tmp_path: Path, run_cli) -> None:
    import uuid

    missing = f"never-registered-{uuid.uuid4().hex[:8]}"
    world = World(mlflow_url, tmp_path, run_cli, extra_model=GHOST.format(registered=missing))
    v1 = world.version(0.9)
    world.alias("candidate", v1)
    result = world.reconcile()
    assert result.code == 1  # the missing model is an error...
    assert "ghost" in result.err and missing in result.err and "Traceback" not in result.err
    # ...of its own keys only: the other model's release landed.
    assert f"committed Release fraud v{v1} to dev" in result.out
    assert f"releasebot.dev/version: '{v1}'" in world.show("main", DEV_ISVC)


STAGING_BRANCH = "releasebot/staging/fraud/release"
GH_REPO = {"owner": "acme", "repo": "envs"}
PR_QUERY = {"state": "open", "head": f"acme:{STAGING_BRANCH}", "base": "main"}


def _dies_once(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, after: bool = False) -> list[int]:
    """Make the process end (SystemExit, as a kill would: nothing after it runs) the first time
    ``owner.name`` is called: before it does anything, or ``after`` it did all of it. Later calls
    go through. Returns the calls it cut short."""
    original, died = getattr(owner, name), []

    def dying(*args, **kwargs):
        if died:
            return original(*args, **kwargs)
        died.append(1)
        if after:
            original(*args, **kwargs)
        raise SystemExit(137)

    monkeypatch.setattr(owner, name, dying)
    return died


def _expect_one_pull_request(gh, creates: list[dict]) -> None:
    """GitHub as a pass that opens the staging pull request sees it: none yet, one created (its
    request recorded in ``creates``), labelled."""
    from tests.github_api import example, pull_request

    gh.add("pulls/list", GH_REPO, 200, [], query=PR_QUERY)
    gh.add(
        "pulls/create",
        GH_REPO,
        201,
        pull_request(3, STAGING_BRANCH, "t", "b"),
        check_request=lambda h, b: creates.append(b),
    )
    gh.add("issues/add-labels", {**GH_REPO, "issue_number": 3}, 200, example("label-items"))


def test_a_crash_after_the_push_before_the_pull_request_converges_to_one_pull_request(
    mlflow_url: str, tmp_path: Path, run_cli, monkeypatch
) -> None:
    from bot.forge.github import GitHubForge
    from tests.github_api import GitHubMock

    world = World(mlflow_url, tmp_path, run_cli, staging_mode="pull-request")
    monkeypatch.setenv("RELEASEBOT_GITHUB_TOKEN", "ghs_test")
    world.alias("champion", world.version(0.9))
    died = _dies_once(monkeypatch, GitHubForge, "propose")
    with GitHubMock() as gh:
        gh.passthru(mlflow_url)
        assert world.reconcile().code == 137
        assert gh.checked == 0
    assert died and f"refs/heads/{STAGING_BRANCH}" in world.refs()  # pushed, never proposed
    creates: list[dict] = []
    with GitHubMock() as gh:  # the next pass finds the branch unchanged, and proposes it
        gh.passthru(mlflow_url)
        _expect_one_pull_request(gh, creates)
        result = world.reconcile()
        assert result.code == 0, result.err
    assert "opened pull request #3" in result.out
    assert len(creates) == 1 and creates[0]["head"] == STAGING_BRANCH
    with GitHubMock() as gh:  # nothing registered: any GitHub call would fail the test
        gh.passthru(mlflow_url)
        assert world.reconcile().code == 0
        assert gh.checked == 0  # proposed and remembered: settled again


def test_a_crash_after_the_pull_request_was_opened_does_not_open_a_second(
    mlflow_url: str, tmp_path: Path, run_cli, monkeypatch
) -> None:
    from bot.forge.github import GitHubForge
    from tests.github_api import GitHubMock, pull_simple

    world = World(mlflow_url, tmp_path, run_cli, staging_mode="pull-request")
    monkeypatch.setenv("RELEASEBOT_GITHUB_TOKEN", "ghs_test")
    world.alias("champion", world.version(0.9))
    _dies_once(monkeypatch, GitHubForge, "propose", after=True)  # dies once the pull request is open
    creates: list[dict] = []
    with GitHubMock() as gh:
        gh.passthru(mlflow_url)
        _expect_one_pull_request(gh, creates)
        assert world.reconcile().code == 137
    assert len(creates) == 1
    opened = pull_simple(3, STAGING_BRANCH, creates[0]["title"], creates[0]["body"])
    with GitHubMock() as gh:  # a fresh look finds the pull request it opened, and opens none
        gh.passthru(mlflow_url)
        gh.add("pulls/list", GH_REPO, 200, [opened], query=PR_QUERY)
        result = world.reconcile()
        assert result.code == 0, result.err
        assert gh.checked == 1
    assert "pull request #3 is up to date" in result.out
    with GitHubMock() as gh:
        gh.passthru(mlflow_url)
        assert world.reconcile().code == 0
        assert gh.checked == 0
    assert len(creates) == 1  # one pull request, whatever the crash
