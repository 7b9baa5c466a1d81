"""Kubernetes quantity strings (resource.Quantity, decimal SI) for metric values."""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Decimal

_SCALES = ((0, ""), (3, "m"), (6, "u"), (9, "n"))


def format_quantity(value: float) -> str:
    """The shortest exact decimal-SI form at nano precision: 2 -> "2", 1.5 -> "1500m",
    0.0001 -> "100u", 1/3 -> "333333333n". NaN and infinities are not quantities."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    nanos = int(Decimal(repr(float(value))).scaleb(9).to_integral_value(ROUND_HALF_EVEN))
    if nanos == 0:
        return "0"
    for exp, suffix in _SCALES:
        unit = 10 ** (9 - exp)
        if nanos % unit == 0:
            return f"{nanos // unit}{suffix}"
    raise AssertionError("unreachable")


_SUFFIX = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei)|([numkMGTPE])|[eE]([+-]?\d+))?$")


def parse_quantity(text: str) -> float:
    """Parse a Kubernetes quantity ("1500m", "2", "1.5k", "1e3", "1Ki") into a float."""
    m = _QUANTITY.match(text.strip())
    if not m:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    number, binary, suffix, exp = m.groups()
    d = Decimal(number)
    if binary:
        d *= 2 ** _BINARY[binary]
    elif suffix:
        d = d.scaleb(_SUFFIX[suffix])
    elif exp:
        d = d.scaleb(int(exp))
    return float(d)
