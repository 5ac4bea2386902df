"""citadel.kube_watch: list, then watch from the list's version; resume an ended watch from the last version seen;
relist on ``410 Gone``; back off and relist on other errors; bookmarks are not events."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from citadel import kube_watch


@dataclass
class Item:
    name: str


@dataclass
class Listing:
    items: list[Item]
    version: str

    @property
    def metadata(self) -> Any:
        return type("Meta", (), {"resource_version": self.version})()


@dataclass
class FakeCluster:
    """Scripted answers: ``lists`` for each list call, ``watches`` for each watch request (events, then the
    exception that ends it, if any). Records the versions watches started from; sets ``stop`` when out of script."""

    lists: list[Listing | Exception]
    watches: list[tuple[list[tuple[str, Item, str]], Exception | None]]
    stop: threading.Event = field(default_factory=threading.Event)
    started_from: list[str] = field(default_factory=list)
    selectors: list[dict[str, Any]] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    def list_function(self, **kwargs: Any) -> Listing:
        self.selectors.append({k: v for k, v in kwargs.items() if not k.startswith("_")})
        if not self.lists:
            self.stop.set()
            return Listing([], "0")
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class FakeWatch:
    cluster: FakeCluster

    def __init__(self) -> None:
        self.resource_version: str | None = None

    def stream(self, function: Any, *, resource_version: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        cluster = self.cluster
        cluster.started_from.append(resource_version)
        if not cluster.watches:
            cluster.stop.set()
            return
        events, ending = cluster.watches.pop(0)
        for kind, item, version in events:
            self.resource_version = version
            yield {"type": kind, "object": item}
        if ending is not None:
            raise ending

    def stop(self) -> None:
        pass


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Any:
    def run(cluster: FakeCluster) -> list[tuple[str, Any]]:
        FakeWatch.cluster = cluster
        monkeypatch.setattr(kube_watch.watch, "Watch", FakeWatch)
        monkeypatch.setattr(cluster.stop, "wait", lambda seconds: cluster.waits.append(seconds) or False)
        seen: list[tuple[str, Any]] = []
        kube_watch.watch_forever(
            cluster.list_function,
            what="things",
            on_list=lambda items: seen.append(("LIST", [i.name for i in items])),
            on_event=lambda kind, item: seen.append((kind, item.name)),
            stop=cluster.stop,
            label_selector="a=b",
        )
        return seen

    return run


def test_events_follow_the_list_and_an_ended_watch_resumes_from_the_last_version(run: Any) -> None:
    cluster = FakeCluster(
        lists=[Listing([Item("a")], "10")],
        watches=[
            ([("ADDED", Item("b"), "11"), ("BOOKMARK", Item(""), "15")], None),
            ([("DELETED", Item("a"), "16")], None),
        ],
    )
    seen = run(cluster)
    assert seen == [("LIST", ["a"]), ("ADDED", "b"), ("DELETED", "a")]
    assert cluster.started_from == ["10", "15", "16"]
    assert cluster.selectors[0] == {"label_selector": "a=b"}


def test_gone_lists_again_without_waiting(run: Any) -> None:
    cluster = FakeCluster(
        lists=[Listing([Item("a")], "10"), Listing([Item("a"), Item("c")], "40")],
        watches=[([("ADDED", Item("b"), "11")], ApiException(status=410, reason="Gone"))],
    )
    seen = run(cluster)
    assert seen == [("LIST", ["a"]), ("ADDED", "b"), ("LIST", ["a", "c"])]
    assert cluster.started_from == ["10", "40"]
    assert cluster.waits == []


@pytest.mark.parametrize(
    "failure",
    [ApiException(status=500, reason="Internal Server Error"), ConnectionResetError(104, "reset")],
    ids=["server-error", "connection-reset"],
)
def test_other_errors_back_off_doubling_and_list_again(run: Any, failure: Exception) -> None:
    cluster = FakeCluster(
        lists=[failure, failure, Listing([Item("a")], "10"), Listing([Item("a")], "20")],
        watches=[([], failure)],
    )
    seen = run(cluster)
    assert seen == [("LIST", ["a"]), ("LIST", ["a"])]
    assert cluster.waits == [1.0, 2.0, 1.0]  # a successful list resets the backoff
