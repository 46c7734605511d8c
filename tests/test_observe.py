"""Observation reads only what the keys need: a real git remote, the example catalog.

A pass over one model must read that model's manifests and branches only, whatever the size of
the fleet; a full pass reads main through one git process. These tests look at what was read,
not at how long it took (that is the benchmarks' business).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bot.plan import Change, FileEdit, Key, ModelState, RegistrySnapshot, plan, registry_wants
from bot.reconcile import observe
from bot.repo import BOT_EMAIL, EnvRepo


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    import os

    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}
    )
    return done.stdout.strip()


def _remote(env_repo: Path, tmp_path: Path) -> Path:
    remote = tmp_path / "envs.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(env_repo), str(remote)], check=True)
    return remote


def _push_branch(remote: Path, tmp_path: Path, branch: str, author: str) -> str:
    """A branch with one commit by ``author`` (an email), pushed to the remote."""
    work = tmp_path / f"w-{branch.replace('/', '-')}"
    subprocess.run(["git", "clone", "--quiet", str(remote), str(work)], check=True)
    git(work, "checkout", "-q", "-b", branch)
    (work / "note.txt").write_text(branch)
    git(work, "add", "note.txt")
    who = {"GIT_AUTHOR_NAME": "x", "GIT_AUTHOR_EMAIL": author, "GIT_COMMITTER_NAME": "x", "GIT_COMMITTER_EMAIL": author}
    git(work, "commit", "-q", "-m", f"work on {branch}", env=who)
    git(work, "push", "-q", "origin", branch)
    return git(work, "rev-parse", "HEAD")


def test_a_pass_over_one_model_reads_only_that_models_files(env_repo: Path, tmp_path: Path) -> None:
    repo = EnvRepo(str(_remote(env_repo, tmp_path)), tmp_path / "work")
    cat, state, _ = observe(repo, lambda c: None, model="credit-risk")  # type: ignore[arg-type,return-value]
    wants = registry_wants(cat, state, model="credit-risk")
    assert set(wants) == {"credit-risk"}
    empty = RegistrySnapshot("http://mlflow", {"credit-risk": ModelState("credit-risk", ())})
    plan(cat, empty, state, model="credit-risk")
    read = set(state.main_files)  # the view lists what was read, nothing else
    assert read == {
        "releasebot.yaml",
        "staging/credit-risk/inferenceservice.yaml",
        "production/credit-risk/inferenceservice.yaml",
    }
    assert "staging/credit-risk/inferenceservice.yaml" in state.main_files
    assert "staging/nope/inferenceservice.yaml" not in state.main_files


def test_a_full_pass_reads_every_key_through_one_view(env_repo: Path, tmp_path: Path) -> None:
    repo = EnvRepo(str(_remote(env_repo, tmp_path)), tmp_path / "work")
    cat, state, _ = observe(repo, lambda c: None)  # type: ignore[arg-type,return-value]
    wants = registry_wants(cat, state)
    assert set(wants) == {"fraud-detector", "review-sentiment", "credit-risk"}
    isvcs = {p for p in state.main_files if p.endswith("/inferenceservice.yaml")}
    assert len(isvcs) == sum(len(cat.models_in(e)) for e in cat.environments) == 8
    assert (
        state.main_files["dev/fraud-detector/inferenceservice.yaml"]
        == (env_repo / "dev/fraud-detector/inferenceservice.yaml").read_text()
    )


def test_branches_are_read_for_the_keys_asked_with_their_authors(env_repo: Path, tmp_path: Path) -> None:
    remote = _remote(env_repo, tmp_path)
    person = _push_branch(remote, tmp_path, "releasebot/staging/credit-risk/release", "alice@example.com")
    _push_branch(remote, tmp_path, "releasebot/production/credit-risk/pin", BOT_EMAIL)
    _push_branch(remote, tmp_path, "releasebot/staging/fraud-detector/release", BOT_EMAIL)
    _push_branch(remote, tmp_path, "releasebot/staging/karpenter/capacity", BOT_EMAIL)
    repo = EnvRepo(str(remote), tmp_path / "work")

    _, by_model, _ = observe(repo, lambda c: None, model="credit-risk")  # type: ignore[arg-type,return-value]
    assert set(by_model.branches) == {"releasebot/staging/credit-risk/release", "releasebot/production/credit-risk/pin"}
    assert by_model.branches["releasebot/staging/credit-risk/release"].human_commits == (person,)
    assert by_model.branches["releasebot/production/credit-risk/pin"].human_commits == ()

    _, by_env, _ = observe(repo, lambda c: None, env="staging")  # type: ignore[arg-type,return-value]
    assert set(by_env.branches) == {
        "releasebot/staging/credit-risk/release",
        "releasebot/staging/fraud-detector/release",
        "releasebot/staging/karpenter/capacity",
    }
    _, one, _ = observe(repo, lambda c: None, env="staging", model="fraud-detector")  # type: ignore[arg-type,return-value]
    assert set(one.branches) == {"releasebot/staging/fraud-detector/release"}
    _, everything, _ = observe(repo, lambda c: None)  # type: ignore[arg-type,return-value]
    assert len(everything.branches) == 4
    assert (
        repo.bot_branch("releasebot/staging/credit-risk/release")
        == by_model.branches["releasebot/staging/credit-risk/release"]
    )
    assert repo.bot_branch("releasebot/dev/none/release") is None


def test_an_unchanged_file_is_not_read_again(env_repo: Path, tmp_path: Path) -> None:
    """Across passes (as in ``serve``) a blob that did not change comes back as the same text."""
    repo = EnvRepo(str(_remote(env_repo, tmp_path)), tmp_path / "work")
    first = repo.tree().get("dev/fraud-detector/inferenceservice.yaml")
    second = repo.tree().get("dev/fraud-detector/inferenceservice.yaml")
    assert first is not None and first is second
    assert repo.tree().get("dev/fraud-detector") is None  # a folder is not a file
    assert repo.tree().get("../outside") is None
    assert Key("dev", "m", "release").branch == "releasebot/dev/m/release"


def _change(key: Key, path: str, old: str, new: str) -> Change:
    return Change(key, "branch", (FileEdit(path, old, new, ("x",)),), "1", None, f"{key.branch}\n", "t", "b", "fp")


def test_two_keys_written_at_once_both_land_and_the_working_tree_is_untouched(env_repo: Path, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    remote = _remote(env_repo, tmp_path)
    repo = EnvRepo(str(remote), tmp_path / "work")
    repo.sync()
    changes = []
    for model in ("fraud-detector", "credit-risk"):
        path = f"staging/{model}/inferenceservice.yaml"
        old = repo.tree().get(path)
        assert old is not None
        changes.append(_change(Key("staging", model, "release"), path, old, old + "# changed\n"))
    with ThreadPoolExecutor(2) as pool:
        heads = list(pool.map(lambda c: repo.push_branch(c, None), changes))
    for change, head in zip(changes, heads, strict=True):
        assert git(remote, "rev-parse", f"refs/heads/{change.key.branch}") == head
        assert git(remote, "show", f"{head}:{change.edits[0].path}").endswith("# changed")
        assert git(remote, "diff", "--name-only", f"{head}^", head) == change.edits[0].path
    assert git(tmp_path / "work", "status", "--porcelain") == ""


def test_a_file_changed_since_planning_is_a_conflict(env_repo: Path, tmp_path: Path) -> None:
    import pytest

    from bot.errors import ConflictError

    repo = EnvRepo(str(_remote(env_repo, tmp_path)), tmp_path / "work")
    repo.sync()
    path = "dev/fraud-detector/inferenceservice.yaml"
    stale = _change(Key("dev", "fraud-detector", "release"), path, "not what main has\n", "new\n")
    with pytest.raises(ConflictError, match="changed on main since it was planned"):
        repo.commit_to_main(stale)


def test_commit_mode_changes_land_as_their_own_commits_in_one_push(env_repo: Path, tmp_path: Path) -> None:
    import pytest

    from bot.errors import ConflictError

    remote = _remote(env_repo, tmp_path)
    repo = EnvRepo(str(remote), tmp_path / "work")
    repo.sync()
    before = git(remote, "rev-parse", "main")
    changes = []
    for model in ("fraud-detector", "review-sentiment"):
        path = f"dev/{model}/inferenceservice.yaml"
        old = repo.tree().get(path)
        assert old is not None
        changes.append(_change(Key("dev", model, "release"), path, old, old + "# released\n"))
    shas = repo.commit_all_to_main(changes)
    assert git(remote, "rev-list", f"{before}..main").split() == shas[::-1]
    assert [git(remote, "diff", "--name-only", f"{s}^", s) for s in shas] == [c.edits[0].path for c in changes]
    # A change that no longer applies: what came before it lands, the conflict goes up for a re-plan.
    path = "staging/fraud-detector/inferenceservice.yaml"
    old = repo.tree().get(path)
    assert old is not None
    first = _change(Key("staging", "fraud-detector", "release"), path, old, old + "# one\n")
    stale = _change(Key("staging", "fraud-detector", "pin"), path, old, old + "# two\n")
    with pytest.raises(ConflictError):
        repo.commit_all_to_main([first, stale])
    assert git(remote, "show", f"main:{path}").endswith("# one")
