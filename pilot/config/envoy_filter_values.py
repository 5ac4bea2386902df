"""An EnvoyFilter patch ``value`` as the Envoy v3 message its ``applyTo`` names (Istio's ``BuildXDSObjectFromStruct``).

The value is Envoy's JSON (YAML) form of the message: ``LISTENER`` a ``config.listener.v3.Listener``,
``FILTER_CHAIN`` a ``FilterChain``, ``NETWORK_FILTER`` a ``Filter``, ``HTTP_FILTER`` an ``HttpFilter`` of the HTTP
connection manager, ``ROUTE_CONFIGURATION`` a ``config.route.v3.RouteConfiguration``, ``VIRTUAL_HOST`` a
``VirtualHost``, ``HTTP_ROUTE`` a ``Route``, ``CLUSTER`` a ``config.cluster.v3.Cluster``. It is parsed with
``google.protobuf.json_format`` into the ``xds-protos`` (upb) classes, strictly: an unknown field, a wrong type or an
``@type`` (``typed_config``, any ``Any``) that names no message of the v3 API is an error, with the path
``json_format`` gives. Unlike Istio, which only warns on unknown fields, meshplane rejects them: a field it would drop
is a field it ignores. The types of ``Any`` values are found by importing the modules of their proto package
(``type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua``: ``envoy/extensions/filters/http/lua/v3/*_pb2``).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Iterator
from functools import cache
from typing import Any

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_components_pb2 import Route, VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import HttpFilter
from google.protobuf import json_format
from google.protobuf.message import Message

from pilot.config.types import EnvoyFilterApplyTo

__all__ = ["PATCH_MESSAGES", "parse_patch_value", "patch_message"]

PATCH_MESSAGES: dict[EnvoyFilterApplyTo, type[Message]] = {
    EnvoyFilterApplyTo.LISTENER: Listener,
    EnvoyFilterApplyTo.FILTER_CHAIN: FilterChain,
    EnvoyFilterApplyTo.NETWORK_FILTER: Filter,
    EnvoyFilterApplyTo.HTTP_FILTER: HttpFilter,
    EnvoyFilterApplyTo.ROUTE_CONFIGURATION: RouteConfiguration,
    EnvoyFilterApplyTo.VIRTUAL_HOST: VirtualHost,
    EnvoyFilterApplyTo.HTTP_ROUTE: Route,
    EnvoyFilterApplyTo.CLUSTER: Cluster,
}
_TYPE_PREFIX = "type.googleapis.com/"


def parse_patch_value(apply_to: EnvoyFilterApplyTo, value: object) -> bytes | str:
    """The value's message serialized (deterministic), or why it is not one (Istio's words where it has them)."""
    if not isinstance(value, dict):
        return f"expected a mapping (the JSON of an Envoy {PATCH_MESSAGES[apply_to].DESCRIPTOR.full_name})"
    for type_url in _any_types(value):
        problem = _load_type(type_url)
        if problem is not None:
            return problem
    message = PATCH_MESSAGES[apply_to]()
    try:
        json_format.ParseDict(value, message)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        first = str(exc).split("\n", 1)[0]  # json_format then lists every field of the message
        return f"not a valid {message.DESCRIPTOR.full_name}: {first}"
    return message.SerializeToString(deterministic=True)


def patch_message(apply_to: EnvoyFilterApplyTo, value: bytes) -> Message:
    """The message a validated patch value holds (a new object each call: patches may be merged into it)."""
    message = PATCH_MESSAGES[apply_to]()
    message.ParseFromString(value)
    return message


def _any_types(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "@type" and isinstance(item, str):
                yield item
            else:
                yield from _any_types(item)
    elif isinstance(value, list):
        for item in value:
            yield from _any_types(item)


def _load_type(type_url: str) -> str | None:
    """Import the modules of the type's package so that json_format finds it; why not, if it cannot be."""
    name = type_url.removeprefix(_TYPE_PREFIX) if type_url.startswith(_TYPE_PREFIX) else None
    if name is None or "." not in name:
        return f"@type {type_url!r}: expected type.googleapis.com/<full message name>"
    package = name.rsplit(".", 1)[0]
    parts = package.split(".")
    if parts[0] == "envoy" and not any(part.startswith("v3") for part in parts):
        # xds-protos still ships some v2 packages; Envoy has not read them since 1.18
        return f"referenced type unknown (hint: try using the v3 xDS API): {type_url}"
    if not _import_package(package):
        return f"referenced type unknown: {type_url}"
    return None


@cache
def _import_package(package: str) -> bool:
    """Import every ``*_pb2`` module of a proto package (a Python package of xds-protos); False if there is none."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return False
    if spec is None or spec.submodule_search_locations is None:
        return False
    found = False
    for module in pkgutil.iter_modules(spec.submodule_search_locations):
        if module.name.endswith("_pb2"):
            importlib.import_module(f"{package}.{module.name}")
            found = True
    return found
