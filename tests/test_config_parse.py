"""parse_config_text: documents, kinds, metadata, content hashes and file errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pilot.config.parse import parse_config_text
from pilot.config.types import ConfigKey, ServiceEntry, VirtualService

if TYPE_CHECKING:
    from tests.conftest import IstioDocs

SE_BODY = """\
hosts: [api.example.com]
ports:
- {number: 443, name: https, protocol: TLS}
resolution: DNS
"""


def test_multi_document_file_keeps_the_valid_resources() -> None:
    text = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: good-one}
spec:
  hosts: [a.example.com]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bad}
spec:
  hosts: [a.example.com]
  ports:
  - {number: 99999, name: http, protocol: HTTP}
---

---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: good-two, namespace: shop}
spec:
  address: 127.0.0.21
"""
    parsed = parse_config_text(text, "mixed.yaml")
    assert [r.meta.key.name for r in parsed.resources] == ["good-one", "good-two"]
    assert [r.meta.origin.line for r in parsed.resources] == [1, 17]
    (rejected,) = parsed.rejected
    assert rejected.key == ConfigKey(kind="ServiceEntry", namespace="default", name="bad")
    assert rejected.origin.line == 7
    assert [str(e) for e in rejected.errors] == [
        "mixed.yaml:13: ServiceEntry default/bad: spec.ports[0].number: must be between 1 and 65535, got 99999"
    ]
    assert parsed.file_error is None


@pytest.mark.parametrize(
    "api_version", ["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"]
)
def test_istio_api_versions_are_accepted(api_version: str) -> None:
    text = f"apiVersion: {api_version}\nkind: WorkloadEntry\nmetadata: {{name: w}}\nspec: {{address: 127.0.0.2}}\n"
    assert len(parse_config_text(text, "w.yaml").resources) == 1


@pytest.mark.parametrize(
    ("kind", "api_version"),
    [("WasmPlugin", "extensions.istio.io/v1alpha1"), ("ConfigMap", "v1")],
    ids=["wasm-plugin", "configmap"],
)
def test_other_kinds_are_skipped_with_a_warning(kind: str, api_version: str) -> None:
    text = f"# header\napiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x}}\nspec: {{whatever: 1}}\n"
    parsed = parse_config_text(text, "other.yaml")
    assert not parsed.resources and not parsed.rejected
    (warning,) = parsed.warnings
    assert warning.startswith(f"other.yaml:2: skipped {kind} ")


DOCUMENT_ERRORS = [
    (
        "wrong-api-version",
        "apiVersion: networking.istio.io/v2\nkind: WorkloadEntry\nmetadata: {name: w}\nspec: {address: 127.0.0.2}\n",
        "f.yaml:1: WorkloadEntry default/w: apiVersion: invalid value 'networking.istio.io/v2'",
    ),
    (
        "missing-api-version",
        "kind: WorkloadEntry\nmetadata: {name: w}\nspec: {address: 127.0.0.2}\n",
        "f.yaml:1: WorkloadEntry default/w: apiVersion: required field is missing",
    ),
    (
        "missing-kind",
        "apiVersion: networking.istio.io/v1\nmetadata: {name: w}\n",
        "f.yaml:1: kind: required: one of ServiceEntry",
    ),
    (
        "missing-name",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  namespace: a\n"
        "spec: {address: 127.0.0.2}\n",
        "f.yaml:3: metadata.name: required field is missing",
    ),
    (
        "invalid-name",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: Web_1\n"
        "spec: {address: 127.0.0.2}\n",
        "f.yaml:4: WorkloadEntry default/Web_1: metadata.name: invalid name 'Web_1': must be a DNS-1123 subdomain",
    ),
    (
        "invalid-namespace",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: w\n  namespace: a.b\n"
        "spec: {address: 127.0.0.2}\n",
        "f.yaml:5: WorkloadEntry a.b/w: metadata.namespace: invalid namespace 'a.b': must be a DNS-1123 label",
    ),
    (
        "label-not-a-string",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: w\n  labels:\n    version: 1\n"
        "spec: {address: 127.0.0.2}\n",
        "f.yaml:6: WorkloadEntry default/w: metadata.labels.version: expected a string, got integer 1",
    ),
    (
        "label-bad-key",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: w\n  labels:\n    -bad: x\n"
        "spec: {address: 127.0.0.2}\n",
        "f.yaml:6: WorkloadEntry default/w: metadata.labels.-bad: invalid label key '-bad'",
    ),
    (
        "unknown-top-level",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspecs: {address: 127.0.0.2}\n",
        "f.yaml:4: WorkloadEntry default/w: specs: unknown field 'specs' (did you mean 'spec'?)",
    ),
    (
        "unknown-metadata",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: w\n  nmespace: x\n"
        "spec: {address: 127.0.0.2}\n",
        "f.yaml:5: WorkloadEntry default/w: metadata.nmespace: unknown field 'nmespace' (did you mean 'namespace'?)",
    ),
    (
        "missing-spec",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\n",
        "f.yaml:1: WorkloadEntry default/w: spec: required field is missing",
    ),
    (
        "spec-not-a-mapping",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspec: [1]\n",
        "f.yaml:4: WorkloadEntry default/w: spec: expected a mapping, got a list",
    ),
    ("not-a-mapping", "- a\n- b\n", "f.yaml:1: a document must be a mapping"),
]


@pytest.mark.parametrize(("text", "error"), [c[1:] for c in DOCUMENT_ERRORS], ids=[c[0] for c in DOCUMENT_ERRORS])
def test_document_level_errors(text: str, error: str) -> None:
    parsed = parse_config_text(text, "f.yaml")
    assert not parsed.resources
    (rejected,) = parsed.rejected
    messages = [str(e) for e in rejected.errors]
    assert any(m.startswith(error) for m in messages), messages


def test_spec_is_checked_even_without_a_name() -> None:
    text = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {}\nspec:\n  address: nope\n"
    (rejected,) = parse_config_text(text, "f.yaml").rejected
    assert rejected.key is None
    assert [e.path for e in rejected.errors] == ["metadata.name", "spec.address"]


def test_kubernetes_metadata_and_status_are_ignored() -> None:
    text = """\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: w
  namespace: shop
  labels: {app.kubernetes.io/name: web, version: v1}
  annotations: {kubectl.kubernetes.io/last-applied-configuration: "{}"}
  uid: 1b2c
  resourceVersion: "42"
  generation: 3
  creationTimestamp: 2024-01-01T00:00:00Z
  managedFields: [{manager: kubectl}]
  ownerReferences: []
  finalizers: []
  generateName: w-
spec:
  address: 127.0.0.2
status:
  validationMessages: []
"""
    (resource,) = parse_config_text(text, "f.yaml").resources
    assert resource.meta.key == ConfigKey(kind="WorkloadEntry", namespace="shop", name="w")
    assert dict(resource.meta.labels) == {"app.kubernetes.io/name": "web", "version": "v1"}


def test_namespace_defaults_to_default() -> None:
    text = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspec: {address: 127.0.0.2}\n"
    (resource,) = parse_config_text(text, "f.yaml").resources
    assert resource.meta.key.namespace == "default"


def test_every_problem_of_a_resource_is_reported_at_once(istio: IstioDocs) -> None:
    errors = istio.errors(
        "VirtualService",
        """\
        hosts: [reviews]
        http:
        - route:
          - destination: {host: reviews}
            weigth: 50
          timeout: 10
          retries: {attempts: -1}
        """,
    )
    assert len(errors) == 3, errors
    istio.assert_error(errors, "VirtualService", 5, "spec.http[0].route[0].weigth", "did you mean 'weight'?")
    istio.assert_error(errors, "VirtualService", 6, "spec.http[0].timeout", "expected a duration string")
    istio.assert_error(errors, "VirtualService", 7, "spec.http[0].retries.attempts", "must be at least 0")


def test_syntax_error_makes_the_file_unusable() -> None:
    text = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w\nspec: {}\n"
    parsed = parse_config_text(text, "broken.yaml")
    assert parsed.file_error is not None
    assert str(parsed.file_error).startswith("broken.yaml:4: YAML syntax error")
    assert not parsed.resources and not parsed.rejected


def test_kind_list_items_are_read_one_by_one() -> None:
    text = """\
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: WorkloadEntry
  metadata: {name: a}
  spec: {address: 127.0.0.2}
- apiVersion: networking.istio.io/v1
  kind: WorkloadEntry
  metadata: {name: b}
  spec:
    address: 127.0.0.3
    weight: -1
"""
    parsed = parse_config_text(text, "list.yaml")
    assert [(r.meta.key.name, r.meta.origin.line) for r in parsed.resources] == [("a", 4)]
    (rejected,) = parsed.rejected
    assert [str(e) for e in rejected.errors] == [
        "list.yaml:13: WorkloadEntry default/b: spec.weight: must be at least 0, got -1"
    ]


def test_content_hash_is_the_same_for_the_same_config(istio: IstioDocs) -> None:
    a = istio.accepted("ServiceEntry", SE_BODY)
    reformatted = istio.accepted(
        "ServiceEntry",
        """\
        # same config, other spelling
        resolution: DNS
        ports: [{protocol: tls, name: https, number: 443}]
        hosts:
        - api.example.com
        location: MESH_EXTERNAL
        """,
    )
    assert isinstance(a, ServiceEntry) and isinstance(reformatted, ServiceEntry)
    assert a.meta.content_hash == reformatted.meta.content_hash
    assert len(a.meta.content_hash) == 64


@pytest.mark.parametrize(
    ("names", "body"),
    [
        ({"name": "other"}, SE_BODY),
        ({"namespace": "other"}, SE_BODY),
        ({}, SE_BODY.replace("443", "8443")),
    ],
    ids=["name", "namespace", "spec"],
)
def test_content_hash_differs_when_config_differs(istio: IstioDocs, names: dict[str, str], body: str) -> None:
    base = istio.accepted("ServiceEntry", SE_BODY)
    other = istio.accepted("ServiceEntry", body, **names)
    assert base.meta.content_hash != other.meta.content_hash


def test_content_hash_covers_labels() -> None:
    template = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: w, labels: {{v: '{}'}}}}\n"
    template += "spec: {{address: 127.0.0.2}}\n"
    (one,) = parse_config_text(template.format("1"), "f.yaml").resources
    (two,) = parse_config_text(template.format("2"), "f.yaml").resources
    assert one.meta.content_hash != two.meta.content_hash


def test_field_lines_are_kept_for_the_store(istio: IstioDocs) -> None:
    parsed = istio.parse("VirtualService", "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n")
    (resource,) = parsed.resources
    assert isinstance(resource, VirtualService)
    assert parsed.field_lines[resource.meta.origin.line][("spec", "http", 0, "route", 0, "destination")] == 10
