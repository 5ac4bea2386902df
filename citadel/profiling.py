"""An opt-in profile of Citadel's event loop: ``CITADEL_PROFILE=FILE`` runs the serving thread under cProfile and
writes its ``pstats`` to FILE when Citadel stops (``python -m bench.citadel_certs --profile`` reads it).

cProfile sees the thread it is enabled in, the event loop's: the gRPC handlers, token checks, SDS streams, ECDSA
certificates (issued inline, ``authority.py``) and everything else Python does there. RSA keys are made in worker
threads (``asyncio.to_thread``) and gRPC's transport (TLS, HTTP/2) runs in its C threads; the per-thread CPU times
in ``/proc`` account for those.
"""

from __future__ import annotations

import cProfile
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PROFILE_ENV", "profiled"]

PROFILE_ENV = "CITADEL_PROFILE"


@contextmanager
def profiled(environ: dict[str, str] | None = None) -> Iterator[None]:
    """Profile the calling thread while the block runs when ``CITADEL_PROFILE`` names a file; else do nothing."""
    target = (os.environ if environ is None else environ).get(PROFILE_ENV, "")
    if not target:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        profile.dump_stats(path)
