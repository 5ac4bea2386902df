"""What Pilot writes to a rejected Kubernetes object's status (``pilot.kube.status_messages``): Istio-style
validation messages with the reason, the Reconciled condition, observedGeneration, and the merge patch between what
is on the object and what should be (None when nothing is to be written)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pilot.config.errors import ConfigError
from pilot.config.origin import object_reference
from pilot.config.store import Rejection
from pilot.config.types import ConfigKey
from pilot.kube.status_messages import (
    Verdict,
    own_status,
    status_patch,
    validation_message,
    verdicts,
    wanted_status,
)

KEY = ConfigKey(kind="VirtualService", namespace="bookinfo", name="reviews")
ORIGIN = object_reference("VirtualService", "bookinfo", "reviews", "4711")
NOW = datetime(2026, 12, 2, 4, 40, 0, tzinfo=UTC)
EARLIER = "2026-12-01T10:00:00Z"


def error(path: str, message: str, key: ConfigKey = KEY) -> ConfigError:
    return ConfigError(origin=ORIGIN, key=key, path=path, message=message)


SUBSET = error("spec.http[0].route[0].destination.subset", "subset 'v3' is not defined in DestinationRule b/r")
TIMEOUT = error("spec.http[0].timeout", "invalid duration 'abc'")


def rejection(*errors: ConfigError, source: str = "kubernetes", in_force: str | None = None) -> Rejection:
    return Rejection(key=KEY, source=source, unit=str(KEY), origin=ORIGIN, errors=errors, in_force=in_force)


@pytest.mark.parametrize(
    ("problem", "code", "name"),
    [
        (TIMEOUT, "IST0106", "SchemaValidationError"),
        (SUBSET, "IST0101", "ReferencedResourceNotFound"),
        (error("spec.http[0].route[0].destination.port.number", "port 8080 is not a port of r.b.svc"), "IST0101", None),
        (error("spec.http[0].route[0]", "port.number is required: r.b.svc has several ports"), "IST0101", None),
        (error("spec.http[0].mirrorPercent", "not supported by meshplane yet"), "MPL0001", "NotSupportedByMeshplane"),
        (error("metadata.name", "VirtualService b/r is already defined at a.yaml:3"), "MPL0002", "DuplicateDefinition"),
        (error("spec.subsets", "subset 'v1' is still used by VirtualService b/r (x)"), "MPL0003", None),
        (
            error("spec.ports", "VirtualService b/r routes to h without a port: it must keep a single port"),
            "MPL0003",
            None,
        ),
        (
            error("spec.servers[0]", "conflicts with Gateway b/a (x: spec.servers[0]) on port 80: only one ..."),
            "IST0145",
            "ConflictingGateways",
        ),
    ],
    ids=[
        "schema",
        "subset",
        "port",
        "port-required",
        "unsupported",
        "duplicate",
        "still-used",
        "single-port",
        "conflicting-gateways",
    ],
)
def test_each_problem_has_an_analysis_message_type(problem: ConfigError, code: str, name: str | None) -> None:
    message = validation_message(problem)
    assert message["type"]["code"] == code
    if name is not None:
        assert message["type"]["name"] == name
    assert ("documentationUrl" in message) is code.startswith("IST")


def test_a_validation_message_reads_as_istio_writes_it_with_the_reason() -> None:
    assert validation_message(SUBSET) == {
        "level": "ERROR",
        "type": {"code": "IST0101", "name": "ReferencedResourceNotFound"},
        "description": "spec.http[0].route[0].destination.subset: subset 'v3' is not defined in DestinationRule b/r",
        "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/",
    }
    assert validation_message(error("", "a document must be a mapping"))["description"] == (
        "a document must be a mapping"
    )


def test_verdicts_are_one_per_object_of_the_source_with_each_problem_once() -> None:
    other = ConfigKey(kind="DestinationRule", namespace="bookinfo", name="reviews")
    found = verdicts(
        [
            rejection(TIMEOUT),
            rejection(TIMEOUT, SUBSET, in_force="last good version from VirtualService/bookinfo/reviews@4700"),
            rejection(error("spec", "x", key=other), source="files"),
            Rejection(key=None, source="kubernetes", unit="u", origin=ORIGIN, errors=(TIMEOUT,)),
        ],
        "kubernetes",
    )
    assert found == {
        KEY: Verdict(
            errors=(TIMEOUT, SUBSET),
            in_force="last good version from VirtualService/bookinfo/reviews@4700",
            resource_version="4711",
        )
    }


@pytest.mark.parametrize(
    ("verdict", "message"),
    [
        (Verdict(errors=(SUBSET,)), "(1 error, see validationMessages); nothing of it is in force"),
        (
            Verdict(errors=(SUBSET, TIMEOUT), in_force="last good version from VirtualService/bookinfo/reviews@4700"),
            "(2 errors, see validationMessages); the last good version from VirtualService/bookinfo/reviews@4700 "
            "is in force",
        ),
    ],
    ids=["nothing-in-force", "last-good-in-force"],
)
def test_the_wanted_status_of_a_rejected_object(verdict: Verdict, message: str) -> None:
    wanted = wanted_status("VirtualService", verdict, 3)
    assert wanted == {
        "validationMessages": [validation_message(e) for e in verdict.errors],
        "condition": {
            "type": "Reconciled",
            "status": "False",
            "reason": "Rejected",
            "message": f"meshplane rejected this VirtualService {message}",
            "observedGeneration": 3,
        },
        "observedGeneration": 3,
    }
    assert wanted_status("VirtualService", None, 3) == {}


def written(generation: Any = 3, since: str = EARLIER, **extra: Any) -> dict[str, Any]:
    """A status as meshplane wrote it for ``Verdict(errors=(SUBSET,))``."""
    condition = {**wanted_status("VirtualService", Verdict(errors=(SUBSET,)), 3)["condition"]}
    condition.update(observedGeneration=generation, lastTransitionTime=since)
    return {
        "validationMessages": [validation_message(SUBSET)],
        "conditions": [condition],
        "observedGeneration": generation,
        **extra,
    }


WANTED = wanted_status("VirtualService", Verdict(errors=(SUBSET,)), 3)
FOREIGN = {"type": "Distributed", "status": "True"}


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        (written(), WANTED),
        (written(generation="3"), WANTED),  # istiod's string form
        ({}, {}),
        ({"conditions": [FOREIGN]}, {}),
    ],
    ids=["same", "generation-as-string", "valid-and-clean", "valid-with-another-writers-condition"],
)
def test_nothing_is_written_when_the_object_already_says_it(current: dict[str, Any], wanted: dict[str, Any]) -> None:
    assert status_patch(current, wanted, NOW) is None


def test_a_newly_rejected_object_gets_the_whole_status_with_the_transition_time_now() -> None:
    patch = status_patch({"conditions": [FOREIGN]}, WANTED, NOW)
    assert patch == {
        "validationMessages": [validation_message(SUBSET)],
        "conditions": [FOREIGN, {**WANTED["condition"], "lastTransitionTime": "2026-12-02T04:40:00Z"}],
        "observedGeneration": 3,
    }
    assert own_status(patch) == WANTED


def test_new_reasons_keep_the_time_the_condition_became_false() -> None:
    wanted = wanted_status("VirtualService", Verdict(errors=(TIMEOUT,)), 4)
    patch = status_patch(written(), wanted, NOW)
    assert patch is not None
    assert patch["validationMessages"] == [validation_message(TIMEOUT)]
    assert patch["observedGeneration"] == 4
    assert [c["lastTransitionTime"] for c in patch["conditions"]] == [EARLIER]


@pytest.mark.parametrize(
    ("current", "conditions"),
    [(written(), None), (written(conditions=[FOREIGN, written()["conditions"][0]]), [FOREIGN])],
    ids=["only-ours", "another-writers-condition-kept"],
)
def test_a_fixed_object_has_meshplanes_status_removed(current: dict[str, Any], conditions: Any) -> None:
    assert status_patch(current, {}, NOW) == {
        "validationMessages": None,
        "conditions": conditions,
        "observedGeneration": None,
    }
