"""Fixtures for end-to-end scenarios: real Pilot, real Envoy sidecars, sample apps, all on loopback.

- ``mesh``: a factory; ``await mesh()`` starts a ``LocalMesh`` (Pilot running, no workloads) on a fresh
  ``127.x.y`` subnet under the test's ``tmp_path``; ``await mesh(xds_mode="delta")`` for delta xDS.
- ``demo_mesh``: the demo topology ready for traffic (``e2e/demo_config/00-reviews-mesh.yaml`` applied, productpage
  and reviews-v1/v2/v3 with sidecars, all synced), no VirtualService yet.
- ``mtls_mesh``: the demo topology with Citadel; ``mixer_mesh``: with Mixer (and Citadel on request), routed to v1.
- ``pods``: a world of pods (``e2e.pod_mesh``: Pilot, reviews v1/v2/v3, productpage, ...) shared by the tests of one
  module (worlds take ~10 s to start), reset after each test (every rule a test applied removed, all sidecars
  synced); ``delta_pods``: the same with delta xDS; ``any_mode_pods``: the test once with each. Their tests run on
  the module's event loop: mark the module with ``POD_WORLD_LOOP`` (``pytestmark``).

Every mesh is stopped at teardown; when the test failed, the tail of every process log is printed (pytest shows
it under "Captured stderr teardown"), and the full logs stay in ``tmp_path``. Every test under ``e2e/`` gets the
``e2e`` marker. Nothing is skipped: a missing Envoy binary or Pilot is an error. After the session, nothing may be
left of the pods and pod networks the session used (``e2e.pods.session_leftovers``).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from e2e.harness import DemoMeshFactory, LocalMesh, MeshFactory, find_free_subnet
from e2e.mesh_config import DEMO_WORKLOADS, render_demo_mesh
from e2e.pod_mesh import PodMesh, pod_mesh
from e2e.pods import session_leftovers
from e2e.rules import weighted_reviews
from envoy_bootstrap.binary import find_envoy_binary
from envoy_bootstrap.bootstrap import XdsMode

_E2E_DIR = Path(__file__).parent
_FAILED = pytest.StashKey[bool]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(scope="session", autouse=True)
def nothing_left_after_the_session() -> Iterator[None]:
    """After the whole session: nothing left of any pod state directory or pod network the session's tests used
    (found by their names' prefixes, so a pod no test recorded counts too; other runs' pods do not)."""
    yield
    found = session_leftovers()
    assert found == [], f"left on the machine after the e2e session: {found}"


@pytest.fixture(scope="session")
def envoy_binary() -> Path:
    """Fails (never skips) when there is no Envoy: e2e results without Envoy would be meaningless."""
    return find_envoy_binary()


@pytest.fixture
async def mesh(request: pytest.FixtureRequest, tmp_path: Path, envoy_binary: Path) -> AsyncIterator[MeshFactory]:
    meshes: list[LocalMesh] = []

    async def start(**options: Any) -> LocalMesh:  # MeshFactory's keywords, passed on to LocalMesh
        local_mesh = LocalMesh(workdir=tmp_path / f"mesh-{len(meshes)}", subnet=find_free_subnet(), **options)
        await local_mesh.__aenter__()
        meshes.append(local_mesh)
        return local_mesh

    yield start
    failed = request.node.stash.get(_FAILED, False)
    for local_mesh in reversed(meshes):
        await local_mesh.close(failed=failed)


async def _start_demo_mesh(mesh: MeshFactory, *, configs: Mapping[str, str] = {}, **options: Any) -> LocalMesh:
    """A mesh (``options`` as ``mesh``'s) with the demo registry and ``configs`` (file name -> YAML) applied, its
    workloads started and synced, nothing rejected."""
    local_mesh = await mesh(**options)
    await local_mesh.apply("reviews-mesh", render_demo_mesh(local_mesh.subnet))
    for name, text in configs.items():
        await local_mesh.apply(name, text)
    await local_mesh.start_workloads(DEMO_WORKLOADS)
    configz = await local_mesh.wait_synced()
    assert not configz.get("rejected"), f"the demo mesh config was rejected: {configz['rejected']}"
    return local_mesh


@pytest.fixture
async def demo_mesh(mesh: MeshFactory) -> LocalMesh:
    return await _start_demo_mesh(mesh)


@pytest.fixture
def mixer_mesh(mesh: MeshFactory) -> DemoMeshFactory:
    """``await mixer_mesh(citadel=True)``: the demo topology with Mixer (and Citadel when asked), every request
    to reviews-v1 unless ``route_to_v1=False``."""

    async def start(*, citadel: bool = False, route_to_v1: bool = True, xds_mode: XdsMode = "sotw") -> LocalMesh:
        configs = {"reviews-vs": weighted_reviews(v1=100)} if route_to_v1 else {}
        return await _start_demo_mesh(mesh, configs=configs, citadel=citadel, mixer=True, xds_mode=xds_mode)

    return start


POD_WORLD_LOOP = pytest.mark.asyncio(loop_scope="module")
_POD_VERSIONS = ("v1", "v2", "v3")


async def _pod_world(directory: Path, xds_mode: XdsMode) -> AsyncIterator[PodMesh]:
    async with pod_mesh(directory, versions=_POD_VERSIONS, xds_mode=xds_mode) as world:
        yield world


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sotw_pod_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PodMesh]:
    async for world in _pod_world(tmp_path_factory.mktemp("pods"), "sotw"):
        yield world


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def delta_pod_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PodMesh]:
    async for world in _pod_world(tmp_path_factory.mktemp("pods-delta"), "delta"):
        yield world


async def _reset_after(request: pytest.FixtureRequest, world: PodMesh) -> AsyncIterator[PodMesh]:
    yield world
    if request.node.stash.get(_FAILED, False):
        print(world.log_tails(), file=sys.stderr)
    await world.reset()


@pytest_asyncio.fixture(loop_scope="module")
async def pods(request: pytest.FixtureRequest, sotw_pod_world: PodMesh) -> AsyncIterator[PodMesh]:
    async for world in _reset_after(request, sotw_pod_world):
        yield world


@pytest_asyncio.fixture(loop_scope="module")
async def delta_pods(request: pytest.FixtureRequest, delta_pod_world: PodMesh) -> AsyncIterator[PodMesh]:
    async for world in _reset_after(request, delta_pod_world):
        yield world


@pytest.fixture(params=["sotw", "delta"], ids=["sotw", "delta"])
def any_mode_pods(request: pytest.FixtureRequest) -> PodMesh:
    """The module's world of pods once with state-of-the-world and once with delta ADS sidecars."""
    world: PodMesh = request.getfixturevalue("pods" if request.param == "sotw" else "delta_pods")
    return world
