"""List-then-watch of one Kubernetes resource, in a thread of its own (the official client is synchronous).

``watch_forever`` lists (``on_list`` gets every item: the whole truth, replacing what the caller knew), then
watches from the list's ``resourceVersion`` (bookmarks on), handing each ``ADDED``/``MODIFIED``/``DELETED`` event
to ``on_event``, resuming each ended watch request from the last version seen. ``410 Gone`` (the version is too
old) lists again; any other error waits (1 s, doubling to 30 s) and lists again, so no change is lost across a
reconnect. The callbacks run in the watching thread: a caller on an event loop hops back with
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
import urllib3
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

__all__ = ["watch_forever"]

log = structlog.get_logger(__name__)

_WATCH_SECONDS = 55  # one watch request (the server ends it; the next resumes from the last version)
_LIST_TIMEOUT = 30.0
_WATCH_TIMEOUT = (10.0, _WATCH_SECONDS + 15.0)  # (connect, read) of a watch request
_MAX_BACKOFF = 30.0


def watch_forever(
    list_function: Callable[..., Any],
    *,
    what: str,
    on_list: Callable[[list[Any]], None],
    on_event: Callable[[str, Any], None],
    stop: threading.Event,
    **selectors: str,
) -> None:
    """List and watch ``list_function`` (e.g. ``CoreV1Api.list_namespace``) until ``stop`` is set."""
    backoff = 1.0
    while not stop.is_set():
        try:
            listing = list_function(_request_timeout=_LIST_TIMEOUT, **selectors)
            on_list(list(listing.items))
            log.debug("listed", what=what, items=len(listing.items))
            backoff = 1.0
            _watch(list_function, listing.metadata.resource_version, on_event=on_event, stop=stop, selectors=selectors)
        except ApiException as exc:
            if exc.status == 410:
                log.info("watch expired (410 Gone); listing again", what=what)
                continue
            log.warning(
                "watch failed; listing again", what=what, status=exc.status, reason=exc.reason, retry_in=backoff
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            log.warning("watch failed; listing again", what=what, error=type(exc).__name__, retry_in=backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)


def _watch(
    list_function: Callable[..., Any],
    version: str,
    *,
    on_event: Callable[[str, Any], None],
    stop: threading.Event,
    selectors: dict[str, str],
) -> None:
    """Watch from ``version`` until ``stop``; raises what a request raises (410 included)."""
    while not stop.is_set():
        stream = watch.Watch()  # type: ignore[no-untyped-call]  # untyped upstream
        for event in stream.stream(  # type: ignore[no-untyped-call]
            list_function,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=_WATCH_SECONDS,
            _request_timeout=_WATCH_TIMEOUT,
            **selectors,
        ):
            if event["type"] != "BOOKMARK":
                on_event(event["type"], event["object"])
            if stop.is_set():
                stream.stop()  # type: ignore[no-untyped-call]
                break
        version = stream.resource_version or version
