"""The "kind" of a change of VirtualServices' ``tcp`` and ``tls`` routes (``L4_ROUTES_KIND``), so that an HTTP-only
VirtualService change does not regenerate listeners.

Listeners read VirtualServices only through their L4 routes: a sidecar's outbound TCP/TLS chains
(``pilot.generate.listeners_l4_routes``) and a gateway's TCP and TLS-passthrough chains
(``pilot.generate.gateway_listeners``) take the ``tcp`` and ``tls`` routes of the VirtualServices for a host (or
bound to a Gateway) that the proxy's namespace sees. A VirtualService without such routes still counts: the
lookup of a host's VirtualServices takes the exact host's before the most specific wildcard's, so an HTTP-only
VirtualService for ``tcp-echo`` shadows a ``*.default...`` one's tcp routes (its hosts, gateways and existence
matter, not its http routes). What a Sidecar scope holds, which VirtualServices also decide, is its own kind
(``SIDECAR_SCOPE_KIND``). So the listeners depend on each VirtualService only through its ``l4_part``: its hosts,
gateways and ``exportTo`` (who sees it, and for what) and its ``tcp`` and ``tls`` routes (its key, compared too,
gives its namespace and the name its routes' stats carry); a change of its ``http`` routes alone leaves it equal.
``build_snapshot`` adds ``L4_ROUTES_KIND`` to ``changed_kinds`` when a VirtualService changed and some ``l4_part``
of the resolved VirtualServices (delegates merged into their roots: what the listener builders read) differs from
the previous snapshot's; LDS lists it in ``affected_by`` instead of ``VirtualService``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from pilot.config.types import ConfigKey, VirtualService

__all__ = ["L4_ROUTES_KIND", "l4_part", "l4_routes_changed"]

L4_ROUTES_KIND = "VirtualServiceL4Routes"


def l4_part(vs: VirtualService | None) -> tuple[Hashable, ...] | None:
    """What the listener builders read of one VirtualService (None: it does not exist), its http routes left out."""
    if vs is None:
        return None
    return (vs.hosts, vs.gateways, vs.export_to, vs.tcp, vs.tls)


def l4_routes_changed(
    previous: Mapping[ConfigKey, VirtualService] | None, current: Mapping[ConfigKey, VirtualService]
) -> bool:
    """Whether the L4 part of some VirtualService differs between two snapshots' resolved VirtualServices (always,
    without a previous snapshot)."""
    if previous is None:
        return True
    for key in previous.keys() | current.keys():
        old, new = previous.get(key), current.get(key)
        if old is not new and l4_part(old) != l4_part(new):
            return True
    return False
