"""``meshplane-agent sidecar``'s status port: the app's probers from ``$ISTIO_KUBE_APP_PROBERS`` (what the injector
sets) or ``--app-probers``, a bad JSON refused at start, and ``--status-port 0`` only without probers."""

from __future__ import annotations

import argparse

import pytest

from agent.app_probers import AppProber
from agent.container_sidecar import SidecarError, _status_server, add_sidecar_arguments
from agent.status_server import probers_from_arguments

REQUIRED = ["--workload", "w", "--ip", "10.244.0.5", "--pilot", "10.96.0.20:15010"]
PROBERS = '{"/app-health/reviews/readyz":{"httpGet":{"path":"/healthz","port":9080},"timeoutSeconds":2}}'
READY = {"/app-health/reviews/readyz": AppProber(action="httpGet", port=9080, path="/healthz", timeout_seconds=2)}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_sidecar_arguments(parser)
    return parser.parse_args([*REQUIRED, *argv])


def test_probers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISTIO_KUBE_APP_PROBERS", PROBERS)
    args = _parse([])
    assert (args.status_port, probers_from_arguments(args)) == (15020, READY)


def test_probers_from_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ISTIO_KUBE_APP_PROBERS", raising=False)
    assert probers_from_arguments(_parse(["--app-probers", PROBERS])) == READY
    assert probers_from_arguments(_parse([])) == {}


REFUSED = [
    # (id, flags, message part)
    ("bad-json", ["--app-probers", "{"], "ISTIO_KUBE_APP_PROBERS: not JSON"),
    ("bad-prober", ["--app-probers", '{"/app-health/a/readyz":{"exec":{}}}'], "exactly one of httpGet, tcpSocket"),
    ("no-port-for-probers", ["--app-probers", PROBERS, "--status-port", "0"],
     "--status-port 0: the app's probes (/app-health/reviews/readyz) need the port"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_sidecar_refuses(flags: list[str], message: str) -> None:
    with pytest.raises(SidecarError) as refused:
        _status_server(_parse(flags))
    assert message in str(refused.value)


def test_status_port_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ISTIO_KUBE_APP_PROBERS", raising=False)
    assert _status_server(_parse(["--status-port", "0"])) is None
