"""The checks' referenced-attributes caches (mixer/referenced.py): which attribute values key a policy's cache, an
AccessList decision reused for the same values and only for them, emptied by new entries and by a new snapshot,
and a RateLimit that counts every request although its bucket is found from the cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from structlog.testing import capture_logs

from mixer.access_list import AccessListCheck, FixedEntries, compile_entries
from mixer.checks import ALLOWED, PolicyEngine
from mixer.entries_files import EntriesFiles
from mixer.evaluation import CompiledExpression
from mixer.rate_limit import QuotaStore, RateLimitCheck
from mixer.referenced import ABSENT, DecisionCache, Miss, ReferencedAttributes
from pilot.config.types import AccessList, ConfigMeta, RateLimit
from pilot.model import MeshSnapshot
from tests.mixer_builders import FakeClock

MakeMeta = Callable[..., ConfigMeta]
MakeMesh = Callable[..., MeshSnapshot]
REVIEWS = MappingProxyType({"app": "reviews"})


def attributes(*, user: str | None = None, path: str = "/", ip: str = "127.0.0.11", **headers: str) -> dict[str, Any]:
    sent = dict(headers) if user is None else {"x-user": user, **headers}
    return {
        "source": {"ip": ip, "principal": "cluster.local/ns/default/sa/productpage", "labels": {"app": "productpage"}},
        "destination": {"ip": "127.0.0.21", "port": 9080, "labels": {"app": "reviews"}},
        "request": {"path": path, "method": "GET", "headers": sent},
        "connection": {"mtls": True},
    }


@pytest.mark.parametrize(
    ("source", "paths"),
    [
        ('request.headers["x-user"]', [("request", "headers", "x-user")]),
        (
            'request.path.startsWith("/a") && source.labels["app"] == "x"',
            [("request", "path"), ("source", "labels", "app")],
        ),
        ("request.headers[request.path]", [("request", "headers"), ("request", "path")]),
        ('has(request.headers.x) || request.headers["x"] == "a"', [("request", "headers", "x")]),
        ('request.headers.exists(h, h == "x") || request.headers["y"] == ""', [("request", "headers")]),
        ('request.headers["a\\"b"]', [("request", "headers")]),
        (
            r"""request.headers["a'"] + request.headers['b"']""",
            [("request", "headers", "a'"), ("request", "headers", 'b"')],
        ),
        ("{'a': request}.a.path", [("request",)]),
        ('"source.ip" == request.path', [("request", "path")]),
    ],
    ids=[
        "one-header",
        "method-call-and-label",
        "dynamic-index-keys-the-whole-map",
        "repeats-merged",
        "a-map-covers-its-entries",
        "escaped-step-cut-off",
        "other-quote-kept",
        "a-whole-root",
        "not-inside-a-string",
    ],
)
def test_referenced_paths(source: str, paths: list[tuple[str, ...]]) -> None:
    assert list(CompiledExpression(source).referenced.paths) == sorted(paths)


def test_key_tells_absent_from_empty_and_freezes_maps() -> None:
    one_header = ReferencedAttributes([("request", "headers", "x-user")])
    assert one_header.key(attributes()) == (ABSENT,)
    assert one_header.key(attributes(user="")) == ("",)
    assert one_header.key(attributes(user="bob")) == one_header.key(attributes(user="bob", path="/other", ip="x"))
    whole_map = ReferencedAttributes([("request", "headers")])
    assert whole_map.key(attributes(user="bob", b="2", a="1")) == ((("a", "1"), ("b", "2"), ("x-user", "bob")),)
    below_a_value = ReferencedAttributes([("request", "path", "x")])
    assert below_a_value.key(attributes(path="/a")) == ("/a",)


def test_decision_cache_is_bounded() -> None:
    cache: DecisionCache[str | None] = DecisionCache(max_entries=2)
    cache.put(("a",), None)
    cache.put(("b",), "denied")
    assert (cache.get(("a",)), cache.get(("b",)), cache.get(("c",))) == (None, "denied", Miss.MISS)
    assert (cache.hits, cache.misses) == (2, 1)
    cache.put(("c",), "x")  # full: emptied first
    assert len(cache) == 1 and cache.get(("a",)) is Miss.MISS


def test_long_keys_are_not_cached(make_meta: MakeMeta) -> None:
    cache: DecisionCache[str] = DecisionCache(max_key_chars=10)
    cache.put(("x" * 9,), "kept")
    cache.put(("x" * 11,), "too long")
    cache.put(((("h", "x" * 9),),), "a frozen map counts its strings")
    assert len(cache) == 1
    check = users_list(make_meta, "jason")
    assert check.check(attributes(user="j" * 5000)) is None
    assert check.check(attributes(user="j" * 5000)) is None
    assert len(check.decisions) == 0 and check.decisions.misses == 2


def users_list(make_meta: MakeMeta, *entries: str, value: str = 'request.headers["x-user"]') -> AccessListCheck:
    policy = AccessList(meta=make_meta("AccessList", "users"), value=value, entries=entries, mode="deny")
    return AccessListCheck(policy, FixedEntries(compile_entries(entries, "STRINGS")))


def test_access_list_decision_reused_for_the_same_referenced_values(make_meta: MakeMeta) -> None:
    check = users_list(make_meta, "jason")
    denial = check.check(attributes(user="jason"))
    assert denial is not None and denial.value == "jason"
    assert check.check(attributes(user="jason", path="/elsewhere", ip="10.0.0.1", other="x")) is denial
    assert check.check(attributes(user="bob")) is None
    assert check.check(attributes(user="bob", path="/b")) is None
    assert check.check(attributes()) is None  # absent: a key of its own
    assert (check.decisions.hits, check.decisions.misses, len(check.decisions)) == (2, 3, 3)


def test_access_list_evaluation_errors_are_not_cached(make_meta: MakeMeta) -> None:
    check = users_list(make_meta, "1", value='string(int(request.headers["x-user"]))')
    with capture_logs() as logs:
        first, second = check.check(attributes(user="abc")), check.check(attributes(user="abc"))
    assert first is not None and second is not None and first.result == second.result == "error"
    assert len(check.decisions) == 0
    assert [entry["event"] for entry in logs] == ["access list cannot decide, denying"] * 2


async def test_access_list_cache_emptied_when_the_entries_file_changes(make_meta: MakeMeta, tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_text("jason\n")
    files = EntriesFiles()
    policy = AccessList(
        meta=make_meta("AccessList", "users"), value='request.headers["x-user"]', entries_file=str(path), mode="deny"
    )
    check = AccessListCheck(policy, files.use(str(path), "STRINGS"))
    assert check.check(attributes(user="jason")) is not None
    assert check.check(attributes(user="bob")) is None
    assert len(check.decisions) == 2
    path.write_text("bob\nmallory\n")
    await files.poll_once()
    assert check.check(attributes(user="jason")) is None
    assert check.check(attributes(user="bob")) is not None
    assert check.decisions.hits == 0


def blocked(make_meta: MakeMeta, *users: str) -> AccessList:
    return AccessList(
        meta=make_meta("AccessList", "blocked-users"),
        selector=REVIEWS,
        value='request.headers["x-user"]',
        entries=users,
        mode="deny",
    )


def test_a_new_snapshot_starts_with_empty_caches(make_meta: MakeMeta, mixer_mesh: MakeMesh) -> None:
    engine = PolicyEngine(mixer_mesh(blocked(make_meta, "jason")))
    request = attributes(user="jason") | {"destination": {"ip": "127.0.0.21", "port": 9080}}
    assert engine.check(request).result == "denied"
    assert engine.check(request).result == "denied"
    engine.update(mixer_mesh(blocked(make_meta, "bob"), version=2))
    assert engine.check(request) is ALLOWED
    (compiled,) = engine.policies_for("127.0.0.21")
    assert isinstance(compiled, AccessListCheck) and compiled.decisions.hits == 0


def test_rate_limit_counts_every_request_with_a_cached_bucket(make_meta: MakeMeta) -> None:
    policy = RateLimit(
        meta=make_meta("RateLimit", "quota"),
        key='request.headers["x-user"]',
        match='request.method == "GET"',
        requests=2,
        per=10.0,
    )
    check = RateLimitCheck(policy, QuotaStore(FakeClock()).counters(policy))
    assert check.check(attributes(user="bob")) is None
    assert check.check(attributes(user="bob", path="/x")) is None
    denial = check.check(attributes(user="bob", path="/y"))
    assert denial is not None and denial.result == "rate_limited"
    assert check.check(attributes(user="alice")) is None  # its own bucket
    assert (check.buckets.hits, check.buckets.misses) == (2, 2)
    assert check.referenced.paths == (("request", "headers", "x-user"), ("request", "method"))
