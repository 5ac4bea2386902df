"""Mixer: policy checks (Envoy ext_authz) and telemetry (Envoy gRPC access logs -> Istio metrics, service graph).

- ``names``: the names sidecars, Pilot and Mixer agree on (cluster, node metadata, headers, access-log tags);
- ``registry``: who is at an address, from the same mesh snapshot Pilot builds;
- checks: ``attributes`` (CheckRequest -> Istio attributes), ``evaluation`` (CEL over them: a value, absent, or an
  error), ``access_list``, ``entries_files``, ``rate_limit``, ``checks`` (the policy engine, compiled once per
  config version), ``authz_service`` (the ext_authz server);
- telemetry: ``log_entries`` (access-log entry -> Istio labels), ``telemetry`` (the Istio metrics), ``graph``,
  ``accesslog_service`` (the access-log server and its bounded queue);
- ``metrics``, ``monitor``, ``app``, ``cli``: the ``mixer`` process.
"""
