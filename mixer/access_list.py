"""AccessList checks: Istio Mixer's list adapter (``listchecker``) over one compiled AccessList.

The CEL expression ``value`` is evaluated over a request's attributes and looked up in the list's entries, by
``entryType``:

- ``STRINGS``: exact match;
- ``CASE_INSENSITIVE_STRINGS``: match after Unicode case folding;
- ``IP_ADDRESSES``: entries are addresses or CIDR ranges (``10.0.0.0/8``); the value must be an IP address, and
  is listed when a range contains it (a value that is not an address is an evaluation error);
- ``REGEX``: entries are RE2 regular expressions that must match the whole value.

``mode: deny`` denies listed values (a blacklist), ``mode: allow`` denies values not listed (a whitelist). An
absent value (``request.headers["x-user"]`` without an ``x-user`` header; see ``mixer.evaluation``) is never
listed: a ``deny`` list lets the request through, an ``allow`` list refuses it and says the value is absent. When
the expression cannot be evaluated (a type error, a bad function call), or the entries are not available (an
``entriesFile`` never read successfully), the request is denied as an evaluation error: a policy that cannot
decide fails closed, and the reason says why.

Decisions are cached per compiled list (``mixer.referenced``), keyed by the request's values of the attributes the
expression reads (``request.headers["end-user"]``: that header's value, or its absence), so a value seen before is
decided without CEL. The cache belongs to the compiled list (a new snapshot compiles new ones, with empty caches)
and is emptied when the entries change (an entries file reloaded). Evaluation errors are never cached: each is
decided, and logged, again.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
import structlog

from mixer.evaluation import Absent, CompiledExpression, evaluation_text, quoted_value
from mixer.referenced import DecisionCache, Miss
from pilot.config.types import AccessList, AccessListEntryType, MixerPolicy

__all__ = [
    "AccessListCheck",
    "Denial",
    "DenialResult",
    "EntriesSource",
    "FixedEntries",
    "ListEntries",
    "compile_entries",
    "entry_error",
    "policy_name",
]

log = structlog.get_logger(__name__)

DenialResult = Literal["denied", "rate_limited", "error"]
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True, kw_only=True)
class Denial:
    """One Mixer policy's "no": the check result label, HTTP status, the reason, the value the policy evaluated
    and, for a quota, the seconds until it recovers. Shared by AccessList and RateLimit checks."""

    result: DenialResult
    status: int
    reason: str
    value: str = ""
    retry_after: int = 0


def policy_name(policy: MixerPolicy) -> str:
    """``<namespace>/<name>`` of a Mixer policy, as reasons show it."""
    key = policy.meta.key
    return f"{key.namespace}/{key.name}"


def entry_error(entry: str, entry_type: AccessListEntryType) -> str | None:
    """Why ``entry`` is not a valid entry of a list of ``entry_type`` (None when it is)."""
    if entry_type == "IP_ADDRESSES":
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f"{entry!r} is not an IP address or CIDR range"
    elif entry_type == "REGEX":
        try:
            re2.compile(entry)
        except re2.error as exc:
            return f"{entry!r} is not an RE2 regular expression: {exc}"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListEntries:
    """The compiled entries of one list: what ``contains`` looks values up in."""

    entry_type: AccessListEntryType
    count: int
    strings: frozenset[str] = frozenset()
    networks: tuple[_IPNetwork, ...] = ()
    pattern: Any = None  # one RE2 alternation of every REGEX entry; None: no entries
    skipped: tuple[str, ...] = field(default=())  # why entries were left out (invalid entries of a file)

    def contains(self, value: str) -> bool:
        """Whether ``value`` is listed; ValueError when an IP_ADDRESSES list is asked about a non-address."""
        if self.entry_type == "STRINGS":
            return value in self.strings
        if self.entry_type == "CASE_INSENSITIVE_STRINGS":
            return value.casefold() in self.strings
        if self.entry_type == "IP_ADDRESSES":
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"{quoted_value(value)} is not an IP address") from None
            return any(address in network for network in self.networks)
        return self.pattern is not None and self.pattern.fullmatch(value) is not None


def compile_entries(entries: Iterable[str], entry_type: AccessListEntryType) -> ListEntries:
    """Compile ``entries`` for lookups; invalid entries are left out and explained in ``skipped``."""
    valid: list[str] = []
    skipped: list[str] = []
    for entry in entries:
        problem = entry_error(entry, entry_type)
        if problem is None:
            valid.append(entry)
        else:
            skipped.append(problem)
    if entry_type == "STRINGS":
        return ListEntries(entry_type=entry_type, count=len(valid), strings=frozenset(valid), skipped=tuple(skipped))
    if entry_type == "CASE_INSENSITIVE_STRINGS":
        strings = frozenset(entry.casefold() for entry in valid)
        return ListEntries(entry_type=entry_type, count=len(valid), strings=strings, skipped=tuple(skipped))
    if entry_type == "IP_ADDRESSES":
        networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in valid)
        return ListEntries(entry_type=entry_type, count=len(valid), networks=networks, skipped=tuple(skipped))
    pattern = re2.compile("|".join(f"(?:{entry})" for entry in valid)) if valid else None
    return ListEntries(entry_type=entry_type, count=len(valid), pattern=pattern, skipped=tuple(skipped))


class EntriesSource(Protocol):
    """Where an AccessList's entries come from: inline (fixed) or a watched file (``mixer.entries_files``)."""

    @property
    def entries(self) -> ListEntries | None:
        """The current entries; None when there are none to use (a file never read)."""

    @property
    def problem(self) -> str:
        """Why ``entries`` is None."""


@dataclass(frozen=True, slots=True)
class FixedEntries:
    """Inline entries, compiled once."""

    entries: ListEntries
    problem: str = ""


class AccessListCheck:
    """One AccessList compiled for checks: its CEL program (compiled here, once), its entries and the cache of its
    decisions by referenced attribute values (for the entries ``_cached_for``)."""

    def __init__(self, policy: AccessList, source: EntriesSource) -> None:
        self.policy = policy
        self.name = policy_name(policy)
        self.source = source
        self.expression = CompiledExpression(policy.value)
        self.decisions: DecisionCache[Denial | None] = DecisionCache()
        self._cached_for: ListEntries | None = None

    def check(self, attributes: Mapping[str, Any]) -> Denial | None:
        """None when the request passes this list; the Denial otherwise (the cached one for values seen before)."""
        entries = self.source.entries
        if entries is not self._cached_for:  # new entries (a file reloaded): what was decided before may differ
            self.decisions.clear()
            self._cached_for = entries
        key = self.expression.referenced.key(attributes)
        cached = self.decisions.get(key)
        if cached is not Miss.MISS:
            return cached
        denial = self.decide(attributes, entries)
        if denial is None or denial.result != "error":
            self.decisions.put(key, denial)
        return denial

    def decide(self, attributes: Mapping[str, Any], entries: ListEntries | None) -> Denial | None:
        """The decision on ``attributes`` with ``entries`` (the source's current ones), without the cache."""
        policy = self.policy
        try:
            result = self.expression.evaluate(attributes)
            value = result if isinstance(result, Absent) else evaluation_text(result)
        except Exception as exc:  # CEL raises TypeError, RuntimeError, ZeroDivisionError, IndexError, ...
            return self._error(f"expression {policy.value} failed: {type(exc).__name__} {exc}")
        if isinstance(value, Absent):
            return None if policy.mode == "deny" else self._absent(value)
        if entries is None:
            return self._error(self.source.problem, value)
        try:
            listed = entries.contains(value)
        except ValueError as exc:
            return self._error(f"{policy.value}: {exc}", value)
        if listed == (policy.mode == "allow"):
            return None
        verdict = "is listed" if listed else "is not listed"
        reason = f"AccessList {self.name}: {policy.value} {quoted_value(value)} {verdict} (mode {policy.mode})"
        return Denial(result="denied", status=403, reason=reason, value=value)

    def _absent(self, absent: Absent) -> Denial:
        reason = f"AccessList {self.name}: {self.policy.value} has no value ({absent}), not listed (mode allow)"
        return Denial(result="denied", status=403, reason=reason)

    def _error(self, why: str, value: str = "") -> Denial:
        log.warning("access list cannot decide, denying", policy=self.name, error=why)
        return Denial(result="error", status=403, reason=f"AccessList {self.name}: {why}; denied", value=value)
