"""What every control-plane process shares (Pilot, Mixer, Citadel): running as a command until Ctrl-C, and
watching the config sources until asked to stop, by an event or by SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

__all__ = ["Watcher", "run_service", "stop_on_signals", "watch_until_stopped"]


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


def run_service(
    prog: str, service: Callable[[], Coroutine[Any, Any, None]], *, errors: tuple[type[Exception], ...]
) -> int:
    """A command's exit code: run ``service()`` until it returns (0) or Ctrl-C (0); one of ``errors`` (a bad
    directory, a busy address) is printed as ``<prog>: <message>`` with exit code 2, without a traceback."""
    try:
        asyncio.run(service())
    except errors as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
