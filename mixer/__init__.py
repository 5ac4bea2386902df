"""Mixer: policy checks (Envoy ext_authz) and telemetry (Envoy gRPC access logs -> Istio metrics, service graph).

- ``names``: the names sidecars, Pilot and Mixer agree on (cluster, node metadata, headers, access-log tags).
- ``registry``: who is at an address, from the same mesh snapshot Pilot builds.
"""
