"""AccessList checks: Istio Mixer's list adapter (``listchecker``) over one compiled AccessList.

The CEL expression ``value`` is evaluated over a request's attributes and looked up in the list's entries, by
``entryType``:

- ``STRINGS``: exact match;
- ``CASE_INSENSITIVE_STRINGS``: match after Unicode case folding;
- ``IP_ADDRESSES``: entries are addresses or CIDR ranges (``10.0.0.0/8``); the value must be an IP address, and
  is listed when a range contains it (a value that is not an address is an evaluation error);
- ``REGEX``: entries are RE2 regular expressions that must match the whole value.

``mode: deny`` denies listed values (a blacklist), ``mode: allow`` denies values not listed (a whitelist). When the
expression cannot be evaluated (a header that was not sent: ``request.headers["x-user"]``), or the entries are not
available (an ``entriesFile`` never read successfully), the request is denied as an evaluation error: a policy
that cannot decide fails closed, and the reason says why.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
import structlog

from pilot.config.expressions import ATTRIBUTE_ROOTS, compile_expression
from pilot.config.types import AccessList, AccessListEntryType, MixerPolicy

__all__ = [
    "AccessListCheck",
    "CompiledExpression",
    "Denial",
    "DenialResult",
    "EntriesSource",
    "FixedEntries",
    "ListEntries",
    "compile_entries",
    "entry_error",
    "evaluation_text",
    "policy_name",
    "quoted_value",
]

log = structlog.get_logger(__name__)

DenialResult = Literal["denied", "rate_limited", "error"]
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_VALUE_SHOWN = 128  # characters of an evaluated value quoted in a reason


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


def evaluation_text(result: object) -> str:
    """A CEL result as the string a list or quota key compares; TypeError for maps, lists and null."""
    if isinstance(result, str):
        return result
    if isinstance(result, bool):
        return "true" if result else "false"
    if isinstance(result, int | float):
        return str(result)
    if isinstance(result, bytes):
        return result.decode("utf-8", "replace")
    raise TypeError(f"evaluated to {type(result).__name__}, expected a string")


def _shown(value: str) -> str:
    return value if len(value) <= _VALUE_SHOWN else value[:_VALUE_SHOWN] + "..."


def quoted_value(value: str) -> str:
    """``value`` in double quotes (escaped, cut at 128 characters), as reasons quote evaluated values."""
    escaped = _shown(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


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


class CompiledExpression:
    """A CEL program and the attribute roots it reads. CEL converts every map it is given on each evaluation, so
    a program is handed only its roots (``request`` for ``request.headers["x-user"]``), not all four."""

    __slots__ = ("program", "roots", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.program: Any = compile_expression(source)
        self.roots = tuple(sorted({name.split(".", 1)[0] for name in self.program.variables()} & set(ATTRIBUTE_ROOTS)))

    def evaluate(self, attributes: Mapping[str, Any]) -> Any:
        """The program's result over ``attributes``; CEL's exception when it fails."""
        return self.program.execute({root: attributes[root] for root in self.roots})


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
    """One AccessList compiled for checks: its CEL program (compiled here, once) and its entries."""

    def __init__(self, policy: AccessList, source: EntriesSource) -> None:
        self.policy = policy
        self.name = policy_name(policy)
        self.source = source
        self.expression = CompiledExpression(policy.value)

    def check(self, attributes: Mapping[str, Any]) -> Denial | None:
        """None when the request passes this list; the Denial otherwise."""
        policy = self.policy
        try:
            value = evaluation_text(self.expression.evaluate(attributes))
        except Exception as exc:  # CEL raises KeyError, TypeError, RuntimeError, ZeroDivisionError, ...
            return self._error(f"expression {policy.value} failed: {type(exc).__name__} {exc}")
        entries = self.source.entries
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

    def _error(self, why: str, value: str = "") -> Denial:
        log.warning("access list cannot decide, denying", policy=self.name, error=why)
        return Denial(result="error", status=403, reason=f"AccessList {self.name}: {why}; denied", value=value)
