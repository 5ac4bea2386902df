"""MeshConfigFile: the mesh config file watched live; a bad edit keeps the last good one, logged and counted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from pilot.config.mesh_config import MeshConfig, MeshConfigError, MeshNames
from pilot.config.mesh_config_file import MeshConfigFile
from pilot.model import OutboundTrafficPolicy
from tests.xds_fakes import wait_until

ALLOW_ANY = "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n"
REGISTRY_ONLY = "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"


class Watched:
    """A MeshConfigFile with what it handed on."""

    def __init__(self, path: Path, **options: int) -> None:
        self.changes: list[MeshConfig] = []
        self.rejected: list[str] = []
        self.file = MeshConfigFile(
            path, on_change=self.changes.append, on_rejected=self.rejected.append, poll_ms=100, **options
        )

    @property
    def policy(self) -> OutboundTrafficPolicy:
        return self.file.current.settings.outbound_traffic_policy


def write(path: Path, text: str) -> None:
    """Write like editors do: a temporary file renamed over the old one (a new inode: a new signature)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


@pytest.fixture
async def mesh(tmp_path: Path) -> Watched:
    path = tmp_path / "mesh.yaml"
    path.write_text(ALLOW_ANY)
    watched = Watched(path)
    await watched.file.load_initial()
    return watched


@contextlib.asynccontextmanager
async def watching(watched: Watched) -> AsyncIterator[None]:
    task = asyncio.create_task(watched.file.watch())
    try:
        await asyncio.sleep(0.2)  # the watch is set up
        yield
    finally:
        watched.file.stop()
        await asyncio.wait_for(task, 5)


async def test_load_initial_refuses_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text("outboundTrafficPolicy:\n  mode: ALLOW_SOME\n")
    with pytest.raises(MeshConfigError, match=r"mesh.yaml:2: outboundTrafficPolicy.mode"):
        await Watched(path).file.load_initial()


async def test_load_initial_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MeshConfigError, match=r"mesh.yaml:1: cannot read the mesh config"):
        await Watched(tmp_path / "mesh.yaml").file.load_initial()


async def test_names_come_from_the_flags_where_the_file_has_none(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text("trustDomain: corp.example\n")
    flags = MeshNames(trust_domain="cluster.local", root_namespace="mesh-root")
    file = MeshConfigFile(path, on_change=lambda _: None, defaults=flags)
    await file.load_initial()
    assert file.current.names == MeshNames(trust_domain="corp.example", root_namespace="mesh-root")


async def test_an_edit_is_handed_on_once(mesh: Watched) -> None:
    write(mesh.file.path, REGISTRY_ONLY)
    await mesh.file.check()
    await mesh.file.check()  # same signature: not read again
    assert [c.settings.outbound_traffic_policy for c in mesh.changes] == [OutboundTrafficPolicy.REGISTRY_ONLY]
    assert mesh.policy is OutboundTrafficPolicy.REGISTRY_ONLY and mesh.file.errors == ()


async def test_an_edit_that_changes_nothing_is_not_handed_on(mesh: Watched) -> None:
    write(mesh.file.path, "# the same, commented\n" + ALLOW_ANY)
    await mesh.file.check()
    assert mesh.changes == [] and mesh.rejected == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("outboundTrafficPolicy:\n  mode: ALLOW_SOME\n", ("mesh.yaml", 2, "outboundTrafficPolicy.mode")),
        (REGISTRY_ONLY + "connectTimeout: 1s\n", ("mesh.yaml", 3, "connectTimeout")),
        (REGISTRY_ONLY + "trustDomain: other.example\n", ("mesh.yaml", 3, "trustDomain")),
        ("outboundTrafficPolicy: [\n", ("mesh.yaml", 2, "")),  # at the end of the file
    ],
    ids=["bad-mode", "unsupported-field-beside-a-good-edit", "trust-domain-needs-a-restart", "yaml-syntax"],
)
async def test_a_bad_edit_keeps_the_last_good_config(mesh: Watched, text: str, expected: tuple[str, int, str]) -> None:
    write(mesh.file.path, text)
    with structlog.testing.capture_logs() as logs:
        await mesh.file.check()
    assert mesh.policy is OutboundTrafficPolicy.ALLOW_ANY and mesh.changes == []
    file, line, path = expected
    errors = [(Path(e.origin.file).name, e.origin.line, e.path) for e in mesh.file.errors]
    assert errors == [(file, line, path)]
    assert [(entry["event"], entry["line"], entry["path"]) for entry in logs] == [("mesh_config_rejected", line, path)]
    assert mesh.rejected == ["MeshConfig"]
    rejected = mesh.file.describe()["rejected"]
    assert [(r["line"], r["path"]) for r in rejected] == [(line, path)]
    assert mesh.file.describe()["in_force"]["outboundTrafficPolicy"] == {"mode": "ALLOW_ANY"}


async def test_a_rejection_is_counted_once_until_fixed(mesh: Watched) -> None:
    bad = "outboundTrafficPolicy:\n  mode: ALLOW_SOME\n"
    for text in (bad, bad, ALLOW_ANY, bad):
        write(mesh.file.path, text)
        await mesh.file.check()
    assert mesh.rejected == ["MeshConfig", "MeshConfig"]  # the second write is the same problem; then fixed, then anew
    write(mesh.file.path, REGISTRY_ONLY)
    await mesh.file.check()
    assert mesh.file.errors == () and mesh.policy is OutboundTrafficPolicy.REGISTRY_ONLY


async def test_a_removed_file_keeps_the_last_good_config(mesh: Watched) -> None:
    write(mesh.file.path, REGISTRY_ONLY)
    await mesh.file.check()
    mesh.file.path.unlink()
    await mesh.file.check()
    assert mesh.policy is OutboundTrafficPolicy.REGISTRY_ONLY
    assert [e.message for e in mesh.file.errors] == ["the mesh config file is gone; the last good one stays in force"]
    write(mesh.file.path, ALLOW_ANY)
    await mesh.file.check()
    assert mesh.policy is OutboundTrafficPolicy.ALLOW_ANY and mesh.file.errors == ()


async def test_watch_applies_edits_in_place_and_by_rename(mesh: Watched) -> None:
    async with watching(mesh):
        write(mesh.file.path, REGISTRY_ONLY)
        await wait_until(lambda: mesh.policy is OutboundTrafficPolicy.REGISTRY_ONLY)
        mesh.file.path.write_text(ALLOW_ANY)  # written in place: same inode, new mtime/size
        await wait_until(lambda: mesh.policy is OutboundTrafficPolicy.ALLOW_ANY)
    assert len(mesh.changes) == 2


async def test_watch_follows_a_swapped_configmap_link(tmp_path: Path) -> None:
    """A Kubernetes ConfigMap mount: ``mesh.yaml`` -> ``..data/mesh.yaml``, ``..data`` -> a new directory per update."""
    for version, text in (("v1", ALLOW_ANY), ("v2", REGISTRY_ONLY)):
        (tmp_path / version).mkdir()
        (tmp_path / version / "mesh.yaml").write_text(text)
    (tmp_path / "..data").symlink_to(tmp_path / "v1")
    (tmp_path / "mesh.yaml").symlink_to(tmp_path / "..data" / "mesh.yaml")
    watched = Watched(tmp_path / "mesh.yaml")
    await watched.file.load_initial()
    async with watching(watched):
        (tmp_path / "..data_tmp").symlink_to(tmp_path / "v2")
        (tmp_path / "..data_tmp").replace(tmp_path / "..data")
        await wait_until(lambda: watched.policy is OutboundTrafficPolicy.REGISTRY_ONLY)
