"""Property: whatever document arrives, the parser and validators answer with resources, rejections or a file error,
and never raise. Documents are the corpus' valid resources with random values put at random paths (random types,
random YAML-ish structures), and random text."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilot.config.parse import ParsedFile, parse_config_text
from tests.config_corpus import VALID_LOOKING, VALID_MESH, render

BASES = (*VALID_MESH, *VALID_LOOKING)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "*", "0", "1s", "-1s", "10.0.0.0/8", "default", "STRICT", "a.b.c", "%", "\r\n", "[", "{}"]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8) | st.integers(0, 70000), children, max_size=4),
    ),
    max_leaves=12,
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*path, index))
    return out


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    document = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths))
        value = draw(values)
        if not path:
            return value
        parent = document
        for segment in path[:-1]:
            parent = parent[segment]
        if draw(st.booleans()) and isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = value  # a new key beside it
        else:
            parent[path[-1]] = value
    return document


def _answers(parsed: ParsedFile) -> None:
    assert isinstance(parsed, ParsedFile)
    for rejected in parsed.rejected:
        assert rejected.errors
        for error in rejected.errors:
            assert error.origin.line >= 1
            assert len(error.message) <= 2100


@PROPERTY
@given(documents=st.lists(mutated_documents(), min_size=1, max_size=3))
def test_mutated_documents_get_an_answer_never_an_exception(documents: list[Any]) -> None:
    _answers(parse_config_text(render(documents), "random.yaml"))


@PROPERTY
@given(parts=st.lists(st.text(alphabet="ab: -[]{}'\"\n\t#&*!|>%@`,?0", max_size=30) | st.just("---\n"), max_size=12))
def test_random_yaml_ish_text_gets_an_answer_never_an_exception(parts: list[str]) -> None:
    _answers(parse_config_text("".join(parts), "random.yaml"))
