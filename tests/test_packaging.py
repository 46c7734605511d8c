"""The wheel carries every module and data file: the image and `pip install releasebot` run from it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import PROJECT


def test_the_wheel_ships_every_module_schema_and_blueprint(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=PROJECT,
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("releasebot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(PROJECT).as_posix() for p in (PROJECT / "bot").rglob("*.py")}
    data = {
        f"bot/_data/{top}/{p.relative_to(PROJECT / top).as_posix()}"
        for top in ("schemas", "blueprints")
        for p in (PROJECT / top).rglob("*")
        if p.is_file()
    }
    assert modules - names == set()
    assert data - names == set()


def test_the_image_runs_releasebot_as_a_non_root_user_with_git() -> None:
    lines = [line.strip() for line in (PROJECT / "Dockerfile").read_text().splitlines()]
    runtime = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    assert runtime[0] == "FROM python:3.11-slim"
    assert any(line.startswith("USER 10001") for line in runtime)
    assert any("install -y --no-install-recommends git" in line for line in runtime)
    assert 'ENTRYPOINT ["releasebot"]' in runtime
