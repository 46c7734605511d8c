"""The configuration reference has one source of truth each, and the README says what they say.

Environment variables are declared in ``bot/settings.py`` and read through it; catalog settings
are the schema's. The README's tables are generated from both (``make docs``)."""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path

import pytest

from bot import settings
from bot.errors import ConfigError
from bot.serve import build_receiver
from tests.regenerate_docs import README, SCHEMA, catalog_table, render

BOT = Path(__file__).resolve().parent.parent / "bot"
# Not read by releasebot: a variable of the drift-check CronJob's container that Kubernetes
# expands into `drift run --version $(RELEASEBOT_SERVED_VERSION)`; releasebot only writes it.
WRITTEN_ONLY = {"RELEASEBOT_SERVED_VERSION"}
NAME = re.compile(r"RELEASEBOT_[A-Z0-9_]+")


def test_the_readme_s_configuration_reference_is_what_the_sources_say() -> None:
    text = README.read_text()
    assert render(text) == text, "README.md's configuration reference is stale: run `make docs`"


def test_a_new_catalog_setting_shows_up_in_the_reference() -> None:
    schema = json.loads(SCHEMA.read_text())
    changed = copy.deepcopy(schema)
    changed["$defs"]["environment"]["properties"]["freeze"] = {"type": "boolean", "description": "Hold everything."}
    assert "environments[].freeze" not in catalog_table(schema)
    assert "| `environments[].freeze` | boolean | — | Hold everything. |" in catalog_table(changed)


def test_every_catalog_setting_is_in_the_reference() -> None:
    table = catalog_table()
    schema = json.loads(SCHEMA.read_text())
    for key in schema["properties"]:
        assert f"| `{key}`" in table, key
    for key in schema["$defs"]["model"]["properties"]:
        assert f"| `models[].{key}`" in table, key


def _literals() -> dict[str, list[str]]:
    """Every string constant in bot/ that is exactly a RELEASEBOT_* name, by module."""
    found: dict[str, list[str]] = {}
    for path in sorted(BOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.fullmatch(node.value):
                found.setdefault(path.relative_to(BOT).as_posix(), []).append(node.value)
    return found


def test_no_module_but_settings_spells_a_variable_name() -> None:
    found = _literals()
    assert sorted(found.pop("settings.py")) == sorted(s.name for s in settings.RELEASEBOT)
    stray = {module: names for module, names in found.items() if set(names) - WRITTEN_ONLY}
    assert not stray, f"read these through bot.settings: {stray}"


def test_every_declared_setting_is_read_somewhere() -> None:
    """A setting nothing reads would be documented and ignored."""
    used: set[str] = set()
    for path in BOT.rglob("*.py"):
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "settings":
                used.add(node.attr)
    declared = {name for name, value in vars(settings).items() if isinstance(value, settings.Setting)}
    assert declared - used == set()


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan", "inf"])
def test_a_wait_that_is_not_a_positive_number_is_refused_by_name(value: str) -> None:
    config = {
        "RELEASEBOT_GITHUB_WEBHOOK_SECRET": "a",
        "RELEASEBOT_MLFLOW_WEBHOOK_SECRET": "b",
        "RELEASEBOT_RESYNC_SECONDS": value,
    }
    with pytest.raises(ConfigError, match=f"RELEASEBOT_RESYNC_SECONDS is '{value}'; expected a positive number"):
        build_receiver(config)


def test_settings_parse_what_they_document() -> None:
    assert settings.RESYNC_SECONDS.seconds({}) == 300.0
    assert settings.WORKDIR_WAIT.seconds({"RELEASEBOT_WORKDIR_WAIT": "0.5"}) == 0.5
    assert settings.REPO.get({"RELEASEBOT_REPO": ""}) == "."  # empty is unset
    assert settings.GITHUB_INSTALLATION_ID.integer({}) is None
    assert settings.GITHUB_INSTALLATION_ID.integer({"RELEASEBOT_GITHUB_INSTALLATION_ID": "42"}) == 42
    with pytest.raises(ConfigError, match="RELEASEBOT_GITHUB_INSTALLATION_ID is '4 2'; expected a whole number"):
        settings.GITHUB_INSTALLATION_ID.integer({"RELEASEBOT_GITHUB_INSTALLATION_ID": "4 2"})


def test_a_bad_workdir_wait_stops_a_command_before_it_touches_anything(run_cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RELEASEBOT_WORKDIR_WAIT", "a while")
    result = run_cli("plan", "--repo", tmp_path / "nowhere", "--workdir", tmp_path / "work")
    # Refused as a configuration error (its exit code is the CLI's mapping of ConfigError).
    assert result.code != 0 and "RELEASEBOT_WORKDIR_WAIT is 'a while'" in result.err
    assert not (tmp_path / "work").exists()


def test_the_troubleshooting_entries_alerts_link_to_are_there() -> None:
    headings = re.findall(r"^(#{2,3}) (.+)$", README.read_text(), re.M)
    assert ("##", "Troubleshooting") in headings
    for title in (
        "releasebot is down",
        "Reconciles fail",
        "Webhook signature failures",
        "GitHub rate limit low",
        "A walk is stuck past its deadline",
        "Drift detected",
    ):
        assert ("###", title) in headings, title
