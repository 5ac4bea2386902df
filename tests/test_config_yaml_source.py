"""YAML loading with field lines, path formatting and ConfigError's text."""

from __future__ import annotations

import pytest

from pilot.config.errors import ConfigError, format_path
from pilot.config.origin import Origin
from pilot.config.types import ConfigKey
from pilot.config.yaml_source import YamlSyntaxError, line_of, load_documents

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
    assert lines[("spec", "headers", "end-user", "exact")] == 11
    assert second.line == 14  # the empty document in between is skipped


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


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: 1\nb: [1, 2\n", 3, "YAML syntax error"),
        ("a: 1\n---\nb:\n  c: 1\n c: 2\n", 5, "YAML syntax error"),
        ("a: 1\na: 2\n", 2, 'duplicate key "a"'),
        ("a:\n\t- b\n", 2, "YAML syntax error"),
    ],
    ids=["unclosed-flow", "bad-indent-in-second-doc", "duplicate-key", "tab-indent"],
)
def test_syntax_errors_name_a_line(text: str, line: int, message: str) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        load_documents(text)
    assert caught.value.line == line
    assert message in caught.value.message


def test_scalar_documents_get_their_start_line() -> None:
    documents = load_documents("a: 1\n---\njust a string\n---\n- x\n")
    assert [d.line for d in documents] == [1, 2, 5]


def test_yaml_1_2_keeps_yes_and_no_as_strings() -> None:
    (document,) = load_documents("a: yes\nb: no\nc: true\n")
    assert document.root == {"a": "yes", "b": "no", "c": True}


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


def test_aliases_and_merge_keys_keep_lines_and_terminate() -> None:
    (document,) = load_documents("spec:\n  <<: {a: 1}\n  b: &x\n    c: *x\n  d: *x\n")
    assert document.root["spec"]["a"] == 1  # merged in
    assert document.field_lines[("spec", "b", "c")] == 4
    assert document.field_lines[("spec", "d")] == 5
    assert ("spec", "d", "c") not in document.field_lines  # an alias is not walked twice
