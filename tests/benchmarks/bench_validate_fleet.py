"""Benchmark (``make bench``): ``validate``, ``render --check`` and ``init`` on N-model fleets.

The floor is what reading the repository costs at all: a fresh Python process that loads and
dumps every ``.yaml``/``.yml`` file of the fleet with a plain ruamel ``YAML(typ="rt")``, the
library releasebot edits with. Each command runs in a fresh process too, so imports and schema
loading count. Target: ``validate`` within 2x the floor from N=100 on, and at most 400 MiB peak
RSS at N=1000; asserted here, never in the test suite.

``RELEASEBOT_BENCH_FLEET`` chooses the sizes (default ``10,100,1000``; ``5000`` works, slowly).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.benchmarks.fleet import fleet_catalog

SIZES = [int(n) for n in os.environ.get("RELEASEBOT_BENCH_FLEET", "10,100,1000").split(",")]

# Peak RSS in KiB, printed last on stderr. VmHWM, because ru_maxrss survives exec on Linux and
# would report the forking benchmark process instead.
_PEAK = (
    "def _peak():\n"
    "    try:\n"
    "        with open('/proc/self/status') as f:\n"
    "            return next(int(l.split()[1]) for l in f if l.startswith('VmHWM:'))\n"
    "    except OSError:\n"
    "        import resource\n"
    "        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
)
# A fresh interpreter running the CLI.
_CLI = _PEAK + (
    "import sys\nfrom bot import cli\ncode = cli.main(sys.argv[1:])\nprint(_peak(), file=sys.stderr)\nsys.exit(code)\n"
)
_FLOOR = _PEAK + (
    "import io, sys\n"
    "from pathlib import Path\n"
    "from ruamel.yaml import YAML\n"
    "root = Path(sys.argv[1])\n"
    "for path in sorted(root.rglob('*')):\n"
    "    if path.suffix in ('.yaml', '.yml') and '.git' not in path.relative_to(root).parts:\n"
    "        y = YAML(typ='rt')\n"
    "        y.dump(y.load(path.read_text()), io.StringIO())\n"
    "print(_peak(), file=sys.stderr)\n"
)


def _run(script: str, *args: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a fresh process; fails on a non-zero exit."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return elapsed, int(done.stderr.strip().splitlines()[-1]) / 1024


@pytest.mark.parametrize("n", SIZES)
def bench_validate_fleet(n: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "releasebot.yaml"
    catalog.write_text(fleet_catalog(n, "http://127.0.0.1:5000"))
    repo = tmp_path / "fleet"
    init_s, init_mib = _run(_CLI, "init", str(repo), "--catalog", str(catalog))
    files = sum(1 for p in repo.rglob("*.y*ml") if ".git" not in p.relative_to(repo).parts)
    floor_s, floor_mib = _run(_FLOOR, str(repo))
    validate_s, validate_mib = _run(_CLI, "validate", str(repo))
    check_s, check_mib = _run(_CLI, "render", "--check", str(repo))
    with capsys.disabled():
        print(
            f"\n  N={n:<5} {files:6d} YAML files   floor (ruamel load+dump) {floor_s:7.1f} s {floor_mib:5.0f} MiB"
            f"\n    validate        {validate_s:7.1f} s  {validate_s / floor_s:5.2f}x floor  {validate_mib:5.0f} MiB"
            f"\n    render --check  {check_s:7.1f} s  {check_s / floor_s:5.2f}x floor  {check_mib:5.0f} MiB"
            f"\n    init            {init_s:7.1f} s  {init_s / floor_s:5.2f}x floor  {init_mib:5.0f} MiB"
        )
    if n >= 100:
        assert validate_s <= 2 * floor_s
    if n >= 1000:
        assert validate_mib <= 400
