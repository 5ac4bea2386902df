"""What Pilot writes to a rejected Kubernetes config object's ``status`` (pure: no I/O, clocks passed in).

Istio's ``IstioStatus`` shape (``istio.io/api/meta/v1alpha1``), so that ``kubectl get vs reviews -o yaml`` reads as
it does with istiod's analysis on, plus the reason itself, which Istio leaves out of ``status``:

.. code-block:: yaml

    status:
      conditions:
      - type: Reconciled
        status: "False"
        reason: Rejected
        message: 'meshplane rejected this VirtualService (1 error, see validationMessages); the last good version
          from VirtualService/default/reviews@4711 is in force'
        observedGeneration: 3
        lastTransitionTime: "2026-12-02T04:40:00Z"
      validationMessages:
      - level: ERROR
        type: {code: IST0101, name: ReferencedResourceNotFound}
        description: "spec.http[0].route[0].destination.subset: subset 'v3' is not defined in DestinationRule ..."
        documentationUrl: https://istio.io/latest/docs/reference/config/analysis/ist0101/
      observedGeneration: 3

- ``validationMessages``: one per problem, Istio's ``AnalysisMessageBase`` (``level``, ``type.code``/``type.name``,
  ``documentationUrl`` for Istio's codes) with ``description``: the field path and the message, as Pilot logs it.
  Problems Istio has a code for keep it (``IST0106`` SchemaValidationError, ``IST0101``
  ReferencedResourceNotFound, ``IST0145`` ConflictingGateways); meshplane's own (a field it does not support yet, a
  duplicate definition, a change that would break a VirtualService in force) have ``MPL`` codes.
- ``conditions``: one condition of type ``Reconciled`` (other writers' conditions are kept), ``False`` with reason
  ``Rejected`` and what is in force instead, its ``observedGeneration`` (Istio 1.24's ``IstioCondition`` has one).
- ``observedGeneration``: the ``metadata.generation`` that was validated, an integer (Kubernetes' int64, what
  kstatus/Flux/Argo read; istiod writes it as a string, istio/istio#39605).

A valid object carries none of this: when it becomes valid, these fields are removed (a merge patch with nulls), so
that status is there exactly when something is wrong. ``own_status`` extracts what meshplane wrote from any status,
``wanted_status`` says what it should be, ``status_patch`` is the merge patch between them (None: nothing to write).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pilot.config.errors import ConfigError
from pilot.config.store import Rejection
from pilot.config.types import ConfigKey

__all__ = [
    "CONDITION_TYPE",
    "DUPLICATE_DEFINITION",
    "IN_USE_BY_VIRTUAL_SERVICE",
    "NOT_SUPPORTED",
    "REFERENCED_RESOURCE_NOT_FOUND",
    "SCHEMA_VALIDATION_ERROR",
    "MessageType",
    "Verdict",
    "message_type",
    "own_status",
    "status_patch",
    "validation_message",
    "verdicts",
    "wanted_status",
]

CONDITION_TYPE = "Reconciled"
REJECTED_REASON = "Rejected"
ISTIO_ANALYSIS_DOCS = "https://istio.io/latest/docs/reference/config/analysis"


@dataclass(frozen=True, slots=True)
class MessageType:
    """An analysis message type, as Istio's ``diag.MessageType``: code and name."""

    code: str
    name: str

    @property
    def documentation_url(self) -> str | None:
        """Istio documents its own codes; meshplane's (``MPL...``) have no page."""
        return f"{ISTIO_ANALYSIS_DOCS}/{self.code.lower()}/" if self.code.startswith("IST") else None


SCHEMA_VALIDATION_ERROR = MessageType("IST0106", "SchemaValidationError")
REFERENCED_RESOURCE_NOT_FOUND = MessageType("IST0101", "ReferencedResourceNotFound")
NOT_SUPPORTED = MessageType("MPL0001", "NotSupportedByMeshplane")
DUPLICATE_DEFINITION = MessageType("MPL0002", "DuplicateDefinition")
IN_USE_BY_VIRTUAL_SERVICE = MessageType("MPL0003", "InUseByVirtualService")
CONFLICTING_GATEWAYS = MessageType("IST0145", "ConflictingGateways")

# (what a message of the config layer says, its type): the first match wins; anything else is a schema error
_MESSAGE_TYPES: tuple[tuple[str, MessageType], ...] = (
    ("not supported by meshplane yet", NOT_SUPPORTED),
    ("is already defined at", DUPLICATE_DEFINITION),
    ("still used by", IN_USE_BY_VIRTUAL_SERVICE),  # cross_checks: a change put back
    (" routes to ", IN_USE_BY_VIRTUAL_SERVICE),  # ... "routes to HOST without a port: it must keep a single port"
    ("is not defined", REFERENCED_RESOURCE_NOT_FOUND),  # cross_checks: a subset
    ("is not a port of", REFERENCED_RESOURCE_NOT_FOUND),
    ("port.number is required", REFERENCED_RESOURCE_NOT_FOUND),
    ("conflicts with Gateway ", CONFLICTING_GATEWAYS),  # the store: servers of two Gateways on one port
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """Why one object is not in force: its problems, and what is in force for its key instead (the store's
    ``Rejection.in_force``), and the ``resourceVersion`` the verdict is about ("" when unknown)."""

    errors: tuple[ConfigError, ...]
    in_force: str | None = None
    resource_version: str = ""


def verdicts(rejections: Iterable[Rejection], source: str) -> dict[ConfigKey, Verdict]:
    """The verdict on every object of ``source`` that the store rejected (one per key: a document rejected twice,
    for itself and by a cross-check, gets every distinct problem once)."""
    found: dict[ConfigKey, Verdict] = {}
    for rejection in rejections:
        if rejection.source != source or rejection.key is None:
            continue
        earlier = found.get(rejection.key)
        errors = (*earlier.errors, *rejection.errors) if earlier else rejection.errors
        unique = tuple({(e.path, e.message): e for e in reversed(errors)}.values())[::-1]
        found[rejection.key] = Verdict(
            errors=unique,
            in_force=rejection.in_force,
            resource_version=rejection.origin.reference.rpartition("@")[2] if "@" in rejection.origin.reference else "",
        )
    return found


def message_type(error: ConfigError) -> MessageType:
    return next((kind for text, kind in _MESSAGE_TYPES if text in error.message), SCHEMA_VALIDATION_ERROR)


def validation_message(error: ConfigError) -> dict[str, Any]:
    """One problem as an entry of ``status.validationMessages``."""
    kind = message_type(error)
    message: dict[str, Any] = {
        "level": "ERROR",
        "type": {"code": kind.code, "name": kind.name},
        "description": f"{error.path}: {error.message}" if error.path else error.message,
    }
    if kind.documentation_url is not None:
        message["documentationUrl"] = kind.documentation_url
    return message


def wanted_status(kind: str, verdict: Verdict | None, generation: int) -> dict[str, Any]:
    """The fields meshplane owns, as they should be (``own_status``'s shape): empty for a valid object."""
    if verdict is None:
        return {}
    count = len(verdict.errors)
    in_force = f"the {verdict.in_force} is in force" if verdict.in_force else "nothing of it is in force"
    message = (
        f"meshplane rejected this {kind} ({count} error{'s' if count != 1 else ''}, see validationMessages); {in_force}"
    )
    return {
        "validationMessages": [validation_message(e) for e in verdict.errors],
        "condition": {
            "type": CONDITION_TYPE,
            "status": "False",
            "reason": REJECTED_REASON,
            "message": message,
            "observedGeneration": generation,
        },
        "observedGeneration": generation,
    }


def own_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """What meshplane wrote in ``status`` (``validationMessages``, its condition without times,
    ``observedGeneration`` as an integer), in ``wanted_status``'s shape."""
    own: dict[str, Any] = {}
    messages = status.get("validationMessages")
    if messages:
        own["validationMessages"] = list(messages) if isinstance(messages, Sequence) else messages
    condition = _own_condition(status)
    if condition is not None:
        own["condition"] = {
            key: _generation(value) if key == "observedGeneration" else value
            for key, value in condition.items()
            if key not in ("lastTransitionTime", "lastProbeTime")
        }
    if status.get("observedGeneration") is not None:
        own["observedGeneration"] = _generation(status["observedGeneration"])
    return own


def status_patch(current: Mapping[str, Any], wanted: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """The merge patch of ``status`` that makes meshplane's fields ``wanted`` (nulls remove them), keeping other
    writers' conditions; None when they already are."""
    if own_status(current) == wanted:
        return None
    others = [c for c in _conditions(current) if c.get("type") != CONDITION_TYPE]
    condition = wanted.get("condition")
    conditions = others
    if condition is not None:
        before = _own_condition(current)
        kept = before is not None and before.get("status") == condition["status"] and before.get("lastTransitionTime")
        since = before["lastTransitionTime"] if before is not None and kept else _metav1_time(now)
        conditions = [*others, {**condition, "lastTransitionTime": since}]
    return {
        "validationMessages": wanted.get("validationMessages"),
        "conditions": conditions or None,
        "observedGeneration": wanted.get("observedGeneration"),
    }


def _conditions(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return []
    return [c for c in conditions if isinstance(c, Mapping)]


def _own_condition(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((c for c in _conditions(status) if c.get("type") == CONDITION_TYPE), None)


def _generation(value: object) -> object:
    """An observedGeneration as an integer (istiod writes ``"3"``): a string of digits compares equal to 3."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _metav1_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
