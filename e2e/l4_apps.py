"""TCP and TLS apps for the pod scenarios (``/usr/bin/python3`` scripts, stdlib only, as ``e2e.pods``' apps):
Istio's ``tcp-echo`` server (each line it reads comes back prefixed with its version's word, ``one`` or ``two``), a
TLS server answering one line naming itself with a certificate of its own, and clients that open one fresh
connection per try by name, as an unmodified app does (the name resolves through the pod's DNS agent, iptables
sends the connection to the sidecar). Certificates are made by the test with ``cryptography``: a CA and one leaf
per host, kept in memory and handed to the apps on their command lines (the app's uid cannot read the test's
temporary directory)."""

from __future__ import annotations

import datetime
import json
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.netns import in_netns_command
from agent.pod_network import PodAddress
from e2e import tcp_echo_server
from e2e.pods import APP_UID, PYTHON

__all__ = [
    "TCP_ECHO_PORT",
    "TCP_ECHO_WORDS",
    "TestCertificates",
    "make_certificates",
    "tcp_client_arguments",
    "tcp_client_replies",
    "tcp_client_timeout",
    "tcp_echo_counts",
    "tcp_echo_replies",
    "tcp_echo_server_command",
    "tls_hellos",
    "tls_server_command",
]

TCP_ECHO_PORT = 9000
TCP_ECHO_WORDS = {"v1": "one", "v2": "two"}  # Istio's tcp-echo Deployments: ``tcp-echo-server 9000 one`` / ``two``

_TLS_SERVER = """
import os, socketserver, ssl, sys, tempfile
name, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
with tempfile.TemporaryDirectory() as directory:
    for file, text in (("cert.pem", cert), ("key.pem", key)):
        with open(os.path.join(directory, file), "w") as out:
            out.write(text)
    context.load_cert_chain(os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem"))
class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(f"{name}\\n".encode())
        self.wfile.flush()
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    def get_request(self):
        sock, address = self.socket.accept()
        return context.wrap_socket(sock, server_side=True), address
    def handle_error(self, request, client_address):
        pass
Server(("0.0.0.0", port), Handler).serve_forever()
"""

_TCP_CLIENT = """
import json, socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for i in range(count):
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(f"hello {i}\\n".encode())
            out.append(sock.makefile().readline().strip() or "closed")
    except OSError as error:
        out.append(f"error {error!r}")
print(json.dumps(out))
"""

_TLS_CLIENT = """
import json, socket, ssl, sys
host, port, sni, ca, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
context = ssl.create_default_context(cadata=ca)
out = []
for _ in range(count):
    try:
        with socket.create_connection((host, port), timeout=3) as raw:
            with context.wrap_socket(raw, server_hostname=sni) as sock:
                subject = dict(item[0] for item in sock.getpeercert()["subject"])
                out.append([subject.get("commonName", ""), sock.makefile().readline().strip()])
    except (OSError, ssl.SSLError) as error:
        out.append(["error", repr(error)])
print(json.dumps(out))
"""


def tcp_echo_server_command(prefix: str, port: int = TCP_ECHO_PORT) -> list[str]:
    """Istio's ``tcp-echo-server`` (``istio/tcp-echo-server``, args ``9000 one``): ``<prefix> <line>`` per line
    (``e2e.tcp_echo_server``, its source handed to ``python3 -c``)."""
    return [PYTHON, "-c", Path(tcp_echo_server.__file__).read_text(), prefix, str(port)]


def tls_server_command(name: str, port: int, cert_pem: str, key_pem: str) -> list[str]:
    """A TLS server on ``port`` with this certificate, sending ``<name>\\n`` on each connection."""
    return [PYTHON, "-c", _TLS_SERVER, name, str(port), cert_pem, key_pem]


def _run_json(pod: PodAddress, script: str, args: list[str], timeout: float) -> list[object]:
    done = subprocess.run(
        in_netns_command(pod.netns, [PYTHON, "-c", script, *args], uid=pod.app_uid or APP_UID),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    assert done.returncode == 0, f"client in {pod.name} failed: {done.stderr}"
    result = json.loads(done.stdout)
    assert isinstance(result, list)
    return result


def tcp_echo_replies(pod: PodAddress, host: str, port: int, count: int) -> list[str]:
    """``count`` fresh TCP connections from an app in ``pod`` to ``host:port`` (by name), one line each way: the
    reply lines (``error ...`` for a failed connection, ``closed`` for one closed without a reply)."""
    replies = _run_json(pod, _TCP_CLIENT, [host, str(port), str(count)], tcp_client_timeout(count))
    return [str(reply) for reply in replies]


def tcp_client_arguments(host: str, port: int, count: int) -> list[str]:
    """The arguments after a Python interpreter of ``tcp_echo_replies``' client (stdlib sockets), for any place an
    app runs: a pod's network namespace, a container (``docker exec``); ``tcp_client_replies`` reads its output."""
    return ["-c", _TCP_CLIENT, host, str(port), str(count)]


def tcp_client_replies(stdout: str) -> list[str]:
    """The reply lines of the client's connections, from its output."""
    replies = json.loads(stdout)
    assert isinstance(replies, list), stdout
    return [str(reply) for reply in replies]


def tcp_client_timeout(count: int) -> float:
    """Seconds the client of ``count`` connections may take (5 s a connection at most, and start-up)."""
    return 30.0 + count * 5


def tcp_echo_counts(replies: Iterable[str]) -> Counter[str]:
    """Replies counted by the version that sent them (``v1`` for ``one ...``, ``v2`` for ``two ...``); any other
    reply by its first word (``error``, ``closed``)."""
    versions = {word: version for version, word in TCP_ECHO_WORDS.items()}
    return Counter(versions.get(word, word) for word in (reply.split(" ", 1)[0] for reply in replies))


def tls_hellos(pod: PodAddress, host: str, port: int, sni: str, ca_pem: str, count: int = 1) -> list[tuple[str, str]]:
    """``count`` TLS connections from an app in ``pod`` to ``host:port`` with ``sni``, verifying the server's
    certificate for ``sni`` against ``ca_pem``: (certificate's common name, the server's line) each, or
    (``error``, why)."""
    replies = _run_json(pod, _TLS_CLIENT, [host, str(port), sni, ca_pem, str(count)], 30 + count * 5)
    return [(str(reply[0]), str(reply[1])) for reply in replies if isinstance(reply, list)]


@dataclass(frozen=True, slots=True)
class TestCertificates:
    """A CA and, per host, a leaf certificate (PEM) and its key (PEM, unencrypted)."""

    __test__ = False  # not a pytest test class

    ca_pem: str
    leaves: dict[str, tuple[str, str]]
    ca_key: ec.EllipticCurvePrivateKey | None = None  # what signs a revocation list (``revocation_list``)

    def revocation_list(self, *revoked: str) -> str:
        """The CA's CRL (PEM) listing the leaf certificates of ``revoked`` hosts."""
        assert self.ca_key is not None
        now = datetime.datetime.now(datetime.UTC)
        ca = x509.load_pem_x509_certificate(self.ca_pem.encode())
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.subject)
            .last_update(now - datetime.timedelta(minutes=5))
            .next_update(now + datetime.timedelta(hours=1))
        )
        for host in revoked:
            serial = x509.load_pem_x509_certificate(self.leaves[host][0].encode()).serial_number
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
            )
        return builder.sign(self.ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signing_key = issuer if issuer is not None else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    return builder.sign(signing_key, hashes.SHA256())


def make_certificates(hosts: list[str]) -> TestCertificates:
    """A self-signed CA ``meshplane e2e test CA`` and a leaf for each host (common name and DNS SAN)."""
    ca_name = "meshplane e2e test CA"
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(ca_name, ca_key, None)
    leaves: dict[str, tuple[str, str]] = {}
    for host in hosts:
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        leaves[host] = (_pem(_certificate(host, key, (ca_name, ca_key))), key_pem)
    return TestCertificates(ca_pem=_pem(ca), leaves=leaves, ca_key=ca_key)
