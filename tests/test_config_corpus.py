"""The corpus of invalid config (tests/config_corpus.py): every case is rejected alone, with file:line and a field
path, while the valid resources beside it stay in force; and what the valid mesh and the valid-looking cases become
is accepted by Envoy.

The cases in ``PARSER_CASES`` need the YAML reader to bound its input (nesting depth, size, non-UTF-8 bytes, the
line of an unclosed quote); they are a group of their own.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest

from pilot.analyze import analyze_directory
from pilot.config.parse import ParsedFile, parse_config_text
from pilot.config.source_files import read_and_parse as read_config_file  # the directory source's own reader
from pilot.config.store import ConfigStore
from pilot.config.types import ConfigKey
from pilot.config.validate_http_actions import DIRECT_RESPONSE_BODY_MAX_BYTES
from pilot.generate import clusters, endpoints, listeners
from pilot.generate.registry import ROUTE_TYPE
from pilot.generate.routes import MAX_DIRECT_RESPONSE_BODY_BYTES
from pilot.model import build_snapshot, parse_node_id, resolve_proxy
from tests import xdstest
from tests.config_corpus import (
    DEPENDENTS,
    FILE_CASES,
    HAND_WRITTEN,
    PARSER_CASES,
    VALID_LOOKING,
    VALID_MESH,
    Case,
    FileCase,
    case_file_text,
    mutation_cases,
    render,
)
from tests.source_builders import generated_type

CASES = [*mutation_cases(), *HAND_WRITTEN]
FILE = "case.yaml"
MAX_ERROR_CHARS = 2500  # a message quotes values cut short: no error line is megabytes long


def _key(document: dict[str, object]) -> ConfigKey:
    metadata = document["metadata"]
    assert isinstance(metadata, dict)
    return ConfigKey(kind=str(document["kind"]), namespace=str(metadata["namespace"]), name=str(metadata["name"]))


VALID_KEYS = {_key(d) for d in VALID_MESH}
VALID_TEXT = render(VALID_MESH)


@functools.cache
def _valid_parse() -> ParsedFile:
    parsed = parse_config_text(VALID_TEXT, FILE)
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    return parsed


def test_the_corpus_has_hundreds_of_cases() -> None:
    total = len(CASES) + len(FILE_CASES) + len(PARSER_CASES)
    assert total >= 300, total
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_valid_mesh_is_accepted_whole() -> None:
    parsed = _valid_parse()
    assert {r.meta.key for r in parsed.resources} == VALID_KEYS


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_case_is_rejected_alone_and_the_rest_stays_in_force(case: Case) -> None:
    text, start, end = case_file_text(case)
    parsed = parse_config_text(text, FILE)

    assert parsed.file_error is None
    assert len(parsed.rejected) == 1, [str(e) for r in parsed.rejected for e in r.errors] or "accepted"
    errors = parsed.rejected[0].errors
    assert errors
    for error in errors:
        assert error.origin.file == FILE
        assert start - 1 <= error.origin.line <= end, (str(error), start, end)  # start - 1: its "---" line
        assert len(str(error)) <= MAX_ERROR_CHARS, str(error)[:300]
    about = [e for e in errors if e.path.startswith(case.path) or (e.path and case.path.startswith(e.path))]
    assert any(case.message in e.message for e in about), (case.path, case.message, [str(e)[:300] for e in errors])
    replaced = _key(VALID_MESH[case.replaces]) if case.replaces is not None else None
    assert {r.meta.key for r in parsed.resources} == VALID_KEYS - {replaced}

    store = ConfigStore()
    store.apply([_valid_parse()])
    good = dict(store.accepted)
    store.apply([parsed])
    in_force = VALID_KEYS  # the broken one's last good version stays...
    if replaced is not None and parsed.rejected[0].key != replaced:  # ...unless its name is what broke: then it is gone
        in_force = VALID_KEYS - {replaced} - {_key(VALID_MESH[i]) for i in DEPENDENTS.get(case.replaces or 0, ())}
    assert set(store.accepted) == in_force
    assert all(store.accepted[k].meta.content_hash == good[k].meta.content_hash for k in in_force)


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.id for c in FILE_CASES])
def test_a_file_that_is_not_yaml_is_rejected_whole_and_its_last_parse_stays(case: FileCase) -> None:
    parsed = parse_config_text(case.content.decode(), FILE)

    assert parsed.file_error is not None
    assert not parsed.resources
    if case.line is not None:
        assert parsed.file_error.origin.line == case.line, str(parsed.file_error)
    store = ConfigStore()
    store.apply([_valid_parse()])
    store.apply([parsed])
    assert set(store.accepted) == VALID_KEYS
    assert [e.origin.file for e in store.file_errors] == [FILE]


@pytest.mark.parametrize("case", PARSER_CASES, ids=[c.id for c in PARSER_CASES])
def test_parser_level_case_is_rejected_with_its_line_quickly(tmp_path: Path, case: FileCase) -> None:
    path = tmp_path / FILE
    path.write_bytes(case.content)
    started = time.monotonic()
    parsed = read_config_file(str(path))
    elapsed = time.monotonic() - started

    assert elapsed < 3.0, f"took {elapsed:.1f}s"
    problems = [parsed.file_error] if parsed.file_error else [e for r in parsed.rejected for e in r.errors]
    assert problems and not parsed.resources, parsed
    assert all(len(str(p)) <= MAX_ERROR_CHARS for p in problems)
    if case.line is not None:
        assert problems[0] is not None and problems[0].origin.line == case.line, str(problems[0])


@pytest.mark.parametrize("case", CASES[::25] + list(HAND_WRITTEN[::10]), ids=lambda c: c.id)
async def test_analyze_reports_a_sample_with_file_line_and_path(tmp_path: Path, case: Case) -> None:
    text, start, end = case_file_text(case)
    (tmp_path / FILE).write_text(text)

    findings = await analyze_directory(tmp_path)

    def here(location: str) -> bool:
        file, line = location.rsplit(":", 1)
        return file.endswith(FILE) and start - 1 <= int(line) <= end

    rejected = [f for f in findings if f.code == "MP0101" and here(f.location)]
    assert rejected, findings
    assert any(f.message.startswith(case.path) for f in rejected), [f.message[:200] for f in rejected]


def test_the_direct_response_limit_is_the_one_route_tables_carry() -> None:
    assert DIRECT_RESPONSE_BODY_MAX_BYTES == MAX_DIRECT_RESPONSE_BODY_BYTES


def test_envoy_accepts_the_valid_mesh_and_every_valid_looking_case(tmp_path: Path) -> None:
    parsed = parse_config_text(render([*VALID_MESH, *VALID_LOOKING]), FILE)
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    snap = build_snapshot({r.meta.key: r for r in parsed.resources}, version=1)
    proxy = resolve_proxy(parse_node_id("sidecar~127.0.0.21~reviews-v1.default~default.svc.cluster.local"), snap)
    route_tables = generated_type(ROUTE_TYPE, proxy, snap)
    [cluster_scope] = clusters.cluster_scopes(proxy)
    [endpoint_scope] = endpoints.endpoint_scopes(proxy)
    all_clusters = clusters.build_scope_clusters(cluster_scope, snap) + clusters.build_inbound_clusters(proxy, snap)
    assignments = endpoints.build_scope_load_assignments(endpoint_scope, snap)
    proxy_listeners = listeners.build_listeners(proxy, snap)

    xdstest.check_resources(
        clusters=all_clusters, load_assignments=assignments, listeners=proxy_listeners, routes=route_tables
    )
    xdstest.envoy_validate(
        tmp_path, clusters=all_clusters, listeners=proxy_listeners, routes=route_tables, load_assignments=assignments
    )
