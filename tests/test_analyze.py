"""``meshplane analyze``: what Pilot would reject, skip, or serve to no effect, found offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.cli import main as meshplane
from e2e.mesh_config import DEMO_MESH_FILE, DEMO_ROUTE_FILES, demo_pod_addresses
from pilot.analyze import Finding, analyze_directory, format_finding

REVIEWS_V1_IP = demo_pod_addresses()["reviews-v1"]
BAD_RULES = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v2}
      weigth: 20
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http: [{route: [{destination: {host: ratings}}]}]
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: edge}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: squatter, namespace: default}
spec: {address: REVIEWS_V1_IP}
""".replace("REVIEWS_V1_IP", REVIEWS_V1_IP)  # reviews-v1's pod IP in DEMO_MESH_FILE


def codes(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.level, f.code, f.resource) for f in findings]


async def test_the_demo_config_is_clean_but_for_the_client_only_workload(tmp_path: Path) -> None:
    for source in (DEMO_MESH_FILE, *DEMO_ROUTE_FILES[:1]):
        (tmp_path / source.name).write_text(source.read_text())

    findings = await analyze_directory(tmp_path)

    assert codes(findings) == [("Info", "MP0203", "WorkloadEntry default/productpage")]


async def test_rejections_skips_and_mesh_problems_are_reported_with_their_place(tmp_path: Path) -> None:
    (tmp_path / "mesh.yaml").write_text(DEMO_MESH_FILE.read_text())
    (tmp_path / "rules.yaml").write_text(BAD_RULES)

    findings = await analyze_directory(tmp_path)
    by_code = {f.code: f for f in findings}

    errors = [f for f in findings if f.code == "MP0101"]
    assert {(f.location, f.message.split(":")[0]) for f in errors} == {
        (f"{tmp_path / 'rules.yaml'}:7", "spec.http[0].route"),
        (f"{tmp_path / 'rules.yaml'}:11", "spec.http[0].route[1].weigth"),
    }
    assert "did you mean 'weight'" in format_finding(next(f for f in errors if "weigth" in f.message))
    assert "WasmPlugin" in by_code["MP0102"].message
    assert by_code["MP0201"].resource == "VirtualService default/ratings"
    assert REVIEWS_V1_IP in by_code["MP0205"].message and "squatter" in by_code["MP0205"].message


def test_cli_exit_code_says_whether_there_are_errors(tmp_path: Path, capsys: object) -> None:
    clean, broken = tmp_path / "clean", tmp_path / "broken"
    clean.mkdir()
    broken.mkdir()
    (clean / "mesh.yaml").write_text(DEMO_MESH_FILE.read_text())
    (broken / "rules.yaml").write_text(BAD_RULES)

    assert meshplane(["analyze", str(clean)]) == 0
    assert meshplane(["analyze", str(broken)]) == 1
    assert meshplane(["analyze", str(tmp_path / "missing")]) == 2


TCP_SERVICE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  ports:
  - {number: 5432, name: tcp-postgres, protocol: TCP}
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: https, protocol: HTTPS}
  resolution: DNS
"""


TCP_ROUTES = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  ports: [{number: 5432, name: tcp, protocol: TCP}, {number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db]
  tcp: [{route: [{destination: {host: db, port: {number: 5432}}}]}]
  tls: [{match: [{sniHosts: [db]}], route: [{destination: {host: db, port: {number: 443}}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db-tls, namespace: other}
spec:
  hosts: [db.default.svc.cluster.local]
  tls: [{match: [{sniHosts: [db.default.svc.cluster.local]}], route: [{destination: {host: db, port: {number: 443}}}]}]
"""


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("non-http-ports", TCP_SERVICE),
        ("tcp-and-tls-routes", TCP_ROUTES),
        ("app-port-is-service-port", DEMO_MESH_FILE.read_text()),  # no `ports` map: every app on its service port
    ],
    ids=["non-http-ports", "tcp-and-tls-routes", "app-port-is-service-port"],
)
async def test_what_only_the_loopback_sidecar_could_not_do_is_no_finding(tmp_path: Path, name: str, text: str) -> None:
    """Every sidecar is a pod's (Istio's listeners): TCP ports and tcp/tls routes reach it, and the app may listen
    on the service port (MP0204, MP0207 and MP0213 are gone, their numbers unused)."""
    (tmp_path / f"{name}.yaml").write_text(text)

    findings = await analyze_directory(tmp_path)

    assert [f"{f.code} {f.message}" for f in findings if f.code in ("MP0204", "MP0207", "MP0213")] == []
    # the TCP_ROUTES VirtualServices overlap on purpose: two with tls routes for one host are a conflict (MP0101)
    assert {f.code for f in findings} <= {"MP0101", "MP0203"}


PUSH_TIME_CONFLICTS = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  ports: [{number: 15001, name: http, protocol: HTTP, targetPort: 8080}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web-grpc, namespace: default}
spec:
  hosts: [web-grpc.default.svc.cluster.local]
  ports: [{number: 15001, name: grpc, protocol: GRPC, targetPort: 8081}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: default}
spec: {address: 127.0.0.40, labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec: {hosts: [web], http: [{route: [{destination: {host: web}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: default}
spec: {hosts: [web], http: [{route: [{destination: {host: web}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: other}
spec:
  hosts: [web.default.svc.cluster.local]
  exportTo: ["."]
  http: [{route: [{destination: {host: web.default.svc.cluster.local}}]}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: a, namespace: default}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: b, namespace: default}
spec: {mtls: {mode: DISABLE}}
"""


async def test_what_pilot_would_leave_out_at_push_time_is_reported(tmp_path: Path) -> None:
    """Each conflict that takes several resources (so validation of one cannot see it) and that generation resolves
    by leaving something out, with a log line, is an analyze finding."""
    (tmp_path / "mesh.yaml").write_text(PUSH_TIME_CONFLICTS)

    findings = await analyze_directory(tmp_path)

    assert sorted((f.level, f.code, f.resource) for f in findings if f.code >= "MP0208") == [
        ("Error", "MP0208", "WorkloadEntry default/web-1"),
        ("Error", "MP0208", "WorkloadEntry default/web-1"),
        ("Error", "MP0209", "WorkloadEntry default/web-1"),
        ("Warning", "MP0211", "PeerAuthentication default/b"),
    ]


EXT_AUTHZ_MESH = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-authz, namespace: foo}
spec:
  hosts: [ext-authz.foo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: ext-authz}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ext-authz, namespace: foo}
spec: {address: 10.1.0.2, labels: {app: ext-authz}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: foo}
spec:
  hosts: [httpbin.foo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: httpbin}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin, namespace: foo}
spec: {address: 10.1.0.3, labels: {app: httpbin}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: CUSTOM
  provider: {name: PROVIDER}
  rules: [{to: [{operation: {paths: [/headers]}}]}]
"""
PROVIDERS = """\
extensionProviders:
- name: "sample-ext-authz-http"
  envoyExtAuthzHttp:
    service: "ext-authz.foo.svc.cluster.local"
    port: "8000"
"""


@pytest.mark.parametrize(
    ("provider", "mesh_config", "expected"),
    [
        ("sample-ext-authz-http", PROVIDERS, []),
        ("mixer", None, []),
        (
            "sample-ext-authz-grpc",
            PROVIDERS,
            [
                "Warning [MP0219] (AuthorizationPolicy foo/ext-authz rules.yaml:31) CUSTOM provider "
                "'sample-ext-authz-grpc' cannot be called for WorkloadEntry foo/httpbin: extension provider "
                "sample-ext-authz-grpc not found, available providers are ['sample-ext-authz-http']; the policy fails "
                "closed (what it would send to the provider is denied)"
            ],
        ),
        (
            "sample-ext-authz-http",
            PROVIDERS.replace('"8000"', '"9000"'),
            [
                "Warning [MP0219] (AuthorizationPolicy foo/ext-authz rules.yaml:31) CUSTOM provider "
                "'sample-ext-authz-http' cannot be called for WorkloadEntry foo/httpbin: service "
                "ext-authz.foo.svc.cluster.local has no port 9000; the policy fails closed (what it would send to the "
                "provider is denied)"
            ],
        ),
        (
            "sample-ext-authz-http",
            "extensionProviders: [{name: x, envoyExtAuthzHttp: {service: a.b, port: 0}}]\n",
            [
                "Error [MP0103] (MeshConfig mesh.yaml:1) extensionProviders[0].envoyExtAuthzHttp.port: port must be in "
                "the range [1, 65535], found: 0",
                "Warning [MP0219] (AuthorizationPolicy foo/ext-authz rules.yaml:31) CUSTOM provider "
                "'sample-ext-authz-http' cannot be called for WorkloadEntry foo/httpbin: extension provider "
                "sample-ext-authz-http not found, available providers are []; the policy fails closed (what it would "
                "send to the provider is denied)",
            ],
        ),
    ],
    ids=["provider-in-mesh-config", "mixer", "provider-not-in-mesh-config", "provider-port-not-served", "bad-mesh"],
)
async def test_custom_providers_are_checked_against_the_mesh_config(
    tmp_path: Path, provider: str, mesh_config: str | None, expected: list[str]
) -> None:
    (tmp_path / "rules.yaml").write_text(EXT_AUTHZ_MESH.replace("PROVIDER", provider))
    mesh_file = None
    if mesh_config is not None:
        mesh_file = tmp_path / "mesh.yaml"  # inside the directory: read as the mesh config, not as resources
        mesh_file.write_text(mesh_config)
    findings = await analyze_directory(tmp_path, mesh_file)
    formatted = [format_finding(f).replace(f"{tmp_path}/", "") for f in findings if f.code != "MP0203"]
    assert formatted == expected


TELEMETRY = """\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging:
  - providers: [{name: LOG}]
  tracing:
  - providers: [{name: TRACE}]
"""
TRACING_MESH = """\
extensionProviders:
- name: otel
  opentelemetry: {service: otel-collector.observability.svc.cluster.local, port: 4317}
"""
COLLECTOR = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: collector, namespace: observability}
spec:
  hosts: [otel-collector.observability.svc.cluster.local]
  ports: [{number: 4317, name: grpc, protocol: GRPC}]
  resolution: DNS
"""
MP0217 = "Warning [MP0217] (Telemetry istio-system/mesh-default telemetry.yaml:1) "


@pytest.mark.parametrize(
    ("log", "trace", "collector", "expected"),
    [
        ("envoy", "otel", True, []),
        (
            "nobody",
            "envoy",
            True,
            [
                f"{MP0217}access log provider 'nobody' is not an extensionProviders entry of the mesh config: it "
                "configures nothing",
                f"{MP0217}tracing provider 'envoy' is a envoyFileAccessLog provider, not opentelemetry or zipkin: it "
                "configures nothing",
            ],
        ),
        (
            "otel",
            "otel",
            False,
            [
                f"{MP0217}access log provider 'otel' is a opentelemetry provider, not envoyFileAccessLog: it "
                "configures nothing",
                f"{MP0217}tracing provider 'otel': could not find service otel-collector.observability.svc.cluster."
                "local in the service registry: it configures nothing",
            ],
        ),
    ],
    ids=["usable", "unknown-and-wrong-type", "no-collector-service"],
)
async def test_telemetry_providers_are_checked_against_the_mesh_config(
    tmp_path: Path, log: str, trace: str, collector: bool, expected: list[str]
) -> None:
    (tmp_path / "telemetry.yaml").write_text(TELEMETRY.replace("LOG", log).replace("TRACE", trace))
    if collector:
        (tmp_path / "collector.yaml").write_text(COLLECTOR)
    (tmp_path / "mesh.yaml").write_text(TRACING_MESH)
    findings = await analyze_directory(tmp_path, tmp_path / "mesh.yaml")
    assert [format_finding(f).replace(f"{tmp_path}/", "") for f in findings if f.code == "MP0217"] == expected


async def test_only_the_first_namespace_wide_telemetry_applies(tmp_path: Path) -> None:
    second = TELEMETRY.replace("LOG", "envoy").replace("  tracing:\n  - providers: [{name: TRACE}]\n", "")
    (tmp_path / "a.yaml").write_text(second)
    (tmp_path / "b.yaml").write_text(second.replace("name: mesh-default", "name: another"))
    (tmp_path / "c.yaml").write_text(
        second.replace("name: mesh-default", "name: selected").replace(
            "spec:\n", "spec:\n  selector: {matchLabels: {app: a}}\n"
        )
    )
    findings = await analyze_directory(tmp_path)
    assert [format_finding(f).replace(f"{tmp_path}/", "") for f in findings if f.code == "MP0218"] == [
        "Warning [MP0218] (Telemetry istio-system/mesh-default a.yaml:1) namespace istio-system has several "
        "Telemetries without a selector: only 'another' (the first by name) applies, this one does nothing"
    ]
