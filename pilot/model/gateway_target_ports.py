"""Where a gateway's Envoy listens for a Gateway server's port (Istio's ``resolvePorts``, legacy label selection):
the ``targetPort`` of the service port of that number on a Service fronting the gateway, else the port itself.

Istio's gateway Deployments run Envoy unprivileged behind a Service mapping 80 -> 8080 and 443 -> 8443; a Gateway
names the Service's port (``number: 80``), and the gateway's listener is ``0.0.0.0_8080`` with route table
``http.8080``. The Services fronting a gateway are its service instances when Pilot resolved its workload (a
WorkloadEntry, ServiceEntry ``workloadSelector``), else the Kubernetes Services of its namespace whose selector
matches its labels (a gateway pod is not a mesh workload: it has no sidecar). A named ``targetPort`` (resolved per
pod's container ports, which a gateway's proxy does not tell) keeps the port's number; so does a port no Service has.
With several Services, the first (by host) wins, as Istio's "single port" legacy resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pilot.model.gateways import gateway_labels
from pilot.model.registry_service_entry import labels_match
from pilot.model.types import MeshSnapshot, Proxy

__all__ = ["gateway_target_ports"]


def gateway_target_ports(proxy: Proxy, snapshot: MeshSnapshot) -> Mapping[int, int]:
    """Service port number -> the port the gateway's listener binds, for the ports that differ."""
    targets: dict[int, int] = {}
    if proxy.instances:
        for instance in proxy.instances:
            targets.setdefault(instance.port.number, instance.target_port)
    else:
        labels = gateway_labels(proxy)
        for host in sorted(snapshot.services):
            service = snapshot.services[host]
            if service.namespace != proxy.namespace or not service.selector:
                continue
            if not labels_match(service.selector, labels):
                continue
            for port in service.ports:
                if port.target_port is not None:
                    targets.setdefault(port.number, port.target_port)
    return MappingProxyType({number: target for number, target in sorted(targets.items()) if number != target})
