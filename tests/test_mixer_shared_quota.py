"""RateLimit counters in a real Redis (``mixer --quota-store``): Mixer's RESP client, the quota script, and two
policy engines (two Mixer processes) that count one limit once between them; a store that cannot answer denies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest
from envoy.service.auth.v3.external_auth_pb2_grpc import AuthorizationStub
from google.rpc import code_pb2

from bench._measure import free_port
from bench._redis_server import RedisServerProcess
from mixer.app import MixerOptions, MixerServer
from mixer.attributes import check_attributes
from mixer.checks import PolicyEngine
from mixer.redis_client import ErrorReply, RedisAddress, RedisClient, RedisError, parse_redis_url
from mixer.shared_quota import SharedQuota
from pilot.model import MeshSnapshot
from tests.redis_server import redis_server
from tests.test_mixer_checks import MakeMeta, quota

__all__ = ["redis_server"]

MakeMesh = Callable[..., MeshSnapshot]
MakeRequest = Callable[..., CheckRequest]


def test_redis_urls() -> None:
    assert parse_redis_url("redis://10.0.0.5") == RedisAddress("10.0.0.5", 6379, 0, "")
    assert parse_redis_url("redis://:s3cret@redis.mixer:6380/2") == RedisAddress("redis.mixer", 6380, 2, "s3cret")
    for bad in ("http://redis", "redis://", "redis://host/x"):
        with pytest.raises(ValueError):
            parse_redis_url(bad)


async def test_commands_are_pipelined_on_one_connection_and_errors_raised(redis_server: RedisServerProcess) -> None:
    client = RedisClient(redis_server.address)
    try:
        assert await client.call("PING") == "PONG"
        replies = await asyncio.gather(*(client.call("INCR", "n") for _ in range(200)))
        assert sorted(replies) == list(range(1, 201))  # type: ignore[type-var]
        assert await client.call("GET", "n") == b"200"
        assert await client.call("GET", "missing") is None
        with pytest.raises(RedisError, match="ERR unknown command"):
            await client.call("NOPE")
        assert await client.call("PING") == "PONG"  # an error reply leaves the connection usable
    finally:
        await client.close()


async def test_a_restarted_redis_is_reconnected_to_on_the_next_command(redis_server: RedisServerProcess) -> None:
    client = RedisClient(redis_server.address)
    try:
        assert await client.call("SET", "k", "v") == "OK"
        await asyncio.to_thread(redis_server.restart)  # the reply reader sees the connection close
        assert await client.call("GET", "k") is None  # a new connection to the restarted (empty) server
    finally:
        await client.close()


async def test_a_store_nobody_listens_on_fails_fast() -> None:
    client = RedisClient(RedisAddress("127.0.0.1", free_port()), timeout=1.0)
    with pytest.raises(RedisError, match="cannot connect"):
        await client.call("PING")


async def test_the_quota_script_counts_a_fixed_window_per_bucket(redis_server: RedisServerProcess) -> None:
    store = SharedQuota(RedisClient(redis_server.address))
    try:
        taken = [await store.take("default/quota|h1", "alice", 3, 60.0) for _ in range(4)]
        assert taken[:3] == [None, None, None]
        assert taken[3] is not None and 59.0 < taken[3] <= 60.0  # seconds until the window ends
        assert await store.take("default/quota|h1", "bob", 3, 60.0) is None  # another bucket
        assert await store.take("default/quota|h1", None, 1, 60.0) is None  # the bucket without a value ...
        assert await store.take("default/quota|h1", "", 1, 60.0) is None  # ... is not the empty value's
        assert await store.take("default/quota|h2", "alice", 3, 60.0) is None  # a changed spec starts fresh
        assert await store.take("default/short|h1", "alice", 1, 0.2) is None
        assert await store.take("default/short|h1", "alice", 1, 0.2) is not None
        await asyncio.sleep(0.3)
        assert await store.take("default/short|h1", "alice", 1, 0.2) is None  # the window ended
    finally:
        await store.close()


async def test_two_mixers_sharing_a_store_count_one_limit_once(
    redis_server: RedisServerProcess, make_meta: MakeMeta, mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    snapshot = mixer_mesh(quota(make_meta, requests=5))
    shared = [PolicyEngine(snapshot, shared_quota=SharedQuota(RedisClient(redis_server.address))) for _ in range(2)]
    alone = [PolicyEngine(snapshot) for _ in range(2)]
    try:
        for engines, allowed in ((shared, 5), (alone, 10)):  # in memory each process would let 5 through
            decisions = []
            for number in range(12):
                engine = engines[number % 2]
                attributes = check_attributes(make_check_request(), engine.registry)
                decisions.append(await engine.check_shared(attributes))
            assert sum(decision.allowed for decision in decisions) == allowed
            assert {decision.result for decision in decisions if not decision.allowed} == {"rate_limited"}
            last = decisions[-1]
            assert (last.status, dict(last.headers)["retry-after"]) == (429, "60")
    finally:
        for engine in shared:
            assert engine.shared_quota is not None
            await engine.shared_quota.close()


async def test_a_store_that_cannot_answer_denies(
    make_meta: MakeMeta, mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    store = SharedQuota(RedisClient(RedisAddress("127.0.0.1", free_port()), timeout=1.0))
    engine = PolicyEngine(mixer_mesh(quota(make_meta, requests=100)), shared_quota=store)
    decision = await engine.check_shared(check_attributes(make_check_request(), engine.registry))
    assert (decision.allowed, decision.result, decision.status) == (False, "error", 403)
    assert "the shared quota store cannot count the request" in decision.reason
    assert "cannot connect" in decision.reason


async def test_two_mixer_servers_given_one_store_answer_checks_over_grpc_within_one_limit(
    redis_server: RedisServerProcess, make_meta: MakeMeta, mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    # what `mixer --quota-store URL` wires: the option, the engine's shared store, the Check handler awaiting it
    snapshot = mixer_mesh(quota(make_meta, requests=4))
    options = MixerOptions(grpc_address="127.0.0.1:0", quota_store=parse_redis_url(redis_server.url))
    mixers = [MixerServer(options), MixerServer(options)]
    codes: list[int] = []
    try:
        for mixer in mixers:
            await mixer.start()
            mixer.engine.update(snapshot)
        for number in range(10):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{mixers[number % 2].port}") as channel:
                response = await AuthorizationStub(channel).Check(make_check_request())
            codes.append(response.status.code)
    finally:
        for mixer in mixers:
            await mixer.stop()
    assert codes.count(code_pb2.OK) == 4
    assert codes[4:] == [code_pb2.RESOURCE_EXHAUSTED] * 6


async def test_an_error_inside_a_reply_leaves_the_replies_in_step(redis_server: RedisServerProcess) -> None:
    client = RedisClient(redis_server.address)
    try:
        reply = await client.call("EVAL", "return {1, redis.error_reply('nope'), 3}", 0)
        assert isinstance(reply, list) and reply[0] == 1 and reply[2] == 3
        assert isinstance(reply[1], ErrorReply) and str(reply[1]) == "ERR nope"
        assert await client.call("PING") == "PONG"
    finally:
        await client.close()


async def test_a_refused_password_is_said_at_connect(redis_server: RedisServerProcess) -> None:
    address = RedisAddress(redis_server.address.host, redis_server.address.port, 0, "wrong")
    with pytest.raises(RedisError, match="AUTH refused"):
        await RedisClient(address).call("PING")


async def test_counters_survive_a_reload_that_leaves_the_rate_limit_unchanged(
    redis_server: RedisServerProcess, make_meta: MakeMeta, mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    store = SharedQuota(RedisClient(redis_server.address))
    engine = PolicyEngine(mixer_mesh(quota(make_meta, requests=2), version=1), shared_quota=store)
    try:
        for _ in range(2):
            assert (await engine.check_shared(check_attributes(make_check_request(), engine.registry))).allowed
        engine.update(mixer_mesh(quota(make_meta, requests=2), version=2))  # the same spec: the same counters
        decision = await engine.check_shared(check_attributes(make_check_request(), engine.registry))
        assert decision.result == "rate_limited"
    finally:
        await store.close()
