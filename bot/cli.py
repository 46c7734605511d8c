"""The ``releasebot`` command: parse arguments, call the core, map errors to exit codes.

Exit codes: 0 success; 1 the thing checked is not OK (``validate`` problems, ``render --check``
differences) or input was refused; 2 usage errors (argparse); 3 an upstream failure a retry may
cure (``retrain submit``: KFP answered 5xx or 429, or did not answer). Problems go to stderr,
results to stdout. No business logic lives here.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import __version__, capacity, logs, pipelines, settings
from bot.blueprints import BlueprintSet
from bot.catalog import CATALOG_FILE, Catalog, load_catalog
from bot.commands import plan_rows, text_table, walk_text
from bot.errors import ConfigError, InvalidInput, ReleasebotError, UpstreamError
from bot.forge import forges
from bot.generate import init_environments
from bot.manifests.render import as_json, canaries_in, dir_reader, list_files, plan_render, write_changes
from bot.plan import Change, Note
from bot.reconcile import Watch, make_plan, observe, pin_change, reconcile, watch_from, write_back
from bot.redact import redact
from bot.registry import Registry, registry_cache
from bot.repo import EnvRepo, default_workdir, local_or_url
from bot.validate import validate_repo


def _fail(message: str) -> int:
    # Git's and MLflow's messages quote the URL they were given, credentials and all.
    print(redact(f"releasebot: {message}"), file=sys.stderr)
    return 1


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        return _fail(f"{target} already exists and is not empty; nothing was written")
    made = init_environments(target, Path(args.catalog))
    print(f"Created {made.path} ({made.files} files, commit {made.commit[:12]} on {made.branch}).")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    cat = load_catalog(root / CATALOG_FILE, CATALOG_FILE)
    plan = plan_render(cat, BlueprintSet(cat.blueprints), dir_reader(root), list_files(root), prune=args.prune)
    if args.output == "json":
        print(as_json(plan))
    if args.check:
        if args.output != "json":
            for change in plan.changes:
                print(change.describe())
                if args.diff and change.action == "update":
                    sys.stdout.writelines(
                        difflib.unified_diff(
                            (change.old or "").splitlines(True),
                            (change.new or "").splitlines(True),
                            f"a/{change.path}",
                            f"b/{change.path}",
                        )
                    )
            for orphan in plan.orphans:
                print(f"orphan {orphan}")
        if plan.changes:
            print(f"{len(plan.changes)} file(s) differ from the catalog; run `releasebot render`.", file=sys.stderr)
            return 1
        return 0
    write_changes(root, plan.changes)
    if args.output != "json":
        for change in plan.changes:
            print(change.describe())
        for orphan in plan.orphans:
            print(f"orphan {orphan} (kept; --prune removes it)")
        if not plan.changes:
            print("Up to date.")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    report = validate_repo(Path(args.dir))
    if args.output == "json":
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "filesChecked": report.files_checked,
                    "problems": [p.as_dict() for p in report.problems],
                },
                indent=2,
            )
        )
    else:
        for problem in report.problems:
            print(problem, file=sys.stderr)
        summary = f"{report.files_checked} file(s) checked, {len(report.problems)} problem(s)"
        print(("OK: " if report.ok else "FAILED: ") + summary)
    return 0 if report.ok else 1


# --- the release loop ------------------------------------------------------------------------


def _repo(args: argparse.Namespace) -> EnvRepo:
    remote = local_or_url(args.repo or settings.REPO.get(os.environ) or ".")
    workdir = Path(args.workdir) if args.workdir else default_workdir(remote)
    return EnvRepo(remote, workdir, workdir_wait=settings.WORKDIR_WAIT.seconds(os.environ))


def _registry_for(args: argparse.Namespace):
    def make(cat: Catalog) -> Registry:
        uri = args.tracking_uri or settings.TRACKING_URI.get(os.environ) or cat.tracking_uri
        return Registry(uri, cat.storage_uri_map, cache_file=registry_cache(_repo(args).cache_dir))

    return make


def _watch(args: argparse.Namespace) -> Watch:
    config = dict(os.environ)
    if getattr(args, "kubeconfig", None):
        config[settings.KUBECONFIG.name] = args.kubeconfig
    if getattr(args, "context", None):
        config[settings.KUBE_CONTEXT.name] = args.context
    return watch_from(config)


def _forge_for(repo: EnvRepo):
    return forges(repo, os.environ)


def _print_table(rows: list[dict[str, str]], columns: list[str]) -> None:
    print("\n".join(text_table(rows, columns)))


def cmd_capacity(args: argparse.Namespace) -> int:
    repo = _repo(args)
    cat, state, _ = observe(repo, _registry_for(args))
    rows = []
    for env in cat.environments:
        if args.env in (None, env.name):
            canaries = canaries_in(cat, env, state.main_files.get)
            rows += capacity.report(cat, env, canaries)
    if args.output == "json":
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows, list(rows[0]) if rows else ["environment"])
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    if args.capacity:
        return cmd_capacity(args)
    _, p = make_plan(_repo(args), _registry_for(args), args.env, args.model, _watch(args))
    rows = plan_rows(p)
    if args.output == "json":
        print(json.dumps({"changes": rows, "ok": not p.errors}, indent=2))
    elif rows:
        _print_table(rows, ["environment", "model", "action", "from", "to", "detail"])
    else:
        print("Nothing to do: every environment serves what its alias says.")
    return 1 if p.errors else 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    repo = _repo(args)
    result = reconcile(repo, _registry_for(args), _forge_for(repo), args.env, args.model, _watch(args))
    for line in result.done:
        print(redact(line))
    for w in result.plan.walks:
        print(redact(f"walk {w.key.environment}/{w.key.model} v{w.version}: {walk_text(w)}"))
    for line in result.skipped:
        print(redact(line), file=sys.stderr)
    for note in result.plan.notes:
        print(
            redact(f"{'error' if note.error else 'note'}: {note.key.environment}/{note.key.model}: {note.message}"),
            file=sys.stderr,
        )
    if not result.done:
        print("Nothing to change.")
    return 1 if result.plan.errors else 0


def cmd_history(args: argparse.Namespace) -> int:
    repo = _repo(args)
    repo.sync()
    releases = repo.history(args.model, args.env)
    if args.output == "json":
        print(json.dumps([r.__dict__ for r in releases], indent=2))
        return 0
    if not releases:
        print(f"No releases of {args.model} on record.")
        return 0
    _print_table(
        [
            {"date": r.date, "environment": r.environment, "version": r.version, "run": r.run, "commit": r.sha[:12]}
            for r in releases
        ],
        ["date", "environment", "version", "run", "commit"],
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The status page's rows, looked at now (a plan is made, nothing is written)."""
    from datetime import UTC, datetime

    from bot import status, statuspage
    from bot.reconcile import observe_plan

    at = datetime.now(UTC)
    cat, state, snapshot, p = observe_plan(_repo(args), _registry_for(args), watch=_watch(args))
    rows = status.rows(cat, state, snapshot, p, at)
    if args.output == "json":
        print(redact(statuspage.document(rows, at)))
    elif args.output == "html":
        print(redact(statuspage.html(rows, at)), end="")
    else:
        print(redact(statuspage.table(rows)))
    return 0


def _loop_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", help="path or URL of the environments repo (default: $RELEASEBOT_REPO or .)")
    p.add_argument("--workdir", help="where releasebot keeps its clone (default: a cache folder)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the catalog's)")
    p.add_argument(
        "--kubeconfig",
        help="kubeconfig for reading Argo CD and KServe status during canary walks "
        "(default: $RELEASEBOT_KUBECONFIG or $KUBECONFIG; in a pod, its service account)",
    )
    p.add_argument("--context", help="kubeconfig context (default: $RELEASEBOT_KUBE_CONTEXT or the current one)")


def _write_one(repo: EnvRepo, change: Change | Note) -> int:
    if isinstance(change, Note):
        return _fail(change.message + ("" if not change.error else "; nothing was written"))
    print(redact(write_back(repo, change, _forge_for(repo))))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    repo = _repo(args)
    return _write_one(repo, pin_change(repo, _registry_for(args), "rollback", args.env, args.model, args.to))


def cmd_unblock(args: argparse.Namespace) -> int:
    repo = _repo(args)
    return _write_one(repo, pin_change(repo, _registry_for(args), "unblock", args.env, args.model, args.version))


def cmd_drift_run(args: argparse.Namespace) -> int:
    from bot import drift

    job = drift.DriftJob(
        model=args.model,
        environment=args.env,
        registered_model=args.registered_model or args.model,
        alias=args.alias,
        current=args.current,
        reference=args.reference,
        drift_share=args.drift_share,
        sample=args.sample,
        action=args.action,
        method=args.method,
        threshold=args.threshold,
        columns=tuple(drift.parse_column(c) for c in args.column),
        version=args.version or None,
    )
    uri = args.tracking_uri or settings.TRACKING_URI.get(os.environ)
    if not uri:
        return _fail("no MLflow tracking URI: set MLFLOW_TRACKING_URI or --tracking-uri")
    result = drift.run(job, Registry(uri))
    drifted = [c["column"] for c in result["columnResults"] if c["drifted"]]
    print(
        f"{job.model} v{result['version']} in {job.environment}: {result['status']} "
        f"({result['driftedColumns']}/{result['columns']} columns drifted: {', '.join(drifted) or 'none'}; "
        f"MLflow run {result['runId']})"
    )
    return 1 if args.fail_on_drift and result["datasetDrift"] else 0


# A retry may succeed: the retrain CronJob's podFailurePolicy leaves this code to backoffLimit.
EXIT_TRANSIENT = 3


def cmd_retrain_submit(args: argparse.Namespace) -> int:
    try:
        request = pipelines.RunRequest(
            endpoint=args.endpoint,
            display_name=args.display_name,
            pipeline_id=args.pipeline_id,
            pipeline_version_id=args.pipeline_version_id,
            experiment_id=args.experiment_id,
            description=args.description,
            parameters=tuple(pipelines.parse_parameter(p) for p in args.parameter),
        )
        token = pipelines.read_token(args.token_file or settings.PIPELINES_TOKEN_FILE.get(os.environ))
        if token is None:
            # Said out loud: a KFP that requires authentication will answer 401/403 below.
            print(
                f"releasebot: no pipelines token ({pipelines.TOKEN_FILE_ENV} unset): "
                "submitting without an Authorization header",
                file=sys.stderr,
            )
        answer = pipelines.submit(request, token, timeout=args.timeout)
    except ConfigError as exc:
        return _fail(str(exc))
    except UpstreamError as exc:
        print(redact(f"releasebot: {exc}"), file=sys.stderr)
        return EXIT_TRANSIENT if exc.retryable else 1
    print(
        f"Submitted {request.display_name}: KFP run {answer.get('run_id') or '(no run_id in the answer)'} "
        f"of pipeline {request.pipeline_id}"
    )
    return 0


# --- setting releasebot up: the GitHub App and the MLflow webhook ----------------------------


def _setup_failed(exc: ReleasebotError) -> int:
    """2 for what the person typed, 3 when a retry may help, 1 for other refusals."""
    print(redact(f"releasebot: {exc}"), file=sys.stderr)
    if isinstance(exc, ConfigError):
        return 2
    return EXIT_TRANSIENT if exc.retryable else 1


def cmd_app_manifest(args: argparse.Namespace) -> int:
    from bot import githubapp

    try:
        url = githubapp.base_url(args.url)
        github = githubapp.base_url(args.github_url, "--github-url")
        # App names are unique across GitHub; an organisation's own name makes a free one likely.
        name = args.name or (f"releasebot-{args.org}"[: githubapp.MAX_NAME] if args.org else None)
        app = githubapp.manifest(url, name)
        state = githubapp.new_state()
        post = githubapp.register_url(state, args.org, github)
    except ConfigError as exc:
        return _setup_failed(exc)
    page = githubapp.registration_page(app, post)
    if args.form:
        try:
            Path(args.form).write_text(page)
        except OSError as exc:
            return _setup_failed(ConfigError(f"--form {args.form}: {exc.strerror or exc}"))
    if args.output == "json":
        report = {"manifest": app, "register_url": post, "state": state, "form": args.form}
        print(json.dumps(report, indent=2))
        return 0
    print(json.dumps(app, indent=2))
    where = f"Open {args.form} in a browser" if args.form else "Save the page below as register.html, open it"
    print(
        f"\n{where} and press the button: it posts this manifest to {post.split('?')[0]}.\n"
        f"GitHub then sends you to {app['redirect_url']}?code=...; run `releasebot app exchange CODE --out DIR`\n"
        "within the hour. (While releasebot is not running there yet, the browser cannot show that page:\n"
        "the code is in its address bar.)\n"
        f"State: {state} (the setup page shows the state GitHub sent back: it must be this one)."
    )
    if not args.form:
        print("\n" + page, end="")
    return 0


def cmd_app_exchange(args: argparse.Namespace) -> int:
    from bot import githubapp

    out = Path(args.out)
    try:
        githubapp.check_out_dir(out)  # before the one-time code is spent
        credentials = githubapp.exchange(args.code, settings.GITHUB_API_URL.get(os.environ) or settings.GITHUB_API)
        files = githubapp.write_credentials(credentials, out)
    except ReleasebotError as exc:
        return _setup_failed(exc)
    kubectl = githubapp.kubectl_command(files, args.namespace, args.secret)
    install = githubapp.install_url(credentials)
    if args.output == "json":
        report = {
            "app_id": credentials.app_id,
            "slug": credentials.slug,
            "owner": credentials.owner,
            "html_url": credentials.html_url,
            "install_url": install,
            "files": {name: str(path) for name, path in files.items()},
            "secret_keys": {name: githubapp.FILES[name] for name in files},
            "kubectl": kubectl,
        }
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"Registered the GitHub App {credentials.slug} (id {credentials.app_id}) of {credentials.owner}: "
        f"{credentials.html_url}\n"
        f"Wrote {', '.join(files)} to {out} (readable only by you); GitHub's OAuth client secret was not kept, "
        "releasebot does not use it.\n\n"
        f"1. releasebot's Secret (the catalog's bot.namespace and bot.secretName):\n\n{kubectl}\n\n"
        f"2. Install the App on the environments repository: {install}\n"
        "3. Register the MLflow webhook: releasebot mlflow webhook create --url URL "
        f"--secret-file {files['mlflow-webhook-secret']}"
    )
    return 0


def cmd_mlflow_webhook_create(args: argparse.Namespace) -> int:
    from bot import githubapp, mlflowhooks

    try:
        # MLflow may deliver inside the cluster over plain http (when its server allows it).
        url = githubapp.base_url(args.url, allow_http=True) + githubapp.MLFLOW_HOOK_PATH
        uri = args.tracking_uri or settings.TRACKING_URI.get(os.environ)
        if not uri:
            raise ConfigError(f"no MLflow tracking URI: set {settings.TRACKING_URI.name} or --tracking-uri")
        if args.secret_file:
            secret = mlflowhooks.read_secret(Path(args.secret_file))
        else:
            secret = settings.MLFLOW_WEBHOOK_SECRET.get(os.environ) or ""
        if not secret:
            # A webhook without a secret sends unsigned deliveries, which serve refuses.
            raise ConfigError(f"no secret: --secret-file, or {settings.MLFLOW_WEBHOOK_SECRET.name}")
        registry = Registry(uri)
        done = mlflowhooks.ensure(registry, url, secret, args.name)
        tested = mlflowhooks.test(registry, done.webhook_id) if args.test else None
    except ReleasebotError as exc:
        return _setup_failed(exc)
    failed = tested is not None and not tested.success
    if args.output == "json":
        report = {
            "action": done.action,
            "webhook_id": done.webhook_id,
            "name": done.name,
            "url": done.url,
            "events": list(done.events),
            "duplicates": list(done.duplicates),
            "test": None
            if tested is None
            else {"success": tested.success, "status": tested.status, "said": tested.said},
        }
        print(json.dumps(report, indent=2))
        return 1 if failed else 0
    events = ", ".join(done.events)
    print(f"{done.action.capitalize()} MLflow webhook {done.webhook_id} ({done.name}): {done.url} for {events}")
    if done.duplicates:
        print(f"Also registered for this URL, left alone: {', '.join(done.duplicates)} (each delivers again)")
    if tested is not None:
        answer = f"answered {tested.status}" if tested.status is not None else "no answer"
        verdict = "accepted" if tested.success else "not accepted"
        print(f"MLflow's test delivery: {verdict}, {answer}: {tested.said or '(empty)'}")
    return 1 if failed else 0


def serve_config(args: argparse.Namespace) -> dict[str, str]:
    """Flags over the environment over ``--config``."""
    from bot.serve import load_config

    config = load_config(os.environ, Path(args.config) if args.config else None)
    flags = {
        settings.REPO.name: args.repo,
        settings.WORKDIR.name: args.workdir,
        settings.TRACKING_URI.name: args.tracking_uri,
    }
    if args.resync is not None:
        flags[settings.RESYNC_SECONDS.name] = str(args.resync)
    config.update({k: v for k, v in flags.items() if v})
    return config


def build_server(args: argparse.Namespace, in_process: bool = False):  # -> (uvicorn.Server, Work); imported lazily
    """What ``releasebot serve`` runs: the uvicorn server, and the work behind it (a worker
    process, started and stopped with the server; ``in_process`` only for tests that mock HTTP)."""
    import uvicorn

    from bot.serve import build_receiver
    from bot.server import create_app

    receiver, work = build_receiver(serve_config(args), in_process=in_process)
    config = uvicorn.Config(create_app(receiver), host=args.host, port=args.port, log_level="info")
    return uvicorn.Server(config), work


def cmd_serve(args: argparse.Namespace) -> int:
    # uvicorn configures only its own loggers; releasebot's own lines are JSON, one per event and
    # per piece of work, for a log pipeline to count and search.
    logs.configure(args.log_level or "info", json_lines=True)
    server, _ = build_server(args)
    server.run()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return run_demo(Path(args.dir))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="releasebot", description="GitOps pull requests for ML model releases.")
    parser.add_argument("--version", action="version", version=f"releasebot {__version__}")
    parser.add_argument(
        "--log-level", choices=logs.LEVELS, help="what is logged to stderr (default: warning; info for serve)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create an environments repository from a catalog")
    p.add_argument("dir")
    p.add_argument("--catalog", required=True, help="the catalog file (releasebot.yaml)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("render", help="bring the manifests in line with the catalog")
    p.add_argument("dir", nargs="?", default=".")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when anything differs")
    p.add_argument("--diff", action="store_true", help="with --check: show the differences")
    p.add_argument("--prune", action="store_true", help="also delete orphan files in environment folders")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("validate", help="check the catalog and every manifest")
    p.add_argument("dir", nargs="?", default=".")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="what the release loop would change (writes nothing)")
    _loop_options(p)
    p.add_argument("--env")
    p.add_argument("--model")
    p.add_argument("--output", choices=["table", "json"], default="table")
    p.add_argument("--capacity", action="store_true", help="requests, limits, GPUs and a node estimate per environment")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("reconcile", help="carry out the plan: commits, branches, pull requests")
    _loop_options(p)
    p.add_argument("--env")
    p.add_argument("--model")
    p.set_defaults(func=cmd_reconcile)

    p = sub.add_parser("history", help="releases of a model, read back from the commit trailers on main")
    _loop_options(p)
    p.add_argument("model")
    p.add_argument("--env")
    p.add_argument("--output", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("status", help="every environment and model at a glance (what the serve page shows)")
    _loop_options(p)
    p.add_argument("--output", choices=["table", "json", "html"], default="table")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("rollback", help="pin the previous version in Git and block the one serving now")
    _loop_options(p)
    p.add_argument("model")
    p.add_argument("--env", required=True)
    p.add_argument("--to", help="the version to go back to (default: the release before the current one)")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("unblock", help="clear a rollback's pin, and unblock versions")
    _loop_options(p)
    p.add_argument("model")
    p.add_argument("--env", required=True)
    p.add_argument("--version", help="unblock only this version (default: all)")
    p.set_defaults(func=cmd_unblock)

    p = sub.add_parser("drift", help="the drift job the drift-check CronJob runs")
    drift_sub = p.add_subparsers(dest="drift_command", required=True)
    p = drift_sub.add_parser("run", help="compare the serving window with the reference; record the result in MLflow")
    p.add_argument("--model", required=True)
    p.add_argument("--env", "--environment", dest="env", required=True, help="the environment checked (tags carry it)")
    p.add_argument("--registered-model", help="MLflow registered model (default: --model)")
    p.add_argument("--alias", required=True, help="the alias whose version the environment serves")
    p.add_argument(
        "--version",
        help="the version the environment serves (its manifest, so pins and rollbacks are followed); "
        "checked instead of the alias's version. Empty: the alias's",
    )
    p.add_argument("--current", required=True, help="the serving window: Parquet or CSV, a path or fsspec URI")
    p.add_argument("--reference", help="reference data (default: the served version's training dataset)")
    p.add_argument("--drift-share", type=float, default=0.5, help="dataset drift when this share of columns drift")
    p.add_argument("--sample", type=int, default=100_000, help="rows sampled from each side (default 100000)")
    p.add_argument("--action", choices=["retrain", "alert", "none"], default="none")
    p.add_argument("--method", help="Evidently stat test for every column")
    p.add_argument("--threshold", type=float)
    p.add_argument("--column", action="append", default=[], help="COLUMN=METHOD[:THRESHOLD], repeatable")
    p.add_argument("--fail-on-drift", action="store_true", help="exit 1 when the dataset drifts")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    p.set_defaults(func=cmd_drift_run)

    p = sub.add_parser("retrain", help="the retraining trigger the retrain CronJob runs")
    retrain_sub = p.add_subparsers(dest="retrain_command", required=True)
    p = retrain_sub.add_parser("submit", help="submit one Kubeflow Pipelines run (v2beta1 CreateRun)")
    p.add_argument("--endpoint", required=True, help="KFP's runs endpoint, .../apis/v2beta1/runs")
    p.add_argument("--display-name", required=True)
    p.add_argument("--pipeline-id", required=True)
    p.add_argument("--pipeline-version-id", help="default: KFP runs the pipeline's latest version")
    p.add_argument("--experiment-id", help="default: KFP's default experiment")
    p.add_argument("--description")
    p.add_argument("--parameter", action="append", default=[], help="NAME=JSON runtime parameter, repeatable")
    p.add_argument(
        "--token-file",
        help=f"a file holding the bearer token (default: ${pipelines.TOKEN_FILE_ENV}; neither: no token is sent)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for KFP (default 30)")
    p.set_defaults(func=cmd_retrain_submit)

    p = sub.add_parser("serve", help="the webhook receiver: GitHub and MLflow events trigger reconciles")
    _loop_options(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--resync", type=float, help="seconds between full resyncs (default 300)")
    p.add_argument("--config", help="a YAML file of RELEASEBOT_* settings; the environment overrides it")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("app", help="register releasebot's GitHub App (GitHub's manifest flow)")
    app_sub = p.add_subparsers(dest="app_command", required=True)
    p = app_sub.add_parser("manifest", help="the App's manifest for this installation, and the page that registers it")
    p.add_argument("--url", required=True, help="where GitHub reaches releasebot, https://HOST[/PATH]")
    p.add_argument("--org", help="register under this organisation (default: your own account)")
    p.add_argument("--name", help="the App's name, unique on GitHub (default: releasebot-ORG, or releasebot)")
    p.add_argument("--form", help="write the registration page (an HTML form) to this file")
    p.add_argument("--github-url", default="https://github.com", help="GitHub Enterprise Server: its web address")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_app_manifest)
    p = app_sub.add_parser("exchange", help="trade GitHub's one-time code for the App's id, key and webhook secret")
    p.add_argument("code", help="the code GitHub's redirect carries (?code=...), valid for an hour")
    p.add_argument("--out", required=True, help="a new folder for the credentials (files readable only by you)")
    p.add_argument("--namespace", default="releasebot", help="for the printed kubectl command (default releasebot)")
    p.add_argument("--secret", default="releasebot", help="the Secret's name (default releasebot)")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_app_exchange)

    p = sub.add_parser("mlflow", help="MLflow's side of releasebot")
    mlflow_sub = p.add_subparsers(dest="mlflow_command", required=True)
    p = mlflow_sub.add_parser("webhook", help="the webhook MLflow delivers alias and tag events with")
    webhook_sub = p.add_subparsers(dest="webhook_command", required=True)
    p = webhook_sub.add_parser("create", help="register it (or update the one registered for the same URL)")
    p.add_argument("--url", required=True, help="where MLflow reaches releasebot; /webhooks/mlflow is added")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    p.add_argument("--secret-file", help=f"the webhook secret (default: ${settings.MLFLOW_WEBHOOK_SECRET.name})")
    p.add_argument("--name", default="releasebot", help="the webhook's name in MLflow (default releasebot)")
    p.add_argument("--test", action="store_true", help="then have MLflow send a test delivery; exit 1 if refused")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_mlflow_webhook_create)

    p = sub.add_parser("demo", help="the release loop end to end on MLflow/SQLite and a local git repo")
    p.add_argument("--dir", default="demo", help="where to put the MLflow store and environments repo")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logs.configure(args.log_level or "warning")
    try:
        return args.func(args)
    except InvalidInput as exc:
        for problem in exc.problems:
            print(redact(str(problem)), file=sys.stderr)
        return _fail(f"{len(exc.problems)} problem(s); {_written(exc.written)}")
    except ReleasebotError as exc:
        if exc.written:
            return _fail(f"{_written(exc.written)}; then it failed: {exc}; nothing else was written")
        return _fail(f"{exc}; nothing was written")
    finally:
        logging.getLogger().removeHandler(handler)


def _written(done: Sequence[str]) -> str:
    if not done:
        return "nothing was written"
    return f"{len(done)} change(s) were written ({'; '.join(done)})"


if __name__ == "__main__":
    sys.exit(main())
