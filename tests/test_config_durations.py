"""Go/Istio durations: parse_duration (any Go duration) and parse_timeout (Istio's >= 1ms, ms precision)."""

from __future__ import annotations

import pytest

from meshplane.durations import DurationError, format_duration, parse_duration, parse_duration_ns, parse_timeout

VALID = [
    ("seconds", "10s", 10.0),
    ("fraction", "0.5s", 0.5),
    ("leading-dot", ".5s", 0.5),
    ("millis", "100ms", 0.1),
    ("compound", "1m30s", 90.0),
    ("hours", "2h", 7200.0),
    ("micros", "300us", 0.0003),
    ("micro-sign", "300\u00b5s", 0.0003),
    ("nanos", "1500ns", 0.0000015),
    ("zero", "0", 0.0),
    ("zero-unit", "0s", 0.0),
    ("fractional-hour", "1.5h", 5400.0),
    ("many", "1h2m3s4ms", 3723.004),
    ("negative", "-1.5s", -1.5),
    ("plus", "+2s", 2.0),
]


@pytest.mark.parametrize(("text", "seconds"), [(t, s) for _, t, s in VALID], ids=[i for i, _, _ in VALID])
def test_parse_duration_accepts_go_syntax(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-12)


def test_parse_duration_ns_is_exact() -> None:
    assert parse_duration_ns("0.1s") == 100_000_000
    assert parse_duration_ns("1m0.001s") == 60_001_000_000


INVALID = [
    ("no-unit", "10"),
    ("bad-unit", "10d"),
    ("empty", ""),
    ("space-inside", "1 s"),
    ("unit-only", "s"),
    ("dot-only", ".s"),
    ("trailing-garbage", "10s!"),
    ("uppercase-unit", "10S"),
    ("overflow", "3000000h"),
]


@pytest.mark.parametrize("text", [t for _, t in INVALID], ids=[i for i, _ in INVALID])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(DurationError, match="duration"):
        parse_duration(text)


TIMEOUTS = [
    ("one-ms", "1ms", 0.001, None),
    ("seconds", "2.5s", 2.5, None),
    ("zero", "0s", None, "at least 1ms"),
    ("below-ms", "999us", None, "at least 1ms"),
    ("sub-ms-precision", "1500us", None, "millisecond precision"),
    ("negative", "-1s", None, "at least 1ms"),
]


@pytest.mark.parametrize(("text", "seconds", "error"), [c[1:] for c in TIMEOUTS], ids=[c[0] for c in TIMEOUTS])
def test_parse_timeout_applies_istio_rules(text: str, seconds: float | None, error: str | None) -> None:
    if error is None:
        assert parse_timeout(text) == pytest.approx(seconds)
    else:
        with pytest.raises(DurationError, match=error):
            parse_timeout(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (0.25, "250ms"), (1.5, "1.5s"), (90.0, "1m30s"), (3600.0, "1h"), (3723.004, "1h2m3.004s")],
    ids=["zero", "ms", "fraction", "minutes", "hour", "all"],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)
