"""``python -m agent.probe URL``: a container healthcheck without curl in the image (and without the agent's imports:
it starts in a fraction of a second): exit 0 when ``URL`` answers 2xx (``tcp://host:port``: accepts a connection, for
a TCP app) within ``--timeout`` seconds, 1 (with the reason on stderr) otherwise. No proxy settings are read: a
probe inside a pod asks its sidecar or app directly."""

from __future__ import annotations

import argparse
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

__all__ = ["main", "probe"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.probe", description="exit 0 when URL answers 2xx")
    parser.add_argument(
        "url", help="an http:// URL, e.g. http://127.0.0.1:15000/ready (Envoy's admin), or tcp://127.0.0.1:9000"
    )
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds (%(default)s)")
    args = parser.parse_args(argv)
    problem = probe(args.url, args.timeout)
    if problem is not None:
        print(f"probe: {problem}", file=sys.stderr)
        return 1
    return 0


def probe(url: str, timeout: float) -> str | None:
    """None when ``url`` answered 2xx (``tcp://``: accepted a connection), else what went wrong."""
    if url.startswith("tcp://"):
        return _probe_tcp(url, timeout)
    if not url.startswith("http://"):
        return f"url: an http:// or tcp:// URL, got {url!r}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:
        return f"{url}: {error}"
    return None if 200 <= status < 300 else f"{url} answered {status}"


def _probe_tcp(url: str, timeout: float) -> str | None:
    host, _, port = url.removeprefix("tcp://").rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        return f"url: tcp://host:port, got {url!r}"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except OSError as error:
        return f"{url}: {error}"


if __name__ == "__main__":
    sys.exit(main())
