"""What a sidecar's Envoy starts from, written where the proxy's uid (1337) reads it: the bootstrap, and with Citadel
the workload token's bytes in it, a private copy of the trust bundle and the file-based SDS document naming that
copy. Shared by a pod's sidecar (``agent.pod``, control plane relayed to 127.0.0.1 in the pod) and a container's
(``agent.container_sidecar``, control plane reached at its own addresses)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from agent.shared_files import private_dir, write_private
from envoy_bootstrap.bootstrap import (
    BootstrapError,
    XdsMode,
    bootstrap_to_json,
    build_sidecar_bootstrap,
    write_citadel_trust,
)
from meshplane.names import PROXY_UID

__all__ = ["ROOT_CERT_COPY", "SidecarFilesError", "citadel_flags_problem", "write_sidecar_bootstrap"]

ROOT_CERT_COPY = "root-cert.pem"  # the sidecar's copy of --root-cert, next to its bootstrap


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


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise SidecarFilesError(f"--token-file: cannot read {path}: {exc.strerror}") from None
    if not token:
        raise SidecarFilesError(f"--token-file: {path} is empty")
    return token


def _citadel_arguments(
    directory: Path, citadel: str | None, token_file: Path | None, root_cert: Path | None
) -> dict[str, object]:
    """Citadel's address, the token and the trust document for the bootstrap; {} without Citadel. The root
    certificate is copied into the sidecar's own directory: the caller's may not be readable by uid 1337."""
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
    return {"citadel": citadel, "token": _read_token(token_file), "citadel_trust": trust}


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
) -> Path:
    """``<directory>/bootstrap.json`` (``directory`` made 0700 for uid 1337) of a REDIRECT-captured sidecar with
    its admin on 127.0.0.1; ``pilot``, ``mixer`` and ``citadel`` are the addresses Envoy connects to."""
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
            **_citadel_arguments(directory, citadel, token_file, root_cert),  # type: ignore[arg-type]
        )
    except BootstrapError as exc:
        raise SidecarFilesError(str(exc)) from None
    return write_private(directory / "bootstrap.json", bootstrap_to_json(bootstrap).encode(), PROXY_UID)
