"""Durations as Istio reads them: Go's ``time.ParseDuration`` syntax (``10s``, ``0.5s``, ``100ms``, ``1m30s``,
``2h``, ``300us``), as float seconds.

``parse_duration`` accepts any Go duration. ``parse_timeout`` adds Istio's rule for timeouts and intervals
(``ValidateDuration`` in ``pkg/config/validation``): at least 1ms, and no finer than a millisecond.
Values are computed in integer nanoseconds first (as Go does), so ``0.1s`` is exactly 100ms before it becomes a float.
"""

from __future__ import annotations

import re
from decimal import Decimal

__all__ = [
    "MIN_TIMEOUT_NS",
    "DurationError",
    "format_duration",
    "parse_duration",
    "parse_duration_ns",
    "parse_timeout",
]

MIN_TIMEOUT_NS = 1_000_000  # 1ms: Istio rejects shorter timeouts and intervals
_MAX_NS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds

_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign, as Go accepts
    "\u03bcs": 1_000,  # greek small letter mu, as Go accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_NUMBER = r"(?:\d+\.?\d*|\.\d+)"
_UNIT = r"(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h)"
_WHOLE = re.compile(rf"[-+]?(?:{_NUMBER}{_UNIT})+")
_COMPONENT = re.compile(rf"({_NUMBER})({_UNIT})")


class DurationError(ValueError):
    """A string that is not a Go duration, or a duration out of the allowed range. The message names the value."""


def parse_duration_ns(text: str) -> int:
    """Parse a Go duration into integer nanoseconds (fractions of a nanosecond are truncated, as in Go)."""
    if not isinstance(text, str):
        raise DurationError(f"a duration must be a string like '10s', got {text!r}")
    value = text.strip()
    if value in ("0", "+0", "-0"):
        return 0
    if not _WHOLE.fullmatch(value):
        raise DurationError(
            f"invalid duration {text!r}: expected a number with a unit (ns, us, ms, s, m, h), like '10s', '1.5s', "
            "'100ms' or '1m30s'"
        )
    sign = -1 if value.startswith("-") else 1
    total = Decimal(0)
    for number, unit in _COMPONENT.findall(value.lstrip("+-")):
        total += Decimal(number) * _UNIT_NS[unit]
    nanos = int(total)
    if nanos > _MAX_NS:
        raise DurationError(f"invalid duration {text!r}: out of range (at most about 2562047h)")
    return sign * nanos


def parse_duration(text: str) -> float:
    """Parse a Go duration into float seconds: ``'1m30s'`` -> ``90.0``, ``'300us'`` -> ``0.0003``."""
    return parse_duration_ns(text) / 1e9


def parse_timeout(text: str) -> float:
    """Parse a timeout or interval, in seconds, with Istio's rules: at least 1ms, at most millisecond precision."""
    nanos = parse_duration_ns(text)
    if nanos < MIN_TIMEOUT_NS:
        raise DurationError(f"duration {text!r} is too short: it must be at least 1ms")
    if nanos % 1_000_000:
        raise DurationError(f"duration {text!r} is finer than a millisecond: only millisecond precision is supported")
    return nanos / 1e9


def format_duration(seconds: float) -> str:
    """The shortest exact Go-style spelling of a whole number of milliseconds: ``90.0`` -> ``'1m30s'``."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    sign = "-" if millis < 0 else ""
    millis = abs(millis)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    out = sign
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs and ms:
        out += f"{secs}.{ms:03d}".rstrip("0") + "s"
    elif secs:
        out += f"{secs}s"
    elif ms:
        out += f"{ms}ms"
    return out
