"""The sidecar bootstrap: fields Pilot and Envoy depend on, real ``envoy --mode validate``, and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2
from envoy.extensions.resource_monitors.downstream_connections.v3 import downstream_connections_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import json_format

from envoy_bootstrap import cli
from envoy_bootstrap.binary import find_envoy_binary
from envoy_bootstrap.bootstrap import (
    CITADEL_TRUST_SECRET,
    BootstrapError,
    XdsMode,
    bootstrap_to_json,
    build_sidecar_bootstrap,
    write_citadel_trust,
)
from envoy_bootstrap.proxy_config import LaunchSettings
from pilot.config.parse import parse_config_text
from pilot.model.build import parse_node_id
from tests.mtls_builders import write_test_pki
from tests.xds_fakes import bookinfo, serving


def _sidecar(**overrides: Any) -> bootstrap_pb2.Bootstrap:
    arguments: dict[str, Any] = {"workload": "reviews-v1", "address": "127.0.0.21"}
    arguments.update(overrides)
    return build_sidecar_bootstrap(**arguments)


@pytest.mark.parametrize(
    ("workload", "namespace", "address", "suffix", "node_id"),
    [
        (
            "reviews-v1", "default", "127.0.0.21", "cluster.local",
            "sidecar~127.0.0.21~reviews-v1.default~default.svc.cluster.local",
        ),
        (
            "productpage", "bookinfo", "127.0.2.11", "cluster.local",
            "sidecar~127.0.2.11~productpage.bookinfo~bookinfo.svc.cluster.local",
        ),
        ("ratings", "prod", "10.1.2.3", "mesh.example", "sidecar~10.1.2.3~ratings.prod~prod.svc.mesh.example"),
    ],
    ids=["demo-workload", "other-namespace", "other-domain"],
)  # fmt: skip
def test_node_is_istio_shaped_and_parses_back(
    workload: str, namespace: str, address: str, suffix: str, node_id: str
) -> None:
    node = _sidecar(workload=workload, namespace=namespace, address=address, domain_suffix=suffix).node

    assert node.id == node_id
    assert node.cluster == f"{workload}.{namespace}"
    assert node.metadata["NAMESPACE"] == namespace
    assert node.metadata["WORKLOAD_NAME"] == workload
    assert node.metadata["INSTANCE_IPS"] == address
    assert node.metadata["ISTIO_VERSION"]
    parsed = parse_node_id(node.id, node.cluster)  # the contract with Pilot
    assert (parsed.type, parsed.ip, parsed.workload_name, parsed.namespace) == ("sidecar", address, workload, namespace)
    assert parsed.dns_domain == f"{namespace}.svc.{suffix}"


@pytest.mark.parametrize(
    ("arguments", "admin"),
    [({}, ("127.0.0.1", 15000)), ({"admin_address": "127.0.0.2", "admin_port": 15099}, ("127.0.0.2", 15099))],
    ids=["pod-loopback-by-default", "given"],
)
def test_admin_listens_inside_the_pod(arguments: dict[str, Any], admin: tuple[str, int]) -> None:
    address = _sidecar(address="10.89.0.5", **arguments).admin.address.socket_address

    assert (address.address, address.port_value) == admin


def test_every_sidecar_says_redirect_and_binds_nothing() -> None:
    bootstrap = _sidecar(address="10.89.0.5", mixer="127.0.0.1:9091")

    assert bootstrap.node.metadata.fields["INTERCEPTION_MODE"].string_value == "REDIRECT"
    assert not bootstrap.HasField("cluster_manager")  # no upstream_bind_config: a pod's connections leave from its IP


def test_a_bad_admin_address_is_named() -> None:
    with pytest.raises(BootstrapError, match="admin_address: expected an IP address, got 'localhost'"):
        _sidecar(admin_address="localhost")


def _xds_cluster(bootstrap: bootstrap_pb2.Bootstrap) -> cluster_pb2.Cluster:
    (cluster,) = bootstrap.static_resources.clusters
    assert cluster.name == "xds-grpc"
    return cluster


@pytest.mark.parametrize(
    ("pilot", "cluster_type", "host", "port"),
    [
        ("127.0.0.1:15010", cluster_pb2.Cluster.STATIC, "127.0.0.1", 15010),
        ("[::1]:15012", cluster_pb2.Cluster.STATIC, "::1", 15012),
        ("istiod.istio-system.svc:15010", cluster_pb2.Cluster.STRICT_DNS, "istiod.istio-system.svc", 15010),
    ],
    ids=["ipv4", "ipv6", "dns-name"],
)
def test_xds_cluster_points_at_pilot(pilot: str, cluster_type: int, host: str, port: int) -> None:
    cluster = _xds_cluster(_sidecar(pilot=pilot))

    assert cluster.type == cluster_type
    (locality,) = cluster.load_assignment.endpoints
    (endpoint,) = locality.lb_endpoints
    assert endpoint.endpoint.address.socket_address.address == host
    assert endpoint.endpoint.address.socket_address.port_value == port


def test_xds_cluster_is_http2_with_tight_timeout_and_keepalive() -> None:
    cluster = _xds_cluster(_sidecar())

    options = http_protocol_options_pb2.HttpProtocolOptions()
    assert cluster.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].Unpack(
        options
    )
    assert options.explicit_http_config.HasField("http2_protocol_options")
    assert 0 < cluster.connect_timeout.ToMilliseconds() <= 1000
    assert cluster.upstream_connection_options.tcp_keepalive.keepalive_time.value > 0


@pytest.mark.parametrize(
    ("mode", "api_type"),
    [("sotw", config_source_pb2.ApiConfigSource.GRPC), ("delta", config_source_pb2.ApiConfigSource.DELTA_GRPC)],
    ids=["sotw", "delta"],
)
def test_ads_config(mode: XdsMode, api_type: int) -> None:
    dynamic = _sidecar(xds_mode=mode).dynamic_resources

    ads = dynamic.ads_config
    assert ads.api_type == api_type
    assert ads.transport_api_version == config_source_pb2.V3
    assert ads.set_node_on_first_message_only
    (grpc,) = ads.grpc_services
    assert grpc.envoy_grpc.cluster_name == "xds-grpc"
    for source in (dynamic.cds_config, dynamic.lds_config):
        assert source.HasField("ads")
        assert source.resource_api_version == config_source_pb2.V3


def test_reconnects_to_pilot_fast() -> None:
    back_off = _sidecar().dynamic_resources.ads_config.grpc_services[0].envoy_grpc.retry_policy.retry_back_off

    assert 100 <= back_off.base_interval.ToMilliseconds() <= 250
    assert 1000 <= back_off.max_interval.ToMilliseconds() <= 2000


def test_global_connection_limit_is_set_through_the_overload_manager() -> None:
    (monitor,) = _sidecar().overload_manager.resource_monitors

    assert monitor.name == "envoy.resource_monitors.global_downstream_max_connections"
    config = downstream_connections_pb2.DownstreamConnectionsConfig()
    assert monitor.typed_config.Unpack(config)
    assert config.max_active_downstream_connections > 0


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"workload": ""}, "workload"),
        ({"workload": "reviews.v1"}, "workload"),
        ({"namespace": "a~b"}, "namespace"),
        ({"address": "reviews"}, "address"),
        ({"pilot": "127.0.0.1"}, "pilot"),
        ({"pilot": "127.0.0.1:99999"}, "pilot"),
        ({"pilot": "::1:15010"}, "pilot"),
        ({"xds_mode": "incremental"}, "xds_mode"),
        ({"admin_port": 0}, "admin_port"),
    ],
    ids=[
        "empty-workload",
        "dotted-workload",
        "tilde-namespace",
        "address-not-ip",
        "pilot-without-port",
        "pilot-port-range",
        "pilot-ipv6-unbracketed",
        "unknown-xds-mode",
        "admin-port-zero",
    ],
)
def test_invalid_arguments_name_the_argument(overrides: dict[str, Any], argument: str) -> None:
    with pytest.raises(BootstrapError, match=f"^{argument}:"):
        _sidecar(**overrides)


def test_json_uses_envoy_field_names_and_round_trips() -> None:
    bootstrap = _sidecar(xds_mode="delta")

    text = bootstrap_to_json(bootstrap)

    assert '"set_node_on_first_message_only": true' in text
    assert json_format.Parse(text, bootstrap_pb2.Bootstrap()) == bootstrap


@pytest.mark.parametrize("mode", ["sotw", "delta"], ids=["sotw", "delta"])
def test_real_envoy_validates_the_bootstrap(tmp_path: Path, mode: XdsMode) -> None:
    path = tmp_path / "bootstrap.json"
    path.write_text(bootstrap_to_json(_sidecar(xds_mode=mode, pilot="localhost:15010")))

    result = subprocess.run(
        [find_envoy_binary(), "--mode", "validate", "-c", path, "--disable-hot-restart", "--log-level", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"configuration '{path}' OK" in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------------------- CLI


def test_cli_sidecar_writes_the_bootstrap(tmp_path: Path) -> None:
    output = tmp_path / "out" / "bootstrap.json"
    output.parent.mkdir()

    code = cli.main(
        ["sidecar", "--workload", "productpage", "--address", "127.0.0.11", "--xds-mode", "delta", "-o", str(output)]
    )

    assert code == 0
    written = json_format.Parse(output.read_text(), bootstrap_pb2.Bootstrap())
    assert written == build_sidecar_bootstrap(workload="productpage", address="127.0.0.11", xds_mode="delta")


def test_cli_sidecar_defaults_to_stdout_and_localhost(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sidecar", "--workload", "productpage"]) == 0

    document = json.loads(capsys.readouterr().out)
    assert document["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    assert document["node"]["id"] == "sidecar~127.0.0.1~productpage.default~default.svc.cluster.local"


def test_cli_reports_invalid_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sidecar", "--workload", "productpage", "--pilot", "nowhere"]) == 2

    assert "pilot: expected HOST:PORT" in capsys.readouterr().err


def _exec_without_pilot(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run`` tests about the bootstrap: no exec, and no ProxyConfig (as Pilot answers for a proxy without one)."""
    monkeypatch.setattr(os, "execve", lambda path, args, env: None)

    async def no_proxy_config(
        pilot: str, bootstrap: Path, *, default_concurrency: int, timeout: float
    ) -> LaunchSettings:
        return LaunchSettings(concurrency=default_concurrency)

    monkeypatch.setattr(cli, "fetch_launch_settings", no_proxy_config)


REVIEWS_V2_PROXY_CONFIG = """\
apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: reviews-v2, namespace: default}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  concurrency: 2
  environmentVariables: {LOG_FORMAT: json}
"""


async def test_cli_run_execs_envoy_with_the_bootstrap_and_its_proxy_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(os, "execve", lambda path, args, env: calls.append((str(path), list(args), dict(env))))
    bootstrap_file = tmp_path / "sidecar.json"
    proxy_configs = {r.meta.key: r for r in parse_config_text(REVIEWS_V2_PROXY_CONFIG, "pc.yaml").resources}

    async with serving({**bookinfo(), **proxy_configs}, debounce=0.01) as pilot:
        arguments = [
            "run", "sidecar", "--workload", "reviews-v2", "--address", "127.0.0.12",
            "--pilot", f"127.0.0.1:{pilot.port}",
            "--bootstrap-file", str(bootstrap_file), "--log-level", "debug",
            "--", "--component-log-level", "upstream:debug",
        ]  # fmt: skip
        assert await asyncio.to_thread(cli.main, arguments) == 0

    ((path, argv, env),) = calls
    assert path == str(find_envoy_binary())
    assert argv[1:] == [
        "-c", str(bootstrap_file), "--disable-hot-restart", "--concurrency", "2", "--log-level", "debug",
        "--drain-strategy", "immediate", "--drain-time-s", "5",
        "--component-log-level", "upstream:debug",
    ]  # fmt: skip
    assert env == {**os.environ, "LOG_FORMAT": "json"}
    written = json_format.Parse(bootstrap_file.read_text(), bootstrap_pb2.Bootstrap())
    assert written.node.id == "sidecar~127.0.0.12~reviews-v2.default~default.svc.cluster.local"


def test_cli_run_without_pilot_does_not_start_envoy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arguments = [
        "run", "sidecar", "--workload", "reviews-v2", "--address", "127.0.0.22", "--pilot", "127.0.0.1:1",
        "--bootstrap-file", str(tmp_path / "sidecar.json"), "--proxy-config-timeout", "0.3",
    ]  # fmt: skip
    assert cli.main(arguments) == 2
    assert "no ProxyConfig for sidecar~127.0.0.22~reviews-v2" in capsys.readouterr().err


def test_cli_envoy_arguments_only_with_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sidecar", "--workload", "productpage", "--", "--log-level", "debug"])

    assert exit_info.value.code == 2
    assert "only valid with 'run'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- Citadel (SDS)

TOKEN = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0.c2ln"  # token-shaped; must never appear in messages


@pytest.fixture
def root_pem(tmp_path: Path) -> Path:
    return write_test_pki(tmp_path)["root"]


@pytest.fixture
def trust(tmp_path: Path, root_pem: Path) -> Path:
    return write_citadel_trust(tmp_path / "citadel-trust.json", root_pem)


def _sds_cluster(bootstrap: bootstrap_pb2.Bootstrap) -> cluster_pb2.Cluster:
    xds, sds = bootstrap.static_resources.clusters
    assert (xds.name, sds.name) == ("xds-grpc", "sds-grpc")
    return sds


def test_citadel_adds_the_sds_cluster_and_node_metadata(trust: Path) -> None:
    bootstrap = _sidecar(citadel="127.0.0.1:15012", token=TOKEN, citadel_trust=trust)
    sds = _sds_cluster(bootstrap)

    assert bootstrap.node.metadata["MESHPLANE_SDS"] == "true"
    assert sds.type == cluster_pb2.Cluster.STATIC
    (locality,) = sds.load_assignment.endpoints
    address = locality.lb_endpoints[0].endpoint.address.socket_address
    assert (address.address, address.port_value) == ("127.0.0.1", 15012)
    options = http_protocol_options_pb2.HttpProtocolOptions()
    assert sds.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].Unpack(
        options
    )
    assert options.explicit_http_config.HasField("http2_protocol_options")
    assert [f.name for f in options.http_filters] == [
        "envoy.filters.http.header_mutation",
        "envoy.filters.http.upstream_codec",  # the terminal upstream filter, required last
    ]
    mutation = header_mutation_pb2.HeaderMutation()
    assert options.http_filters[0].typed_config.Unpack(mutation)
    (header,) = mutation.mutations.request_mutations
    assert (header.append.header.key, header.append.header.value) == ("authorization", f"Bearer {TOKEN}")
    assert header.append.append_action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def test_sds_cluster_verifies_citadel_by_name_and_root(trust: Path, root_pem: Path) -> None:
    sds = _sds_cluster(_sidecar(citadel="citadel.istio-system.svc:15012", token=TOKEN, citadel_trust=trust))

    assert sds.type == cluster_pb2.Cluster.STRICT_DNS
    assert sds.transport_socket.name == "envoy.transport_sockets.tls"
    tls = tls_pb2.UpstreamTlsContext()
    assert sds.transport_socket.typed_config.Unpack(tls)
    assert tls.sni == "citadel.istio-system.svc"
    combined = tls.common_tls_context.combined_validation_context
    validation = combined.default_validation_context
    # The roots come through a file-based SDS secret naming the bundle by file: Envoy reloads the bundle when
    # Citadel rewrites it during a root rotation (inline bytes or a static cluster's file are read once).
    assert combined.validation_context_sds_secret_config.name == CITADEL_TRUST_SECRET
    assert combined.validation_context_sds_secret_config.sds_config.path_config_source.path == str(trust.resolve())
    (secret,) = json.loads(trust.read_text())["resources"]
    assert secret["name"] == CITADEL_TRUST_SECRET
    assert secret["validation_context"] == {"trusted_ca": {"filename": str(root_pem.resolve())}}
    (san,) = validation.match_typed_subject_alt_names
    assert (san.san_type, san.matcher.exact) == (common_pb2.SubjectAltNameMatcher.DNS, "citadel.istio-system.svc")
    assert list(tls.common_tls_context.alpn_protocols) == ["h2"]


def test_without_citadel_there_is_no_sds() -> None:
    bootstrap = _sidecar()
    assert "MESHPLANE_SDS" not in bootstrap.node.metadata
    assert [c.name for c in bootstrap.static_resources.clusters] == ["xds-grpc"]


@pytest.mark.parametrize(
    ("given", "first_missing"),
    [
        ({"citadel": "127.0.0.1:15012"}, "token"),
        ({"token": TOKEN}, "citadel"),
        ({"citadel": "x:1", "token": TOKEN}, "citadel_trust"),
    ],
    ids=["citadel-only", "token-only", "no-root"],
)
def test_citadel_arguments_go_together(given: dict[str, Any], first_missing: str) -> None:
    with pytest.raises(BootstrapError, match=f"^{first_missing}: citadel, token and citadel_trust go together"):
        _sidecar(**given)


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"token": "two words"}, "token"),
        ({"token": "line\nbreak"}, "token"),
        ({"citadel_trust": Path("/nonexistent/citadel-trust.json")}, "citadel_trust"),
        ({"citadel": "127.0.0.1"}, "citadel"),
    ],
    ids=["token-space", "token-newline", "trust-missing", "citadel-without-port"],
)
def test_invalid_citadel_arguments_name_the_argument(trust: Path, overrides: dict[str, Any], argument: str) -> None:
    arguments: dict[str, Any] = {"citadel": "127.0.0.1:15012", "token": TOKEN, "citadel_trust": trust}
    with pytest.raises(BootstrapError, match=f"^{argument}:") as error:
        _sidecar(**{**arguments, **overrides})
    assert "words" not in str(error.value) and "break" not in str(error.value)  # a token is never echoed


@pytest.mark.parametrize("mode", ["sotw", "delta"], ids=["sotw", "delta"])
def test_real_envoy_validates_the_bootstrap_with_citadel(tmp_path: Path, trust: Path, mode: XdsMode) -> None:
    path = tmp_path / "bootstrap.json"
    bootstrap = _sidecar(xds_mode=mode, citadel="localhost:15012", token=TOKEN, citadel_trust=trust)
    path.write_text(bootstrap_to_json(bootstrap))

    result = subprocess.run(
        [find_envoy_binary(), "--mode", "validate", "-c", path, "--disable-hot-restart", "--log-level", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert TOKEN not in result.stdout + result.stderr


def _citadel_files(tmp_path: Path, root_pem: Path) -> list[str]:
    (tmp_path / "token").write_text(TOKEN + "\n")  # as `citadel token > token` writes it
    token, root = str(tmp_path / "token"), str(root_pem)
    return ["--citadel", "127.0.0.1:15012", "--token-file", token, "--root-cert", root]


def test_cli_citadel_reads_the_files_and_writes_0600(tmp_path: Path, root_pem: Path) -> None:
    output = tmp_path / "bootstrap.json"

    code = cli.main(["sidecar", "--workload", "reviews-v1", "-o", str(output), *_citadel_files(tmp_path, root_pem)])
    trust = tmp_path / "bootstrap.citadel-trust.json"  # beside the bootstrap

    assert code == 0
    assert output.stat().st_mode & 0o777 == 0o600
    written = json_format.Parse(output.read_text(), bootstrap_pb2.Bootstrap())
    assert written == build_sidecar_bootstrap(
        workload="reviews-v1", address="127.0.0.1", citadel="127.0.0.1:15012", token=TOKEN, citadel_trust=trust
    )


@pytest.mark.parametrize("dropped", ["--citadel", "--token-file", "--root-cert"])
def test_cli_citadel_flags_go_together(
    tmp_path: Path, root_pem: Path, dropped: str, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = _citadel_files(tmp_path, root_pem)
    index = arguments.index(dropped)
    del arguments[index : index + 2]

    assert cli.main(["sidecar", "--workload", "reviews-v1", *arguments]) == 2

    err = capsys.readouterr().err
    assert f"{dropped}: --citadel, --token-file and --root-cert go together" in err
    assert TOKEN not in err


def test_cli_run_never_prints_the_token(
    tmp_path: Path, root_pem: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _exec_without_pilot(monkeypatch)
    bootstrap_file = tmp_path / "sidecar.json"

    citadel = _citadel_files(tmp_path, root_pem)
    cli.main(["run", "sidecar", "--workload", "reviews-v1", "--bootstrap-file", str(bootstrap_file), *citadel])

    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    assert bootstrap_file.stat().st_mode & 0o777 == 0o600
    assert TOKEN in bootstrap_file.read_text()  # Envoy has to send it: the bootstrap is the secret


def test_cli_help_says_the_bootstrap_holds_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["sidecar", "--help"])
    assert "token ends up inside the bootstrap" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("root_cert", "message"),
    [(Path(__file__), "is not a PEM certificate bundle"), (Path("/nonexistent/bundle.pem"), "cannot read")],
    ids=["not-pem", "missing"],
)
def test_the_trust_document_needs_a_readable_pem_bundle(tmp_path: Path, root_cert: Path, message: str) -> None:
    with pytest.raises(BootstrapError, match=f"^root_cert: .*{message}"):
        write_citadel_trust(tmp_path / "citadel-trust.json", root_cert)
    assert not (tmp_path / "citadel-trust.json").exists()


def test_the_default_bootstrap_directory_must_be_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory another user created first, or left open, would receive the workload's token."""
    monkeypatch.setattr(os, "execv", lambda path, args: None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    shared = tmp_path / f"envoy-bootstrap-{os.getuid()}"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)

    code = cli.main(["run", "sidecar", "--workload", "reviews-v1"])

    assert code == 2
    assert "is not a private directory" in capsys.readouterr().err
    assert list(shared.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------- Mixer

MIXER_ADDRESS = "127.0.0.1:9091"


def _mixer_cluster(bootstrap: bootstrap_pb2.Bootstrap) -> cluster_pb2.Cluster:
    (mixer,) = [c for c in bootstrap.static_resources.clusters if c.name == "mixer"]
    return mixer


@pytest.mark.parametrize(
    ("address", "cluster_type"),
    [
        ("127.0.0.1:9091", cluster_pb2.Cluster.STATIC),
        ("mixer.istio-system:9091", cluster_pb2.Cluster.STRICT_DNS),
    ],
    ids=["ip", "name"],
)
def test_mixer_adds_its_cluster_and_node_metadata(address: str, cluster_type: int) -> None:
    bootstrap = _sidecar(mixer=address)

    assert bootstrap.node.metadata["MESHPLANE_MIXER"] == "true"
    assert "MESHPLANE_SDS" not in bootstrap.node.metadata
    assert [c.name for c in bootstrap.static_resources.clusters] == ["xds-grpc", "mixer"]
    mixer = _mixer_cluster(bootstrap)
    assert mixer.type == cluster_type
    (locality,) = mixer.load_assignment.endpoints
    endpoint = locality.lb_endpoints[0].endpoint.address.socket_address
    assert (endpoint.address, endpoint.port_value) == (address.split(":")[0], 9091)
    assert mixer.connect_timeout.ToMilliseconds() == 1000
    options = http_protocol_options_pb2.HttpProtocolOptions()
    assert mixer.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].Unpack(
        options
    )
    assert options.explicit_http_config.HasField("http2_protocol_options")  # gRPC
    assert not mixer.HasField("transport_socket")


def test_without_mixer_the_bootstrap_is_unchanged() -> None:
    bootstrap = _sidecar()

    assert "MESHPLANE_MIXER" not in bootstrap.node.metadata
    assert not bootstrap.HasField("cluster_manager")
    assert bootstrap == _sidecar(mixer=None)
    with_mixer = _sidecar(mixer=MIXER_ADDRESS)
    with_mixer.static_resources.clusters.pop()
    del with_mixer.node.metadata["MESHPLANE_MIXER"]
    assert with_mixer == bootstrap  # --mixer adds exactly the cluster and the metadata


def test_mixer_and_citadel_together(trust: Path) -> None:
    bootstrap = _sidecar(mixer=MIXER_ADDRESS, citadel="127.0.0.1:15012", token=TOKEN, citadel_trust=trust)

    assert [c.name for c in bootstrap.static_resources.clusters] == ["xds-grpc", "sds-grpc", "mixer"]
    assert (bootstrap.node.metadata["MESHPLANE_SDS"], bootstrap.node.metadata["MESHPLANE_MIXER"]) == ("true", "true")


@pytest.mark.parametrize("mixer", ["127.0.0.1:9091", "localhost:9091"])
def test_real_envoy_validates_the_bootstrap_with_mixer(tmp_path: Path, trust: Path, mixer: str) -> None:
    path = tmp_path / "bootstrap.json"
    bootstrap = _sidecar(mixer=mixer, citadel="localhost:15012", token=TOKEN, citadel_trust=trust)
    path.write_text(bootstrap_to_json(bootstrap))

    result = subprocess.run(
        [find_envoy_binary(), "--mode", "validate", "-c", path, "--disable-hot-restart", "--log-level", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("command", [["sidecar"], ["run", "sidecar"]], ids=["sidecar", "run"])
def test_cli_mixer_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    _exec_without_pilot(monkeypatch)
    output = tmp_path / "bootstrap.json"
    where = ["-o", str(output)] if command == ["sidecar"] else ["--bootstrap-file", str(output)]

    code = cli.main(
        [*command, "--workload", "reviews-v1", "--address", "127.0.0.21", "--mixer", "127.0.0.1:9091", *where]
    )

    assert code == 0
    written = json_format.Parse(output.read_text(), bootstrap_pb2.Bootstrap())
    assert written == build_sidecar_bootstrap(workload="reviews-v1", address="127.0.0.21", mixer=MIXER_ADDRESS)


def test_cli_rejects_a_bad_mixer_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sidecar", "--workload", "reviews-v1", "--mixer", "nowhere"]) == 2

    assert "--mixer: expected HOST:PORT" in capsys.readouterr().err
