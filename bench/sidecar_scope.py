"""Sidecar scoping benchmark: what one proxy is sent with and without a Sidecar ``egress: [{hosts: ["./*"]}]``.

    python -m bench.sidecar_scope [--namespaces 50] [--services 20] [--json]

Builds a mesh of N namespaces with M HTTP services each (a ServiceEntry with two endpoints, a DestinationRule with
two subsets, a VirtualService), and a client workload in namespace ``ns0``; generates, with the real generators, the
client's CDS, EDS, LDS, RDS and NDS resources once without any Sidecar and once with Istio's namespace isolation
Sidecar in ``ns0`` (egress ``./*``), and prints side by side, per type, the resources (clusters, load assignments
and their endpoints, listeners, route tables and their virtual hosts, names) and their serialized bytes, and the
time to generate them. The unscoped proxy is the reference: scoping should leave about 1/N of it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.message import Message

from meshplane.nds.v1.nds_pb2 import NameTable
from pilot.config.parse import parse_config_text
from pilot.generate.registry import GENERATORS
from pilot.model import MeshSnapshot, build_snapshot, parse_node_id, resolve_proxy
from xdscore.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, NAME_TABLE_TYPE, ROUTE_TYPE

__all__ = ["main", "measure", "mesh_documents"]

CLIENT_NODE = "sidecar~10.1.0.2~client.ns0~ns0.svc.cluster.local"
ISOLATION = {"egress": [{"hosts": ["./*"]}]}
TYPES = {CLUSTER_TYPE: "CDS", ENDPOINT_TYPE: "EDS", LISTENER_TYPE: "LDS", ROUTE_TYPE: "RDS", NAME_TABLE_TYPE: "NDS"}


def _doc(kind: str, name: str, namespace: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def mesh_documents(namespaces: int, services: int) -> list[dict[str, Any]]:
    """The mesh's config (see the module doc)."""
    docs: list[dict[str, Any]] = []
    for n in range(namespaces):
        ns = f"ns{n}"
        for s in range(services):
            host = f"svc{s}.{ns}.svc.cluster.local"
            docs.append(
                _doc(
                    "ServiceEntry",
                    f"svc{s}",
                    ns,
                    {
                        "hosts": [host],
                        "addresses": [f"10.{100 + n // 200}.{n % 200}.{s + 1}"],
                        "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
                        "location": "MESH_INTERNAL",
                        "resolution": "STATIC",
                        "endpoints": [
                            {"address": f"10.2{v}.{n}.{s + 1}", "labels": {"version": f"v{v}"}} for v in (1, 2)
                        ],
                    },
                )
            )
            subsets = [{"name": f"v{v}", "labels": {"version": f"v{v}"}} for v in (1, 2)]
            docs.append(_doc("DestinationRule", f"svc{s}", ns, {"host": host, "subsets": subsets}))
            route = [{"destination": {"host": host, "subset": "v1"}}]
            docs.append(_doc("VirtualService", f"svc{s}", ns, {"hosts": [host], "http": [{"route": route}]}))
    docs.append(_doc("WorkloadEntry", "client", "ns0", {"address": "10.1.0.2", "labels": {"app": "client"}}))
    return docs


def _snapshot(documents: Sequence[Mapping[str, Any]]) -> MeshSnapshot:
    parsed = parse_config_text("\n---\n".join(json.dumps(d) for d in documents), "mesh.yaml")
    if parsed.rejected:
        raise SystemExit(f"mesh rejected: {[str(e) for r in parsed.rejected for e in r.errors][:3]}")
    return build_snapshot({r.meta.key: r for r in parsed.resources}, version=1)


def _count(type_url: str, messages: Sequence[Message]) -> dict[str, int]:
    """The resources and what they hold, per type."""
    out = {"resources": len(messages)}
    if type_url == ENDPOINT_TYPE:
        assignments = [m for m in messages if isinstance(m, ClusterLoadAssignment)]
        out["endpoints"] = sum(len(g.lb_endpoints) for m in assignments for g in m.endpoints)
    elif type_url == ROUTE_TYPE:
        out["virtual_hosts"] = sum(len(m.virtual_hosts) for m in messages if isinstance(m, RouteConfiguration))
    elif type_url == NAME_TABLE_TYPE:
        out["names"] = sum(len(m.table) for m in messages if isinstance(m, NameTable))
    out["bytes"] = sum(len(m.SerializeToString(deterministic=True)) for m in messages)
    return out


def measure(snapshot: MeshSnapshot) -> dict[str, Any]:
    """The client proxy's resources per type (see ``_count``) and the seconds to generate them all."""
    proxy = resolve_proxy(parse_node_id(CLIENT_NODE, "", {"MESHPLANE_SDS": "true"}), snapshot)
    started = time.perf_counter()
    generated: dict[str, list[Message]] = {}
    for type_url, generator in GENERATORS.items():
        messages = [m for scope in generator.scopes(proxy) for m in generator.build_scope(scope, snapshot)]
        generated[type_url] = [*messages, *generator.build_proxy(proxy, snapshot)]
    seconds = time.perf_counter() - started
    return {
        "sidecar": str(proxy.sidecar) if proxy.sidecar else None,
        "generate_s": round(seconds, 3),
        **{TYPES[t]: _count(t, messages) for t, messages in generated.items() if t in TYPES},
    }


def run(namespaces: int, services: int) -> dict[str, Any]:
    documents = mesh_documents(namespaces, services)
    scoped = [*documents, _doc("Sidecar", "default", "ns0", ISOLATION)]
    return {
        "namespaces": namespaces,
        "services_per_namespace": services,
        "without_sidecar": measure(_snapshot(documents)),
        "with_sidecar": measure(_snapshot(scoped)),
    }


def report(result: Mapping[str, Any]) -> str:
    without, scoped = result["without_sidecar"], result["with_sidecar"]
    lines = [
        f"mesh: {result['namespaces']} namespaces x {result['services_per_namespace']} services; proxy client.ns0; "
        f"Sidecar ns0/default egress ./*",
        f"{'':24} {'without Sidecar':>16} {'with Sidecar':>14} {'ratio':>8}",
    ]
    for name in TYPES.values():
        for field, value in without[name].items():
            after = scoped[name][field]
            ratio = f"{after / value:.3f}" if value else "-"
            lines.append(f"{name + ' ' + field:24} {value:>16} {after:>14} {ratio:>8}")
    lines.append(f"{'generate (s)':24} {without['generate_s']:>16} {scoped['generate_s']:>14}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.sidecar_scope", description=__doc__.split("\n")[0])
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--services", type=int, default=20, help="services per namespace")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.namespaces < 1 or args.services < 1:
        print("--namespaces and --services must be at least 1", file=sys.stderr)
        return 2
    result = run(args.namespaces, args.services)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
