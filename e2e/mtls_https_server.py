"""An HTTPS server outside the mesh that requires a client certificate (the "mutual TLS server" of Istio's egress
TLS origination tasks, an nginx with ``ssl_verify_client on`` there): every request gets 200 and JSON
``{"client": <the client certificate's CN>, "path": ...}``, and the connection closed (so every request is a new
handshake: a client certificate replaced meanwhile is the one checked); a handshake without a certificate signed by the
trusted CA fails. Standard library only: ``e2e.pods``-style, its text is run by ``python3 -c``.

    python3 -c "$(cat e2e/mtls_https_server.py)" PORT CERT KEY CLIENT_CA
"""

from __future__ import annotations

import json
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["main"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        peer: Any = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        subject = {key: value for names in (peer or {}).get("subject", ()) for key, value in names}
        body = json.dumps({"client": subject.get("commonName", ""), "path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")  # each request a new handshake: a rotated client certificate counts
        self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main(argv: list[str]) -> None:
    port, cert, key, client_ca = int(argv[0]), argv[1], argv[2], argv[3]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("0.0.0.0", port), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
