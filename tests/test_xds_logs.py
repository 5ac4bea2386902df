"""Pilot's log format (key=value or JSON on stderr), shown on the event operators look for: a NACK."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import grpc
import pytest
import structlog

from meshplane.logs import configure_logging
from pilot.generate.registry import CLUSTER_TYPE
from pilot.xds import DiscoveryServer
from tests.xds_fakes import PRODUCTPAGE, AdsStream, wait_until


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        yield stream
    finally:
        root.handlers, root.level = handlers, level
        structlog.reset_defaults()


async def _nack(channel: grpc.aio.Channel, server: DiscoveryServer) -> None:
    stream = AdsStream(channel)
    await stream.request(CLUSTER_TYPE, node=PRODUCTPAGE)
    response = await stream.recv()
    await stream.request(CLUSTER_TYPE, nonce=response.nonce, error="Proto constraint validation failed")
    await wait_until(lambda: server.syncz()["proxies"][0]["types"]["cds"]["last_nack"] is not None)


async def test_nack_logged_as_json(
    log_stream: io.StringIO, ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer
) -> None:
    configure_logging(json=True, level="info", stream=log_stream, cache_loggers=False)
    await _nack(ads_channel, xds_server)
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    [nack] = [e for e in events if e["event"] == "proxy rejected config (NACK)"]
    assert nack["level"] == "warning" and nack["logger"] == "pilot.xds.connection"
    assert nack["error"] == "Proto constraint validation failed" and nack["type"] == "cds"
    assert nack["proxy"] == PRODUCTPAGE and "timestamp" in nack
    assert not [e for e in events if e["level"] == "debug"]  # level filter applies


async def test_nack_logged_as_key_value(
    log_stream: io.StringIO, ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer
) -> None:
    configure_logging(level="warning", stream=log_stream, cache_loggers=False)
    await _nack(ads_channel, xds_server)
    [line] = [line for line in log_stream.getvalue().splitlines() if "NACK" in line]
    assert line.startswith("timestamp=")
    assert "level='warning' logger='pilot.xds.connection' event='proxy rejected config (NACK)'" in line
    assert "error='Proto constraint validation failed'" in line
    assert "proxy connected" not in log_stream.getvalue()  # info is below the level


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="level must be one of"):
        configure_logging(level="verbose")
