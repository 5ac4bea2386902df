"""A pod's Istio annotations as the injected containers' options, and the refusals (``injector.annotations``,
``injector.proxy_config``): each supported annotation translated, each unsupported one refused by name."""

from __future__ import annotations

import argparse
import ipaddress

import pytest

from agent.capture import CaptureOptions
from agent.pod_cli import _options, capture_arguments
from injector.annotations import InjectionRefused, SidecarOptions, sidecar_options
from injector.containers import capture_flags
from tests.injector_builders import IMAGE, SETTINGS

TRAFFIC = "traffic.sidecar.istio.io/"
NET = ipaddress.IPv4Network
TRANSLATED = [
    # (id, annotations, attribute path, expected)
    ("include-outbound-ranges", {TRAFFIC + "includeOutboundIPRanges": "10.0.0.0/8"}, "capture.include_outbound_cidrs",
     (NET("10.0.0.0/8"),)),
    ("exclude-outbound-ranges", {TRAFFIC + "excludeOutboundIPRanges": "1.2.3.4"}, "capture.exclude_outbound_cidrs",
     (NET("1.2.3.4/32"),)),
    ("include-inbound-ports", {TRAFFIC + "includeInboundPorts": "9080"}, "capture.include_inbound_ports", (9080,)),
    ("exclude-inbound-ports-added", {TRAFFIC + "excludeInboundPorts": "8080"}, "capture.exclude_inbound_ports",
     (15090, 15021, 15020, 8080)),
    ("exclude-outbound-ports", {TRAFFIC + "excludeOutboundPorts": "3306,5432"}, "capture.exclude_outbound_ports",
     (3306, 5432)),
    ("include-outbound-ports", {TRAFFIC + "includeOutboundPorts": "443"}, "capture.include_outbound_ports", (443,)),
    ("dns-capture-always", {}, "capture.redirect_dns", True),
    ("proxy-cpu", {"sidecar.istio.io/proxyCPU": "250m"}, "requests", {"cpu": "250m", "memory": "128Mi"}),
    ("proxy-memory", {"sidecar.istio.io/proxyMemory": "64Mi"}, "requests", {"cpu": "100m", "memory": "64Mi"}),
    ("proxy-cpu-limit", {"sidecar.istio.io/proxyCPULimit": "1"}, "limits", {"cpu": "1", "memory": "1024Mi"}),
    ("proxy-memory-limit", {"sidecar.istio.io/proxyMemoryLimit": "2Gi"}, "limits", {"cpu": "2000m", "memory": "2Gi"}),
    ("log-level", {"sidecar.istio.io/logLevel": "debug"}, "log_level", "debug"),
    ("proxy-image", {"sidecar.istio.io/proxyImage": "localhost/other:1"}, "image", "localhost/other:1"),
    ("default-image", {}, "image", IMAGE),
    ("redirect-mode", {"sidecar.istio.io/interceptionMode": "REDIRECT"}, "capture", CaptureOptions(redirect_dns=True)),
    ("rewrite-probers-default", {}, "rewrite_probes", True),
    ("rewrite-probers-true", {"sidecar.istio.io/rewriteAppHTTPProbers": "true"}, "rewrite_probes", True),
    ("rewrite-probers-false", {"sidecar.istio.io/rewriteAppHTTPProbers": "false"}, "rewrite_probes", False),
    ("rewrite-probers-go-false", {"sidecar.istio.io/rewriteAppHTTPProbers": "0"}, "rewrite_probes", False),
    ("rewrite-probers-go-true", {"sidecar.istio.io/rewriteAppHTTPProbers": "True"}, "rewrite_probes", True),
    ("hold-application", {"proxy.istio.io/config": "holdApplicationUntilProxyStarts: true"}, "hold_application", True),
    ("proxy-config-concurrency-1", {"proxy.istio.io/config": "concurrency: 1"}, "hold_application", False),
    ("proxy-config-empty-metadata", {"proxy.istio.io/config": "proxyMetadata: {}"}, "hold_application", False),
    ("proxy-config-none-for-pilot", {"proxy.istio.io/config": "proxyMetadata: {}"}, "proxy_config", None),
    ("proxy-config-concurrency-2", {"proxy.istio.io/config": "concurrency: 2"}, "proxy_config", '{"concurrency":2}'),
    ("proxy-config-metadata", {"proxy.istio.io/config": "proxyMetadata: {LOG_FORMAT: json}\nconcurrency: 0"},
     "proxy_config", '{"concurrency":0,"proxyMetadata":{"LOG_FORMAT":"json"}}'),
    ("other-prefixes-not-ours", {"prometheus.io/scrape": "true"}, "log_level", "info"),
]  # fmt: skip


def _attribute(options: SidecarOptions, path: str) -> object:
    value: object = options
    for part in path.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(
    ("annotations", "path", "expected"), [c[1:] for c in TRANSLATED], ids=[c[0] for c in TRANSLATED]
)
def test_annotation_translated(annotations: dict[str, str], path: str, expected: object) -> None:
    assert _attribute(sidecar_options(annotations, SETTINGS), path) == expected


REFUSED = [
    # (id, annotations, message part)
    ("tproxy", {"sidecar.istio.io/interceptionMode": "TPROXY"},
     "sidecar.istio.io/interceptionMode: TPROXY is not supported by meshplane yet (REDIRECT only)"),
    ("none-mode", {"sidecar.istio.io/interceptionMode": "NONE"}, "NONE is not supported by meshplane yet"),
    ("bad-mode", {"sidecar.istio.io/interceptionMode": "redirect"}, "'redirect' is not one of REDIRECT, TPROXY, NONE"),
    ("unknown-sidecar", {"sidecar.istio.io/bootstrapOverride": "x"},
     "sidecar.istio.io/bootstrapOverride: not supported by meshplane yet (supported: sidecar.istio.io/inject,"),
    ("unknown-traffic", {TRAFFIC + "kubevirtInterfaces": "net1"}, "traffic.sidecar.istio.io/kubevirtInterfaces: not "
     "supported by meshplane yet"),
    ("status-port", {"status.sidecar.istio.io/port": "0"}, "status.sidecar.istio.io/port: not supported"),
    ("bad-port", {TRAFFIC + "includeInboundPorts": "http"}, "traffic.sidecar.istio.io/includeInboundPorts: 'http' "
     "is not a port number"),
    ("ipv6-range", {TRAFFIC + "excludeOutboundIPRanges": "fd00::/8"}, "IPv6 capture is not supported by meshplane yet"),
    ("bad-cpu", {"sidecar.istio.io/proxyCPU": "lots"}, "proxyCPU: 'lots' is not a Kubernetes quantity"),
    ("bad-log-level", {"sidecar.istio.io/logLevel": "loud"}, "sidecar.istio.io/logLevel: 'loud' is not one of trace,"),
    ("rewrite-probers-not-bool", {"sidecar.istio.io/rewriteAppHTTPProbers": "yes"},
     "sidecar.istio.io/rewriteAppHTTPProbers: expected true or false, got 'yes'"),
    ("proxy-config-concurrency", {"proxy.istio.io/config": "concurrency: -1"},
     "proxy.istio.io/config: concurrency: must be at least 0, got -1"),
    ("proxy-config-drain", {"proxy.istio.io/config": "drainDuration: 10s"},
     "proxy.istio.io/config: drainDuration: not supported by meshplane yet (honoured: concurrency,"),
    ("proxy-config-metadata", {"proxy.istio.io/config": "proxyMetadata: {ISTIO_META_DNS_CAPTURE: 'true'}"},
     "proxy.istio.io/config: proxyMetadata.ISTIO_META_DNS_CAPTURE: not supported by meshplane yet (Istio's agent"),
    ("proxy-config-metadata-not-strings", {"proxy.istio.io/config": "proxyMetadata: {A: 1}"},
     "proxy.istio.io/config: proxyMetadata: expected a mapping of strings"),
    ("proxy-config-unknown", {"proxy.istio.io/config": "drainDurations: 10s"},
     "proxy.istio.io/config: drainDurations: unknown field"),
    ("proxy-config-not-yaml", {"proxy.istio.io/config": "a: [1"}, "proxy.istio.io/config: not valid YAML at line 1"),
    ("proxy-config-not-mapping", {"proxy.istio.io/config": "- 1"}, "expected a ProxyConfig mapping"),
    ("proxy-config-hold-not-bool", {"proxy.istio.io/config": "holdApplicationUntilProxyStarts: maybe"},
     "holdApplicationUntilProxyStarts: expected true or false, got 'maybe'"),
]  # fmt: skip


@pytest.mark.parametrize(("annotations", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_annotation_refused(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(InjectionRefused) as refused:
        sidecar_options(annotations, SETTINGS)
    assert message in str(refused.value)


def test_every_problem_is_reported_at_once() -> None:
    annotations = {"sidecar.istio.io/interceptionMode": "TPROXY", "sidecar.istio.io/proxyCPU": "x"}
    annotations["proxy.istio.io/config"] = "drainDuration: 1s\nconcurrency: -4"
    with pytest.raises(InjectionRefused) as refused:
        sidecar_options(annotations, SETTINGS)
    assert len(str(refused.value).split("; ")) == 4


FLAGS = [
    ("defaults", CaptureOptions(redirect_dns=True),
     ["-p", "15001", "-z", "15006", "-u", "1337", "-g", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*",
      "-d", "15090,15021,15020", "-o", "", "-q", "", "--redirect-dns"]),
    ("lists", CaptureOptions(include_outbound_cidrs=(NET("10.0.0.0/8"), NET("1.2.3.4/32")), include_inbound_ports=(),
                             exclude_outbound_ports=(3306,), include_outbound_ports=(443, 8443)),
     ["-p", "15001", "-z", "15006", "-u", "1337", "-g", "1337", "-m", "REDIRECT", "-i", "10.0.0.0/8,1.2.3.4/32",
      "-x", "", "-b", "", "-d", "15090,15021,15020", "-o", "3306", "-q", "443,8443"]),
]  # fmt: skip


@pytest.mark.parametrize(("options", "flags"), [c[1:] for c in FLAGS], ids=[c[0] for c in FLAGS])
def test_capture_flags(options: CaptureOptions, flags: list[str]) -> None:
    assert capture_flags(options) == flags


@pytest.mark.parametrize(("options", "flags"), [c[1:] for c in FLAGS], ids=[c[0] for c in FLAGS])
def test_capture_flags_parse_back_to_the_same_options(options: CaptureOptions, flags: list[str]) -> None:
    parser = argparse.ArgumentParser()
    capture_arguments(parser)
    assert _options(parser.parse_args(["install", *flags])) == options
