"""The pull request text: untrusted MLflow text is redacted, mentions neutralised, limits kept."""

from __future__ import annotations

from bot import prbody
from bot.catalog import load_catalog
from bot.plan import FileEdit
from bot.registry import Version
from tests.conftest import EXAMPLE_CATALOG


def test_token_like_strings_are_redacted() -> None:
    text = "ghp_" + "a" * 36 + " AKIAABCDEFGHIJKLMNOP password=hunter2 xoxb-1234567890-abc plain"
    out = prbody.redact(text)
    assert out == "[redacted] [redacted] [redacted] [redacted] plain"


def test_mentions_are_neutralised_but_emails_and_code_are_not() -> None:
    assert (
        prbody.neutralise_mentions("ping @acme/ml-platform and @bob") == "ping @\u200dacme/ml-platform and @\u200dbob"
    )
    assert prbody.neutralise_mentions("mail me@example.com") == "mail me@example.com"


def test_title_and_body_stay_within_github_limits() -> None:
    assert len(prbody.title("x" * 1000)) == prbody.TITLE_LIMIT
    cat = load_catalog(EXAMPLE_CATALOG)
    huge = Version("m", "2", "s3://a", "r", "READY", metrics=tuple((f"m{i}" + "x" * 200, 1.0) for i in range(2000)))
    body = prbody.release_body(
        cat,
        cat.environment("production"),
        cat.model("fraud-detector"),
        huge,
        None,
        None,
        (FileEdit("p", "a", "b", ("$.x",)),),
        "abcd",
        None,
        "releasebot/x",
    )
    assert len(body) <= prbody.BODY_LIMIT
    assert prbody.fingerprint_in(body) == "abcd"  # the marker survives truncation


def test_hostile_run_tags_cannot_break_the_table() -> None:
    cat = load_catalog(EXAMPLE_CATALOG)
    v = Version(
        "m",
        "2",
        "s3://a",
        "r",
        "READY",
        metrics=(("acc|uracy\n@team", 0.5),),
        run_tags=(("dvc.rev", "@everyone ghp_" + "b" * 36),),
    )
    body = prbody.release_body(
        cat, cat.environment("dev"), cat.model("fraud-detector"), v, None, None, (), "ff", None, "b"
    )
    assert "| acc\\|uracy @\u200dteam | 0.5 | — | — |" in body
    assert "DVC revision `@\u200deveryone [redacted]`" in body
