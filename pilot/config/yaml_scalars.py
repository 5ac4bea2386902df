"""What a YAML scalar means, as Istio reads it: go-yaml v2's resolution, behind sigs.k8s.io/yaml.

Istio (``istioctl``, Pilot's file and Kubernetes sources) and the Kubernetes API server read YAML with
sigs.k8s.io/yaml, which decodes with go-yaml v2 (YAML 1.1 flavoured) and converts the result to JSON. So a plain
(unquoted) scalar is:

- a boolean: ``true/True/TRUE``, ``false/False/FALSE``, and the YAML 1.1 words ``yes/Yes/YES``, ``no/No/NO``,
  ``on/On/ON``, ``off/Off/OFF``, ``y/Y``, ``n/N``;
- null: empty, ``~``, ``null/Null/NULL``;
- an integer: decimal, ``0x1F`` hex, ``0o17`` or ``017`` octal (a leading 0 is octal, YAML 1.1), ``0b101``
  binary, with an optional sign and ``_`` separators (``1_000``); beyond 64 bits a float;
- a float: ``1.5``, ``.5``, ``1e3``, ``1.`` (and ``08``, an invalid octal, is the float 8);
  ``.inf``/``.nan`` exist in YAML but JSON has no such numbers, so Istio refuses them: so do we;
- a string otherwise: timestamps (``2001-12-14``) and sexagesimal numbers (``1:20``) stay strings as written.

Quoted and block (``|``, ``>``) scalars are always strings; explicit tags (``!!str 10``, ``!!int "10"``) are
honoured as go-yaml does, other tags leave a scalar's text as a string. Mapping keys become strings as
sigs.k8s.io/yaml makes them (JSON has only string keys): ``80: x`` is the key ``"80"``, ``yes: x`` is ``"true"``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from typing import Any

__all__ = [
    "UnrepresentableScalar",
    "is_plain_string",
    "key_string",
    "resolve_plain",
    "resolve_tagged",
]

TAG_PREFIX = "tag:yaml.org,2002:"
_MAX_INT64 = 2**63 - 1
_MAX_UINT64 = 2**64 - 1

_WORDS: dict[str, Any] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_NUMBER_START = frozenset("+-0123456789")
_NOT_PLAIN_START = _NUMBER_START | {"."}
_GO_INT = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_GO_UINT = re.compile(r"(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_YAML_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_TYPES = {"bool": bool, "int": int, "float": float, "null": type(None), "str": str}


class UnrepresentableScalar(ValueError):
    """A scalar Istio would refuse: NaN or infinity (not JSON), a value that contradicts its tag, bad base64."""


def resolve_plain(text: str) -> Any:
    """The value of a plain scalar: bool, None, int, float or str (go-yaml v2's ``resolve`` with no tag)."""
    if text in _WORDS:
        value = _WORDS[text]
        if isinstance(value, float):
            raise UnrepresentableScalar(f"{text}: JSON has no infinity or NaN, so Istio cannot read it either")
        return value
    first = text[0]
    if first == ".":
        return float(text) if _DOT_FLOAT.fullmatch(text) else text
    if first not in _NUMBER_START:
        return text
    plain = text.replace("_", "")
    if _GO_INT.fullmatch(plain):
        value = _parse_int(plain)
        if -_MAX_INT64 - 1 <= value <= _MAX_INT64:
            return value
        if _GO_UINT.fullmatch(plain) and value <= _MAX_UINT64:  # ParseUint: no sign
            return value
    if _YAML_FLOAT.fullmatch(plain):
        number = float(plain)
        return number if math.isfinite(number) else text  # out of range: Go's ParseFloat fails, a string
    return text


def is_plain_string(text: str) -> bool:
    """Whether a plain scalar is certainly a string (``resolve_plain(text) == text``), decided by a cheap test."""
    return bool(text) and text[0] not in _NOT_PLAIN_START and text not in _WORDS


def resolve_tagged(tag: str, text: str) -> Any:
    """The value of a scalar with an explicit tag (``!!int 10``), or a quoted one (``tag:yaml.org,2002:str``)."""
    if not tag.startswith(TAG_PREFIX):
        return text  # a local tag (!foo): go-yaml keeps the text
    short = tag[len(TAG_PREFIX) :]
    if short == "str":
        return text
    if short == "binary":
        try:
            return base64.b64decode("".join(text.split()), validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):  # ValueError: not ASCII
            raise UnrepresentableScalar("!!binary value contains invalid base64 data") from None
    if short == "timestamp":
        return text
    expected = _TYPES.get(short)
    if expected is None:
        return text
    value = resolve_plain(text)
    if expected is float and type(value) is int:
        return float(value)
    if type(value) is not expected:
        raise UnrepresentableScalar(f"cannot decode {_go_type(value)} `{text}` as a !!{short}")
    return value


def key_string(key: Any) -> str:
    """A mapping key as sigs.k8s.io/yaml turns it into a JSON object key."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return _go_float32_g(key)
    raise TypeError(f"a mapping key must be a string, a number or a boolean, not {_go_type(key)}")


def _parse_int(plain: str) -> int:
    sign = -1 if plain[0] == "-" else 1
    digits = plain.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0":
        base = {"x": 16, "X": 16, "o": 8, "O": 8, "b": 2, "B": 2}.get(digits[1], 8)
        digits = digits[2:] if base != 8 or digits[1] in "oO" else digits[1:]
        return sign * int(digits, base)
    return sign * int(digits)


def _go_type(value: Any) -> str:
    if value is None:
        return "!!null"
    return "!!" + {bool: "bool", int: "int", float: "float", list: "seq", dict: "map"}.get(type(value), "str")


def _go_float32_g(number: float) -> str:
    """Go's ``strconv.FormatFloat(f, 'g', -1, 32)``: the shortest digits that round-trip a float32, in exponent
    form when the exponent is below -4 or at least 6 (``1e+06``), else in plain form (``0.0001``, ``123456``)."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    single = struct.unpack("f", struct.pack("f", number))[0]
    scientific = f"{single:.8e}"
    for precision in range(9):
        scientific = f"{single:.{precision}e}"
        if struct.unpack("f", struct.pack("f", float(scientific)))[0] == single:
            break
    mantissa, exponent_text = scientific.split("e")
    sign = "-" if mantissa.startswith("-") else ""
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    exponent = int(exponent_text)
    if exponent < -4 or exponent >= 6:
        fraction = f".{digits[1:]}" if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{fraction}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole, fraction = digits[: exponent + 1].ljust(exponent + 1, "0"), digits[exponent + 1 :]
    return f"{sign}{whole}{'.' + fraction if fraction else ''}"
