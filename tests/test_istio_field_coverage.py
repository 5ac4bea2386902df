"""Nothing accepted and then ignored: every field of every Istio message meshplane reads is translated into the
generated Envoy resources or rejected at validation (``tests/istio_field_table.py`` says which, per field).

- The table covers exactly the fields of Istio's API (``pilot.config.istio_api``), plus the removed ones.
- ``Translated``: the mesh with the field set generates different Envoy resources than the mesh without it.
- ``ProvenBy``: the named generator test exists.
- ``Rejected`` / ``Removed``: validation rejects the resource at the field's path, saying "not supported by
  meshplane yet" (or that Istio removed the field and what replaces it).
- A field name Istio does not have keeps "unknown field".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from meshplane import names
from pilot.config.errors import format_path
from pilot.config.istio_api import ISTIO_MESSAGES, REMOVED_FIELDS
from pilot.config.parse import (
    API_VERSIONS,
    PROXY_CONFIG_API_VERSIONS,
    SECURITY_API_VERSIONS,
    ParsedFile,
    parse_config_text,
)
from pilot.config.validate_telemetry import TELEMETRY_API_VERSIONS
from pilot.generate.registry import GENERATORS
from pilot.model import build_snapshot, parse_node_id, resolve_proxy
from tests.istio_field_table import (
    CAPTURED_NODES,
    MESH,
    MESSAGE_PATHS,
    NODES,
    SITES,
    TABLE,
    ProvenBy,
    Rejected,
    Removed,
    Site,
    Translated,
)

NODE_METADATA = {"MESHPLANE_SDS": "true", "MESHPLANE_MIXER": "true"}
CAPTURED_METADATA = {**NODE_METADATA, names.INTERCEPTION_MODE_METADATA: "REDIRECT"}
SECURITY_KINDS = ("PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication")
REPO = Path(__file__).resolve().parent.parent


def _document(kind: str, name: str, spec: Mapping[str, Any]) -> str:
    api_version = SECURITY_API_VERSIONS[0] if kind in SECURITY_KINDS else API_VERSIONS[0]
    if kind == "Telemetry":
        api_version = TELEMETRY_API_VERSIONS[0]
    if kind == "EnvoyFilter":
        api_version = "networking.istio.io/v1alpha3"  # its one version, as in Istio
    api_version = PROXY_CONFIG_API_VERSIONS[0] if kind == "ProxyConfig" else api_version
    return json.dumps({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": spec})


def _parse(site: Site, spec: Mapping[str, Any]) -> ParsedFile:
    resources = {**MESH, (site.kind, site.name): spec}
    text = "\n---\n".join(_document(kind, name, body) for (kind, name), body in resources.items())
    return parse_config_text(text, "mesh.yaml")


def _generated(parsed: ParsedFile) -> dict[str, bytes]:
    """Every resource of every type for the NODES proxies, and the CAPTURED_NODES ones captured, serialized."""
    errors = [str(e) for r in parsed.rejected for e in r.errors]
    assert not errors, errors
    snapshot = build_snapshot({r.meta.key: r for r in parsed.resources}, version=1)
    out: dict[str, bytes] = {}
    nodes = [(node, node, NODE_METADATA) for node in NODES]
    nodes += [(f"captured {node}", node, CAPTURED_METADATA) for node in CAPTURED_NODES]
    for label, node, metadata in nodes:
        proxy = resolve_proxy(parse_node_id(node, "", metadata), snapshot)
        for type_url, generator in GENERATORS.items():
            messages = [m for scope in generator.scopes(proxy) for m in generator.build_scope(scope, snapshot)]
            messages += generator.build_proxy(proxy, snapshot)
            for message in messages:
                name = getattr(message, "name", "") or getattr(message, "cluster_name", "")
                out[f"{label} {type_url.rsplit('.', 1)[-1]} {name}"] = message.SerializeToString(deterministic=True)
    return out


def _with(
    spec: Mapping[str, Any], path: tuple[str | int, ...], change: Mapping[str, Any], drop: tuple[str, ...]
) -> Any:
    """A deep copy of ``spec`` whose mapping at ``path`` has ``change`` merged in and ``drop`` removed."""
    copy = json.loads(json.dumps(spec))
    node = copy
    for step in path:
        node = node[step]
    for key in drop:
        node.pop(key, None)
    node.update(json.loads(json.dumps(change)))
    return copy


def _message_path(message: str) -> tuple[str | int, ...]:
    return MESSAGE_PATHS.get(message, SITES[message].path)


CASES = [(message, name, use) for message, fields in TABLE.items() for name, use in fields.items()]
IDS = [f"{message}.{name}" for message, name, _ in CASES]


def test_the_table_lists_every_field_of_istio_s_api_and_nothing_else() -> None:
    listed = {(message, name) for message, name, _ in CASES}
    expected = {(message, name) for message, names in ISTIO_MESSAGES.items() for name in names} | set(REMOVED_FIELDS)
    assert sorted(expected - listed) == [], "fields of Istio's API the table does not say what meshplane does with"
    assert sorted(listed - expected) == [], "fields in the table that Istio's API does not have"
    assert set(SITES) == set(TABLE) == set(ISTIO_MESSAGES)
    removed = {(m, n) for m, n, use in CASES if isinstance(use, Removed)}
    assert removed == set(REMOVED_FIELDS)


def test_the_sites_are_valid() -> None:
    for message, site in SITES.items():
        parsed = _parse(site, site.spec)
        assert not parsed.rejected, (message, [str(e) for r in parsed.rejected for e in r.errors])


@pytest.mark.parametrize(("message", "name", "use"), CASES, ids=IDS)
def test_every_field_is_translated_or_rejected(message: str, name: str, use: object) -> None:
    site = SITES[message]
    path = _message_path(message)
    if isinstance(use, Translated):
        baseline = _with(site.spec, path, use.context, ())
        changed = _with(site.spec, path, {**use.context, name: use.value}, use.drop)
        before, after = _generated(_parse(site, baseline)), _generated(_parse(site, changed))
        assert before != after, f"{message}.{name}: setting it changes no generated Envoy resource"
    elif isinstance(use, ProvenBy):
        file, test = use.test.split("::")
        assert re.search(rf"^(async )?def {re.escape(test)}\(", (REPO / file).read_text(), re.MULTILINE), use.test
    else:
        assert isinstance(use, Rejected | Removed)
        value = {} if use.value is None else use.value
        parsed = _parse(site, _with(site.spec, path, {name: value}, ()))
        field_path = format_path(("spec", *path, name))
        errors = [(e.path, e.message) for r in parsed.rejected for e in r.errors]
        expected = "not supported by meshplane yet" if isinstance(use, Rejected) else "removed from Istio's API"
        assert any(p == field_path and expected in text for p, text in errors), (field_path, errors)


@pytest.mark.parametrize(
    ("message", "name"),
    [("HTTPRoute", "timeOut"), ("HTTPRetry", "atempts"), ("ServiceEntry", "hostz")],
    ids=["route", "retry", "service-entry"],
)
def test_a_name_istio_does_not_have_is_an_unknown_field(message: str, name: str) -> None:
    site = SITES[message]
    path = _message_path(message)
    parsed = _parse(site, _with(site.spec, path, {name: 1}, ()))
    errors = [(e.path, e.message) for r in parsed.rejected for e in r.errors]
    assert next(m for p, m in errors if p == format_path(("spec", *path, name))).startswith(f"unknown field {name!r}")


# ------------------------------------------------------------------------------------------------ README

README_BEGIN = "<!-- not-supported fields: generated from tests/istio_field_table.py; begin -->"
README_END = "<!-- not-supported fields: end -->"


def not_supported_table() -> str:
    """The README's list of the Istio fields rejected as not supported yet, from the table."""
    rows = ["| Istio message | fields rejected as `not supported by meshplane yet` |", "| --- | --- |"]
    for message, fields in TABLE.items():
        rejected = [f"`{name}`" for name, use in fields.items() if isinstance(use, Rejected)]
        if rejected:
            rows.append(f"| {message} | {', '.join(rejected)} |")
    removed = [
        f"{message} `{name}`"
        for message, fields in TABLE.items()
        for name, use in fields.items()
        if isinstance(use, Removed)
    ]
    rows.append(f"| removed from Istio's API (rejected, naming the replacement) | {', '.join(removed)} |")
    return "\n".join(rows)


def test_the_readme_lists_exactly_the_fields_that_are_not_supported() -> None:
    readme = (REPO / "README.md").read_text()
    assert README_BEGIN in readme and README_END in readme
    block = readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip()
    assert block == not_supported_table(), "README.md is out of date; put this between the markers:\n" + (
        not_supported_table()
    )
