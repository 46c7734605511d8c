"""``releasebot demo``: the release loop end to end on a laptop, with no account and no network.

MLflow runs embedded on SQLite under ``DIR/mlflow``; tiny scikit-learn versions are trained and
registered; ``init`` creates ``DIR/environments`` (a local git repository). The environments
release in promotion order: ``dev`` by direct commit first, then ``staging`` and ``production`` as
bot branches, each only once the one before serves the version — a person's merge of staging's
branch is what lets production's be proposed. Then a new version follows the same road.
Everything is left under DIR to look at. This module is a script around the
real commands; it adds no behaviour of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bot import yamlio
from bot.catalog import CATALOG_FILE
from bot.errors import UsageError

MODEL = "iris-classifier"


def _catalog(tracking_uri: str, artifacts: Path) -> str:
    return f"""# yaml-language-server: $schema=.releasebot/catalog.schema.json
# The demo's catalog: MLflow on SQLite beside it, and a local git repository as the remote.
version: 1
registry:
  trackingUri: {tracking_uri}
  # KServe cannot read this laptop's disk; in a cluster the artifacts would sit on a volume.
  storageUriMap:
    "{artifacts.as_uri()}/": pvc://mlflow-artifacts/
repository:
  url: {artifacts.parent.parent.joinpath("environments").as_posix()}
cluster:
  name: demo
karpenter:
  nodeRole: KarpenterNodeRole-demo
environments:
  - name: dev
    alias: candidate
    namespace: models-dev
    writeBack: commit
    scaleToZero: true
  - name: staging
    alias: champion
    namespace: models-staging
    writeBack: branch
  - name: production
    alias: champion
    namespace: models-production
    writeBack: branch
models:
  - name: {MODEL}
    registeredModel: {MODEL}
    serving:
      format: mlflow
      protocolVersion: v2
    resources:
      cpu: 250m
      memory: 512Mi
    replicas:
      min: 0
      max: 2
"""


def _train(tracking_uri: str, c: float) -> str:
    """Train and register one version; return its version number."""
    import mlflow
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("iris")
    frame = load_iris(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=7)
    with mlflow.start_run():
        model = LogisticRegression(C=c, max_iter=500).fit(x_train, y_train)
        predicted = model.predict(x_test)
        mlflow.log_params({"C": c, "max_iter": 500})
        mlflow.log_metrics(
            {
                "accuracy": float(accuracy_score(y_test, predicted)),
                "f1_macro": float(f1_score(y_test, predicted, average="macro")),
            }
        )
        mlflow.log_input(
            mlflow.data.from_pandas(frame, source="sklearn.datasets.load_iris", name="iris"), context="training"
        )
        mlflow.set_tag("dvc.rev", "demo-0001")
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=MODEL, serialization_format="cloudpickle"
        )
    return str(info.registered_model_version)


def _merge(repo: Path, branch: str) -> None:
    """What a reviewer does in the demo: merge a bot branch into main (the repo is not bare)."""
    who = ["-c", "user.name=Reviewer", "-c", "user.email=reviewer@example.com"]
    _git(repo, *who, "merge", "--quiet", "--no-ff", "-m", f"Merge {branch}", branch)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def summary(directory: Path) -> dict[str, object]:
    """Where a finished demo left everything (``releasebot demo --output json``)."""
    directory = directory.resolve()
    envs = directory / "environments"
    branches = _git(envs, "branch", "--format=%(refname:short)").split()
    return {
        "directory": str(directory),
        "environments": str(envs),
        "tracking_uri": f"sqlite:///{(directory / 'mlflow' / 'mlflow.db').as_posix()}",
        # Children before parents, whatever the clock: commits of one pass share a second.
        "main": _git(envs, "log", "--topo-order", "--format=%s", "main").splitlines(),
        "branches": sorted(b for b in branches if b != "main"),
    }


def run_demo(directory: Path, say=print) -> int:
    # MLflow's fluent API is process-global, and set_tracking_uri also exports MLFLOW_TRACKING_URI:
    # put both back so that nothing after the demo (in the same process) talks to its store.
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        return _run_demo(directory, say)
    finally:
        import mlflow

        if saved is None:
            mlflow.set_tracking_uri(None)
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            mlflow.set_tracking_uri(saved)


def _run_demo(directory: Path, say) -> int:
    import logging
    import warnings

    from bot.generate import init_environments

    # The demo shows releasebot's output; MLflow's own notices would drown it.
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    directory = directory.resolve()
    marker = directory / ".releasebot-demo"
    if directory.exists() and any(directory.iterdir()):
        if not marker.exists():
            raise UsageError(f"{directory} exists and was not made by `releasebot demo`; choose another --dir")
        shutil.rmtree(directory)  # our own earlier demo: start afresh
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text("made by releasebot demo; removed by the next run\n")
    mlflow_dir = directory / "mlflow"
    artifacts = mlflow_dir / "artifacts"
    artifacts.mkdir(parents=True)
    tracking_uri = f"sqlite:///{(mlflow_dir / 'mlflow.db').as_posix()}"

    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name("iris") is None:
        mlflow.create_experiment("iris", artifact_location=artifacts.as_uri())
    say("== 1. MLflow on SQLite: training iris-classifier")
    v1 = _train(tracking_uri, 0.05)
    client = MlflowClient(tracking_uri)
    client.set_registered_model_alias(MODEL, "candidate", v1)
    client.set_registered_model_alias(MODEL, "champion", v1)
    say(f"   registered v{v1} (@candidate and @champion)")

    catalog = directory / "catalog" / CATALOG_FILE
    catalog.parent.mkdir()
    catalog.write_text(_catalog(tracking_uri, artifacts))
    envs = directory / "environments"
    say("\n== 2. releasebot init")
    made = init_environments(envs, catalog)
    say(f"Created {made.path} ({made.files} files, commit {made.commit[:12]} on {made.branch}).")
    loop = _Loop(envs, directory / "workdir", tracking_uri, say)

    say("\n== 3. releasebot plan / reconcile: environments release in the catalog's order")
    loop.plan()
    if not loop.reconcile():
        return 1
    say("\n   dev serves it now, so staging's branch is proposed; production waits for staging")
    if not loop.reconcile():
        return 1
    say("\n   a person merges staging's branch; production's is proposed")
    _merge(envs, "releasebot/staging/iris-classifier/release")
    if not loop.reconcile():
        return 1

    say("\n== 4. A new version: v2 becomes @candidate and @champion")
    v2 = _train(tracking_uri, 1.0)
    client.set_registered_model_alias(MODEL, "candidate", v2)
    client.set_registered_model_alias(MODEL, "champion", v2)
    loop.plan()
    if not loop.reconcile():
        return 1
    say("\n   dev first; staging's branch moves to v2 once dev serves it")
    if not loop.reconcile():
        return 1
    say("\n== 5. Reconciling again changes nothing")
    loop.reconcile()

    say("\n== Summary")
    say(_git(envs, "log", "--oneline", "--all", "--decorate").rstrip())
    say("\nhistory of iris-classifier:")
    loop.history(MODEL)
    say("\nproposed for staging (branch releasebot/staging/iris-classifier/release):")
    say(_git(envs, "diff", "main", "releasebot/staging/iris-classifier/release").rstrip())
    served = yamlio.to_plain(yamlio.load_file(envs / "dev" / MODEL / "inferenceservice.yaml"))
    say(
        f"\ndev serves v{served['metadata']['annotations']['releasebot.dev/version']} from "
        f"{served['spec']['predictor']['model']['storageUri']}"
    )
    say(f"\nEverything is under {directory}: mlflow/ (the store), environments/ (the repo).")
    return 0


class _Loop:
    """The release loop's library calls, printed the way the CLI prints them."""

    def __init__(self, envs: Path, workdir: Path, tracking_uri: str, say) -> None:
        from bot.forge import forges
        from bot.registry import Registry, registry_cache
        from bot.repo import EnvRepo, local_or_url

        self.repo = EnvRepo(local_or_url(str(envs)), workdir)
        self.say = say
        self.registry_for = lambda cat: Registry(
            tracking_uri, cat.storage_uri_map, cache_file=registry_cache(self.repo.cache_dir)
        )
        self.forge_for = forges(self.repo, os.environ)

    def plan(self) -> None:
        from bot.commands import plan_rows, text_table
        from bot.reconcile import make_plan

        _, p = make_plan(self.repo, self.registry_for)
        rows = plan_rows(p)
        columns = ["environment", "model", "action", "from", "to", "detail"]
        self.say(
            "\n".join(text_table(rows, columns))
            if rows
            else "Nothing to do: every environment serves what its alias says."
        )

    def reconcile(self) -> bool:
        from bot.reconcile import reconcile

        result = reconcile(self.repo, self.registry_for, self.forge_for)
        for line in result.done:
            self.say(line)
        for note in result.plan.notes:
            kind = "error" if note.error else "note"
            print(f"{kind}: {note.key.environment}/{note.key.model}: {note.message}", file=sys.stderr)
        if not result.done:
            self.say("Nothing to change.")
        return not result.plan.errors

    def history(self, model: str) -> None:
        from bot.commands import text_table

        self.repo.sync()
        rows = [
            {"date": r.date, "environment": r.environment, "version": r.version, "run": r.run, "commit": r.sha[:12]}
            for r in self.repo.history(model)
        ]
        self.say("\n".join(text_table(rows, ["date", "environment", "version", "run", "commit"])))
