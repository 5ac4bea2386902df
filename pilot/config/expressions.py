"""CEL expressions of Mixer policies (``AccessList.value``, ``RateLimit.match`` / ``key``): compiled once, checked
at validation against Istio's attribute vocabulary.

The attributes a request carries (Mixer builds them, ``mixer/attributes.py``) are nested maps, so CEL reads them
with Istio's dotted names. Every attribute is always present; what is unknown is ``""`` (strings), ``0`` (ports),
``{}`` (maps) or ``false`` (booleans), so an expression never fails on a missing key of this vocabulary:

- ``source.ip``, ``source.port``, ``source.principal`` (``cluster.local/ns/<ns>/sa/<sa>`` from the caller's
  certificate; ``""`` without mutual TLS), ``source.namespace``, ``source.service_account``,
  ``source.workload.name``, ``source.workload.namespace``, ``source.labels``;
- ``destination.ip``, ``destination.port``, ``destination.principal``, ``destination.service.host``,
  ``destination.service.name``, ``destination.service.namespace``, ``destination.workload.name``,
  ``destination.workload.namespace``, ``destination.labels``;
- ``request.method``, ``request.path``, ``request.host``, ``request.scheme``, ``request.protocol``,
  ``request.id``, ``request.useragent``, ``request.headers`` (lower-case names: ``request.headers["x-user"]``;
  a header that was not sent is an error unless guarded: ``"x-user" in request.headers``);
- ``connection.mtls``, ``connection.requested_server_name``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ATTRIBUTE_ROOTS", "ExpressionError", "compile_expression"]

ATTRIBUTE_ROOTS = ("source", "destination", "request", "connection")
_MACROS = ("all", "exists", "exists_one", "map", "filter")


class ExpressionError(ValueError):
    """A CEL expression that does not compile or names something outside the attribute vocabulary."""


def compile_expression(source: str) -> Any:
    """The compiled ``cel.Program`` of ``source``; ExpressionError with CEL's own message otherwise."""
    if not source.strip():
        raise ExpressionError("expected a CEL expression, got an empty string")
    import cel  # here, not at module level: the package's __init__ loads its CLI (typer, prompt_toolkit), which
    # would add ~60 ms to every Pilot and Mixer start, with or without Mixer policies

    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        raise ExpressionError(f"invalid CEL expression: {_one_line(str(exc))}") from None
    unknown = sorted(
        name for name in program.variables() if name.split(".")[0] not in ATTRIBUTE_ROOTS and not _bound(source, name)
    )
    if unknown:
        raise ExpressionError(
            f"unknown attribute {unknown[0]!r} in CEL expression {source!r}: attributes start with "
            + ", ".join(f"{root}." for root in ATTRIBUTE_ROOTS)
        )
    return program


def _bound(source: str, name: str) -> bool:
    """Whether ``name`` is a comprehension variable (``all(x, ...)``), which CEL reports as a variable too."""
    compact = source.replace(" ", "")
    return any(f"{macro}({name}," in compact for macro in _MACROS)


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())
