"""Which services a proxy sees: Istio's ``exportTo`` for services (``PushContext.ServiceForHostname`` visibility).

A ServiceEntry with no ``exportTo``, or one listing ``*``, is visible everywhere; ``.`` means its own namespace; a
namespace name, that namespace; ``~`` (alone, as validation requires) nowhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from pilot.model.types import MeshSnapshot, Service

__all__ = ["exported_to", "service_visible"]


def exported_to(export_to: Sequence[str], owner_namespace: str, namespace: str) -> bool:
    """Whether config of ``owner_namespace`` with this ``exportTo`` is visible to proxies of ``namespace``."""
    if not export_to or "*" in export_to or namespace in export_to:
        return True
    return "." in export_to and owner_namespace == namespace


def service_visible(service: Service, namespace: str, snapshot: MeshSnapshot) -> bool:
    """Whether the proxies of ``namespace`` see ``service`` (the ``exportTo`` of the config it comes from)."""
    entry = snapshot.configs.get(service.source)
    export_to: Sequence[str] = getattr(entry, "export_to", ())
    return exported_to(export_to, service.namespace, namespace)
