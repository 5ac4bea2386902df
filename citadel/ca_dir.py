"""The CA directory (``--ca-dir``): every file Citadel reads or writes for its roots, keys and trust bundle.

Two layouts, told apart by ``ca-key.pem``:

- **self-signed** (created on first start): ``root-cert.pem`` + ``root-key.pem``; while a root rotation is in
  progress also ``previous-root-cert.pem`` + ``previous-root-key.pem``. The root signs workload certificates.
- **plugged-in** (Istio's ``cacerts``): ``ca-cert.pem`` + ``ca-key.pem`` (the intermediate that signs),
  ``root-cert.pem`` (the root, or several roots while a plugged-in CA is replaced) and ``cert-chain.pem`` (the
  chain from ``ca-cert.pem`` up to the root; it may repeat ``ca-cert.pem`` first and the root last, as Istio's
  tools write it, and may be left out when the root signed ``ca-cert.pem`` directly).

Besides: ``token-signing-key.pem`` signs workload tokens (its own key, so a root rotation keeps tokens valid), and
``trust-bundle.pem`` is written for bootstraps' ``--root-cert``. Keys are written 0600, certificates 0644, the
directory 0700, each atomically (``citadel._files``); a key file readable by group or others is refused.

Root rotation writes, in this order: ``previous-root-key.pem`` and ``previous-root-cert.pem`` (copies of the
current root), then ``root-key.pem`` and ``root-cert.pem`` (the new root). Retiring removes
``previous-root-cert.pem`` then ``previous-root-key.pem``. So after a crash at any point the current root is whole
on disk, and loading reads what it finds: a ``previous-root-key.pem`` alone is a harmless leftover (ignored); a
previous root equal to the current one means the new root was never written (no rotation); ``root-key.pem`` not
matching ``root-cert.pem`` next to an intact previous root is reported with the two ``mv`` commands that restore
it. A Citadel polling :func:`load_ca` may see such a state for an instant while ``rotate-root`` runs: it should
keep its last good state when loading fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Literal

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from citadel._files import (
    CERT_MODE,
    KEY_MODE,
    check_key_mode,
    create_file,
    ensure_private_dir,
    remove_file,
    replace_file,
)
from citadel.ca import (
    PrivateKey,
    SigningCA,
    bundle_pem,
    cert_pem,
    certificate_fingerprint,
    create_root,
    key_pem,
    load_certs_pem,
    load_key_pem,
)
from citadel.errors import CAError

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "CERT_CHAIN",
    "PREVIOUS_ROOT_CERT",
    "PREVIOUS_ROOT_KEY",
    "ROOT_CERT",
    "ROOT_KEY",
    "TOKEN_KEY",
    "TRUST_BUNDLE",
    "CAMode",
    "CAState",
    "load_ca",
    "load_or_create_ca",
    "load_or_create_token_key",
    "replace_ca_files",
    "retire_previous_root",
    "rotate_root",
    "state_from_files",
    "write_trust_bundle",
]

log = structlog.get_logger(__name__)

ROOT_CERT = "root-cert.pem"
ROOT_KEY = "root-key.pem"
PREVIOUS_ROOT_CERT = "previous-root-cert.pem"
PREVIOUS_ROOT_KEY = "previous-root-key.pem"
CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
CERT_CHAIN = "cert-chain.pem"
TOKEN_KEY = "token-signing-key.pem"
TRUST_BUNDLE = "trust-bundle.pem"

_STATE_FILES = (ROOT_CERT, ROOT_KEY, PREVIOUS_ROOT_CERT, PREVIOUS_ROOT_KEY, CA_CERT, CA_KEY, CERT_CHAIN)
_KEY_FILES = frozenset({ROOT_KEY, PREVIOUS_ROOT_KEY, CA_KEY, TOKEN_KEY})

CAMode = Literal["self-signed", "plugged-in"]


@dataclass(frozen=True, slots=True)
class CAState:
    """What the CA directory holds now. ``trust_bundle`` is the current root first, then the previous root while
    a rotation is in progress; ``fingerprint`` changes whenever a file it was loaded from changes."""

    signer: SigningCA
    trust_bundle: tuple[x509.Certificate, ...]
    mode: CAMode
    previous_root: x509.Certificate | None
    fingerprint: str
    # The previous root with its key while a rotation is in progress: a Citadel restarted mid-rotation signs with it
    # until every workload trusts both roots again, then runs the rotation's phases (citadel/rotation.py).
    previous_signer: SigningCA | None = None

    @property
    def root(self) -> x509.Certificate:
        return self.trust_bundle[0]


# ---------------------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------------------


def _read_files(ca_dir: Path) -> dict[str, bytes]:
    """The contents of the CA files present in ``ca_dir`` (key files are mode-checked before they are read)."""
    files: dict[str, bytes] = {}
    for name in _STATE_FILES:
        path = ca_dir / name
        try:
            if name in _KEY_FILES:
                check_key_mode(path)
            files[name] = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise CAError(f"cannot read {path}: {exc.strerror}") from exc
    return files


def _fingerprint(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{len(files[name])}\0".encode())
        digest.update(files[name])
    return digest.hexdigest()


def _certs(ca_dir: Path, files: dict[str, bytes], name: str) -> list[x509.Certificate]:
    try:
        return load_certs_pem(files[name])
    except ValueError as exc:
        raise CAError(f"{ca_dir / name}: {exc}") from exc


def _one_cert(ca_dir: Path, files: dict[str, bytes], name: str, why: str) -> x509.Certificate:
    certs = _certs(ca_dir, files, name)
    if len(certs) != 1:
        raise CAError(f"{ca_dir / name} holds {len(certs)} certificates; it must hold one ({why})")
    return certs[0]


def _key(ca_dir: Path, files: dict[str, bytes], name: str) -> PrivateKey:
    try:
        return load_key_pem(files[name])
    except ValueError as exc:
        raise CAError(f"{ca_dir / name}: {exc}") from exc


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_ca_cert(path: Path, cert: x509.Certificate) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CAError(f"{path} is not a CA certificate: its BasicConstraints do not say CA:TRUE")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_cert_sign:
        raise CAError(f"{path} may not sign certificates: its KeyUsage lacks keyCertSign")


def _pair(ca_dir: Path, files: dict[str, bytes], cert_name: str, key_name: str) -> tuple[x509.Certificate, PrivateKey]:
    cert = _one_cert(ca_dir, files, cert_name, "a single CA certificate")
    key = _key(ca_dir, files, key_name)
    if cert.public_key() != key.public_key():
        raise CAError(f"{ca_dir / key_name} is not the key of {ca_dir / cert_name}")
    return cert, key


def _self_signed_state(ca_dir: Path, files: dict[str, bytes]) -> CAState:
    if CA_CERT in files:
        raise CAError(f"{ca_dir / CA_CERT} exists but {ca_dir / CA_KEY} does not: a plugged-in CA needs its key")
    if ROOT_CERT not in files and ROOT_KEY not in files:
        raise CAError(f"no root in {ca_dir}: found only {', '.join(sorted(files))}, but not {ROOT_CERT}/{ROOT_KEY}")
    for present, missing in ((ROOT_CERT, ROOT_KEY), (ROOT_KEY, ROOT_CERT)):
        if present in files and missing not in files:
            raise CAError(f"{ca_dir / present} exists but {ca_dir / missing} does not: the root needs both")
    if PREVIOUS_ROOT_CERT in files and PREVIOUS_ROOT_KEY not in files:
        raise CAError(
            f"{ca_dir / PREVIOUS_ROOT_CERT} exists without {ca_dir / PREVIOUS_ROOT_KEY}: restore the key, or remove "
            "the certificate to drop the previous root from the trust bundle"
        )
    previous = None
    previous_key: PrivateKey | None = None
    if PREVIOUS_ROOT_CERT in files:
        previous, previous_key = _pair(ca_dir, files, PREVIOUS_ROOT_CERT, PREVIOUS_ROOT_KEY)
    root = _one_cert(ca_dir, files, ROOT_CERT, "the root; a previous root goes in previous-root-cert.pem")
    key = _key(ca_dir, files, ROOT_KEY)
    if root.public_key() != key.public_key():
        hint = ""
        if previous is not None:
            hint = (
                f"; a rotate-root was interrupted while writing the new root, and the previous root is intact: "
                f"restore it with `mv {ca_dir / PREVIOUS_ROOT_CERT} {ca_dir / ROOT_CERT} && "
                f"mv {ca_dir / PREVIOUS_ROOT_KEY} {ca_dir / ROOT_KEY}` and run citadel rotate-root again"
            )
        raise CAError(f"{ca_dir / ROOT_KEY} is not the key of {ca_dir / ROOT_CERT}{hint}")
    _check_ca_cert(ca_dir / ROOT_CERT, root)
    if not _issued_by(root, root):
        raise CAError(
            f"{ca_dir / ROOT_CERT} is not self-signed; to sign with an intermediate, use Istio's cacerts layout "
            f"({CA_CERT}, {CA_KEY}, {ROOT_CERT}, {CERT_CHAIN})"
        )
    if previous == root:  # crashed after copying the root to previous-*, before writing the new root
        previous = None
    bundle = (root,) if previous is None else (root, previous)
    signer = SigningCA(cert=root, key=key, chain=())
    previous_signer = None
    if previous is not None and previous_key is not None:
        previous_signer = SigningCA(cert=previous, key=previous_key, chain=())
    return CAState(
        signer=signer,
        trust_bundle=bundle,
        mode="self-signed",
        previous_root=previous,
        fingerprint=_fingerprint(files),
        previous_signer=previous_signer,
    )


def _plugged_in_state(ca_dir: Path, files: dict[str, bytes]) -> CAState:
    missing = [name for name in (CA_CERT, ROOT_CERT) if name not in files]
    if missing:
        raise CAError(
            f"{ca_dir / CA_KEY} makes {ca_dir} a plugged-in CA (Istio's cacerts), but {', '.join(missing)} "
            "missing: it needs ca-cert.pem, ca-key.pem, root-cert.pem and (unless the root signed ca-cert.pem) "
            "cert-chain.pem"
        )
    cert, key = _pair(ca_dir, files, CA_CERT, CA_KEY)
    _check_ca_cert(ca_dir / CA_CERT, cert)
    roots = _certs(ca_dir, files, ROOT_CERT)
    chain = _certs(ca_dir, files, CERT_CHAIN) if CERT_CHAIN in files else []
    while chain and chain[0] == cert:  # Istio's cert-chain.pem starts with ca-cert.pem itself
        chain.pop(0)
    tail = chain[-1] if chain else cert
    if tail not in roots:
        issuer = next((root for root in roots if _issued_by(tail, root)), None)
        if issuer is None:
            raise CAError(
                f"the chain from {ca_dir / CA_CERT} through {ca_dir / CERT_CHAIN} does not reach a root in "
                f"{ca_dir / ROOT_CERT}: the last certificate ({tail.subject.rfc4514_string() or 'empty subject'}) "
                f"was issued by {tail.issuer.rfc4514_string()}; list every intermediate in {CERT_CHAIN}"
            )
        chain.append(issuer)
    for child, parent in pairwise((cert, *chain)):
        if not _issued_by(child, parent):
            raise CAError(
                f"{ca_dir / CERT_CHAIN}: {child.subject.rfc4514_string()} is not signed by the next certificate, "
                f"{parent.subject.rfc4514_string()}; list the chain in order from ca-cert.pem up to the root"
            )
    signer = SigningCA(cert=cert, key=key, chain=tuple(chain))
    bundle = (signer.root, *(root for root in roots if root != signer.root))
    return CAState(
        signer=signer, trust_bundle=bundle, mode="plugged-in", previous_root=None, fingerprint=_fingerprint(files)
    )


def _has_ca(files: dict[str, bytes]) -> bool:
    return bool(files.keys() - {PREVIOUS_ROOT_KEY})


def _state(ca_dir: Path, files: dict[str, bytes]) -> CAState:
    if not _has_ca(files):
        raise CAError(
            f"no CA in {ca_dir}: expected {ROOT_CERT} and {ROOT_KEY} (start citadel with --ca-dir {ca_dir} to create "
            f"them) or Istio's cacerts ({CA_CERT}, {CA_KEY}, {ROOT_CERT}, {CERT_CHAIN})"
        )
    if CA_KEY in files:
        return _plugged_in_state(ca_dir, files)
    return _self_signed_state(ca_dir, files)


def state_from_files(ca_dir: Path, files: Mapping[str, bytes]) -> CAState:
    """The CA that ``files`` (file name -> content) would be in ``ca_dir``, checked as :func:`load_ca` checks it
    (``ca_dir`` only names the files in errors). CAError when absent, incomplete or inconsistent."""
    return _state(ca_dir, {name: files[name] for name in _STATE_FILES if name in files})


def load_ca(ca_dir: Path) -> CAState:
    """Load the CA in ``ca_dir`` without creating anything. CAError if it is absent, incomplete or unsafe."""
    if not ca_dir.is_dir():
        raise CAError(f"CA directory {ca_dir} does not exist")
    return _state(ca_dir, _read_files(ca_dir))


# ---------------------------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------------------------


def write_trust_bundle(ca_dir: Path, state: CAState) -> Path:
    """Write every root of ``state.trust_bundle`` to ``trust-bundle.pem`` (bootstraps' ``--root-cert``)."""
    path = ca_dir / TRUST_BUNDLE
    replace_file(path, bundle_pem(state.trust_bundle), CERT_MODE)
    return path


def _write_bundle_if_stale(ca_dir: Path, state: CAState) -> None:
    try:
        current = (ca_dir / TRUST_BUNDLE).read_bytes()
    except FileNotFoundError:
        current = b""
    except OSError as exc:
        raise CAError(f"cannot read {ca_dir / TRUST_BUNDLE}: {exc.strerror}") from exc
    if current != bundle_pem(state.trust_bundle):
        write_trust_bundle(ca_dir, state)


def _root_organization(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else ""


def load_or_create_ca(ca_dir: Path, trust_domain: str) -> CAState:
    """Load the CA in ``ca_dir``, or create a self-signed root there when it holds none (creating the directory).

    Also keeps ``trust-bundle.pem`` up to date. CAError when the directory is unusable."""
    ensure_private_dir(ca_dir)
    files = _read_files(ca_dir)
    if not _has_ca(files):
        cert, key = create_root(trust_domain)
        # the key first: a crash in between leaves a key without a certificate, never a certificate without key
        if create_file(ca_dir / ROOT_KEY, key_pem(key), KEY_MODE):
            create_file(ca_dir / ROOT_CERT, cert_pem(cert), CERT_MODE)
            log.info(
                "ca_root_created",
                ca_dir=str(ca_dir),
                trust_domain=trust_domain,
                root=certificate_fingerprint(cert),
                not_after=cert.not_valid_after_utc.isoformat(),
            )
        files = _read_files(ca_dir)
    state = _state(ca_dir, files)
    root = state.signer.root
    log.info(
        "ca_loaded",
        ca_dir=str(ca_dir),
        mode=state.mode,
        root=certificate_fingerprint(root),
        root_not_after=root.not_valid_after_utc.isoformat(),
        rotating=state.previous_root is not None,
    )
    if state.mode == "self-signed" and _root_organization(root) != trust_domain:
        log.warning("ca_root_other_trust_domain", root_organization=_root_organization(root), trust_domain=trust_domain)
    _write_bundle_if_stale(ca_dir, state)
    return state


def replace_ca_files(ca_dir: Path, files: Mapping[str, bytes]) -> None:
    """Make ``ca_dir`` hold the self-signed CA of ``files`` (file name -> content, as ``state_from_files`` takes
    them, and optionally ``token-signing-key.pem``): keys first, then certificates; a previous root ``files`` lacks
    is removed (its certificate first). CAError when the directory is unusable."""
    ensure_private_dir(ca_dir)
    for name in (ROOT_KEY, PREVIOUS_ROOT_KEY, TOKEN_KEY, ROOT_CERT, PREVIOUS_ROOT_CERT):
        if name in files:
            replace_file(ca_dir / name, files[name], KEY_MODE if name in _KEY_FILES else CERT_MODE)
    for name in (PREVIOUS_ROOT_CERT, PREVIOUS_ROOT_KEY):
        if name not in files:
            remove_file(ca_dir / name)


def rotate_root(ca_dir: Path, trust_domain: str) -> CAState:
    """Start a root rotation: the current root becomes the previous root, a new self-signed root takes its place.

    Both roots are then in the trust bundle until :func:`retire_previous_root`. CAError for a plugged-in CA, when a
    rotation is already in progress, or when the directory holds no usable CA."""
    if not ca_dir.is_dir():
        raise CAError(f"CA directory {ca_dir} does not exist")
    files = _read_files(ca_dir)
    state = _state(ca_dir, files)
    if state.mode == "plugged-in":
        raise CAError(
            "replace cacerts to rotate a plugged-in CA: install the new ca-cert.pem, ca-key.pem and cert-chain.pem "
            "with both the new and the old root in root-cert.pem, then remove the old root once every workload has "
            "a new certificate"
        )
    if state.previous_root is not None:
        raise CAError(
            f"a root rotation is already in progress ({ca_dir / PREVIOUS_ROOT_CERT} exists): the running Citadel "
            "retires the previous root once every workload certificate is re-issued under the new one"
        )
    new_cert, new_key = create_root(trust_domain)
    # copies of the current root first, so that it is whole on disk whenever this stops
    replace_file(ca_dir / PREVIOUS_ROOT_KEY, files[ROOT_KEY], KEY_MODE)
    replace_file(ca_dir / PREVIOUS_ROOT_CERT, files[ROOT_CERT], CERT_MODE)
    replace_file(ca_dir / ROOT_KEY, key_pem(new_key), KEY_MODE)
    replace_file(ca_dir / ROOT_CERT, cert_pem(new_cert), CERT_MODE)
    rotated = load_ca(ca_dir)
    write_trust_bundle(ca_dir, rotated)
    log.info(
        "ca_root_rotated",
        ca_dir=str(ca_dir),
        root=certificate_fingerprint(new_cert),
        previous_root=certificate_fingerprint(state.signer.root),
    )
    return rotated


def retire_previous_root(ca_dir: Path) -> CAState:
    """End a root rotation: remove the previous root's files, so the trust bundle holds the current root only.

    Does nothing (but returns the state) when no rotation is in progress."""
    state = load_ca(ca_dir)
    if state.mode == "plugged-in":
        raise CAError("a plugged-in CA has no previous root: remove the old root from root-cert.pem instead")
    remove_file(ca_dir / PREVIOUS_ROOT_CERT)  # the certificate first: a key left alone is ignored
    remove_file(ca_dir / PREVIOUS_ROOT_KEY)
    retired = load_ca(ca_dir)
    write_trust_bundle(ca_dir, retired)
    if state.previous_root is not None:
        log.info("ca_previous_root_retired", ca_dir=str(ca_dir), root=certificate_fingerprint(state.previous_root))
    return retired


def load_or_create_token_key(ca_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The P-256 key that signs workload tokens, ``token-signing-key.pem`` (created 0600 when absent)."""
    ensure_private_dir(ca_dir)
    path = ca_dir / TOKEN_KEY
    while True:
        try:
            check_key_mode(path)
            data = path.read_bytes()
        except FileNotFoundError:
            key = ec.generate_private_key(ec.SECP256R1())
            if create_file(path, key_pem(key), KEY_MODE):
                log.info("token_signing_key_created", path=str(path))
                return key
            continue  # another process created it in the meantime: use theirs
        except OSError as exc:
            raise CAError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            loaded = load_key_pem(data)
        except ValueError as exc:
            raise CAError(f"{path}: {exc}") from exc
        if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(loaded.curve, ec.SECP256R1):
            raise CAError(f"{path} must hold an ECDSA P-256 key (tokens are signed with ES256)")
        return loaded
