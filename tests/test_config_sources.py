"""The config-source seam: parse_object with origins, the memory source, a store aggregating a memory and a file
source (duplicates across them, last-good, cross-resource checks), and SourceGroup."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from pilot.config import (
    FILES,
    MEMORY,
    ConfigError,
    DirectorySource,
    Origin,
    Rejected,
    Skipped,
    SourceGroup,
    object_reference,
    parse_config_text,
    parse_object,
)
from pilot.config.types import ConfigKey, WorkloadEntry
from pilot.model import MeshSnapshot, build_snapshot
from tests.source_builders import config_object, memory_and_files

WEB = ConfigKey(kind="WorkloadEntry", namespace="default", name="web")


def workload_yaml(name: str, address: str) -> str:
    """A WorkloadEntry document; its spec.address is on its line 5."""
    return (
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
        f"metadata: {{name: {name}, namespace: default}}\nspec:\n  address: {address}\n"
    )


def workload_object(name: str, address: str, version: str = "") -> dict[str, Any]:
    return config_object("WorkloadEntry", name, {"address": address}, resource_version=version)


# ------------------------------------------------------------------------------------------------ parse_object


def test_origin_text_and_lines() -> None:
    assert str(Origin(file="a.yaml", line=3)) == "a.yaml:3"
    assert Origin(file="a.yaml", line=3).at_line(7) == Origin(file="a.yaml", line=7)
    reference = object_reference("VirtualService", "default", "reviews", "4711")
    assert str(reference) == "VirtualService/default/reviews@4711"
    assert reference.at_line(7) is reference  # no file, no lines
    assert str(object_reference("VirtualService", "default", "reviews")) == "VirtualService/default/reviews"
    with pytest.raises(ValueError, match="a file or a reference"):
        Origin()
    with pytest.raises(ValueError, match="a file or a reference"):
        Origin(file="a.yaml", line=1, reference="x")


IN_MEMORY = object_reference("WorkloadEntry", "default", "web", "7")


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            workload_object("web", "not-an-ip"),
            ["WorkloadEntry/default/web@7: WorkloadEntry default/web: spec.address: "],
        ),
        (
            {**workload_object("web", "127.0.0.1"), "spec": {"address": "127.0.0.1", "weight": -1, "color": "red"}},
            [
                "WorkloadEntry/default/web@7: WorkloadEntry default/web: spec.weight: ",
                "WorkloadEntry/default/web@7: WorkloadEntry default/web: spec.color: unknown field",
            ],
        ),
        (
            {"kind": "WorkloadEntry", "spec": {"address": "127.0.0.1"}},
            [
                "WorkloadEntry/default/web@7: apiVersion: required field is missing",
                "WorkloadEntry/default/web@7: metadata: required field is missing",
            ],
        ),
        (["not", "a", "mapping"], ["WorkloadEntry/default/web@7: a document must be a mapping"]),
    ],
    ids=["bad-field", "every-problem-at-once", "no-metadata", "not-a-mapping"],
)
def test_parse_object_without_lines_reports_every_problem_at_the_origin(obj: object, expected: list[str]) -> None:
    outcome = parse_object(obj, IN_MEMORY)
    assert isinstance(outcome, Rejected) and outcome.origin == IN_MEMORY
    messages = [str(e) for e in outcome.errors]
    assert len(messages) == len(expected), messages
    for message in expected:
        assert any(m.startswith(message) for m in messages), (message, messages)
    assert all(e.origin == IN_MEMORY for e in outcome.errors)


def test_parse_object_accepts_and_keeps_the_origin() -> None:
    outcome = parse_object(workload_object("web", "127.0.0.1", "7"), IN_MEMORY)
    assert isinstance(outcome, WorkloadEntry)
    assert (outcome.meta.key, outcome.meta.origin, outcome.meta.file) == (WEB, IN_MEMORY, "")
    assert outcome.meta.content_hash  # the same content hash as the same object read from a file
    (from_file,) = parse_config_text(workload_yaml("web", "127.0.0.1"), "a.yaml").resources
    assert from_file.meta.content_hash == outcome.meta.content_hash


def test_parse_object_skips_kinds_it_does_not_read() -> None:
    outcome = parse_object(config_object("WasmPlugin", "gw", {}), IN_MEMORY)
    assert isinstance(outcome, Skipped)
    assert str(outcome).startswith("WorkloadEntry/default/web@7: skipped WasmPlugin (networking.istio.io/v1): ")


def test_parse_object_with_field_lines_places_problems_on_their_lines() -> None:
    lines = MappingProxyType({("spec",): 4, ("spec", "address"): 5})
    outcome = parse_object(workload_object("web", "not-an-ip"), Origin(file="a.yaml", line=1), lines)
    assert isinstance(outcome, Rejected)
    (error,) = outcome.errors
    assert (error.origin, error.path) == (Origin(file="a.yaml", line=5), "spec.address")
    assert str(error).startswith("a.yaml:5: WorkloadEntry default/web: spec.address: ")


# ------------------------------------------------------------------------------------------------ memory source


def test_memory_source_puts_replaces_and_deletes() -> None:
    seam = memory_and_files()
    seam.memory.put(workload_object("web", "127.0.0.1", "1"))
    assert seam.store.accepted[WEB].meta.origin == object_reference("WorkloadEntry", "default", "web", "1")
    seam.memory.put(workload_object("web", "127.0.0.2", "2"))  # an update: same unit, new resourceVersion
    web = seam.store.accepted[WEB]
    assert isinstance(web, WorkloadEntry) and web.address == "127.0.0.2"
    (accepted,) = seam.store.configz()["accepted"]
    assert (accepted["origin"], accepted["file"], accepted["line"]) == ("WorkloadEntry/default/web@2", "", 0)
    seam.memory.delete("WorkloadEntry", "web")
    seam.memory.delete("WorkloadEntry", "web")  # nothing left: no change
    assert seam.store.accepted == {}
    assert [sorted(map(str, c.changed)) for c in seam.changes] == [["WorkloadEntry/default/web"]] * 3


def test_memory_source_rejection_keeps_the_last_good_version() -> None:
    seam = memory_and_files()
    seam.memory.put(workload_object("web", "127.0.0.1", "1"))
    good = seam.store.accepted[WEB]
    outcome = seam.memory.put(workload_object("web", "not-an-ip", "2"))
    assert isinstance(outcome, Rejected)
    assert seam.store.accepted[WEB] is good
    (rejection,) = seam.store.configz()["rejected"]
    assert (rejection["source"], rejection["origin"]) == (MEMORY, "WorkloadEntry/default/web@2")
    assert rejection["in_force"] == "last good version from WorkloadEntry/default/web@1"
    assert rejection["errors"][0].startswith("WorkloadEntry/default/web@2: WorkloadEntry default/web: spec.address:")


# ------------------------------------------------------------------------------------------------ aggregation


@pytest.mark.parametrize(
    ("ranking", "winner", "rejected_error"),
    [
        (
            (MEMORY, FILES),
            "WorkloadEntry/default/web@5",
            "a.yaml:3: WorkloadEntry default/web: metadata.name: WorkloadEntry default/web is already defined at "
            "WorkloadEntry/default/web@5; this definition is ignored",
        ),
        (
            (FILES, MEMORY),
            "a.yaml:1",
            "WorkloadEntry/default/web@5: WorkloadEntry default/web: metadata.name: WorkloadEntry default/web is "
            "already defined at a.yaml:1; this definition is ignored",
        ),
    ],
    ids=["memory-first", "files-first"],
)
def test_duplicate_across_sources_is_rejected_naming_both_origins(
    ranking: tuple[str, str], winner: str, rejected_error: str
) -> None:
    seam = memory_and_files(*ranking)
    seam.store.apply([parse_config_text(workload_yaml("web", "127.0.0.1"), "a.yaml")], source=FILES)
    seam.memory.put(workload_object("web", "127.0.0.2", "5"))
    assert str(seam.store.accepted[WEB].meta.origin) == winner
    (rejection,) = seam.store.configz()["rejected"]
    assert rejection["errors"] == [rejected_error]
    assert rejection["in_force"] == f"version from {winner}"


def test_the_other_source_takes_over_when_the_first_definition_goes() -> None:
    seam = memory_and_files()
    seam.store.apply([parse_config_text(workload_yaml("web", "127.0.0.1"), "a.yaml")], source=FILES)
    seam.memory.put(workload_object("web", "127.0.0.2", "5"))
    seam.memory.delete("WorkloadEntry", "web")
    assert seam.store.accepted[WEB].meta.origin == Origin(file="a.yaml", line=1)
    assert seam.store.rejections == ()


def test_cross_resource_checks_run_across_sources() -> None:
    seam = memory_and_files()
    rule = (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n  host: reviews\n"
    )
    subsets = "  subsets:\n  - {name: v1, labels: {version: v1}}\n"
    seam.store.apply([parse_config_text(rule + subsets, "dr.yaml")], source=FILES)
    route = {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}
    seam.memory.put(config_object("VirtualService", "reviews", route, resource_version="3"))
    vs = ConfigKey(kind="VirtualService", namespace="default", name="reviews")
    assert vs in seam.store.accepted
    # the file's DestinationRule drops v1: the change is rejected, naming the VirtualService's origin
    assert seam.store.apply([parse_config_text(rule, "dr.yaml")], source=FILES) is None
    (rejection,) = seam.store.configz()["rejected"]
    assert rejection["errors"] == [
        "dr.yaml:4: DestinationRule default/reviews: spec.subsets: subset 'v1' is still used by VirtualService "
        "default/reviews (VirtualService/default/reviews@3)"
    ]
    # a new VirtualService version naming a subset that does not exist is rejected at its origin
    bad = {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v9"}}]}]}
    seam.memory.put(config_object("VirtualService", "reviews", bad, resource_version="4"))
    errors = [e for r in seam.store.rejections for e in r.errors if r.key == vs]
    assert [str(e) for e in errors] == [
        "VirtualService/default/reviews@4: VirtualService default/reviews: spec.http[0].route[0].destination.subset: "
        "subset 'v9' is not defined in DestinationRule default/reviews (its subsets: v1)"
    ]
    assert seam.store.accepted[vs].meta.origin == object_reference("VirtualService", "default", "reviews", "3")


def test_a_broken_file_does_not_stop_the_memory_source() -> None:
    seam = memory_and_files()
    seam.store.apply([parse_config_text("kind: [unclosed\n", "broken.yaml")], source=FILES)
    seam.memory.put(workload_object("web", "127.0.0.1"))
    assert list(seam.store.accepted) == [WEB]
    (file_error,) = seam.store.file_errors
    assert file_error.origin.file == "broken.yaml" and "YAML syntax error" in file_error.message
    assert list(seam.store.unit_errors) == [(FILES, "broken.yaml")]


def test_a_change_in_either_source_reaches_the_snapshot() -> None:
    snapshots: list[MeshSnapshot] = []
    seam = memory_and_files(on_change=lambda store, change: snapshots.append(build_snapshot(store.accepted, 1)))
    seam.memory.put(workload_object("api", "127.0.0.3"))
    seam.sink.publish(FILES, [parse_config_text(workload_yaml("web", "127.0.0.1"), "a.yaml")])
    seam.sink.publish(FILES, [parse_config_text(workload_yaml("web", "127.0.0.9"), "a.yaml")])
    seam.memory.delete("WorkloadEntry", "api")
    addresses = [sorted(w.address for w in s.workloads.values()) for s in snapshots]
    assert addresses == [["127.0.0.3"], ["127.0.0.1", "127.0.0.3"], ["127.0.0.3", "127.0.0.9"], ["127.0.0.9"]]


def test_a_store_refuses_sources_it_does_not_list() -> None:
    seam = memory_and_files(MEMORY)
    with pytest.raises(ValueError, match="unknown config source 'files'"):
        seam.store.apply([], source=FILES)
    with pytest.raises(ValueError, match="distinct source names"):
        memory_and_files(MEMORY, MEMORY)


def test_rejections_are_counted_once_per_source() -> None:
    kinds: list[str] = []
    seam = memory_and_files(on_rejected=kinds.append)
    seam.memory.put(workload_object("web", "not-an-ip"))
    seam.memory.put(workload_object("web", "not-an-ip"))  # the same rejection again
    seam.sink.publish(FILES, [parse_config_text(workload_yaml("web", "not-an-ip"), "a.yaml")])
    assert kinds == ["WorkloadEntry", "WorkloadEntry"]


# ------------------------------------------------------------------------------------------------ SourceGroup

WAIT = 5.0


async def test_source_group_loads_and_watches_a_directory_and_memory_together(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(workload_yaml("web", "127.0.0.1"))
    seam = memory_and_files()
    directory = DirectorySource(tmp_path, seam.sink, step_ms=50, debounce_ms=200, root_check_ms=200)
    group = SourceGroup([seam.memory, directory])
    await group.load_initial()
    assert list(seam.store.accepted) == [WEB]
    task = asyncio.create_task(group.watch())
    try:
        seam.memory.put(workload_object("web", "127.0.0.2", "1"))  # shadows the file's
        assert seam.store.accepted[WEB].meta.origin.reference == "WorkloadEntry/default/web@1"
        seam.memory.delete("WorkloadEntry", "web")
        (tmp_path / "a.yaml").write_text(workload_yaml("web", "127.0.0.5"))
        async with asyncio.timeout(WAIT):
            while getattr(seam.store.accepted.get(WEB), "address", None) != "127.0.0.5":
                await asyncio.sleep(0.05)
                (tmp_path / "poke.txt").write_text("x")  # the watcher may have started after the write
    finally:
        group.stop()
        await asyncio.wait_for(task, WAIT)


class _Failing:
    name = "failing"

    async def load_initial(self) -> None:
        pass

    async def watch(self) -> None:
        raise RuntimeError("the API server went away")

    def stop(self) -> None:
        pass


async def test_source_group_stops_the_others_when_one_fails() -> None:
    seam = memory_and_files()
    group = SourceGroup([seam.memory, _Failing()])
    with pytest.raises(RuntimeError, match="API server"):
        await asyncio.wait_for(group.watch(), WAIT)
    with pytest.raises(ValueError, match="at least one source"):
        SourceGroup([])


def test_config_errors_name_their_origin() -> None:
    key = ConfigKey(kind="VirtualService", namespace="default", name="reviews")
    error = ConfigError(
        origin=object_reference("VirtualService", "default", "reviews", "9"), key=key, path="spec", message="x"
    )
    assert str(error) == "VirtualService/default/reviews@9: VirtualService default/reviews: spec: x"
