"""Validate the Mixer policy kinds (``mixer.meshplane.io/v1``): AccessList and RateLimit.

Both select workloads like an AuthorizationPolicy (``selector.matchLabels``; none: the namespace, or the mesh in the
root namespace) and are checked by Mixer on every request to a selected workload, through Envoy's ext_authz.

AccessList:

- ``value`` (required): a CEL expression over Istio's attributes (``pilot.config.expressions``). It is compiled
  here, so a syntax error or an unknown attribute is a config error at ``spec.value`` with its line.
- exactly one of ``entries`` (inline list of strings) or ``entriesFile`` (a path, relative to the directory of the
  config file that names it; stored absolute and read by Mixer, not here).
- ``entryType``: STRINGS (default), CASE_INSENSITIVE_STRINGS, IP_ADDRESSES (each inline entry an IP or CIDR range)
  or REGEX (each inline entry an RE2 regex, as Mixer compiles them).
- ``mode`` (required): ``deny`` (requests whose value is listed are rejected) or ``allow`` (only requests whose value
  is listed are let in).
- ``failOpen``: whether the sidecar lets requests through when Mixer cannot answer (default false).

RateLimit:

- ``match`` (optional CEL, a boolean: which requests count), ``key`` (CEL, default ``source.principal``: what is
  counted separately).
- ``limit``: ``requests`` (at least 1) per ``per`` (a Go duration such as ``1s``, ``10s``, ``1m``; more than 0).
- ``overrides[]``: ``{key, requests}``, a different limit (0 or more) for one value of ``key``; each key once.
- ``failOpen`` as for AccessList.
"""

from __future__ import annotations

import os
from typing import Any, cast, get_args

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

from meshplane.durations import DurationError, parse_duration_ns
from pilot.config.expressions import ExpressionError, compile_expression
from pilot.config.types import AccessList, AccessListEntryType, AccessListMode, ConfigMeta, RateLimit, RateLimitOverride
from pilot.config.validate_authorization_policy import ip_block_error
from pilot.config.validate_common import INT32_MAX, Fields, describe, selector_labels

__all__ = [
    "ACCESS_LIST_ENTRY_TYPES",
    "ACCESS_LIST_FIELDS",
    "ACCESS_LIST_MODES",
    "DEFAULT_RATE_LIMIT_KEY",
    "RATE_LIMIT_FIELDS",
    "validate_access_list",
    "validate_rate_limit",
]

ACCESS_LIST_FIELDS = ("selector", "value", "entries", "entriesFile", "entryType", "mode", "failOpen")
RATE_LIMIT_FIELDS = ("selector", "match", "key", "limit", "overrides", "failOpen")
ACCESS_LIST_ENTRY_TYPES: tuple[str, ...] = get_args(AccessListEntryType)
ACCESS_LIST_MODES: tuple[str, ...] = get_args(AccessListMode)
DEFAULT_RATE_LIMIT_KEY = "source.principal"

_MODE_MEANINGS = (
    "deny (requests whose value is listed are rejected) or allow (only requests whose value is listed are let in)"
)
_LIMIT_FIELDS = ("requests", "per")
_OVERRIDE_FIELDS = ("key", "requests")


def _quiet_re2_options() -> Any:
    options = re2.Options()  # RE2's defaults, without RE2 logging each bad pattern to stderr
    options.log_errors = False
    return options


_RE2_OPTIONS = _quiet_re2_options()


def validate_access_list(spec: Fields, meta: ConfigMeta) -> AccessList:
    """Check an AccessList spec (opened with ``ACCESS_LIST_FIELDS``); problems go to ``spec.problems``."""
    selector = selector_labels(spec)
    value = _expression(spec, "value", required=True)
    entry_type = cast(AccessListEntryType, spec.enum("entryType", ACCESS_LIST_ENTRY_TYPES) or "STRINGS")
    source = spec.exclusive(("entries", "entriesFile"), required=True)
    entries: tuple[str, ...] = ()
    entries_file: str | None = None
    if source == "entries":
        entries = spec.strings("entries") or ()
        _check_entries(spec, entries, entry_type)
    elif source == "entriesFile":
        path = spec.string("entriesFile", required=True)
        if path is not None:
            entries_file = os.path.abspath(os.path.join(os.path.dirname(meta.file), path))
    return AccessList(
        meta=meta,
        selector=selector,
        value=value or "",
        entries=entries,
        entries_file=entries_file,
        entry_type=entry_type,
        mode=_mode(spec),
        fail_open=bool(spec.boolean("failOpen")),
    )


def validate_rate_limit(spec: Fields, meta: ConfigMeta) -> RateLimit:
    """Check a RateLimit spec (opened with ``RATE_LIMIT_FIELDS``); problems go to ``spec.problems``."""
    selector = selector_labels(spec)
    match = _expression(spec, "match")
    key = _expression(spec, "key") if spec.has("key") else DEFAULT_RATE_LIMIT_KEY
    requests, per = 1, 1.0
    limit = spec.mapping("limit", known=_LIMIT_FIELDS, required=True)
    if limit is not None:
        requests = limit.integer("requests", minimum=1, maximum=INT32_MAX, required=True) or requests
        per = _period(limit) or per
    return RateLimit(
        meta=meta,
        selector=selector,
        match=match,
        key=key or DEFAULT_RATE_LIMIT_KEY,
        requests=requests,
        per=per,
        overrides=_overrides(spec),
        fail_open=bool(spec.boolean("failOpen")),
    )


def _expression(spec: Fields, name: str, *, required: bool = False) -> str | None:
    """A CEL expression that compiles against the attribute vocabulary; its problems are reported at ``name``."""
    source = spec.string(name, required=required)
    if source is None:
        return None
    try:
        compile_expression(source)
    except ExpressionError as exc:
        spec.report(name, str(exc))
        return None
    return source


def _mode(spec: Fields) -> AccessListMode:
    mode = spec.node.get("mode")
    if mode is None:
        spec.report("mode", f"required field is missing: {_MODE_MEANINGS}")
    elif mode not in ACCESS_LIST_MODES:
        shown = repr(mode) if isinstance(mode, str) else describe(mode)
        spec.report("mode", f"invalid value {shown}: expected {_MODE_MEANINGS}")
    else:
        return cast(AccessListMode, mode)
    return "deny"


def _check_entries(spec: Fields, entries: tuple[str, ...], entry_type: str) -> None:
    for index, entry in enumerate(entries):
        if entry_type == "IP_ADDRESSES":
            spec.problems.add_if(spec.at("entries", index), ip_block_error(entry))
        elif entry_type == "REGEX":
            spec.problems.add_if(spec.at("entries", index), _regex_error(entry))


def _regex_error(pattern: str) -> str | None:
    try:
        re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        return f"invalid regex {pattern!r}: {reason} (Mixer's regex engine is RE2)"
    return None


def _period(limit: Fields) -> float | None:
    value = limit.node.get("per")
    if value is None:
        limit.report("per", "required field is missing: a duration like '1s', '10s' or '1m'")
        return None
    if not isinstance(value, str):
        limit.report("per", f"expected a duration string like '1s' or '1m', got {describe(value)}")
        return None
    try:
        nanos = parse_duration_ns(value)
    except DurationError as exc:
        limit.report("per", str(exc))
        return None
    if nanos <= 0:
        limit.report("per", f"must be more than 0, got {value!r}")
        return None
    return nanos / 1e9


def _overrides(spec: Fields) -> tuple[RateLimitOverride, ...]:
    overrides: list[RateLimitOverride] = []
    first_at: dict[str, int | str] = {}
    for entry in spec.mappings("overrides", known=_OVERRIDE_FIELDS):
        index = entry.path[-1]
        key = entry.string("key", required=True)
        requests = entry.integer("requests", minimum=0, maximum=INT32_MAX, required=True)
        if key is not None:
            if key in first_at:
                entry.report("key", f"key {key!r} is listed twice (first in overrides[{first_at[key]}])")
            else:
                first_at[key] = index
        if key is not None and requests is not None:
            overrides.append(RateLimitOverride(key=key, requests=requests))
    return tuple(overrides)
