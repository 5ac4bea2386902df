"""``meshplane proxy-status`` and ``proxy-config``: what Pilot sent each sidecar, read from Pilot's monitor.

Like ``istioctl proxy-status`` / ``proxy-config``, but from Pilot's own record (``/debug/syncz``,
``/debug/config_dump``), so they work without access to the sidecars' admin ports. The rendering functions are
pure (JSON in, text out); ``fetch_json`` is the only I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

__all__ = [
    "PROXY_CONFIG_TYPES",
    "fetch_json",
    "find_proxy",
    "proxies_by_node",
    "render_proxy_config",
    "render_proxy_status",
    "type_status",
]

_TYPES = ("cds", "lds", "eds", "rds")  # istioctl's column order
PROXY_CONFIG_TYPES = {"cluster": "cds", "listener": "lds", "route": "rds", "endpoint": "eds"}


async def fetch_json(monitor: str, path: str, *, timeout: float = 5.0) -> Any:
    """GET ``http://<monitor><path>`` and decode its JSON; raises ``aiohttp.ClientError`` with the URL on failure."""
    url = f"http://{monitor}{path}"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(url) as response,
    ):
        if response.status != 200:
            raise aiohttp.ClientResponseError(
                response.request_info, (), status=response.status, message=f"{url}: {await response.text()}"
            )
        return await response.json()


def type_status(entry: Mapping[str, Any] | None) -> str:
    """SYNCED / STALE / NACKED / NOT SENT for one xDS type of one proxy, as istioctl proxy-status shows them."""
    if entry is None or not entry.get("sent"):
        return "NOT SENT"
    nack = entry.get("last_nack")
    if nack and nack.get("version") == entry.get("sent"):
        return "NACKED"
    return "SYNCED" if entry.get("acked") == entry.get("sent") else "STALE"


_SEVERITY = ("SYNCED", "STALE", "NOT SENT", "NACKED")


def _column_status(types: Mapping[str, Any], short: str) -> str:
    """A column's status; RDS over VHDS (delta) is the worse of the tables' and their virtual hosts'."""
    status = type_status(types.get(short))
    if short == "rds" and "vhds" in types and status != "NOT SENT":
        return max(status, type_status(types["vhds"]), key=_SEVERITY.index)
    return status


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def proxies_by_node(syncz: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One entry per node id, in ``/debug/syncz`` order: a pod's Envoy (CDS, LDS, EDS, RDS) and its agent (NDS)
    hold a stream each under the same node id, and istioctl shows such a proxy as one (Istio's agent carries both
    on one connection). ``types`` are merged, the later stream's where two have the same type (an Envoy that
    reconnected); the other fields are those of the stream with Envoy's types (else the first)."""
    streams: dict[str, list[Mapping[str, Any]]] = {}
    for proxy in syncz.get("proxies", ()):
        streams.setdefault(proxy["id"], []).append(proxy)
    merged: list[dict[str, Any]] = []
    for same_node in streams.values():
        envoy = next((p for p in same_node if set(p.get("types", {})) & set(_TYPES)), same_node[0])
        types: dict[str, Any] = {}
        for proxy in same_node:
            types.update(proxy.get("types", {}))
        merged.append({**envoy, "types": types})
    return merged


def render_proxy_status(syncz: Mapping[str, Any]) -> str:
    rows: list[list[str]] = [["NAME", "ADDRESS", "MODE", "CDS", "LDS", "EDS", "RDS", "SNAPSHOT"]]
    nacks: list[str] = []
    for proxy in proxies_by_node(syncz):
        name = f"{proxy.get('workload') or proxy['id']}.{proxy.get('namespace', '')}"
        types = proxy.get("types", {})
        rows.append(
            [
                name,
                str(proxy.get("address", "")),
                str(proxy.get("mode", "")),
                *(_column_status(types, t) for t in _TYPES),
                f"{proxy.get('snapshot_version')}/{syncz.get('snapshot_version')}",
            ]
        )
        for short, entry in types.items():
            nack = entry.get("last_nack")
            if nack:
                nacks.append(f"{name} {short.upper()} rejected version {nack.get('version')}: {nack.get('error')}")
    text = _table(rows) if len(rows) > 1 else "no proxies connected"
    if nacks:
        text += "\n\nLast NACKs:\n" + "\n".join(f"  {line}" for line in nacks)
    return text


def find_proxy(syncz: Mapping[str, Any], name: str) -> str:
    """The node id of ``name`` (``workload``, ``workload.namespace`` or a full node id) among connected proxies."""
    workload, _, namespace = name.partition(".")
    proxies = proxies_by_node(syncz)
    matches = [
        proxy["id"]
        for proxy in proxies
        if proxy["id"] == name
        or (proxy.get("workload") == workload and (not namespace or proxy.get("namespace") == namespace))
    ]
    if not matches:
        known = ", ".join(f"{p.get('workload')}.{p.get('namespace')}" for p in proxies) or "none"
        raise LookupError(f"no connected proxy {name!r}; connected: {known}")
    return str(matches[-1])


def _summary(kind: str, resource: Mapping[str, Any]) -> list[str]:
    if kind == "cds":
        return [resource.get("name", ""), resource.get("type", "EDS" if "eds_cluster_config" in resource else "")]
    if kind == "lds":
        socket = resource.get("address", {}).get("socket_address", {})
        return [resource.get("name", ""), f"{socket.get('address', '')}:{socket.get('port_value', '')}"]
    if kind == "rds":
        hosts = resource.get("virtual_hosts", [])
        return [resource.get("name", ""), ", ".join(h.get("name", "") for h in hosts[:4]) + (" ..." * (len(hosts) > 4))]
    endpoints = [
        f"{lb['endpoint']['address']['socket_address']['address']}:"
        f"{lb['endpoint']['address']['socket_address']['port_value']}"
        for group in resource.get("endpoints", [])
        for lb in group.get("lb_endpoints", [])
    ]
    return [resource.get("cluster_name", ""), ", ".join(endpoints) or "(none)"]


def render_proxy_config(dump: Mapping[str, Any], kind: str) -> str:
    """A one-line-per-resource summary of one xDS type from ``/debug/config_dump``."""
    short = PROXY_CONFIG_TYPES[kind]
    headers = {"cds": ["CLUSTER", "TYPE"], "lds": ["LISTENER", "ADDRESS"], "rds": ["ROUTE", "VIRTUAL HOSTS"]}
    rows = [headers.get(short, ["CLUSTER", "ENDPOINTS"])]
    for resource in dump.get("types", {}).get(short, {}).get("resources", ()):
        rows.append(_summary(short, resource))
    return _table(rows) if len(rows) > 1 else f"no {kind} resources sent to {dump.get('id')}"
