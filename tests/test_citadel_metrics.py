"""Citadel's counts, made in plain Python and read by the Prometheus reader when it collects."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from citadel.metrics import CitadelMetrics


def _samples(metrics: CitadelMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("citadel_")
    }


def test_a_label_set_appears_with_its_first_count_and_counts_add_up() -> None:
    metrics = CitadelMetrics()
    assert not any(name.startswith("citadel_certificates_issued") for name, _ in _samples(metrics))

    for kind in ("sds", "sds", "csr"):
        metrics.issued(kind)
    metrics.failed("unauthenticated")
    metrics.token_reviewed("cached")
    metrics.configmap_written("created")

    samples = _samples(metrics)
    assert samples[("citadel_certificates_issued_total", (("kind", "sds"),))] == 2
    assert samples[("citadel_certificates_issued_total", (("kind", "csr"),))] == 1
    assert samples[("citadel_certificate_failures_total", (("reason", "unauthenticated"),))] == 1
    assert samples[("citadel_token_reviews_total", (("result", "cached"),))] == 1
    assert samples[("citadel_root_cert_configmap_writes_total", (("action", "created"),))] == 1
    metrics.shutdown()


def test_open_streams_are_reported_from_the_first_one_on_down_to_zero() -> None:
    metrics = CitadelMetrics()
    assert ("citadel_sds_connections", ()) not in _samples(metrics)

    metrics.connection_opened()
    metrics.connection_opened()
    assert _samples(metrics)[("citadel_sds_connections", ())] == 2

    metrics.connection_closed()
    metrics.connection_closed()
    assert _samples(metrics)[("citadel_sds_connections", ())] == 0
    metrics.shutdown()
