"""A corpus of invalid config, tried the way a new user would get it wrong: seeded mutations of one valid mesh,
plus hand-written cases in the style of Istio's ``pkg/config/validation`` tests.

- ``VALID_MESH``: every kind meshplane reads, each using the fields a mutation breaks (hosts, CIDRs, regexes,
  durations, principals, ports, percentages, header operations). It is accepted as a whole.
- ``mutation_cases(seed)``: the valid mesh with one document replaced by a broken copy: a wrong type at a field, an
  unknown field, a required field removed or nulled, or a targeted invalid value (``TARGETED``).
- ``HAND_WRITTEN``: whole broken documents (a fresh name each), put in the middle of the valid mesh.
- ``FILE_CASES``: files that are not usable YAML at all (the file is rejected as a whole).
- ``PARSER_CASES``: what needs the YAML reader to bound its input (depth, size, bytes, error lines).
- ``VALID_LOOKING``: VirtualServices that look odd but are valid (accepted, and Envoy accepts what they become).

Each case knows the field path one of its errors must name (empty for a document- or file-level problem).
"""

from __future__ import annotations

import copy
import functools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from pilot.config.errors import FieldPath, format_path

__all__ = [
    "DEPENDENTS",
    "FILE_CASES",
    "HAND_WRITTEN",
    "PARSER_CASES",
    "TARGETED",
    "VALID_LOOKING",
    "VALID_MESH",
    "Case",
    "FileCase",
    "case_file_text",
    "mutation_cases",
    "render",
]

NET = "networking.istio.io/v1"
SEC = "security.istio.io/v1"
MIXER = "mixer.meshplane.io/v1"


def _doc(api: str, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "default"}, "spec": spec}


REVIEWS = "reviews.default.svc.cluster.local"
VALID_MESH: tuple[dict[str, Any], ...] = (
    _doc(
        NET,
        "ServiceEntry",
        "reviews",
        {
            "hosts": [REVIEWS],
            "location": "MESH_INTERNAL",
            "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
            "resolution": "STATIC",
            "workloadSelector": {"labels": {"app": "reviews"}},
        },
    ),
    _doc(
        NET,
        "WorkloadEntry",
        "reviews-v1",
        {
            "serviceAccount": "bookinfo-reviews",
            "address": "127.0.0.21",
            "labels": {"app": "reviews", "version": "v1"},
            "ports": {"http": 19080},
        },
    ),
    _doc(
        NET,
        "WorkloadEntry",
        "reviews-v2",
        {"address": "127.0.0.22", "labels": {"app": "reviews", "version": "v2"}, "ports": {"http": 19080}},
    ),
    _doc(
        NET,
        "DestinationRule",
        "reviews",
        {
            "host": "reviews",
            "trafficPolicy": {
                "connectionPool": {"tcp": {"maxConnections": 100, "connectTimeout": "2s"}},
                "outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s"},
            },
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    ),
    _doc(
        NET,
        "VirtualService",
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [
                {
                    "name": "jason",
                    "match": [{"headers": {"end-user": {"exact": "jason"}}, "uri": {"regex": "/v[0-9]+/.*"}}],
                    "route": [{"destination": {"host": "reviews", "subset": "v2"}}],
                    "timeout": "3s",
                    "retries": {"attempts": 2, "perTryTimeout": "1s", "retryOn": "5xx,503"},
                    "headers": {"request": {"set": {"x-route": "jason"}}, "response": {"remove": ["x-internal"]}},
                },
                {
                    "name": "split",
                    "route": [
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
                        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10},
                    ],
                    "fault": {"delay": {"fixedDelay": "100ms", "percentage": {"value": 0.5}}},
                    "mirror": {"host": "reviews", "subset": "v1"},
                    "mirrorPercentage": {"value": 5.0},
                },
            ],
        },
    ),
    _doc(
        NET,
        "VirtualService",
        "reviews-edge",
        {
            "hosts": ["edge.example.com"],
            "http": [
                {"match": [{"uri": {"prefix": "/old"}}], "redirect": {"uri": "/new", "redirectCode": 301}},
                {"match": [{"uri": {"exact": "/health"}}], "directResponse": {"status": 200, "body": {"string": "ok"}}},
                {
                    "rewrite": {"uriRegexRewrite": {"match": "^/api/(.*)", "rewrite": "/\\1"}},
                    "route": [{"destination": {"host": "reviews", "port": {"number": 9080}}}],
                },
            ],
        },
    ),
    _doc(
        SEC,
        "PeerAuthentication",
        "reviews",
        {
            "selector": {"matchLabels": {"app": "reviews"}},
            "mtls": {"mode": "STRICT"},
            "portLevelMtls": {"9080": {"mode": "PERMISSIVE"}},
        },
    ),
    _doc(
        SEC,
        "AuthorizationPolicy",
        "reviews",
        {
            "selector": {"matchLabels": {"app": "reviews"}},
            "action": "ALLOW",
            "rules": [
                {
                    "from": [
                        {
                            "source": {
                                "principals": ["cluster.local/ns/default/sa/bookinfo-productpage"],
                                "ipBlocks": ["127.0.0.0/8"],
                            }
                        }
                    ],
                    "to": [{"operation": {"methods": ["GET"], "paths": ["/reviews/*"], "ports": ["9080"]}}],
                    "when": [{"key": "request.headers[end-user]", "values": ["jason"]}],
                }
            ],
        },
    ),
    _doc(
        MIXER,
        "RateLimit",
        "guest-quota",
        {
            "selector": {"matchLabels": {"app": "reviews"}},
            "match": 'request.headers["end-user"] == "guest"',
            "key": "source.principal",
            "limit": {"requests": 5, "per": "30s"},
        },
    ),
    _doc(
        MIXER,
        "AccessList",
        "blocked",
        {
            "selector": {"matchLabels": {"app": "reviews"}},
            "value": "source.principal",
            "entries": ["evil"],
            "mode": "deny",
        },
    ),
)


# what the store cannot keep once a document is gone (a VirtualService using subsets of a DestinationRule)
DEPENDENTS: dict[int, tuple[int, ...]] = {3: (4,)}


def render(documents: list[Any] | tuple[Any, ...]) -> str:
    """The documents as one YAML stream, block style, the way a user writes them."""
    options: dict[str, Any] = {"default_flow_style": False, "sort_keys": False, "width": 4096, "allow_unicode": True}
    return str(yaml.safe_dump_all(list(documents), **options))


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One broken document inside an otherwise valid mesh."""

    id: str
    document: Any  # the broken document (data), or None when ``text`` is given
    text: str = ""  # the broken document as YAML text, when data cannot express it
    path: str = ""  # the field path one error must name, or a prefix of it ("" : document level)
    message: str = ""  # a fragment that error's message must hold
    replaces: int | None = None  # the index in VALID_MESH this document replaces (a mutation)


def case_file_text(case: Case) -> tuple[str, int, int]:
    """The file a case is tried in: the valid mesh with the broken document in place (mutations) or in the middle
    (hand-written); with the broken document's first and last line."""
    cut = case.replaces if case.replaces is not None else len(VALID_MESH) // 2
    head = _render_valid(0, cut) + "---\n"
    broken = case.text if case.document is None else render([case.document])
    if not broken.endswith("\n"):
        broken += "\n"
    start = head.count("\n") + 1
    end = start + broken.count("\n") - 1
    return head + broken + "---\n" + _render_valid(cut + (case.replaces is not None), len(VALID_MESH)), start, end


@functools.cache
def _render_valid(start: int, stop: int) -> str:
    return render(VALID_MESH[start:stop])


# ----------------------------------------------------------------------------------------------------------------
# seeded mutations
# ----------------------------------------------------------------------------------------------------------------

# Targeted invalid values: (document index, field path, invalid value, message fragment)
_T = tuple[int, FieldPath, Any, str]
TARGETED: tuple[_T, ...] = (
    # hosts
    (0, ("spec", "hosts", 0), "Reviews.default", "not a valid DNS label"),
    (0, ("spec", "hosts", 0), "*", "invalid host"),
    (0, ("spec", "hosts", 0), "a..b.com", "not a valid DNS label"),
    (0, ("spec", "hosts", 0), "*.*.example.com", "not a valid DNS label"),
    (0, ("spec", "hosts", 0), "example.123", "all-numeric"),
    (0, ("spec", "hosts", 0), "x" * 300, "longer than 255"),
    (4, ("spec", "hosts", 0), "reviews.", "must not end with '.'"),
    (4, ("spec", "hosts", 0), "rev*ews", "whole first label"),
    (4, ("spec", "http", 0, "route", 0, "destination", "host"), "*", "wildcard"),
    (4, ("spec", "http", 0, "route", 0, "destination", "host"), "", "must not be empty"),
    (3, ("spec", "host"), "-reviews", "not a valid DNS label"),
    # addresses and CIDRs
    (1, ("spec", "address"), "10.20.251.300", "not a valid IP address"),
    (1, ("spec", "address"), "127.0.0.1/8", "not a valid IP address"),
    (1, ("spec", "address"), "fe80::zz", "not a valid IP address"),
    (1, ("spec", "address"), "reviews.example.com", "not supported by meshplane yet"),
    (7, ("spec", "rules", 0, "from", 0, "source", "ipBlocks", 0), "10.0.0.0/33", "CIDR"),
    (7, ("spec", "rules", 0, "from", 0, "source", "ipBlocks", 0), "10.0.0.256", "IP address"),
    (7, ("spec", "rules", 0, "from", 0, "source", "ipBlocks", 0), "", ""),
    # regexes
    (4, ("spec", "http", 0, "match", 0, "uri", "regex"), "(unclosed", "invalid regex"),
    (4, ("spec", "http", 0, "match", 0, "uri", "regex"), "a{1001}", "regex"),
    (4, ("spec", "http", 0, "match", 0, "uri", "regex"), "a**", "invalid regex"),
    (4, ("spec", "http", 0, "match", 0, "uri", "regex"), "\\1", "invalid regex"),
    (4, ("spec", "http", 0, "match", 0, "uri", "regex"), "", "must not be empty"),
    (5, ("spec", "http", 2, "rewrite", "uriRegexRewrite", "match"), "[a-", "invalid regex"),
    (5, ("spec", "http", 2, "rewrite", "uriRegexRewrite", "rewrite"), "", "must not be empty"),
    # durations
    (4, ("spec", "http", 0, "timeout"), "3", "duration"),
    (4, ("spec", "http", 0, "timeout"), "-1s", ""),
    (4, ("spec", "http", 0, "timeout"), "1d", ""),
    (4, ("spec", "http", 0, "timeout"), "0.1ms", ""),
    (4, ("spec", "http", 0, "retries", "perTryTimeout"), "fast", ""),
    (3, ("spec", "trafficPolicy", "connectionPool", "tcp", "connectTimeout"), "2 s", ""),
    (3, ("spec", "trafficPolicy", "outlierDetection", "interval"), "10", ""),
    (8, ("spec", "limit", "per"), "a minute", ""),
    (8, ("spec", "limit", "per"), "0s", ""),
    # principals, namespaces, keys
    (7, ("spec", "rules", 0, "from", 0, "source", "principals", 0), "", ""),
    (7, ("spec", "rules", 0, "when", 0, "key"), "request.headers", ""),
    (7, ("spec", "rules", 0, "when", 0, "key"), "no.such.key", ""),
    (7, ("spec", "rules", 0, "to", 0, "operation", "ports", 0), "http", ""),
    (7, ("spec", "rules", 0, "to", 0, "operation", "ports", 0), "70000", ""),
    (7, ("spec", "action"), "REJECT", "expected one of"),
    # out-of-range numbers
    (0, ("spec", "ports", 0, "number"), 0, "between 1 and 65535"),
    (0, ("spec", "ports", 0, "number"), 65536, "between 1 and 65535"),
    (0, ("spec", "ports", 0, "number"), -80, "between 1 and 65535"),
    (1, ("spec", "ports", "http"), 70000, "between 1 and 65535"),
    (4, ("spec", "http", 1, "route", 0, "weight"), 101, "between 0 and 100"),
    (4, ("spec", "http", 1, "route", 0, "weight"), 80, "add up to 100"),
    (4, ("spec", "http", 1, "route", 0, "weight"), -10, ""),
    (4, ("spec", "http", 0, "retries", "attempts"), -1, ""),
    (4, ("spec", "http", 0, "retries", "attempts"), 2**31, ""),
    (4, ("spec", "http", 1, "fault", "delay", "percentage", "value"), 100.5, ""),
    (4, ("spec", "http", 1, "fault", "delay", "percentage", "value"), 0.00001, "neither 0 nor"),
    (4, ("spec", "http", 1, "fault", "delay", "percentage", "value"), -1, ""),
    (4, ("spec", "http", 1, "mirrorPercentage", "value"), 1e9, ""),
    (5, ("spec", "http", 0, "redirect", "redirectCode"), 200, "must be one of"),
    (5, ("spec", "http", 1, "directResponse", "status"), 99, ""),
    (5, ("spec", "http", 1, "directResponse", "status"), 600, ""),
    (5, ("spec", "http", 2, "route", 0, "destination", "port", "number"), 0, ""),
    (3, ("spec", "trafficPolicy", "connectionPool", "tcp", "maxConnections"), -1, ""),
    (3, ("spec", "trafficPolicy", "connectionPool", "tcp", "maxConnections"), 2**40, ""),
    (6, ("spec", "portLevelMtls"), {0: {"mode": "STRICT"}}, "port"),
    (6, ("spec", "portLevelMtls"), {"http": {"mode": "STRICT"}}, "port"),
    (6, ("spec", "portLevelMtls"), {}, "at least one port"),
    (6, ("spec", "mtls", "mode"), "STRICTER", "expected one of"),
    (8, ("spec", "limit", "requests"), 0, ""),
    # the empty strings and Envoy's constraints
    (5, ("spec", "http", 0, "redirect"), {"uri": "", "authority": ""}, "at least one of"),
    (5, ("spec", "http", 0, "redirect", "scheme"), "ftp", "http"),
    (5, ("spec", "http", 0, "redirect", "uri"), "/new\r\nset-cookie: x", "control character"),
    (5, ("spec", "http", 0, "redirect", "authority"), "a\x00b", "control character"),
    (5, ("spec", "http", 2, "rewrite"), {"uri": ""}, "at least one of"),
    (5, ("spec", "http", 1, "directResponse", "body", "string"), "a" * (1024 * 1024 + 1), "1 MiB"),
    (4, ("spec", "http", 1, "route"), [], "at least one entry"),
    (4, ("spec", "http", 0, "headers", "request", "set", "x-route"), "a\r\nb", "control character"),
    (4, ("spec", "http", 0, "headers", "request", "set", "x-route"), "bell\x07", "control character"),
    (4, ("spec", "http", 0, "headers", "request", "set", "x-route"), "x" * 16385, "over Envoy's limit"),
    (4, ("spec", "http", 0, "headers", "request", "set", "x-route"), "50%", "'%%'"),
    (4, ("spec", "http", 0, "headers", "response", "remove", 0), "x internal", "not a valid HTTP header name"),
    (4, ("spec", "http", 0, "headers", "response", "remove", 0), ":path", "pseudo-header"),
    (4, ("spec", "http", 0, "retries", "retryOn"), "299", "not a retry policy"),
    (4, ("spec", "http", 0, "retries", "retryOn"), "5xx,bogus", "not a retry policy"),
    (4, ("spec", "hosts"), ["*.default.svc.cluster.local", REVIEWS], "overlapping hosts"),
    (4, ("spec", "hosts"), ["reviews", "reviews"], "duplicate host"),
    # names and labels
    (1, ("metadata", "name"), "Reviews_V1", "DNS-1123"),
    (1, ("metadata", "name"), "x" * 300, "DNS-1123"),
    (1, ("metadata", "namespace"), "Default", "DNS-1123"),
    (1, ("spec", "labels", "version"), "v1!", "invalid label value"),
    (1, ("spec", "labels"), {"-bad": "x"}, "invalid label key"),
    (3, ("spec", "subsets", 1, "name"), "v1", "duplicate"),
    (3, ("spec", "subsets", 1, "name"), "V2", "DNS-1123"),
    (4, ("spec", "http", 0, "route", 0, "destination", "subset"), "v_2", "DNS-1123"),
    (4, ("spec", "http", 0, "match", 0, "headers"), {"End-User": {"exact": "jason"}}, "lowercase"),
    (0, ("spec", "resolution"), "STATICAL", "expected one of"),
    (0, ("spec", "ports", 0, "protocol"), "QUIC", "expected one of"),
    (0, ("apiVersion",), "networking.istio.io/v2", "expected one of"),
    (9, ("spec", "mode"), "block", "expected"),
    (9, ("spec", "value"), "source.principal ==", ""),
    (8, ("spec", "match"), "request.headers[", ""),
)

_REQUIRED: tuple[tuple[int, FieldPath], ...] = (
    (0, ("spec", "hosts")),
    (0, ("spec", "ports", 0, "number")),
    (0, ("spec", "ports", 0, "name")),
    (1, ("spec", "address")),
    (3, ("spec", "host")),
    (3, ("spec", "subsets", 0, "name")),
    (4, ("spec", "http")),  # without hosts it is a delegate (Istio 1.6+), which is valid
    (4, ("spec", "http", 0, "route")),
    (4, ("spec", "http", 0, "route", 0, "destination")),
    (4, ("spec", "http", 0, "route", 0, "destination", "host")),
    (4, ("spec", "http", 0, "retries", "attempts")),
    (4, ("spec", "http", 1, "fault", "delay", "fixedDelay")),
    (5, ("spec", "http", 1, "directResponse", "status")),
    (5, ("spec", "http", 2, "rewrite", "uriRegexRewrite", "match")),
    (7, ("spec", "rules", 0, "when", 0, "key")),
    (8, ("spec", "limit")),
    (8, ("spec", "limit", "requests")),
    (9, ("spec", "value")),
    (9, ("spec", "mode")),
    (0, ("spec",)),
    (0, ("metadata",)),
    (0, ("metadata", "name")),
    (0, ("kind",)),
    (0, ("apiVersion",)),
)

_FREE_FORM = ("labels", "matchLabels", "ports", "set", "add", "headers", "portLevelMtls")


def _get(node: Any, path: FieldPath) -> Any:
    for segment in path:
        node = node[segment]
    return node


def _set(document: Any, path: FieldPath, value: Any) -> Any:
    mutated = copy.deepcopy(document)
    parent = _get(mutated, path[:-1])
    parent[path[-1]] = value
    return mutated


def _delete(document: Any, path: FieldPath) -> Any:
    mutated = copy.deepcopy(document)
    del _get(mutated, path[:-1])[path[-1]]
    return mutated


def _sites(node: Any, path: FieldPath = ()) -> Iterator[tuple[FieldPath, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _sites(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _sites(value, (*path, index))


def _wrong_type(value: Any) -> Any:
    """A value of another type that no field of this one accepts."""
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return "eighty"
    if isinstance(value, str):
        return {"value": value}
    if isinstance(value, list):
        return "text"
    return ["a", "list"]


def mutation_cases(seed: int = 8, per_kind: int = 70) -> list[Case]:
    """Seeded mutations of ``VALID_MESH``: every targeted value and required field, plus ``per_kind`` random picks of
    each generic mutation (wrong type, unknown field, null) among the fields of the mesh."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for index, path, value, message in TARGETED:
        cases.append(
            Case(
                id=f"targeted-{VALID_MESH[index]['kind']}-{format_path(path)}={_short(value)}",
                document=_set(VALID_MESH[index], path, value),
                path=format_path(path),
                message=message,
                replaces=index,
            )
        )
    for index, path in _REQUIRED:
        cases.append(
            Case(
                id=f"missing-{VALID_MESH[index]['kind']}-{format_path(path)}",
                document=_delete(VALID_MESH[index], path),
                path=format_path(path[:-1]),
                replaces=index,
            )
        )
    sites = [
        (index, path, value)
        for index, document in enumerate(VALID_MESH)
        for path, value in _sites(document)
        if path and path[0] in ("apiVersion", "kind", "metadata", "spec")
    ]
    mappings = [s for s in sites if isinstance(s[2], dict) and not (s[1] and s[1][-1] in _FREE_FORM)]
    for name, pool in (("wrong-type", sites), ("unknown-field", mappings), ("null", sites)):
        for index, path, value in rng.sample(pool, min(per_kind, len(pool))):
            if name == "wrong-type":
                document, where = _set(VALID_MESH[index], path, _wrong_type(value)), path
            elif name == "unknown-field":
                where = (*path, "bogusField")
                document = _set(VALID_MESH[index], where, 1.5)
            else:
                if not _null_is_invalid(path, value):
                    continue
                document, where = _set(VALID_MESH[index], path, None), path[:-1]
            cases.append(
                Case(
                    id=f"{name}-{VALID_MESH[index]['kind']}-{VALID_MESH[index]['metadata']['name']}-{format_path(where)}",
                    document=document,
                    path=format_path(where),
                    replaces=index,
                )
            )
    unique = {case.id: case for case in cases}
    return list(unique.values())


def _null_is_invalid(path: FieldPath, value: Any) -> bool:
    """Null means "not set" (protobuf JSON): only where the field is required, or an item of a list, is it wrong."""
    return isinstance(path[-1], int) or any(path == p for _, p in _REQUIRED) or path[-1] in ("host", "hosts", "name")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)})"


# ----------------------------------------------------------------------------------------------------------------
# hand-written documents (Istio pkg/config/validation style)
# ----------------------------------------------------------------------------------------------------------------


def _vs(name: str, http: Any, hosts: Any = ("reviews",)) -> dict[str, Any]:
    return _doc(NET, "VirtualService", name, {"hosts": list(hosts), "http": http})


_ROUTE = [{"destination": {"host": "reviews"}}]
HAND_WRITTEN: tuple[Case, ...] = (
    Case(id="document-a-list", document=["apiVersion", "kind"], message="must be a mapping"),
    Case(id="document-a-string", document="just text", message="must be a mapping"),
    Case(id="document-an-integer", document=42, message="must be a mapping"),
    Case(id="no-kind", document={"apiVersion": NET, "metadata": {"name": "x"}, "spec": {}}, path="kind"),
    Case(
        id="kind-integer", document={"apiVersion": NET, "kind": 7, "metadata": {"name": "x"}, "spec": {}}, path="kind"
    ),
    Case(
        id="spec-a-list",
        document={"apiVersion": NET, "kind": "ServiceEntry", "metadata": {"name": "x"}, "spec": []},
        path="spec",
    ),
    Case(
        id="spec-missing", document={"apiVersion": NET, "kind": "WorkloadEntry", "metadata": {"name": "x"}}, path="spec"
    ),
    Case(
        id="metadata-a-string",
        document={"apiVersion": NET, "kind": "WorkloadEntry", "metadata": "x", "spec": {"address": "1.2.3.4"}},
        path="metadata",
    ),
    Case(id="vs-empty-http", document=_vs("broken", []), path="spec.http"),
    Case(id="vs-http-null-item", document=_vs("broken", [None]), path="spec.http[0]"),
    Case(
        id="vs-route-and-redirect",
        document=_vs("broken", [{"route": _ROUTE, "redirect": {"uri": "/a"}}]),
        path="spec.http[0]",
        message="only one of",
    ),
    Case(
        id="vs-redirect-and-fault",
        document=_vs("broken", [{"redirect": {"uri": "/a"}, "fault": {"abort": {"httpStatus": 500}}}]),
        path="spec.http[0].fault",
    ),
    Case(
        id="vs-redirect-empty-strings",
        document=_vs("broken", [{"redirect": {"uri": "", "authority": ""}}]),
        path="spec.http[0].redirect",
        message="at least one of",
    ),
    Case(id="vs-redirect-empty", document=_vs("broken", [{"redirect": {}}]), path="spec.http[0].redirect"),
    Case(
        id="vs-redirect-port-and-derive",
        document=_vs("broken", [{"redirect": {"port": 8080, "derivePort": "FROM_REQUEST_PORT"}}]),
        path="spec.http[0].redirect",
    ),
    Case(
        id="vs-redirect-scheme-ftp",
        document=_vs("broken", [{"redirect": {"scheme": "ftp"}}]),
        path="spec.http[0].redirect.scheme",
    ),
    Case(
        id="vs-rewrite-empty-uri",
        document=_vs("broken", [{"rewrite": {"uri": ""}, "route": _ROUTE}]),
        path="spec.http[0].rewrite",
    ),
    Case(
        id="vs-rewrite-uri-and-regex",
        document=_vs(
            "broken", [{"rewrite": {"uri": "/a", "uriRegexRewrite": {"match": "a", "rewrite": "b"}}, "route": _ROUTE}]
        ),
        path="spec.http[0].rewrite",
        message="only one of",
    ),
    Case(
        id="vs-regex-rewrite-empty",
        document=_vs("broken", [{"rewrite": {"uriRegexRewrite": {"match": "^/a", "rewrite": ""}}, "route": _ROUTE}]),
        path="spec.http[0].rewrite.uriRegexRewrite.rewrite",
    ),
    Case(
        id="vs-regex-rewrite-no-match",
        document=_vs("broken", [{"rewrite": {"uriRegexRewrite": {"rewrite": "/b"}}, "route": _ROUTE}]),
        path="spec.http[0].rewrite.uriRegexRewrite.match",
    ),
    Case(
        id="vs-uri-regex-empty",
        document=_vs("broken", [{"match": [{"uri": {"regex": ""}}], "route": _ROUTE}]),
        path="spec.http[0].match[0].uri.regex",
    ),
    Case(
        id="vs-uri-prefix-empty",
        document=_vs("broken", [{"match": [{"uri": {"prefix": ""}}], "route": _ROUTE}]),
        path="spec.http[0].match[0].uri.prefix",
    ),
    Case(
        id="vs-uri-two-kinds",
        document=_vs("broken", [{"match": [{"uri": {"prefix": "/a", "exact": "/a"}}], "route": _ROUTE}]),
        path="spec.http[0].match[0].uri",
    ),
    Case(
        id="vs-uri-no-kind",
        document=_vs("broken", [{"match": [{"uri": {}}], "route": _ROUTE}]),
        path="spec.http[0].match[0].uri",
    ),
    Case(
        id="vs-header-match-regex-bad",
        document=_vs("broken", [{"match": [{"headers": {"x": {"regex": "*"}}}], "route": _ROUTE}]),
        path="spec.http[0].match[0].headers.x",
    ),
    Case(
        id="vs-header-match-name-space",
        document=_vs("broken", [{"match": [{"headers": {"x y": {"exact": "a"}}}], "route": _ROUTE}]),
        path='spec.http[0].match[0].headers["x y"]',
    ),
    Case(
        id="vs-header-match-name-empty",
        document=_vs("broken", [{"match": [{"headers": {"": {"exact": "a"}}}], "route": _ROUTE}]),
        path="spec.http[0].match[0].headers",
    ),
    Case(
        id="vs-query-param-name-huge",
        document=_vs("broken", [{"match": [{"queryParams": {"q" * 1025: {"exact": "a"}}}], "route": _ROUTE}]),
        path="spec.http[0].match[0].queryParams",
        message="over Envoy's limit",
    ),
    Case(id="vs-route-empty-list", document=_vs("broken", [{"route": []}]), path="spec.http[0]"),
    Case(
        id="vs-route-weights-not-100",
        document=_vs(
            "broken",
            [{"route": [{"destination": {"host": "a"}, "weight": 50}, {"destination": {"host": "b"}, "weight": 20}]}],
        ),
        path="spec.http[0].route",
        message="add up to 100",
    ),
    Case(
        id="vs-header-value-crlf",
        document=_vs("broken", [{"route": _ROUTE, "headers": {"request": {"set": {"x-a": "a\r\nx-injected: 1"}}}}]),
        path="spec.http[0].headers.request.set.x-a",
        message="control character",
    ),
    Case(
        id="vs-header-value-nul",
        document=_vs("broken", [{"route": _ROUTE, "headers": {"response": {"add": {"x-a": "a\x00"}}}}]),
        path="spec.http[0].headers.response.add.x-a",
    ),
    Case(
        id="vs-header-value-escape",
        document=_vs(
            "broken",
            [{"route": [{"destination": {"host": "reviews"}, "headers": {"request": {"set": {"x-a": "\x1b[31m"}}}}]}],
        ),
        path="spec.http[0].route[0].headers.request.set.x-a",
    ),
    Case(
        id="vs-header-name-crlf",
        document=_vs("broken", [{"route": _ROUTE, "headers": {"request": {"set": {"x-a\r\nx-b": "1"}}}}]),
        path="spec.http[0].headers.request.set",
    ),
    Case(
        id="vs-header-set-host-in-response",
        document=_vs("broken", [{"route": _ROUTE, "headers": {"response": {"set": {"host": "a"}}}}]),
        path="spec.http[0].headers.response.set.host",
    ),
    Case(
        id="vs-authority-twice",
        document=_vs(
            "broken", [{"route": _ROUTE, "rewrite": {"authority": "a"}, "headers": {"request": {"set": {"host": "b"}}}}]
        ),
        path="spec.http[0].headers",
    ),
    Case(
        id="vs-direct-response-too-big",
        document=_vs("broken", [{"directResponse": {"status": 200, "body": {"string": "é" * (512 * 1024 + 1)}}}]),
        path="spec.http[0].directResponse.body",
        message="1 MiB",
    ),
    Case(
        id="vs-direct-response-bad-base64",
        document=_vs("broken", [{"directResponse": {"status": 200, "body": {"bytes": "!!!"}}}]),
        path="spec.http[0].directResponse.body.bytes",
    ),
    Case(
        id="vs-direct-response-both-bodies",
        document=_vs("broken", [{"directResponse": {"status": 200, "body": {"string": "a", "bytes": "YQ=="}}}]),
        path="spec.http[0].directResponse.body",
    ),
    Case(
        id="vs-abort-no-status",
        document=_vs("broken", [{"route": _ROUTE, "fault": {"abort": {"percentage": {"value": 10}}}}]),
        path="spec.http[0].fault.abort",
    ),
    Case(
        id="vs-abort-percentage-tiny",
        document=_vs(
            "broken", [{"route": _ROUTE, "fault": {"abort": {"httpStatus": 503, "percentage": {"value": 0.00005}}}}]
        ),
        path="spec.http[0].fault.abort.percentage.value",
    ),
    Case(
        id="vs-abort-grpc-bogus",
        document=_vs("broken", [{"route": _ROUTE, "fault": {"abort": {"grpcStatus": "NOPE"}}}]),
        path="spec.http[0].fault.abort.grpcStatus",
    ),
    Case(id="vs-fault-empty", document=_vs("broken", [{"route": _ROUTE, "fault": {}}]), path="spec.http[0].fault"),
    Case(
        id="vs-retry-on-299",
        document=_vs("broken", [{"route": _ROUTE, "retries": {"attempts": 1, "retryOn": "299"}}]),
        path="spec.http[0].retries.retryOn",
    ),
    Case(
        id="vs-retry-on-600",
        document=_vs("broken", [{"route": _ROUTE, "retries": {"attempts": 1, "retryOn": "600"}}]),
        path="spec.http[0].retries.retryOn",
    ),
    Case(
        id="vs-retry-zero-with-settings",
        document=_vs("broken", [{"route": _ROUTE, "retries": {"attempts": 0, "perTryTimeout": "1s"}}]),
        path="spec.http[0].retries.attempts",
    ),
    Case(
        id="vs-mirror-and-mirrors",
        document=_vs(
            "broken", [{"route": _ROUTE, "mirror": {"host": "a"}, "mirrors": [{"destination": {"host": "b"}}]}]
        ),
        path="spec.http[0]",
    ),
    Case(
        id="vs-mirror-percentage-alone",
        document=_vs("broken", [{"route": _ROUTE, "mirrorPercentage": {"value": 5}}]),
        path="spec.http[0].mirrorPercentage",
    ),
    Case(
        id="vs-hosts-overlap-wildcards",
        document=_vs("broken", [{"route": _ROUTE}], hosts=("*.example.com", "*.a.example.com")),
        path="spec.hosts[1]",
        message="overlapping",
    ),
    Case(
        id="vs-hosts-overlap-issue",
        document=_vs("broken", [{"route": _ROUTE}], hosts=("*.default.svc.cluster.local", REVIEWS)),
        path="spec.hosts[1]",
        message="overlapping",
    ),
    Case(id="vs-host-star-for-mesh", document=_vs("broken", [{"route": _ROUTE}], hosts=("*",)), path="spec.hosts[0]"),
    Case(
        id="vs-delegate-with-tcp",  # no hosts: a delegate, which has http routes only
        document=_doc(NET, "VirtualService", "broken", {"tcp": [{"route": [{"destination": {"host": "db"}}]}]}),
        path="spec.tcp",
        message="delegate virtual service must have no tcp route specified",
    ),
    Case(
        id="vs-delegate-delegates-again",
        document=_doc(NET, "VirtualService", "broken", {"http": [{"delegate": {"name": "deeper"}}]}),
        path="spec.http[0].delegate",
        message="one level of delegation only",
    ),
    Case(
        id="vs-tcp-without-route",
        document=_doc(NET, "VirtualService", "broken", {"hosts": ["reviews"], "tcp": [{"match": [{"port": 80}]}]}),
        path="spec.tcp[0].route",
        message="TCP route is required",
    ),
    Case(
        id="vs-tls-sni-outside-hosts",
        document=_doc(
            NET,
            "VirtualService",
            "broken",
            {"hosts": ["reviews"], "tls": [{"match": [{"sniHosts": ["other.com"]}], "route": _ROUTE}]},
        ),
        path="spec.tls[0].match[0].sniHosts[0]",
        message="not a compatible subset",
    ),
    Case(
        id="vs-mirror-percent-not-supported",
        document=_vs("broken", [{"route": _ROUTE, "mirror": {"host": "reviews"}, "mirrorPercent": 5}]),
        path="spec.http[0].mirrorPercent",
        message="not supported by meshplane yet",
    ),
    Case(
        id="vs-huge-value-cut",
        document=_vs("broken", [{"route": [{"destination": {"host": "a" * (1024 * 1024)}}]}]),
        path="spec.http[0].route[0].destination.host",
        message="characters",
    ),
    Case(
        id="pa-port-level-empty",
        document=_doc(
            SEC, "PeerAuthentication", "broken", {"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {}}
        ),
        path="spec.portLevelMtls",
        message="at least one port",
    ),
    Case(
        id="pa-port-level-without-selector",
        document=_doc(SEC, "PeerAuthentication", "broken", {"portLevelMtls": {8080: {"mode": "STRICT"}}}),
        path="spec.portLevelMtls",
        message="requires a selector",
    ),
    Case(
        id="pa-port-level-null",
        document=_doc(
            SEC,
            "PeerAuthentication",
            "broken",
            {"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {8080: None}},
        ),
        path="spec.portLevelMtls.8080",
    ),
    Case(
        id="pa-port-level-port-zero",
        document=_doc(
            SEC,
            "PeerAuthentication",
            "broken",
            {"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {"0": {"mode": "STRICT"}}},
        ),
        path="spec.portLevelMtls.0",
    ),
    Case(
        id="pa-selector-wildcard",
        document=_doc(SEC, "PeerAuthentication", "broken", {"selector": {"matchLabels": {"app": "*"}}}),
        path="spec.selector.matchLabels.app",
    ),
    Case(
        id="ap-deny-without-rules",
        document=_doc(SEC, "AuthorizationPolicy", "broken", {"action": "DENY", "rules": []}),
        path="spec.rules",
    ),
    Case(
        id="ap-custom-without-provider",
        document=_doc(SEC, "AuthorizationPolicy", "broken", {"action": "CUSTOM", "rules": [{}]}),
        path="spec",
    ),
    Case(
        id="ap-from-empty-source",
        document=_doc(SEC, "AuthorizationPolicy", "broken", {"rules": [{"from": [{}]}]}),
        path="spec.rules[0].from[0]",
    ),
    Case(
        id="ap-when-no-values",
        document=_doc(SEC, "AuthorizationPolicy", "broken", {"rules": [{"when": [{"key": "source.ip"}]}]}),
        path="spec.rules[0].when[0]",
    ),
    Case(
        id="ap-principal-empty",
        document=_doc(SEC, "AuthorizationPolicy", "broken", {"rules": [{"from": [{"source": {"principals": [""]}}]}]}),
        path="spec.rules[0].from[0].source.principals[0]",
    ),
    Case(
        id="ap-ipblock-bad",
        document=_doc(
            SEC, "AuthorizationPolicy", "broken", {"rules": [{"from": [{"source": {"ipBlocks": ["1.2.3.4/40"]}}]}]}
        ),
        path="spec.rules[0].from[0].source.ipBlocks[0]",
    ),
    Case(
        id="ap-method-lowercase-type",
        document=_doc(SEC, "AuthorizationPolicy", "broken", {"rules": [{"to": [{"operation": {"methods": [7]}}]}]}),
        path="spec.rules[0].to[0].operation.methods[0]",
    ),
    Case(
        id="se-no-ports-names",
        document=_doc(
            NET,
            "ServiceEntry",
            "broken",
            {
                "hosts": ["a.example.com"],
                "ports": [
                    {"number": 80, "name": "http", "protocol": "HTTP"},
                    {"number": 80, "name": "http", "protocol": "HTTP"},
                ],
                "resolution": "DNS",
            },
        ),
        path="spec.ports[1]",
    ),
    Case(
        id="se-wildcard-star",
        document=_doc(
            NET,
            "ServiceEntry",
            "broken",
            {"hosts": ["*"], "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}], "resolution": "NONE"},
        ),
        path="spec.hosts[0]",
    ),
    Case(
        id="se-endpoints-and-selector",
        document=_doc(
            NET,
            "ServiceEntry",
            "broken",
            {
                "hosts": ["a.example.com"],
                "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                "resolution": "STATIC",
                "endpoints": [{"address": "1.2.3.4"}],
                "workloadSelector": {"labels": {"a": "b"}},
            },
        ),
        path="spec",
    ),
    Case(
        id="we-address-hostname-looking-ip",
        document=_doc(NET, "WorkloadEntry", "broken", {"address": "10.20.251.300"}),
        path="spec.address",
        message="not a valid IP address",
    ),
    Case(id="we-address-empty", document=_doc(NET, "WorkloadEntry", "broken", {"address": ""}), path="spec.address"),
    Case(
        id="we-weight-negative",
        document=_doc(NET, "WorkloadEntry", "broken", {"address": "1.2.3.4", "weight": -1}),
        path="spec.weight",
    ),
    Case(
        id="we-locality-bad",
        document=_doc(NET, "WorkloadEntry", "broken", {"address": "1.2.3.4", "locality": "a//b"}),
        path="spec.locality",
    ),
    Case(
        id="dr-subset-no-name",
        document=_doc(NET, "DestinationRule", "broken", {"host": "reviews", "subsets": [{"labels": {"a": "b"}}]}),
        path="spec.subsets[0]",
    ),
    Case(
        id="dr-lb-unknown",
        document=_doc(
            NET,
            "DestinationRule",
            "broken",
            {"host": "reviews", "trafficPolicy": {"loadBalancer": {"simple": "FASTEST"}}},
        ),
        path="spec.trafficPolicy.loadBalancer.simple",
    ),
    Case(
        id="dr-tls-mutual-no-cert",
        document=_doc(
            NET, "DestinationRule", "broken", {"host": "reviews", "trafficPolicy": {"tls": {"mode": "MUTUAL"}}}
        ),
        path="spec.trafficPolicy.tls",
    ),
    Case(
        id="mixer-accesslist-both-sources",
        document=_doc(
            MIXER,
            "AccessList",
            "broken",
            {"value": "source.principal", "entries": ["a"], "entriesFile": "x.txt", "mode": "deny"},
        ),
        path="spec",
    ),
    Case(
        id="mixer-ratelimit-bad-cel",
        document=_doc(MIXER, "RateLimit", "broken", {"match": "1 +", "limit": {"requests": 1, "per": "1s"}}),
        path="spec.match",
    ),
    Case(id="security-kind-wrong-group", document=_doc(NET, "PeerAuthentication", "broken", {}), path="apiVersion"),
    Case(
        id="mixer-kind-wrong-group",
        document=_doc(SEC, "RateLimit", "broken", {"limit": {"requests": 1, "per": "1s"}}),
        path="apiVersion",
    ),
    Case(
        id="yaml-anchor-alias-wrong-type",
        text=f"apiVersion: {NET}\nkind: WorkloadEntry\nmetadata: &m {{name: broken}}\nspec: {{address: *m}}\n",
        document=None,
        path="spec.address",
    ),
    Case(
        id="flow-map-dup-value-types",
        text=f"apiVersion: {NET}\nkind: ServiceEntry\nmetadata: {{name: broken}}\n"
        "spec: {hosts: [a.example.com], ports: [{number: '80', name: http, protocol: HTTP}], resolution: DNS}\n",
        document=None,
        path="spec.ports[0].number",
    ),
)


# ----------------------------------------------------------------------------------------------------------------
# whole files that are not usable
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FileCase:
    id: str
    content: bytes
    line: int | None = None  # the line the file error must name, when known
    message: str = ""


FILE_CASES: tuple[FileCase, ...] = (
    FileCase(id="tab-indentation", content=b"apiVersion: v1\nkind: VirtualService\nspec:\n\thosts: [a]\n", line=4),
    FileCase(id="bad-indentation", content=b"a:\n  b: 1\n c: 2\n", line=3),
    FileCase(id="unclosed-flow-list", content=b"spec:\n  hosts: [a, b\n  http: []\n"),
    FileCase(id="unclosed-flow-map", content=b"metadata: {name: x\nspec: {}\n"),
    FileCase(id="duplicate-yaml-key", content=b"kind: ServiceEntry\nkind: WorkloadEntry\n", line=2),
    FileCase(id="undefined-alias", content=b"spec: *nowhere\n", line=1),
    FileCase(id="stray-colon", content=b"spec: a: b\n", line=1),
    FileCase(id="block-in-flow", content=b"spec: [a,\n- b]\n"),
    FileCase(id="bad-document-marker", content=b"kind: A\n--- x: y\n  z\n"),
    FileCase(id="directive-garbage", content=b"%YAML 9.9\n---\nkind: A\n"),
    FileCase(id="bad-escape", content=b'kind: "a\\qb"\n', line=1),
)

# Cases that need the YAML reader to bound what it reads (issue 8 part 2, the parser's items): depth, size,
# bytes that are not UTF-8, and an unclosed quote reported where it opens.
_DEEP = 250
PARSER_CASES: tuple[FileCase, ...] = (
    FileCase(
        id="deep-flow-lists",
        content=(
            f"apiVersion: {NET}\nkind: VirtualService\nmetadata: {{name: deep}}\nspec:\n  hosts: [a]\n  http: "
            + "[" * _DEEP
            + "]" * _DEEP
            + "\n"
        ).encode(),
        line=6,
    ),
    FileCase(
        id="deep-flow-maps",
        content=(
            f"apiVersion: {NET}\nkind: VirtualService\nmetadata: {{name: deep}}\nspec:\n  http: "
            + "{a: " * _DEEP
            + "1"
            + "}" * _DEEP
            + "\n"
        ).encode(),
        line=5,
    ),
    FileCase(
        id="deep-block-maps",
        content=(
            f"apiVersion: {NET}\nkind: VirtualService\nmetadata: {{name: deep}}\nspec:\n"
            + "".join("  " * (level + 1) + f"k{level}:\n" for level in range(_DEEP))
            + "  " * (_DEEP + 1)
            + "v\n"
        ).encode(),
    ),
    FileCase(
        id="not-utf8",
        content=b"apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: \xff\xfe}\n",
        line=3,
    ),
    FileCase(id="latin1-comment", content=b"# caf\xe9\napiVersion: networking.istio.io/v1\n", line=1),
    FileCase(
        id="unclosed-quote",
        content=b'apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: "broken\n'
        + b"spec:\n  address: 1.2.3.4\n"
        + b"# more\n" * 20,
        line=4,
    ),
    FileCase(
        id="ten-megabyte-file",
        content=(
            f"apiVersion: {NET}\nkind: WorkloadEntry\nmetadata: {{name: big}}\n"
            + "spec:\n  address: 1.2.3.4\n  serviceAccount: "
            + "a" * (10 * 1024 * 1024)
            + "\n"
        ).encode(),
    ),
)


# ----------------------------------------------------------------------------------------------------------------
# valid-looking: accepted, and Envoy must accept what they become
# ----------------------------------------------------------------------------------------------------------------

VALID_LOOKING: tuple[dict[str, Any], ...] = (
    _vs(
        "odd-header-names",
        [
            {
                "match": [{"headers": {"x.user": {"exact": "a"}, "x_under": {}}}],
                "route": _ROUTE,
                "headers": {"request": {"set": {"x.forwarded.by": "mesh", "x-tab": "a\tb"}, "remove": ["x.drop"]}},
            }
        ],
        hosts=("odd.example.com",),
    ),
    _vs(
        "percent-edges",
        [
            {
                "route": _ROUTE,
                "fault": {
                    "abort": {"httpStatus": 503, "percentage": {"value": 0.0001}},
                    "delay": {"fixedDelay": "1ms", "percentage": {"value": 0}},
                },
            }
        ],
        hosts=("percent.example.com",),
    ),
    _vs(
        "retry-status-codes",
        [{"route": _ROUTE, "retries": {"attempts": 3, "retryOn": "503, 425,retriable-status-codes,gateway-error"}}],
        hosts=("retry.example.com",),
    ),
    _vs(
        "direct-response-one-mebibyte",
        [{"directResponse": {"status": 503, "body": {"string": "x" * (1024 * 1024)}}}],
        hosts=("big.example.com",),
    ),
    _vs("redirect-scheme-only", [{"redirect": {"scheme": "https"}}], hosts=("scheme.example.com",)),
    _vs("rewrite-unicode", [{"rewrite": {"uri": "/café/ünïcode"}, "route": _ROUTE}], hosts=("unicode.example.com",)),
    _vs("wildcard-apart", [{"route": _ROUTE}], hosts=("*.a.example.com", "*.b.example.com", "c.example.com")),
    _vs(
        "regex-rewrite-dollar",
        [{"rewrite": {"uriRegexRewrite": {"match": "^/(a|b)/(.*)", "rewrite": "/\\2/\\1"}}, "route": _ROUTE}],
        hosts=("regex.example.com",),
    ),
)
