"""The config sources of a process that may read a cluster (Pilot, Mixer): their names in the store and their
precedence (the cluster's objects win a key a file defines too: the cluster is what every replica and ``kubectl``
see, a file is one replica's), and a first load that a stop interrupts (a cluster that cannot be reached keeps its
watchers retrying). No Kubernetes client here: a process reading only files imports none."""

from __future__ import annotations

import asyncio

from pilot.config.source import ConfigSource
from pilot.config.store import FILES

__all__ = ["KUBERNETES", "load_or_stop", "store_sources"]

KUBERNETES = "kubernetes"  # the Kubernetes config source's name in the store's ``sources``


def store_sources(*, kubernetes: bool, files: bool) -> tuple[str, ...]:
    """The store's sources, highest precedence first (at least one is needed)."""
    if not kubernetes and not files:
        raise ValueError("a config source is needed: a config directory, a cluster, or both")
    return (KUBERNETES,) * kubernetes + (FILES,) * files


async def load_or_stop(source: ConfigSource, stop: asyncio.Event) -> bool:
    """``source.load_initial()`` (which hands what it loaded to the sink), unless ``stop`` is set first (a cluster
    that cannot be reached keeps its watchers retrying): False then."""
    loading = asyncio.create_task(source.load_initial(), name=f"load-{source.name}")
    stopped = asyncio.create_task(stop.wait(), name="stop-wait")
    try:
        done, _ = await asyncio.wait({loading, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (loading, stopped):
            if not task.done():
                task.cancel()
    if loading in done:
        loading.result()
        return True
    return False
