"""Rendering Pilot's sync state and config dumps the way istioctl proxy-status / proxy-config do."""

from __future__ import annotations

from typing import Any

import pytest

from pilot.proxy_status import find_proxy, proxies_by_node, render_proxy_config, render_proxy_status, type_status

SYNCZ: dict[str, Any] = {
    "snapshot_version": 7,
    "proxies": [
        {
            "id": "sidecar~127.0.0.21~reviews-v1.default~default.svc.cluster.local",
            "workload": "reviews-v1",
            "namespace": "default",
            "address": "127.0.0.21",
            "mode": "delta",
            "snapshot_version": 7,
            "types": {
                "cds": {"sent": "a", "acked": "a", "last_nack": None},
                "eds": {"sent": "b", "acked": "old", "last_nack": None},
                "lds": {"sent": "c", "acked": "old", "last_nack": {"version": "c", "error": "bad listener"}},
            },
        }
    ],
}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (None, "NOT SENT"),
        ({"sent": "", "acked": ""}, "NOT SENT"),
        ({"sent": "a", "acked": "a"}, "SYNCED"),
        ({"sent": "b", "acked": "a"}, "STALE"),
        ({"sent": "b", "acked": "a", "last_nack": {"version": "b"}}, "NACKED"),
        ({"sent": "b", "acked": "b", "last_nack": {"version": "a"}}, "SYNCED"),
    ],
    ids=["missing", "empty", "synced", "stale", "nacked", "old-nack"],
)
def test_type_status(entry: dict[str, Any] | None, expected: str) -> None:
    assert type_status(entry) == expected


def test_proxy_status_table_and_nacks() -> None:
    text = render_proxy_status(SYNCZ)
    header, row, *_ = text.splitlines()

    assert header.split() == ["NAME", "ADDRESS", "MODE", "CDS", "LDS", "EDS", "RDS", "SNAPSHOT"]
    assert row.split() == [
        "reviews-v1.default",
        "127.0.0.21",
        "delta",
        "SYNCED",
        "NACKED",
        "STALE",
        "NOT",
        "SENT",
        "7/7",
    ]
    assert "reviews-v1.default LDS rejected version c: bad listener" in text
    assert render_proxy_status({"proxies": []}) == "no proxies connected"


@pytest.mark.parametrize("name", ["reviews-v1", "reviews-v1.default", SYNCZ["proxies"][0]["id"]])
def test_find_proxy_by_workload_or_node_id(name: str) -> None:
    assert find_proxy(SYNCZ, name) == SYNCZ["proxies"][0]["id"]


def test_find_proxy_lists_what_is_connected() -> None:
    with pytest.raises(LookupError, match=r"connected: reviews-v1\.default"):
        find_proxy(SYNCZ, "ratings")


POD_NODE = "sidecar~10.89.0.10~productpage.default~default.svc.cluster.local"
SYNCED = {"sent": "a", "acked": "a", "last_nack": None}
ENVOY_STREAM = {  # a pod's Envoy and its agent: a stream each, the same node id
    "id": POD_NODE,
    "workload": "productpage",
    "namespace": "default",
    "address": "10.89.0.10",
    "mode": "delta",
    "snapshot_version": 7,
    "types": {"cds": SYNCED, "lds": SYNCED, "eds": SYNCED, "rds": SYNCED},
}
AGENT_STREAM = {
    **ENVOY_STREAM,
    "mode": "sotw",
    "types": {"nds": {"sent": "n", "acked": "m", "last_nack": {"version": "n", "error": "bad table"}}},
}


@pytest.mark.parametrize(
    "streams", [[ENVOY_STREAM, AGENT_STREAM], [AGENT_STREAM, ENVOY_STREAM]], ids=["envoy-first", "agent-first"]
)
def test_a_pods_envoy_and_agent_streams_are_one_proxy(streams: list[dict[str, Any]]) -> None:
    syncz = {"snapshot_version": 7, "proxies": streams}

    [proxy] = proxies_by_node(syncz)
    _, row, *rest = render_proxy_status(syncz).splitlines()

    assert proxy["mode"] == "delta" and set(proxy["types"]) == {"cds", "lds", "eds", "rds", "nds"}
    assert row.split() == ["productpage.default", "10.89.0.10", "delta", "SYNCED", "SYNCED", "SYNCED", "SYNCED", "7/7"]
    assert "  productpage.default NDS rejected version n: bad table" in rest
    assert find_proxy(syncz, "productpage") == POD_NODE
    with pytest.raises(LookupError, match=r"connected: productpage\.default$"):
        find_proxy(syncz, "ratings")


def test_proxy_config_summaries() -> None:
    dump = {
        "id": "x",
        "types": {
            "cds": {"resources": [{"name": "outbound|9080||reviews", "type": "EDS"}]},
            "lds": {
                "resources": [{"name": "l", "address": {"socket_address": {"address": "1.2.3.4", "port_value": 1}}}]
            },
            "eds": {
                "resources": [
                    {
                        "cluster_name": "outbound|9080||reviews",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {"endpoint": {"address": {"socket_address": {"address": "a", "port_value": 2}}}}
                                ]
                            }
                        ],
                    }
                ]
            },
        },
    }

    assert render_proxy_config(dump, "cluster").splitlines()[1].split() == ["outbound|9080||reviews", "EDS"]
    assert render_proxy_config(dump, "listener").splitlines()[1].split() == ["l", "1.2.3.4:1"]
    assert render_proxy_config(dump, "endpoint").splitlines()[1].split() == ["outbound|9080||reviews", "a:2"]
    assert render_proxy_config(dump, "route") == "no route resources sent to x"


def test_the_rds_column_of_a_vhds_stream_is_the_worse_of_tables_and_virtual_hosts() -> None:
    synced = {"sent": "a", "acked": "a"}
    stale = {"sent": "b", "acked": "a"}
    proxy = {"id": "sidecar~1~p.default~default.svc.cluster.local", "workload": "p", "namespace": "default"}
    others = {"cds": synced, "lds": synced, "eds": synced}

    def rds_column(types: dict[str, Any]) -> str:
        entry = {**proxy, "address": "10.0.0.1", "mode": "delta", "types": {**others, **types}}
        syncz = {"snapshot_version": 1, "proxies": [entry]}
        return render_proxy_status(syncz).splitlines()[1].split()[6]

    assert rds_column({"rds": synced, "vhds": synced}) == "SYNCED"
    assert rds_column({"rds": synced, "vhds": stale}) == "STALE"
    assert rds_column({"rds": synced}) == "SYNCED"
