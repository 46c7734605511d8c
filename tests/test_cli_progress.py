"""Progress on a terminal only: drawn on stderr when stdout and stderr are terminals (each on a
pseudo-terminal of its own here), never when piped, never with ``--output json``; and stdout is
the same either way."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.fleet import fleet_catalog
from tests.conftest import EXAMPLE_CATALOG, copy_catalog

RELEASEBOT = str(Path(sys.executable).parent / "releasebot")
TERMINAL = {"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}


def on_terminal(*argv: str | Path) -> tuple[int, str, str]:
    """Run releasebot with stdout and stderr on two pseudo-terminals; their text as written."""
    masters, slaves = zip(pty.openpty(), pty.openpty(), strict=True)
    proc = subprocess.Popen(
        [RELEASEBOT, *map(str, argv)],
        stdin=subprocess.DEVNULL,
        stdout=slaves[0],
        stderr=slaves[1],
        env={**os.environ, **TERMINAL},
    )
    for fd in slaves:
        os.close(fd)
    seen: dict[int, list[bytes]] = {fd: [] for fd in masters}
    open_fds = set(masters)
    while open_fds:
        for fd in select.select(list(open_fds), [], [])[0]:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the process closed its end
                data = b""
            if data:
                seen[fd].append(data)
            else:
                open_fds.discard(fd)
                os.close(fd)
    code = proc.wait()
    # A terminal turns "\n" into "\r\n"; what the process wrote is the rest.
    out, err = (b"".join(seen[fd]).decode("utf-8", "replace").replace("\r\n", "\n") for fd in masters)
    return code, out, err


def piped(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RELEASEBOT, *map(str, argv)], capture_output=True, text=True, env={**os.environ, **TERMINAL})


def drawn(err: str, label: str, total: int) -> bool:
    """The bar was drawn, labelled, and reached its end (rich draws the last state as it stops)."""
    return "\x1b[" in err and label in err and re.search(rf"(?<!\d){total}/{total}(?!\d)", err) is not None


def manifests(repo: Path) -> int:
    return sum(1 for p in repo.rglob("*.y*ml") if ".git" not in p.parts and p.name != "releasebot.yaml")


def test_validate_of_a_100_model_repo_shows_progress_on_a_terminal_and_none_when_piped(tmp_path: Path, run_cli) -> None:
    repo = tmp_path / "fleet"
    catalog = copy_catalog(tmp_path, fleet_catalog(100, "http://127.0.0.1:9"))
    assert run_cli("init", repo, "--catalog", catalog).code == 0
    n = manifests(repo)
    assert n > 400
    expected = f"OK: {n} file(s) checked, 0 problem(s)\n"

    code, out, err = on_terminal("validate", repo)
    assert code == 0, err
    assert out == expected
    assert drawn(err, "validate", n), err[-2000:]

    quiet = piped("validate", repo)
    assert quiet.returncode == 0
    assert quiet.stdout == expected and quiet.stderr == ""  # byte for byte what it printed before


def test_init_and_render_show_progress_on_a_terminal(tmp_path: Path) -> None:
    repo = tmp_path / "envs"
    code, out, err = on_terminal("init", repo, "--catalog", EXAMPLE_CATALOG)
    assert code == 0, err
    files = int(re.search(r"\((\d+) files", out).group(1))
    assert out.startswith(f"Created {repo} (") and drawn(err, "init", files), err
    code, out, err = on_terminal("render", repo)
    assert code == 0 and out == "Up to date.\n"
    assert drawn(err, "render", files), err  # every file the catalog asks for, checked again


def test_json_output_on_a_terminal_draws_nothing(env_repo: Path) -> None:
    code, out, err = on_terminal("validate", env_repo, "--output", "json")
    assert code == 0 and err == ""
    assert out.startswith('{\n  "ok": true,')


@pytest.fixture
def world(mlflow_url: str, tmp_path: Path, run_cli):
    from tests.test_release_loop import World

    return World(mlflow_url, tmp_path, run_cli)


def test_reconcile_shows_progress_on_a_terminal_and_prints_the_same(world) -> None:
    world.alias("candidate", world.version(0.9))
    world.alias("champion", world.version(0.91))
    code, out, err = on_terminal("reconcile", *world.loop)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("committed Release fraud v1 to dev to main (")
    assert lines[1].startswith("pushed Release fraud v2 to staging: branch releasebot/staging/fraud/release at ")
    assert drawn(err, "reconcile", 2), err
    again = piped("reconcile", *world.loop)
    assert again.returncode == 0 and again.stdout == "Nothing to change.\n" and again.stderr == ""


def test_drift_run_shows_its_steps_on_a_terminal(mlflow_url: str, tmp_path: Path) -> None:
    from tests.test_drift import Served, frame

    served = Served(mlflow_url, tmp_path)
    window = served.window(frame(1000, seed=2))
    argv = ["drift", "run", "--model", served.model, "--env", "production", "--registered-model", served.name]
    argv += ["--alias", "champion", "--current", window, "--tracking-uri", mlflow_url]
    code, out, err = on_terminal(*argv)
    assert code == 0, err
    assert out.startswith(f"{served.model} v{served.version} in production: ok (")
    assert drawn(err, "drift run", 5) and "comparing with Evidently" in err, err
