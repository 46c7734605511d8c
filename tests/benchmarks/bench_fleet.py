"""Benchmark (``make bench``): what one event, a full release pass, a no-op pass and ``validate``
cost on a synthetic fleet of N models x 3 environments (issue 10), each next to a floor.

Per N, set up and not measured (the time is printed): a SQLite MLflow store with N registered
models written in bulk through MLflow's own ORM classes (version 1 and 2 of each, a run per
version with two metrics and a param, ``@champion`` and ``@candidate`` on 1), a real ``mlflow
server`` on it, ``releasebot init`` from :func:`tests.benchmarks.fleet.fleet_catalog`, version 1
written into every InferenceService (the fleet is settled: nothing to do), a bare clone as the
remote, and releasebot's workdir cloned from it, as a user's cache would be.

Measured, each in a fresh ``releasebot`` process as users run it (wall time, peak RSS from
``os.wait4``, and the MLflow requests the server logged), as the median of 3 unless one run takes
over 30 s:

* no-op: ``reconcile`` on the settled fleet (and once more after the full pass, which must find
  nothing to do);
* one event: ``@candidate`` of one model moved, then ``reconcile --model M --env dev``: one commit;
* full pass: ``@candidate`` of every model moved (in the store, at once), then ``reconcile``: N commits on the remote;
* validate: ``validate`` of a checkout.

Floors, measured in the same run: the MLflow reads the design needs, from a fresh Python process
with mlflow imported (one event: the registered model, then each version involved and its
download URI; a full pass: ``search_registered_models`` pages, which carry aliases, then each
version aliased or serving); plain git (``fetch``, and per commit a one-file ``commit -a`` and
``push``, sampled over at most 50 commits); a plain ruamel round trip of the files the command
reads, in a fresh process. A command that times out is reported as such, and not tried again at a
larger N.

``RELEASEBOT_BENCH_SIZES`` (default ``10,100,1000``; add ``5000``), ``RELEASEBOT_BENCH_TIMEOUT``
(seconds per process, default 300).
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tests.benchmarks.fleet import ENVIRONMENTS, fleet_catalog, model_name
from tests.mlflow_server import mlflow_server

SIZES = [int(s) for s in os.environ.get("RELEASEBOT_BENCH_SIZES", "10,100,1000").split(",")]
TIMEOUT = float(os.environ.get("RELEASEBOT_BENCH_TIMEOUT", "300"))
REPEAT_UNDER = 30.0  # seconds: a slower run is not repeated
GIT_SAMPLE = 50
BIN = Path(sys.executable).parent
GIT_ID = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]

MLFLOW_FLOOR = """
import json, sys
from mlflow.tracking import MlflowClient
uri, mode, arg = sys.argv[1:]
client = MlflowClient(uri, registry_uri=uri)
if mode == "event":
    name, *versions = arg.split(",")
    client.get_registered_model(name)
    for v in versions:
        client.get_model_version(name, v)
        client.get_model_version_download_uri(name, v)
else:
    serving, token = json.load(open(arg)), None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        for m in page:
            for v in set(m.aliases.values()) | set(serving.get(m.name, ())):
                client.get_model_version(m.name, v)
        if not (token := page.token):
            break
"""

YAML_FLOOR = """
import io, sys
from ruamel.yaml import YAML
yaml = YAML(typ="rt")
yaml.preserve_quotes = True
for path in open(sys.argv[1]).read().split():
    with open(path, encoding="utf-8") as f:
        docs = list(yaml.load_all(f))
    yaml.dump_all(docs, io.StringIO())
"""


@dataclass
class Run:
    wall: float
    peak_mb: float
    code: int | None  # None: timed out
    out: str
    err: str
    requests: int = 0  # MLflow requests the server logged meanwhile


# The command is forked by a small go-between: Linux keeps a process's peak RSS across exec, so a
# child forked straight from this (large) benchmark process would report this process's memory.
_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(argv: list[str], env: dict[str, str] | None = None, timeout: float = TIMEOUT) -> Run:
    """``argv`` as a fresh process: wall time, and its own peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err, rss = (Path(tmp) / name for name in ("out", "err", "rss"))
        with out.open("wb") as stdout, err.open("wb") as stderr:
            start = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-c", _WRAPPER, str(rss), *argv],
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
            try:
                code: int | None = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = None
            wall = time.perf_counter() - start
        peak = int(rss.read_text()) / 1000 if rss.exists() and rss.read_text() else 0.0
        return Run(wall, peak, code, out.read_text(errors="replace"), err.read_text(errors="replace"))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def register_fleet(root: Path, n: int) -> dict[tuple[str, int], str]:
    """N registered models in ``root/mlflow.db``, in one transaction; returns the run id of each version.

    MLflow's client makes 9 calls a model here, ~0.1-0.5 s; writing the rows through MLflow's
    own store classes takes seconds for thousands. The server then reads them like any others."""
    from mlflow.store.model_registry.dbmodels.models import (
        SqlModelVersion,
        SqlRegisteredModel,
        SqlRegisteredModelAlias,
    )
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore
    from sqlalchemy import insert

    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracking = TrackingStore(uri, str(root / "artifacts"))  # creates the schema and experiment 0
    RegistryStore(uri)
    now = int(time.time() * 1000)
    rows: dict[type, list[dict]] = defaultdict(list)
    run_ids = {}
    for i in range(n):
        name = model_name(i)
        rows[SqlRegisteredModel].append(dict(name=name, creation_time=now, last_updated_time=now))
        rows[SqlRegisteredModelAlias] += [dict(name=name, alias=a, version=1) for a in ("champion", "candidate")]
        for v in (1, 2):
            run_id = run_ids[name, v] = uuid.uuid4().hex
            artifacts, source = f"{root}/artifacts/0/{run_id}/artifacts", f"s3://fleet-models/{name}/{v}"
            rows[SqlRun].append(
                dict(run_uuid=run_id, name=f"{name}-v{v}", experiment_id=0, user_id="bench", status="FINISHED")
                | dict(start_time=now, end_time=now, lifecycle_stage="active", artifact_uri=artifacts)
                | dict(source_type="UNKNOWN", source_name="", entry_point_name="", source_version="")
            )
            rows[SqlTag].append(dict(key="mlflow.runName", value=f"{name}-v{v}", run_uuid=run_id))
            rows[SqlParam].append(dict(key="C", value="1.0", run_uuid=run_id))
            for key, value in (("accuracy", 0.90 + v / 100), ("f1", 0.85 + v / 100)):
                metric = dict(key=key, value=value, timestamp=now, step=0, is_nan=False, run_uuid=run_id)
                rows[SqlMetric].append(metric)
                rows[SqlLatestMetric].append(metric)
            rows[SqlModelVersion].append(
                dict(name=name, version=v, creation_time=now, last_updated_time=now, run_id=run_id, run_link="")
                | dict(source=source, storage_location=source, status="READY", current_stage="None")
            )
    with tracking.ManagedSessionMaker() as session:
        for table, values in rows.items():
            session.execute(insert(table), values)
    return run_ids


def move_candidates(root: Path, targets: dict[str, str]) -> None:
    """``@candidate`` of many models at once, in the store the server reads (no cache in between):
    through the API, 5,000 moves take minutes."""
    from mlflow.store.model_registry.dbmodels.models import SqlRegisteredModelAlias as Alias
    from sqlalchemy import create_engine, update

    engine = create_engine(f"sqlite:///{root / 'mlflow.db'}")
    with engine.begin() as db:
        for version in set(targets.values()):
            names = [name for name, v in targets.items() if v == version]
            db.execute(
                update(Alias).where(Alias.alias == "candidate", Alias.name.in_(names)).values(version=int(version))
            )
    engine.dispose()


def settle(checkout: Path, n: int, run_ids: dict[tuple[str, int], str]) -> None:
    """Every InferenceService serves version 1, as releasebot would have written it; one commit."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    for i in range(n):
        name = model_name(i)
        for env, _, _ in ENVIRONMENTS:
            path = checkout / env / name / "inferenceservice.yaml"
            doc = yaml.load(path.read_text())
            doc["metadata"]["annotations"]["releasebot.dev/version"] = "1"
            doc["metadata"]["annotations"]["releasebot.dev/run-id"] = run_ids[name, 1]
            doc["spec"]["predictor"]["model"]["storageUri"] = f"s3://fleet-models/{name}/1"
            with path.open("w") as f:
                yaml.dump(doc, f)
            drift = checkout / env / name / "drift-check-cronjob.yaml"  # the check follows what serves
            doc = yaml.load(drift.read_text())
            [container] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            next(e for e in container["env"] if e["name"] == "RELEASEBOT_SERVED_VERSION")["value"] = "1"
            with drift.open("w") as f:
                yaml.dump(doc, f)
    git(checkout, *GIT_ID, "commit", "--quiet", "-am", "Serve version 1 everywhere")


def dev_version(remote: Path, name: str) -> str:
    text = git(remote, "show", f"main:dev/{name}/inferenceservice.yaml")
    return re.search(r"releasebot\.dev/version: ['\"]?(\d+)", text).group(1)


def flip(version: str) -> str:
    return "1" if version == "2" else "2"


@dataclass
class Figure:
    runs: list[Run]
    floors: dict[str, float]  # part -> seconds

    @property
    def seconds(self) -> float | None:
        """The median, or None when a run failed or timed out."""
        return statistics.median(r.wall for r in self.runs) if all(r.code == 0 for r in self.runs) else None

    @property
    def floor(self) -> float:
        return sum(self.floors.values())


SKIPPED: dict[str, str] = {}  # figure -> why it is not tried again at a larger N


class Fleet:
    """One N: its MLflow server and repositories, and the figures measured on them."""

    def __init__(self, tmp: Path, n: int, url: str) -> None:
        from mlflow.tracking import MlflowClient

        self.tmp, self.n, self.url = tmp, n, url
        self.client = MlflowClient(url, registry_uri=url)
        self.seed, self.remote, self.work = tmp / "seed", tmp / "remote.git", tmp / "work"
        self.env = {**os.environ, "MLFLOW_TRACKING_URI": url}
        self.loop = ["--repo", str(self.remote), "--workdir", str(self.work)]
        self.figures: dict[str, Figure] = {}

    def releasebot(self, *args: str) -> Run:
        log = self.tmp / "server.log"  # the server's access log: one line per request
        before = log.read_text(errors="replace").count(" /api/")
        r = run([str(BIN / "releasebot"), *args], self.env)
        r.requests = log.read_text(errors="replace").count(" /api/") - before
        return r

    def commits(self) -> int:
        return int(git(self.remote, "rev-list", "--count", "main"))

    def measure(self, name: str, step, floors: dict[str, float], repeat: int = 3) -> Run | None:
        """``step()`` returns a Run; repeated while fast and successful. None when skipped."""
        if name in SKIPPED:
            return None
        figure = self.figures.setdefault(name, Figure([], floors))
        for _ in range(repeat):
            figure.runs.append(r := step())
            if r.code != 0 or r.wall > REPEAT_UNDER:
                break
        if r.code is None:
            SKIPPED[name] = f"timed out at N={self.n}"
        return r

    # -- floors -------------------------------------------------------------------------------

    def floor_mlflow(self, mode: str, arg: str) -> float:
        r = run([sys.executable, "-c", MLFLOW_FLOOR, self.url, mode, arg], self.env)
        assert r.code == 0, r.err[-2000:]
        return r.wall

    def floor_yaml(self, files: list[str]) -> float:
        listing = self.tmp / "floor-files.txt"
        listing.write_text("\n".join(str(self.seed / f) for f in files))
        r = run([sys.executable, "-c", YAML_FLOOR, str(listing)])
        assert r.code == 0, r.err[-2000:]
        return r.wall

    def floor_git(self, commits: int) -> float:
        """``fetch``, then ``commits`` one-file commits, each pushed (at most GIT_SAMPLE timed, then scaled),
        against a copy of the remote."""
        clone = self.tmp / "floor-work"
        if not clone.exists():
            for args in (
                ["--bare", str(self.remote), str(self.tmp / "floor.git")],
                [str(self.tmp / "floor.git"), str(clone)],
            ):
                subprocess.run(["git", "clone", "--quiet", *args], check=True)
        start = time.perf_counter()
        git(clone, "fetch", "--quiet", "origin")
        fetch = time.perf_counter() - start
        sample = min(commits, GIT_SAMPLE)
        start = time.perf_counter()
        for _ in range(sample):
            with (clone / "dev" / model_name(0) / "inferenceservice.yaml").open("a") as f:
                f.write(f"# {uuid.uuid4().hex}\n")
            git(clone, *GIT_ID, "commit", "--quiet", "-am", "floor")
            git(clone, "push", "--quiet", "origin", "HEAD:main")
        return fetch + ((time.perf_counter() - start) / sample * commits if sample else 0.0)


def median_of(fn) -> float:
    """The median of 3 calls of ``fn``, or its first result when that took over REPEAT_UNDER seconds."""
    first = fn()
    return first if first > REPEAT_UNDER else statistics.median([first, fn(), fn()])


def yaml_files(root: Path, *patterns: str) -> list[str]:
    found = {p.relative_to(root).as_posix() for pattern in patterns for p in root.glob(pattern)}
    return sorted(f for f in found if not f.startswith(".git/"))


def bench_fleet(tmp_path: Path) -> None:
    results = {n: measure_fleet(tmp_path / f"n{n}", n) for n in SIZES}
    report_targets(results)


def measure_fleet(tmp: Path, n: int) -> dict[str, Figure]:
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    run_ids = register_fleet(tmp, n)
    setup = [f"registration {time.perf_counter() - start:.1f} s"]
    with mlflow_server(tmp) as url:
        fleet = Fleet(tmp, n, url)
        catalog = tmp / "catalog" / "releasebot.yaml"
        catalog.parent.mkdir()
        catalog.write_text(fleet_catalog(n, url))
        init = fleet.releasebot("init", str(fleet.seed), "--catalog", str(catalog))
        if init.code != 0:
            why = "timed out" if init.code is None else init.err.strip()[:300]
            print(f"\n  N={n}: skipped, `releasebot init` refused the catalog: {why}")
            return {}
        setup.append(f"init {init.wall:.1f} s")
        start = time.perf_counter()
        settle(fleet.seed, n, run_ids)
        subprocess.run(["git", "clone", "--quiet", "--bare", str(fleet.seed), str(fleet.remote)], check=True)
        subprocess.run(["git", "clone", "--quiet", str(fleet.remote), str(fleet.work)], check=True)
        setup.append(f"settle and clone {time.perf_counter() - start:.1f} s")
        print(f"\n  N={n} ({n * 3} InferenceServices; set up: {', '.join(setup)})")
        run_fleet(fleet)
        print_table(fleet)
        return fleet.figures


def run_fleet(fleet: Fleet) -> None:
    n, tmp = fleet.n, fleet.tmp
    pass_files = yaml_files(
        fleet.seed, "releasebot.yaml", "*/*/inferenceservice.yaml", "*/karpenter/nodepool*.yaml", "*/*/retrain-*.yaml"
    )
    serving = tmp / "serving.json"  # model -> versions dev serves, beyond the aliased ones
    serving.write_text("{}")

    def noop() -> Run:
        r = fleet.releasebot("reconcile", *fleet.loop)
        assert r.code is None or "Nothing to change" in r.out, r.out[-2000:] + r.err[-2000:]
        return r

    noop_floors = {
        "mlflow": median_of(lambda: fleet.floor_mlflow("full", str(serving))),
        "git": median_of(lambda: fleet.floor_git(0)),
        "yaml": median_of(lambda: fleet.floor_yaml(pass_files)),
    }
    fleet.measure("no-op pass", noop, noop_floors)

    served = {model_name(i): "1" for i in range(n)}
    picks = [model_name(i % n) for i in range(3)]
    events = iter(range(3))

    def one_event() -> Run:
        name = picks[next(events)]
        target = flip(dev_version(fleet.remote, name))
        fleet.client.set_registered_model_alias(name, "candidate", target)
        before = fleet.commits()
        r = fleet.releasebot("reconcile", *fleet.loop, "--model", name, "--env", "dev")
        if r.code == 0:
            assert fleet.commits() == before + 1, r.out + r.err
            served[name] = target
        return r

    event_files = ["releasebot.yaml", f"dev/{picks[0]}/inferenceservice.yaml", "dev/karpenter/nodepool.yaml"]
    event_floors = {
        "mlflow": median_of(lambda: fleet.floor_mlflow("event", f"{picks[0]},1,2")),
        "git": median_of(lambda: fleet.floor_git(1)),
        "yaml": median_of(lambda: fleet.floor_yaml(event_files)),
    }
    fleet.measure("one event", one_event, event_floors)

    if "full pass" not in SKIPPED:
        start = time.perf_counter()
        move_candidates(tmp, {name: flip(v) for name, v in served.items()})
        assert fleet.client.get_registered_model(picks[0]).aliases["candidate"] == flip(served[picks[0]])
        print(f"    (@candidate of {n} models moved in {time.perf_counter() - start:.1f} s)")
        serving.write_text(json.dumps({name: [v] for name, v in served.items()}))
        full_floors = {
            "mlflow": fleet.floor_mlflow("full", str(serving)),
            "git": fleet.floor_git(n),
            "yaml": noop_floors["yaml"],
        }
        before = fleet.commits()
        full = fleet.measure("full pass", lambda: fleet.releasebot("reconcile", *fleet.loop), full_floors, repeat=1)
        if full is not None and full.code == 0:
            assert fleet.commits() - before == n, f"{fleet.commits() - before} commits for {n} models"
            if "no-op pass" in fleet.figures:
                fleet.figures["no-op pass"].runs.append(noop())

    validate_files = yaml_files(fleet.seed, "**/*.yaml", "**/*.yml")
    fleet.measure(
        "validate", lambda: fleet.releasebot("validate", str(fleet.seed)), {"yaml": fleet.floor_yaml(validate_files)}
    )


def print_table(fleet: Fleet) -> None:
    head = ("figure", "seconds", "floor", "ratio", "peak MB", "requests")
    print("    {:12s} {:>8s} {:>7s} {:>7s} {:>8s} {:>8s}  floor parts (s); runs (s)".format(*head))
    for name, fig in fleet.figures.items():
        parts = " + ".join(f"{k} {v:.2f}" for k, v in fig.floors.items())
        peak = max(r.peak_mb for r in fig.runs)
        if fig.seconds is None:
            bad = next(r for r in fig.runs if r.code != 0)
            why = f"timed out after {bad.wall:.0f} s" if bad.code is None else f"failed: {bad.err.strip()[-200:]}"
            print(f"    {name:12s} {why}; floor {fig.floor:.2f} = {parts}")
            continue
        runs = ", ".join(f"{r.wall:.1f}" for r in fig.runs)
        ratio = fig.seconds / fig.floor
        figures = f"{fig.seconds:8.2f} {fig.floor:7.2f} {ratio:6.1f}x {peak:8.0f} {fig.runs[0].requests:8d}"
        print(f"    {name:12s} {figures}  {parts}; {runs}")
    for name, why in SKIPPED.items():
        if name not in fleet.figures:
            print(f"    {name:12s} not tried: {why}")


def report_targets(results: dict[int, dict[str, Figure]]) -> None:
    """The issue's targets, from whatever was measured."""

    def seconds(n: int, name: str) -> float | None:
        fig = results.get(n, {}).get(name)
        return fig.seconds if fig else None

    print("\n  targets (issue 10)")
    for name, small, large, target in (("one event", 10, 1000, 1.5), ("full pass", 100, 1000, 12)):
        a, b = seconds(small, name), seconds(large, name)
        got = f"{b / a:.2f}x" if a and b else "not measured"
        print(f"    {name}, N={small} -> N={large}: {got} (target <= {target}x)")
    big = results.get(1000, {})
    if (noop := big.get("no-op pass")) and noop.seconds:
        base = noop.floors["mlflow"] + noop.floors["git"]
        print(f"    no-op pass at N=1000: {noop.seconds / base:.2f}x the MLflow + git floor (target <= 2x)")
    if (validate := big.get("validate")) and validate.seconds:
        print(f"    validate at N=1000: {validate.seconds / validate.floor:.2f}x ruamel load+dump (target <= 2x)")
    if big:
        print(
            f"    peak RSS at N=1000: {max(r.peak_mb for f in big.values() for r in f.runs):.0f} MB (target <= 400 MB)"
        )
