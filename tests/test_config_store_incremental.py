"""ConfigStore's incremental apply (``pilot.config.store_scope``) against a resolve of everything: on random
sequences of edits over a small mesh whose resources keep meeting each other (VirtualServices and the
DestinationRules and ServiceEntries of their destinations, conflicting VirtualServices, merging and conflicting
DestinationRules, Gateways sharing a port, duplicates across files and sources, invalid and keyless documents, YAML
errors, deletions, wildcard DestinationRules), a store that resolves only what each change reaches must end every
step exactly where one resolving everything does: the same change, what is in force, every rejection."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from pilot.config.parse import ParsedFile, parse_config_text
from pilot.config.store import ConfigStore, StoreChange
from tests.test_config_store import doc, files

SOURCES = ("kube", "files")
HOSTS = ("a", "b", "c", "d")
FILES = tuple(f"f{i}.yaml" for i in range(6))
GATEWAY_SERVERS = (
    "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [a.example.com]\n",
    "  - port: {number: 80, name: tcp, protocol: TCP}\n    hosts: ['*']\n",
    "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [a.example.com]\n"
    "    tls: {mode: SIMPLE, credentialName: a}\n",
)


def destination_rule(pick: random.Random) -> str:
    host = pick.choice((*HOSTS, "'*.bookinfo.svc.cluster.local'") if pick.random() < 0.1 else HOSTS)
    subsets = [s for s in ("v1", "v2", "v3") if pick.random() < 0.5]
    listed = "".join(f"  - name: {s}\n    labels: {{version: {s}}}\n" for s in subsets)
    policy = "  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n" if pick.random() < 0.2 else ""
    spec = f"  host: {host}\n" + (f"  subsets:\n{listed}" if listed else "") + policy
    return doc("DestinationRule", pick.choice(("r1", "r2", "r3")), spec)


def service_entry(pick: random.Random) -> str:
    host = f"{pick.choice(HOSTS)}.bookinfo.svc.cluster.local"
    ports = [p for p in (80, 9080) if pick.random() < 0.6] or [80]
    listed = "".join(f"  - {{number: {p}, name: p{p}, protocol: HTTP}}\n" for p in ports)
    return doc(
        "ServiceEntry", pick.choice(("e1", "e2")), f"  hosts: [{host}]\n  location: MESH_INTERNAL\n  ports:\n{listed}"
    )


def virtual_service(pick: random.Random) -> str:
    destination = f"host: {pick.choice(HOSTS)}"
    if pick.random() < 0.6:
        destination += f", subset: {pick.choice(('v1', 'v2', 'v3'))}"
    if pick.random() < 0.3:
        destination += f", port: {{number: {pick.choice((80, 9080))}}}"
    match = f"  - match: [{{uri: {{prefix: /{pick.choice('xy')}}}}}]\n    route:\n" if pick.random() < 0.5 else ""
    route = match or "  - route:\n"
    spec = f"  hosts: [{pick.choice(HOSTS)}]\n  http:\n{route}    - destination: {{{destination}}}\n"
    return doc("VirtualService", pick.choice(("s1", "s2", "s3")), spec)


def gateway(pick: random.Random) -> str:
    servers = f"  selector: {{istio: ingressgateway}}\n  servers:\n{pick.choice(GATEWAY_SERVERS)}"
    return doc("Gateway", pick.choice(("g1", "g2")), servers)


def workload(pick: random.Random) -> str:
    address = pick.choice(("127.0.0.21", "127.0.0.22", "not-an-ip"))
    return doc("WorkloadEntry", pick.choice(("w1", "w2")), f"  address: {address}\n")


def keyless(pick: random.Random) -> str:
    return "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {namespace: bookinfo}\nspec: {}\n"


KINDS: tuple[Callable[[random.Random], str], ...] = (
    destination_rule,
    destination_rule,
    service_entry,
    virtual_service,
    virtual_service,
    virtual_service,
    gateway,
    workload,
    keyless,
)


def random_file(pick: random.Random, name: str) -> ParsedFile:
    if pick.random() < 0.05:
        return parse_config_text("kind: [unclosed\n", name)  # a YAML error: the file keeps what it had
    documents = [pick.choice(KINDS)(pick) for _ in range(pick.randint(0, 3))]
    return parse_config_text("---\n".join(documents), name)


def state(store: ConfigStore, change: StoreChange | None) -> dict[str, Any]:
    return {"change": change, "configz": store.configz(), "order": list(store.accepted)}


def stores() -> tuple[ConfigStore, ConfigStore, list[int]]:
    """One store resolving only what a change reaches, one resolving everything; how often the first did."""
    incremental, whole = ConfigStore(sources=SOURCES), ConfigStore(sources=SOURCES)
    incremental.whole_above, whole.whole_above = float("inf"), -1.0
    scoped = [0]
    resolve_scope = incremental._resolve_scope

    def counted(*args: Any) -> Any:
        scoped[0] += 1
        return resolve_scope(*args)

    incremental._resolve_scope = counted  # type: ignore[method-assign]
    return incremental, whole, scoped


@pytest.mark.parametrize("seed", range(40))
def test_incremental_apply_matches_a_whole_resolve(seed: int) -> None:
    pick = random.Random(seed)
    incremental, whole, scoped = stores()
    for step in range(60):
        source = pick.choice(SOURCES)
        if pick.random() < 0.15:
            parsed, removed = [], [pick.choice(FILES)]
        else:
            parsed, removed = [random_file(pick, name) for name in pick.sample(FILES, pick.randint(1, 2))], []
        expected = state(whole, whole.apply(parsed, removed, source=source))
        assert state(incremental, incremental.apply(parsed, removed, source=source)) == expected, f"step {step}"
    assert scoped[0] > 0


def test_a_change_resolves_only_the_keys_it_reaches() -> None:
    incremental, _, scoped = stores()
    incremental.whole_above = 0.5
    mesh = {
        f"{host}_yaml": doc(
            "DestinationRule", host, f"  host: {host}\n  subsets:\n  - name: v1\n    labels: {{v: a}}\n"
        )
        + "---\n"
        + doc("VirtualService", host, f"  hosts: [{host}]\n  http:\n  - route:\n    - destination: {{host: {host}}}\n")
        for host in HOSTS
    }
    incremental.apply(files(**mesh), source="files")
    assert scoped[0] == 0  # the first load: everything
    edited = mesh["a_yaml"].replace("destination: {host: a}", "destination: {host: a, subset: v2}")
    assert incremental.apply(files(a_yaml=edited), source="files") is None  # v2 is not a subset of a's rule
    assert scoped[0] == 1
    (rejection,) = incremental.rejections
    assert rejection.in_force == "last good version from a.yaml:12"
    assert "subset 'v2' is not defined" in rejection.errors[0].message
