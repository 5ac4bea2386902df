"""What every control-plane process shares (Pilot, Mixer, Citadel): running as a command until Ctrl-C, and
watching the config sources until asked to stop, by an event or by SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

__all__ = [
    "GC_THRESHOLDS",
    "Watcher",
    "freeze_loaded",
    "run_service",
    "stop_on_signals",
    "tune_gc",
    "watch_until_stopped",
]

# A young collection once 10 000 objects were allocated (CPython's default: 700). A control plane's config and
# snapshots are many small long-lived objects (a 1000-service mesh: about a million): at 700, loading them runs the
# collector hundreds of times over everything already loaded, about a tenth of the start.
GC_THRESHOLDS = (10_000, 10, 10)


class Watcher(Protocol):
    """A config source that runs until cancelled (``pilot.config.DirectorySource``, later a Kubernetes watch)."""

    async def watch(self) -> None: ...


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def watch_until_stopped(source: Watcher, stop: asyncio.Event) -> None:
    """Run ``source.watch()`` until ``stop`` is set; a watcher that ends on its own is a failure and raises."""
    watcher = asyncio.create_task(source.watch(), name="config-watch")
    stopped = asyncio.create_task(stop.wait(), name="stop-wait")
    try:
        done, _ = await asyncio.wait({watcher, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if watcher in done:
            watcher.result()
    finally:
        for task in (watcher, stopped):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def tune_gc() -> None:
    """Set up the cyclic garbage collector for a long-running server, once its modules are imported: what the
    imports made lives as long as the process, so it is moved out of the collector's reach (``gc.freeze``, as
    CPython recommends before forking or serving), and young collections run every ``GC_THRESHOLDS[0]``
    allocations. Reference counting frees everything acyclic as before; only cycles wait a little longer."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_loaded() -> None:
    """Move what the first load of the config made out of the collector's reach (``gc.freeze``), once it is
    loaded. A 1000-service mesh is about 70 000 tracked objects that every full collection walked again (a full
    collection of Pilot serving 1000 proxies took 230 ms, landing in whatever push was running). The config is
    frozen dataclasses and tuples, which hold no reference cycles: when a change replaces a part of it, reference
    counting frees that part as before, and nothing frozen is kept alive by the freeze."""
    gc.freeze()


def run_service(
    prog: str, service: Callable[[], Coroutine[Any, Any, None]], *, errors: tuple[type[Exception], ...]
) -> int:
    """A command's exit code: run ``service()`` until it returns (0) or Ctrl-C (0); one of ``errors`` (a bad
    directory, a busy address) is printed as ``<prog>: <message>`` with exit code 2, without a traceback."""
    tune_gc()
    try:
        asyncio.run(service())
    except errors as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
