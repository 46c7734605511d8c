"""Hostile and ambiguous YAML is refused before use; round trips are byte-stable."""

from __future__ import annotations

import pytest

from bot import yamlio
from bot.errors import YamlError

BILLION_LAUGHS = (
    "\n".join(
        ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        + [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    )
    + "\n"
)

HOSTILE = {
    "billion_laughs": (BILLION_LAUGHS, "aliases expand to more than", None),
    "deep_flow_nesting": ("a: " + "[" * 10_000 + "]" * 10_000 + "\n", "nesting deeper than 64", 1),
    "deep_flow_mapping": ("a: " + "{a: " * 10_000 + "}" * 10_000 + "\n", "nesting deeper than 64", 1),
    "deep_block_nesting": ("".join(" " * i + "k:\n" for i in range(200)), "nesting deeper than 64", 65),
    "python_object_tag": ("a: !!python/object/apply:os.system ['echo owned']\n", "python/object/apply", 1),
    "custom_tag": ("a: 1\nb: !Ref other\n", "'!Ref' is refused", 2),
    "duplicate_keys": ("a: 1\nb: 2\na: 3\n", "duplicate key 'a'", 3),
    "multi_document": ("a: 1\n---\nb: 2\n", "expected 1 YAML document", 2),
    "syntax_error": ("a: [1, 2\nb: 3\n", "invalid YAML", 2),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_is_refused_with_location(case: str) -> None:
    text, expected, line = HOSTILE[case]
    with pytest.raises(YamlError) as info:
        yamlio.load(text, "evil.yaml")
    message = str(info.value)
    assert expected in message
    assert message.startswith("evil.yaml")
    if line is not None:
        assert info.value.location.line == line


def test_oversized_file_is_refused_before_parsing() -> None:
    with pytest.raises(YamlError, match="larger than"):
        yamlio.load("a: " + "x" * (yamlio.MAX_BYTES + 1), "big.yaml")


def test_small_aliases_are_fine() -> None:
    doc = yamlio.load("base: &b {cpu: 1}\nother: *b\n", "ok.yaml")
    assert yamlio.to_plain(doc) == {"base": {"cpu": 1}, "other": {"cpu": 1}}


def test_empty_file_is_refused() -> None:
    with pytest.raises(YamlError, match="no YAML document"):
        yamlio.load("# only a comment\n", "empty.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "# c\na:\n- x   # trailing\n- 'y'\nb:\n  c: \"1\"\n",
        "a:\n  - x\n  - y\nb:\n  c: 1\n",
        "a:\n    - x\nb:\n    c: 1   # four\n",
        'spec:\n  containers:\n  - name: a\n    env:\n    - name: X\n      value: "1"\n',
    ],
)
def test_round_trip_is_byte_identical_in_the_files_own_style(text: str) -> None:
    assert yamlio.dump(yamlio.load(text, "x.yaml"), yamlio.guess_style(text)) == text


def test_values_we_write_are_quoted_when_yaml11_would_misread_them() -> None:
    doc = yamlio.load("a: 1\n", "x.yaml")
    doc["flags"] = yamlio.quote_ambiguous({"enabled": "on", "mode": "0755", "plain": "text"})
    out = yamlio.dump(doc)
    assert 'enabled: "on"' in out and 'mode: "0755"' in out and "plain: text" in out


def test_a_persons_unquoted_yes_is_left_alone() -> None:
    text = "a: yes\nb: 1\n"
    doc = yamlio.load(text, "x.yaml")
    doc["b"] = 2
    assert yamlio.dump(doc) == "a: yes\nb: 2\n"


def test_line_of_finds_keys_and_items() -> None:
    doc = yamlio.load("a:\n  b:\n    - x\n    - y\n", "x.yaml")
    assert yamlio.line_of(doc, ("a", "b", 1)) == 4
    assert yamlio.line_of(doc, ("a", "missing", "deeper")) == 1
    assert yamlio.format_path(("spec", "containers", 0, "a.b/c")) == "$.spec.containers[0]['a.b/c']"


def test_brackets_in_quotes_and_plain_scalars_do_not_count_as_nesting() -> None:
    deep = "[" * 70
    text = f"a: [ \"\\\" {deep}\" ]\nb: items{deep}\nc: ['it''s {deep}', [1]]\n# {deep}\n"
    assert yamlio.to_plain(yamlio.load(text, "ok.yaml"))["a"] == [f'" {deep}']


def test_expansion_limit_counts_only_what_aliases_add(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlio, "MAX_EXPANDED_NODES", 1_000)
    # 11 nodes a line, 2,200 in all, none of them from an alias: fine.
    honest = "".join(f"k{i}: [a, b, c, d, e, f, g, h, i]\n" for i in range(200))
    assert len(yamlio.load(honest, "big.yaml")) == 200
    # The same file after 101 aliases of a 10-node list (1,010 nodes added): refused at the 101st.
    aliased = "base: &b [a, b, c, d, e, f, g, h, i]\n" + "".join(f"x{i}: *b\n" for i in range(101)) + honest
    with pytest.raises(YamlError, match="aliases expand to more than 1000 nodes") as info:
        yamlio.load(aliased, "evil.yaml")
    assert info.value.location.line == 102


def test_alias_bomb_still_refused_at_the_line_that_crosses_the_limit() -> None:
    with pytest.raises(YamlError, match="aliases expand to more than 100000 nodes") as info:
        yamlio.load(BILLION_LAUGHS, "evil.yaml")
    # a5 adds 9 x 7,381 nodes, the first level past the limit.
    assert info.value.location.line == 6


def test_aliases_cannot_nest_deeper_than_the_limit() -> None:
    # Each level is small, but every alias carries its anchor's nesting along.
    text = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 80))
    with pytest.raises(YamlError, match="nesting deeper than 64") as info:
        yamlio.load(text, "evil.yaml")
    assert info.value.location.line == 64


def test_deep_block_nesting_is_refused_at_the_limit_not_by_recursion() -> None:
    text = "".join(" " * i + "k:\n" for i in range(10_000))[: yamlio.MAX_BYTES]
    with pytest.raises(YamlError, match="nesting deeper than 64") as info:
        yamlio.load(text, "evil.yaml")
    assert info.value.location.line == 65


def test_compact_nested_sequences_on_one_line_are_refused() -> None:
    with pytest.raises(YamlError, match="nesting deeper than 64") as info:
        yamlio.load("a:\n" + "- " * 100_000 + "x\n", "evil.yaml")
    assert info.value.location.line == 2


def test_a_caller_sets_its_own_size_cap() -> None:
    text = "a: " + "x" * 100 + "\n"
    assert yamlio.load(text, "ok.yaml") == {"a": "x" * 100}
    with pytest.raises(YamlError, match="larger than 0 KiB"):
        yamlio.load(text, "big.yaml", max_bytes=100)


@pytest.mark.parametrize("value", ["-_", "+_", "0b_", "0x_"])
def test_a_number_ruamel_cannot_read_is_refused_not_crashed(value: str) -> None:
    with pytest.raises(YamlError, match="looks like a number but is not one"):
        yamlio.load(f"a: {value}\n", "evil.yaml")
