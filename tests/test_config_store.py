"""ConfigStore: last-good semantics, file errors, duplicates, removals, cross-resource checks and configz."""

from __future__ import annotations

import json
from typing import Any

from pilot.config.parse import ParsedFile, parse_config_text
from pilot.config.store import ConfigStore
from pilot.config.types import ConfigKey, DestinationRule, VirtualService

NS = "bookinfo"


def doc(kind: str, name: str, spec: str, namespace: str = NS) -> str:
    """A document whose spec body (already indented by two spaces) starts on its line 7."""
    header = f"apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\n"
    return f"{header}  namespace: {namespace}\nspec:\n{spec}"


def workload(name: str, address: str = "127.0.0.21") -> str:
    return doc("WorkloadEntry", name, f"  address: {address}\n")


def rule(subsets: tuple[str, ...], host: str = "reviews", name: str = "reviews") -> str:
    listed = "".join(f"  - name: {s}\n    labels: {{version: {s}}}\n" for s in subsets)
    return doc("DestinationRule", name, f"  host: {host}\n  subsets:\n{listed}")


def service(subset: str = "", port: int | None = None, host: str = "reviews", mirror: str = "") -> str:
    destination = (
        f"host: {host}" + (f", subset: {subset}" if subset else "") + (f", port: {{number: {port}}}" if port else "")
    )
    spec = f"  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{{destination}}}\n"
    if mirror:
        spec += f"    mirror: {{host: {mirror}}}\n"
    return doc("VirtualService", "reviews", spec)


def entry(ports: tuple[int, ...], host: str = "reviews.bookinfo.svc.cluster.local") -> str:
    listed = "".join(f"  - {{number: {p}, name: p{p}, protocol: HTTP}}\n" for p in ports)
    return doc("ServiceEntry", "reviews", f"  hosts: [{host}]\n  location: MESH_INTERNAL\n  ports:\n{listed}")


def files(**texts: str) -> list[ParsedFile]:
    """Parse keyword ``a_yaml="..."`` as file ``a.yaml``."""
    return [parse_config_text(text, name.replace("_", ".")) for name, text in texts.items()]


def key(kind: str, name: str = "reviews") -> ConfigKey:
    return ConfigKey(kind=kind, namespace=NS, name=name)


def rejected(store: ConfigStore) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = store.configz()["rejected"]
    return entries


def test_apply_accepts_and_versions() -> None:
    store = ConfigStore()
    change = store.apply(files(a_yaml=workload("web") + "---\n" + workload("api", "127.0.0.22")))
    assert change is not None
    assert change.version == 1 == store.version
    assert change.changed == {key("WorkloadEntry", "web"), key("WorkloadEntry", "api")}
    assert list(store.accepted) == [key("WorkloadEntry", "api"), key("WorkloadEntry", "web")]  # ConfigKey order
    assert store.apply(files(a_yaml=workload("web") + "---\n" + workload("api", "127.0.0.22"))) is None
    assert store.version == 1


def test_same_content_on_other_lines_is_no_change_but_lines_follow() -> None:
    store = ConfigStore()
    store.apply(files(a_yaml=workload("web")))
    assert store.apply(files(a_yaml="# a comment\n\n" + workload("web"))) is None
    assert store.accepted[key("WorkloadEntry", "web")].meta.origin.line == 3


def test_invalid_version_keeps_last_good_across_applies() -> None:
    store = ConfigStore()
    store.apply(files(a_yaml=workload("web")))
    good = store.accepted[key("WorkloadEntry", "web")]
    assert store.apply(files(a_yaml="\n" + workload("web", "not-an-ip"))) is None
    assert store.accepted[key("WorkloadEntry", "web")] is good
    (entry_,) = rejected(store)
    assert entry_["in_force"] == "last good version from a.yaml:1"
    assert entry_["line"] == 2
    assert entry_["errors"] == [
        "a.yaml:8: WorkloadEntry bookinfo/web: spec.address: 'not-an-ip' is not an IP address: a hostname address "
        "is not supported by meshplane yet (a WorkloadEntry's address is its pod IP)"
    ]
    # still invalid on the next apply: the last good version is still the one in force
    assert store.apply(files(a_yaml=workload("web", "still bad"))) is None
    assert store.accepted[key("WorkloadEntry", "web")] is good
    change = store.apply(files(a_yaml=workload("web", "127.0.0.99")))
    assert change is not None and change.changed == {key("WorkloadEntry", "web")}
    assert rejected(store) == []


def test_never_valid_key_has_nothing_in_force() -> None:
    store = ConfigStore()
    assert store.apply(files(a_yaml=workload("web", "bad"))) is None
    assert store.accepted == {}
    (entry_,) = rejected(store)
    assert entry_["in_force"] is None and entry_["kind"] == "WorkloadEntry" and entry_["name"] == "web"


def test_keys_gone_from_every_file_are_removed() -> None:
    store = ConfigStore()
    store.apply(files(a_yaml=workload("web") + "---\n" + workload("api"), b_yaml=workload("db")))
    change = store.apply(files(a_yaml=workload("web")))
    assert change is not None and change.changed == {key("WorkloadEntry", "api")}
    change = store.apply([], removed_files=["b.yaml"])
    assert change is not None and change.changed == {key("WorkloadEntry", "db")}
    assert list(store.accepted) == [key("WorkloadEntry", "web")]
    assert change.version == 3


def test_invalid_key_removed_from_files_drops_its_last_good() -> None:
    store = ConfigStore()
    store.apply(files(a_yaml=workload("web")))
    store.apply(files(a_yaml=workload("web", "bad")))
    change = store.apply(files(a_yaml=workload("api")))
    assert change is not None and change.changed == {key("WorkloadEntry", "web"), key("WorkloadEntry", "api")}
    assert list(store.accepted) == [key("WorkloadEntry", "api")]


def test_file_with_syntax_error_keeps_what_it_had() -> None:
    store = ConfigStore()
    store.apply(files(a_yaml=workload("web"), b_yaml=workload("db")))
    assert store.apply(files(a_yaml="kind: [unclosed\n")) is None
    assert set(store.accepted) == {key("WorkloadEntry", "web"), key("WorkloadEntry", "db")}
    (file_error,) = store.configz()["file_errors"]
    assert file_error.startswith("a.yaml:1: YAML syntax error")  # where the bracket opens
    # other files still apply while a.yaml is broken
    change = store.apply(files(b_yaml=workload("db", "127.0.0.30")))
    assert change is not None and change.changed == {key("WorkloadEntry", "db")}
    assert store.configz()["file_errors"] == [file_error]
    # fixed: the error goes, the new content applies
    change = store.apply(files(a_yaml=workload("api")))
    assert change is not None and change.changed == {key("WorkloadEntry", "web"), key("WorkloadEntry", "api")}
    assert store.configz()["file_errors"] == []


def test_new_file_with_syntax_error_adds_nothing() -> None:
    store = ConfigStore()
    assert store.apply(files(a_yaml="a: b: c\n")) is None
    assert store.accepted == {} and len(store.file_errors) == 1
    assert store.apply([], removed_files=["a.yaml"]) is None
    assert not store.file_errors


def test_duplicate_key_in_another_file_is_rejected() -> None:
    store = ConfigStore()
    store.apply(files(b_yaml="\n\n" + workload("web", "127.0.0.2"), a_yaml=workload("web", "127.0.0.1")))
    accepted = store.accepted[key("WorkloadEntry", "web")]
    assert accepted.meta.file == "a.yaml"
    (entry_,) = rejected(store)
    assert (entry_["file"], entry_["line"], entry_["in_force"]) == ("b.yaml", 3, "version from a.yaml:1")
    assert entry_["errors"] == [
        "b.yaml:6: WorkloadEntry bookinfo/web: metadata.name: WorkloadEntry bookinfo/web is already defined at "
        "a.yaml:1; this definition is ignored"
    ]
    # the first definition goes away: the other one takes over
    change = store.apply([], removed_files=["a.yaml"])
    assert change is not None and store.accepted[key("WorkloadEntry", "web")].meta.file == "b.yaml"
    assert rejected(store) == []


def test_duplicate_key_in_the_same_file_rejects_the_later_document() -> None:
    store = ConfigStore()
    store.apply(files(a_yaml=workload("web", "127.0.0.1") + "---\n" + workload("web", "127.0.0.2")))
    assert store.accepted[key("WorkloadEntry", "web")].meta.origin.line == 1
    (entry_,) = rejected(store)
    assert entry_["line"] == 9 and "already defined at a.yaml:1" in entry_["errors"][0]


def test_virtual_service_subset_must_exist() -> None:
    store = ConfigStore()
    store.apply(files(dr_yaml=rule(("v1",)), vs_yaml=service(subset="v3")))
    assert key("VirtualService") not in store.accepted
    (entry_,) = rejected(store)
    assert entry_["errors"] == [
        "vs.yaml:10: VirtualService bookinfo/reviews: spec.http[0].route[0].destination.subset: subset 'v3' is not "
        "defined in DestinationRule bookinfo/reviews (its subsets: v1)"
    ]


def test_subset_without_any_destination_rule() -> None:
    store = ConfigStore()
    store.apply(files(vs_yaml=service(subset="v1")))
    (entry_,) = rejected(store)
    assert "there is no DestinationRule for reviews.bookinfo.svc.cluster.local" in entry_["errors"][0]


def test_subset_check_resolves_short_names_per_namespace() -> None:
    store = ConfigStore()
    other_namespace_rule = doc("DestinationRule", "reviews", "  host: reviews\n  subsets:\n  - name: v1\n", "other")
    store.apply(files(dr_yaml=other_namespace_rule, vs_yaml=service(subset="v1")))
    assert key("VirtualService") not in store.accepted
    store.apply(files(dr_yaml=rule(("v1",), host="reviews.bookinfo.svc.cluster.local")))
    assert key("VirtualService") in store.accepted


def test_subset_check_uses_wildcard_destination_rules() -> None:
    store = ConfigStore()
    wildcard_rule = rule(("v1",), host="'*.example.com'")
    store.apply(files(dr_yaml=wildcard_rule, vs_yaml=service(subset="v1", host="a.example.com")))
    assert key("VirtualService") in store.accepted


def test_cross_check_failure_keeps_the_last_good_virtual_service() -> None:
    store = ConfigStore()
    store.apply(files(dr_yaml=rule(("v1", "v2")), vs_yaml=service(subset="v1")))
    good = store.accepted[key("VirtualService")]
    assert store.apply(files(vs_yaml=service(subset="v3"))) is None
    assert store.accepted[key("VirtualService")] is good
    (entry_,) = rejected(store)
    assert entry_["in_force"] == "last good version from vs.yaml:1"


def split_service(weights: tuple[tuple[str, int], ...] = (("v1", 90), ("v2", 10))) -> str:
    """reviews split by weight over subsets; the n-th destination is on line 10 + 2n."""
    routes = "".join(f"    - destination: {{host: reviews, subset: {s}}}\n      weight: {w}\n" for s, w in weights)
    return doc("VirtualService", "reviews", f"  hosts: [reviews]\n  http:\n  - route:\n{routes}")


def test_removing_a_subset_is_rejected_while_a_virtual_service_uses_it() -> None:
    store = ConfigStore()
    store.apply(files(dr_yaml=rule(("v1", "v2", "v3")), vs_yaml=split_service()))
    in_force = dict(store.accepted)
    assert store.apply(files(dr_yaml=rule(("v1", "v3")))) is None  # nothing in force changed
    assert store.accepted == in_force
    (entry_,) = rejected(store)
    assert (entry_["kind"], entry_["file"], entry_["in_force"]) == (
        "DestinationRule",
        "dr.yaml",
        "last good version from dr.yaml:1",
    )
    assert entry_["errors"] == [
        "dr.yaml:8: DestinationRule bookinfo/reviews: spec.subsets: subset 'v2' is still used by VirtualService "
        "bookinfo/reviews (vs.yaml:12)"
    ]


def test_removing_a_subset_is_accepted_once_no_virtual_service_uses_it() -> None:
    store = ConfigStore()
    store.apply(files(dr_yaml=rule(("v1", "v2")), vs_yaml=split_service()))
    store.apply(files(dr_yaml=rule(("v1",))))  # rejected: v2 is used
    change = store.apply(files(vs_yaml=split_service((("v1", 100),))))  # the DR edit waiting in dr.yaml now fits
    assert change is not None and change.changed == {key("DestinationRule"), key("VirtualService")}
    assert not rejected(store)
    rule_in_force = store.accepted[key("DestinationRule")]
    assert isinstance(rule_in_force, DestinationRule) and [s.name for s in rule_in_force.subsets] == ["v1"]


def test_both_sides_of_a_subset_removal_in_one_apply_are_accepted() -> None:
    store = ConfigStore()
    store.apply(files(dr_yaml=rule(("v1", "v2")), vs_yaml=split_service()))
    change = store.apply(files(dr_yaml=rule(("v1",)), vs_yaml=service(subset="v1")))
    assert change is not None and change.changed == {key("DestinationRule"), key("VirtualService")}
    assert not rejected(store)


def test_rejecting_a_change_can_reject_what_relied_on_it() -> None:
    store = ConfigStore()
    store.apply(files(dr_yaml=rule(("v1", "v2")), vs_yaml=service(subset="v2")))
    other = doc(
        "VirtualService",
        "other",
        "  hosts: [other]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v3}\n",
    )
    change = store.apply(files(dr_yaml=rule(("v1", "v3")), other_yaml=other))  # v2 out, v3 in, a VS using v3
    assert change is None
    assert [(e["kind"], e["name"], e["in_force"]) for e in rejected(store)] == [
        ("DestinationRule", "reviews", "last good version from dr.yaml:1"),
        ("VirtualService", "other", None),
    ]
    assert "its subsets: v1, v2" in rejected(store)[1]["errors"][0]


def test_an_unchanged_last_good_virtual_service_is_kept_working_too() -> None:
    store = ConfigStore()
    store.apply(files(dr_yaml=rule(("v1", "v2")), vs_yaml=service(subset="v2")))
    store.apply(files(vs_yaml=service(subset="V2")))  # invalid: the v2 version stays in force
    assert store.apply(files(dr_yaml=rule(("v1",)))) is None
    dr_entry, vs_entry = rejected(store)
    assert dr_entry["errors"] == [
        "dr.yaml:8: DestinationRule bookinfo/reviews: spec.subsets: subset 'v2' is still used by VirtualService "
        "bookinfo/reviews (vs.yaml:1)"
    ]
    assert vs_entry["in_force"] == "last good version from vs.yaml:1"


def test_new_destination_rule_shadowing_a_wildcard_one_is_rejected_if_it_breaks_a_virtual_service() -> None:
    store = ConfigStore()
    wildcard = rule(("v1",), host="'*.example.com'", name="wildcard")
    store.apply(files(dr_yaml=wildcard, vs_yaml=service(subset="v1", host="a.example.com")))
    exact = rule(("v2",), host="a.example.com", name="exact")
    assert store.apply(files(dr_yaml=wildcard, exact_yaml=exact)) is None
    (entry_,) = rejected(store)
    assert (entry_["name"], entry_["in_force"]) == ("exact", None)
    assert "subset 'v1' is still used by VirtualService bookinfo/reviews (vs.yaml:10)" in entry_["errors"][0]


def test_deleting_the_destination_rule_drops_the_virtual_service_that_needs_it() -> None:
    store = ConfigStore()
    store.apply(files(dr_yaml=rule(("v1", "v2")), vs_yaml=service(subset="v2")))
    change = store.apply([], removed_files=["dr.yaml"])  # a deleted resource cannot be kept: nothing holds it
    assert change is not None and change.changed == {key("DestinationRule"), key("VirtualService")}
    (entry_,) = rejected(store)
    assert (entry_["kind"], entry_["in_force"]) == ("VirtualService", None)
    # putting the rule back brings the VirtualService back
    change = store.apply(files(dr_yaml=rule(("v1", "v2"))))
    assert change is not None and key("VirtualService") in store.accepted


def test_last_good_that_no_longer_passes_is_not_kept() -> None:
    store = ConfigStore()
    store.apply(files(dr_yaml=rule(("v1", "v2")), vs_yaml=service(subset="v2")))
    store.apply(files(vs_yaml=service(subset="V2")))  # invalid: v2 version stays in force
    assert key("VirtualService") in store.accepted
    store.apply([], removed_files=["dr.yaml"])
    assert key("VirtualService") not in store.accepted
    (entry_,) = rejected(store)
    assert entry_["in_force"] is None
    assert any("so the last good version from vs.yaml:1 is not kept either" in e for e in entry_["errors"])


def test_destination_port_must_be_a_service_port() -> None:
    store = ConfigStore()
    store.apply(files(se_yaml=entry((9080,)), vs_yaml=service(port=9999)))
    (entry_,) = rejected(store)
    assert entry_["errors"] == [
        "vs.yaml:10: VirtualService bookinfo/reviews: spec.http[0].route[0].destination.port.number: port 9999 is "
        "not a port of reviews.bookinfo.svc.cluster.local (ServiceEntry bookinfo/reviews has 9080)"
    ]
    store.apply(files(vs_yaml=service(port=9080)))
    assert key("VirtualService") in store.accepted


def test_destination_needs_a_port_when_the_service_has_several() -> None:
    store = ConfigStore()
    store.apply(files(se_yaml=entry((9080, 9443)), vs_yaml=service()))
    (entry_,) = rejected(store)
    assert "destination: port.number is required" in entry_["errors"][0]
    store.apply(files(se_yaml=entry((9080,))))
    assert key("VirtualService") in store.accepted  # one port: no port needed


def test_removing_a_port_is_rejected_while_a_virtual_service_uses_it() -> None:
    store = ConfigStore()
    store.apply(files(se_yaml=entry((9080, 9443)), vs_yaml=service(port=9443)))
    assert store.apply(files(se_yaml=entry((9080,)))) is None
    (entry_,) = rejected(store)
    assert (entry_["kind"], entry_["in_force"]) == ("ServiceEntry", "last good version from se.yaml:1")
    assert entry_["errors"] == [
        "se.yaml:9: ServiceEntry bookinfo/reviews: spec.ports: port 9443 of reviews.bookinfo.svc.cluster.local is "
        "still used by VirtualService bookinfo/reviews (vs.yaml:10)"
    ]
    change = store.apply(files(vs_yaml=service(port=9080)))  # the VirtualService moves: the port removal fits
    assert change is not None and change.changed == {key("ServiceEntry"), key("VirtualService")}
    assert not rejected(store)


def test_adding_a_port_is_rejected_while_a_virtual_service_routes_without_one() -> None:
    store = ConfigStore()
    store.apply(files(se_yaml=entry((9080,)), vs_yaml=service()))
    assert store.apply(files(se_yaml=entry((9080, 9443)))) is None
    (entry_,) = rejected(store)
    assert entry_["kind"] == "ServiceEntry"
    assert (
        "VirtualService bookinfo/reviews (vs.yaml:10) routes to reviews.bookinfo.svc.cluster.local without a "
        "port: it must keep a single port" in entry_["errors"][0]
    )


def test_port_checks_use_the_domain_suffix() -> None:
    store = ConfigStore(domain_suffix="corp.example")
    store.apply(files(se_yaml=entry((9080,), host="reviews.bookinfo.svc.corp.example"), vs_yaml=service(port=9999)))
    (entry_,) = rejected(store)
    assert "port 9999 is not a port of reviews.bookinfo.svc.corp.example" in entry_["errors"][0]


def test_unknown_destination_hosts_are_not_errors() -> None:
    store = ConfigStore()
    store.apply(files(se_yaml=entry((9080, 9443)), vs_yaml=service(host="ratings", port=1234)))
    assert key("VirtualService") in store.accepted


def test_mirror_destinations_are_checked_too() -> None:
    store = ConfigStore()
    store.apply(files(se_yaml=entry((9080, 9443)), vs_yaml=service(port=9080, mirror="reviews")))
    (entry_,) = rejected(store)
    assert entry_["errors"] == [
        "vs.yaml:11: VirtualService bookinfo/reviews: spec.http[0].mirror: port.number is required: "
        "reviews.bookinfo.svc.cluster.local has several ports (9080, 9443, from ServiceEntry bookinfo/reviews)"
    ]


def test_accepted_mapping_is_a_snapshot() -> None:
    store = ConfigStore()
    store.apply(files(a_yaml=workload("web")))
    before = store.accepted
    store.apply(files(a_yaml=workload("api")))
    assert list(before) == [key("WorkloadEntry", "web")]
    assert list(store.accepted) == [key("WorkloadEntry", "api")]


def test_configz_shape_is_json_and_sorted() -> None:
    store = ConfigStore()
    store.apply(
        files(
            b_yaml=workload("web") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            a_yaml=rule(("v1",)) + "---\n" + service(subset="v9"),
            c_yaml="x: [\n",
        )
    )
    configz = store.configz()
    assert json.loads(json.dumps(configz)) == configz
    assert configz["version"] == 1
    assert [(a["kind"], a["name"], a["file"], a["line"]) for a in configz["accepted"]] == [
        ("DestinationRule", "reviews", "a.yaml", 1),
        ("WorkloadEntry", "web", "b.yaml", 1),
    ]
    assert all(len(a["hash"]) == 64 for a in configz["accepted"])
    (entry_,) = configz["rejected"]
    assert set(entry_) == {"kind", "namespace", "name", "source", "origin", "file", "line", "errors", "in_force"}
    assert (entry_["source"], entry_["origin"]) == ("files", "a.yaml:12")
    assert (entry_["kind"], entry_["namespace"], entry_["name"], entry_["file"]) == (
        "VirtualService",
        NS,
        "reviews",
        "a.yaml",
    )
    assert configz["file_errors"] == [
        "c.yaml:2: YAML syntax error: did not find expected node content (while parsing a flow node)"
    ]
    (warning,) = configz["warnings"]
    assert warning.startswith("b.yaml:9: skipped ConfigMap (v1)")


def test_rejection_without_identity_is_listed() -> None:
    store = ConfigStore()
    store.apply(files(a_yaml="apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {}\n"))
    (entry_,) = rejected(store)
    assert (entry_["kind"], entry_["name"], entry_["in_force"]) == (None, None, None)


def test_virtual_service_content_is_the_validated_one() -> None:
    store = ConfigStore()
    store.apply(files(dr_yaml=rule(("v1",)), vs_yaml=service(subset="v1")))
    resource = store.accepted[key("VirtualService")]
    assert isinstance(resource, VirtualService)
    assert resource.http[0].route[0].destination.subset == "v1"
