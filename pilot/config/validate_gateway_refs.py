"""The ``gateways`` lists of a VirtualService and of its matches (Istio's ``validateGatewayNames``): ``mesh`` (the
sidecars), ``<namespace>/<name>``, ``<name>`` (a Gateway in the VirtualService's namespace) or Istio's legacy
``<name>.<namespace>[.svc.<suffix>]``; see ``pilot.model.gateways.resolve_gateway_name``."""

from __future__ import annotations

from pilot.config.errors import quote
from pilot.config.validate_common import Fields
from pilot.config.validate_names import dns1123_label_error, dns1123_subdomain_error

__all__ = ["MESH_GATEWAY", "gateway_name_error", "read_gateway_names"]

MESH_GATEWAY = "mesh"  # Istio's reserved name: the sidecars of the mesh


def gateway_name_error(gateway: str) -> str | None:
    """Why ``gateway`` cannot name a Gateway in a ``gateways`` list, or None."""
    if gateway == MESH_GATEWAY:
        return None
    namespace, slash, name = gateway.partition("/")
    if not slash:
        return dns1123_subdomain_error(gateway, "gateway name")
    if not namespace or not name:
        return "config namespace and gateway name cannot be empty"
    if dns1123_label_error(namespace) is not None:
        return f"invalid value for namespace: {quote(namespace)}"
    if dns1123_subdomain_error(name) is not None:
        return f"invalid value for gateway name: {quote(name)}"
    return None


def read_gateway_names(fields: Fields) -> tuple[str, ...]:
    """The ``gateways`` list at ``fields``, each name checked."""
    gateways = fields.strings("gateways") or ()
    for index, gateway in enumerate(gateways):
        fields.problems.add_if(fields.at("gateways", index), gateway_name_error(gateway))
    return gateways
