"""Mixer's policy engine: every AccessList and RateLimit selecting a request's destination workload, evaluated in
one check, as Istio Mixer's Check call evaluated the rules of the destination service.

The Mixer policies of a snapshot are compiled when the snapshot arrives (``update``): CEL programs, inline entries,
entries files to watch, quota counters. Checks then only evaluate, and mostly not even that: each compiled
AccessList caches its decisions and each RateLimit the bucket a request goes to, keyed by the values of the
attributes its expressions read (``mixer.referenced``, Istio Mixer's referenced-attributes cache); the caches belong
to the compiled policies, so a new snapshot starts with empty ones, and quota is still taken on every request. The
destination workload (the address the sidecar's inbound listener is bound to) selects the policies with the same
rule Pilot uses (``pilot.model.policies.workload_policies``); the list is cached per destination address for the
snapshot.

Order: AccessLists first, then RateLimits, each group in policy order (root namespace first, then namespace/name);
the first denial decides, so a request an AccessList denies consumes no quota. A request whose destination is not
a known workload, or whose workload no Mixer policy selects, is allowed. A value the request does not have (a
header not sent) is absent, not an error (``mixer.evaluation``): it is never listed, and a RateLimit ``match`` on it
is false. A policy that cannot be evaluated (a type error, a bad function call) denies (403, result ``error``) with
a reason.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from meshplane.mixer_names import REASON_HEADER
from mixer.access_list import AccessListCheck, Denial, EntriesSource, FixedEntries, compile_entries, policy_name
from mixer.entries_files import EntriesFiles
from mixer.rate_limit import Clock, QuotaStore, RateLimitCheck
from mixer.registry import WorkloadRegistry
from mixer.shared_quota import SharedQuota
from pilot.config.expressions import ExpressionError
from pilot.config.types import AccessList, AccessListEntryType, ConfigKey, MixerPolicy, RateLimit
from pilot.model import MeshSnapshot, build_snapshot
from pilot.model.policies import workload_policies

__all__ = ["ALLOWED", "CheckResult", "Decision", "PolicyEngine", "header_value"]

log = structlog.get_logger(__name__)

CheckResult = Literal["allowed", "denied", "rate_limited", "error"]
RETRY_AFTER_HEADER = "retry-after"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The answer to one check: allowed, or denied with the status, reason and headers to send back, the policy
    that decided (``AccessList/<ns>/<name>``) and the value it evaluated."""

    allowed: bool
    result: CheckResult
    status: int = 200
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    policy: str = ""
    value: str = ""


ALLOWED = Decision(allowed=True, result="allowed")


def header_value(text: str) -> str:
    """``text`` as a valid HTTP header value: printable ASCII, other characters backslash-escaped."""
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in escaped)


def _decision(policy: MixerPolicy, denial: Denial) -> Decision:
    headers = [(REASON_HEADER, header_value(denial.reason))]
    if denial.retry_after:
        headers.append((RETRY_AFTER_HEADER, str(denial.retry_after)))
    return Decision(
        allowed=False,
        result=denial.result,
        status=denial.status,
        reason=denial.reason,
        headers=tuple(headers),
        policy=str(policy.meta.key),
        value=denial.value,
    )


class _UncompilablePolicy:
    """A policy whose expression does not compile (validation should have rejected it): denies every check."""

    def __init__(self, policy: MixerPolicy, error: str) -> None:
        self.policy = policy
        self.denial = Denial(
            result="error", status=403, reason=f"{type(policy).__name__} {policy_name(policy)}: {error}; denied"
        )

    def check(self, attributes: Mapping[str, Any]) -> Denial | None:
        return self.denial


PolicyCheck = AccessListCheck | RateLimitCheck | _UncompilablePolicy


@dataclass(frozen=True, slots=True, kw_only=True)
class _Compiled:
    """One snapshot's compiled policies and the per-destination selection cache (filled by checks)."""

    registry: WorkloadRegistry
    checks: Mapping[ConfigKey, PolicyCheck]
    by_destination: dict[str, tuple[PolicyCheck, ...]]


class PolicyEngine:
    """Compiles each snapshot's Mixer policies once (``update``) and answers checks (``check``).

    Owns the entries-file watcher (``start``/``stop`` poll it) and the quota counters, which survive updates.
    """

    def __init__(
        self,
        snapshot: MeshSnapshot | None = None,
        *,
        entries_files: EntriesFiles | None = None,
        clock: Clock = time.monotonic,
        shared_quota: SharedQuota | None = None,
    ) -> None:
        """``shared_quota``: RateLimits count in it (Redis, shared by several Mixers) instead of in this process;
        checks are then answered by ``check_shared``."""
        self.entries_files = entries_files or EntriesFiles()
        self.quotas = QuotaStore(clock)
        self.shared_quota = shared_quota
        self.ready = False
        self._compiled = _Compiled(registry=WorkloadRegistry(build_snapshot({}, 0)), checks={}, by_destination={})
        if snapshot is not None:
            self.update(snapshot)

    @property
    def registry(self) -> WorkloadRegistry:
        """The registry of the current snapshot (for ``mixer.attributes.check_attributes``)."""
        return self._compiled.registry

    @property
    def version(self) -> int:
        return self._compiled.registry.version

    def update(self, snapshot: MeshSnapshot) -> None:
        """Compile ``snapshot``'s Mixer policies and switch checks to them (one assignment)."""
        policies = [p for by_namespace in snapshot.mixer_policies.values() for p in by_namespace]
        checks = {policy.meta.key: self._compile(policy) for policy in policies}
        self._compiled = _Compiled(registry=WorkloadRegistry(snapshot), checks=checks, by_destination={})
        self.ready = True
        self.quotas.retain(p for p in policies if isinstance(p, RateLimit))
        self.entries_files.retain(
            (p.entries_file, p.entry_type) for p in policies if isinstance(p, AccessList) and p.entries_file
        )
        log.info("mixer policies compiled", version=snapshot.version, policies=len(checks))

    async def start(self) -> None:
        """Start watching entries files."""
        await self.entries_files.start()

    async def stop(self) -> None:
        await self.entries_files.stop()

    def policies_for(self, destination_ip: str) -> tuple[PolicyCheck, ...]:
        """The compiled policies selecting the workload at ``destination_ip``: AccessLists, then RateLimits."""
        compiled = self._compiled
        cached = compiled.by_destination.get(destination_ip)
        if cached is not None:
            return cached
        workload = compiled.registry.workload_entry_at(destination_ip)
        if workload is None:
            return ()
        selected = workload_policies(compiled.registry.snapshot, workload).mixer
        ordered = [p for p in selected if isinstance(p, AccessList)] + [p for p in selected if isinstance(p, RateLimit)]
        found = tuple(compiled.checks[p.meta.key] for p in ordered if p.meta.key in compiled.checks)
        compiled.by_destination[destination_ip] = found
        return found

    def check(self, attributes: Mapping[str, Any], *, destination_ip: str | None = None) -> Decision:
        """Evaluate every Mixer policy of the request's destination workload (at ``destination_ip``, by default
        ``destination.ip``); the first denial decides."""
        address = attributes["destination"]["ip"] if destination_ip is None else destination_ip
        for policy_check in self.policies_for(address):
            denial = policy_check.check(attributes)
            if denial is not None:
                return _decision(policy_check.policy, denial)
        return ALLOWED

    async def check_shared(self, attributes: Mapping[str, Any], *, destination_ip: str | None = None) -> Decision:
        """``check``, RateLimits counting in ``shared_quota`` (one round trip each)."""
        quota = self.shared_quota
        if quota is None:
            return self.check(attributes, destination_ip=destination_ip)
        address = attributes["destination"]["ip"] if destination_ip is None else destination_ip
        for policy_check in self.policies_for(address):
            if isinstance(policy_check, RateLimitCheck):
                denial = await policy_check.check_shared(attributes, quota)
            else:
                denial = policy_check.check(attributes)
            if denial is not None:
                return _decision(policy_check.policy, denial)
        return ALLOWED

    def _compile(self, policy: MixerPolicy) -> PolicyCheck:
        try:
            if isinstance(policy, AccessList):
                return AccessListCheck(policy, self._entries_source(policy))
            return RateLimitCheck(policy, self.quotas.counters(policy))
        except ExpressionError as exc:
            log.error("mixer policy does not compile", policy=str(policy.meta.key), error=str(exc))
            return _UncompilablePolicy(policy, str(exc))

    def _entries_source(self, policy: AccessList) -> EntriesSource:
        entry_type: AccessListEntryType = policy.entry_type
        if policy.entries_file:
            return self.entries_files.use(policy.entries_file, entry_type)
        entries = compile_entries(policy.entries, entry_type)
        for problem in entries.skipped:
            log.warning("access list: invalid entry skipped", policy=str(policy.meta.key), problem=problem)
        return FixedEntries(entries)
