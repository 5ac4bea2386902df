"""The pod's resolv.conf, its DNS agent's command line, ``--labels`` and ``--node-metadata`` (pure parts of
``meshplane pod run``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agent.pod_cli import parse_labels, parse_node_metadata
from agent.pod_dns import agent_command, resolv_conf
from agent.pod_network import PodNetworkError
from envoy_bootstrap.bootstrap import BootstrapError, build_node

SEARCH = "search shop.svc.cluster.local svc.cluster.local cluster.local"


@pytest.mark.parametrize(
    ("upstreams", "fallback", "nameservers"),
    [
        ((), True, ["nameserver 127.0.0.1"]),
        ((), False, []),
        (("10.89.0.53",), True, ["nameserver 10.89.0.53"]),
        (("10.89.0.53:5353", "10.89.0.53", "10.89.0.54"), True, ["nameserver 10.89.0.53", "nameserver 10.89.0.54"]),
    ],
    ids=["none-loopback", "none-agent-copy", "one", "ports-dropped-deduplicated"],
)
def test_resolv_conf_has_kubernetes_search_list_and_upstreams(
    upstreams: tuple[str, ...], fallback: bool, nameservers: list[str]
) -> None:
    lines = resolv_conf("shop", "cluster.local", upstreams, loopback_fallback=fallback).splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == [SEARCH, *nameservers, "options ndots:5"]


def test_agent_command_listens_on_the_capture_port_with_the_sidecars_node() -> None:
    argv = agent_command(pilot="127.0.0.1:15010", node_id="sidecar~x", resolv=Path("/r"), upstreams=("10.0.0.5:53",))
    assert argv == [
        sys.executable, "-m", "agent", "dns", "--pilot", "127.0.0.1:15010", "--node-id", "sidecar~x",
        "--resolv-conf", "/r", "--listen", "127.0.0.1:15053", "--upstream", "10.0.0.5:53",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "labels"),
    [("", {}), ("app=reviews", {"app": "reviews"}), (" app=r , version=v1 ", {"app": "r", "version": "v1"})],
    ids=["empty", "one", "spaces"],
)
def test_parse_labels(text: str, labels: dict[str, str]) -> None:
    assert parse_labels(text) == labels


@pytest.mark.parametrize("text", ["app", "=v1"], ids=["no-equals", "no-key"])
def test_parse_labels_rejects_what_is_not_k_v(text: str) -> None:
    with pytest.raises(PodNetworkError, match="--labels: expected k=v"):
        parse_labels(text)


def test_node_metadata_carries_service_account_and_labels() -> None:
    node = build_node(
        workload="reviews-v1",
        namespace="default",
        address="10.89.0.21",
        domain_suffix="cluster.local",
        service_account="bookinfo-reviews",
        labels={"version": "v1", "app": "reviews"},
    )
    assert node.metadata["SERVICE_ACCOUNT"] == "bookinfo-reviews"
    assert dict(node.metadata["LABELS"]) == {"app": "reviews", "version": "v1"}
    assert "LABELS" not in build_node(workload="a", namespace="b", address="10.0.0.1", domain_suffix="c").metadata


@pytest.mark.parametrize(
    ("items", "metadata"),
    [
        ([], {}),
        (["AUTO_REGISTER_GROUP=reviews"], {"AUTO_REGISTER_GROUP": "reviews"}),
        (["A=x=y", "B="], {"A": "x=y", "B": ""}),
    ],
    ids=["none", "one", "equals-in-value-and-empty"],
)
def test_parse_node_metadata_reads_key_value_items(items: list[str], metadata: dict[str, str]) -> None:
    assert parse_node_metadata(items) == metadata


@pytest.mark.parametrize("item", ["AUTO_REGISTER_GROUP", "=reviews"], ids=["no-equals", "no-key"])
def test_parse_node_metadata_rejects_what_is_not_key_value(item: str) -> None:
    with pytest.raises(PodNetworkError, match="--node-metadata: expected KEY=VALUE"):
        parse_node_metadata([item])


def test_extra_node_metadata_is_added_as_strings() -> None:
    node = build_node(
        workload="details", namespace="default", address="10.0.0.1", domain_suffix="c",
        extra_metadata={"AUTO_REGISTER_GROUP": "details", "CLUSTER_ID": "east"},
    )  # fmt: skip
    assert node.metadata["AUTO_REGISTER_GROUP"] == "details"
    assert node.metadata["CLUSTER_ID"] == "east"


@pytest.mark.parametrize("key", ["NAMESPACE", "INTERCEPTION_MODE", "LABELS", "MESHPLANE_SDS", ""], ids=str)
def test_extra_node_metadata_never_replaces_what_meshplane_sets(key: str) -> None:
    with pytest.raises(BootstrapError, match="meshplane sets that key itself"):
        build_node(workload="a", namespace="b", address="10.0.0.1", domain_suffix="c", extra_metadata={key: "x"})
