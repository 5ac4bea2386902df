"""bench.startup: the reference tools are found (or missing said clearly), and the table compares to the stand-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.startup import DEFAULT_TOOLS_DIR, Startup, format_table, load_xds_load


def test_missing_reference_tools_are_named_with_where_they_were_looked_for(tmp_path: Path) -> None:
    (tmp_path / "xds_load.py").write_text("")
    with pytest.raises(SystemExit) as caught:
        load_xds_load(tmp_path)
    assert str(caught.value) == (
        f"bench.startup: xds_standin.py not found in {tmp_path}: the reference tools live in shared/tools beside "
        "the repository checkout; pass --tools-dir DIR if they are elsewhere"
    )


def test_the_default_tools_dir_is_shared_tools_beside_the_checkout() -> None:
    repository = Path(__file__).resolve().parents[1]
    assert repository.parent / "shared" / "tools" == DEFAULT_TOOLS_DIR


def test_table_gives_ratios_to_the_stand_in_and_the_verdict() -> None:
    table = format_table(
        [
            Startup(name="stand-in", seconds=0.5, cpu_seconds=0.4),
            Startup(name="pilot", seconds=0.7, cpu_seconds=0.8),
            Startup(name="mixer", seconds=1.0, cpu_seconds=0.6),
        ],
        files=2001,
    ).splitlines()
    assert table[0] == "start-up on 2001 config files (median of the rounds; ratios to the stand-in):"
    assert table[2].split() == ["stand-in", "0.50", "s", "0.40", "s", "1.00x", "1.00x"]
    assert table[3].split() == ["pilot", "0.70", "s", "0.80", "s", "1.40x", "2.00x", "ok"]
    assert table[4].split() == ["mixer", "1.00", "s", "0.60", "s", "2.00x", "1.50x", "over", "1.5x"]
