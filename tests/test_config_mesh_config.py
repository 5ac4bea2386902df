"""Istio's MeshConfig file: what is implemented is read, everything else is rejected with file:line."""

from __future__ import annotations

import pytest

from pilot.config.mesh_config import MeshConfig, MeshConfigError, MeshNames, parse_mesh_config
from pilot.model import MeshSettings, OutboundTrafficPolicy
from pilot.model.proxy_config import ProxyDefaults


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", MeshConfig(settings=MeshSettings())),
        (
            "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n",
            MeshConfig(settings=MeshSettings(outbound_traffic_policy=OutboundTrafficPolicy.REGISTRY_ONLY)),
        ),
        (
            "rootNamespace: mesh-root\ntrustDomain: example.org\nenableAutoMtls: true\n",
            MeshConfig(
                settings=MeshSettings(), names=MeshNames(trust_domain="example.org", root_namespace="mesh-root")
            ),
        ),
    ],
    ids=["empty-is-istio-defaults", "registry-only", "names-and-auto-mtls"],
)
def test_accepted(text: str, expected: MeshConfig) -> None:
    assert parse_mesh_config(text, "mesh.yaml") == expected


def test_default_config_is_every_proxy_s_lowest_proxy_config_layer() -> None:
    config = parse_mesh_config("defaultConfig:\n  concurrency: 0\n  proxyMetadata: {LOG: json}\n", "mesh.yaml")
    assert config.settings.proxy_defaults == ProxyDefaults(concurrency=0, environment_variables={"LOG": "json"})
    assert config.describe()["defaultConfig"] == {"concurrency": 0, "proxyMetadata": {"LOG": "json"}}
    assert parse_mesh_config("defaultConfig: {}\n", "mesh.yaml").settings.proxy_defaults == ProxyDefaults()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connectTimeout: 1s\n", ["mesh.yaml:1: connectTimeout: not supported by meshplane yet"]),
        (
            "defaultConfig:\n  drainDuration: 10s\n",
            ["mesh.yaml:2: defaultConfig.drainDuration: not supported by meshplane yet (defaultConfig: concurrency"],
        ),
        (
            "defaultConfig:\n  concurrency: -1\n  proxyMetadata: {ISTIO_META_X: a}\n",
            [
                "mesh.yaml:2: defaultConfig.concurrency: must be at least 0, got -1",
                "mesh.yaml:3: defaultConfig.proxyMetadata.ISTIO_META_X: not supported by meshplane yet",
            ],
        ),
        (
            "rootNamespace: r\nenableAutoMtls: false\n",
            ["mesh.yaml:2: enableAutoMtls: not supported by meshplane yet: auto mTLS is always on"],
        ),
        (
            "outboundTrafficPolicy:\n  mode: ALLOW_SOME\n",
            ["mesh.yaml:2: outboundTrafficPolicy.mode: "],
        ),
        ("outboundTrafic: {}\n", ["mesh.yaml:1: outboundTrafic: unknown field"]),
        ("a: [\n", ["mesh.yaml:"]),
        ("trustDomain: Example.ORG\n", ["mesh.yaml:1: trustDomain: trustDomain 'Example.ORG' is not a trust domain"]),
    ],
    ids=[
        "unsupported-field",
        "default-config-field",
        "default-config-values",
        "auto-mtls-off",
        "bad-mode",
        "typo",
        "yaml-syntax",
        "bad-trust-domain",
    ],
)
def test_rejected(text: str, expected: list[str]) -> None:
    with pytest.raises(MeshConfigError) as raised:
        parse_mesh_config(text, "mesh.yaml")
    messages = [str(error) for error in raised.value.errors]
    assert len(messages) == len(expected), messages
    for message, start in zip(messages, expected, strict=True):
        assert message.startswith(start), messages


def test_names_default_to_the_flags() -> None:
    flags = MeshNames(trust_domain="corp.example", root_namespace="mesh-root")
    assert parse_mesh_config("trustDomain: other.example\n", "mesh.yaml", defaults=flags).names == MeshNames(
        trust_domain="other.example", root_namespace="mesh-root"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trustDomain: other.example\n", ["mesh.yaml:1: trustDomain: changed from 'cluster.local' to 'other.example'"]),
        (
            "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\nrootNamespace: mesh-root\n",
            ["mesh.yaml:3: rootNamespace: changed from 'istio-system' to 'mesh-root' while Pilot runs"],
        ),
    ],
    ids=["trust-domain", "root-namespace-with-a-good-policy-edit"],
)
def test_running_names_change_only_with_a_restart(text: str, expected: list[str]) -> None:
    with pytest.raises(MeshConfigError) as raised:
        parse_mesh_config(text, "mesh.yaml", running=MeshNames())
    messages = [str(error) for error in raised.value.errors]
    assert len(messages) == len(expected), messages
    for message, start in zip(messages, expected, strict=True):
        assert message.startswith(start), messages


def test_running_names_unchanged_are_accepted() -> None:
    config = parse_mesh_config("trustDomain: cluster.local\n", "mesh.yaml", running=MeshNames())
    assert config.names == MeshNames()


def test_describe_uses_istio_field_names() -> None:
    config = parse_mesh_config("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n", "mesh.yaml")
    assert config.describe() == {
        "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
        "rootNamespace": "istio-system",
        "trustDomain": "cluster.local",
        "enableAutoMtls": True,
    }
