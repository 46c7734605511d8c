"""The planner with plain data: no MLflow, no git, no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import yamlio
from bot.blueprints import BlueprintSet
from bot.catalog import parse_catalog
from bot.manifests import inferenceservice
from bot.plan import (
    BotBranch,
    Change,
    Key,
    Note,
    RepoState,
    fingerprint,
    hold,
    plan,
    release_edit,
    rollback,
    unblock,
)
from bot.registry import Dataset, ModelState, RegistrySnapshot, Version
from tests.conftest import EXAMPLE_CATALOG, EXAMPLE_DIR, independent

# One environment's policies; the promotion order has tests of its own (tests/test_promotion.py).
CAT = parse_catalog(independent(EXAMPLE_CATALOG.read_text()), "releasebot.yaml", EXAMPLE_DIR)
PATH = "production/fraud-detector/inferenceservice.yaml"


def version(v: str, accuracy: float = 0.9) -> Version:
    return Version(
        "fraud-detector",
        v,
        f"s3://models/fraud/{v}",
        f"run{v}",
        "READY",
        experiment_id="7",
        metrics=(("accuracy", accuracy),),
        datasets=(Dataset("tx", "d1g3st", "s3://data/tx", "s3"),),
        run_tags=(("dvc.rev", "abc123"),),
    )


def snapshot(aliases: dict[str, str], *versions: str) -> RegistrySnapshot:
    state = ModelState("fraud-detector", tuple(aliases.items()), {v: version(v, 0.9 + int(v) / 100) for v in versions})
    return RegistrySnapshot("http://mlflow", {"fraud-detector": state})


def main_text(serving: str | None = None, pinned: str | None = None, blocked: str | None = None) -> str:
    doc = inferenceservice.desired(CAT, CAT.environment("production"), CAT.model("fraud-detector"), BlueprintSet())
    text = yamlio.dump(doc)
    if serving:
        text = release_edit(PATH, text, version(serving)).new
    if pinned or blocked:
        doc = yamlio.load(text, PATH)
        if pinned:
            doc["metadata"]["annotations"][inferenceservice.PINNED_ANNOTATION] = pinned
        if blocked:
            doc["metadata"]["annotations"][inferenceservice.BLOCKED_ANNOTATION] = blocked
        text = yamlio.dump(doc)
    return text


def run(reg: RegistrySnapshot, text: str, branches: dict[str, BotBranch] | None = None):
    return plan(CAT, reg, RepoState({PATH: text}, branches or {}), env="production", model="fraud-detector")


def test_alias_ahead_of_main_is_one_change_with_trailers_and_evidence() -> None:
    p = run(snapshot({"champion": "3"}, "2", "3"), main_text("2"))
    assert len(p.changes) == 1 and not p.closes and not p.notes
    c = p.changes[0]
    assert c.key == Key("production", "fraud-detector", "release")
    assert c.key.branch == "releasebot/production/fraud-detector/release"
    assert (c.write_back, c.version, c.previous) == ("pull-request", "3", "2")
    assert c.commit_message.splitlines()[0] == "Release fraud-detector v3 to production"
    for trailer in (
        "Releasebot-Model: fraud-detector",
        "Releasebot-Version: 3",
        "Releasebot-Run: run3",
        "Releasebot-Environment: production",
    ):
        assert trailer in c.commit_message
    assert "| accuracy | 0.93 | 0.92 | +0.01 |" in c.body
    assert "digest `d1g3st`" in c.body and "DVC revision `abc123`" in c.body
    assert "http://mlflow.mlflow.svc.cluster.local:5000/#/experiments/7/runs/run3" in c.body
    assert f"<!-- releasebot:fingerprint={c.fingerprint} -->" in c.body
    assert c.labels == ("releasebot", "release", "production")


def test_main_already_serving_the_alias_is_no_change() -> None:
    assert run(snapshot({"champion": "2"}, "2"), main_text("2")) == run(
        snapshot({"champion": "2"}, "2"), main_text("2")
    )
    p = run(snapshot({"champion": "2"}, "2"), main_text("2"))
    assert (p.changes, p.closes, p.notes) == ((), (), ())


def test_open_branch_for_a_version_main_now_serves_is_closed() -> None:
    branch = BotBranch("releasebot/production/fraud-detector/release", "sha", "3", "fp")
    p = run(snapshot({"champion": "2"}, "2"), main_text("2"), {branch.name: branch})
    assert [c.reason for c in p.closes] == ["main already serves version 2"]


def test_a_branch_with_a_person_s_commits_is_never_deleted() -> None:
    branch = BotBranch("releasebot/production/fraud-detector/release", "sha", "3", "fp", ("beefbeef",))
    p = run(snapshot({"champion": "2"}, "2"), main_text("2"), {branch.name: branch})
    assert p.closes == () and p.notes[0].tell and "beefbeef" in p.notes[0].message


def test_same_fingerprint_on_the_branch_writes_nothing() -> None:
    first = run(snapshot({"champion": "3"}, "2", "3"), main_text("2")).changes[0]
    branch = BotBranch(first.key.branch, "sha", "3", first.fingerprint)
    assert run(snapshot({"champion": "3"}, "2", "3"), main_text("2"), {branch.name: branch}).changes == ()


def test_newer_version_supersedes_the_open_branch() -> None:
    branch = BotBranch("releasebot/production/fraud-detector/release", "sha", "3", "old")
    c = run(snapshot({"champion": "4"}, "2", "4"), main_text("2"), {branch.name: branch}).changes[0]
    assert c.supersedes == "3" and c.title.endswith("(supersedes v3)")


def test_a_person_s_commit_on_the_branch_is_left_alone_and_said() -> None:
    branch = BotBranch("releasebot/production/fraud-detector/release", "sha", "3", "old", ("deadbeefcafe",))
    p = run(snapshot({"champion": "4"}, "2", "4"), main_text("2"), {branch.name: branch})
    assert p.changes == () and p.notes[0].tell and "deadbeef" in p.notes[0].message


def test_pin_wins_over_the_alias_and_blocked_versions_are_skipped() -> None:
    assert run(snapshot({"champion": "4"}, "2", "4"), main_text("2", pinned="2", blocked="3")).changes == ()
    p = run(snapshot({"champion": "3"}, "2", "3"), main_text("2", blocked="3"))
    assert p.changes == () and "blocked in Git" in p.notes[0].message


def test_missing_alias_is_a_note_before_the_first_release_and_an_error_after() -> None:
    assert not run(snapshot({}), main_text()).notes[0].error
    assert run(snapshot({}, "2"), main_text("2")).notes[0].error


def test_rollback_and_unblock_changes() -> None:
    text = main_text("3")
    change = rollback(CAT, "production", "fraud-detector", RepoState({PATH: text}), version("2"))
    new = yamlio.to_plain(yamlio.load(change.edits[0].new, PATH))["metadata"]["annotations"]
    assert new[inferenceservice.PINNED_ANNOTATION] == "2" and new[inferenceservice.BLOCKED_ANNOTATION] == "3"
    assert change.key.branch == "releasebot/production/fraud-detector/pin"
    cleared = unblock(CAT, "production", "fraud-detector", RepoState({PATH: change.edits[0].new}), None)
    after = yamlio.to_plain(yamlio.load(cleared.edits[0].new, PATH))["metadata"]["annotations"]
    assert inferenceservice.PINNED_ANNOTATION not in after and inferenceservice.BLOCKED_ANNOTATION not in after


def test_release_edit_touches_only_registry_fields() -> None:
    before = main_text("2")
    after = release_edit(PATH, before, version("3")).new
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert changed == [
        ("    releasebot.dev/version: '2'", "    releasebot.dev/version: '3'"),
        ("    releasebot.dev/run-id: run2", "    releasebot.dev/run-id: run3"),
        ("      storageUri: s3://models/fraud/2", "      storageUri: s3://models/fraud/3"),
    ]


def test_fingerprint_is_stable_and_sensitive() -> None:
    assert fingerprint("a", "b") == fingerprint("a", "b") != fingerprint("a", "c")


@pytest.mark.parametrize("path", [Path("x")])
def test_plan_module_is_pure(path: Path) -> None:
    del path
    import ast

    import bot.plan

    tree = ast.parse(Path(bot.plan.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not {m for m in imported if m and m.split(".")[0] in {"git", "github", "mlflow", "kubernetes", "requests"}}


def test_a_broken_manifest_on_main_is_named_by_its_path() -> None:
    from bot.errors import YamlError
    from bot.plan import registry_wants

    with pytest.raises(YamlError, match=r"^production/fraud-detector/inferenceservice\.yaml:2: invalid YAML"):
        registry_wants(CAT, RepoState({PATH: "spec: {a: 1\n"}))


@pytest.mark.parametrize("action", ["alert", "none"])
def test_drift_policy_alert_raises_and_resolves_none_only_records(action: str) -> None:
    from dataclasses import replace

    model = CAT.model("fraud-detector")
    cat = replace(
        CAT, models=tuple(replace(m, drift=replace(m.drift, action=action)) if m is model else m for m in CAT.models)
    )

    def drifting(status: str) -> RegistrySnapshot:
        tags = (("releasebot.drift.production.status", status), ("releasebot.drift.production.run_id", f"run-{status}"))
        state = ModelState("fraud-detector", (("champion", "2"),), {"2": replace(version("2"), tags=tags)})
        return RegistrySnapshot("http://mlflow", {"fraud-detector": state})

    repo = RepoState({PATH: main_text("2")})
    raised = plan(cat, drifting("drift"), repo, env="production", model="fraud-detector")
    resolved = plan(cat, drifting("ok"), repo, env="production", model="fraud-detector")
    assert raised.changes == resolved.changes == ()  # neither policy touches a file
    if action == "none":
        assert raised.alerts == resolved.alerts == ()
        return
    [up], [down] = raised.alerts, resolved.alerts
    assert up.raised and up.key == Key("production", "fraud-detector", "alert")
    assert up.title == "Drift: fraud-detector v2 in production" and "@champion" in up.body
    assert not down.raised and "run-ok" in down.body
    assert up.fingerprint != down.fingerprint and up.marker == "<!-- releasebot:alert=production/fraud-detector -->"


def _repo_files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*.yaml") if ".git" not in p.parts}


def _moot_branches(person: bool) -> dict[str, BotBranch]:
    names = [
        "releasebot/production/fraud-detector/retrain",
        "releasebot/production/karpenter/capacity",
        "releasebot/production/fraud-detector/pin",
        "releasebot/production/retired-model/release",
    ]
    commits = ("feedc0de" * 5,) if person else ()
    return {n: BotBranch(n, "abc", "1", "f" * 16, commits, applied=n.endswith("/pin")) for n in names}


@pytest.mark.parametrize("person", [False, True])
def test_moot_retrain_capacity_pin_and_removed_model_branches_close_unless_a_person_committed(
    env_repo: Path, person: bool
) -> None:
    """Nothing is wanted for any of these keys: no drift, limits that fit, a pin main already has,
    a model no longer in the catalog. Each kind closes the same way, and a person's commit on
    any of them is said once and left alone."""
    states = {m.registered_model: ModelState(m.registered_model, ()) for m in CAT.models}
    repo = RepoState(_repo_files(env_repo), _moot_branches(person))
    p = plan(CAT, RegistrySnapshot("http://mlflow", states), repo, env="production")
    assert p.changes == ()
    told = {n.key.branch for n in p.notes if n.tell and "commits by a person" in n.message}
    if person:
        assert p.closes == () and told == set(_moot_branches(person))
    else:
        assert {c.key.branch for c in p.closes} == set(_moot_branches(person)) and told == set()
        reasons = {c.key.kind + "/" + c.key.model: c.reason for c in p.closes}
        assert "does not call for retraining" in reasons["retrain/fraud-detector"]
        assert "already fit the catalog" in reasons["capacity/karpenter"]
        assert "main already has" in reasons["pin/fraud-detector"]
        assert "no longer in the catalog" in reasons["release/retired-model"]


def test_a_retrain_branch_closes_when_the_drift_it_answered_is_gone(env_repo: Path) -> None:
    path = "production/fraud-detector/inferenceservice.yaml"
    files = _repo_files(env_repo)
    files[path] = release_edit(path, files[path], version("2")).new
    branch = "releasebot/production/fraud-detector/retrain"
    repo = RepoState(files, {branch: BotBranch(branch, "abc", "2", "f" * 16)})

    def tagged(status: str) -> RegistrySnapshot:
        from dataclasses import replace

        v2 = replace(
            version("2"),
            tags=(("releasebot.drift.production.status", status), ("releasebot.drift.production.run_id", "r")),
        )
        return RegistrySnapshot("http://mlflow", {"fraud-detector": ModelState("fraud-detector", (), {"2": v2})})

    drifting = plan(CAT, tagged("drift"), repo, env="production", model="fraud-detector")
    assert [c.key.kind for c in drifting.changes] == ["retrain"] and drifting.closes == ()
    healed = plan(CAT, tagged("ok"), repo, env="production", model="fraud-detector")
    assert healed.changes == () and [c.key.branch for c in healed.closes] == [branch]


def test_two_environments_serving_one_version_keep_separate_drift_verdicts(env_repo: Path) -> None:
    """dev's "no drift" on v2 does not cancel production's retrain for the same v2."""
    from dataclasses import replace

    files = _repo_files(env_repo)
    for env in ("dev", "production"):
        path = f"{env}/fraud-detector/inferenceservice.yaml"
        files[path] = release_edit(path, files[path], version("2")).new
    tags = (
        ("releasebot.drift.dev.status", "ok"),
        ("releasebot.drift.dev.run_id", "run-dev"),
        ("releasebot.drift.production.status", "drift"),
        ("releasebot.drift.production.run_id", "run-prod"),
    )
    v2 = replace(version("2"), tags=tags)
    registry = RegistrySnapshot("http://mlflow", {"fraud-detector": ModelState("fraud-detector", (), {"2": v2})})
    p = plan(CAT, registry, RepoState(files), model="fraud-detector")
    retrains = [c for c in p.changes if c.key.kind == "retrain"]
    assert [c.key.environment for c in retrains] == ["production"]
    assert "run-prod" in retrains[0].commit_message and "run-dev" not in retrains[0].commit_message


def _drift_version(text: str) -> str:
    doc = yamlio.to_plain(yamlio.load(text, "drift-check-cronjob.yaml"))
    [container] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return next(e["value"] for e in container["env"] if e["name"] == "RELEASEBOT_SERVED_VERSION")


def test_the_drift_check_follows_what_a_release_and_a_rollback_serve(env_repo: Path) -> None:
    """A release commit points the environment's drift check at the released version; a
    rollback at the pinned one — never at the alias, which may say something else."""
    files = _repo_files(env_repo)
    drift_path = "production/fraud-detector/drift-check-cronjob.yaml"
    assert _drift_version(files[drift_path]) == ""
    p = plan(CAT, snapshot({"champion": "3"}, "3"), RepoState(files), env="production", model="fraud-detector")
    [release] = [c for c in p.changes if c.key.kind == "release"]
    edited = {e.path: e for e in release.edits}
    assert set(edited) == {PATH, drift_path}
    assert _drift_version(edited[drift_path].new) == "3"
    files = files | {e.path: e.new for e in release.edits}
    back = rollback(CAT, "production", "fraud-detector", RepoState(files), version("2"))
    assert isinstance(back, Change)
    assert _drift_version({e.path: e for e in back.edits}[drift_path].new) == "2"


def test_a_pin_branch_with_a_person_s_commit_refuses_a_new_pin() -> None:
    branch = BotBranch("releasebot/production/fraud-detector/pin", "sha", "2", "fp", ("feedf00d",))
    state = RepoState({PATH: main_text("3")}, {branch.name: branch})
    for asked in (
        rollback(CAT, "production", "fraud-detector", state, version("2")),
        unblock(CAT, "production", "fraud-detector", state, None),
        hold(CAT, "production", "fraud-detector", state),
    ):
        assert isinstance(asked, Note) and asked.error and "feedf00d" in asked.message
