"""What the scenarios measure: a response as the client app saw it (``MeshResponse``, the sample app's JSON
parsed), counts of responses by a key, and the binomial bounds a measured split is checked against."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MeshResponse", "app_body", "binomial_bounds", "count_by"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshResponse:
    """A response as the client app saw it. ``body`` is the sample app's JSON when a sample app answered, else
    None (e.g. Envoy's own ``no healthy upstream`` 503); ``text`` is the raw body."""

    status: int
    headers: Mapping[str, str]
    text: str
    body: Mapping[str, Any] | None

    @property
    def version(self) -> str | None:
        """The version of the sample app that answered, if one did."""
        value = self.body.get("version") if self.body is not None else None
        return value if isinstance(value, str) else None

    @property
    def workload(self) -> str | None:
        value = self.body.get("workload") if self.body is not None else None
        return value if isinstance(value, str) else None

    @property
    def request_headers(self) -> Mapping[str, str]:
        """The headers the sample app received (lower-case names)."""
        value = self.body.get("headers") if self.body is not None else None
        return value if isinstance(value, dict) else {}


def app_body(text: str) -> Mapping[str, Any] | None:
    """The sample app's JSON answer in ``text``; None when no sample app answered."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "service" in value else None


def count_by(responses: Iterable[MeshResponse], field: str = "version") -> Counter[str]:
    """How many responses each ``field`` value of the sample app got; responses no sample app answered are
    counted under ``HTTP <status>``."""
    counts: Counter[str] = Counter()
    for response in responses:
        value = response.body.get(field) if response.body is not None else None
        counts[str(value) if value is not None else f"HTTP {response.status}"] += 1
    return counts


def binomial_bounds(n: int, p: float, sigmas: float = 4.5) -> tuple[float, float]:
    """Counts outside mean +- 4.5 standard deviations happen by chance about once in 150,000 runs."""
    mean, deviation = n * p, math.sqrt(n * p * (1 - p))
    return mean - sigmas * deviation, mean + sigmas * deviation
