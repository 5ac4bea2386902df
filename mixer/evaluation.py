"""Mixer policies' CEL programs evaluated over one request's attributes: a value, ``Absent``, or an error.

A value the request does not carry is absent, not an error, as in Envoy's RBAC, Istio's AuthorizationPolicy and
OPA: a condition that needs it does not match. Absent is what CEL reports as "no such key": a header that was not
sent (``request.headers["x-user"]``, ``request.headers.x``), a label the workload does not have
(``source.labels["app"]``), a key missing from a map literal. A name outside the attribute vocabulary, written
as a field or a string index (``request.pth``, ``request["pth"]``), never gets here: validation rejects it
(``pilot.config.expressions``), so that a typo cannot make a policy silently weaker.

An expression is evaluated by CEL's rules, so what is absent propagates as CEL propagates errors:

- an operator or function that needs an absent value has no value, and neither has the whole expression:
  ``request.headers["x"] == "a"``, ``!(request.headers["x"] == "a")``, ``size(request.headers["x"]) > 0``,
  ``request.headers["x"] + "/" + source.principal`` are all absent without an ``x`` header;
- ``||`` and ``&&`` decide without it when their other side does: ``request.headers["x"] == "a" || true`` is
  true, ``false && request.headers["x"] == "a"`` is false; ``cond ? a : b`` evaluates only the branch it takes;
- ``"x" in request.headers`` and ``has(request.headers.x)`` test presence and are never absent.

Any other error (a type error such as ``request.path + 1``, a bad function argument such as ``int("abc")``, an
index out of range, a division by zero) stays an error, which denies. When both sides of ``||`` or ``&&`` fail,
CEL reports one of the two (this library: the right-hand one), and that one decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mixer.referenced import ReferencedAttributes
from pilot.config.expressions import ATTRIBUTE_ROOTS, attribute_paths, compile_expression

__all__ = ["Absent", "CompiledExpression", "absent_key", "evaluation_text", "quoted_value"]

_VALUE_SHOWN = 128  # characters of an evaluated value quoted in a reason


@dataclass(frozen=True, slots=True)
class Absent:
    """No value: the expression needs a map entry the request does not have (``key``: the one CEL looked up)."""

    key: str

    def __str__(self) -> str:
        return f"no such key {quoted_value(self.key)}"


def absent_key(error: KeyError) -> str:
    """The key of CEL's "no such key" error. The ``cel`` package raises a bare KeyError with the missing key as its
    only argument for a missing map key or field, at any depth, and never for another error
    (``tests/test_mixer_evaluation.py`` pins this, so an upgrade that changes it fails there)."""
    return str(error.args[0]) if error.args else ""


class CompiledExpression:
    """A CEL program, the attribute roots it reads and its referenced attributes. CEL converts every map it is
    given on each evaluation, so a program is handed only its roots (``request`` for ``request.headers["x-user"]``),
    not all four; ``referenced`` names the values that decide its result (``mixer.referenced``), which the checks'
    caches key on."""

    __slots__ = ("program", "referenced", "roots", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.program: Any = compile_expression(source)
        self.roots = tuple(sorted({name.split(".", 1)[0] for name in self.program.variables()} & set(ATTRIBUTE_ROOTS)))
        self.referenced = ReferencedAttributes(path for path in attribute_paths(source) if path[0] in ATTRIBUTE_ROOTS)

    def evaluate(self, attributes: Mapping[str, Any]) -> Any:
        """The program's result over ``attributes``; ``Absent`` when it needs a value the request does not have;
        CEL's exception for any other error."""
        context = {root: attributes[root] for root in self.roots}
        try:
            return self.program.execute(context)
        except KeyError as error:
            return Absent(absent_key(error))


def evaluation_text(result: object) -> str:
    """A CEL result as the string a list or quota key compares; TypeError for maps, lists and null."""
    if isinstance(result, str):
        return result
    if isinstance(result, bool):
        return "true" if result else "false"
    if isinstance(result, int | float):
        return str(result)
    if isinstance(result, bytes):
        return result.decode("utf-8", "replace")
    raise TypeError(f"evaluated to {type(result).__name__}, expected a string")


def _shown(value: str) -> str:
    return value if len(value) <= _VALUE_SHOWN else value[:_VALUE_SHOWN] + "..."


def quoted_value(value: str) -> str:
    """``value`` in double quotes (escaped, cut at 128 characters), as reasons quote evaluated values."""
    escaped = _shown(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
