"""The Sidecar resource in pods: a service of another namespace (``outsider.other``: a ServiceEntry for the plain
``outside`` server, its address a VIP of the mesh) is reached from productpage while no Sidecar applies; Istio's
namespace isolation Sidecar (``e2e/istio_docs/sidecar/mesh-default.yaml``, egress ``./*`` and ``istio-system/*``,
in productpage's namespace) with ``outboundTrafficPolicy: REGISTRY_ONLY`` makes it refused with 502 (Istio's
``block_all``) while reviews, in productpage's own namespace, still answers; a Sidecar selecting productpage
(``namespace-override.yaml`` with a workloadSelector, REGISTRY_ONLY too) beats the namespace one and lets it
through again. An egress proxy (``outboundTrafficPolicy.egressProxy``: reviews) in a Sidecar selecting productpage
takes its ALLOW_ANY traffic to the outside server (not in the registry): reviews answers it instead."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from e2e.pod_mesh import NAMESPACE, REVIEWS_PORT, REVIEWS_URL, PodMesh, pod_mesh
from e2e.pods import why_pods_cannot_run

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

DOCS = Path(__file__).resolve().parent / "istio_docs" / "sidecar"
OTHER_NAMESPACE = "other"


def _outsider(mesh: PodMesh) -> str:
    address = mesh.addresses["outside"]
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: outsider
  namespace: {OTHER_NAMESPACE}
spec:
  hosts: [outsider.{OTHER_NAMESPACE}.svc.cluster.local]
  addresses: [{address}]
  location: MESH_EXTERNAL
  ports: [{{number: {REVIEWS_PORT}, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: {address}}}]
"""


def _docs_sidecar(name: str, namespaces: dict[str, str], **spec: object) -> str:
    """The docs' YAML with our namespaces in place of theirs, and ``spec`` fields added."""
    text = (DOCS / name).read_text()
    for theirs, ours in namespaces.items():
        text = text.replace(theirs, ours)
    document = yaml.safe_load(text)
    document["spec"].update(spec)
    return yaml.safe_dump(document, sort_keys=False)


async def _statuses(mesh: PodMesh, url: str, count: int = 4) -> list[int]:
    return [response.status for response in await mesh.responses(url, count)]


async def test_namespace_sidecar_isolates_and_a_selecting_sidecar_beats_it(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path) as mesh:
        outsider_url = f"http://{mesh.addresses['outside']}:{REVIEWS_PORT}/"
        await mesh.config.apply("20-outsider", _outsider(mesh))
        await mesh.config.wait_synced()
        assert await _statuses(mesh, outsider_url) == [200] * 4  # through outsider.other's virtual host

        isolation = _docs_sidecar(
            "mesh-default.yaml", {"istio-config": NAMESPACE}, outboundTrafficPolicy={"mode": "REGISTRY_ONLY"}
        )
        await mesh.config.apply("30-sidecar", isolation)
        configz = await mesh.config.wait_synced()
        assert configz["rejected"] == [], configz["rejected"]
        assert await _statuses(mesh, outsider_url) == [502] * 4  # out of scope: block_all
        assert await _statuses(mesh, REVIEWS_URL) == [200] * 4  # ./* : reviews is in productpage's namespace

        selecting = _docs_sidecar(
            "namespace-override.yaml",
            {"prod-us1": NAMESPACE, "prod-apis": OTHER_NAMESPACE, "name: default": "name: productpage"},
            workloadSelector={"labels": {"app": "productpage"}},
            outboundTrafficPolicy={"mode": "REGISTRY_ONLY"},  # so that a 200 is the scope's, not a passthrough
        )
        await mesh.config.apply("31-sidecar-productpage", selecting)
        await mesh.config.wait_synced()
        assert await _statuses(mesh, outsider_url) == [200] * 4  # the selecting Sidecar admits other/*
        assert await _statuses(mesh, REVIEWS_URL) == [200] * 4


async def test_an_egress_proxy_takes_traffic_to_hosts_outside_the_registry(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path, versions=("v1",)) as mesh:
        outside_url = f"http://{mesh.addresses['outside']}:{REVIEWS_PORT}/"
        [answer] = await mesh.responses(outside_url)
        assert answer.body is not None and answer.body["service"] == "outside"  # ALLOW_ANY: the original destination

        egress_proxy = {"host": f"reviews.{NAMESPACE}.svc.cluster.local", "port": {"number": REVIEWS_PORT}}
        sidecar = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Sidecar",
            "metadata": {"name": "productpage", "namespace": NAMESPACE},
            "spec": {
                "workloadSelector": {"labels": {"app": "productpage"}},
                "outboundTrafficPolicy": {"mode": "ALLOW_ANY", "egressProxy": egress_proxy},
            },
        }
        await mesh.config.apply("30-sidecar", yaml.safe_dump(sidecar, sort_keys=False))
        configz = await mesh.config.wait_synced()
        assert configz["rejected"] == [], configz["rejected"]
        answers = await mesh.responses(outside_url, 4)
        assert [(a.status, a.body and a.body["service"]) for a in answers] == [(200, "reviews")] * 4
