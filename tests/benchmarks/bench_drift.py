"""Benchmark (``make bench``): the drift job at 100k and 1M rows x 20 columns against Evidently's own
report on the same data. Each measurement is a fresh process: wall time and peak RSS.

Data: 20 float columns, 8 shifted by 0.5 sigma and 2 scaled by 1.5, reference and current of N rows
each, as Parquet. MLflow is a local SQLite store. The job runs twice at 1M: with its default sample
(100,000 rows per side) and unsampled, so the ratio is also shown like for like.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

EVIDENTLY_ALONE = """
import sys, pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
snap = Report([DataDriftPreset()], include_tests=True).run(current_data=cur, reference_data=ref)
snap.save_html(sys.argv[3])
"""


def make(path: Path, n: int, seed: int, shifted: bool) -> None:
    rng = np.random.default_rng(seed)
    cols = {}
    for i in range(20):
        x = rng.normal(size=n)
        if shifted and i < 8:
            x = x + 0.5
        elif shifted and i < 10:
            x = x * 1.5
        cols[f"f{i}"] = x
    pd.DataFrame(cols).to_parquet(path)


# A fresh wrapper per measurement: RUSAGE_CHILDREN is the maximum over *all* children a process has
# waited for, so measuring several runs from one process would report the largest for each.
_WRAPPER = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
)


def measure(argv: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], capture_output=True, text=True)
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    return wall, int(proc.stdout.strip().splitlines()[-1]) / 1024


@pytest.mark.parametrize("rows", [100_000, 1_000_000])
def bench_drift_job_against_evidently(rows: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow.tracking import MlflowClient

    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    make(ref, rows, 1, shifted=False)
    make(cur, rows, 2, shifted=True)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("bench")
    run_id = client.create_run("0").info.run_id
    version = client.create_model_version("bench", "s3://m/1", run_id=run_id).version
    client.set_registered_model_alias("bench", "champion", version)
    releasebot = str(Path(sys.executable).parent / "releasebot")
    job = [
        releasebot,
        "drift",
        "run",
        "--model",
        "bench",
        "--env",
        "bench",
        "--alias",
        "champion",
        "--reference",
        str(ref),
        "--current",
        str(cur),
        "--tracking-uri",
        uri,
    ]
    figures = {
        "Evidently's own report": measure(
            [sys.executable, "-c", EVIDENTLY_ALONE, str(ref), str(cur), str(tmp_path / "alone.html")]
        ),
        "releasebot drift run (default --sample)": measure(job),
    }
    if rows > 100_000:
        figures["releasebot drift run (--sample = all rows)"] = measure([*job, "--sample", str(rows)])
    base = figures["Evidently's own report"][0]
    with capsys.disabled():
        print(f"\n  {rows:>9,} rows x 20 columns")
        for name, (wall, peak) in figures.items():
            print(f"    {name:44s} {wall:7.1f} s  peak {peak:7.0f} MiB  ratio {wall / base:4.2f}")
