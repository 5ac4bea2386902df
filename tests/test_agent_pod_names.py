"""Names of a pod's network namespace and veth, derived from its state directory, namespace and name: runs with
state directories of their own never clash, and what a run left is found by its prefixes; the bridge's MAC address,
derived from the gateway's."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from agent.pod_cli import pod_arguments
from agent.pod_network import DEFAULT_PODS_DIR, PodNetwork, bridge_mac, netns_prefix, pod_names, veth_prefix

RUN_A = Path("/run/meshplane/e2e/1-a")
RUN_B = Path("/run/meshplane/e2e/2-b")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((RUN_A, "default", "productpage"), (RUN_B, "default", "productpage")),
        ((DEFAULT_PODS_DIR, "default", "productpage"), (RUN_A, "default", "productpage")),
        ((RUN_A, "default", "reviews-v1"), (RUN_A, "default", "reviews-v2")),
        ((RUN_A, "default", "reviews"), (RUN_A, "shop", "reviews")),
    ],
    ids=["same-pod-two-runs", "demo-and-a-test", "two-pods-one-run", "same-name-two-namespaces"],
)
def test_pods_differing_in_state_dir_namespace_or_name_get_different_names(
    first: tuple[Path, str, str], second: tuple[Path, str, str]
) -> None:
    netns_a, veth_a = pod_names(*first)
    netns_b, veth_b = pod_names(*second)

    assert netns_a != netns_b
    assert veth_a != veth_b


@pytest.mark.parametrize("state_dir", [DEFAULT_PODS_DIR, RUN_A, RUN_B], ids=["default", "run-a", "run-b"])
def test_names_carry_the_state_dir_prefix_and_fit_linux_interface_names(state_dir: Path) -> None:
    netns, veth = pod_names(state_dir, "default", "a-rather-long-pod-name-of-a-workload")

    assert netns.startswith(netns_prefix(state_dir))
    assert veth.startswith(veth_prefix(state_dir))
    assert len(veth) == 15  # IFNAMSIZ - 1
    assert not netns.startswith(netns_prefix(RUN_B if state_dir != RUN_B else RUN_A))
    assert pod_names(state_dir, "default", "a-rather-long-pod-name-of-a-workload") == (netns, veth)  # stable


@pytest.mark.parametrize(
    ("argv", "state_dir"),
    [
        (["run", "web", "--ip", "10.89.0.5", "--", "sleep", "1"], DEFAULT_PODS_DIR),
        (["run", "web", "--ip", "10.89.0.5", "--state-dir", "/tmp/pods", "--", "sleep", "1"], Path("/tmp/pods")),
        (["exec", "web", "--", "true"], DEFAULT_PODS_DIR),
        (["exec", "web", "--state-dir", "/tmp/pods", "--", "true"], Path("/tmp/pods")),
    ],
    ids=["run-default", "run-own", "exec-default", "exec-own"],
)
def test_pod_run_and_exec_take_the_same_state_dir(argv: list[str], state_dir: Path) -> None:
    parser = argparse.ArgumentParser()
    pod_arguments(parser)

    assert parser.parse_args(argv).state_dir == state_dir


@pytest.mark.parametrize(
    ("cidr", "mac"),
    [("10.89.0.0/16", "0a:58:0a:59:00:01"), ("10.90.146.0/24", "0a:58:0a:5a:92:01")],
    ids=["default-pod-cidr", "an-e2e-network"],
)
def test_the_bridge_mac_is_a_locally_administered_unicast_address_of_the_gateway(cidr: str, mac: str) -> None:
    assert bridge_mac(PodNetwork(bridge="mpbr0", cidr=cidr)) == mac
    first = int(mac.split(":")[0], 16)
    assert first & 0b10 and not first & 0b01  # locally administered, unicast
