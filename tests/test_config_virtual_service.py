"""VirtualService validation: one case per rule, each asserting file:line, path and message."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import pytest

from pilot.config.types import CorsPolicy, StringMatch, VirtualService

if TYPE_CHECKING:
    from tests.conftest import IstioDocs

Expected = list[tuple[int, str, str]]  # (line in the spec body, field path, part of the message)

ROUTE = "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n"  # lines 1-4; a route's fields follow
CORS = ROUTE + "  corsPolicy:\n"  # line 5; the policy's fields follow

CASES: list[tuple[str, str, Expected]] = [
    # hosts and gateways
    # a VirtualService without hosts is a delegate (Istio 1.6+)
    (
        "delegate-with-gateways-tcp-tls",
        "gateways: [mesh]\ntcp:\n- route:\n  - destination: {host: db}\ntls:\n- match:\n  - sniHosts: [a]\n"
        "  route:\n  - destination: {host: a}\n",
        [
            (1, "spec.gateways", "delegate virtual service must have no gateways specified"),
            (2, "spec.tcp", "delegate virtual service must have no tcp route specified"),
            (5, "spec.tls", "delegate virtual service must have no tls route specified"),
            (7, "spec.tls[0].match[0].sniHosts[0]", "not a compatible subset"),
        ],
    ),
    (
        "delegate-delegates-again",
        "http:\n- delegate: {name: deeper}\n",
        [(2, "spec.http[0].delegate", "one level of delegation only")],
    ),
    (
        "delegate-source-labels",
        "http:\n- match:\n  - sourceLabels: {app: a}\n    sourceNamespace: ns\n  route:\n  - destination: {host: a}\n",
        [
            (3, "spec.http[0].match[0].sourceLabels", "Istio takes it from the root's match"),
            (4, "spec.http[0].match[0].sourceNamespace", "Istio takes it from the root's match"),
        ],
    ),
    (
        "host-star-mesh",
        "hosts: ['*']\nhttp:\n- route:\n  - destination: {host: a}\n",
        [(1, "spec.hosts[0]", "not allowed for the mesh")],
    ),
    (
        "host-star-mesh-listed",
        "hosts: ['*']\ngateways: [mesh, gw]\nhttp:\n- route:\n  - destination: {host: a}\n",
        [(1, "spec.hosts[0]", "not allowed for the mesh")],
    ),
    (
        "gateway-name-empty",
        "hosts: [a.example.com]\ngateways: [istio-system/]\nhttp:\n- route:\n  - destination: {host: a}\n",
        [(2, "spec.gateways[0]", "config namespace and gateway name cannot be empty")],
    ),
    (
        "host-invalid",
        "hosts: [Reviews]\nhttp:\n- route:\n  - destination: {host: a}\n",
        [(1, "spec.hosts[0]", "invalid host 'Reviews'")],
    ),
    (
        "host-duplicate",
        "hosts: [reviews, reviews]\nhttp:\n- route:\n  - destination: {host: a}\n",
        [(1, "spec.hosts[1]", "duplicate host 'reviews'")],
    ),
    (
        "gateway-invalid",
        "hosts: [a.example.com]\ngateways: [Bad/gw]\nhttp:\n- route:\n  - destination: {host: a}\n",
        [(2, "spec.gateways[0]", "invalid value for namespace: 'Bad'")],
    ),
    ("http-missing", "hosts: [reviews]\n", [(0, "spec", "http, tcp or tls must be provided in virtual service")]),
    ("http-empty", "hosts: [reviews]\nhttp: []\n", [(2, "spec.http", "must have at least one entry")]),
    ("tcp-empty-route", "hosts: [reviews]\ntcp:\n- route: []\n", [(3, "spec.tcp[0].route", "TCP route is required")]),
    ("tls-empty", "hosts: [reviews]\ntls: []\n", [(2, "spec.tls", "must have at least one entry")]),
    # route / redirect / directResponse
    (
        "no-action",
        "hosts: [reviews]\nhttp:\n- name: r\n",
        [(3, "spec.http[0]", "one of route, redirect, directResponse, delegate is required")],
    ),
    (
        "route-and-redirect",
        ROUTE + "  redirect: {uri: /x}\n",
        [(3, "spec.http[0]", "only one of route, redirect, directResponse, delegate may be set, got route, redirect")],
    ),
    (
        "redirect-and-fault",
        "hosts: [reviews]\nhttp:\n- redirect: {uri: /x}\n  fault: {abort: {httpStatus: 500}}\n",
        [(4, "spec.http[0].fault", "cannot be combined with redirect")],
    ),
    (
        "direct-response-and-rewrite",
        "hosts: [reviews]\nhttp:\n- directResponse: {status: 200}\n  rewrite: {uri: /x}\n",
        [(4, "spec.http[0].rewrite", "cannot be combined with directResponse")],
    ),
    (
        "route-and-delegate",
        ROUTE + "  delegate: {name: x}\n",
        [(3, "spec.http[0]", "only one of route, redirect, directResponse, delegate may be set, got route, delegate")],
    ),
    (
        "delegate-name-missing-namespace-invalid",
        "hosts: [reviews]\nhttp:\n- delegate: {namespace: Bad}\n",
        [
            (3, "spec.http[0].delegate.name", "required field is missing"),
            (3, "spec.http[0].delegate.namespace", "invalid delegate namespace 'Bad'"),
        ],
    ),
    (
        "three-unsupported-fields-at-once",
        ROUTE + "  mirror: {host: a}\n  mirrorPercent: 5\n  fault:\n    delay:\n      exponentialDelay: 1s\n"
        "    abort:\n      http2Error: REFUSED_STREAM\n",
        [
            (6, "spec.http[0].mirrorPercent", "not supported by meshplane yet"),
            (9, "spec.http[0].fault.delay.exponentialDelay", "not supported by meshplane yet"),
            (11, "spec.http[0].fault.abort.http2Error", "cannot reset the stream with an HTTP/2 error code"),
        ],
    ),
    # corsPolicy
    (
        "cors-origin-empty-match",
        CORS + "    allowOrigins:\n    - {}\n",
        [(7, "spec.http[0].corsPolicy.allowOrigins[0]", "one of exact, prefix, regex is required")],
    ),
    (
        "cors-origin-exact-empty",
        CORS + "    allowOrigins:\n    - {exact: ''}\n",
        [(7, "spec.http[0].corsPolicy.allowOrigins[0]", "'' is not a valid match type for CORS allow origins")],
    ),
    (
        "cors-origin-prefix-empty",
        CORS + "    allowOrigins:\n    - {prefix: ''}\n",
        [(7, "spec.http[0].corsPolicy.allowOrigins[0].prefix", "a prefix match must not be empty")],
    ),
    (
        "cors-origin-regex-invalid",
        CORS + "    allowOrigins:\n    - {regex: 'https://(a'}\n",
        [(7, "spec.http[0].corsPolicy.allowOrigins[0].regex", "invalid regex 'https://(a'")],
    ),
    (
        "cors-origins-not-a-list",
        CORS + "    allowOrigins: {exact: https://a.example.com}\n",
        [(6, "spec.http[0].corsPolicy.allowOrigins", "expected a list of string matches")],
    ),
    (
        "cors-origin-and-legacy-origin",
        CORS + "    allowOrigins: [{exact: https://a.example.com}]\n    allowOrigin: [https://b.example.com]\n",
        [(7, "spec.http[0].corsPolicy.allowOrigin", "cannot be combined with allowOrigins")],
    ),
    (
        "cors-legacy-origin-empty",
        CORS + "    allowOrigin: ['']\n",
        [(6, "spec.http[0].corsPolicy.allowOrigin[0]", "an origin must not be empty")],
    ),
    (
        "cors-methods",
        CORS + "    allowMethods: [GET, post, FETCH]\n",
        [
            (6, "spec.http[0].corsPolicy.allowMethods[1]", "'post' is not a supported HTTP method (write 'POST')"),
            (6, "spec.http[0].corsPolicy.allowMethods[2]", "'FETCH' is not a supported HTTP method"),
        ],
    ),
    (
        "cors-headers",
        CORS + "    allowHeaders: [x-a, 'x b']\n    exposeHeaders: [':path', '']\n",
        [
            (6, "spec.http[0].corsPolicy.allowHeaders[1]", "'x b' is not a valid HTTP header name"),
            (7, "spec.http[0].corsPolicy.exposeHeaders[0]", "':path' is not a valid HTTP header name"),
            (7, "spec.http[0].corsPolicy.exposeHeaders[1]", "header name must not be empty"),
        ],
    ),
    (
        "cors-max-age-fraction",
        CORS + "    maxAge: 1500ms\n",
        [(6, "spec.http[0].corsPolicy.maxAge", "accurate only to seconds precision")],
    ),
    (
        "cors-max-age-short",
        CORS + "    maxAge: 100us\n",
        [(6, "spec.http[0].corsPolicy.maxAge", "it must be at least 1ms")],
    ),
    (
        "cors-credentials-and-preflights",
        CORS + "    allowCredentials: 'yes'\n    unmatchedPreflights: DROP\n",
        [
            (6, "spec.http[0].corsPolicy.allowCredentials", "expected a boolean"),
            (7, "spec.http[0].corsPolicy.unmatchedPreflights", "expected one of UNSPECIFIED, FORWARD, IGNORE"),
        ],
    ),
    (
        "cors-unknown-field",
        CORS + "    allowOrigns: [{exact: https://a.example.com}]\n",
        [(6, "spec.http[0].corsPolicy.allowOrigns", "unknown field 'allowOrigns' (did you mean 'allowOrigins'?)")],
    ),
    # destinations
    (
        "destination-missing",
        "hosts: [reviews]\nhttp:\n- route:\n  - weight: 100\n",
        [(4, "spec.http[0].route[0].destination", "required field is missing")],
    ),
    (
        "destination-host-missing",
        "hosts: [reviews]\nhttp:\n- route:\n  - destination: {subset: v1}\n",
        [(4, "spec.http[0].route[0].destination.host", "required field is missing")],
    ),
    (
        "destination-wildcard",
        "hosts: [reviews]\nhttp:\n- route:\n  - destination:\n      host: '*.example.com'\n",
        [(5, "spec.http[0].route[0].destination.host", "a wildcard is not allowed here")],
    ),
    (
        "subset-invalid",
        "hosts: [reviews]\nhttp:\n- route:\n  - destination:\n      host: reviews\n      subset: V_1\n",
        [(6, "spec.http[0].route[0].destination.subset", "invalid subset name 'V_1'")],
    ),
    (
        "port-range",
        "hosts: [reviews]\nhttp:\n- route:\n  - destination:\n      host: reviews\n      port: {number: 0}\n",
        [(6, "spec.http[0].route[0].destination.port.number", "must be between 1 and 65535, got 0")],
    ),
    (
        "port-not-a-selector",
        "hosts: [reviews]\nhttp:\n- route:\n  - destination:\n      host: reviews\n      port: 9080\n",
        [(6, "spec.http[0].route[0].destination.port", "expected a mapping, got integer 9080")],
    ),
    (
        "weight-range",
        "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n    weight: 101\n",
        [(5, "spec.http[0].route[0].weight", "must be between 0 and 100, got 101")],
    ),
    (
        "weights-sum",
        "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: v1}\n    weight: 60\n"
        "  - destination: {host: reviews, subset: v2}\n    weight: 30\n",
        [(3, "spec.http[0].route", "the weights of 2 destinations must add up to 100, got 90")],
    ),
    (
        "weight-typo",
        "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n    weigth: 100\n",
        [(5, "spec.http[0].route[0].weigth", "unknown field 'weigth' (did you mean 'weight'?)")],
    ),
    (
        "destination-headers",
        "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n    headers:\n      response:\n"
        "        remove: [':status']\n",
        [(7, "spec.http[0].route[0].headers.response.remove[0]", "pseudo-header ':status' cannot be changed")],
    ),
    # matches
    (
        "uri-two-kinds",
        ROUTE + "  match:\n  - uri: {exact: /a, prefix: /b}\n",
        [(6, "spec.http[0].match[0].uri", "only one of exact, prefix, regex may be set")],
    ),
    (
        "uri-empty",
        ROUTE + "  match:\n  - uri: {}\n",
        [(6, "spec.http[0].match[0].uri", "one of exact, prefix, regex is required")],
    ),
    (
        "uri-empty-prefix",
        ROUTE + "  match:\n  - uri:\n      prefix: ''\n",
        [(7, "spec.http[0].match[0].uri.prefix", "must not be empty")],
    ),
    (
        "regex-invalid",
        ROUTE + "  match:\n  - uri:\n      regex: '/a(['\n",
        [(7, "spec.http[0].match[0].uri.regex", "invalid regex '/a(['")],
    ),
    (
        "regex-lookahead",
        ROUTE + "  match:\n  - authority:\n      regex: '(?!admin).*'\n",
        [(7, "spec.http[0].match[0].authority.regex", "invalid perl operator: (?!")],
    ),
    (
        "regex-repetition-over-1000",
        ROUTE + "  match:\n  - uri:\n      regex: 'a{1001}'\n",
        [(7, "spec.http[0].match[0].uri.regex", "invalid regex 'a{1001}': invalid repetition size: {1001}")],
    ),
    (
        "regex-program-too-large",
        ROUTE + "  match:\n  - headers:\n      x-id: {regex: '[a-z]{200}'}\n",
        [(7, "spec.http[0].match[0].headers.x-id.regex", "RE2 program size is 204, over Envoy's limit of 100")],
    ),
    (
        "header-uppercase",
        ROUTE + "  match:\n  - headers:\n      End-User: {exact: jason}\n",
        [(7, "spec.http[0].match[0].headers.End-User", "must be lowercase (write 'end-user')")],
    ),
    (
        "header-two-kinds",
        ROUTE + "  match:\n  - headers:\n      end-user:\n        exact: jason\n        regex: j.*\n",
        [(7, "spec.http[0].match[0].headers.end-user", "only one of exact, prefix, regex may be set")],
    ),
    (
        "header-null",
        ROUTE + "  match:\n  - headers:\n      end-user:\n",
        [(7, "spec.http[0].match[0].headers.end-user", "expected a mapping, got null")],
    ),
    (
        "without-headers-regex",
        ROUTE + "  match:\n  - withoutHeaders:\n      x-canary: {regex: '*'}\n",
        [(7, "spec.http[0].match[0].withoutHeaders.x-canary.regex", "invalid regex '*'")],
    ),
    (
        "query-param-unknown-kind",
        ROUTE + "  match:\n  - queryParams:\n      v:\n        suffix: x\n",
        [(8, "spec.http[0].match[0].queryParams.v.suffix", "unknown field 'suffix'")],
    ),
    (
        "match-port",
        ROUTE + "  match:\n  - port: 70000\n",
        [(6, "spec.http[0].match[0].port", "must be between 1 and 65535")],
    ),
    (
        "match-gateways",
        ROUTE + "  match:\n  - gateways: [Ingress]\n",
        [(6, "spec.http[0].match[0].gateways[0]", "invalid gateway name 'Ingress'")],
    ),
    (
        "match-source-labels-syntax",
        ROUTE + "  match:\n  - sourceLabels: {app: -a-}\n",
        [(6, "spec.http[0].match[0].sourceLabels.app", "invalid label value '-a-'")],
    ),
    (
        "match-source-labels-type",
        ROUTE + "  match:\n  - sourceLabels: {version: 2}\n",
        [(6, "spec.http[0].match[0].sourceLabels.version", "expected a string, got integer 2")],
    ),
    (
        "match-source-namespace",
        ROUTE + "  match:\n  - sourceNamespace: Shop_1\n",
        [(6, "spec.http[0].match[0].sourceNamespace", "sourceNamespace match 'Shop_1' is invalid")],
    ),
    (
        "match-ignore-case-type",
        ROUTE + "  match:\n  - ignoreUriCase: 1\n",
        [(6, "spec.http[0].match[0].ignoreUriCase", "expected a boolean (true or false), got integer 1")],
    ),
    # timeout and retries
    ("timeout-short", ROUTE + "  timeout: 0.5ms\n", [(5, "spec.http[0].timeout", "must be at least 1ms")]),
    ("timeout-number", ROUTE + "  timeout: 10\n", [(5, "spec.http[0].timeout", "expected a duration string")]),
    (
        "retries-attempts-missing",
        ROUTE + "  retries:\n    perTryTimeout: 2s\n",
        [(5, "spec.http[0].retries.attempts", "required field is missing")],
    ),
    (
        "retries-attempts-negative",
        ROUTE + "  retries:\n    attempts: -1\n",
        [(6, "spec.http[0].retries.attempts", "must be at least 0, got -1")],
    ),
    (
        "retries-zero-with-settings",
        ROUTE + "  retries:\n    attempts: 0\n    retryOn: 5xx\n",
        [(6, "spec.http[0].retries.attempts", "retries disabled")],
    ),
    (
        "retry-on-unknown",
        ROUTE + "  retries:\n    attempts: 3\n    retryOn: 5xx,connect-failures,503\n",
        [(7, "spec.http[0].retries.retryOn", "'connect-failures' is not a retry policy Envoy knows")],
    ),
    (
        "retry-on-bad-status",
        ROUTE + "  retries:\n    attempts: 3\n    retryOn: '999'\n",
        [(7, "spec.http[0].retries.retryOn", "'999' is not a retry policy")],
    ),
    (
        "per-try-timeout",
        ROUTE + "  retries:\n    attempts: 3\n    perTryTimeout: 2\n",
        [(7, "spec.http[0].retries.perTryTimeout", "expected a duration string")],
    ),
    (
        "retry-backoff-short",
        ROUTE + "  retries:\n    attempts: 3\n    backoff: 100us\n",
        [(7, "spec.http[0].retries.backoff", "it must be at least 1ms")],
    ),
    (
        "retry-ignore-previous-hosts-type",
        ROUTE + "  retries:\n    attempts: 3\n    retryIgnorePreviousHosts: 'no'\n",
        [(7, "spec.http[0].retries.retryIgnorePreviousHosts", "expected a boolean")],
    ),
    (
        "retries-zero-with-backoff",
        ROUTE + "  retries:\n    attempts: 0\n    backoff: 1s\n",
        [(6, "spec.http[0].retries.attempts", "retries disabled")],
    ),
    # fault
    ("fault-empty", ROUTE + "  fault: {}\n", [(5, "spec.http[0].fault", "must set delay, abort or both")]),
    (
        "delay-missing-fixed",
        ROUTE + "  fault:\n    delay:\n      percentage: {value: 10}\n",
        [(6, "spec.http[0].fault.delay.fixedDelay", "required field is missing")],
    ),
    (
        "delay-percentage-range",
        ROUTE + "  fault:\n    delay:\n      fixedDelay: 5s\n      percentage: {value: 150}\n",
        [(8, "spec.http[0].fault.delay.percentage.value", "must be between 0 and 100, got 150")],
    ),
    (
        "delay-both-percentages",
        ROUTE + "  fault:\n    delay:\n      fixedDelay: 5s\n      percent: 10\n      percentage: {value: 10}\n",
        [(6, "spec.http[0].fault.delay", "only one of percentage, percent may be set")],
    ),
    (
        "delay-exponential",
        ROUTE + "  fault:\n    delay:\n      exponentialDelay: 1s\n",
        [(7, "spec.http[0].fault.delay.exponentialDelay", "delays by a fixed duration only (Istio rejects")],
    ),
    (
        "abort-status-range",
        ROUTE + "  fault:\n    abort:\n      httpStatus: 600\n",
        [(7, "spec.http[0].fault.abort.httpStatus", "must be between 200 and 599, got 600")],
    ),
    (
        "abort-nothing",
        ROUTE + "  fault:\n    abort:\n      percentage: {value: 10}\n",
        [(6, "spec.http[0].fault.abort", "one of httpStatus, grpcStatus, http2Error is required")],
    ),
    (
        "abort-grpc-status",
        ROUTE + "  fault:\n    abort:\n      grpcStatus: UNAVAILBLE\n",
        [(7, "spec.http[0].fault.abort.grpcStatus", "did you mean 'UNAVAILABLE'?")],
    ),
    (
        "match-stat-prefix-control-character",
        ROUTE + '  match:\n  - statPrefix: "a\\tb"\n',
        [(6, "spec.http[0].match[0].statPrefix", "must be printable text")],
    ),
    # rewrite, redirect, direct response
    ("rewrite-empty", ROUTE + "  rewrite: {}\n", [(5, "spec.http[0].rewrite", "must set at least one of uri")]),
    (
        "rewrite-uri-and-regex",
        ROUTE + "  rewrite:\n    uri: /v2\n    uriRegexRewrite: {match: ^/v1, rewrite: /v2}\n",
        [(5, "spec.http[0].rewrite", "only one of uri, uriRegexRewrite may be set")],
    ),
    (
        "rewrite-regex-invalid",
        ROUTE + "  rewrite:\n    uriRegexRewrite:\n      match: '(a)\\1'\n      rewrite: /x\n",
        [(7, "spec.http[0].rewrite.uriRegexRewrite.match", "invalid escape sequence: \\1")],
    ),
    (
        "rewrite-regex-incomplete",
        ROUTE + "  rewrite:\n    uriRegexRewrite: {match: ^/v1}\n",
        [(6, "spec.http[0].rewrite.uriRegexRewrite.rewrite", "required field is missing")],
    ),
    (
        "authority-twice",
        ROUTE + "  rewrite: {authority: a.example.com}\n  headers:\n    request:\n      set: {host: b.example.com}\n",
        [(6, "spec.http[0].headers", "set it in one place only")],
    ),
    (
        "redirect-empty",
        "hosts: [reviews]\nhttp:\n- redirect: {redirectCode: 302}\n",
        [(3, "spec.http[0].redirect", "must set at least one of uri, authority, port, derivePort, scheme")],
    ),
    (
        "redirect-code",
        "hosts: [reviews]\nhttp:\n- redirect:\n    uri: /x\n    redirectCode: 305\n",
        [(5, "spec.http[0].redirect.redirectCode", "must be one of 301, 302, 303, 307, 308, got 305")],
    ),
    (
        "redirect-port-and-derive",
        "hosts: [reviews]\nhttp:\n- redirect:\n    port: 8080\n    derivePort: FROM_REQUEST_PORT\n",
        [(3, "spec.http[0].redirect", "only one of port, derivePort may be set")],
    ),
    (
        "redirect-derive-invalid",
        "hosts: [reviews]\nhttp:\n- redirect:\n    derivePort: FROM_REQUEST\n",
        [(4, "spec.http[0].redirect.derivePort", "did you mean 'FROM_REQUEST_PORT'?")],
    ),
    (
        "direct-status-missing",
        "hosts: [reviews]\nhttp:\n- directResponse:\n    body: {string: hi}\n",
        [(3, "spec.http[0].directResponse.status", "required field is missing")],
    ),
    (
        "direct-status-range",
        "hosts: [reviews]\nhttp:\n- directResponse:\n    status: 100\n",
        [(4, "spec.http[0].directResponse.status", "must be between 200 and 599, got 100")],
    ),
    (
        "direct-body-both",
        "hosts: [reviews]\nhttp:\n- directResponse:\n    status: 200\n    body: {string: a, bytes: YQ==}\n",
        [(5, "spec.http[0].directResponse.body", "only one of string, bytes may be set")],
    ),
    (
        "direct-body-bad-base64",
        "hosts: [reviews]\nhttp:\n- directResponse:\n    status: 200\n    body:\n      bytes: '%%%'\n",
        [(6, "spec.http[0].directResponse.body.bytes", "must be base64 of UTF-8 text")],
    ),
    # mirrors
    (
        "mirror-and-mirrors",
        ROUTE + "  mirror: {host: a}\n  mirrors:\n  - destination: {host: b}\n",
        [(3, "spec.http[0]", "only one of mirror, mirrors may be set")],
    ),
    (
        "mirror-percentage-alone",
        ROUTE + "  mirrorPercentage: {value: 5}\n",
        [(5, "spec.http[0].mirrorPercentage", "only applies together with mirror")],
    ),
    (
        "mirror-percentage-range",
        ROUTE + "  mirror: {host: a}\n  mirrorPercentage: {value: -1}\n",
        [(6, "spec.http[0].mirrorPercentage.value", "must be between 0 and 100, got -1")],
    ),
    (
        "mirrors-destination-missing",
        ROUTE + "  mirrors:\n  - percentage: {value: 5}\n",
        [(6, "spec.http[0].mirrors[0].destination", "required field is missing")],
    ),
    (
        "mirror-percent-legacy",
        ROUTE + "  mirror: {host: a}\n  mirrorPercent: 5\n",
        [(6, "spec.http[0].mirrorPercent", "not supported by meshplane yet")],
    ),
    # headers
    (
        "header-set-pseudo",
        ROUTE + "  headers:\n    request:\n      set:\n        ':path': /x\n",
        [(8, "spec.http[0].headers.request.set.:path", "pseudo-header ':path' cannot be changed")],
    ),
    (
        "header-response-host",
        ROUTE + "  headers:\n    response:\n      add: {host: x}\n",
        [(7, "spec.http[0].headers.response.add.host", "cannot be changed here")],
    ),
    (
        "header-name-invalid",
        ROUTE + "  headers:\n    request:\n      add: {'x user': a}\n",
        [(7, 'spec.http[0].headers.request.add["x user"]', "'x user' is not a valid HTTP header name")],
    ),
    (
        "header-value-percent",
        ROUTE + "  headers:\n    response:\n      set: {x-ratio: 50%}\n",
        [(7, "spec.http[0].headers.response.set.x-ratio", "a literal '%' must be written '%%'")],
    ),
    (
        "header-value-type",
        ROUTE + "  headers:\n    response:\n      set: {x-count: 5}\n",
        [(7, "spec.http[0].headers.response.set.x-count", "expected a string header value")],
    ),
    (
        "header-remove-type",
        ROUTE + "  headers:\n    request:\n      remove: x-a\n",
        [(7, "spec.http[0].headers.request.remove", "expected a list of strings")],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_virtual_service_rejections(istio: IstioDocs, body: str, expected: Expected) -> None:
    errors = istio.errors("VirtualService", body)
    for line, path, message in expected:
        istio.assert_error(errors, "VirtualService", line, path, message)
    assert len(errors) == len(expected), errors


VALID = [
    ("short-host", ROUTE),
    ("ip-host", "hosts: [10.0.0.1]\nhttp:\n- route:\n  - destination: {host: a}\n"),
    ("wildcard-host", "hosts: ['*.example.com']\nhttp:\n- route:\n  - destination: {host: a.example.com}\n"),
    ("header-presence", ROUTE + "  match:\n  - headers: {x-canary: {}}\n    withoutHeaders: {x-debug: {}}\n"),
    ("redirect", "hosts: [a]\nhttp:\n- redirect: {scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}\n"),
    ("retry-status-codes", ROUTE + "  retries: {attempts: 2, retryOn: 'gateway-error, 503,retriable-status-codes'}\n"),
    ("zero-attempts", ROUTE + "  retries: {attempts: 0}\n"),
    ("envoy-header-command", ROUTE + "  headers:\n    request:\n      set: {x-client: '%DOWNSTREAM_REMOTE_ADDRESS%'}"),
    ("percent-escaped", ROUTE + "  headers:\n    response:\n      set: {x-ratio: 50%%}\n"),
    ("authority-via-header", ROUTE + "  headers:\n    request:\n      set: {':authority': b.example.com}\n"),
    ("regex-re2-syntax", ROUTE + "  match:\n  - uri: {regex: '^/api/v[0-9]+\\z'}\n"),  # \z: RE2, not Python re
    (
        "cors-istio-docs",
        CORS + "    allowOrigins:\n    - exact: https://example.com\n    allowMethods: [POST, GET]\n"
        "    allowCredentials: false\n    allowHeaders: [X-Foo-Bar]\n    maxAge: 24h\n",
    ),
    ("cors-legacy-origin", CORS + "    allowOrigin: ['*']\n    allowMethods: ['*']\n    allowHeaders: ['*']\n"),
    (
        "cors-on-redirect",
        "hosts: [a]\nhttp:\n- redirect: {uri: /x}\n  corsPolicy: {allowOrigins: [{prefix: https://}]}\n",
    ),
    ("gateway-only", "hosts: ['*']\ngateways: [istio-system/ingress]\nhttp:\n- route:\n  - destination: {host: a}\n"),
    (
        "gateway-short-and-mesh",
        "hosts: [a.example.com]\ngateways: [ingress, mesh]\nhttp:\n- route:\n  - destination: {host: a}\n",
    ),
    ("match-gateways", ROUTE + "  match:\n  - gateways: [mesh, istio-system/ingress]\n"),
    ("regex-program-size-at-limit", ROUTE + "  match:\n  - uri: {regex: '[a-z]{96}'}\n"),  # RE2 program size 100
    ("stat-prefix", ROUTE + "  match:\n  - uri: {prefix: /api}\n    statPrefix: reviews-api\n"),
    # Istio's request-routing delegate example: the root hands /productpage to a delegate in another namespace
    (
        "delegate-root",
        "hosts: [bookinfo.com]\nhttp:\n- match:\n  - uri: {prefix: /productpage}\n"
        "  delegate: {name: productpage, namespace: nsa}\n",
    ),
    (
        "delegate-leaf",
        "http:\n- match:\n  - uri: {prefix: /productpage/v1/}\n  route:\n"
        "  - destination: {host: productpage-v1.nsa.svc.cluster.local}\n",
    ),
]


@pytest.mark.parametrize("body", [c[1] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_virtual_services(istio: IstioDocs, body: str) -> None:
    assert isinstance(istio.accepted("VirtualService", body), VirtualService)


def test_virtual_service_fields_are_converted(istio: IstioDocs) -> None:
    service = istio.accepted(
        "VirtualService",
        f"""\
        hosts: [reviews, reviews.example.com]
        gateways: [mesh]
        exportTo: ['*']
        http:
        - name: jason
          match:
          - name: m1
            uri: {{prefix: /api}}
            method: {{exact: GET}}
            headers: {{end-user: {{exact: jason}}, x-any: {{}}}}
            queryParams: {{debug: {{regex: '1|true'}}}}
            port: 9080
            ignoreUriCase: true
            sourceLabels: {{app: productpage, version: v1}}
            sourceNamespace: shop
          route:
          - destination: {{host: reviews, subset: v2, port: {{number: 9080}}}}
            weight: 75
            headers: {{response: {{add: {{x-subset: v2}}}}}}
          - destination: {{host: reviews, subset: v1}}
            weight: 25
          timeout: 1.5s
          retries: {{attempts: 3, perTryTimeout: 500ms, retryOn: 5xx, retryRemoteLocalities: true}}
          fault:
            delay: {{fixedDelay: 7s, percent: 10}}
            abort: {{grpcStatus: UNAVAILABLE, percentage: {{value: 0.5}}}}
          rewrite: {{uriRegexRewrite: {{match: ^/api/(.*), rewrite: /\\1}}, authority: internal}}
          mirror: {{host: shadow}}
          mirrorPercentage: {{value: 12.5}}
          headers:
            request: {{set: {{x-a: '1'}}, add: {{x-b: '2'}}, remove: [x-c]}}
        - directResponse:
            status: 503
            body: {{bytes: {base64.b64encode(b"down for maintenance").decode()}}}
        - redirect: {{uri: /new, authority: a.example.com, port: 8443, scheme: https, redirectCode: 308}}
        """,
    )
    assert isinstance(service, VirtualService)
    assert service.hosts == ("reviews", "reviews.example.com")
    assert service.gateways == ("mesh",)
    assert service.export_to == ("*",)
    first, second, third = service.http
    assert first.name == "jason"
    (match,) = first.match
    assert match.name == "m1" and match.uri == StringMatch(prefix="/api") and match.method == StringMatch(exact="GET")
    assert dict(match.headers) == {"end-user": StringMatch(exact="jason"), "x-any": StringMatch()}
    assert dict(match.query_params) == {"debug": StringMatch(regex="1|true")}
    assert (match.port, match.ignore_uri_case) == (9080, True)
    assert dict(match.source_labels) == {"app": "productpage", "version": "v1"} and match.source_namespace == "shop"
    heavy, light = first.route
    assert (heavy.destination.host, heavy.destination.subset, heavy.destination.port, heavy.weight) == (
        "reviews",
        "v2",
        9080,
        75,
    )
    assert heavy.headers is not None and heavy.headers.response is not None
    assert dict(heavy.headers.response.add) == {"x-subset": "v2"}
    assert (light.destination.subset, light.destination.port, light.weight) == ("v1", None, 25)
    assert first.timeout == 1.5
    assert first.retries is not None
    assert (first.retries.attempts, first.retries.per_try_timeout, first.retries.retry_on) == (3, 0.5, "5xx")
    assert first.retries.retry_remote_localities is True
    assert first.fault is not None and first.fault.delay is not None and first.fault.abort is not None
    assert (first.fault.delay.fixed_delay, first.fault.delay.percentage) == (7.0, 10.0)
    assert (first.fault.abort.grpc_status, first.fault.abort.http_status, first.fault.abort.percentage) == (
        "UNAVAILABLE",
        None,
        0.5,
    )
    assert first.rewrite is not None and first.rewrite.uri_regex_rewrite is not None
    assert (first.rewrite.uri_regex_rewrite.match, first.rewrite.uri_regex_rewrite.rewrite) == ("^/api/(.*)", "/\\1")
    assert first.rewrite.authority == "internal" and first.rewrite.uri is None
    (mirror,) = first.mirrors
    assert (mirror.destination.host, mirror.percentage) == ("shadow", 12.5)
    assert first.headers is not None and first.headers.request is not None
    request = first.headers.request
    assert (dict(request.set), dict(request.add), request.remove) == ({"x-a": "1"}, {"x-b": "2"}, ("x-c",))
    assert second.direct_response is not None
    assert (second.direct_response.status, second.direct_response.body) == (503, "down for maintenance")
    assert third.redirect is not None
    redirect = third.redirect
    assert (redirect.uri, redirect.authority, redirect.port, redirect.scheme, redirect.redirect_code) == (
        "/new",
        "a.example.com",
        8443,
        "https",
        308,
    )


def test_mirrors_list_and_default_redirect_code(istio: IstioDocs) -> None:
    service = istio.accepted(
        "VirtualService",
        ROUTE + "  mirrors:\n  - destination: {host: a}\n  - destination: {host: b}\n    percentage: {value: 50}\n"
        "- redirect: {uri: /x}\n",
    )
    assert isinstance(service, VirtualService)
    assert [(m.destination.host, m.percentage) for m in service.http[0].mirrors] == [("a", None), ("b", 50.0)]
    assert service.http[1].redirect is not None and service.http[1].redirect.redirect_code == 301


def test_retry_on_is_normalized(istio: IstioDocs) -> None:
    service = istio.accepted("VirtualService", ROUTE + "  retries: {attempts: 2, retryOn: 'gateway-error, 503 ,reset'}")
    assert isinstance(service, VirtualService) and service.http[0].retries is not None
    assert service.http[0].retries.retry_on == "gateway-error,503,reset"


def test_cors_policy_and_retry_fields_are_converted(istio: IstioDocs) -> None:
    service = istio.accepted(
        "VirtualService",
        CORS + "    allowOrigins: [{exact: https://a.example.com}, {prefix: https://b.}, {regex: 'https://.*\\.c'}]\n"
        "    allowMethods: [GET, POST]\n    allowHeaders: [x-a]\n    exposeHeaders: [x-b, x-c]\n    maxAge: 2m\n"
        "    allowCredentials: true\n    unmatchedPreflights: IGNORE\n"
        "  retries: {attempts: 3, backoff: 250ms, retryIgnorePreviousHosts: false}\n"
        "- route:\n  - destination: {host: reviews}\n  corsPolicy: {allowOrigin: [https://d.example.com]}\n",
    )
    assert isinstance(service, VirtualService)
    first, second = service.http
    assert first.cors_policy == CorsPolicy(
        allow_origins=(
            StringMatch(exact="https://a.example.com"),
            StringMatch(prefix="https://b."),
            StringMatch(regex="https://.*\\.c"),
        ),
        allow_methods=("GET", "POST"),
        allow_headers=("x-a",),
        expose_headers=("x-b", "x-c"),
        max_age=120,
        allow_credentials=True,
        unmatched_preflights="IGNORE",
    )
    assert first.retries is not None
    assert (first.retries.backoff, first.retries.retry_ignore_previous_hosts) == (0.25, False)
    assert second.cors_policy == CorsPolicy(allow_origins=(StringMatch(exact="https://d.example.com"),))
