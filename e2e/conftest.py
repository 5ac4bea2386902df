"""Fixtures for end-to-end scenarios: real Pilot, Citadel and Mixer on the host, real Envoy sidecars in pods (network
namespaces with iptables capture, ``meshplane pod run``), unmodified apps.

- ``pods``: a world of pods (``e2e.pod_mesh``: Pilot, reviews v1/v2/v3, productpage, ...) shared by the tests of one
  module (worlds take ~10 s to start), reset after each test (every rule a test applied removed, all sidecars
  synced); ``delta_pods``: the same with delta xDS; ``any_mode_pods``: the test once with each.
- ``mixer_pods``: a world with Citadel (every sidecar has its SPIFFE certificate, mTLS between pods) and Mixer
  (checks and access logs from every sidecar), reviews v1/v2 and two client pods, productpage and ratings (each
  with an identity of its own); after each test Mixer and Pilot run again if the test stopped them.
- Tests using these worlds run on the module's event loop: mark the module with ``POD_WORLD_LOOP``
  (``pytestmark``). A scenario that needs a world of its own (other MeshConfig, short-lived certificates) starts
  one with ``e2e.pod_mesh.pod_mesh`` under its ``tmp_path``.

Every world is stopped at teardown and asserts nothing is left; when a test failed, the tail of every process log
is printed (pytest shows it under "Captured stderr teardown"), and the full logs stay in the world's directory.
Every test under ``e2e/`` gets the ``e2e`` marker. Nothing is skipped but for a machine where pods cannot run
(``e2e.pods.why_pods_cannot_run``, said in the skip reason): a missing Envoy binary or Pilot is an error. After
the session, nothing may be left of the pods and pod networks the session used (``e2e.pods.session_leftovers``).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from e2e.pod_mesh import PodMesh, pod_mesh
from e2e.pods import session_leftovers
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
async def mixer_pod_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PodMesh]:
    directory = tmp_path_factory.mktemp("pods-mixer")
    # Mixer on the pod network's gateway, the sidecars straight to it (``pod run --mixer-direct``): the checks and
    # telemetry scenarios take the path the benchmark measures (as does the Telemetry API world)
    async with pod_mesh(
        directory, citadel=True, mixer=True, mixer_direct=True, clients=("productpage", "ratings")
    ) as world:
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


@pytest_asyncio.fixture(loop_scope="module")
async def mixer_pods(request: pytest.FixtureRequest, mixer_pod_world: PodMesh) -> AsyncIterator[PodMesh]:
    async for world in _reset_after(request, mixer_pod_world):
        yield world


@pytest.fixture(params=["sotw", "delta"], ids=["sotw", "delta"])
def any_mode_pods(request: pytest.FixtureRequest) -> PodMesh:
    """The module's world of pods once with state-of-the-world and once with delta ADS sidecars."""
    world: PodMesh = request.getfixturevalue("pods" if request.param == "sotw" else "delta_pods")
    return world
