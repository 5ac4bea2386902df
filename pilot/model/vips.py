"""Virtual IPs of services: what an app in a pod connects to, and what its sidecar's listeners match.

A service's own IP addresses (a Kubernetes ClusterIP, a ServiceEntry's ``addresses``) are its VIPs; its own CIDR
blocks are no VIPs (nothing resolves a name to a range: listeners match them), and a service with addresses of its
own, even only CIDR blocks, gets none allocated (as Istio allocates only for entries without addresses). Every
other service with a concrete host gets one address auto-allocated from Istio's range for that,
``240.240.0.0/16`` (Istio's DNS auto-allocation, class E: never routed anywhere). The address is picked by a hash
of the host, so it does not depend on which other services exist and stays the same across restarts of Pilot; two
hosts hashing to the same address (rare: 65534 addresses) are told apart by probing the next free address, in
host order, so even then the result is deterministic for the same set of hosts. Wildcard hosts get no VIP (as in
Istio: nothing can resolve a wildcard to one address), nor do ``resolution: NONE`` services without addresses of
their own: their connections go to the address the app dialled (an ORIGINAL_DST cluster), so a VIP would lead
nowhere.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from types import MappingProxyType

from pilot.config.types import Resolution
from pilot.model.types import Service

__all__ = ["AUTO_VIP_NETWORK", "allocate_vips", "service_cidrs", "service_ips"]

AUTO_VIP_NETWORK = ipaddress.IPv4Network("240.240.0.0/16")
_FIRST = int(AUTO_VIP_NETWORK.network_address) + 1  # neither the network address ...
_COUNT = AUTO_VIP_NETWORK.num_addresses - 2  # ... nor the broadcast address


def allocate_vips(services: Mapping[str, Service]) -> Mapping[str, tuple[str, ...]]:
    """host -> its VIPs, for every service that has or gets one (see the module's docstring)."""
    vips: dict[str, tuple[str, ...]] = {}
    taken = {address for service in services.values() for address in service_ips(service)}
    for host in sorted(services):
        service = services[host]
        if service.addresses:
            if own := service_ips(service):
                vips[host] = own
        elif not host.startswith("*") and service.resolution is not Resolution.NONE:
            address = _free_address(host, taken)
            taken.add(address)
            vips[host] = (address,)
    return MappingProxyType(vips)


def service_ips(service: Service) -> tuple[str, ...]:
    """The service's own addresses that are single IPs (a CIDR block is matched by listeners, never resolved to)."""
    return tuple(address for address in service.addresses if "/" not in address)


def service_cidrs(service: Service) -> tuple[str, ...]:
    """The service's own addresses that are CIDR blocks (``/32`` ones are IPs already, see the registry)."""
    return tuple(address for address in service.addresses if "/" in address)


def _free_address(host: str, taken: set[str]) -> str:
    start = int.from_bytes(hashlib.sha256(host.encode()).digest()[:4], "big") % _COUNT
    for step in range(_COUNT):
        address = str(ipaddress.IPv4Address(_FIRST + (start + step) % _COUNT))
        if address not in taken:
            return address
    raise ValueError(f"no free address left in {AUTO_VIP_NETWORK} for {host}")
