"""The fast plain reader answers exactly what the round-trip reader answers, or lets it answer."""

from __future__ import annotations

from typing import Any

import pytest

from bot import yamlio, yamlplain
from bot.errors import YamlError
from tests.test_yamlio import HOSTILE

# Plain scalars where YAML 1.1 (libyaml's own resolver, Kubernetes) and YAML 1.2 (ruamel) differ,
# and the usual suspects of manifests.
VALUES = [
    "on", "off", "yes", "no", "y", "n", "true", "True", "FALSE", "null", "~", "Null", "",
    "0755", "0o17", "0x1F", "0b101", "1_000", "+1", "-1", "0", "-0", "007", "1e3", "1.5", ".5", "-.inf", ".NaN",
    "1.", "12:30", "1:2:3", "0.5Gi", "250m", "1Gi", "'0755'", '"on"', "v1", "3.14.15",
    "0 * * * *", "s3://bucket/key", "x-y", "a#b",
]  # fmt: skip

DOCUMENTS = [
    "a: |\n  line one\n   two\nb: >-\n  folded\n  text\n\nc: |+\n  keep\n\n",
    "a: \"tab\\tand \\u00e9 and \\x41\"\nb: 'it''s'\nc: plain\n  continued\n",
    "base: &b {cpu: 1, list: [1, 2]}\nother: *b\nseq:\n- *b\n- &s scalar\n- *s\n",
    "on: 1\nyes: 2\n'0755': 3\n",
    "- a\n- - b\n  - c\n- {}\n- []\n-\n",
    "a: 1\n---\nb: 2\n...\n---\n",
    "# only a comment\n",
    "\ufeffa: 1\n",
]


def typed(value: Any) -> Any:
    """Values with their exact types, so 1 and True and 1.0 and '1' all differ; NaN equals itself."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, repr(value))


def round_trip(text: str) -> Any:
    return typed([yamlio.to_plain(d) for d in yamlio.load_all(text, "x.yaml")])


@pytest.mark.parametrize("value", VALUES)
def test_fast_loader_reads_values_like_ruamel(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = f"key: {value}\nlist: [{value}]\n"
    expected = round_trip(text)
    monkeypatch.setattr(yamlio, "load_all", None)  # any fallback would fail here
    assert typed(yamlplain.load_all(text, "x.yaml")) == expected


@pytest.mark.parametrize("text", DOCUMENTS)
def test_fast_loader_reads_documents_like_ruamel(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = round_trip(text)
    monkeypatch.setattr(yamlio, "load_all", None)
    assert typed(yamlplain.load_all(text, "x.yaml")) == expected


@pytest.mark.parametrize(
    "text",
    [
        "a: 2024-01-01\n",  # a timestamp: ruamel makes a date
        "base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n",  # a merge key
        "a: !!str 5\n",  # an explicit tag
        "%YAML 1.1\n---\na: on\n",  # YAML 1.1 rules for this document
        "1: one\n2.5: two\n",  # keys that are not strings
        "a: &a [1, *a]\n",  # an alias inside its own anchor
        "a: =\n",  # ruamel's YAML 'value' key type, read back as a string
    ],
)
def test_what_the_fast_loader_cannot_read_exactly_goes_the_round_trip(text: str) -> None:
    assert typed(yamlplain.load_all(text, "x.yaml")) == round_trip(text)


@pytest.mark.parametrize("text", ["a:\tb\n", "a: b\n\tc: d\n", 'a: "\\q"\n', "a: b: c\n"])
def test_syntax_ruamel_refuses_is_refused_even_where_libyaml_would_take_it(text: str) -> None:
    with pytest.raises(YamlError) as fast:
        yamlplain.load_all(text, "bad.yaml")
    with pytest.raises(YamlError) as slow:
        yamlio.load_all(text, "bad.yaml")
    assert str(fast.value) == str(slow.value)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_gets_the_round_trip_refusal_word_for_word(case: str) -> None:
    text, expected, _ = HOSTILE[case]
    with pytest.raises(YamlError) as fast:
        yamlplain.load(text, "evil.yaml")
    with pytest.raises(YamlError) as slow:
        yamlio.load(text, "evil.yaml")
    assert str(fast.value) == str(slow.value)
    assert expected in str(fast.value)


def test_aliases_are_shared_not_copied_and_still_bounded() -> None:
    doc = yamlplain.load("base: &b {cpu: 1}\nother: *b\n", "ok.yaml")
    assert doc == {"base": {"cpu": 1}, "other": {"cpu": 1}}
    with pytest.raises(YamlError, match="aliases expand to more than"):
        yamlplain.load(HOSTILE["billion_laughs"][0], "evil.yaml")


def test_one_document_is_required_by_load() -> None:
    with pytest.raises(YamlError, match="expected 1 YAML document"):
        yamlplain.load("a: 1\n---\nb: 2\n", "x.yaml")
    with pytest.raises(YamlError, match="no YAML document"):
        yamlplain.load("# nothing\n", "x.yaml")


def test_honest_5000_model_catalog_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.catalog import MAX_CATALOG_BYTES
    from tests.benchmarks.fleet import fleet_catalog

    text = fleet_catalog(5000, "http://127.0.0.1:5000")
    assert len(text.encode()) < MAX_CATALOG_BYTES / 4  # room to grow: 1.9 MB would be 91% of the 2 MiB cap
    # Read by the guarded fast path itself: a refusal would have fallen back to the round trip.
    monkeypatch.setattr(yamlio, "load", None)
    raw = yamlplain.load(text, "releasebot.yaml", MAX_CATALOG_BYTES)
    assert len(raw["models"]) == 5000
