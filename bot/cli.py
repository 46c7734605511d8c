"""The ``releasebot`` command: parse arguments, call the core, hand the result to :mod:`bot.output`.

Exit codes (``releasebot --help`` prints them; :func:`bot.output.failure` is the one mapping from
an error to a code)::

    0   nothing to do, or done
    1   found something: drift (drift run --fail-on-drift), differences (render --check),
        problems (validate), keys that could not be planned (plan, reconcile)
    2   usage or configuration: argparse, an unknown --env/--model, a bad catalog, manifest or
        data file, or a request an upstream refused (4xx, a rejected push)
    3   unavailable: an upstream (MLflow, GitHub, git remote, Kubernetes, Prometheus, KFP) did not
        answer, answered 5xx/429, or another releasebot holds the workdir; a retry may succeed
    70  a bug in releasebot; the traceback is on stderr

Every verb takes ``--output json`` and then prints exactly one JSON document on stdout
(:mod:`bot.documents`; ``serve`` prints one line once it listens). A verb added here needs an
``--output`` option with ``json`` among its choices and a test marked
``@pytest.mark.json_output("<verb>")`` that parses it: tests/test_cli_output.py walks this parser
and fails for a verb without either. Long work draws progress on a terminal only.

No business logic lives here: each ``cmd_*`` reads its arguments, calls the core, and prints.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import shtab

from bot import __version__, capacity, documents, logs, pipelines, settings
from bot.blueprints import BlueprintSet
from bot.catalog import CATALOG_FILE, Catalog, load_catalog, parse_catalog
from bot.commands import plan_rows, walk_text
from bot.errors import ConfigError, PermanentUpstreamError, UsageError
from bot.forge import forges
from bot.generate import init_environments
from bot.manifests.render import canaries_in, dir_reader, list_files, plan_render, write_changes
from bot.output import Exit, Output, epilog, failure
from bot.plan import Note
from bot.reconcile import Watch, make_plan, observe, pin_change, reconcile, watch_from, write_back
from bot.redact import redact
from bot.registry import Registry, registry_cache
from bot.repo import EnvRepo, default_workdir, local_or_url
from bot.validate import validate_repo


def cmd_init(args: argparse.Namespace) -> int:
    out = Output.of(args)
    target = Path(args.dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} already exists and is not empty")
    with out.progress("init") as progress:
        made = init_environments(target, Path(args.catalog), progress)
    if out.json:
        out.document(documents.created(made))
    else:
        out.text(f"Created {made.path} ({made.files} files, commit {made.commit[:12]} on {made.branch}).")
    return Exit.OK


def cmd_render(args: argparse.Namespace) -> int:
    out = Output.of(args)
    root = Path(args.dir)
    cat = load_catalog(root / CATALOG_FILE, CATALOG_FILE)
    with out.progress("render") as progress:
        plan = plan_render(
            cat, BlueprintSet(cat.blueprints), dir_reader(root), list_files(root), prune=args.prune, progress=progress
        )
    if not args.check:
        write_changes(root, plan.changes)
    if out.json:
        out.document(documents.render(plan, args.check, args.diff))
    else:
        for change in plan.changes:
            out.text(change.describe())
            if args.diff and change.action == "update":
                out.stdout.write(documents.unified_diff(change))
        for orphan in plan.orphans:
            out.text(f"orphan {orphan}" if args.check else f"orphan {orphan} (kept; --prune removes it)")
        if not args.check and not plan.changes:
            out.text("Up to date.")
    if args.check and plan.changes:
        out.say(f"{len(plan.changes)} file(s) differ from the catalog; run `releasebot render`.")
        return Exit.FOUND
    return Exit.OK


def cmd_validate(args: argparse.Namespace) -> int:
    out = Output.of(args)
    with out.progress("validate") as progress:
        report = validate_repo(Path(args.dir), progress)
    if out.json:
        out.document(documents.validation(report))
    else:
        for problem in report.problems:
            out.say(str(problem))
        summary = f"{report.files_checked} file(s) checked, {len(report.problems)} problem(s)"
        out.text(("OK: " if report.ok else "FAILED: ") + summary)
    return Exit.OK if report.ok else Exit.FOUND


# --- the release loop ------------------------------------------------------------------------


def _repo(args: argparse.Namespace) -> EnvRepo:
    remote = local_or_url(args.repo or settings.REPO.get(os.environ) or ".")
    workdir = Path(args.workdir) if args.workdir else default_workdir(remote)
    return EnvRepo(remote, workdir, workdir_wait=settings.WORKDIR_WAIT.seconds(os.environ))


def known(cat: Catalog, env: str | None, model: str | None) -> None:
    """Refuse an ``--env`` or ``--model`` the catalog does not have, naming the ones it has
    (for a model, those of the environment asked about)."""
    names = [e.name for e in cat.environments]
    if env is not None and env not in names:
        raise UsageError(f"unknown environment {env!r}; known: {', '.join(names)}")
    if model is None:
        return
    models = [m.name for m in (cat.models_in(cat.environment(env)) if env is not None else cat.models)]
    if model not in models:
        where = f" in environment {env!r}" if env is not None else ""
        raise UsageError(f"unknown model {model!r}{where}; known: {', '.join(models) or 'none'}")


def _registry_for(args: argparse.Namespace) -> Callable[[Catalog], Registry]:
    def make(cat: Catalog) -> Registry:
        # The first moment the catalog is known, before MLflow is asked or anything is planned.
        known(cat, getattr(args, "env", None), getattr(args, "model", None))
        uri = args.tracking_uri or settings.TRACKING_URI.get(os.environ) or cat.tracking_uri
        return Registry(uri, cat.storage_uri_map, cache_file=registry_cache(_repo(args).cache_dir))

    return make


def _watch(args: argparse.Namespace) -> Watch:
    config = dict(os.environ)
    if args.kubeconfig:
        config[settings.KUBECONFIG.name] = args.kubeconfig
    if args.context:
        config[settings.KUBE_CONTEXT.name] = args.context
    return watch_from(config)


def cmd_capacity(args: argparse.Namespace) -> int:
    out = Output.of(args)
    if args.model is not None:
        raise UsageError("--capacity is per environment and pool; --model does not apply")
    cat, state, _ = observe(_repo(args), _registry_for(args), args.env)
    pools = []
    for env in cat.environments:
        if args.env in (None, env.name):
            pools += capacity.usage(cat, env, canaries_in(cat, env, state.main_files.get))
    if out.json:
        out.document(documents.capacity(pools))
    else:
        rows = capacity.rows(pools)
        out.table(rows, list(rows[0]) if rows else ["environment"])
    return Exit.OK


def cmd_plan(args: argparse.Namespace) -> int:
    if args.capacity:
        return cmd_capacity(args)
    out = Output.of(args)
    _, p = make_plan(_repo(args), _registry_for(args), args.env, args.model, _watch(args))
    rows = plan_rows(p)
    if out.json:
        out.document(documents.plan(p))
    elif rows:
        out.table(rows, ["environment", "model", "action", "from", "to", "detail"])
    else:
        out.text("Nothing to do: every environment serves what its alias says.")
    return Exit.FOUND if p.errors else Exit.OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    out = Output.of(args)
    repo = _repo(args)
    with out.progress("reconcile") as progress:
        result = reconcile(
            repo, _registry_for(args), forges(repo, os.environ), args.env, args.model, _watch(args), progress
        )
    if out.json:
        out.document(documents.reconcile(result.plan, result.done, result.skipped))
    else:
        out.text(*result.done)
        out.text(*(f"walk {w.key.environment}/{w.key.model} v{w.version}: {walk_text(w)}" for w in result.plan.walks))
        for line in result.skipped:
            out.say(line)
        for note in result.plan.notes:
            kind = "error" if note.error else "note"
            out.say(f"{kind}: {note.key.environment}/{note.key.model}: {note.message}")
        if not result.done:
            out.text("Nothing to change.")
    return Exit.FOUND if result.plan.errors else Exit.OK


def cmd_history(args: argparse.Namespace) -> int:
    out = Output.of(args)
    repo = _repo(args)
    repo.sync()
    on_record = repo.history(args.model)
    releases = [r for r in on_record if args.env in (None, r.environment)]
    if not releases:
        # A model that left the catalog keeps its history; only a name on no record is unknown.
        _known_to_history(repo, args.model, args.env, on_record)
    if out.json:
        out.document(documents.history(args.model, args.env, releases))
    elif not releases:
        out.text(f"No releases of {args.model} on record.")
    else:
        rows = [
            {"date": r.date, "environment": r.environment, "version": r.version, "run": r.run, "commit": r.sha[:12]}
            for r in releases
        ]
        out.table(rows, ["date", "environment", "version", "run", "commit"])
    return Exit.OK


def _known_to_history(repo: EnvRepo, model: str, env: str | None, on_record: Sequence[Any]) -> None:
    text = repo.read(CATALOG_FILE)
    if text is None:
        raise PermanentUpstreamError(f"{repo.remote} has no {CATALOG_FILE} on {repo.branch}")
    cat = parse_catalog(text, CATALOG_FILE, repo.workdir, cache=repo.cache_dir)
    if env is not None and env not in {e.name for e in cat.environments} | {r.environment for r in on_record}:
        known(cat, env, None)
    if model not in {m.name for m in cat.models} and not on_record:
        known(cat, None, model)


def cmd_status(args: argparse.Namespace) -> int:
    """The status page's rows, looked at now (a plan is made, nothing is written)."""
    from datetime import UTC, datetime

    from bot import status, statuspage
    from bot.reconcile import observe_plan

    out = Output.of(args)
    at = datetime.now(UTC)
    cat, state, snapshot, p = observe_plan(_repo(args), _registry_for(args), watch=_watch(args))
    rows = status.rows(cat, state, snapshot, p, at)
    if out.json:
        out.text(statuspage.document(rows, at))
    elif args.output == "html":
        out.stdout.write(redact(statuspage.html(rows, at)))
    else:
        out.text(statuspage.table(rows))
    return Exit.OK


def _pin(args: argparse.Namespace, action: str, version: str | None) -> int:
    out = Output.of(args)
    repo = _repo(args)
    change = pin_change(repo, _registry_for(args), action, args.env, args.model, version)
    if isinstance(change, Note):
        if change.error:
            raise UsageError(change.message)  # asked for what cannot be done: nothing is written
        written, message = None, change.message
    else:
        written = write_back(repo, change, forges(repo, os.environ))
        message = written
    if out.json:
        out.document(documents.pin(action, args.env, args.model, change, written))
    else:
        out.text(message)
    return Exit.OK


def cmd_rollback(args: argparse.Namespace) -> int:
    return _pin(args, "rollback", args.to)


def cmd_unblock(args: argparse.Namespace) -> int:
    return _pin(args, "unblock", args.version)


def cmd_drift_run(args: argparse.Namespace) -> int:
    from bot import drift

    out = Output.of(args)
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
        raise UsageError(f"no MLflow tracking URI: set {settings.TRACKING_URI.name} or --tracking-uri")
    with out.progress("drift run") as progress:
        result = drift.run(job, Registry(uri), progress=progress)
    if out.json:
        out.document(documents.snake(result))
    else:
        drifted = [c["column"] for c in result["columnResults"] if c["drifted"]]
        out.text(
            f"{job.model} v{result['version']} in {job.environment}: {result['status']} "
            f"({result['driftedColumns']}/{result['columns']} columns drifted: {', '.join(drifted) or 'none'}; "
            f"MLflow run {result['runId']})"
        )
    return Exit.FOUND if args.fail_on_drift and result["datasetDrift"] else Exit.OK


def cmd_retrain_submit(args: argparse.Namespace) -> int:
    out = Output.of(args)
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
        out.notice(f"no pipelines token ({pipelines.TOKEN_FILE_ENV} unset): submitting without an Authorization header")
    answer = pipelines.submit(request, token, timeout=args.timeout)
    if out.json:
        out.document(documents.retrain(request, answer))
    else:
        out.text(
            f"Submitted {request.display_name}: KFP run {answer.get('run_id') or '(no run_id in the answer)'} "
            f"of pipeline {request.pipeline_id}"
        )
    return Exit.OK


# --- setting releasebot up: the GitHub App and the MLflow webhook ----------------------------


def cmd_app_manifest(args: argparse.Namespace) -> int:
    from bot import githubapp

    out = Output.of(args)
    url = githubapp.base_url(args.url)
    github = githubapp.base_url(args.github_url, "--github-url")
    # App names are unique across GitHub; an organisation's own name makes a free one likely.
    name = args.name or (f"releasebot-{args.org}"[: githubapp.MAX_NAME] if args.org else None)
    app = githubapp.manifest(url, name)
    state = githubapp.new_state()
    post = githubapp.register_url(state, args.org, github)
    page = githubapp.registration_page(app, post)
    if args.form:
        try:
            Path(args.form).write_text(page)
        except OSError as exc:
            raise UsageError(f"--form {args.form}: {exc.strerror or exc}") from exc
    if out.json:
        out.document({"manifest": app, "register_url": post, "state": state, "form": args.form})
        return Exit.OK
    out.text(json.dumps(app, indent=2))
    where = f"Open {args.form} in a browser" if args.form else "Save the page below as register.html, open it"
    out.text(
        f"\n{where} and press the button: it posts this manifest to {post.split('?')[0]}.\n"
        f"GitHub then sends you to {app['redirect_url']}?code=...; run `releasebot app exchange CODE --out DIR`\n"
        "within the hour. (While releasebot is not running there yet, the browser cannot show that page:\n"
        "the code is in its address bar.)\n"
        f"State: {state} (the setup page shows the state GitHub sent back: it must be this one)."
    )
    if not args.form:
        out.stdout.write("\n" + page)
    return Exit.OK


def cmd_app_exchange(args: argparse.Namespace) -> int:
    from bot import githubapp

    output = Output.of(args)
    out = Path(args.out)
    githubapp.check_out_dir(out)  # before the one-time code is spent
    credentials = githubapp.exchange(args.code, settings.GITHUB_API_URL.get(os.environ) or settings.GITHUB_API)
    files = githubapp.write_credentials(credentials, out)
    kubectl = githubapp.kubectl_command(files, args.namespace, args.secret)
    install = githubapp.install_url(credentials)
    if output.json:
        output.document(
            {
                "app_id": credentials.app_id,
                "slug": credentials.slug,
                "owner": credentials.owner,
                "html_url": credentials.html_url,
                "install_url": install,
                "files": {name: str(path) for name, path in files.items()},
                "secret_keys": {name: githubapp.FILES[name] for name in files},
                "kubectl": kubectl,
            }
        )
        return Exit.OK
    output.text(
        f"Registered the GitHub App {credentials.slug} (id {credentials.app_id}) of {credentials.owner}: "
        f"{credentials.html_url}\n"
        f"Wrote {', '.join(files)} to {out} (readable only by you); GitHub's OAuth client secret was not kept, "
        "releasebot does not use it.\n\n"
        f"1. releasebot's Secret (the catalog's bot.namespace and bot.secretName):\n\n{kubectl}\n\n"
        f"2. Install the App on the environments repository: {install}\n"
        "3. Register the MLflow webhook: releasebot mlflow webhook create --url URL "
        f"--secret-file {files['mlflow-webhook-secret']}"
    )
    return Exit.OK


def cmd_mlflow_webhook_create(args: argparse.Namespace) -> int:
    from bot import githubapp, mlflowhooks

    out = Output.of(args)
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
    # A test delivery releasebot refused is a finding: the webhook is registered, it does not work.
    found = Exit.FOUND if tested is not None and not tested.success else Exit.OK
    if out.json:
        out.document(
            {
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
        )
        return found
    events = ", ".join(done.events)
    out.text(f"{done.action.capitalize()} MLflow webhook {done.webhook_id} ({done.name}): {done.url} for {events}")
    if done.duplicates:
        out.text(f"Also registered for this URL, left alone: {', '.join(done.duplicates)} (each delivers again)")
    if tested is not None:
        answer = f"answered {tested.status}" if tested.status is not None else "no answer"
        verdict = "accepted" if tested.success else "not accepted"
        out.text(f"MLflow's test delivery: {verdict}, {answer}: {tested.said or '(empty)'}")
    return found


def serve_config(args: argparse.Namespace) -> dict[str, str]:
    """Flags over the environment over ``--config``."""
    from bot.serve import load_config

    config = load_config(os.environ, Path(args.config) if args.config else None)
    flags = {
        settings.REPO.name: args.repo,
        settings.WORKDIR.name: args.workdir,
        settings.TRACKING_URI.name: args.tracking_uri,
        settings.KUBECONFIG.name: args.kubeconfig,
        settings.KUBE_CONTEXT.name: args.context,
    }
    if args.resync is not None:
        flags[settings.RESYNC_SECONDS.name] = str(args.resync)
    config.update({k: v for k, v in flags.items() if v})
    return config


def build_server(
    args: argparse.Namespace, in_process: bool = False, on_listening: Callable[[str, int], None] | None = None
):  # -> (uvicorn.Server, Work); imported lazily
    """What ``releasebot serve`` runs: the uvicorn server, and the work behind it (a worker
    process, started and stopped with the server; ``in_process`` only for tests that mock HTTP).
    ``on_listening(host, port)`` is called once the socket is bound (``--port 0`` picks a port);
    with it, uvicorn's own lines (its access log writes to stdout) go to releasebot's log
    handler instead, so stdout holds that one line."""
    import uvicorn

    from bot.serve import build_receiver
    from bot.server import create_app

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and on_listening is not None:
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                on_listening(host, port)

    receiver, work = build_receiver(serve_config(args), in_process=in_process)
    config = uvicorn.Config(
        create_app(receiver),
        host=args.host,
        port=args.port,
        log_level="info",
        **({"log_config": None} if on_listening is not None else {}),
    )
    return Server(config), work


def cmd_serve(args: argparse.Namespace) -> int:
    out = Output.of(args)
    # uvicorn configures only its own loggers; releasebot's own lines are JSON, one per event and
    # per piece of work, for a log pipeline to count and search.
    logs.configure(args.log_level or "info", json_lines=True)

    def listening(host: str, port: int) -> None:
        url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        out.line({"url": url, "host": host, "port": port, "pid": os.getpid(), "version": __version__})

    server, _ = build_server(args, on_listening=listening if out.json else None)
    try:
        server.run()
    except SystemExit as exc:
        # uvicorn exits 3 when it cannot bind or start: that is not an upstream's outage.
        if server.started:
            raise
        raise UsageError(f"could not listen on {args.host}:{args.port} (the log above says why)") from exc
    return Exit.OK


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo, summary

    out = Output.of(args)
    directory = Path(args.dir)
    # In JSON mode the story is not told: the document says where everything is.
    code = run_demo(directory, say=(lambda *_: None) if out.json else print)
    if out.json:
        out.document({"ok": code == Exit.OK, **summary(directory)})
    return code


def cmd_completion(args: argparse.Namespace) -> int:
    out = Output.of(args)
    script = shtab.complete(build_parser(), shell=args.shell)
    if out.json:
        out.document({"shell": args.shell, "script": script})
    else:
        out.stdout.write(script)
    return Exit.OK


# --- the parser ------------------------------------------------------------------------------


def output_option(p: argparse.ArgumentParser, text: str = "text") -> None:
    """``--output`` as every verb has it: a form for people (the default) or ``json``."""
    p.add_argument(
        "--output",
        choices=[text, "json"],
        default=text,
        help=f"{text} for people (default), or one JSON document on stdout for scripts",
    )


def _path(action: argparse.Action, kind: Any = shtab.FILE) -> None:
    action.complete = kind  # type: ignore[attr-defined]  # read by shtab's completion scripts


def _repo_options(p: argparse.ArgumentParser, registry: bool = True) -> None:
    _path(p.add_argument("--repo", help="path or URL of the environments repo (default: $RELEASEBOT_REPO or .)"))
    _path(p.add_argument("--workdir", help="where releasebot keeps its clone (default: a cache folder)"), shtab.DIR)
    if registry:
        p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the catalog's)")


def _cluster_options(p: argparse.ArgumentParser) -> None:
    _path(
        p.add_argument(
            "--kubeconfig",
            help="kubeconfig for reading Argo CD and KServe status during canary walks "
            "(default: $RELEASEBOT_KUBECONFIG or $KUBECONFIG; in a pod, its service account)",
        )
    )
    p.add_argument("--context", help="kubeconfig context (default: $RELEASEBOT_KUBE_CONTEXT or the current one)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="releasebot",
        description="GitOps pull requests for ML model releases.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"releasebot {__version__}")
    parser.add_argument(
        "--log-level", choices=logs.LEVELS, help="what is logged to stderr (default: warning; info for serve)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create an environments repository from a catalog")
    _path(p.add_argument("dir"), shtab.DIR)
    _path(p.add_argument("--catalog", required=True, help="the catalog file (releasebot.yaml)"))
    output_option(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("render", help="bring the manifests in line with the catalog")
    _path(p.add_argument("dir", nargs="?", default="."), shtab.DIR)
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when anything differs")
    p.add_argument("--diff", action="store_true", help="show the differences (of what --check finds, or is written)")
    p.add_argument("--prune", action="store_true", help="also delete orphan files in environment folders")
    output_option(p)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("validate", help="check the catalog and every manifest")
    _path(p.add_argument("dir", nargs="?", default="."), shtab.DIR)
    output_option(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="what the release loop would change (writes nothing)")
    _repo_options(p)
    _cluster_options(p)
    p.add_argument("--env")
    p.add_argument("--model")
    output_option(p, "table")
    p.add_argument("--capacity", action="store_true", help="requests, limits, GPUs and a node estimate per environment")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("reconcile", help="carry out the plan: commits, branches, pull requests")
    _repo_options(p)
    _cluster_options(p)
    p.add_argument("--env")
    p.add_argument("--model")
    output_option(p)
    p.set_defaults(func=cmd_reconcile)

    p = sub.add_parser("history", help="releases of a model, read back from the commit trailers on main")
    _repo_options(p, registry=False)
    p.add_argument("model")
    p.add_argument("--env")
    output_option(p, "table")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("status", help="every environment and model at a glance (what the serve page shows)")
    _repo_options(p)
    _cluster_options(p)
    p.add_argument("--output", choices=["table", "json", "html"], default="table")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("rollback", help="pin the previous version in Git and block the one serving now")
    _repo_options(p)
    p.add_argument("model")
    p.add_argument("--env", required=True)
    p.add_argument("--to", help="the version to go back to (default: the release before the current one)")
    output_option(p)
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("unblock", help="clear a rollback's pin, and unblock versions")
    _repo_options(p)
    p.add_argument("model")
    p.add_argument("--env", required=True)
    p.add_argument("--version", help="unblock only this version (default: all)")
    output_option(p)
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
    _path(p.add_argument("--current", required=True, help="the serving window: Parquet or CSV, a path or fsspec URI"))
    _path(p.add_argument("--reference", help="reference data (default: the served version's training dataset)"))
    p.add_argument("--drift-share", type=float, default=0.5, help="dataset drift when this share of columns drift")
    p.add_argument("--sample", type=int, default=100_000, help="rows sampled from each side (default 100000)")
    p.add_argument("--action", choices=["retrain", "alert", "none"], default="none")
    p.add_argument("--method", help="Evidently stat test for every column")
    p.add_argument("--threshold", type=float)
    p.add_argument("--column", action="append", default=[], help="COLUMN=METHOD[:THRESHOLD], repeatable")
    p.add_argument("--fail-on-drift", action="store_true", help="exit 1 when the dataset drifts")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    output_option(p)
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
    _path(
        p.add_argument(
            "--token-file",
            help=f"a file holding the bearer token (default: ${pipelines.TOKEN_FILE_ENV}; neither: no token is sent)",
        )
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for KFP (default 30)")
    output_option(p)
    p.set_defaults(func=cmd_retrain_submit)

    p = sub.add_parser("serve", help="the webhook receiver: GitHub and MLflow events trigger reconciles")
    _repo_options(p)
    _cluster_options(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0: any free port (--output json says which)")
    p.add_argument("--resync", type=float, help="seconds between full resyncs (default 300)")
    _path(p.add_argument("--config", help="a YAML file of RELEASEBOT_* settings; the environment overrides it"))
    p.add_argument(
        "--output",
        choices=["text", "json"],
        default="text",
        help="json: one line on stdout once listening (url, host, port, pid, version); logs are JSON lines either way",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("app", help="register releasebot's GitHub App (GitHub's manifest flow)")
    app_sub = p.add_subparsers(dest="app_command", required=True)
    p = app_sub.add_parser("manifest", help="the App's manifest for this installation, and the page that registers it")
    p.add_argument("--url", required=True, help="where GitHub reaches releasebot, https://HOST[/PATH]")
    p.add_argument("--org", help="register under this organisation (default: your own account)")
    p.add_argument("--name", help="the App's name, unique on GitHub (default: releasebot-ORG, or releasebot)")
    _path(p.add_argument("--form", help="write the registration page (an HTML form) to this file"))
    p.add_argument("--github-url", default="https://github.com", help="GitHub Enterprise Server: its web address")
    output_option(p)
    p.set_defaults(func=cmd_app_manifest)
    p = app_sub.add_parser("exchange", help="trade GitHub's one-time code for the App's id, key and webhook secret")
    p.add_argument("code", help="the code GitHub's redirect carries (?code=...), valid for an hour")
    _path(
        p.add_argument("--out", required=True, help="a new folder for the credentials (files readable only by you)"),
        shtab.DIR,
    )
    p.add_argument("--namespace", default="releasebot", help="for the printed kubectl command (default releasebot)")
    p.add_argument("--secret", default="releasebot", help="the Secret's name (default releasebot)")
    output_option(p)
    p.set_defaults(func=cmd_app_exchange)

    p = sub.add_parser("mlflow", help="MLflow's side of releasebot")
    mlflow_sub = p.add_subparsers(dest="mlflow_command", required=True)
    p = mlflow_sub.add_parser("webhook", help="the webhook MLflow delivers alias and tag events with")
    webhook_sub = p.add_subparsers(dest="webhook_command", required=True)
    p = webhook_sub.add_parser("create", help="register it (or update the one registered for the same URL)")
    p.add_argument("--url", required=True, help="where MLflow reaches releasebot; /webhooks/mlflow is added")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    _path(p.add_argument("--secret-file", help=f"the webhook secret (default: ${settings.MLFLOW_WEBHOOK_SECRET.name})"))
    p.add_argument("--name", default="releasebot", help="the webhook's name in MLflow (default releasebot)")
    p.add_argument("--test", action="store_true", help="then have MLflow send a test delivery; exit 1 if refused")
    output_option(p)
    p.set_defaults(func=cmd_mlflow_webhook_create)

    p = sub.add_parser("demo", help="the release loop end to end on MLflow/SQLite and a local git repo")
    _path(
        p.add_argument("--dir", default="demo", help="where to put the MLflow store and environments repo"), shtab.DIR
    )
    output_option(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish)")
    p.add_argument("shell", choices=["bash", "zsh", "fish"])
    output_option(p)
    p.set_defaults(func=cmd_completion)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # usage errors: argparse prints them and exits 2
    out = Output.of(args)
    handler = logs.configure(args.log_level or "warning", json_lines=out.json)
    try:
        return int(args.func(args))
    except Exception as exc:  # every failure leaves through the one mapping to an exit code
        return int(out.fail(failure(exc)))
    finally:
        logging.getLogger().removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
