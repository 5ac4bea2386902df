"""The ``Watcher`` thread against a scripted stand-in for the API server (loopback HTTP, the real client): paged
list, watch from the list's version, a bookmark moving the version the next watch starts from, an ERROR 410 event
relisting as a replace with its difference, an error status backing off and resuming from the same version, and a
prompt stop while a watch hangs. The same against a real API server: ``e2e/k8s/test_kube_watch.py``."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client

from meshplane.kube_kinds import core_kind
from meshplane.kube_watch import Changed, Delivery, Listed, Watcher, WatchOptions
from meshplane.kube_watch_events import ListDiff, identity

CONFIG_MAPS = core_kind("ConfigMap", "configmaps")
Obj = dict[str, Any]


def cm(name: str, version: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": version}}


def typed(obj: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", **obj}


def event(type_: str, obj: Obj) -> Obj:
    return {"type": type_, "object": obj}


@dataclass
class FakeApi:
    """Answers discovery and lists from ``lists`` (one per list, in order; each a list of pages), and each watch
    with the next script of ``watches``: a list of events to stream, or an int (an error status), or None (hang
    until released)."""

    lists: list[list[tuple[list[Obj], str, str]]]  # pages: (items, resourceVersion, continue)
    watches: list[list[Obj] | int | None]
    requests: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlparse(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.requests.append({"path": url.path, **query})
        if url.path == "/api/v1":
            return _json(handler, 200, {"resources": [{"name": "configmaps"}, {"name": "configmaps/status"}]})
        if query.get("watch") == "true":
            return self._watch(handler)
        pages = self.lists[0]
        index = int(query["continue"]) if "continue" in query else 0
        items, version, token = pages[index]
        if not token:
            self.lists.pop(0)
        return _json(handler, 200, {"items": items, "metadata": {"resourceVersion": version, "continue": token}})

    def _watch(self, handler: BaseHTTPRequestHandler) -> None:
        script = self.watches.pop(0) if self.watches else None
        if isinstance(script, int):
            return _json(handler, script, {"kind": "Status", "code": script, "message": "scripted failure"})
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Connection", "close")
        handler.end_headers()
        if script is None:
            self.release.wait(30)
            return None
        for line in script:
            handler.wfile.write(json.dumps(line).encode() + b"\n")
            handler.wfile.flush()
        return None

    def watch_versions(self) -> list[str]:
        return [r["resourceVersion"] for r in self.requests if r.get("watch") == "true"]


def _json(handler: BaseHTTPRequestHandler, status: int, body: Obj) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@pytest.fixture
def serve() -> Iterator[Callable[[FakeApi], client.ApiClient]]:
    servers: list[tuple[ThreadingHTTPServer, FakeApi, client.ApiClient]] = []

    def start(fake: FakeApi) -> client.ApiClient:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        api = client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}"))
        servers.append((server, fake, api))
        return api

    yield start
    for server, fake, api in servers:
        fake.release.set()
        server.shutdown()
        server.server_close()
        api.close()  # type: ignore[no-untyped-call]  # untyped upstream


def _collect(api: client.ApiClient, options: WatchOptions) -> tuple[Watcher, queue.Queue[Delivery]]:
    delivered: queue.Queue[Delivery] = queue.Queue()
    watcher = Watcher(api, CONFIG_MAPS, delivered.put, options)
    watcher.start()
    return watcher, delivered


def _next(delivered: queue.Queue[Delivery]) -> Delivery:
    return delivered.get(timeout=5)


def _stop_promptly(watcher: Watcher) -> None:
    started = time.monotonic()
    watcher.stop()
    assert watcher.join(5)
    assert time.monotonic() - started < 1.0


BOOKMARK_15 = {"kind": "ConfigMap", "metadata": {"resourceVersion": "15"}}
OPTIONS = WatchOptions(timeout_seconds=30, backoff_initial=0.05, backoff_cap=0.1, page_size=1)


def test_list_watch_bookmark_relist_and_stop(serve: Callable[[FakeApi], client.ApiClient]) -> None:
    fake = FakeApi(
        lists=[
            [([cm("a", "3")], "10", "1"), ([cm("b", "4")], "10", "")],  # two pages
            [([cm("b", "4"), cm("c", "18")], "20", "")],  # the relist: a deleted, c added meanwhile
        ],
        watches=[
            [
                event("ADDED", typed(cm("d", "11"))),
                event("BOOKMARK", {"kind": "ConfigMap", "metadata": {"resourceVersion": "15"}}),
            ],
            [event("ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"})],
            None,  # hangs until the test stops the watcher
        ],
    )
    watcher, delivered = _collect(serve(fake), OPTIONS)
    try:
        first = _next(delivered)
        assert isinstance(first, Listed) and not first.relist
        assert [o["metadata"]["name"] for o in first.objects] == ["a", "b"]
        assert first.objects[0]["kind"] == "ConfigMap"  # list items completed as a watch event's objects are
        added = _next(delivered)
        assert isinstance(added, Changed) and added.event.object["metadata"]["name"] == "d"
        relisted = _next(delivered)
        assert isinstance(relisted, Listed) and relisted.relist and watcher.relists == 1
        assert relisted.diff == ListDiff(
            added=(typed(cm("c", "18")),), deleted=(identity(typed(cm("a", "3"))), identity(typed(cm("d", "11"))))
        )
        time.sleep(0.2)  # the third watch is open
        assert fake.watch_versions() == ["10", "15", "20"]  # the bookmark's version, then the relist's
        watch = next(r for r in fake.requests if r.get("watch") == "true")
        assert (watch["allowWatchBookmarks"], watch["timeoutSeconds"]) == ("true", "30")
        assert [r.get("limit") for r in fake.requests if r["path"] == "/api/v1/configmaps" and "watch" not in r] == [
            "1",
            "1",
            "1",
        ]
    finally:
        _stop_promptly(watcher)


def test_error_status_backs_off_and_resumes_from_the_same_version(
    serve: Callable[[FakeApi], client.ApiClient],
) -> None:
    fake = FakeApi(
        lists=[[([cm("a", "3")], "10", "")]],
        watches=[500, 503, [event("MODIFIED", typed(cm("a", "12")))], None],
    )
    watcher, delivered = _collect(serve(fake), OPTIONS)
    try:
        assert isinstance(_next(delivered), Listed)
        modified = _next(delivered)
        assert isinstance(modified, Changed) and modified.event.type == "MODIFIED"
        time.sleep(0.2)
        assert fake.watch_versions() == ["10", "10", "10", "12"]  # no relist: an error is not an expiry
        assert watcher.relists == 0
    finally:
        _stop_promptly(watcher)


def test_http_410_on_a_resumed_watch_lists(serve: Callable[[FakeApi], client.ApiClient]) -> None:
    fake = FakeApi(lists=[[([cm("a", "3")], "10", "")]], watches=[410, None])
    watcher, delivered = _collect(serve(fake), WatchOptions(resume_from="2", backoff_initial=0.05, backoff_cap=0.1))
    try:
        listed = _next(delivered)
        assert isinstance(listed, Listed) and listed.relist
        assert listed.diff.added == (typed(cm("a", "3")),)
        time.sleep(0.2)
        assert fake.watch_versions() == ["2", "10"]
    finally:
        _stop_promptly(watcher)


@pytest.mark.parametrize(
    ("options", "selectors"),
    [
        (WatchOptions(), {}),
        (WatchOptions(label_selector="team=a"), {"labelSelector": "team=a"}),
        (WatchOptions(field_selector="metadata.name=x"), {"fieldSelector": "metadata.name=x"}),
        (
            WatchOptions(label_selector="team=a", field_selector="metadata.name=x"),
            {"labelSelector": "team=a", "fieldSelector": "metadata.name=x"},
        ),
    ],
    ids=["none", "label", "field", "label-and-field"],
)
def test_selectors_go_on_the_list_and_every_watch(
    serve: Callable[[FakeApi], client.ApiClient], options: WatchOptions, selectors: dict[str, str]
) -> None:
    fake = FakeApi(lists=[[([cm("a", "3")], "10", "")]], watches=[[event("ADDED", typed(cm("b", "11")))], None])
    watcher, delivered = _collect(serve(fake), options)
    try:
        assert isinstance(_next(delivered), Listed)
        assert isinstance(_next(delivered), Changed)
        time.sleep(0.2)  # the second watch is open
        reads = [r for r in fake.requests if r["path"] == "/api/v1/configmaps"]
        assert len(reads) == 3  # the list and two watches
        assert [{k: r[k] for k in ("labelSelector", "fieldSelector") if k in r} for r in reads] == [selectors] * 3
    finally:
        _stop_promptly(watcher)
