"""Blueprint rendering: values are substituted as data, never spliced into YAML text."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import yamlio
from bot.blueprints import Blueprint, BlueprintSet
from bot.errors import SecurityError, YamlError


def render(text: str, values: dict) -> dict:
    bp = Blueprint(yamlio.load(text, "bp.yaml"), "bp.yaml")
    return yamlio.to_plain(yamlio.load(yamlio.dump(bp.render(values)), "out.yaml"))


def test_whole_placeholder_takes_any_type_and_none_removes_the_key() -> None:
    out = render(
        "a: ${n}\nb: ${m}\nc: ${gone}\nd:\n  - ${item}\n  - ${gone}\n",
        {"n": 3, "m": {"x": [1, 2]}, "gone": None, "item": "kept"},
    )
    assert out == {"a": 3, "b": {"x": [1, 2]}, "d": ["kept"]}


def test_placeholder_inside_a_string_is_interpolated() -> None:
    assert render("name: ${model}-drift-check\n", {"model": "fraud"}) == {"name": "fraud-drift-check"}


def test_dollar_dollar_escapes_a_literal_placeholder() -> None:
    assert render("run: echo $${HOME} ${x}\n", {"x": "y"}) == {"run": "echo ${HOME} y"}


@pytest.mark.parametrize(
    "evil",
    ["x\nkind: Secret", "{a: 1}", "[1, 2]", "x: y", "&anchor *alias", "!!python/object:os.system", "'\"quote"],
)
def test_values_cannot_inject_structure(evil: str) -> None:
    assert render("name: ${v}\nfixed: ok\n", {"v": evil}) == {"name": evil, "fixed": "ok"}


def test_unknown_placeholder_names_file_and_line() -> None:
    with pytest.raises(YamlError, match=r"bp.yaml:2: \$.b: unknown placeholder \$\{nope\}"):
        render("a: 1\nb: ${nope}\n", {})


def test_placeholder_in_a_key_is_refused() -> None:
    with pytest.raises(YamlError, match=r"bp.yaml:2: \$\['\$\{k\}'\]: placeholder in a key"):
        Blueprint(yamlio.load("a: 1\n${k}: 2\n", "bp.yaml"), "bp.yaml")


def test_collection_inside_a_string_is_refused() -> None:
    with pytest.raises(YamlError, match="needs a string or number value"):
        render("a: prefix-${m}\n", {"m": {"x": 1}})


def test_quote_style_of_the_blueprint_is_kept() -> None:
    bp = Blueprint(yamlio.load('a: "${v}"\n', "bp.yaml"), "bp.yaml")
    assert yamlio.dump(bp.render({"v": "500m"})) == 'a: "500m"\n'


def test_user_blueprint_folder_overrides_builtin(tmp_path: Path) -> None:
    (tmp_path / "karpenter").mkdir()
    (tmp_path / "karpenter" / "ec2nodeclass.yaml").write_text("custom: ${cluster.name}\n")
    bps = BlueprintSet(tmp_path)
    assert yamlio.to_plain(bps.render("karpenter/ec2nodeclass.yaml", {"cluster.name": "c1"})) == {"custom": "c1"}
    # Files the user did not provide still come from the built-in set.
    assert bps.get("karpenter/nodepool.yaml").source == "blueprints/karpenter/nodepool.yaml"


def test_user_blueprint_cannot_escape_its_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("a: 1\n")
    inside = tmp_path / "bps"
    inside.mkdir()
    (inside / "inferenceservice.yaml").symlink_to(outside)
    with pytest.raises(SecurityError, match="resolves outside"):
        BlueprintSet(inside).get("inferenceservice.yaml")


def test_every_builtin_blueprint_is_valid_yaml_without_placeholders_in_keys() -> None:
    from bot.resources import blueprints_dir

    files = sorted(p for p in blueprints_dir().rglob("*") if p.suffix in (".yaml", ".yml"))
    assert len(files) >= 12
    for path in files:
        Blueprint(yamlio.load_file(path), str(path))
