"""Mixer policy kinds (mixer.meshplane.io/v1): AccessList and RateLimit validated into their exact dataclasses; CEL
expressions compiled at validation (a compile error is a config error with file:line at the expression's field);
entriesFile resolved against the config file's directory; every problem reported with its line and field path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pilot.analyze import analyze_directory, format_finding
from pilot.config.parse import MIXER_API_VERSIONS, parse_config_text
from pilot.config.types import AccessList, RateLimit, RateLimitOverride, frozen_labels
from tests.conftest import ApiGroupDocs, assert_rejected_with

ACCESS_LIST = "AccessList"
RATE_LIMIT = "RateLimit"


def access_list(docs: ApiGroupDocs, body: str) -> AccessList:
    resource = docs.accepted(ACCESS_LIST, body)
    assert isinstance(resource, AccessList)
    return resource


def rate_limit(docs: ApiGroupDocs, body: str) -> RateLimit:
    resource = docs.accepted(RATE_LIMIT, body)
    assert isinstance(resource, RateLimit)
    return resource


# ----------------------------------------------------------------------------------------------------------------
# API group
# ----------------------------------------------------------------------------------------------------------------


def test_mixer_api_versions() -> None:
    assert MIXER_API_VERSIONS == ("mixer.meshplane.io/v1",)


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("AccessList", "{value: source.principal, entries: [], mode: deny}"),
        ("RateLimit", "{limit: {requests: 1, per: 1s}}"),
    ],
)
def test_mixer_kinds_are_read_not_skipped(kind: str, spec: str) -> None:
    text = f"apiVersion: mixer.meshplane.io/v1\nkind: {kind}\nmetadata: {{name: p, namespace: shop}}\nspec: {spec}\n"
    parsed = parse_config_text(text, "mixer.yaml")
    (resource,) = parsed.resources
    assert str(resource.meta.key) == f"{kind}/shop/p"
    assert resource.meta.content_hash
    assert not parsed.warnings
    assert not parsed.rejected


@pytest.mark.parametrize("kind", ["AccessList", "RateLimit"])
@pytest.mark.parametrize("api_version", ["security.istio.io/v1", "mixer.meshplane.io/v2", "networking.istio.io/v1"])
def test_other_api_versions_are_rejected(kind: str, api_version: str) -> None:
    text = f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: p}}\nspec: {{}}\n"
    (rejected,) = parse_config_text(text, "mixer.yaml").rejected
    assert any(
        str(error).startswith(
            f"mixer.yaml:1: {kind} default/p: apiVersion: invalid value {api_version!r}: expected one of "
            "mixer.meshplane.io/v1"
        )
        for error in rejected.errors
    ), rejected.errors


# ----------------------------------------------------------------------------------------------------------------
# AccessList
# ----------------------------------------------------------------------------------------------------------------


def test_access_list_defaults(mixer_docs: ApiGroupDocs) -> None:
    policy = access_list(mixer_docs, "value: source.principal\nentries: [cluster.local/ns/shop/sa/bad]\nmode: deny")
    assert policy == AccessList(
        meta=policy.meta,
        selector=None,
        value="source.principal",
        entries=("cluster.local/ns/shop/sa/bad",),
        entries_file=None,
        entry_type="STRINGS",
        mode="deny",
        fail_open=False,
    )


def test_access_list_every_field(mixer_docs: ApiGroupDocs) -> None:
    body = """\
        selector:
          matchLabels: {app: ratings}
        value: request.headers["x-user"]
        entries: [alice, Bob]
        entryType: CASE_INSENSITIVE_STRINGS
        mode: allow
        failOpen: true
    """
    policy = access_list(mixer_docs, body)
    assert policy == AccessList(
        meta=policy.meta,
        selector=frozen_labels({"app": "ratings"}),
        value='request.headers["x-user"]',
        entries=("alice", "Bob"),
        entry_type="CASE_INSENSITIVE_STRINGS",
        mode="allow",
        fail_open=True,
    )


def test_access_list_ip_and_regex_entries(mixer_docs: ApiGroupDocs) -> None:
    ips = access_list(
        mixer_docs, "value: source.ip\nentryType: IP_ADDRESSES\nentries: [10.0.0.0/8, 127.0.0.5, '::1']\nmode: deny"
    )
    assert ips.entries == ("10.0.0.0/8", "127.0.0.5", "::1")
    assert ips.entry_type == "IP_ADDRESSES"
    regex = access_list(mixer_docs, "value: request.path\nentryType: REGEX\nentries: ['/admin/.*', '^/x$']\nmode: deny")
    assert regex.entries == ("/admin/.*", "^/x$")
    assert regex.entry_type == "REGEX"


def test_empty_selector_is_no_selector(mixer_docs: ApiGroupDocs) -> None:
    policy = access_list(mixer_docs, "selector: {matchLabels: {}}\nvalue: source.ip\nentries: []\nmode: allow")
    assert policy.selector is None
    assert policy.entries == ()


def _access_list_file(path: Path, entries_file: str) -> AccessList:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "apiVersion: mixer.meshplane.io/v1\nkind: AccessList\nmetadata: {name: blocked, namespace: shop}\n"
        f"spec:\n  value: source.ip\n  entriesFile: {entries_file}\n  entryType: IP_ADDRESSES\n  mode: deny\n"
    )
    path.write_text(text)
    parsed = parse_config_text(text, str(path))
    assert not parsed.rejected, parsed.rejected
    (resource,) = parsed.resources
    assert isinstance(resource, AccessList)
    return resource


def test_entries_file_is_resolved_against_the_config_files_directory(tmp_path: Path) -> None:
    policy = _access_list_file(tmp_path / "config" / "acl.yaml", "lists/blocked.txt")
    assert policy == AccessList(
        meta=policy.meta,
        value="source.ip",
        entries=(),
        entries_file=str(tmp_path / "config" / "lists" / "blocked.txt"),
        entry_type="IP_ADDRESSES",
        mode="deny",
    )
    assert not (tmp_path / "config" / "lists" / "blocked.txt").exists()  # not read at validation: Mixer reads it


def test_entries_file_parent_directory_is_normalized(tmp_path: Path) -> None:
    policy = _access_list_file(tmp_path / "config" / "shop" / "acl.yaml", "../shared/blocked.txt")
    assert policy.entries_file == str(tmp_path / "config" / "shared" / "blocked.txt")


def test_absolute_entries_file_is_kept(tmp_path: Path) -> None:
    policy = _access_list_file(tmp_path / "config" / "acl.yaml", str(tmp_path / "elsewhere" / "list.txt"))
    assert policy.entries_file == str(tmp_path / "elsewhere" / "list.txt")


def test_entries_file_of_a_relative_config_file_is_absolute(mixer_docs: ApiGroupDocs) -> None:
    policy = access_list(mixer_docs, "value: source.ip\nentriesFile: blocked.txt\nmode: deny")
    assert policy.entries_file == os.path.join(os.getcwd(), "blocked.txt")  # test.yaml is relative to the cwd
    assert os.path.isabs(policy.entries_file)


def test_cel_compile_error_is_a_config_error_with_file_and_line(mixer_docs: ApiGroupDocs) -> None:
    errors = mixer_docs.errors(ACCESS_LIST, "mode: deny\nentries: [a]\nvalue: source.ip ==")
    assert len(errors) == 1, errors
    assert errors[0].startswith(
        "test.yaml:9: AccessList ns/r: spec.value: invalid CEL expression: Failed to parse expression 'source.ip =='"
    ), errors


def test_cel_unknown_attribute_is_a_config_error_with_file_and_line(mixer_docs: ApiGroupDocs) -> None:
    errors = mixer_docs.errors(ACCESS_LIST, "mode: deny\nentries: [a]\nvalue: src.ip")
    assert errors == [
        "test.yaml:9: AccessList ns/r: spec.value: unknown attribute 'src' in CEL expression 'src.ip': attributes "
        "start with source., destination., request., connection."
    ]


_MODES = "deny (requests whose value is listed are rejected) or allow (only requests whose value is listed are let in)"
_OK = "value: source.ip\nentries: [a]\nmode: deny\n"

ACCESS_LIST_REJECTIONS = [
    ("value-missing", "entries: [a]\nmode: deny", [(0, "spec.value", "required field is missing")]),
    ("value-empty", "value: ''\nentries: [a]\nmode: deny", [(1, "spec.value", "must not be empty")]),
    (
        "value-blank",
        "value: ' '\nentries: [a]\nmode: deny",
        [(1, "spec.value", "expected a CEL expression, got an empty")],
    ),
    (
        "value-not-a-string",
        "value: 3\nentries: [a]\nmode: deny",
        [(1, "spec.value", "expected a string, got integer 3")],
    ),
    (
        "value-syntax-error",
        "entries: [a]\nmode: deny\nvalue: 'source.ip in ['",
        [(3, "spec.value", "invalid CEL expression: Failed to parse expression 'source.ip in ['")],
    ),
    (
        "value-unknown-attribute",
        "entries: [a]\nvalue: size(user) > 1\nmode: deny",
        [(2, "spec.value", "unknown attribute 'user' in CEL expression 'size(user) > 1'")],
    ),
    (
        "entries-and-entries-file",
        "value: source.ip\nentries: [a]\nentriesFile: x.txt\nmode: deny",
        [(0, "spec", "only one of entries, entriesFile may be set, got entries, entriesFile")],
    ),
    ("no-entries", "value: source.ip\nmode: deny", [(0, "spec", "one of entries, entriesFile is required")]),
    (
        "entries-file-empty",
        "value: source.ip\nentriesFile: ''\nmode: deny",
        [(2, "spec.entriesFile", "must not be empty")],
    ),
    (
        "entries-file-not-a-string",
        "value: source.ip\nentriesFile: [a]\nmode: deny",
        [(2, "spec.entriesFile", "expected a string, got a list")],
    ),
    (
        "entries-not-a-list",
        "value: source.ip\nentries: a\nmode: deny",
        [(2, "spec.entries", "expected a list of strings, got string 'a'")],
    ),
    (
        "entry-not-a-string",
        "value: source.ip\nentries:\n- a\n- 5\nmode: deny",
        [(4, "spec.entries[1]", "expected a string, got integer 5")],
    ),
    (
        "ip-entries",
        "value: source.ip\nentryType: IP_ADDRESSES\nentries:\n- 10.0.0.1\n- 10.0.0.0/8\n- example.com\n- 1.2.3.4/40\n"
        "mode: deny",
        [
            (6, "spec.entries[2]", "bad IP address 'example.com': expected an IP address"),
            (7, "spec.entries[3]", "bad CIDR range '1.2.3.4/40'"),
        ],
    ),
    (
        "regex-entries",
        "value: request.path\nentryType: REGEX\nentries:\n- /a\n- /b/.*\n- '/c/(unclosed'\nmode: deny",
        [(6, "spec.entries[2]", "invalid regex '/c/(unclosed': missing ): /c/(unclosed (Mixer's regex engine is RE2)")],
    ),
    (
        "regex-backreference-is-not-re2",
        "value: request.path\nentryType: REGEX\nentries: ['(a)\\1']\nmode: deny",
        [(3, "spec.entries[0]", "invalid regex")],
    ),
    (
        "entry-type-unknown",
        "value: source.ip\nentries: [a]\nentryType: IPS\nmode: deny",
        [(3, "spec.entryType", "expected one of STRINGS, CASE_INSENSITIVE_STRINGS, IP_ADDRESSES, REGEX")],
    ),
    ("mode-missing", "value: source.ip\nentries: [a]", [(0, "spec.mode", f"required field is missing: {_MODES}")]),
    (
        "mode-unknown",
        "value: source.ip\nentries: [a]\nmode: block",
        [(3, "spec.mode", f"invalid value 'block': expected {_MODES}")],
    ),
    ("mode-upper-case", "value: source.ip\nentries: [a]\nmode: DENY", [(3, "spec.mode", "invalid value 'DENY'")]),
    ("mode-not-a-string", "value: source.ip\nentries: [a]\nmode: 1", [(3, "spec.mode", "invalid value integer 1")]),
    ("fail-open-not-boolean", _OK + "failOpen: 'yes'", [(4, "spec.failOpen", "expected a boolean (true or false)")]),
    (
        "unknown-field",
        _OK + "fail_open: true",
        [(4, "spec.fail_open", "unknown field 'fail_open' (did you mean 'failOpen'?)")],
    ),
    (
        "selector-wildcard",
        _OK + "selector:\n  matchLabels: {app: '*'}",
        [(5, "spec.selector.matchLabels.app", "invalid label value '*'")],
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in ACCESS_LIST_REJECTIONS], ids=[c[0] for c in ACCESS_LIST_REJECTIONS]
)
def test_access_list_rejected(mixer_docs: ApiGroupDocs, body: str, expected: list[tuple[int, str, str]]) -> None:
    assert_rejected_with(mixer_docs, ACCESS_LIST, body, expected)


def test_access_list_every_problem_at_once(mixer_docs: ApiGroupDocs) -> None:
    body = "value: nope\nentryType: IP_ADDRESSES\nentries: [x]\nmode: maybe\nfailOpen: 1"
    assert_rejected_with(
        mixer_docs,
        ACCESS_LIST,
        body,
        [
            (1, "spec.value", "unknown attribute 'nope'"),
            (3, "spec.entries[0]", "bad IP address 'x'"),
            (4, "spec.mode", "invalid value 'maybe'"),
            (5, "spec.failOpen", "expected a boolean"),
        ],
    )


def test_access_list_content_hash_follows_the_spec(mixer_docs: ApiGroupDocs) -> None:
    first = access_list(mixer_docs, "value: source.ip\nentriesFile: a.txt\nmode: deny")
    same = access_list(mixer_docs, "value: source.ip\nentriesFile: ./a.txt\nmode: deny")
    other_file = access_list(mixer_docs, "value: source.ip\nentriesFile: b.txt\nmode: deny")
    other_mode = access_list(mixer_docs, "value: source.ip\nentriesFile: a.txt\nmode: allow")
    assert first.meta.content_hash == same.meta.content_hash
    assert len({first.meta.content_hash, other_file.meta.content_hash, other_mode.meta.content_hash}) == 3


# ----------------------------------------------------------------------------------------------------------------
# RateLimit
# ----------------------------------------------------------------------------------------------------------------


def test_rate_limit_defaults(mixer_docs: ApiGroupDocs) -> None:
    policy = rate_limit(mixer_docs, "limit: {requests: 10, per: 1s}")
    assert policy == RateLimit(
        meta=policy.meta,
        selector=None,
        match=None,
        key="source.principal",
        requests=10,
        per=1.0,
        overrides=(),
        fail_open=False,
    )


def test_rate_limit_every_field(mixer_docs: ApiGroupDocs) -> None:
    body = """\
        selector:
          matchLabels: {app: reviews}
        match: request.method == "POST" && request.path.startsWith("/api/")
        key: request.headers["x-user"]
        limit:
          requests: 100
          per: 1m
        overrides:
        - {key: alice, requests: 1000}
        - {key: mallory, requests: 0}
        failOpen: true
    """
    policy = rate_limit(mixer_docs, body)
    assert policy == RateLimit(
        meta=policy.meta,
        selector=frozen_labels({"app": "reviews"}),
        match='request.method == "POST" && request.path.startsWith("/api/")',
        key='request.headers["x-user"]',
        requests=100,
        per=60.0,
        overrides=(RateLimitOverride(key="alice", requests=1000), RateLimitOverride(key="mallory", requests=0)),
        fail_open=True,
    )


@pytest.mark.parametrize(
    ("per", "seconds"), [("1s", 1.0), ("10s", 10.0), ("1m", 60.0), ("100ms", 0.1), ("1h30m", 5400.0)]
)
def test_rate_limit_period(mixer_docs: ApiGroupDocs, per: str, seconds: float) -> None:
    assert rate_limit(mixer_docs, f"limit: {{requests: 1, per: {per}}}").per == seconds


_LIMIT = "limit: {requests: 1, per: 1s}\n"

RATE_LIMIT_REJECTIONS = [
    ("limit-missing", "key: source.ip", [(0, "spec.limit", "required field is missing")]),
    ("limit-not-a-mapping", "limit: 10", [(1, "spec.limit", "expected a mapping, got integer 10")]),
    ("requests-missing", "limit:\n  per: 1s", [(1, "spec.limit.requests", "required field is missing")]),
    ("requests-zero", "limit:\n  requests: 0\n  per: 1s", [(2, "spec.limit.requests", "must be at least 1, got 0")]),
    (
        "requests-not-an-integer",
        "limit:\n  requests: '10'\n  per: 1s",
        [(2, "spec.limit.requests", "expected an integer, got string '10'")],
    ),
    (
        "per-missing",
        "limit:\n  requests: 1",
        [(1, "spec.limit.per", "required field is missing: a duration like '1s', '10s' or '1m'")],
    ),
    ("per-zero", "limit:\n  requests: 1\n  per: 0s", [(3, "spec.limit.per", "must be more than 0, got '0s'")]),
    ("per-negative", "limit:\n  requests: 1\n  per: -1s", [(3, "spec.limit.per", "must be more than 0, got '-1s'")]),
    (
        "per-without-unit",
        "limit:\n  requests: 1\n  per: '10'",
        [(3, "spec.limit.per", "invalid duration '10': expected a number with a unit")],
    ),
    (
        "per-not-a-string",
        "limit:\n  requests: 1\n  per: 10",
        [(3, "spec.limit.per", "expected a duration string like '1s' or '1m', got integer 10")],
    ),
    (
        "limit-unknown-field",
        "limit: {requests: 1, per: 1s, burst: 2}",
        [(1, "spec.limit.burst", "unknown field 'burst'")],
    ),
    (
        "match-syntax-error",
        _LIMIT + "match: request.method ==",
        [(2, "spec.match", "invalid CEL expression: Failed to parse expression 'request.method =='")],
    ),
    (
        "match-unknown-attribute",
        _LIMIT + "match: method == 'GET'",
        [(2, "spec.match", "unknown attribute 'method' in CEL expression")],
    ),
    ("key-empty", _LIMIT + "key: ''", [(2, "spec.key", "expected a CEL expression, got an empty string")]),
    (
        "key-unknown-attribute",
        _LIMIT + "key: user",
        [(2, "spec.key", "unknown attribute 'user' in CEL expression 'user'")],
    ),
    ("key-not-a-string", _LIMIT + "key: 1", [(2, "spec.key", "expected a string, got integer 1")]),
    ("overrides-not-a-list", _LIMIT + "overrides: {a: 1}", [(2, "spec.overrides", "expected a list, got a mapping")]),
    (
        "override-key-missing",
        _LIMIT + "overrides:\n- requests: 5",
        [(3, "spec.overrides[0].key", "required field is missing")],
    ),
    (
        "override-key-empty",
        _LIMIT + "overrides:\n- {key: '', requests: 5}",
        [(3, "spec.overrides[0].key", "must not be empty")],
    ),
    (
        "override-requests-missing",
        _LIMIT + "overrides:\n- key: alice",
        [(3, "spec.overrides[0].requests", "required field is missing")],
    ),
    (
        "override-requests-negative",
        _LIMIT + "overrides:\n- {key: alice, requests: -1}",
        [(3, "spec.overrides[0].requests", "must be at least 0, got -1")],
    ),
    (
        "override-duplicate-key",
        _LIMIT + "overrides:\n- {key: alice, requests: 5}\n- {key: bob, requests: 5}\n- {key: alice, requests: 6}",
        [(5, "spec.overrides[2].key", "key 'alice' is listed twice (first in overrides[0])")],
    ),
    (
        "override-unknown-field",
        _LIMIT + "overrides:\n- {key: alice, limit: 5}",
        [
            (3, "spec.overrides[0].limit", "unknown field 'limit'"),
            (3, "spec.overrides[0].requests", "required field is missing"),
        ],
    ),
    ("fail-open-not-boolean", _LIMIT + "failOpen: no_thanks", [(2, "spec.failOpen", "expected a boolean")]),
    ("unknown-field", _LIMIT + "keys: [a]", [(2, "spec.keys", "unknown field 'keys' (did you mean 'key'?)")]),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in RATE_LIMIT_REJECTIONS], ids=[c[0] for c in RATE_LIMIT_REJECTIONS]
)
def test_rate_limit_rejected(mixer_docs: ApiGroupDocs, body: str, expected: list[tuple[int, str, str]]) -> None:
    assert_rejected_with(mixer_docs, RATE_LIMIT, body, expected)


def test_rate_limit_cel_errors_name_file_and_line(mixer_docs: ApiGroupDocs) -> None:
    errors = mixer_docs.errors(RATE_LIMIT, _LIMIT + "match: request.path.startsWith(\nkey: who")
    assert len(errors) == 2, errors
    assert errors[0].startswith("test.yaml:8: RateLimit ns/r: spec.match: invalid CEL expression: "), errors
    assert errors[1] == (
        "test.yaml:9: RateLimit ns/r: spec.key: unknown attribute 'who' in CEL expression 'who': attributes start "
        "with source., destination., request., connection."
    )


def test_rate_limit_content_hash_follows_the_spec(mixer_docs: ApiGroupDocs) -> None:
    one = rate_limit(mixer_docs, "limit: {requests: 1, per: 60s}")
    same = rate_limit(mixer_docs, "limit: {requests: 1, per: 1m}")
    other = rate_limit(mixer_docs, "limit: {requests: 2, per: 1m}")
    assert one.meta.content_hash == same.meta.content_hash != other.meta.content_hash


# ----------------------------------------------------------------------------------------------------------------
# meshplane analyze over a directory holding the policy kinds
# ----------------------------------------------------------------------------------------------------------------

POLICIES = """\
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: shop}
spec:
  action: CUSTOM
  provider: {name: mixer}
  rules: [{}]
---
apiVersion: mixer.meshplane.io/v1
kind: AccessList
metadata: {name: present, namespace: shop}
spec: {value: source.ip, entriesFile: lists/present.txt, entryType: IP_ADDRESSES, mode: deny}
---
apiVersion: mixer.meshplane.io/v1
kind: AccessList
metadata: {name: missing, namespace: shop}
spec: {value: source.ip, entriesFile: lists/missing.txt, mode: allow}
---
apiVersion: mixer.meshplane.io/v1
kind: RateLimit
metadata: {name: broken, namespace: shop}
spec:
  key: caller
  limit: {requests: 5, per: 1s}
"""


async def test_analyze_reads_the_policy_kinds(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "present.txt").write_text("10.0.0.1\n")
    (tmp_path / "policies.yaml").write_text(POLICIES)
    findings = [format_finding(f) for f in await analyze_directory(tmp_path)]
    config = tmp_path / "policies.yaml"
    assert findings == [
        f"Error [MP0101] (RateLimit shop/broken {config}:23) spec.key: unknown attribute 'caller' in CEL expression "
        "'caller': attributes start with source., destination., request., connection.",
        f"Warning [MP0206] (AccessList shop/missing {config}:14) entries file {tmp_path / 'lists' / 'missing.txt'} "
        "does not exist: until Mixer can read it, the list denies every request it checks",
    ]
