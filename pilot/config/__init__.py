"""Pilot's config layer: Istio config -> validated frozen dataclasses (``types``), with last-good semantics.

- ``parse.parse_object(mapping, origin)`` validates one decoded object; ``parse.parse_config_text(text, file)``
  every document of one YAML file (``ParsedFile``). Each resource's ``meta.origin`` says where it came from.
- ``store.ConfigStore`` keeps what is in force across the units (files, objects) of all its sources
  (``apply``, ``accepted``, ``configz``).
- ``source.ConfigSource`` is what a source is; sources publish to a ``source.ConfigSink``; ``source.SourceGroup``
  runs several. ``source_files.DirectorySource`` reads a watched directory (its first load can take the parses of
  a ``parse_worker`` process started by ``pilot.parse_ahead``), ``source_memory.MemorySource`` holds decoded
  objects in memory.

Errors: ``ConfigError`` values describe problems in config (origin, key, field path); ``ConfigSourceError`` is
raised when a source cannot run at all.
"""

from meshplane.durations import DurationError, parse_duration, parse_timeout
from pilot.config.errors import ConfigError, ConfigSourceError, FieldPath, format_path
from pilot.config.origin import Origin, object_reference
from pilot.config.parse import (
    API_VERSIONS,
    ParsedFile,
    Rejected,
    Skipped,
    content_hash,
    parse_config_text,
    parse_object,
)
from pilot.config.source import ConfigSink, ConfigSource, SourceGroup
from pilot.config.source_files import DirectorySource
from pilot.config.source_memory import MEMORY, MemorySource
from pilot.config.store import FILES, ConfigStore, Rejection, StoreChange

__all__ = [
    "API_VERSIONS",
    "FILES",
    "MEMORY",
    "ConfigError",
    "ConfigSink",
    "ConfigSource",
    "ConfigSourceError",
    "ConfigStore",
    "DirectorySource",
    "DurationError",
    "FieldPath",
    "MemorySource",
    "Origin",
    "ParsedFile",
    "Rejected",
    "Rejection",
    "Skipped",
    "SourceGroup",
    "StoreChange",
    "content_hash",
    "format_path",
    "object_reference",
    "parse_config_text",
    "parse_duration",
    "parse_object",
    "parse_timeout",
]
