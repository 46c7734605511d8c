from __future__ import annotations

import pytest

from bot.cron import cron_error

VALID = ["* * * * *", "0 * * * *", "*/15 0-6 1,15 JAN-MAR mon-fri", "30 2 ? * 0", "@hourly", "@daily", "5 4 * * SUN"]
INVALID = {
    "61 * * * *": "minute: 61 is outside 0-59",
    "0 * * *": "expected 5 fields",
    "0 24 * * *": "hour: 24 is outside 0-23",
    "0 0 0 * *": "day of month: 0 is outside 1-31",
    "*/0 * * * *": "step '0'",
    "5-1 * * * *": "runs backwards",
    "? * * * *": "'?' is only allowed",
    "@every 5m": "unknown macro",
    "TZ=UTC 0 * * * *": "spec.timeZone",
    "a * * * *": "is not a number",
}


@pytest.mark.parametrize("schedule", VALID)
def test_valid_schedules(schedule: str) -> None:
    assert cron_error(schedule) is None


@pytest.mark.parametrize("schedule", sorted(INVALID))
def test_invalid_schedules_say_why(schedule: str) -> None:
    error = cron_error(schedule)
    assert error is not None and INVALID[schedule] in error


def test_non_string_schedule() -> None:
    assert "must be a string" in cron_error(5)
