"""Contracts every meshplane component shares, as Istio's ``pkg/``: no component's internals, no import of
``pilot``, ``mixer`` or ``citadel``, so each of them (and ``envoy_bootstrap``) can import it without loading the others.

- ``names``: Envoy cluster, listener, route and filter names, and the sidecar's ports;
- ``identity``: SPIFFE IDs, SDS resource names, the trust domain, Citadel's server name;
- ``mixer_names``: Mixer's cluster, node metadata, addresses and access-log tags;
- ``durations``: Istio's duration syntax;
- ``serving``, ``logs``, ``http_endpoints``: running a control-plane command, its logging, its monitor address
  (served by ``http_server``, a minimal HTTP/1.1 server on asyncio streams);
- Kubernetes: ``kube_api`` (the client from ``--kubeconfig``/``--in-cluster``), ``kube_rest`` (raw JSON requests),
  ``kube_kinds`` (a kind and its served version), ``kube_watch`` + ``kube_watch_events`` (list+watch of one kind, in
  a thread), ``kube_lease`` + ``kube_leader`` (Lease leader election). These import the ``kubernetes`` client: this
  package's ``__init__`` does not.
"""
