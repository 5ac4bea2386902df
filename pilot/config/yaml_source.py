"""Load YAML text into documents that remember the line of every field.

ruamel.yaml's round-trip loader keeps positions on its containers (``CommentedMap.lc.key(k)``,
``CommentedSeq.lc.item(i)``); we walk each document once and record the 1-based line of every field path, so
that validation (and later the store's cross-resource checks) can point at ``file:line`` for any path, falling
back to the nearest parent present in the file when the field itself is missing.

YAML 1.2 rules apply (ruamel's default): ``yes``/``no``/``on``/``off`` are strings, not booleans.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from pilot.config.errors import FieldPath

__all__ = [
    "YamlDocument",
    "YamlSyntaxError",
    "line_of",
    "load_documents",
]

_DOCUMENT_START = re.compile(r"^---(?:\s|$)")


class YamlSyntaxError(Exception):
    """The text is not YAML (or not loadable YAML, e.g. a duplicate key): the whole file is unusable."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class YamlDocument:
    """One non-empty document of a YAML stream."""

    root: Any  # a CommentedMap for every config document; anything else is reported by the parser
    line: int  # 1-based line where the document's content starts
    field_lines: Mapping[FieldPath, int] = field(default_factory=lambda: MappingProxyType({}))


def line_of(field_lines: Mapping[FieldPath, int], path: FieldPath, default: int) -> int:
    """The line of ``path``, else of its nearest parent present in the document, else ``default``."""
    for end in range(len(path), 0, -1):
        line = field_lines.get(path[:end])
        if line is not None:
            return line
    return default


def load_documents(text: str) -> list[YamlDocument]:
    """Every non-empty document in ``text``, in order. Raises ``YamlSyntaxError`` if any part is not valid YAML."""
    yaml = YAML(typ="rt")
    try:
        roots = list(yaml.load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        message = exc.problem or "invalid YAML"
        if exc.context:
            message = f"{message} ({exc.context})"
        raise YamlSyntaxError(line, f"YAML syntax error: {message}") from exc
    except YAMLError as exc:
        raise YamlSyntaxError(1, f"YAML syntax error: {exc}") from exc
    starts = _document_start_lines(text)
    documents: list[YamlDocument] = []
    for index, root in enumerate(roots):
        if root is None:
            continue
        fallback = starts[index] if index < len(starts) else 1
        lines: dict[FieldPath, int] = {}
        _record_lines(root, (), lines, set())
        documents.append(YamlDocument(root=root, line=_root_line(root, fallback), field_lines=MappingProxyType(lines)))
    return documents


def _root_line(root: Any, fallback: int) -> int:
    if isinstance(root, CommentedMap | CommentedSeq):
        return int(root.lc.line) + 1
    return fallback


def _document_start_lines(text: str) -> list[int]:
    """The line each document starts at: its ``---`` line, or line 1 for a first document without one.

    Only used for documents whose root is a scalar (ruamel keeps no position for those).
    """
    starts: list[int] = []
    content_seen = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _DOCUMENT_START.match(line):
            if not starts and content_seen:
                starts.append(1)
            starts.append(number)
        elif line.strip() and not line.lstrip().startswith(("#", "%")):
            content_seen = True
    return starts or [1]


def _record_lines(node: Any, path: FieldPath, lines: dict[FieldPath, int], seen: set[int]) -> None:
    """Record the line of every field under ``node``; a node reached again through a YAML alias is not
    walked twice (its fields fall back to the alias's line), which also stops on self-referencing anchors."""
    if not isinstance(node, CommentedMap | CommentedSeq) or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, CommentedMap):
        for key, value in node.items():
            child = (*path, key if isinstance(key, str) else str(key))
            position = _key_position(node, key)
            if position is not None:
                lines[child] = position + 1
            _record_lines(value, child, lines, seen)
    else:
        for index, value in enumerate(node):
            child = (*path, index)
            with contextlib.suppress(KeyError, IndexError, TypeError):
                lines[child] = int(node.lc.item(index)[0]) + 1
            _record_lines(value, child, lines, seen)


def _key_position(node: CommentedMap, key: Any) -> int | None:
    try:
        return int(node.lc.key(key)[0])
    except (KeyError, IndexError, TypeError):
        return None  # e.g. a key that came in through a YAML merge (<<: *anchor) has no position of its own
