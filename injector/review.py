"""AdmissionReview in and out (``admission.k8s.io/v1`` and ``v1beta1``: a 1.20 API server sends either, as the
webhook's ``admissionReviewVersions`` allow; the answer is in the version asked, with the request's uid)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["REVIEW_VERSIONS", "AdmissionRequest", "ReviewError", "parse_review", "review_answer"]

REVIEW_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")


class ReviewError(ValueError):
    """The body is not an AdmissionReview request (answered with HTTP 400)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionRequest:
    api_version: str
    uid: str
    kind: str  # the object's kind (request.kind.kind), e.g. Pod
    operation: str
    namespace: str
    object: Mapping[str, Any] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def is_pod_create(self) -> bool:
        return self.kind == "Pod" and self.operation == "CREATE"


def parse_review(body: Any) -> AdmissionRequest:
    if not isinstance(body, Mapping) or body.get("kind") != "AdmissionReview":
        raise ReviewError("expected an AdmissionReview")
    version = body.get("apiVersion")
    if version not in REVIEW_VERSIONS:
        raise ReviewError(f"apiVersion {version!r}: expected one of {', '.join(REVIEW_VERSIONS)}")
    request = body.get("request")
    if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str) or not request["uid"]:
        raise ReviewError("request.uid: missing")
    obj = request.get("object")
    return AdmissionRequest(
        api_version=str(version),
        uid=request["uid"],
        kind=str((request.get("kind") or {}).get("kind", "")),
        operation=str(request.get("operation", "")),
        namespace=str(request.get("namespace") or ""),
        object=obj if isinstance(obj, Mapping) else {},
        dry_run=bool(request.get("dryRun")),
    )


def review_answer(
    request: AdmissionRequest, *, patch: list[dict[str, Any]] | None = None, refusal: str | None = None
) -> dict[str, Any]:
    """The AdmissionReview response: allowed with the JSON Patch (if any), or refused with ``refusal``."""
    response: dict[str, Any] = {"uid": request.uid, "allowed": refusal is None}
    if refusal is not None:
        response["status"] = {"message": refusal, "reason": "Forbidden", "code": 403}
    elif patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch, separators=(",", ":")).encode()).decode()
    return {"apiVersion": request.api_version, "kind": "AdmissionReview", "response": response}
