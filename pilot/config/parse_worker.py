"""The parse worker of ``pilot.parse_ahead``, ``main([DIR, SHARE, MIN_FILES])`` in a process of its own.

Lists ``DIR`` as ``DirectorySource`` does, parses ``ahead_share(files, SHARE)`` (nothing when there are fewer than
``MIN_FILES`` config files) and writes ``{file: (signature when listed, ParsedFile)}``, pickled, to stdout. Read-only
mappings in the parses are pickled as dicts and made read-only again when loaded (``_read_only``)."""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from meshplane.serving import tune_gc
from pilot.config.parse import ParsedFile
from pilot.config.source_files import FileSignature, ahead_share, read_and_parse, scan_config_files

__all__ = ["main", "parse_share"]


def parse_share(config_dir: Path, share: float, min_files: int) -> dict[str, tuple[FileSignature, ParsedFile]]:
    signatures = scan_config_files(config_dir)
    if len(signatures) < min_files:
        return {}
    results: dict[str, tuple[FileSignature, ParsedFile]] = {}
    for name in sorted(ahead_share(signatures, share)):
        parsed = read_and_parse(name)
        if parsed is not None:
            results[name] = (signatures[name], parsed)
    return results


def _read_only(entries: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(entries)


def _reduce_read_only(mapping: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _read_only, (dict(mapping),)


def dumps(results: dict[str, tuple[FileSignature, ParsedFile]]) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, MappingProxyType: _reduce_read_only}
    pickler.dump(results)
    return buffer.getvalue()


def main(argv: Sequence[str]) -> int:
    config_dir, share, min_files = Path(argv[0]), float(argv[1]), int(argv[2])
    tune_gc()  # as the command does: the parses are many long-lived objects
    try:
        sys.stdout.buffer.write(dumps(parse_share(config_dir, share, min_files)))
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # the command stopped before it needed the parses
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 1
    return 0
