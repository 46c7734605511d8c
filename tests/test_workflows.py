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


def test_the_validate_workflows_steps_pass_on_a_fresh_repository(env_repo: Path) -> None:
    job = _load(env_repo / ".github/workflows/validate.yml")["jobs"]["validate"]
    steps = [s for s in job["steps"] if "run" in s]
    assert [s["name"] for s in steps] == ["Validate", "Manifests match the catalog"]
    for step in steps:
        # A container job's default shell is `sh -e`; the image puts releasebot on PATH.
        env = {"PATH": f"{BIN}{os.pathsep}/usr/bin:/bin", "HOME": str(env_repo.parent)}
        proc = subprocess.run(["sh", "-e", "-c", step["run"]], cwd=env_repo, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{step['name']}: {proc.stdout}{proc.stderr}"


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
