"""Istio's ``tcp-echo-server`` (``istio/tcp-echo-server``, args ``9000 one``) as an app, on the standard library
alone: each line it reads on a connection comes back prefixed with its version's word (``one <line>``). In a pod,
``e2e.l4_apps.tcp_echo_server_command`` hands this file's text to ``python3 -c`` (as ``e2e.pods`` does with the
sample app); in docker-compose.yml's tcp-echo containers it runs as ``python -m e2e.tcp_echo_server``.

    python3 e2e/tcp_echo_server.py PREFIX PORT
"""

from __future__ import annotations

import socketserver
import sys
from collections.abc import Sequence

__all__ = ["main"]


class _Handler(socketserver.StreamRequestHandler):
    prefix = b""

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(self.prefix + b" " + line)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main(argv: Sequence[str]) -> None:
    prefix, port = argv[0], int(argv[1])
    handler = type("Handler", (_Handler,), {"prefix": prefix.encode()})
    _Server(("0.0.0.0", port), handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
