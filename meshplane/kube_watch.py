"""List+watch of one kind (client-go's reflector), on the official client in a thread of its own.

The thread finds the version to read by discovery (``kube_kinds.choose_version``), lists the kind (in pages;
the listing's ``resourceVersion`` is where the watch starts), then watches from the last version it has seen, with
``allowWatchBookmarks`` and a server-side ``timeoutSeconds``: when the server ends a watch, or the connection is
cut (``interrupt``), or an error ends it, the next watch starts from the last version seen (an event's or a
bookmark's), so no event is lost or repeated. When that version is too old for the server (HTTP 410, or an ERROR
event with code 410), the kind is listed again and delivered as a replace, with its difference to what was known
(``kube_watch_events.list_diff``). Errors back off (capped exponential, with jitter); a watch that worked resets it.

A kind not served (a CRD not installed, or deleted) is logged once and delivered as ``Unavailable`` (after a
replace by nothing if it had objects); discovery is tried again every ``rediscover_seconds``.

What the thread sees goes to ``deliver`` (``Listed``, ``Changed``, ``Unavailable``), called on the watch thread
in order: ``deliver_on_loop`` applies each on the event loop (``call_soon_threadsafe``), ``deliver_to_queue`` puts
each on an asyncio queue there. ``stop()`` ends the watch at once (the connection is shut down) and the thread soon
after.

Used by Pilot (``pilot.kube``: the registry's kinds and Istio's CRDs) and Citadel (``root_cert_publisher``:
Namespaces and the root-cert ConfigMaps).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
import urllib3
from kubernetes import client

from meshplane.kube_kinds import ApiKind, choose_version
from meshplane.kube_rest import NOT_FOUND, ApiStatusError, get_json, iter_lines, open_stream, served_resources
from meshplane.kube_watch_events import (
    GONE,
    Backoff,
    Bookmark,
    Event,
    Expired,
    Failed,
    ListDiff,
    ObjectKey,
    identity,
    list_diff,
    object_key,
    read_event,
    resource_version,
)

__all__ = [
    "Changed",
    "Delivery",
    "Listed",
    "Unavailable",
    "WatchOptions",
    "Watcher",
    "deliver_on_loop",
    "deliver_to_queue",
]

log = structlog.get_logger(__name__)

KubeDict = Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Listed:
    """The whole current set of the kind (the first list, or a relist): objects not in it are gone."""

    kind: ApiKind
    objects: tuple[KubeDict, ...]
    diff: ListDiff  # against what was known before (the first list: everything added)
    relist: bool
    resource_version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Changed:
    kind: ApiKind
    event: Event


@dataclass(frozen=True, slots=True, kw_only=True)
class Unavailable:
    """The server serves none of the kind's versions (a CRD not installed): nothing to read, tried again later."""

    kind: ApiKind
    reason: str


Delivery = Listed | Changed | Unavailable


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchOptions:
    timeout_seconds: int = 300  # the server ends each watch after this (client-go: 5-10 min)
    page_size: int = 500
    rediscover_seconds: float = 30.0
    namespace: str | None = None  # None: every namespace
    label_selector: str | None = None
    field_selector: str | None = None  # e.g. metadata.name=istio-ca-root-cert
    backoff_initial: float = 0.5
    backoff_cap: float = 30.0
    resume_from: str | None = None  # start by watching from this version instead of listing (410: list)
    healthy_after: float = 10.0  # a watch that ran this long (or delivered something) resets the backoff


class _NotServed(Exception):
    pass


class _Gone(Exception):
    pass


class _WatchFailed(Exception):
    pass


def deliver_on_loop(loop: asyncio.AbstractEventLoop, apply: Callable[[Delivery], object]) -> Callable[[Delivery], None]:
    """A ``deliver`` for a watch thread: ``apply`` is called with each delivery on ``loop``'s thread, in order."""

    def deliver(delivery: Delivery) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            loop.call_soon_threadsafe(apply, delivery)

    return deliver


def deliver_to_queue(
    loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Delivery | None]
) -> Callable[[Delivery], None]:
    """A ``deliver`` for a watch thread: each delivery is put on ``queue`` on ``loop``'s thread, in order."""
    return deliver_on_loop(loop, queue.put_nowait)


class Watcher:
    """List+watch of ``kind`` (see the module's docstring); ``start()`` it, ``stop()`` it."""

    def __init__(
        self,
        api: client.ApiClient,
        kind: ApiKind,
        deliver: Callable[[Delivery], None],
        options: WatchOptions | None = None,
    ) -> None:
        self.kind = kind
        self.options = options or WatchOptions()
        self._api = api
        self._deliver = deliver
        self._backoff = Backoff(initial=self.options.backoff_initial, cap=self.options.backoff_cap)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._response: urllib3.BaseHTTPResponse | None = None
        self._cut = False  # the current watch's connection was cut on purpose (interrupt, stop)
        self._thread: threading.Thread | None = None
        self._known: dict[ObjectKey, KubeDict] = {}  # the identity of each object seen (kube_watch_events.identity)
        self._version: str | None = None  # served API version; None: discover
        self._resource_version: str | None = self.options.resume_from  # None: list first
        self._unavailable_logged = False
        self.bookmarks = 0
        self.relists = 0
        self.watches = 0

    @property
    def resource_version(self) -> str | None:
        """The last version seen (a listing's, an event's or a bookmark's)."""
        return self._resource_version

    @property
    def api_version(self) -> str | None:
        return self.kind.group_version(self._version) if self._version else None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"watcher of {self.kind} already started")
        self._thread = threading.Thread(target=self._run, name=f"kube-watch-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the watch now (the connection is shut down); the thread ends soon after."""
        self._stopping.set()
        self.interrupt()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def interrupt(self) -> None:
        """Cut the current watch connection (as a network failure would): the next watch resumes from the last
        version seen."""
        with self._lock:
            response = self._response
            self._cut = response is not None
        if response is not None:
            with contextlib.suppress(ValueError, RuntimeError, OSError):  # already released or closed
                response.shutdown()  # urllib3 2.3+: unblocks a read in another thread

    # ------------------------------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except _Gone as exc:
                log.info("kube_watch_expired_relisting", kind=str(self.kind), reason=str(exc))
                self._resource_version = None
                self.relists += 1
            except _NotServed as exc:
                self._not_served(str(exc))
            except Exception as exc:  # the API server or the network failed: try again later
                if self._stopping.is_set():
                    break
                delay = self._backoff.next_delay()
                log.warning(
                    "kube_watch_failed",
                    kind=str(self.kind),
                    error=str(exc) or type(exc).__name__,
                    retry_in=round(delay, 2),
                    failures=self._backoff.failures,
                )
                self._stopping.wait(delay)
        log.debug("kube_watch_stopped", kind=str(self.kind))

    def _step(self) -> None:
        if self._version is None:
            self._version = self._discover()
            if self._version is None:
                raise _NotServed(
                    f"the server serves none of {', '.join(map(self.kind.group_version, self.kind.versions))}"
                )
            self._unavailable_logged = False
            log.info("kube_watch_version", kind=str(self.kind), api_version=self.api_version)
        if self._resource_version is None:
            self._list()
        self._watch()

    def _discover(self) -> str | None:
        return choose_version(self.kind, served_resources(self._api, self.kind))

    def _not_served(self, reason: str) -> None:
        self._version = None
        self._resource_version = None
        if self._known:
            self._replace((), "", relist=True)
        if not self._unavailable_logged:
            log.warning(
                "kube_kind_not_served", kind=str(self.kind), reason=reason, retry_every=self.options.rediscover_seconds
            )
            self._unavailable_logged = True
            self._deliver(Unavailable(kind=self.kind, reason=reason))
        self._stopping.wait(self.options.rediscover_seconds)

    def _query(self) -> list[tuple[str, str]]:
        selectors = (("labelSelector", self.options.label_selector), ("fieldSelector", self.options.field_selector))
        return [(name, value) for name, value in selectors if value]

    def _path(self) -> str:
        assert self._version is not None
        return self.kind.collection_path(self._version, self.options.namespace)

    def _list(self) -> None:
        """List every page (a continuation expired mid-way: from the start again) and deliver it as a replace."""
        items: list[KubeDict] = []
        token = ""
        while True:
            query = [*self._query(), ("limit", str(self.options.page_size))] + ([("continue", token)] if token else [])
            try:
                page = get_json(self._api, self._path(), query)
            except ApiStatusError as exc:
                if exc.status == GONE and token:
                    items, token = [], ""
                    continue
                raise self._status_error(exc) from exc
            items.extend(self._complete(item) for item in page.get("items") or ())
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or ""
            if not token:
                self._replace(tuple(items), str(metadata.get("resourceVersion", "")), relist=self.relists > 0)
                return

    def _complete(self, item: KubeDict) -> KubeDict:
        """List items of core kinds carry no apiVersion and kind: the watched ones', as a watch event has."""
        if "kind" in item and "apiVersion" in item:
            return item
        assert self._version is not None
        return {"apiVersion": self.kind.group_version(self._version), "kind": self.kind.kind, **item}

    def _replace(self, objects: tuple[KubeDict, ...], version: str, *, relist: bool) -> None:
        diff = list_diff(self._known, objects)
        self._known = {object_key(obj): identity(obj) for obj in objects}
        self._resource_version = version or None
        if relist:
            log.info("kube_relisted", kind=str(self.kind), objects=len(objects), **diff.describe())
        self._deliver(Listed(kind=self.kind, objects=objects, diff=diff, relist=relist, resource_version=version))

    def _status_error(self, exc: ApiStatusError) -> Exception:
        if exc.status == GONE:
            return _Gone(exc.message)
        if exc.status == NOT_FOUND:
            return _NotServed(exc.message)
        return exc

    def _watch(self) -> None:
        """One watch, until the server ends it, the connection is cut, or an error: from the last version seen."""
        assert self._resource_version is not None
        query = [
            *self._query(),
            ("watch", "true"),
            ("resourceVersion", self._resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(self.options.timeout_seconds)),
        ]
        try:
            response = open_stream(self._api, self._path(), query, read_timeout=self.options.timeout_seconds + 30.0)
        except ApiStatusError as exc:
            raise self._status_error(exc) from exc
        with self._lock:
            self._response, self._cut = response, False
        self.watches += 1
        try:
            if not self._stopping.is_set():
                self._read(response)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if not self._was_cut():
                raise _WatchFailed(f"watch connection failed: {exc}") from exc
        finally:
            with self._lock:
                self._response = None
            response.close()
            response.release_conn()

    def _read(self, response: urllib3.BaseHTTPResponse) -> None:
        """Handle a watch's events until its stream ends; a watch that worked resets the backoff, one the server
        ended at once (long before its timeout, nothing in it) counts as a failure."""
        started, delivered = time.monotonic(), False
        for line in iter_lines(response):
            delivered = self._handle(read_event(line)) or delivered
            if delivered or time.monotonic() - started > self.options.healthy_after:
                self._backoff.reset()
        elapsed = time.monotonic() - started
        if elapsed > self.options.healthy_after:
            self._backoff.reset()
        elif not delivered and elapsed < min(1.0, self.options.timeout_seconds / 2) and not self._was_cut():
            raise _WatchFailed(f"the server ended the watch after {elapsed:.2f}s, long before its timeout")

    def _was_cut(self) -> bool:
        """The current watch was ended on purpose (``interrupt``, ``stop``): a resume, not a failure."""
        with self._lock:
            return self._cut or self._stopping.is_set()

    def _handle(self, item: Event | Bookmark | Expired | Failed) -> bool:
        """Apply one stream item; True when it was an event delivered."""
        if isinstance(item, Bookmark):
            self.bookmarks += 1
            if item.resource_version:
                self._resource_version = item.resource_version
            return False
        if isinstance(item, Expired):
            raise _Gone(item.message)
        if isinstance(item, Failed):
            raise _WatchFailed(item.message)
        obj = item.object
        key = object_key(obj)
        if item.type == "DELETED":
            self._known.pop(key, None)
        else:
            self._known[key] = identity(obj)
        if version := resource_version(obj):
            self._resource_version = version
        self._deliver(Changed(kind=self.kind, event=item))
        return True
