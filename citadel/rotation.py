"""Root rotation as Citadel runs it: watch the CA directory, then move every stream to the new root in phases.

``citadel rotate-root`` only changes files (the new root becomes ``root-cert.pem``, the old one
``previous-root-cert.pem``). Citadel polls ``load_ca(ca_dir).fingerprint`` (``--root-poll-interval``, 1 s) and on a
change runs, waiting after each phase until every SDS stream has ACKed what it was pushed (at most
``ack_timeout``) and then ``grace`` more seconds:

1. **trust both**: ROOTCA becomes the new and the old root, so every workload accepts peers of either root;
   certificates are still signed by the old root;
2. **re-issue**: the new root signs; every stream's ``default`` (and Citadel's serving certificate) is re-issued
   under it and pushed;
3. **retire**: ``retire_previous_root`` removes the old root's files; ROOTCA becomes the new root only.

No workload ever holds a certificate its peers cannot verify, so no request fails at any step. The same phases
serve any change of the CA directory (a replaced plugged-in CA: the old signer's root stays in the bundle until
the re-issue is done); a change that keeps the signer only publishes the new bundle. When the directory cannot be
loaded (``rotate-root`` half way through its writes) the last good state is kept.

``on_state`` hears of every new state of the directory (the rotated one at once, the retired one when retiring):
``CASecretSync`` keeps the CA's Kubernetes Secret in step with it.

Workload certificate rotation is per stream (``sds_streams.py``: ``--rotation-fraction`` of its lifetime).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from cryptography import x509

from citadel.authority import Authority
from citadel.ca import certificate_fingerprint
from citadel.ca_dir import CAState, load_ca, retire_previous_root
from citadel.errors import CitadelError
from citadel.sds import SdsService

__all__ = ["RootRotation"]

log = structlog.get_logger(__name__)


class RootRotation:
    """Polls the CA directory and runs the root-rotation phases over the SDS streams."""

    def __init__(
        self,
        *,
        ca_dir: Path,
        state: CAState,
        authority: Authority,
        sds: SdsService,
        on_signer_changed: Callable[[], Awaitable[None]],
        on_state: Callable[[CAState], None] | None = None,
        grace: float = 2.0,
        ack_timeout: float = 30.0,
        poll_interval: float = 1.0,
    ) -> None:
        if grace < 0 or ack_timeout <= 0 or poll_interval <= 0:
            raise ValueError(
                f"grace must be >= 0, ack_timeout and poll_interval > 0; got {grace}, {ack_timeout}, {poll_interval}"
            )
        self.ca_dir = ca_dir
        self.fingerprint = state.fingerprint
        self.phase = "idle"
        self.rotations = 0
        self._state = state
        self._authority = authority
        self._sds = sds
        self._on_signer_changed = on_signer_changed
        self._on_state = on_state
        self._grace = grace
        self._ack_timeout = ack_timeout
        self._poll_interval = poll_interval
        self._load_failure = ""

    async def run(self) -> None:
        """Poll forever (until cancelled). A rotation found in progress at startup is finished first, through the
        same phases as a new one: Citadel started signing with the previous root (``CAState.previous_signer``),
        so trust both, wait for the reconnected workloads' ACKs, re-issue under the new root, then retire."""
        if self._state.previous_root is not None:
            log.info("root rotation in progress at startup; resuming it", streams=len(self._sds.streams))
            self.phase = "resume"
            await asyncio.sleep(self._grace)  # let the sidecars reconnect before the first phase counts their ACKs
            await self.apply(self._state)
        while True:
            await asyncio.sleep(self._poll_interval)
            await self.check()

    async def check(self) -> bool:
        """Load the CA directory once; run the phases if it changed. True when something changed."""
        try:
            state = await asyncio.to_thread(load_ca, self.ca_dir)
        except CitadelError as exc:
            if exc.reason != self._load_failure:
                log.warning(
                    "CA directory unreadable; keeping the current CA", ca_dir=str(self.ca_dir), reason=exc.reason
                )
            self._load_failure = exc.reason
            return False
        self._load_failure = ""
        if state.fingerprint == self.fingerprint:
            return False
        await self.apply(state)
        return True

    async def apply(self, state: CAState) -> None:
        """Move every stream to ``state`` in phases (see the module docstring)."""
        self.rotations += 1
        authority = self._authority
        old_signer_root = authority.signer.root
        signer_changes = state.signer.cert != authority.signer.cert
        log.info(
            "CA directory changed",
            root=certificate_fingerprint(state.root),
            previous_root=certificate_fingerprint(state.previous_root) if state.previous_root is not None else None,
            signer_changes=signer_changes,
            streams=len(self._sds.streams),
        )
        self._notify(state)
        try:
            if signer_changes:
                both = (*state.trust_bundle, *_missing(state.trust_bundle, old_signer_root))
                await self._phase("trust-both", lambda: authority.use_trust_bundle(both), roots=len(both))
                await self._phase("reissue", lambda: authority.use_signer(state.signer), signer_changed=True)
            if state.previous_root is not None:
                await self._retire(state)
            else:
                if state.trust_bundle != authority.trust_bundle:
                    await self._phase("publish", lambda: authority.use_trust_bundle(state.trust_bundle))
                self._state, self.fingerprint = state, state.fingerprint
        finally:
            self.phase = "idle"

    def _notify(self, state: CAState) -> None:
        if self._on_state is not None:
            self._on_state(state)

    async def _retire(self, state: CAState) -> None:
        try:
            retired = await asyncio.to_thread(retire_previous_root, self.ca_dir)
        except CitadelError as exc:
            log.error("retiring the previous root failed; it stays trusted", reason=exc.reason)
            self._state, self.fingerprint = state, state.fingerprint
            self.phase = "idle"
            return
        self._notify(retired)
        await self._phase("retire", lambda: self._authority.use_trust_bundle(retired.trust_bundle))
        self._state, self.fingerprint = retired, retired.fingerprint
        self.phase = "idle"
        log.info("root rotation done", root=certificate_fingerprint(retired.root))

    async def _phase(
        self, name: str, change: Callable[[], None], *, signer_changed: bool = False, roots: int | None = None
    ) -> None:
        self.phase = name
        change()
        if signer_changed:
            await self._on_signer_changed()
        self._sds.notify_all()
        streams = len(self._sds.streams)
        log.info("root rotation phase started", phase=name, streams=streams, roots=roots)
        lagging = await self._sds.wait_caught_up(self._ack_timeout)
        if lagging:
            log.warning(
                "root rotation phase: streams did not ACK in time; going on",
                phase=name,
                lagging=len(lagging),
                identities=sorted({s.spiffe_id for s in lagging})[:10],
                timeout=self._ack_timeout,
            )
        await asyncio.sleep(self._grace)
        log.info("root rotation phase done", phase=name, streams=streams, acked=streams - len(lagging))


def _missing(bundle: tuple[x509.Certificate, ...], root: x509.Certificate) -> tuple[x509.Certificate, ...]:
    return () if root in bundle else (root,)
