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


def _verdict(passed: bool, *measurements, error: str | None = None):
    from datetime import UTC, datetime

    from bot.plan.types import Verdict

    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    end = datetime(2025, 3, 1, 12, 10, tzinfo=UTC)
    return Verdict(passed, tuple(measurements), start, end, error)


def test_an_analysis_verdict_is_a_table_of_checks() -> None:
    from bot.plan.types import Measurement

    q = 'sum(rate(revision_request_count{revision_name="r-2", response_code_class="5xx"}[600s])) | 1'
    text = prbody.analysis_table(
        _verdict(
            False,
            Measurement("error-ratio", q, 0.2, 0.0, "≤ 0.01", False, "0.2 > 0.01"),
            Measurement("latency-p95", "histogram_quantile(0.95, x)", None, 59.0, "≤ 100 ms", False, "no data: x"),
            Measurement("requests", "sum(x)", 3600.4, 14400, "≥ 1", True),
        )
    )
    lines = text.splitlines()
    assert lines[0] == "**Canary analysis failed** over 2025-03-01 12:00:00 to 12:10:00 UTC."
    assert lines[2] == "| check | query | canary | stable | threshold | result |"
    assert lines[4] == (
        '| error-ratio | `sum(rate(revision_request_count{revision_name="r-2", response_code_class="5xx"}[600s])) '
        "\\| 1` | 0.2 | 0 | ≤ 0.01 | ❌ fail: 0.2 > 0.01 |"
    )
    assert lines[5] == (
        "| latency-p95 | `histogram_quantile(0.95, x)` | no data | 59 | ≤ 100 ms | ❌ fail: no data: x |"
    )
    assert lines[6] == "| requests | `sum(x)` | 3600 | 1.44e+04 | ≥ 1 | ✅ pass |"
    assert all(line.count(" | ") == 5 for line in lines[4:])  # the pipe in the query stayed in its cell


def test_an_analysis_that_could_not_run_says_why() -> None:
    text = prbody.analysis_table(_verdict(False, error="Prometheus unreachable; token=abc123"))
    assert text == (
        "**Analysis could not run** (2025-03-01 12:00:00 to 12:10:00 UTC): Prometheus unreachable; [redacted]"
    )
