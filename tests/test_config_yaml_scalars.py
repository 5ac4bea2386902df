"""Scalars and keys mean what they mean to Istio: go-yaml v2 (YAML 1.1 booleans) behind sigs.k8s.io/yaml."""

from __future__ import annotations

from typing import Any

import pytest

from pilot.config.yaml_source import YamlSyntaxError, load_documents

SCALARS: list[tuple[str, str, Any]] = [
    # booleans: YAML 1.1 words in three spellings, as go-yaml v2
    ("true", "true", True),
    ("True", "True", True),
    ("TRUE", "TRUE", True),
    ("yes", "yes", True),
    ("Yes", "Yes", True),
    ("YES", "YES", True),
    ("on", "on", True),
    ("ON", "ON", True),
    ("y", "y", True),
    ("Y", "Y", True),
    ("no", "no", False),
    ("off", "off", False),
    ("Off", "Off", False),
    ("n", "n", False),
    ("N", "N", False),
    ("false", "false", False),
    ("mixed-case-is-a-string", "yEs", "yEs"),
    ("tRUE-is-a-string", "tRUE", "tRUE"),
    # null
    ("tilde", "~", None),
    ("null", "null", None),
    ("Null", "Null", None),
    ("NULL", "NULL", None),
    ("empty", "", None),
    # integers
    ("decimal", "8080", 8080),
    ("signed", "+12", 12),
    ("negative", "-12", -12),
    ("underscores", "1_000_000", 1_000_000),
    ("octal-leading-zero", "0777", 0o777),
    ("octal-0o", "0o17", 0o17),
    ("hex", "0x1F", 31),
    ("binary", "0b101", 5),
    ("negative-binary", "-0b11", -3),
    ("zero", "0", 0),
    ("uint64", "18446744073709551615", 2**64 - 1),
    # floats
    ("float", "1.5", 1.5),
    ("leading-dot", ".5", 0.5),
    ("signed-dot", "-.5", -0.5),
    ("exponent", "1e3", 1000.0),
    ("trailing-dot", "1.", 1.0),
    ("invalid-octal-is-a-float", "08", 8.0),
    ("beyond-uint64-is-a-float", "99999999999999999999", 1e20),
    ("beyond-int64-negative-is-a-float", "-9223372036854775809", -9223372036854775809.0),
    # strings
    ("timestamp", "2001-12-14", "2001-12-14"),
    ("timestamp-with-time", "2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
    ("sexagesimal", "1:20", "1:20"),
    ("sexagesimal-float", "190:20:30.15", "190:20:30.15"),
    ("float-out-of-range", "1e999", "1e999"),
    ("hex-without-digits", "0x", "0x"),
    ("dot", ".", "."),
    ("version", "1.2.3", "1.2.3"),
    ("duration", "10s", "10s"),
    ("dot-with-underscore", ".5_5", ".5_5"),
    ("nan-word", "NaN", "NaN"),
    # quoted, block and tagged scalars
    ("double-quoted-bool", '"yes"', "yes"),
    ("single-quoted-number", "'8080'", "8080"),
    ("literal-block", "|\n  on\n", "on\n"),
    ("folded-block", ">\n  a\n  b\n", "a b\n"),
    ("str-tag", "!!str 10", "10"),
    ("int-tag-on-quoted", "!!int '10'", 10),
    ("float-tag-on-int", "!!float 1", 1.0),
    ("bool-tag", "!!bool off", False),
    ("local-tag", "!custom 12", "12"),
    ("binary-tag", "!!binary aGVsbG8=", "hello"),
    ("timestamp-tag", "!!timestamp 2001-12-14", "2001-12-14"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in SCALARS], ids=[c[0] for c in SCALARS])
def test_scalar_values(text: str, expected: Any) -> None:
    (document,) = load_documents(f"v: {text}\n")
    value = document.root["v"]
    assert value == expected and type(value) is type(expected)


KEYS = [
    ("string", "name: x", "name"),
    ("integer", "8080: x", "8080"),
    ("octal", "010: x", "8"),
    ("boolean-word", "on: x", "true"),
    ("false", "n: x", "false"),
    ("float", "1.5: x", "1.5"),
    ("float-exponent", "1e6: x", "1e+06"),
    ("float32-digits", "3.14159265: x", "3.1415927"),
    ("quoted", "'on': x", "on"),
]


@pytest.mark.parametrize(("text", "key"), [c[1:] for c in KEYS], ids=[c[0] for c in KEYS])
def test_keys_become_strings_as_json_object_keys(text: str, key: str) -> None:
    (document,) = load_documents(text + "\n")
    assert list(document.root) == [key]


@pytest.mark.parametrize(
    "text",
    [".inf", "-.Inf", "+.INF", ".nan", ".NaN"],
    ids=["inf", "minus-inf", "plus-inf", "nan", "NaN"],
)
def test_infinity_and_nan_are_refused(text: str) -> None:
    with pytest.raises(YamlSyntaxError, match="JSON has no infinity or NaN"):
        load_documents(f"a: 1\nv: {text}\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!!int abc", "cannot decode !!str `abc` as a !!int"),
        ("!!bool 1", "cannot decode !!int `1` as a !!bool"),
        ("!!null x", "cannot decode !!str `x` as a !!null"),
        ("!!binary '%%%'", "!!binary value contains invalid base64 data"),
        ("!!binary aé==", "!!binary value contains invalid base64 data"),
    ],
    ids=["int", "bool", "null", "binary", "binary-not-ascii"],
)
def test_a_tag_the_value_contradicts_is_refused(text: str, message: str) -> None:
    with pytest.raises(YamlSyntaxError, match=message):
        load_documents(f"v: {text}\n")
