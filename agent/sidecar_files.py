"""What a sidecar's Envoy starts from, written where the proxy's uid (1337) reads it: the bootstrap, and with Citadel
the workload token's bytes in it (or in a file-based SDS document of its own, which ``agent.token_follower`` keeps
equal to the token file), a private copy of the trust bundle and the file-based SDS document naming that
copy. Shared by a pod's sidecar (``agent.pod``, control plane relayed to 127.0.0.1 in the pod) and a container's
(``agent.container_sidecar``, control plane reached at its own addresses)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from agent.shared_files import private_dir, write_private
from envoy_bootstrap.bootstrap import (
    BootstrapError,
    ProxyType,
    XdsMode,
    bootstrap_to_json,
    build_sidecar_bootstrap,
    write_citadel_trust,
    write_token_secret,
)
from meshplane.names import PROXY_UID

__all__ = [
    "ROOT_CERT_COPY",
    "TOKEN_DOCUMENT",
    "SidecarFilesError",
    "citadel_flags_problem",
    "read_token",
    "write_sidecar_bootstrap",
    "write_token_document",
]

ROOT_CERT_COPY = "root-cert.pem"  # the sidecar's copy of --root-cert, next to its bootstrap
TOKEN_DOCUMENT = "bootstrap.citadel-token.json"  # the token as a file-based SDS secret (``follow_token``)


class SidecarFilesError(RuntimeError):
    """A file the sidecar starts from is missing or bad; the message names the flag."""


def citadel_flags_problem(citadel: str | None, token_file: Path | None, root_cert: Path | None) -> str | None:
    """None when ``--citadel``, ``--token-file`` and ``--root-cert`` are all given or none is; else which are missing
    (a sidecar never starts without the identity half of its flags asked for)."""
    given = {"--citadel": citadel, "--token-file": token_file, "--root-cert": root_cert}
    missing = [flag for flag, value in given.items() if value is None]
    if 0 < len(missing) < len(given):
        return f"{', '.join(missing)}: --citadel, --token-file and --root-cert go together"
    return None


def read_token(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace dropped); SidecarFilesError when unreadable or empty."""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise SidecarFilesError(f"--token-file: cannot read {path}: {exc.strerror}") from None
    if not token:
        raise SidecarFilesError(f"--token-file: {path} is empty")
    return token


def write_token_document(directory: Path, token: str) -> Path:
    """``<directory>/bootstrap.citadel-token.json``: the token as the file-based SDS secret Envoy reads it from
    (``envoy_bootstrap.bootstrap.write_token_secret``), 0600 for uid 1337; replaced whole, so Envoy reloads it."""
    try:
        document = write_token_secret(directory / TOKEN_DOCUMENT, token)
    except BootstrapError as exc:
        raise SidecarFilesError(f"--token-file: {exc}") from None
    os.chown(document, PROXY_UID, PROXY_UID)
    return document


def _citadel_arguments(
    directory: Path, citadel: str | None, token_file: Path | None, root_cert: Path | None, follow_token: bool
) -> dict[str, object]:
    """Citadel's address, the token (or, ``follow_token``, the token's SDS document) and the trust document for the
    bootstrap; {} without Citadel. The root certificate is copied into the sidecar's own directory: the caller's may
    not be readable by uid 1337."""
    problem = citadel_flags_problem(citadel, token_file, root_cert)
    if problem is not None:
        raise SidecarFilesError(problem)
    if citadel is None or token_file is None or root_cert is None:
        return {}
    try:
        bundle = root_cert.read_bytes()
    except OSError as exc:
        raise SidecarFilesError(f"--root-cert: cannot read {root_cert}: {exc.strerror}") from None
    root = write_private(directory / ROOT_CERT_COPY, bundle, PROXY_UID)
    trust = write_citadel_trust(directory / "bootstrap.citadel-trust.json", root)
    os.chown(trust, PROXY_UID, PROXY_UID)
    token = read_token(token_file)
    if follow_token:
        return {"citadel": citadel, "token_secret": write_token_document(directory, token), "citadel_trust": trust}
    return {"citadel": citadel, "token": token, "citadel_trust": trust}


def write_sidecar_bootstrap(
    directory: Path,
    *,
    workload: str,
    namespace: str,
    address: str,
    domain_suffix: str,
    pilot: str,
    mixer: str | None,
    xds_mode: XdsMode,
    service_account: str,
    labels: Mapping[str, str],
    citadel: str | None = None,
    token_file: Path | None = None,
    root_cert: Path | None = None,
    follow_token: bool = False,
    node_metadata: Mapping[str, str] | None = None,
    proxy_type: ProxyType = "sidecar",
) -> Path:
    """``<directory>/bootstrap.json`` (``directory`` made 0700 for uid 1337) of a REDIRECT-captured sidecar with
    its admin on 127.0.0.1; ``pilot``, ``mixer`` and ``citadel`` are the addresses Envoy connects to.
    ``follow_token``: the token goes in ``TOKEN_DOCUMENT`` instead of the bootstrap, for ``follow_token`` to
    replace when ``token_file`` changes (Envoy reloads it; no restart). ``node_metadata``: more node metadata
    (``build_node``'s ``extra_metadata``). ``proxy_type`` ``router``: a gateway's (``agent.container_gateway``;
    nothing captured, ``labels`` are what Gateways select it by)."""
    directory = private_dir(directory, PROXY_UID)
    try:
        bootstrap = build_sidecar_bootstrap(
            workload=workload,
            namespace=namespace,
            address=address,
            domain_suffix=domain_suffix,
            pilot=pilot,
            mixer=mixer,
            xds_mode=xds_mode,
            admin_address="127.0.0.1",
            service_account=service_account,
            labels=labels,
            node_metadata=node_metadata,
            proxy_type=proxy_type,
            **_citadel_arguments(directory, citadel, token_file, root_cert, follow_token),  # type: ignore[arg-type]
        )
    except BootstrapError as exc:
        raise SidecarFilesError(str(exc)) from None
    return write_private(directory / "bootstrap.json", bootstrap_to_json(bootstrap).encode(), PROXY_UID)
