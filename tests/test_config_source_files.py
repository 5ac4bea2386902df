"""DirectorySource: initial load, watching edits/additions/deletions, partial writes, logging."""

from __future__ import annotations

import asyncio
import codecs
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from pilot.config.errors import ConfigSourceError
from pilot.config.origin import Origin
from pilot.config.source import ConfigSink
from pilot.config.source_files import DirectorySource, FileSignature, is_config_file, scan_config_files
from pilot.config.store import ConfigStore, StoreChange
from pilot.config.types import ConfigKey, WorkloadEntry

WAIT_SECONDS = 5.0


def workload(name: str, address: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
        f"metadata: {{name: {name}, namespace: ns}}\nspec:\n  address: {address}\n"
    )


def key(name: str) -> ConfigKey:
    return ConfigKey(kind="WorkloadEntry", namespace="ns", name=name)


class Recorder:
    """Collects StoreChanges and what was in force at each one."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store
        self.changes: list[StoreChange] = []
        self.in_force: list[set[ConfigKey]] = []

    def __call__(self, change: StoreChange) -> None:
        self.changes.append(change)
        self.in_force.append(set(self.store.accepted))


def replace_file(path: Path, text: str) -> None:
    """Write like editors do: a hidden temporary file renamed over the old one (never seen half-written)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def make_source(config_dir: Path) -> tuple[ConfigStore, Recorder, DirectorySource]:
    store = ConfigStore()
    recorder = Recorder(store)
    sink = ConfigSink(store, recorder)
    return store, recorder, DirectorySource(config_dir, sink, step_ms=50, debounce_ms=400, root_check_ms=200)


async def wait_for(condition: Callable[[], bool], poke_dir: Path) -> None:
    """Wait until ``condition`` holds, touching a non-config file now and then: the watcher may start after the
    edit under test, and any later event makes it rescan (changed files are found by their signatures)."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    poke = poke_dir / "poke.txt"
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {WAIT_SECONDS}s")
        poke.write_text(str(asyncio.get_running_loop().time()))
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("a.yaml", True),
        ("sub/dir/b.yml", True),
        (".hidden.yaml", False),
        (".git/c.yaml", False),
        ("..data/d.yaml", False),
        ("#e.yaml#", False),
        ("#e.yaml", False),
        (".#f.yaml", False),
        ("g.yaml~", False),
        ("h.yaml.swp", False),
        ("notes.txt", False),
    ],
)
def test_is_config_file(relative: str, expected: bool) -> None:
    assert is_config_file(Path(relative)) is expected


async def test_load_initial_reads_config_files_recursively(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(workload("a", "127.0.0.2"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text(workload("b", "127.0.0.3"))
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "c.yaml").write_text(workload("c", "127.0.0.4"))
    (tmp_path / ".d.yaml").write_text(workload("d", "127.0.0.5"))
    (tmp_path / "e.yaml~").write_text(workload("e", "127.0.0.6"))
    (tmp_path / "notes.txt").write_text("not config")
    store, recorder, source = make_source(tmp_path)
    await source.load_initial()
    assert set(store.accepted) == {key("a"), key("b")}
    assert store.accepted[key("b")].meta.file == str(tmp_path / "sub" / "b.yml")
    assert [c.version for c in recorder.changes] == [1]


def walked(config_dir: Path) -> dict[str, FileSignature]:
    """What the scan lists, as ``os.walk`` (the scan before it used ``os.scandir``) and ``is_config_file`` say."""
    found: dict[str, FileSignature] = {}
    for directory, subdirectories, names in os.walk(config_dir):
        subdirectories[:] = [d for d in subdirectories if not d.startswith(".")]
        for name in names:
            path = os.path.join(directory, name)
            if is_config_file(Path(os.path.relpath(path, config_dir))) and os.path.exists(path):
                found[path] = FileSignature.of(os.stat(path))
    return found


def test_scan_lists_what_a_walk_finds(tmp_path: Path) -> None:
    """Nested and hidden directories, a ConfigMap's ``..data`` link and the links into it, a link to a directory
    (listed, not entered), a dangling link, editor leftovers and other files."""
    (tmp_path / "a.yaml").write_text("a")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "b.yml").write_text("b")
    (tmp_path / "sub" / "deeper" / "c.yaml").write_text("c")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "d.yaml").write_text("d")
    (tmp_path / "..2026_12_03").mkdir()
    (tmp_path / "..2026_12_03" / "e.yaml").write_text("e")
    (tmp_path / "..data").symlink_to(tmp_path / "..2026_12_03")
    (tmp_path / "e.yaml").symlink_to(tmp_path / "..data" / "e.yaml")
    (tmp_path / "linked.yaml").symlink_to(tmp_path / "sub")  # a directory named like a file: not read
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "nowhere.yaml")
    for name in ("#f.yaml#", ".#f.yaml", "f.yaml~", ".f.yaml.swp", "notes.txt"):
        (tmp_path / name).write_text("x")
    scanned = scan_config_files(tmp_path)
    assert scanned == walked(tmp_path)
    assert sorted(scanned) == sorted(str(tmp_path / p) for p in ("a.yaml", "e.yaml", "sub/b.yml", "sub/deeper/c.yaml"))
    assert scan_config_files(tmp_path, exclude=[tmp_path / "..2026_12_03" / "e.yaml"]).keys() == scanned.keys() - {
        str(tmp_path / "e.yaml")
    }


async def test_excluded_files_are_not_read_even_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(workload("a", "127.0.0.2"))
    (tmp_path / "..data").mkdir()
    (tmp_path / "..data" / "mesh.yaml").write_text("outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")
    (tmp_path / "mesh.yaml").symlink_to(tmp_path / "..data" / "mesh.yaml")  # a ConfigMap mount's layout
    store = ConfigStore()
    source = DirectorySource(tmp_path, ConfigSink(store, Recorder(store)), exclude=[tmp_path / "mesh.yaml"])
    await source.load_initial()
    assert set(store.accepted) == {key("a")}
    assert store.rejections == () and not store.unit_errors


async def test_load_initial_needs_the_directory(tmp_path: Path) -> None:
    _, _, source = make_source(tmp_path / "missing")
    with pytest.raises(ConfigSourceError, match="does not exist"):
        await source.load_initial()


@pytest.mark.parametrize(
    ("raw", "line", "message"),
    [
        (b"kind: \xff\xfe\n", 1, "not UTF-8 text: byte 0xff cannot be decoded (invalid start byte)"),
        (b"a: 1\nb: caf\xc3\xa9\nc: caf\xe9\n", 3, "not UTF-8 text: byte 0xe9"),
        (codecs.BOM_UTF8 + b"a: 1\n\nb: \x80\n", 3, "not UTF-8 text: byte 0x80"),
        (b"a: 1\n" + b"b: " + b"x" * (10 * 2**20) + b"\n", 1, "the file is 10.0 MiB, over meshplane's limit of 3 MiB"),
    ],
    ids=["first-line", "third-line-after-valid-utf8", "after-a-bom", "10-mib"],
)
async def test_unreadable_file_is_a_file_error_with_its_line(
    tmp_path: Path, raw: bytes, line: int, message: str
) -> None:
    (tmp_path / "bad.yaml").write_bytes(raw)
    (tmp_path / "good.yaml").write_text(workload("a", "127.0.0.2"))
    store, _, source = make_source(tmp_path)
    started = time.perf_counter()
    await source.load_initial()
    assert time.perf_counter() - started < 1.0
    (error,) = store.file_errors
    assert error.origin == Origin(file=str(tmp_path / "bad.yaml"), line=line)
    assert error.message.startswith(message)
    assert set(store.accepted) == {key("a")}


async def test_deeply_nested_file_is_a_file_error_and_the_watch_goes_on(tmp_path: Path) -> None:
    """A 613-byte VirtualService nested 250 levels deep used to raise RecursionError through the watcher."""
    deep = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  http: "
    (tmp_path / "a.yaml").write_text(workload("a", "127.0.0.2"))
    (tmp_path / "deep.yaml").write_text(deep + "[" * 250 + "]" * 250 + "\n")
    store, _, source = make_source(tmp_path)
    await source.load_initial()
    (error,) = store.file_errors
    assert str(error) == f"{tmp_path / 'deep.yaml'}:5: YAML syntax error: nested deeper than 64 levels"
    task = asyncio.create_task(source.watch())
    try:
        replace_file(tmp_path / "deep.yaml", deep + "{a: " * 300 + "1" + "}" * 300 + "\n")
        (tmp_path / "b.yaml").write_text(workload("b", "127.0.0.3"))
        await wait_for(lambda: key("b") in store.accepted, tmp_path)
        assert not task.done()
        (error,) = store.file_errors
        assert error.origin.line == 5 and "nested deeper than 64 levels" in error.message
    finally:
        source.stop()
        await asyncio.wait_for(task, WAIT_SECONDS)
    assert set(store.accepted) == {key("a"), key("b")}


async def test_watch_picks_up_edits_additions_and_deletions(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(workload("a", "127.0.0.2"))
    store, recorder, source = make_source(tmp_path)
    await source.load_initial()
    task = asyncio.create_task(source.watch())
    try:
        replace_file(tmp_path / "a.yaml", workload("a", "127.0.0.9"))
        await wait_for(lambda: _address(store, "a") == "127.0.0.9", tmp_path)
        (tmp_path / "b.yaml").write_text(workload("b", "127.0.0.3"))
        await wait_for(lambda: key("b") in store.accepted, tmp_path)
        (tmp_path / "a.yaml").unlink()
        await wait_for(lambda: key("a") not in store.accepted, tmp_path)
    finally:
        source.stop()
        await asyncio.wait_for(task, WAIT_SECONDS)
    assert [c.changed for c in recorder.changes[1:]] == [{key("a")}, {key("b")}, {key("a")}]


async def test_watch_survives_a_file_written_in_several_steps(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(workload("a", "127.0.0.2"))
    store, recorder, source = make_source(tmp_path)
    await source.load_initial()
    task = asyncio.create_task(source.watch())
    await asyncio.sleep(0.2)  # give the watcher time to start, so that it is likely to see the half-written file
    try:
        new = workload("a", "127.0.0.7") + "---\n" + workload("b", "127.0.0.8")
        cut = new.index("namespace: ns}") + 5  # inside a flow mapping: not YAML until the rest arrives
        with path.open("w") as handle:
            handle.write(new[:cut])
            handle.flush()
            await asyncio.sleep(0.3)  # longer than the watcher's quiet period: the half file may be read
            handle.write(new[cut:])
        await wait_for(lambda: key("b") in store.accepted, tmp_path)
    finally:
        source.stop()
        await asyncio.wait_for(task, WAIT_SECONDS)
    assert _address(store, "a") == "127.0.0.7"
    assert all(key("a") in in_force for in_force in recorder.in_force)  # never dropped while half written
    assert not store.file_errors


async def test_watch_keeps_config_in_force_when_the_directory_goes_away(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "a.yaml").write_text(workload("a", "127.0.0.2"))
    store, recorder, source = make_source(config_dir)
    await source.load_initial()
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(source.watch())
        try:
            # an edit seen proves the watcher runs: the removal below is the only event it will get
            replace_file(config_dir / "a.yaml", workload("a", "127.0.0.3"))
            await wait_for(lambda: _address(store, "a") == "127.0.0.3", config_dir)
            shutil.rmtree(config_dir)
            await wait_for(lambda: any(e["event"] == "config_dir_unreadable" for e in logs), tmp_path)
        finally:
            source.stop()
            await asyncio.wait_for(task, WAIT_SECONDS)
    assert _address(store, "a") == "127.0.0.3"
    assert len(recorder.changes) == 2  # the initial load and the edit: nothing removed


async def test_watch_follows_a_directory_renamed_away_and_recreated(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "a.yaml").write_text(workload("a", "127.0.0.2"))
    store, _, source = make_source(config_dir)
    await source.load_initial()
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(source.watch())
        try:
            replace_file(config_dir / "a.yaml", workload("a", "127.0.0.3"))  # seen: the watcher runs
            await wait_for(lambda: _address(store, "a") == "127.0.0.3", tmp_path)
            config_dir.rename(tmp_path / "config.old")
            config_dir.mkdir()
            (config_dir / "b.yaml").write_text(workload("b", "127.0.0.4"))
            await wait_for(lambda: set(store.accepted) == {key("b")}, tmp_path)  # poking outside the directory
            (config_dir / "c.yaml").write_text(workload("c", "127.0.0.5"))  # an edit in the new directory
            await wait_for(lambda: key("c") in store.accepted, tmp_path)
            (tmp_path / "config.old" / "a.yaml").unlink()  # the old directory is no longer config
            (tmp_path / "config.old" / "d.yaml").write_text(workload("d", "127.0.0.6"))
            (config_dir / "e.yaml").write_text(workload("e", "127.0.0.7"))
            await wait_for(lambda: key("e") in store.accepted, tmp_path)
        finally:
            source.stop()
            await asyncio.wait_for(task, WAIT_SECONDS)
    assert set(store.accepted) == {key("b"), key("c"), key("e")}
    assert any(e["event"] == "config_dir_replaced" for e in logs)


async def test_watch_resumes_when_a_removed_directory_comes_back(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "a.yaml").write_text(workload("a", "127.0.0.2"))
    store, _, source = make_source(config_dir)
    await source.load_initial()
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(source.watch())
        try:
            await asyncio.sleep(0.3)  # let the watcher start on the first directory
            shutil.rmtree(config_dir)
            await wait_for(lambda: any(e["event"] == "config_dir_unreadable" for e in logs), tmp_path)
            assert set(store.accepted) == {key("a")}  # nothing there: what was in force stays
            config_dir.mkdir()  # may well get the same inode number back
            (config_dir / "b.yaml").write_text(workload("b", "127.0.0.4"))
            await wait_for(lambda: set(store.accepted) == {key("b")}, tmp_path)
            (config_dir / "c.yaml").write_text(workload("c", "127.0.0.5"))
            await wait_for(lambda: key("c") in store.accepted, tmp_path)
        finally:
            source.stop()
            await asyncio.wait_for(task, WAIT_SECONDS)


async def test_rejections_are_logged_with_file_line_key_path(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(workload("a", "not-an-ip"))
    _, _, source = make_source(tmp_path)
    with structlog.testing.capture_logs() as logs:
        await source.load_initial()
    (event,) = [e for e in logs if e["event"] == "config_rejected"]
    assert event["origin"] == f"{tmp_path / 'a.yaml'}:5"
    assert (event["key"], event["path"]) == ("WorkloadEntry/ns/a", "spec.address")
    assert "is not an IP address" in event["message"]
    assert event["log_level"] == "warning"


def _address(store: ConfigStore, name: str) -> str | None:
    resource = store.accepted.get(key(name))
    return resource.address if isinstance(resource, WorkloadEntry) else None


def touch_later(path: Path, seconds: int) -> None:
    """Move ``path``'s mtime forward, so that the next scan re-reads it although its content is the same."""
    mtime_ns = path.stat().st_mtime_ns + seconds * 1_000_000_000
    os.utime(path, ns=(mtime_ns, mtime_ns))


async def test_each_rejection_is_counted_once(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(workload("a", "127.0.0.2"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(workload("b", "not-an-ip") + "---\n" + workload("c", "127.0.0.300"))
    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    kinds: list[str] = []
    store = ConfigStore()
    source = DirectorySource(tmp_path, ConfigSink(store, Recorder(store), on_rejected=kinds.append))

    await source.load_initial()
    assert sorted(kinds) == ["WorkloadEntry", "WorkloadEntry", "file"]

    touch_later(bad, 1)
    touch_later(tmp_path / "broken.yaml", 1)
    with structlog.testing.capture_logs() as logs:
        await source.load_initial()  # re-reads both files: same rejections, not counted again
    assert len([e for e in logs if e["event"] == "config_rejected"]) == 3  # but logged again: the files were read
    assert len(kinds) == 3

    bad.write_text(workload("b", "not-an-ip-either") + "---\n" + workload("c", "127.0.0.300"))  # b: a new reason
    await source.load_initial()
    assert kinds[3:] == ["WorkloadEntry"]

    bad.write_text(workload("b", "127.0.0.4") + "---\n" + workload("c", "127.0.0.5"))  # fixed ...
    await source.load_initial()
    bad.write_text(workload("b", "not-an-ip") + "---\n" + workload("c", "127.0.0.5"))  # ... and broken again
    await source.load_initial()
    assert kinds[4:] == ["WorkloadEntry"]


async def test_skipped_kinds_are_warned_about_once_per_read(tmp_path: Path) -> None:
    skipped = tmp_path / "mixed.yaml"
    skipped.write_text(workload("a", "127.0.0.2") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    (tmp_path / "other.yaml").write_text(workload("b", "127.0.0.3"))
    _, _, source = make_source(tmp_path)
    with structlog.testing.capture_logs() as logs:
        await source.load_initial()
        (tmp_path / "other.yaml").write_text(workload("b", "127.0.0.4"))
        await source.load_initial()  # reads other.yaml only
        touch_later(skipped, 1)
        await source.load_initial()  # reads mixed.yaml again
    warnings = [e for e in logs if e["event"] == "config_skipped"]
    assert [(e["log_level"], e["source"], e["unit"]) for e in warnings] == [("warning", "files", str(skipped))] * 2
    assert f"{skipped}:7: skipped ConfigMap (v1)" in warnings[0]["warning"]
