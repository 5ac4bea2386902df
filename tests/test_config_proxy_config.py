"""ProxyConfig: Istio's validation (``ValidateProxyConfig``: concurrency >= 0, the selector's labels), what meshplane
refuses (Istio agent variables, proxy images other than the default), each problem at its line and field path."""

from __future__ import annotations

import textwrap

import pytest

from meshplane.proxy_environment import agent_variable_problem, environment_name_error
from pilot.config.parse import API_VERSIONS, PROXY_CONFIG_API_VERSIONS, parse_config_text
from pilot.config.types import ProxyConfig
from tests.conftest import IstioDocs, assert_rejected_with

KIND = "ProxyConfig"


class ProxyConfigDocs(IstioDocs):
    """Documents in ``networking.istio.io/v1beta1``: Istio serves ProxyConfig in that version only."""

    def doc(self, kind: str, body: str, *, name: str = "r", namespace: str = "ns") -> str:
        spec = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
        return (
            f"apiVersion: networking.istio.io/v1beta1\nkind: {kind}\nmetadata:\n  name: {name}\n"
            f"  namespace: {namespace}\nspec:\n{spec}\n"
        )


@pytest.fixture
def docs() -> ProxyConfigDocs:
    return ProxyConfigDocs()


def accepted(docs: IstioDocs, body: str) -> ProxyConfig:
    resource = docs.accepted(KIND, body)
    assert isinstance(resource, ProxyConfig)
    return resource


def test_only_v1beta1_is_read() -> None:
    assert PROXY_CONFIG_API_VERSIONS == ("networking.istio.io/v1beta1",)
    for api_version in API_VERSIONS:
        text = f"apiVersion: {api_version}\nkind: ProxyConfig\nmetadata: {{name: pc}}\nspec: {{concurrency: 1}}\n"
        parsed = parse_config_text(text, "pc.yaml")
        expected = 1 if api_version in PROXY_CONFIG_API_VERSIONS else 0
        assert len(parsed.resources) == expected, (api_version, parsed)


def test_a_workload_proxy_config_is_read_field_by_field(docs: ProxyConfigDocs) -> None:
    config = accepted(
        docs,
        """
        selector:
          matchLabels: {app: ratings}
        concurrency: 2
        environmentVariables: {LOG_FORMAT: json, "lower.case-name": "1"}
        """,
    )
    assert config.selector == {"app": "ratings"}
    assert config.concurrency == 2
    assert config.environment_variables == {"LOG_FORMAT": "json", "lower.case-name": "1"}


def test_nothing_set_is_a_proxy_config_that_changes_nothing(docs: ProxyConfigDocs) -> None:
    config = accepted(docs, "selector: {}")
    assert (config.selector, config.concurrency, dict(config.environment_variables)) == (None, None, {})


def test_concurrency_zero_is_one_worker_per_core(docs: ProxyConfigDocs) -> None:
    assert accepted(docs, "concurrency: 0").concurrency == 0


def test_image_type_default_is_the_proxy_meshplane_runs(docs: ProxyConfigDocs) -> None:
    config = accepted(docs, "concurrency: 1\nimage: {imageType: default}")
    assert config == accepted(docs, "concurrency: 1")  # the image meshplane runs anyway: nothing else changes


@pytest.mark.parametrize(
    ("body", "line", "path", "message"),
    [
        ("concurrency: -1", 1, "spec.concurrency", "must be at least 0, got -1"),
        ("concurrency: '2'", 1, "spec.concurrency", "expected an integer"),
        ("concurrency: 2147483648", 1, "spec.concurrency", "must be at least 0"),
        ("environmentVariables: {A: 1}", 1, "spec.environmentVariables.A", "expected a string"),
        ("environmentVariables: [A]", 1, "spec.environmentVariables", "expected a mapping of strings"),
        ('environmentVariables: {"A=B": x}', 1, 'spec.environmentVariables["A=B"]', "other than '='"),
        ('environmentVariables: {"A B": x}', 1, 'spec.environmentVariables["A B"]', "invalid environment variable"),
        (
            "environmentVariables: {ISTIO_META_DNS_CAPTURE: 'true'}",
            1,
            "spec.environmentVariables.ISTIO_META_DNS_CAPTURE",
            "not supported by meshplane yet (Istio's agent turns ISTIO_META_* variables into the proxy's node metadata",
        ),
        (
            "environmentVariables: {PROXY_CONFIG_XDS_AGENT: 'true'}",
            1,
            "spec.environmentVariables.PROXY_CONFIG_XDS_AGENT",
            "not supported by meshplane yet (a setting of Istio's agent",
        ),
        ("image: {imageType: distroless}", 1, "spec.image.imageType", "distroless is not supported by meshplane yet"),
        ("image: {imageType: debug}", 1, "spec.image.imageType", "debug is not supported by meshplane yet"),
        ("image: {type: debug}", 1, "spec.image.type", "unknown field"),
        ("selector: {matchLabels: {app: '*'}}", 1, "spec.selector.matchLabels.app", "invalid label value"),
        ("selector: {labels: {app: a}}", 1, "spec.selector.labels", "unknown field"),
        ("concurrency: 1\nproxyMetadata: {}", 2, "spec.proxyMetadata", "unknown field"),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, str) else None,
)
def test_rejections(docs: ProxyConfigDocs, body: str, line: int, path: str, message: str) -> None:
    assert_rejected_with(docs, KIND, body, [(line, path, message)])


def test_every_problem_is_reported_at_once(docs: ProxyConfigDocs) -> None:
    body = "concurrency: -2\nenvironmentVariables: {ISTIO_META_X: a, OK: b}\nimage: {imageType: debug}"
    assert_rejected_with(
        docs,
        KIND,
        body,
        [
            (1, "spec.concurrency", "must be at least 0"),
            (2, "spec.environmentVariables.ISTIO_META_X", "not supported by meshplane yet"),
            (3, "spec.image.imageType", "not supported by meshplane yet"),
        ],
    )


@pytest.mark.parametrize(
    ("name", "refused"),
    [("LOG_FORMAT", False), ("ISTIO_META_CLUSTER_ID", True), ("ISTIO_DELTA_XDS", True), ("CA_ADDR", True)],
    ids=str,
)
def test_agent_variables(name: str, refused: bool) -> None:
    assert environment_name_error(name) is None
    assert (agent_variable_problem(name) is not None) is refused
