"""CEL expressions of Mixer policies (``AccessList.value``, ``RateLimit.match`` / ``key``): compiled once, checked
at validation against Istio's attribute vocabulary.

The attributes a request carries (Mixer builds them, ``mixer/attributes.py``) are nested maps, so CEL reads them
with Istio's dotted names (``ATTRIBUTES``). Every attribute of the vocabulary is always present; what is unknown is
``""`` (strings), ``0`` (ports), ``{}`` (maps) or ``false`` (booleans):

- ``source.ip``, ``source.port``, ``source.principal`` (``cluster.local/ns/<ns>/sa/<sa>`` from the caller's
  certificate; ``""`` without mutual TLS), ``source.namespace``, ``source.service_account``,
  ``source.workload.name``, ``source.workload.namespace``, ``source.labels``;
- ``destination.ip``, ``destination.port``, ``destination.principal``, ``destination.service.host``,
  ``destination.service.name``, ``destination.service.namespace``, ``destination.workload.name``,
  ``destination.workload.namespace``, ``destination.labels``;
- ``request.method``, ``request.path``, ``request.host``, ``request.scheme``, ``request.protocol``,
  ``request.id``, ``request.useragent``, ``request.headers`` (lower-case names: ``request.headers["x-user"]``);
- ``connection.mtls``, ``connection.requested_server_name``.

The entries of the maps (``request.headers``, ``source.labels``, ``destination.labels``) are the request's own: a
header that was not sent or a label the workload does not have is an absent value, which Mixer's checks treat as
"no value" (``mixer/evaluation.py``), not as an error. So a name outside the vocabulary is rejected here, where it
cannot silently become "no value": an unknown one (a typo: ``request.pth``) as unknown, one of Istio's that
meshplane does not produce (``request.auth.principal``, ``response.code``) as not supported yet.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_ROOTS",
    "AttributeKind",
    "ExpressionError",
    "attribute_names",
    "attribute_paths",
    "compile_expression",
]

AttributeKind = Literal["value", "map"]
ATTRIBUTES: Mapping[str, AttributeKind] = {
    **dict.fromkeys(
        (
            "source.ip",
            "source.port",
            "source.principal",
            "source.namespace",
            "source.service_account",
            "source.workload.name",
            "source.workload.namespace",
            "destination.ip",
            "destination.port",
            "destination.principal",
            "destination.service.host",
            "destination.service.name",
            "destination.service.namespace",
            "destination.workload.name",
            "destination.workload.namespace",
            "request.method",
            "request.path",
            "request.host",
            "request.scheme",
            "request.protocol",
            "request.id",
            "request.useragent",
            "connection.mtls",
            "connection.requested_server_name",
        ),
        "value",
    ),
    **dict.fromkeys(("source.labels", "destination.labels", "request.headers"), "map"),
}
ATTRIBUTE_ROOTS = ("source", "destination", "request", "connection")
# Istio's attribute vocabulary (policy-and-telemetry/attribute-vocabulary) where meshplane produces nothing yet.
_ISTIO_ONLY_ROOTS = ("origin", "response", "context", "api", "check", "quota", "rbac")
_ISTIO_ONLY = frozenset(
    (
        "source.uid",
        "source.name",
        "source.owner",
        "source.workload.uid",
        "destination.uid",
        "destination.name",
        "destination.namespace",
        "destination.owner",
        "destination.workload.uid",
        "destination.container.name",
        "destination.container.image",
        "destination.service.uid",
        "request.url_path",
        "request.query_params",
        "request.reason",
        "request.referer",
        "request.size",
        "request.total_size",
        "request.time",
        "request.api_key",
        "request.auth.principal",
        "request.auth.audiences",
        "request.auth.presenter",
        "request.auth.claims",
        "connection.id",
        "connection.event",
        "connection.duration",
        "connection.received.bytes",
        "connection.received.bytes_total",
        "connection.sent.bytes",
        "connection.sent.bytes_total",
    )
)
_ROOTS = frozenset((*ATTRIBUTE_ROOTS, *_ISTIO_ONLY_ROOTS))
_MACROS = ("all", "exists", "exists_one", "map", "filter")
# CEL's lexical elements that can hide a name: string and bytes literals (any quoting, raw or not) and comments.
_STRING = (
    r"""[rRbB]{0,2}(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')"""
)
_TOKEN = re.compile(rf"(?P<string>{_STRING})|(?://[^\n]*|\s+)|(?P<name>[A-Za-z_]\w*)|(?P<other>.)", re.DOTALL)


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
    for name in attribute_names(source):
        if not _known(name) and not _bound(source, name.split(".")[0]):
            raise ExpressionError(_outside_vocabulary(name, source))
    unknown = sorted(
        name for name in program.variables() if name.split(".")[0] not in ATTRIBUTE_ROOTS and not _bound(source, name)
    )
    if unknown:
        raise ExpressionError(_outside_vocabulary(unknown[0], source))
    return program


def attribute_names(source: str) -> Iterator[str]:
    """The dotted attribute names ``source`` selects, by field (``request.headers.x`` for ``has(request.headers.x)``)
    or by a string index (``request.headers.x`` for ``request["headers"]["x"]``), up to a method call or another
    index (``request.path`` for ``request.path.startsWith("/a")``, ``request.headers`` for ``request.headers[k]``);
    never inside string literals or comments; Istio's roots meshplane does not produce (``response.code``) included.
    """
    for path in attribute_paths(source):
        yield ".".join(path)


def attribute_paths(source: str) -> Iterator[tuple[str, ...]]:
    """``attribute_names`` as paths of names (``("request", "headers", "x.y")`` for ``request.headers["x.y"]``):
    every read of an attribute starts at one of these, so their values decide the expression's value (Mixer's
    referenced attributes, ``mixer.referenced``)."""
    tokens = [(match.lastgroup or "", match.group()) for match in _TOKEN.finditer(source) if match.lastgroup]
    for start, (_, token) in enumerate(tokens):
        if token not in _ROOTS or (start and tokens[start - 1][1] == "."):
            continue
        parts, end = [token], start + 1
        while (selected := _selected(tokens[end : end + 3])) is not None:
            part, length = selected
            parts.append(part)
            end += length
        if end < len(tokens) and tokens[end][1] == "(" and len(parts) > 1:
            parts.pop()  # a method: request.path.startsWith(...)
        yield tuple(parts)


def _selected(tokens: list[tuple[str, str]]) -> tuple[str, int] | None:
    """The name that ``tokens`` select (``.name`` or ``["name"]``) and how many tokens that takes; None otherwise."""
    kinds = [kind if kind in ("name", "string") else text for kind, text in tokens]
    if kinds[:2] == [".", "name"]:
        return tokens[1][1], 2
    if kinds == ["[", "string", "]"]:
        return _literal_text(tokens[1][1]), 3
    return None


def _literal_text(token: str) -> str:
    """The text between a string literal's quotes (``a'`` for ``"a'"``), escapes left as written."""
    body = token.lstrip("rRbB")
    quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
    return body[len(quote) : len(body) - len(quote)]


def _known(name: str) -> bool:
    """Whether ``name`` is an attribute, a map's entry, or a group of attributes (``source.workload``)."""
    parts = name.split(".")
    for length in range(1, len(parts) + 1):
        kind = ATTRIBUTES.get(".".join(parts[:length]))
        if kind is not None:
            return kind == "map" or length == len(parts)
    return any(attribute.startswith(name + ".") for attribute in ATTRIBUTES)


def _outside_vocabulary(name: str, source: str) -> str:
    parts = name.split(".")
    istio = next((".".join(parts[:n]) for n in range(2, len(parts) + 1) if ".".join(parts[:n]) in _ISTIO_ONLY), "")
    if istio or parts[0] in _ISTIO_ONLY_ROOTS:
        return f"attribute {(istio or name)!r} in CEL expression {source!r}: not supported by meshplane yet"
    group = next((".".join(parts[:n]) for n in range(len(parts) - 1, 0, -1) if _known(".".join(parts[:n]))), "")
    if ATTRIBUTES.get(group) == "value":
        return f"unknown attribute {name!r} in CEL expression {source!r}: {group} is a value, it has no attributes"
    if not group:
        known = ", ".join(f"{root}." for root in ATTRIBUTE_ROOTS)
        return f"unknown attribute {name!r} in CEL expression {source!r}: attributes start with {known}"
    names = sorted({a[len(group) + 1 :].split(".")[0] for a in ATTRIBUTES if a.startswith(group + ".")})
    return f"unknown attribute {name!r} in CEL expression {source!r}: {group} has {', '.join(names)}"


def _bound(source: str, name: str) -> bool:
    """Whether ``name`` is a comprehension variable (``all(x, ...)``), which CEL reports as a variable too."""
    compact = source.replace(" ", "")
    return any(f"{macro}({name}," in compact for macro in _MACROS)


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())
