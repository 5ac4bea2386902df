"""Parsing ahead in a second process (``pilot.parse_ahead``): the first load is the same with it, without it, and
when the worker fails or a file changes after the worker read it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pilot.config import FILES, ConfigSink, ConfigStore, DirectorySource
from pilot.config.source_files import FileSignature, ahead_share
from pilot.parse_ahead import ParseAhead, config_dir_argument

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "e2e" / "demo_config"
BROKEN = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: broken}\nspec: {weight: -1}\n"


def _mesh(tmp_path: Path) -> Path:
    """The demo mesh, plus a rejected resource and a file that is not YAML (their errors must be the same too)."""
    config = tmp_path / "config"
    shutil.copytree(DEMO_CONFIG, config)
    (config / "90-broken.yaml").write_text(BROKEN)
    (config / "91-not-yaml.yaml").write_text("kind: [unclosed\n")
    return config


async def _load(config: Path, ahead: ParseAhead | None) -> ConfigStore:
    store = ConfigStore(sources=(FILES,))
    await DirectorySource(config, ConfigSink(store, lambda change: None), parse_ahead=ahead).load_initial()
    return store


def _state(store: ConfigStore) -> Any:
    """Everything the store holds: resources (and their hashes, origins), rejections, file errors, warnings."""
    return (
        {key: (r, r.meta.content_hash, r.meta.origin) for key, r in store.accepted.items()},
        [(r.key, r.errors) for r in store.rejections],
        store.unit_errors,
        store.warnings,
        store.configz(),
    )


async def test_the_load_is_the_same_with_the_worker(tmp_path: Path) -> None:
    config = _mesh(tmp_path)
    ahead = ParseAhead.start(config, min_files=1)
    if not ahead.started:
        pytest.skip("the worker needs two usable CPUs")
    with_worker = await _load(config, ahead)
    assert ahead.failure is None
    assert ahead.taken >= 1  # at least the last file (by name) was parsed by the worker
    assert _state(with_worker) == _state(await _load(config, None))


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "import sys; sys.exit(3)"],
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'not a pickle')"],
        [sys.executable, "-c", "import pickle, sys; sys.stdout.buffer.write(pickle.dumps([1]))"],
    ],
    ids=["exit-status", "garbage", "not-a-mapping"],
)
async def test_a_failed_worker_only_means_every_file_is_parsed_here(tmp_path: Path, command: list[str]) -> None:
    config = _mesh(tmp_path)
    ahead = ParseAhead(subprocess.Popen(command, stdout=subprocess.PIPE))
    store = await _load(config, ahead)
    assert ahead.failure is not None and ahead.taken == 0
    assert _state(store) == _state(await _load(config, None))


async def test_a_file_changed_after_the_worker_read_it_is_read_again(tmp_path: Path) -> None:
    config = _mesh(tmp_path)
    ahead = ParseAhead.start(config, share=1.0, min_files=1)
    if not ahead.started:
        pytest.skip("the worker needs two usable CPUs")
    results = ahead.results()  # the worker is done: what it parsed is now stale for the file changed below
    assert str(config / "90-broken.yaml") in results
    (config / "90-broken.yaml").write_text(BROKEN.replace("weight: -1", "address: 127.0.0.9") + "# longer\n")
    replay = ParseAhead(subprocess.Popen([sys.executable, "-c", _replay(results)], stdout=subprocess.PIPE), share=1.0)
    store = await _load(config, replay)
    assert replay.taken == len(results) - 1
    assert "broken" in {key.name for key in store.accepted}  # the file as it is now, no longer the rejected one
    assert _state(store) == _state(await _load(config, None))


def _replay(results: dict[str, Any]) -> str:
    """A worker that answers ``results`` again (what a real worker wrote before a file changed)."""
    from pilot.config.parse_worker import dumps

    return f"import sys; sys.stdout.buffer.write({dumps(results)!r})"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--config-dir", "/etc/mesh", "--debounce", "1s"], Path("/etc/mesh")),
        (["--log-level=debug", "--config-dir=/etc/mesh"], Path("/etc/mesh")),
        (["--debounce", "1s"], None),
        (["--config-dir"], None),
    ],
    ids=["separate-value", "joined-value", "absent", "missing-value"],
)
def test_config_dir_is_read_before_the_command_parser(argv: list[str], expected: Path | None) -> None:
    assert config_dir_argument(argv) == expected


@pytest.mark.parametrize(
    ("sizes", "share", "taken"),
    [
        ({"a": 10, "b": 10, "c": 10, "d": 10}, 0.5, {"c", "d"}),
        ({"a": 10, "b": 10, "c": 10, "d": 10}, 0.3, {"c", "d"}),
        ({"a": 10, "b": 10, "c": 10, "d": 70}, 0.5, {"d"}),
        ({"a": 10, "b": 10}, 0.0, set()),
        ({"a": 10, "b": 10}, 1.0, {"a", "b"}),
    ],
    ids=["half", "rounds-up-to-a-file", "by-bytes-not-count", "none", "all"],
)
def test_the_worker_takes_the_last_files_by_bytes(sizes: dict[str, int], share: float, taken: set[str]) -> None:
    signatures = {name: FileSignature(mtime_ns=0, size=size, inode=i) for i, (name, size) in enumerate(sizes.items())}
    assert ahead_share(signatures, share) == taken
