"""YAML loading with field lines, limits, syntax errors, path formatting and ConfigError's text."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from pilot.config import yaml_source
from pilot.config.errors import ConfigError, format_path
from pilot.config.origin import Origin
from pilot.config.parse import parse_config_text
from pilot.config.types import ConfigKey
from pilot.config.yaml_source import MAX_DEPTH, MAX_FILE_BYTES, YamlSyntaxError, line_of, load_documents

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "e2e" / "demo_config"

TEXT = """\
# leading comment
---
kind: A
spec:
  http:
  - route:
    - destination:
        host: a
      weight: 10
  headers:
    end-user: {exact: jason}
  hosts: [a,
    b]
  literal: |
    text
  empty:
---
---
kind: B
"""


def test_field_lines_follow_the_tree() -> None:
    first, second = load_documents(TEXT)
    assert first.line == 3
    lines = first.field_lines
    assert lines[("kind",)] == 3
    assert lines[("spec", "http", 0)] == 6
    assert lines[("spec", "http", 0, "route", 0, "destination", "host")] == 8
    assert lines[("spec", "http", 0, "route", 0, "weight")] == 9
    assert lines[("spec", "headers", "end-user", "exact")] == 11  # in a flow mapping
    assert (lines[("spec", "hosts", 0)], lines[("spec", "hosts", 1)]) == (12, 13)  # a flow sequence over 2 lines
    assert lines[("spec", "literal")] == 14
    assert lines[("spec", "empty")] == 16
    assert first.root["spec"]["literal"] == "text\n" and first.root["spec"]["empty"] is None
    assert second.line == 19  # the empty document in between is skipped


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("spec", "http", 0, "route", 0, "weight"), 9),
        (("spec", "http", 0, "route", 0, "destination", "subset"), 7),  # missing: its parent's line
        (("spec", "http", 3, "timeout"), 5),  # no such list item: the list's line
        (("nothing",), 99),  # nothing found: the default
    ],
    ids=["exact", "missing-field", "missing-item", "default"],
)
def test_line_of_falls_back_to_nearest_parent(path: tuple[str | int, ...], line: int) -> None:
    document = load_documents(TEXT)[0]
    assert line_of(document.field_lines, path, 99) == line


def test_documents_are_plain_dicts_lists_and_scalars() -> None:
    (document,) = load_documents("a: {b: [1, x, {c: true}]}\n")
    assert type(document.root) is dict and type(document.root["a"]["b"]) is list
    assert document.root == {"a": {"b": [1, "x", {"c": True}]}}


def test_documents_start_where_their_content_does() -> None:
    documents = load_documents("a: 1\n---\njust a string\n---\n- x\n---\n# only a comment\n---\n")
    assert [(d.line, d.root) for d in documents] == [(1, {"a": 1}), (3, "just a string"), (5, ["x"])]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: 1\nb: [1, 2\n", 2, "did not find expected ',' or ']' at line 3, in the flow sequence that opens here"),
        ("a: 1\nb: {c: 1\n\n", 2, "in the flow mapping that opens here"),
        ("a: 1\nb: [1, 2\nc: 3\n", 3, "did not find expected ',' or ']' (while parsing a flow sequence at line 2)"),
        ('a: 1\nb: "abc\nc: 2\nd: 3\n', 2, "found unexpected end of stream at line 5, in the quoted scalar that opens"),
        ("a: 1\nb: 'abc\n---\nc: 2\n", 2, "found unexpected document indicator at line 3, in the quoted scalar"),
        ("a: 1\n---\nb:\n  c: 1\n c: 2\n", 5, "did not find expected key"),
        ("a: 1\na: 2\n", 2, 'duplicate key "a" (first at line 1)'),
        ("ports:\n  8080: a\n  '8080': b\n", 3, 'duplicate key "8080" (first at line 2)'),
        ("a: {b: 1, b: 2}\n", 1, 'duplicate key "b"'),
        ("a:\n\t- b\n", 2, "found character that cannot start any token"),
        ("a: 1\nb: x\x00y\n", 2, "character #x0000: control characters are not allowed"),
        ("é: 1\nb: \x07\n", 2, "character #x0007"),
        ("a: 1\nb: \ud800\n", 2, "character #xd800 is not Unicode text"),
        ("a: 1\nb: *nowhere\n", 2, "found undefined alias"),
        ("a: 1\n~: 2\n", 2, "a mapping key must be a string, a number or a boolean, not !!null"),
        ("? [a, b]\n: 1\n", 1, "not !!seq"),
        ("a: .inf\n", 1, "JSON has no infinity or NaN"),
        ("a: !!int abc\n", 1, "cannot decode !!str `abc` as a !!int"),
        ("a:\n  <<: [1]\n", 2, "map merge requires a mapping or a sequence of mappings"),
    ],
    ids=[
        "unclosed-flow-sequence",
        "unclosed-flow-mapping",
        "missing-comma",
        "unclosed-double-quote",
        "unclosed-single-quote-before-next-document",
        "bad-indent-in-second-doc",
        "duplicate-key",
        "duplicate-key-number-and-string",
        "duplicate-key-in-flow",
        "tab-indent",
        "nul-byte",
        "control-character-after-non-ascii",
        "lone-surrogate",
        "undefined-alias",
        "null-key",
        "sequence-key",
        "infinity",
        "tag-contradicts-value",
        "merge-of-a-scalar",
    ],
)
def test_syntax_errors_name_a_line(text: str, line: int, message: str) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        load_documents(text)
    assert caught.value.line == line
    assert message in caught.value.message


def nested_flow_sequences(depth: int) -> str:
    return "http: " + "[" * depth + "]" * depth + "\n"


def nested_flow_mappings(depth: int) -> str:
    return "http: " + "{a: " * depth + "1" + "}" * depth + "\n"


def nested_block_mappings(depth: int) -> str:
    return "".join(" " * level + "a:\n" for level in range(depth)) + " " * depth + "1\n"


def nested_block_sequences(depth: int) -> str:
    return "http:\n" + "".join(" " * (2 * level) + "-\n" for level in range(depth)) + " " * (2 * depth) + "x\n"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (nested_flow_sequences(250), 1),
        (nested_flow_sequences(100_000), 1),  # beyond libyaml's own bound (1000)
        (nested_flow_mappings(250), 1),
        (nested_block_mappings(250), MAX_DEPTH + 1),
        (nested_block_sequences(250), MAX_DEPTH + 1),
    ],
    ids=["flow-sequences", "flow-sequences-100k", "flow-mappings", "block-mappings", "block-sequences"],
)
def test_deep_nesting_is_an_error_with_a_line(text: str, line: int) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        load_documents(text)
    assert (caught.value.line, caught.value.message) == (line, "YAML syntax error: nested deeper than 64 levels")


@pytest.mark.parametrize(
    ("text", "line"),
    [("a: &x [*x]\n", 1), ("spec:\n  b: &x\n    c: *x\n", 3), ("a: &x {b: [{c: *x}]}\n", 1)],
    ids=["in-a-sequence", "in-a-mapping", "two-levels-down"],
)
def test_an_anchor_that_contains_itself_is_an_error(text: str, line: int) -> None:
    with pytest.raises(YamlSyntaxError, match="an alias refers to an anchor that contains it") as caught:
        load_documents(text)
    assert caught.value.line == line


def test_nesting_up_to_the_limit_is_read() -> None:
    (document,) = load_documents(nested_flow_sequences(MAX_DEPTH - 1))  # the root mapping is the first level
    value, depth = document.root["http"], 2
    while value:
        value, depth = value[0], depth + 1
    assert depth == MAX_DEPTH
    with pytest.raises(YamlSyntaxError):
        load_documents(nested_flow_sequences(MAX_DEPTH))


def test_deeply_nested_resource_is_a_file_error_with_its_line() -> None:
    text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  " + (
        nested_flow_sequences(250)
    )
    parsed = parse_config_text(text, "deep.yaml")
    assert parsed.file_error is not None and not parsed.resources
    assert str(parsed.file_error) == "deep.yaml:5: YAML syntax error: nested deeper than 64 levels"


def test_a_file_over_the_size_limit_is_refused_quickly() -> None:
    text = "a: " + "x" * (10 * 2**20) + "\n"
    started = time.perf_counter()
    with pytest.raises(YamlSyntaxError) as caught:
        load_documents(text)
    assert time.perf_counter() - started < 0.5
    assert caught.value.line == 1 and "10.0 MiB, over meshplane's limit of 3 MiB per file" in caught.value.message


def test_a_file_at_the_size_limit_counts_bytes_not_characters() -> None:
    text = "a: " + "é" * ((MAX_FILE_BYTES - 3) // 2 + 1)  # under the limit in characters, over it in UTF-8
    with pytest.raises(YamlSyntaxError, match="over meshplane's limit"):
        load_documents(text)


LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_alias_bomb_is_refused_without_expanding_it() -> None:
    started = time.perf_counter()
    with pytest.raises(YamlSyntaxError, match="document contains excessive aliasing"):
        load_documents(LAUGHS)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "text",
    [
        "a: [" + ", ".join(["1"] * 5000) + "]\n",
        "".join(f"k{i}: v\n" for i in range(5000)),
        "x: &x [1, 2, 3]\n" + "".join(f"k{i}: *x\n" for i in range(300)),
    ],
    ids=["long-flat-list", "many-keys", "some-aliases"],
)
def test_large_documents_without_alias_bombs_load(text: str) -> None:
    assert len(load_documents(text)) == 1


def test_aliases_and_merge_keys_keep_lines() -> None:
    text = "base: &b {a: 1, b: 2}\nspec:\n  <<: [*b, {c: 3, a: 9}]\n  b: 5\n  d: *b\n  e:\n    <<: *b\n"
    (document,) = load_documents(text)
    spec = document.root["spec"]
    assert spec == {"b": 5, "a": 1, "c": 3, "d": {"a": 1, "b": 2}, "e": {"a": 1, "b": 2}}  # written keys win
    lines = document.field_lines
    assert (lines[("spec", "b")], lines[("spec", "a")], lines[("spec", "c")]) == (4, 3, 3)  # merged: the << line
    assert lines[("spec", "d")] == 5
    assert ("spec", "d", "a") not in lines  # an alias is not walked again: its fields fall back to the alias
    assert lines[("spec", "e", "a")] == 7


def test_kind_list_items_keep_their_lines() -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: networking.istio.io/v1\n  kind: WorkloadEntry\n  metadata: {name: a, namespace: ns}\n"
        "  spec: {address: 10.0.0.1}\n"
        "- apiVersion: networking.istio.io/v1\n  kind: WorkloadEntry\n  metadata: {name: b, namespace: ns}\n"
        "  spec:\n    address: 10.0.0.2\n    ports: {http: 0}\n"
    )
    parsed = parse_config_text(text, "list.yaml")
    assert [(r.meta.key.name, r.meta.origin.line) for r in parsed.resources] == [("a", 4)]
    (rejected,) = parsed.rejected
    assert rejected.origin.line == 8 and [(e.origin.line, e.path) for e in rejected.errors] == [(13, "spec.ports.http")]


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("spec", "http", 0, "route", 1, "weight"), "spec.http[0].route[1].weight"),
        (
            ("spec", "http", 0, "match", 0, "headers", "end-user", "exact"),
            "spec.http[0].match[0].headers.end-user.exact",
        ),
        (("metadata", "labels", "app.kubernetes.io/name"), 'metadata.labels["app.kubernetes.io/name"]'),
        ((), ""),
    ],
    ids=["list-indexes", "header-key", "quoted-key", "empty"],
)
def test_format_path(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


def test_config_error_text() -> None:
    key = ConfigKey(kind="VirtualService", namespace="default", name="reviews")
    at = Origin(file="vs.yaml", line=12)
    error = ConfigError(origin=at, key=key, path="spec.http[0].timeout", message="too short")
    assert str(error) == "vs.yaml:12: VirtualService default/reviews: spec.http[0].timeout: too short"
    file_error = ConfigError(origin=Origin(file="vs.yaml", line=3), key=None, path="", message="YAML syntax error: x")
    assert str(file_error) == "vs.yaml:3: YAML syntax error: x"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: 1\na: 2\n", 2, 'duplicate key "a"'),
        ('a: 1\nb: "abc\nc: 2\n', 2, "in the quoted scalar that opens here"),
        (nested_flow_sequences(250), 1, "nested deeper than 64 levels"),
        (nested_flow_sequences(5000), 1, "nested deeper than 64 levels"),  # the Python composer recurses: bounded
        ("a: 1\nb: x\x00y\n", 2, "character #x0000"),
        (LAUGHS, 1, "document contains excessive aliasing"),
    ],
    ids=["duplicate-key", "unclosed-quote", "deep", "deeper-than-python-recursion", "nul-byte", "alias-bomb"],
)
def test_the_pure_python_fallback_reports_the_same(
    monkeypatch: pytest.MonkeyPatch, text: str, line: int, message: str
) -> None:
    monkeypatch.setattr(yaml_source, "_Loader", yaml_source._PythonLoader)
    with pytest.raises(YamlSyntaxError) as caught:
        load_documents(text)
    assert caught.value.line == line and message in caught.value.message


def test_the_pure_python_fallback_reads_the_same_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = [(d.line, d.root, dict(d.field_lines)) for d in load_documents(TEXT + "x: [on, 0x1F, '1']\n")]
    monkeypatch.setattr(yaml_source, "_Loader", yaml_source._PythonLoader)
    assert [(d.line, d.root, dict(d.field_lines)) for d in load_documents(TEXT + "x: [on, 0x1F, '1']\n")] == expected


SEEDS = (
    TEXT,
    LAUGHS,
    "a: &x {b: [1, 2], c: *x}\n",
    "base: &b {a: 1}\nspec:\n  <<: [*b, {c: 3}]\n  ports: {8080: a, '80': b, on: c, 1.5: d}\n",
    "- !!int 1\n- !!binary aGk=\n- ? [a]\n  : b\n- 'q' \n- \"d\\x41\"\n- |\n  text\n",
)
_ALPHABET = "[]{}:,-?&*!|>'\"#%@`\n\t ~.0123456789abxyon<\\\x00\x85é"


def _mutations(seeds: tuple[str, ...], count: int) -> list[str]:
    """``count`` texts, each a seed with 1 to 6 characters inserted, deleted or replaced (seeded: the same cases
    every run)."""
    rng = random.Random(8)
    cases = []
    for _ in range(count):
        text = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            where = rng.randrange(len(text) + 1)
            action = rng.random()
            if action < 0.4:
                text.insert(where, rng.choice(_ALPHABET))
            elif action < 0.7 and where < len(text):
                del text[where]
            elif where < len(text):
                text[where] = rng.choice(_ALPHABET)
        cases.append("".join(text))
    return cases


def test_mutated_documents_load_or_fail_with_a_line() -> None:
    """Whatever the text, the loader returns documents or raises YamlSyntaxError with a line in the text."""
    for text in _mutations(SEEDS, 5000):
        try:
            load_documents(text)
        except YamlSyntaxError as exc:
            assert 1 <= exc.line <= text.count("\n") + 2, (text, exc)


def test_mutated_istio_files_are_parsed_or_rejected_never_raise() -> None:
    """The demo mesh's files, mutated: parse_config_text returns resources, rejections or a file error."""
    seeds = tuple(path.read_text() for path in sorted(DEMO_CONFIG.glob("*.yaml")))
    assert len(seeds) >= 5
    for text in _mutations(seeds, 3000):
        parsed = parse_config_text(text, "mutated.yaml")
        if parsed.file_error is not None:
            assert 1 <= parsed.file_error.origin.line <= text.count("\n") + 2, (text, parsed.file_error)
