"""Command-line arguments shared by the control-plane commands (``pilot``, ``mixer``): the mesh's names, parsed
and checked the same way everywhere (logging arguments: ``meshplane.logs.add_logging_arguments``)."""

from __future__ import annotations

import argparse

from pilot.config import parse_duration
from pilot.config.validate_names import dns1123_label_error, trust_domain_error
from pilot.model import DEFAULT_DOMAIN_SUFFIX, DEFAULT_ROOT_NAMESPACE, DEFAULT_TRUST_DOMAIN

__all__ = ["add_mesh_arguments", "duration_argument"]


def duration_argument(text: str) -> float:
    """An Istio duration (``100ms``, ``1.5s``, ``1m``) in seconds, for ``type=``."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _trust_domain(text: str) -> str:
    message = trust_domain_error(text)
    if message is not None:
        raise argparse.ArgumentTypeError(message)
    return text


def _namespace(text: str) -> str:
    message = dns1123_label_error(text, "namespace")
    if message is not None:
        raise argparse.ArgumentTypeError(message)
    return text


def add_mesh_arguments(parser: argparse.ArgumentParser) -> None:
    """``--domain-suffix``, ``--trust-domain`` and ``--root-namespace``: every component must agree on them."""
    parser.add_argument("--domain-suffix", default=DEFAULT_DOMAIN_SUFFIX, help="cluster domain (cluster.local)")
    parser.add_argument(
        "--trust-domain",
        default=DEFAULT_TRUST_DOMAIN,
        type=_trust_domain,
        help="SPIFFE trust domain of workload identities, as Citadel's --trust-domain (default: %(default)s)",
    )
    parser.add_argument(
        "--root-namespace",
        default=DEFAULT_ROOT_NAMESPACE,
        type=_namespace,
        help="namespace whose policies without selector apply to the whole mesh (default: %(default)s)",
    )
