"""GitHub Actions workflows: this project's own and the one ``init`` generates pass GitHub's
workflow schema, the generated one runs releasebot from the catalog's image, and its steps succeed
when run as the job runs them (``sh -e`` in the checked-out repository, inside that image)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot import __version__, yamlio
from bot.catalog import DEFAULT_BOT_IMAGE, load_catalog
from tests.conftest import EXAMPLE_CATALOG, PROJECT

BIN = Path(sys.executable).parent


def _load(path: Path) -> dict:
    return yamlio.to_plain(yamlio.load(path.read_text(), path.name))


def test_workflows_pass_githubs_workflow_schema(env_repo: Path) -> None:
    files = [*sorted((PROJECT / ".github" / "workflows").glob("*.yml")), env_repo / ".github/workflows/validate.yml"]
    proc = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_validate_workflow_runs_releasebot_from_the_catalogs_image(env_repo: Path) -> None:
    job = _load(env_repo / ".github/workflows/validate.yml")["jobs"]["validate"]
    assert job["container"]["image"] == load_catalog(EXAMPLE_CATALOG).bot_image
    assert [s["uses"] for s in job["steps"] if "uses" in s] == ["actions/checkout@v4"]
    assert not [s for s in job["steps"] if "pip" in s.get("run", "")]


def _run_steps(env_repo: Path, event: dict[str, str] | None = None) -> dict[str, subprocess.CompletedProcess]:
    """Each `run` step of the validate job, as the job runs it, by name."""
    job = _load(env_repo / ".github/workflows/validate.yml")["jobs"]["validate"]
    done = {}
    for step in [s for s in job["steps"] if "run" in s]:
        # A container job's default shell is `sh -e`; the image puts releasebot on PATH.
        env = {"PATH": f"{BIN}{os.pathsep}/usr/bin:/bin", "HOME": str(env_repo.parent), **(event or {})}
        done[step["name"]] = subprocess.run(
            ["sh", "-e", "-c", step["run"]], cwd=env_repo, env=env, capture_output=True, text=True
        )
    return done


def test_the_validate_workflows_steps_pass_on_a_fresh_repository(env_repo: Path) -> None:
    done = _run_steps(env_repo)
    assert list(done) == ["Validate", "Manifests match the catalog"]
    for name, proc in done.items():
        assert proc.returncode == 0, f"{name}: {proc.stdout}{proc.stderr}"


def test_the_validate_workflow_runs_on_pull_requests_merge_groups_and_main(env_repo: Path) -> None:
    on = _load(env_repo / ".github/workflows/validate.yml")["on"]
    # A merge queue waits for the checks branch protection requires on each group's head: a
    # workflow without the merge_group trigger never reports there, and the queue drops the PR.
    assert on == {"pull_request": None, "merge_group": {"types": ["checks_requested"]}, "push": {"branches": ["main"]}}


def _git(repo: Path, *args: str) -> str:
    identity = ("-c", "user.name=P", "-c", "user.email=p@example.com")
    return subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def _merge_group(env_repo: Path, edit: str, new: str) -> dict[str, str]:
    """Check out a merge queue group's head as GitHub makes it (main merged with a pull request on
    ``gh-readonly-queue/main/pr-<n>-<main sha>``), the pull request changing ``edit`` to ``new``
    in dev's fraud-detector; the environment GitHub Actions gives a merge_group run."""
    main = _git(env_repo, "rev-parse", "main").strip()
    _git(env_repo, "checkout", "-q", "-b", "tune", "main")
    path = env_repo / "dev/fraud-detector/inferenceservice.yaml"
    assert edit in path.read_text()
    path.write_text(path.read_text().replace(edit, new))
    _git(env_repo, "commit", "-qam", "tune")
    group = f"gh-readonly-queue/main/pr-4-{main}"
    _git(env_repo, "checkout", "-q", "-b", group, "main")
    _git(env_repo, "merge", "-q", "--no-ff", "-m", "Merge pull request #4 from acme/tune", "tune")
    sha = _git(env_repo, "rev-parse", "HEAD").strip()
    return {"GITHUB_EVENT_NAME": "merge_group", "GITHUB_REF": f"refs/heads/{group}", "GITHUB_SHA": sha}


def test_the_validate_workflows_steps_judge_a_merge_groups_head(env_repo: Path, tmp_path: Path) -> None:
    good = tmp_path / "good"
    subprocess.run(["git", "clone", "-q", str(env_repo), str(good)], check=True)
    done = _run_steps(good, _merge_group(good, "    minReplicas: 0\n", "    minReplicas: 0  # a note\n"))
    assert all(p.returncode == 0 for p in done.values()), {n: p.stdout + p.stderr for n, p in done.items()}
    # A group whose pull request breaks a manifest fails the check the queue waits for.
    done = _run_steps(env_repo, _merge_group(env_repo, "    minReplicas: 0\n", "    minReplicas: many\n"))
    assert done["Validate"].returncode != 0 and "minReplicas" in done["Validate"].stdout + done["Validate"].stderr


def test_render_adds_the_merge_group_trigger_to_an_older_workflow(env_repo: Path, run_cli) -> None:
    path = env_repo / ".github/workflows/validate.yml"
    doc = _load(path)
    del doc["on"]["merge_group"]
    path.write_text(yamlio.dump(doc))
    assert run_cli("render", env_repo).code == 0
    assert _load(path)["on"]["merge_group"] == {"types": ["checks_requested"]}


def test_render_replaces_the_old_install_step_with_the_image(env_repo: Path, run_cli) -> None:
    path = env_repo / ".github/workflows/validate.yml"
    doc = _load(path)
    del doc["jobs"]["validate"]["container"]
    doc["jobs"]["validate"]["steps"].insert(
        1, {"name": "Install releasebot", "run": 'python -m pip install "releasebot==0.1.0"'}
    )
    path.write_text(yamlio.dump(doc))
    assert run_cli("render", env_repo).code == 0
    job = _load(path)["jobs"]["validate"]
    assert job["container"]["image"] == load_catalog(EXAMPLE_CATALOG).bot_image
    assert "Install releasebot" not in [s.get("name") for s in job["steps"]]


def test_the_release_workflow_publishes_the_default_image_and_the_wheel() -> None:
    release = _load(PROJECT / ".github/workflows/release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    steps = release["jobs"]["image"]["steps"]
    meta = next(s for s in steps if s.get("id") == "meta")["with"]
    build = next(s for s in steps if str(s.get("uses", "")).startswith("docker/build-push-action"))["with"]
    # ghcr.io/<owner>/releasebot:<version> for the project's owner is the catalog's default image.
    owner, _, tag = DEFAULT_BOT_IMAGE.removeprefix("ghcr.io/").partition("/releasebot:")
    assert meta["images"] == "ghcr.io/${{ github.repository_owner }}/releasebot" and owner == "releasebot"
    assert "type=semver,pattern={{version}}" in meta["tags"] and tag == __version__
    assert build["platforms"] == "linux/amd64,linux/arm64" and build["push"] is True
    assert build["sbom"] is True and build["provenance"] == "mode=max"
    wheel = release["jobs"]["wheel"]["steps"]
    assert any("python -m build" in s.get("run", "") for s in wheel)
    assert any('gh release create "$GITHUB_REF_NAME" dist/*' in s.get("run", "") for s in wheel)
