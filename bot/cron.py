"""Cron schedules as a Kubernetes CronJob accepts them, checked before the API server sees them.

Kubernetes parses ``spec.schedule`` with robfig/cron's standard parser: five fields (minute,
hour, day of month, month, day of week), names for months and weekdays, ``*``, ranges, steps,
lists, ``?`` in the day fields, and the macros ``@yearly @annually @monthly @weekly @daily
@midnight @hourly``. ``TZ=``/``CRON_TZ=`` prefixes are refused by the API server since 1.27
(``spec.timeZone`` replaces them), so they are refused here too.

Neither kubernetes-validate nor the CRD schemas check any of this; this module only answers
"is it valid, and if not, why". It does not compute next run times.
"""

from __future__ import annotations

import re

MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)


def _value(token: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    if token.upper() in names:
        return names[token.upper()]
    if not re.fullmatch(r"[0-9]+", token):
        raise ValueError(f"{field}: {token!r} is not a number")
    n = int(token)
    if not low <= n <= high:
        raise ValueError(f"{field}: {n} is outside {low}-{high}")
    return n


def _check_field(text: str, index: int) -> None:
    field, low, high, names = _FIELDS[index]
    for part in text.split(","):
        if part == "":
            raise ValueError(f"{field}: empty list element")
        rng, _, step = part.partition("/")
        if _ and (not re.fullmatch(r"[0-9]+", step) or int(step) == 0):
            raise ValueError(f"{field}: step {step!r} must be a positive number")
        if rng in ("*", "?"):
            if rng == "?" and index not in (2, 4):
                raise ValueError(f"{field}: '?' is only allowed for day of month and day of week")
            continue
        start, dash, end = rng.partition("-")
        a = _value(start, low, high, names, field)
        if dash:
            b = _value(end, low, high, names, field)
            if b < a:
                raise ValueError(f"{field}: range {rng!r} runs backwards")


def cron_error(schedule: object) -> str | None:
    """None when ``schedule`` is valid; otherwise what is wrong with it."""
    if not isinstance(schedule, str):
        return f"a schedule must be a string, got {type(schedule).__name__}"
    text = schedule.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        return "TZ= prefixes are not allowed; set spec.timeZone instead"
    if text.startswith("@"):
        return None if text in MACROS else f"unknown macro {text!r} (expected one of {', '.join(sorted(MACROS))})"
    fields = text.split()
    if len(fields) != 5:
        return f"expected 5 fields (minute hour day-of-month month day-of-week), found {len(fields)}"
    try:
        for i, f in enumerate(fields):
            _check_field(f, i)
    except ValueError as exc:
        return str(exc)
    return None
