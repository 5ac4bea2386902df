"""Validate a WorkloadGroup spec (``networking.istio.io`` WorkloadGroup, Istio's ``ValidateWorkloadGroup``) into
``types.WorkloadGroup``: ``template`` is required and is a WorkloadEntry without ``address`` (the connecting proxy's
IP is filled in); ``metadata.labels`` are Kubernetes labels; ``probe`` is not supported (no health checks).
"""

from __future__ import annotations

from types import MappingProxyType

from pilot.config.istio_api import fields_except
from pilot.config.types import ConfigMeta, WorkloadGroup, frozen_labels
from pilot.config.validate_common import Fields
from pilot.config.validate_workload_entry import WORKLOAD_FIELDS, read_workload_fields

__all__ = ["WORKLOAD_GROUP_FIELDS", "validate_workload_group"]

WORKLOAD_GROUP_FIELDS = fields_except("WorkloadGroup", "probe")
_TEMPLATE_FIELDS = tuple(name for name in WORKLOAD_FIELDS if name != "address")


def validate_workload_group(spec: Fields, meta: ConfigMeta) -> WorkloadGroup:
    """Check a WorkloadGroup spec (opened with ``WORKLOAD_GROUP_FIELDS``); problems go to ``spec.problems``."""
    metadata = spec.mapping("metadata", known=("labels", "annotations"), message="WorkloadGroup.ObjectMeta")
    labels = (metadata.labels("labels") if metadata is not None else None) or {}
    annotations: dict[str, str] = {}
    if metadata is not None:
        for name, value, path in metadata.entries("annotations"):
            if isinstance(value, str):
                annotations[name] = value
            else:
                metadata.problems.add(path, "expected a string annotation value")
    template = spec.mapping("template", known=_TEMPLATE_FIELDS, required=True, message="WorkloadEntry")
    if template is None:
        return WorkloadGroup(meta=meta, labels=frozen_labels(labels))
    if template.has("address"):
        template.report("address", "a WorkloadGroup's template has no address: each connecting proxy's IP is used")
    fields = read_workload_fields(template, address_required=False)
    return WorkloadGroup(
        meta=meta,
        labels=frozen_labels(labels),
        annotations=MappingProxyType(dict(sorted(annotations.items()))),
        ports=fields.ports,
        template_labels=fields.labels,
        weight=fields.weight,
        locality=fields.locality,
        service_account=fields.service_account,
    )
