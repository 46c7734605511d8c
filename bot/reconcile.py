"""Observe, plan, write back: one pass of the level-triggered loop.

:func:`reconcile` fetches the environments repo, reads the catalog and manifests from its main
branch, the bot branches, and a registry snapshot; asks :func:`bot.plan.plan`; and carries the
plan out: ``commit`` changes straight to main, ``branch`` and ``pull-request`` changes as a
rebuilt bot branch handed to the environment's forge. When the repo moves under it (a rejected
push, a lease that no longer holds) it starts over from fresh state, a few times at most.

It holds no state between passes; every pass decides from scratch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from bot import settings, settling
from bot.catalog import CATALOG_FILE, Canary, Catalog, Environment, Model, parse_catalog
from bot.errors import ConflictError, PermanentUpstreamError, ReleasebotError, UpstreamError
from bot.forge import Forge, proposed, record_proposed
from bot.manifests import argocd
from bot.manifests import inferenceservice as isvc
from bot.plan import (
    Change,
    Key,
    Look,
    Note,
    Plan,
    RegistrySnapshot,
    RepoState,
    Served,
    analysis_wants,
    hold,
    models_to_plan,
    plan,
    registry_wants,
    rollback,
    served,
    unblock,
    under_way,
)
from bot.plan.types import AnalysisRequest, AppStatus, ClusterSnapshot, IsvcStatus, Verdict
from bot.progress import Progress, silent
from bot.registry import Registry
from bot.repo import EnvRepo

ATTEMPTS = 3


@dataclass
class Result:
    plan: Plan
    catalog: Catalog
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # What the plan was made from (the status page shows it).
    state: RepoState | None = None
    snapshot: RegistrySnapshot | None = None


def _branch_patterns(env: str | None, model: str | None) -> list[str]:
    """The bot branches a pass over ``env``/``model`` may touch (all of them for a full pass)."""
    # git matches a glob segment by segment, and a plain pattern as a prefix up to a slash.
    if model is not None:
        return [f"releasebot/{env}/{model}" if env else f"releasebot/*/{model}/*"]
    if env is not None:
        return [f"releasebot/{env}"]
    return []


_catalogs: dict[tuple[str, str], Catalog] = {}


def _catalog(text: str, root: Path, cache: Path) -> Catalog:
    """The parsed catalog, parsed once per distinct text (a catalog changes by pull request,
    a long-running ``serve`` sees the same one for thousands of events, and the CLI finds it
    validated in the clone's own cache folder, beside the registry's remembered facts)."""
    key = (text, str(root))
    if key not in _catalogs:
        if len(_catalogs) >= 4:
            _catalogs.clear()
        _catalogs[key] = parse_catalog(text, CATALOG_FILE, root, cache=cache)
    return _catalogs[key]


def observe(
    repo: EnvRepo, registry_for: Callable[[Catalog], Registry], env: str | None = None, model: str | None = None
) -> tuple[Catalog, RepoState, Registry]:
    """Fetch, then a view of main and the bot branches a pass over ``env``/``model`` needs.

    Main is handed over as a lazy view of one commit: the planner reads the files of the keys it
    plans, not the tree.
    """
    repo.sync()
    tree = repo.tree()
    text = tree.get(CATALOG_FILE)
    if text is None:
        raise PermanentUpstreamError(f"{repo.remote} has no {CATALOG_FILE} on {repo.branch}")
    cat = _catalog(text, repo.workdir, repo.cache_dir)
    return cat, RepoState(tree, repo.bot_branches(_branch_patterns(env, model))), registry_for(cat)


class ClusterReader(Protocol):
    """The reads a walk needs of the cluster (:class:`bot.cluster.Cluster`)."""

    def application(self, name: str, namespace: str) -> AppStatus | None: ...

    def inference_service(self, namespace: str, name: str) -> IsvcStatus | None: ...


Analyse = Callable[[str, Canary, AnalysisRequest], Verdict]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Watch:
    """What lets a release walk move beyond Git: the cluster (None: not observed here),
    Prometheus analysis (None: not asked here) and the clock."""

    cluster: ClusterReader | None = None
    analyse: Analyse | None = None
    clock: Callable[[], datetime] = _now


# Verdicts of fixed windows do not change: asked once per process, whatever asks again.
_verdicts: dict[AnalysisRequest, Verdict] = {}


def _walks_on_main(
    cat: Catalog, state: RepoState, env: str | None, model: str | None
) -> list[tuple[Environment, Model, Served]]:
    found = []
    for e in cat.environments:
        if e.canary is None or (env is not None and e.name != env):
            continue
        for m in models_to_plan(cat, e, model):
            path = isvc.path_of(e.name, m.name)
            text = state.main_files.get(path)
            now = served(text, path) if text is not None else None
            if now is not None and under_way(e, now):
                found.append((e, m, now))
    return found


def look(
    repo: EnvRepo,
    cat: Catalog,
    state: RepoState,
    watch: Watch,
    env: str | None = None,
    model: str | None = None,
    settle: list[tuple[Environment, Model]] | None = None,
) -> tuple[RepoState, Look]:
    """What the walks under way among the keys asked about see: when their manifests landed on
    main, the cluster's Application and InferenceServices for exactly those keys, whether Argo
    CD's revisions contain those commits, and the verdicts of soaks that ended. ``settle`` names
    more manifests whose last commit must be seen deployed and soaked (:mod:`bot.settling`)."""
    clock = watch.clock()
    walks = _walks_on_main(cat, state, env, model)
    watched = [(e, m) for e, m, _ in walks]
    watched += [k for k in settle or () if k not in watched]
    if not watched:
        return state, Look(clock, settled=frozenset(settling.SETTLED))
    landed = dict(state.landed)
    for e, m in watched:
        path = isvc.path_of(e.name, m.name)
        found = landed.get(path) or repo.landed(path)
        if found is not None:
            landed[path] = found
    state = replace(state, landed=landed)
    if watch.cluster is None:
        return state, Look(clock, settled=frozenset(settling.SETTLED))
    apps: dict[str, AppStatus | None] = {}
    services: dict[tuple[str, str], IsvcStatus | None] = {}
    problems: dict[str, str] = {}
    ancestry: dict[tuple[str, str], bool] = {}
    for e, m in watched:
        path = isvc.path_of(e.name, m.name)
        if path in landed and landed[path][0] in settling.SETTLED:
            continue  # seen deployed and soaked before: a fact that does not change
        try:
            if e.name not in apps and e.name not in problems:
                apps[e.name] = watch.cluster.application(argocd.application_name(cat, e.name), cat.argocd_namespace)
            services[(e.name, m.name)] = watch.cluster.inference_service(e.namespace, m.name)
        except UpstreamError as exc:
            problems[e.name] = f"the cluster could not be read: {exc}"
            continue
        app = apps.get(e.name)
        if app is None or path not in landed:
            continue
        sha = landed[path][0]
        for revision in {app.sync_revision, *(rev for rev, _ in app.history)} - {None}:
            if (sha, revision) not in ancestry:
                ancestry[(sha, revision)] = repo.contains(sha, revision)
    snapshot = ClusterSnapshot(clock, apps, services, ancestry, problems)
    # The plan sees what was settled before this pass, so the pass that first finds a commit
    # settled still reports it (a deployment's success); later passes need not ask again.
    seen = Look(clock, snapshot, settled=frozenset(settling.SETTLED))
    settling.remember(cat, state, seen, settle or ())
    verdicts = {}
    for request in analysis_wants(cat, state, seen, walks):
        verdicts[request] = _verdict(cat, watch, request)
    return state, replace(seen, verdicts=verdicts)


def _verdict(cat: Catalog, watch: Watch, request: AnalysisRequest) -> Verdict:
    if request in _verdicts:
        return _verdicts[request]
    canary = cat.environment(request.key.environment).canary
    assert canary is not None
    if watch.analyse is None or cat.prometheus_url is None:
        return Verdict(False, (), request.start, request.end, error="Prometheus is not configured here")
    try:
        verdict = watch.analyse(cat.prometheus_url, canary, request)
    except UpstreamError as exc:
        # Prometheus down, or a query it refuses: the walk waits and says why; it never turns
        # "could not ask" into a verdict on the model.
        return Verdict(False, (), request.start, request.end, error=str(exc))
    if len(_verdicts) >= 1024:
        _verdicts.clear()
    _verdicts[request] = verdict
    return verdict


class _LazyCluster:
    """The cluster, connected on the first read: most passes have no walk under way, and the
    Kubernetes client costs an import and a config read."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        self._kubeconfig, self._context = kubeconfig, context
        self._cluster: ClusterReader | None = None

    def _get(self) -> ClusterReader:
        if self._cluster is None:
            from bot.cluster import Cluster

            self._cluster = Cluster(self._kubeconfig, self._context)
        return self._cluster

    def application(self, name: str, namespace: str) -> AppStatus | None:
        return self._get().application(name, namespace)

    def inference_service(self, namespace: str, name: str) -> IsvcStatus | None:
        return self._get().inference_service(namespace, name)


def watch_from(config: Mapping[str, str]) -> Watch:
    """The cluster and Prometheus as the environment configures them: in a pod, its service
    account; elsewhere ``RELEASEBOT_KUBECONFIG`` (or ``KUBECONFIG``) and
    ``RELEASEBOT_KUBE_CONTEXT``. Without either, walks wait and say so."""

    def analyse(url: str, canary: Canary, request: AnalysisRequest) -> Verdict:
        from bot.analysis import analyse as ask

        return ask(url, canary, request)

    kubeconfig = settings.KUBECONFIG.get(config) or settings.PLAIN_KUBECONFIG.get(config)
    in_pod = bool(settings.IN_POD.get(config))
    context = settings.KUBE_CONTEXT.get(config)
    cluster = _LazyCluster(kubeconfig, context) if (kubeconfig or in_pod) else None
    return Watch(cluster, analyse)


def observe_plan(
    repo: EnvRepo,
    registry_for: Callable[[Catalog], Registry],
    env: str | None = None,
    model: str | None = None,
    watch: Watch | None = None,
) -> tuple[Catalog, RepoState, RegistrySnapshot, Plan]:
    """The plan, with what it was made from."""
    cat, state, registry = observe(repo, registry_for, env, model)
    snapshot = registry.snapshot(registry_wants(cat, state, env, model))
    state, settle = settling.gather(repo, cat, state, snapshot, env, model)
    seen = None
    if watch is not None:
        state, seen = look(repo, cat, state, watch, env, model, settle)
    return cat, state, snapshot, plan(cat, snapshot, state, env, model, seen)


def make_plan(
    repo: EnvRepo,
    registry_for: Callable[[Catalog], Registry],
    env: str | None = None,
    model: str | None = None,
    watch: Watch | None = None,
) -> tuple[Catalog, Plan]:
    cat, _, _, p = observe_plan(repo, registry_for, env, model, watch)
    return cat, p


def _committed(repo: EnvRepo, change: Change, sha: str) -> str:
    return f"committed {change.title} to {repo.branch} ({sha[:12]})"


def write_back(repo: EnvRepo, change: Change, forge_for: Callable[[str], Forge | None]) -> str:
    """Carry out one change by its environment's mode; return what was done."""
    return _write_back(repo, change, forge_for)[0]


def _write_back(repo: EnvRepo, change: Change, forge_for: Callable[[str], Forge | None]) -> tuple[str, str]:
    """:func:`write_back`, and the commit it wrote (main's, or the branch head it proposed)."""
    if change.write_back == "commit":
        sha = repo.commit_to_main(change)
        return _committed(repo, change, sha), sha
    expected = repo.bot_branch(change.key.branch)
    if expected is not None and expected.human_commits:
        # The planner holds such a branch for every kind; this is the last line before a force
        # push, for any path that reached it without asking (a re-plan then holds it).
        raise ConflictError(f"{expected.name} has commits by a person; releasebot will not rewrite it")
    head = repo.push_branch(change, expected.head if expected else None)
    forge = forge_for(change.write_back)
    if forge is None:
        raise PermanentUpstreamError(f"{change.write_back} write-back is not configured here")
    verb = "updated" if expected else "pushed"
    try:
        said = forge.propose(change, head)
    except ReleasebotError as exc:
        exc.written = (*exc.written, f"{verb} branch {change.key.branch} at {head[:12]} (not yet proposed)")
        raise
    _remember(repo, change, head)
    return f"{verb} {change.title}: {said}", head


def follow_up(change: Change, head: str, forge_for: Callable[[str], Forge | None]) -> list[str | None]:
    """What a proposed pull request at ``head`` needs beyond review, asked on every pass (both
    verbs look before they write): the quality gate's evidence as a check on its head, then
    auto-merge, so a required quality check is there before GitHub decides."""
    forge = forge_for(change.write_back) if change.write_back == "pull-request" else None
    if forge is None:
        return []
    said = [forge.quality(change, head) if change.gate is not None else None]
    said.append(forge.merge_when_ready(change, head) if change.auto_merge else None)
    return said


def _carry_on(result: Result, call: Callable[[], list[str | None]]) -> None:
    """Add what ``call`` said to ``result``. GitHub refusing it for good (a permission, a
    repository setting) is said among the skipped, and the rest of the pass goes on: auto-merge
    or a deployment that cannot be done must not keep closes and alerts from happening."""
    try:
        result.done += [s for s in call() if s]
    except PermanentUpstreamError as exc:
        result.skipped.append(str(exc))


def _remember(repo: EnvRepo, change: Change, head: str) -> None:
    """Record a pull request's head as proposed, so a held branch at that head needs no GitHub
    call on later passes. Only pull requests: a plain branch is its own proposal."""
    if change.write_back == "pull-request":
        record_proposed(repo.cache_dir, change.key.branch, head)


def repropose(repo: EnvRepo, held: tuple[Change, ...], forge_for: Callable[[str], Forge | None]) -> list[str]:
    """Propose again the held pull-request branches whose head was never recorded as proposed:
    a pass died after pushing them (or after opening the pull request, before recording it), or
    this is a fresh clone. ``propose`` finds an open pull request by its head branch first, so
    this converges to one pull request; afterwards the head is recorded and costs nothing."""
    done: list[str] = []
    record = proposed(repo.cache_dir)
    for change in held:
        assert change.held is not None
        if change.write_back != "pull-request" or record.get(change.key.branch) == change.held:
            continue
        forge = forge_for(change.write_back)
        if forge is None:
            continue  # said by the skipped line of any change of this mode; nothing to do here
        said = forge.propose(change, change.held)
        _remember(repo, change, change.held)
        done.append(f"proposed {change.key.branch} at {change.held[:12]}: {said}")
    return done


def reconcile(
    repo: EnvRepo,
    registry_for: Callable[[Catalog], Registry],
    forge_for: Callable[[str], Forge | None],
    env: str | None = None,
    model: str | None = None,
    watch: Watch | None = None,
    progress: Progress = silent,
) -> Result:
    """Carry out the plan. ``forge_for(mode)`` gives the forge of a write-back mode, or None when
    that mode is not available here: its changes are then skipped, and said so. ``watch`` lets
    release walks under way move (without it they wait). ``progress`` hears of each change
    written and each branch closed.

    A failure goes up with ``written`` listing what this pass did write before it."""
    landed: list[str] = []  # written by attempts that then met a conflict
    for attempt in range(ATTEMPTS):
        result: Result | None = None
        try:
            progress(0, None, "reading the repository and the registry")
            cat, state, snapshot, p = observe_plan(repo, registry_for, env, model, watch)
            result = Result(p, cat, state=state, snapshot=snapshot)
            total = len(p.changes) + len(p.closes)
            committed = [c for c in p.changes if c.write_back == "commit"]
            progress(0, total, f"committing {len(committed)} change(s) to {repo.branch}" if committed else "")
            for change, sha in zip(committed, repo.commit_all_to_main(committed), strict=True):
                result.done.append(_committed(repo, change, sha))
            done = len(committed)
            pushed: list[tuple[Change, str]] = []
            for change in p.changes:
                if change.write_back == "commit":
                    continue
                progress(done, total, change.key.branch)
                done += 1
                if forge_for(change.write_back) is None:
                    result.skipped.append(
                        f"{change.key.branch}: {change.write_back} write-back is not configured here; skipped"
                    )
                    continue
                said, head = _write_back(repo, change, forge_for)
                result.done.append(said)
                pushed.append((change, head))
            result.done += repropose(repo, p.held, forge_for)
            if p.tags:
                registry = registry_for(cat)
                for tag in p.tags:
                    # The gate's verdict where data scientists look; idempotent, and planned only
                    # when MLflow says something else.
                    registry.set_tag(tag.registered_model, tag.version, tag.name, tag.value)
                    result.done.append(f"tagged {tag.registered_model} v{tag.version} {tag.name}={tag.value[:60]}")
            for change, head in [*pushed, *((c, c.held) for c in p.held if c.held)]:
                _carry_on(result, lambda c=change, h=head: follow_up(c, h, forge_for))
            github = forge_for("pull-request") if p.deployments else None
            for d in p.deployments if github is not None else ():
                # Deployments live on GitHub whatever the write-back mode, like alerts.
                _carry_on(result, lambda d=d, g=github: [g.deployment(d)])
            for change in p.changes:
                if change.verdict is None:
                    continue
                # A walk step's evidence, as a check on the commit it judged, once; GitHub takes
                # it whatever the write-back mode, where GitHub is configured.
                reporter = forge_for("pull-request") or forge_for(change.write_back)
                said = reporter.verdict(change) if reporter is not None else None
                if said:
                    result.done.append(said)
            for note in p.notes:
                forge = forge_for(cat.environment(note.key.environment).write_back)
                if note.tell and forge is not None:
                    said = forge.note(note.key, note.message)
                    if said:
                        result.done.append(said)
            for alert in p.alerts:
                # Issues live on GitHub whatever the environment's write-back mode.
                forge = forge_for("pull-request") or forge_for("branch")
                assert forge is not None
                said = forge.alert(alert)
                if said:
                    result.done.append(said)
            for close in p.closes:
                progress(done, total, close.branch.name)
                done += 1
                forge = forge_for(cat.environment(close.key.environment).write_back) or forge_for("branch")
                assert forge is not None
                result.done.append(forge.withdraw(close))
            progress(done, total, "")
            result.done[:0] = landed
            return result
        except ReleasebotError as exc:
            landed += [*(result.done if result is not None else []), *exc.written]
            if isinstance(exc, ConflictError) and attempt < ATTEMPTS - 1:
                continue
            exc.written = tuple(landed)
            raise
    raise AssertionError("unreachable")


def pin_change(
    repo: EnvRepo,
    registry_for: Callable[[Catalog], Registry],
    action: str,
    env: str,
    model: str,
    version: str | None = None,
) -> Change | Note:
    """One person-requested change of kind ``pin``: ``rollback`` (to ``version``, or the release
    before the current one), ``unblock`` (``version``, or all), ``hold`` or ``resume``."""
    cat, state, registry = observe(repo, registry_for, env, model)
    key_note = Note(Key(env, model, "pin"), f"no model {model!r} in environment {env!r} in the catalog", error=True)
    if env not in {e.name for e in cat.environments} or model not in {
        m.name for m in cat.models_in(cat.environment(env))
    }:
        return key_note
    if action in ("hold", "resume"):
        return hold(cat, env, model, state, resume=action == "resume")
    if action == "unblock":
        return unblock(cat, env, model, state, version)
    path = isvc.path_of(env, model)
    if path not in state.main_files:
        return Note(key_note.key, f"{path} is not on the main branch", error=True)
    now = served(state.main_files[path], path)
    target = version
    if target is None:
        earlier = [r.version for r in repo.history(model, env) if r.version not in (now.version, "?")]
        earlier = [v for v in earlier if v not in now.blocked]
        if not earlier:
            return Note(key_note.key, f"no earlier release of {model} in {env} on record; name the version", error=True)
        target = earlier[0]
    return rollback(cat, env, model, state, registry.version(cat.model(model).registered_model, target))
