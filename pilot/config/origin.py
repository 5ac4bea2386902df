"""Where a config resource (or a problem with one) comes from: every message names it.

A resource read from a file has the file and the 1-based line (of the document, or of the field a problem is
about): ``reviews.yaml:12``. A resource from a source without files (the Kubernetes API server, an in-memory source
in tests) has a reference instead, e.g. ``VirtualService/default/reviews@4711`` (kind/namespace/name@resourceVersion).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["Origin", "object_reference"]


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Origin:
    """A file and line, or (for a resource not read from a file) a reference naming the object."""

    file: str = ""  # "" when the resource was not read from a file
    line: int = 0  # 1-based line in ``file``; 0 when there is no file
    reference: str = ""  # what names the object when there is no file: ``kind/namespace/name@resourceVersion``

    def __post_init__(self) -> None:
        if bool(self.file) == bool(self.reference):
            raise ValueError(f"an origin is a file or a reference, not both or neither: {self!r}")

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.file else self.reference

    def at_line(self, line: int) -> Origin:
        """The same file at another line (a field's); an origin without a file has no lines: itself."""
        return replace(self, line=line) if self.file and line != self.line else self


def object_reference(kind: str, namespace: str, name: str, resource_version: str = "") -> Origin:
    """The origin of an API object: ``kind/namespace/name``, with ``@resourceVersion`` when it has one."""
    version = f"@{resource_version}" if resource_version else ""
    return Origin(reference=f"{kind}/{namespace}/{name}{version}")
