"""Benchmarks (``make bench``): hostile-YAML refusal time and the cost of validate/render.

Targets: every hostile document refused in under a second, end to end through the CLI, with
nothing written. The figures are printed; the target is asserted here, never in the test suite.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from bot import cli
from tests.conftest import EXAMPLE_CATALOG, EXAMPLE_DIR, copy_catalog
from tests.test_yamlio import BILLION_LAUGHS

HOSTILE = {
    "billion laughs": BILLION_LAUGHS,
    "10,000-deep flow nesting": "version: 1\nx: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "100,000-deep flow nesting": "version: 1\nx: " + "{a: " * 100_000 + "}" * 100_000 + "\n",
    "10,000-deep block nesting": "version: 1\n" + "".join(" " * i + "k:\n" for i in range(10_000))[:2_000_000],
    "python object tag": "version: 1\nx: !!python/object/apply:os.system ['id']\n",
    "duplicate keys": "version: 1\nversion: 1\n",
    "multi-document": "version: 1\n---\nversion: 1\n",
}


@pytest.mark.parametrize("case", list(HOSTILE))
def bench_hostile_catalog_refused_quickly(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = copy_catalog(tmp_path, HOSTILE[case])
    start = time.perf_counter()
    code = cli.main(["init", str(tmp_path / "out"), "--catalog", str(catalog)])
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err.strip().splitlines()[0].split("releasebot.yaml", 1)[-1]
    with capsys.disabled():
        print(f"\n  {case:28s} {elapsed * 1000:8.1f} ms  {len(HOSTILE[case]) / 1024:8.0f} KiB  -> {err[:90]}")
    assert code == 1 and not (tmp_path / "out").exists()
    assert elapsed < 1.0


def bench_validate_and_render_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = {}
    for name, argv in {
        "init": ["init", str(tmp_path / "envs"), "--catalog", str(EXAMPLE_CATALOG)],
        "validate (cold: schemas loaded)": ["validate", str(EXAMPLE_DIR)],
        "validate (warm)": ["validate", str(EXAMPLE_DIR)],
        "render --check": ["render", "--check", str(EXAMPLE_DIR)],
    }.items():
        start = time.perf_counter()
        assert cli.main(argv) == 0
        runs[name] = time.perf_counter() - start
    capsys.readouterr()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with capsys.disabled():
        for name, seconds in runs.items():
            print(f"\n  {name:32s} {seconds * 1000:8.0f} ms")
        print(f"\n  peak RSS of the benchmark process: {peak:.0f} MiB")
