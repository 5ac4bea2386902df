"""The demo's and the scenarios' sample app, run in a pod: HTTP endpoints with JSON answers on the standard
library alone, so it runs as the app's uid under ``/usr/bin/python3`` (the venv, and a checkout in a 0700
directory, may be unreadable for that uid: ``e2e.pods.app_server_command`` hands this file's text to
``python3 -c``, read by root).

Every response is JSON ``{"service", "version", "workload", "path", "method", "peer", "headers"}`` (``peer``: the
address the connection came from). Endpoints, any method: ``/status/<code>`` answers that status (200-599),
``/delay/<ms>`` sleeps then 200, ``/flaky/<key>`` is 503 the first time this process sees ``key`` and 200 after,
``/count/<path>`` answers ``{"count": N}``, how many requests for ``/<path>`` (query included) this process got
(ask it from inside the pod, on 127.0.0.1, which is not captured), anything else 200.

    python3 e2e/pod_app.py SERVICE VERSION PORT [WORKLOAD]
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["MAX_DELAY_MS", "main"]

MAX_DELAY_MS = 60_000  # the longest /delay/<ms>
_STATUS = re.compile(r"/status/(\d{3})$")
_DELAY = re.compile(r"/delay/(\d+)$")
_FLAKY = re.compile(r"/flaky/([^/]+)$")
_COUNT = "/count/"


def _handler(service: str, version: str, workload: str) -> type[BaseHTTPRequestHandler]:
    flaky_seen: set[str] = set()
    requests: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: Nagle would hold the body for the ACK

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            if self.path.startswith(_COUNT):
                with lock:
                    self._send(200, {"count": requests["/" + self.path.removeprefix(_COUNT)]})
                return
            with lock:
                requests[self.path] += 1
            path = self.path.split("?", 1)[0]
            status, error = self._status(path)
            body: dict[str, object] = {
                "service": service,
                "version": version,
                "workload": workload,
                "path": self.path,
                "method": self.command,
                "peer": self.client_address[0],
                "headers": {name.lower(): value for name, value in self.headers.items()},
            }
            if error:
                body["error"] = error
            self._send(status, body)

        def _send(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _status(self, path: str) -> tuple[int, str]:
            if match := _STATUS.match(path):
                code = int(match.group(1))
                return (code, "") if 200 <= code <= 599 else (400, f"status {code} out of 200-599")
            if match := _DELAY.match(path):
                milliseconds = int(match.group(1))
                if milliseconds > MAX_DELAY_MS:
                    return 400, f"delay over {MAX_DELAY_MS} ms"
                time.sleep(milliseconds / 1000)
            if match := _FLAKY.match(path):
                with lock:
                    first = match.group(1) not in flaky_seen
                    flaky_seen.add(match.group(1))
                return (503, "") if first else (200, "")
            return 200, ""

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main(argv: list[str]) -> int:
    service, version, port = argv[0], argv[1], int(argv[2])
    workload = argv[3] if len(argv) > 3 else f"{service}-{version}"
    ThreadingHTTPServer(("0.0.0.0", port), _handler(service, version, workload)).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
