"""How a pod's sidecar reaches Mixer (``agent.pod``): relayed into the pod by default, or directly with
``--mixer-direct`` at an address the pod routes to (the pod network's gateway); loopback is refused there, since
inside the pod it is the pod's own."""

from __future__ import annotations

import argparse

import pytest

from agent.pod import PodSpec, mixer_direct_problem, relayed_addresses, sidecar_mixer_address
from agent.pod_cli import pod_arguments
from agent.pod_network import PodNetworkError

PILOT, GATEWAY_MIXER, HOST_MIXER = "127.0.0.1:15010", "10.89.0.1:9091", "127.0.0.1:9091"


def _spec(mixer: str | None, *, direct: bool) -> PodSpec:
    return PodSpec(
        name="web",
        namespace="default",
        ip="10.89.0.5",
        app=("true",),
        app_uid=1000,
        pilot=PILOT,
        mixer=mixer,
        mixer_direct=direct,
    )


@pytest.mark.parametrize(
    ("mixer", "direct", "problem"),
    [
        (HOST_MIXER, False, None),
        (None, False, None),
        (GATEWAY_MIXER, True, None),
        ("mixer.example:9091", True, None),
        (None, True, "--mixer-direct: needs --mixer"),
        (HOST_MIXER, True, "--mixer-direct: --mixer 127.0.0.1:9091 is, inside the pod, the pod's own address"),
        ("127.0.0.53:9091", True, "--mixer-direct: --mixer 127.0.0.53:9091 is, inside the pod, the pod's own"),
        ("[::1]:9091", True, "--mixer-direct: --mixer [::1]:9091 is, inside the pod, the pod's own address"),
        ("0.0.0.0:9091", True, "--mixer-direct: --mixer 0.0.0.0:9091 is, inside the pod, the pod's own address"),
    ],
    ids=[
        "relayed",
        "no-mixer",
        "gateway",
        "name",
        "direct-without-mixer",
        "loopback",
        "loopback-net",
        "ipv6-lo",
        "unspecified",
    ],
)
def test_mixer_direct_needs_an_address_the_pod_routes_to(mixer: str | None, direct: bool, problem: str | None) -> None:
    found = mixer_direct_problem(mixer, direct)
    assert (found is None) == (problem is None)
    if problem is not None:
        assert found is not None and found.startswith(problem)
        with pytest.raises(PodNetworkError, match=r"^--mixer-direct: "):
            _spec(mixer, direct=direct)


@pytest.mark.parametrize(
    ("mixer", "direct", "relayed", "sidecar"),
    [
        (HOST_MIXER, False, [PILOT, HOST_MIXER], "127.0.0.1:9091"),
        ("127.0.0.9:19091", False, [PILOT, "127.0.0.9:19091"], "127.0.0.1:19091"),
        (GATEWAY_MIXER, True, [PILOT], GATEWAY_MIXER),
        (None, False, [PILOT], None),
    ],
    ids=["relayed", "relayed-same-port", "direct", "no-mixer"],
)
def test_the_relay_carries_mixer_unless_direct(
    mixer: str | None, direct: bool, relayed: list[str], sidecar: str | None
) -> None:
    spec = _spec(mixer, direct=direct)
    assert relayed_addresses(spec) == relayed
    assert sidecar_mixer_address(spec) == sidecar


def test_pod_run_parses_mixer_direct() -> None:
    parser = argparse.ArgumentParser()
    pod_arguments(parser)
    argv = ["run", "web", "--ip", "10.89.0.5", "--mixer", GATEWAY_MIXER]
    assert parser.parse_args([*argv, "--mixer-direct", "--", "true"]).mixer_direct is True
    assert parser.parse_args([*argv, "--", "true"]).mixer_direct is False
