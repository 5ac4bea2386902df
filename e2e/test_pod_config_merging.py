"""Config that Pilot merges, through real Envoy sidecars in pods (one world of pods per module, ``pods`` in
e2e/conftest.py: reviews v1, v2 and v3, reset after each test), for an unmodified app (plain ``urllib`` in the
productpage pod) calling reviews by name:

- VirtualService ``delegate`` (Istio 1.6+): Istio's reference example (``e2e/istio_docs/virtualservice-delegate/``,
  what was changed says its header), then a delegate edited while the root stays as it is;
- several VirtualServices for one host merged on the sidecar, and a conflicting one rejected naming the other
  (Pilot's ``/debug/configz`` and ``meshplane analyze``) while traffic stays as it was;
- two ServiceEntries for one host with different ports: both ports served."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from e2e.conftest import POD_WORLD_LOOP
from e2e.pod_mesh import NAMESPACE, REVIEWS_URL, PodMesh
from e2e.pods import why_pods_cannot_run
from e2e.traffic import MeshResponse, count_by
from pilot.analyze import analyze_directory, format_finding

pytestmark = [pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run())), POD_WORLD_LOOP]

BASE = REVIEWS_URL.rstrip("/")
DELEGATE_DOCS = Path(__file__).parent / "istio_docs" / "virtualservice-delegate"
VERSIONS = ("reviews-v1", "reviews-v2", "reviews-v3")


async def _apply_delegate_example(pods: PodMesh, delegates: str | None = None) -> None:
    """The docs' files, each as a file of its own in Pilot's config directory; ``delegates``: another text for
    delegates.yaml."""
    for path in sorted(DELEGATE_DOCS.glob("*.yaml")):
        text = delegates if delegates is not None and path.name == "delegates.yaml" else path.read_text()
        await pods.config.apply(f"delegate-{path.stem}", text)
    configz = await pods.config.wait_synced()
    assert not configz["rejected"], configz["rejected"]


async def _envoy_404(pods: PodMesh, path: str) -> MeshResponse:
    """A request for a fresh ``path`` (under ``path``) that must be Envoy's own 404: no app counted it."""
    fresh = f"{path}{uuid.uuid4().hex}"
    response = await pods.request(BASE + fresh)
    assert (response.status, response.body) == (404, None), (fresh, response.status, response.text)
    for pod in VERSIONS:
        assert await pods.app_requests(pod, fresh) == 0, (pod, fresh)
    return response


async def test_delegates_route_the_requests_their_roots_match(pods: PodMesh) -> None:
    """Istio's example: /productpage/v1/ to the productpage delegate's first route (v1), the rest of /productpage
    to its catch-all (v2), /reviews to the reviews delegate (v3); a path the root does not match: Envoy's 404."""
    await _apply_delegate_example(pods)
    cases = [("/productpage/v1/books", "v1"), ("/productpage", "v2"), ("/productpage/v2/x", "v2"), ("/reviews/1", "v3")]

    seen = [(await pods.request(BASE + path)).version for path, _ in cases]

    assert seen == [version for _, version in cases]
    await _envoy_404(pods, "/ratings/")


EDITED_REVIEWS_DELEGATE = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: nsb
spec:
  http:
  - match:
    - uri:
        prefix: "/reviews/v1/"
    route:
    - destination:
        host: productpage-v1.nsa.svc.cluster.local
"""


async def test_an_edited_delegate_changes_the_roots_routing_with_the_root_untouched(pods: PodMesh) -> None:
    """The reviews delegate replaced by one route for /reviews/v1/ only: that prefix goes where the new route says
    (v1), and the rest of /reviews, which the root still matches, gets Envoy's 404 (no delegate route takes it)."""
    await _apply_delegate_example(pods)
    root = pods.config.config_dir / "delegate-bookinfo.yaml"
    root_before = (root.read_text(), root.stat().st_mtime_ns)
    assert (await pods.request(BASE + "/reviews/v1/a")).version == "v3"
    original = (DELEGATE_DOCS / "delegates.yaml").read_text()
    productpage_only = original.split("\n---\n")[0]

    await _apply_delegate_example(pods, f"{productpage_only}\n---\n{EDITED_REVIEWS_DELEGATE}")

    assert (root.read_text(), root.stat().st_mtime_ns) == root_before
    assert [r.version for r in await pods.responses(BASE + "/reviews/v1/a", 5)] == ["v1"] * 5
    await _envoy_404(pods, "/reviews/other/")
    assert (await pods.request(BASE + "/productpage")).version == "v2", "the other delegate is as it was"


def _virtual_service(name: str, http: str) -> str:
    return (
        f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n"
        f"  namespace: {NAMESPACE}\nspec:\n  hosts: [reviews]\n  http:\n{http}"
    )


JASON_ROUTE = """\
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination: {host: reviews, subset: %s}
"""
JASON_TO_V2 = _virtual_service("reviews-jason", JASON_ROUTE % "v2")
EVERYONE_TO_V1 = _virtual_service("reviews-rest", "  - route:\n    - destination: {host: reviews, subset: v1}\n")
JASON_TO_V3 = _virtual_service("reviews-jason-copy", JASON_ROUTE % "v3")  # the same match as reviews-jason's


async def _two_virtual_services(pods: PodMesh) -> None:
    await pods.config.apply("reviews-jason", JASON_TO_V2)
    await pods.config.apply("reviews-rest", EVERYONE_TO_V1)
    configz = await pods.config.wait_synced()
    assert not configz["rejected"], configz["rejected"]


async def test_two_virtual_services_for_one_host_both_route_on_the_sidecar(pods: PodMesh) -> None:
    """A header route in one VirtualService, a catch-all in another, same host: the sidecar's route table has
    both (Istio would use only the oldest on a sidecar)."""
    await _two_virtual_services(pods)

    as_jason = await pods.responses(REVIEWS_URL, 10, headers={"end-user": "jason"})
    anonymous = await pods.responses(REVIEWS_URL, 10)

    assert count_by(as_jason) == {"v2": 10}
    assert count_by(anonymous) == {"v1": 10}


async def test_a_conflicting_virtual_service_is_rejected_naming_the_other_and_traffic_stays(pods: PodMesh) -> None:
    """A third VirtualService with reviews-jason's very match: rejected (Pilot and ``meshplane analyze`` name both
    VirtualServices and the field), and jason's requests still go to v2."""
    await _two_virtual_services(pods)

    await pods.config.apply("reviews-jason-copy", JASON_TO_V3)
    configz = await pods.config.wait_synced()
    findings = [format_finding(f) for f in await analyze_directory(pods.config.config_dir) if f.level == "Error"]

    [rejected] = configz["rejected"]
    assert (rejected["kind"], rejected["namespace"], rejected["name"]) == (
        "VirtualService",
        NAMESPACE,
        "reviews-jason-copy",
    )
    errors = " ".join(rejected["errors"])
    assert f"conflicts with VirtualService {NAMESPACE}/reviews-jason (" in errors, errors
    assert "spec.http[0].match[0]" in errors and "reviews.default.svc.cluster.local" in errors, errors
    [finding] = findings
    assert f"VirtualService {NAMESPACE}/reviews-jason-copy" in finding, finding
    assert f"conflicts with VirtualService {NAMESPACE}/reviews-jason (" in finding, finding
    assert count_by(await pods.responses(REVIEWS_URL, 10, headers={"end-user": "jason"})) == {"v2": 10}
    assert count_by(await pods.responses(REVIEWS_URL, 10)) == {"v1": 10}


ADMIN_PORT = 9081
ADMIN_PORT_ENTRY = f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews-admin
  namespace: {NAMESPACE}
spec:
  hosts: [reviews.{NAMESPACE}.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: {ADMIN_PORT}, name: http-admin, protocol: HTTP, targetPort: 9080}}]
  resolution: STATIC
  workloadSelector:
    labels: {{app: reviews}}
"""


async def test_two_service_entries_for_one_host_serve_both_ports(pods: PodMesh) -> None:
    """The registry's ServiceEntry (reviews:9080) and a second one for the same host on 9081 (to the apps' 9080):
    one service with both ports, each reached through the sidecar."""
    admin_url = f"http://reviews:{ADMIN_PORT}/"
    assert {r.status for r in await pods.responses(admin_url, 2)} != {200}, "9081 served before the second entry"

    await pods.config.apply("reviews-admin", ADMIN_PORT_ENTRY)
    configz = await pods.config.wait_synced()

    assert not configz["rejected"], configz["rejected"]
    admin = await pods.responses(admin_url, 12)
    main = await pods.responses(REVIEWS_URL, 12)
    assert [r.status for r in admin] == [200] * 12, [r.text for r in admin]
    assert set(count_by(admin)) == {"v1", "v2", "v3"}, count_by(admin)
    assert [r.status for r in main] == [200] * 12
