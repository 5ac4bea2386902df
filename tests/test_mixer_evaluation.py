"""CEL evaluation over a request's attributes (mixer/evaluation.py): absent values versus errors, and the ``cel``
package's behaviour that the distinction rests on (pinned here, so that an upgrade changing it fails loudly)."""

from __future__ import annotations

from typing import Any

import cel
import pytest

from mixer.evaluation import Absent, CompiledExpression, absent_key


def attributes() -> dict[str, Any]:
    return {
        "source": {"ip": "127.0.0.11", "principal": "cluster.local/ns/default/sa/productpage", "labels": {}},
        "destination": {"ip": "127.0.0.21", "port": 9080},
        "request": {"method": "GET", "path": "/reviews/1", "headers": {"x-user": "jason", "x-count": "abc"}},
        "connection": {"mtls": True},
    }


# ---------------------------------------------------------------------------------------------------------------
# the cel package: how it reports "no such key" and other errors
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "error", "args"),
    [
        ('m["x"]', KeyError, ("x",)),
        ("m.x", KeyError, ("x",)),
        ("m.a.b", KeyError, ("a",)),
        ('n.a["y"]', KeyError, ("y",)),
        ("m[1]", KeyError, ("1",)),
        ('{"k": 1}["z"]', KeyError, ("z",)),
        ('m["x"] == "a" || 1 + "a" == 2', TypeError, None),
        ('1 + "a" == 2 || m["x"] == "a"', KeyError, ("x",)),
        ('m["x"] == "a" && 1 / 0 == 1', ZeroDivisionError, None),
        ("n.a + 1", TypeError, None),
        ('int("abc")', RuntimeError, None),
        ("[1][3]", IndexError, None),
        ("1 / 0", ZeroDivisionError, None),
        ("undefined_name", RuntimeError, None),
    ],
    ids=[
        "missing-map-key",
        "missing-field-select",
        "missing-one-level-up",
        "missing-in-a-nested-map",
        "key-of-another-type",
        "missing-in-a-map-literal",
        "both-sides-fail-right-hand-reported",
        "both-sides-fail-right-hand-absent-reported",
        "both-sides-fail-right-hand-division-reported",
        "type-error",
        "bad-function-argument",
        "index-out-of-range",
        "division-by-zero",
        "undefined-name",
    ],
)
def test_cel_package_errors(source: str, error: type[Exception], args: tuple[str, ...] | None) -> None:
    with pytest.raises(Exception) as raised:
        cel.compile(source).execute({"m": {}, "n": {"a": {"b": "c"}}})
    assert type(raised.value) is error, repr(raised.value)
    if args is not None:
        assert raised.value.args == args
        assert absent_key(raised.value) == args[0]  # type: ignore[arg-type]  # asserted a KeyError above


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('m["x"] == "a" || true', True),
        ('true || m["x"] == "a"', True),
        ('m["x"] == "a" && false', False),
        ('false && m["x"] == "a"', False),
        ('"x" in m ? m["x"] : "none"', "none"),
        ("has(m.x)", False),
    ],
    ids=["or-true-right", "or-true-left", "and-false-right", "and-false-left", "conditional", "has"],
)
def test_cel_package_absorbs_errors_in_logic(source: str, expected: object) -> None:
    assert cel.compile(source).execute({"m": {}}) == expected


def test_absent_key_of_a_key_error_without_arguments() -> None:
    assert absent_key(KeyError()) == ""


# ---------------------------------------------------------------------------------------------------------------
# evaluation: a value, Absent, or CEL's exception
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('request.headers["x-user"]', "jason"),
        ('request.headers["x-tenant"]', Absent("x-tenant")),
        ("request.headers.x_tenant", Absent("x_tenant")),
        ('source.labels["app"]', Absent("app")),
        ('request.headers["x-tenant"] == "a"', Absent("x-tenant")),
        ('!(request.headers["x-tenant"] == "a")', Absent("x-tenant")),
        ('size(request.headers["x-tenant"]) > 0', Absent("x-tenant")),
        ('request.headers["x-tenant"] + "/" + source.principal', Absent("x-tenant")),
        ('request.headers["x-tenant"] + 1', Absent("x-tenant")),
        ('request.path.startsWith(request.headers["x-tenant"])', Absent("x-tenant")),
        ('request.headers["x-tenant"] == "a" || false', Absent("x-tenant")),
        ('request.headers["x-tenant"] == "a" || true', True),
        ('request.method == "POST" && request.headers["x-tenant"] == "a"', False),
        ('request.headers["x-tenant"] == "a" || request.headers["x-user"] == "jason"', True),
        ('"x-tenant" in request.headers ? request.headers["x-tenant"] : "none"', "none"),
        ("has(request.headers.x_tenant)", False),
        ('request.headers.exists(name, name == "x-user")', True),
    ],
    ids=[
        "present",
        "absent-header",
        "absent-field-select",
        "absent-label",
        "comparison-needs-it",
        "negation-needs-it",
        "function-needs-it",
        "concatenation-needs-it",
        "absent-before-a-type-error",
        "method-argument-needs-it",
        "or-false-needs-it",
        "or-true-decides-without-it",
        "and-false-decides-without-it",
        "or-other-side-true",
        "guarded-conditional",
        "has-tests-presence",
        "exists-over-the-map",
    ],
)
def test_evaluate(source: str, expected: object) -> None:
    assert CompiledExpression(source).evaluate(attributes()) == expected


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("request.path + 1", TypeError),
        ('int(request.headers["x-count"])', RuntimeError),
        ('request.headers["x-user"].matches("[")', RuntimeError),
        ("[request.path][1]", IndexError),
        ("destination.port / 0", ZeroDivisionError),
        ('request.headers["x-tenant"] == "a" || request.path + 1 == 2', TypeError),
    ],
    ids=["type-error", "bad-conversion", "bad-regex", "index-out-of-range", "division-by-zero", "or-both-fail"],
)
def test_evaluation_errors_are_raised(source: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        CompiledExpression(source).evaluate(attributes())


def test_absent_says_which_key() -> None:
    assert str(Absent("x-user")) == 'no such key "x-user"'
    long_key = 'a"b' + "c" * 200
    assert str(Absent(long_key)) == "no such key " + '"a\\"b' + "c" * 125 + '..."'
