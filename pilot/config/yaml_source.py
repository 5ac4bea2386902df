"""Load YAML text into documents that remember the line of every field.

libyaml's C composer (PyYAML's ``CSafeLoader``; the pure-Python one when PyYAML was built without libyaml) turns
the text into a node tree whose nodes carry their position; we build plain dicts, lists and scalars from it,
recording the 1-based line of every field path, so that validation (and later the store's cross-resource checks)
can point at ``file:line`` for any path, falling back to the nearest parent present in the file when the field
itself is missing.

Scalars mean what they mean to Istio (go-yaml v2 behind sigs.k8s.io/yaml, YAML 1.1 booleans: ``yes``/``no``/``on``/
``off`` are booleans; see ``yaml_scalars``). Anchors, aliases and merge keys (``<<``) work; an alias reached again
is the same value (its fields' lines are those of the alias), an anchor that contains itself is an error, and so
is a document that aliases expand beyond go-yaml's bound (a "billion laughs" document). Duplicate keys are errors.
Limits, so that no file can stall or crash the reader: a file is at most ``MAX_FILE_BYTES`` (3 MiB, the Kubernetes
API server's request limit) and nests at most ``MAX_DEPTH`` (64) mappings and sequences deep.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pilot.config.errors import FieldPath
from pilot.config.yaml_scalars import (
    TAG_PREFIX,
    UnrepresentableScalar,
    is_plain_string,
    key_string,
    resolve_plain,
    resolve_tagged,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "YamlDocument",
    "YamlSyntaxError",
    "file_too_large",
    "line_of",
    "load_documents",
]

MAX_FILE_BYTES = 3 * 1024 * 1024
MAX_DEPTH = 64
_PLAIN = "tag:meshplane:plain"  # a plain scalar whose tag was not given: resolved by yaml_scalars
_STR = TAG_PREFIX + "str"
_MERGE = TAG_PREFIX + "merge"
_OPENED = frozenset({"quoted scalar", "flow sequence", "flow mapping"})  # errors reported where these open


class YamlSyntaxError(Exception):
    """The text is not YAML (or not loadable YAML, e.g. a duplicate key): the whole file is unusable."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class YamlDocument:
    """One non-empty document of a YAML stream."""

    root: Any  # a dict for every config document; anything else is reported by the parser
    line: int  # 1-based line where the document's content starts
    field_lines: Mapping[FieldPath, int] = field(default_factory=lambda: MappingProxyType({}))


def line_of(field_lines: Mapping[FieldPath, int], path: FieldPath, default: int) -> int:
    """The line of ``path``, else of its nearest parent present in the document, else ``default``."""
    for end in range(len(path), 0, -1):
        line = field_lines.get(path[:end])
        if line is not None:
            return line
    return default


def file_too_large(size: int) -> YamlSyntaxError:
    """The error for a file of ``size`` bytes, over ``MAX_FILE_BYTES``."""
    return YamlSyntaxError(
        1,
        f"the file is {size / 2**20:.1f} MiB, over meshplane's limit of {MAX_FILE_BYTES // 2**20} MiB per file "
        "(the Kubernetes API server's request limit): split it",
    )


def load_documents(text: str) -> list[YamlDocument]:
    """Every non-empty document in ``text``, in order. Raises ``YamlSyntaxError`` if any part is not valid YAML."""
    if len(text) > MAX_FILE_BYTES // 4 and (size := len(text.encode("utf-8", "surrogatepass"))) > MAX_FILE_BYTES:
        raise file_too_large(size)
    try:
        return _documents(text)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, len(text)) from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise YamlSyntaxError(line, f"YAML syntax error: character #x{exc.character:04x}: {exc.reason}") from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, f"YAML syntax error: {exc}") from exc
    except RecursionError as exc:  # only the pure-Python composer recurses without a bound of its own
        raise _too_deep(1) from exc
    except UnicodeEncodeError as exc:  # a lone surrogate: text that came from no UTF-8 file
        line = text.count("\n", 0, exc.start) + 1
        raise YamlSyntaxError(
            line, f"YAML syntax error: character #x{ord(text[exc.start]):04x} is not Unicode text"
        ) from exc


def _documents(text: str) -> list[YamlDocument]:
    loader = _Loader(text)  # the pure-Python reader already checks the characters here
    try:
        documents: list[YamlDocument] = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                document = _Builder().document(node)
                if document.root is not None:
                    documents.append(document)
        return documents
    finally:
        loader.dispose()


class _IstioResolver:
    """Leaves plain scalars to ``yaml_scalars`` (PyYAML's own resolver is not Istio's)."""

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return TAG_PREFIX + ("seq" if kind is SequenceNode else "map")

    def descend_resolver(self, current_node: Node | None, current_index: Any) -> None:
        """No path resolvers: nothing to track (the composer calls this for every collection)."""

    def ascend_resolver(self) -> None:
        """See ``descend_resolver``."""


class _PythonLoader(_IstioResolver, yaml.SafeLoader):
    """PyYAML's pure-Python parser and composer: used only when PyYAML was built without libyaml."""


_Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = _PythonLoader
if yaml.__with_libyaml__:

    class _CLoader(_IstioResolver, yaml.CSafeLoader):
        """libyaml's parser and composer, in C."""

    _Loader = _CLoader


def _syntax_error(exc: yaml.MarkedYAMLError, end: int) -> YamlSyntaxError:
    """Where the problem is: for an unclosed quote, or a bracket still open at the end of the text, where it opens."""
    problem, context = exc.problem_mark, exc.context_mark
    if exc.problem == "exceeded maximum nesting depth":  # libyaml's own bound (1000), far beyond ours
        return _too_deep(problem.line + 1 if problem is not None else 1)
    message = exc.problem or "invalid YAML"
    construct = (exc.context or "").removeprefix("while scanning a ").removeprefix("while parsing a ")
    opening = (
        context is not None
        and construct in _OPENED
        and (construct == "quoted scalar" or problem is None or problem.index >= end)
    )
    mark = context if opening else problem or context
    line = mark.line + 1 if mark is not None else 1
    if opening and problem is not None:
        message = f"{message} at line {problem.line + 1}, in the {construct} that opens here"
    elif exc.context:
        where = f" at line {context.line + 1}" if context is not None and context.line + 1 != line else ""
        message = f"{message} ({exc.context}{where})"
    return YamlSyntaxError(line, f"YAML syntax error: {message}")


class _Builder:
    """Plain values from one document's node tree, with the line of every field path.

    Scalars are resolved where they are met; a mapping or sequence is built once (an alias is the node it refers
    to, so meeting it again gives the same value) and its expanded size is kept, to bound alias expansion.
    """

    def __init__(self) -> None:
        self.lines: dict[FieldPath, int] = {}
        self.built: dict[int, Any] = {}  # id(node) -> value of every mapping and sequence built
        self.sizes: dict[int, int] = {}  # id(node) -> nodes in its value once aliases are expanded
        self.active: set[int] = set()  # collections being built: meeting one again is an anchor containing itself
        self.distinct = 0  # nodes built (a scalar reached through an alias counts again: it cannot multiply)

    def document(self, root: Node) -> YamlDocument:
        line = root.start_mark.line + 1
        value = self.value(root, (), line, 1)
        if not isinstance(root, ScalarNode):
            _check_aliasing(self.sizes[id(root)], self.distinct, line)
        return YamlDocument(root=value, line=line, field_lines=MappingProxyType(self.lines))

    def value(self, node: Node, path: FieldPath | None, line: int, depth: int) -> Any:
        """The value of ``node`` at ``path`` (None: not a field of the document, e.g. a merged mapping)."""
        self.distinct += 1
        if type(node) is ScalarNode:
            return _scalar(node)
        key = id(node)
        if key in self.built:
            self.distinct -= 1
            return self.built[key]
        if key in self.active:
            raise YamlSyntaxError(line, "YAML syntax error: an alias refers to an anchor that contains it")
        if depth > MAX_DEPTH:
            raise _too_deep(node.start_mark.line + 1)
        self.active.add(key)
        value = self.mapping(node, path, depth) if type(node) is MappingNode else self.sequence(node, path, depth)
        self.active.discard(key)
        self.built[key] = value
        return value

    def size(self, node: Node) -> int:
        return 1 if type(node) is ScalarNode else self.sizes[id(node)]

    def sequence(self, node: Node, path: FieldPath | None, depth: int) -> list[Any]:
        items: list[Any] = []
        size = 1
        for index, child in enumerate(node.value):
            line = child.start_mark.line + 1
            if path is None:
                items.append(self.value(child, None, line, depth + 1))
            else:
                child_path = (*path, index)
                self.lines[child_path] = line
                items.append(self.value(child, child_path, line, depth + 1))
            size += self.size(child)
        self.sizes[id(node)] = size
        return items

    def mapping(self, node: Node, path: FieldPath | None, depth: int) -> dict[str, Any]:
        entries: dict[str, Any] = {}
        first_lines: dict[str, int] = {}
        merges: list[tuple[Node, int]] = []
        size = 1
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            tag = key_node.tag
            if tag == _MERGE or (tag == _PLAIN and key_node.value == "<<"):
                merges.append((value_node, line))
                self.distinct += 1
                continue
            if type(key_node) is ScalarNode and (tag == _STR or (tag == _PLAIN and is_plain_string(key_node.value))):
                name = key_node.value  # the common case, without resolving (start-up reads every key)
                self.distinct += 1
            else:
                name = self.key(key_node, line, depth)
            if name in first_lines:
                raise YamlSyntaxError(line, f'duplicate key "{name}" (first at line {first_lines[name]})')
            first_lines[name] = line
            child_path = None if path is None else (*path, name)
            if child_path is not None:
                self.lines[child_path] = line
            if type(value_node) is ScalarNode:
                entries[name] = _scalar(value_node)
                self.distinct += 1
                size += 2
            else:
                entries[name] = self.value(value_node, child_path, line, depth + 1)
                size += 1 + self.sizes[id(value_node)]
        for source, line in merges:
            merged, merged_size = self.merged(source, line, depth)
            size += 1 + merged_size
            for name, value in merged.items():
                if name not in entries:  # keys written in the mapping win; the first merged source wins
                    entries[name] = value
                    if path is not None:
                        self.lines[(*path, name)] = line
        self.sizes[id(node)] = size
        return entries

    def key(self, node: Node, line: int, depth: int) -> str:
        value = self.value(node, None, line, depth + 1)
        try:
            return key_string(value)
        except TypeError as exc:
            raise YamlSyntaxError(line, f"YAML syntax error: {exc}") from None

    def merged(self, source: Node, line: int, depth: int) -> tuple[dict[str, Any], int]:
        """The entries a ``<<`` brings, from a mapping or a sequence of mappings (earlier ones win), and their size."""
        sources = source.value if type(source) is SequenceNode else [source]
        entries: dict[str, Any] = {}
        for item in sources:
            value = self.value(item, None, line, depth + 1)
            if not isinstance(value, dict):
                raise YamlSyntaxError(line, "YAML syntax error: map merge requires a mapping or a sequence of mappings")
            for name, entry in value.items():
                entries.setdefault(name, entry)
        return entries, sum(self.size(item) for item in sources) + (type(source) is SequenceNode)


def _scalar(node: ScalarNode) -> Any:
    try:
        return resolve_plain(node.value) if node.tag == _PLAIN else resolve_tagged(node.tag, node.value)
    except UnrepresentableScalar as exc:
        raise YamlSyntaxError(node.start_mark.line + 1, f"YAML syntax error: {exc}") from None


def _too_deep(line: int) -> YamlSyntaxError:
    return YamlSyntaxError(line, f"YAML syntax error: nested deeper than {MAX_DEPTH} levels")


def _check_aliasing(expanded: int, distinct: int, line: int) -> None:
    """go-yaml's bound on alias expansion: aliases may make up 99% of a document of up to 400 000 expanded nodes,
    then a share falling to 10% at 4 000 000."""
    aliased = expanded - distinct
    if aliased <= 100 or expanded <= 1000:
        return
    if expanded <= 400_000:
        allowed = 0.99
    elif expanded >= 4_000_000:
        allowed = 0.10
    else:
        allowed = 0.99 - 0.89 * (expanded - 400_000) / 3_600_000
    if aliased / expanded > allowed:
        raise YamlSyntaxError(line, "YAML syntax error: document contains excessive aliasing")
