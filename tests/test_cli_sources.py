"""``pilot`` and ``mixer`` read a config directory, a cluster, or both: with neither they say one is needed; the
cluster flags are exclusive, and either goes with ``--config-dir``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from mixer import cli as mixer_cli
from pilot import cli as pilot_cli

Parser = Callable[[], argparse.ArgumentParser]
COMMANDS = [("pilot", pilot_cli.main, pilot_cli.build_parser), ("mixer", mixer_cli.main, mixer_cli.build_parser)]


@pytest.mark.parametrize(("prog", "main", "parser"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_config_source_is_needed(
    prog: str, main: Callable[[Sequence[str]], int], parser: Parser, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{prog}: error: a config source is needed: --config-dir DIR, --kubeconfig FILE or --in-cluster (or both)"
    )


@pytest.mark.parametrize(("prog", "main", "parser"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_cluster_flags_are_exclusive(
    prog: str, main: Callable[[Sequence[str]], int], parser: Parser, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--kubeconfig", "k", "--in-cluster"])
    assert "argument --in-cluster: not allowed with argument --kubeconfig" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "config_dir", "kubeconfig", "in_cluster"),
    [
        (["--config-dir", "cfg", "--kubeconfig", "k"], Path("cfg"), Path("k"), False),
        (["--in-cluster"], None, None, True),
        (["--config-dir", "cfg"], Path("cfg"), None, False),
    ],
    ids=["directory-and-cluster", "in-cluster", "directory"],
)
@pytest.mark.parametrize(("prog", "main", "parser"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_sources_given(
    prog: str,
    main: object,
    parser: Parser,
    argv: list[str],
    config_dir: Path | None,
    kubeconfig: Path | None,
    in_cluster: bool,
) -> None:
    args = parser().parse_args(argv)
    assert (args.config_dir, args.kubeconfig, args.in_cluster) == (config_dir, kubeconfig, in_cluster)
