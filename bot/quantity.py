"""Kubernetes resource quantities: parse to exact decimals, add them up, write them back.

Only what capacity planning needs: CPU in cores, memory in bytes, GPUs as counts. Results are
rounded *up* (to whole cores and whole GiB) because they become limits, and a limit that is a
little too low stops a release from scheduling.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_SUFFIX = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:([eE][0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)")
GIB = Decimal(2) ** 30


def parse(q: str | int) -> Decimal:
    """``"500m"`` -> 0.5, ``"2Gi"`` -> 2147483648, ``3`` -> 3."""
    if isinstance(q, int):
        return Decimal(q)
    m = _QUANTITY.fullmatch(q.strip())
    if not m:
        raise ValueError(f"{q!r} is not a Kubernetes quantity")
    number, exponent, suffix = m.groups()
    value = Decimal(number)
    if exponent:
        return value * (Decimal(10) ** int(exponent[1:]))
    return value * _SUFFIX[suffix or ""]


def cpu_ceiling(cores: Decimal) -> int:
    return max(1, math.ceil(cores))


def memory_ceiling(num_bytes: Decimal) -> str:
    return f"{max(1, math.ceil(num_bytes / GIB))}Gi"
