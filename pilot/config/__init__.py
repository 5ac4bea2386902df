"""Pilot's config layer: Istio YAML -> validated frozen dataclasses (``types``), with last-good semantics.

- ``parse.parse_config_text(text, file)`` validates every document of one file (``ParsedFile``).
- ``store.ConfigStore`` keeps what is in force across files and edits (``apply``, ``accepted``, ``configz``).
- ``source_files.DirectorySource`` feeds a store from a watched directory.

Errors: ``ConfigError`` values describe problems in files (file:line, key, field path); ``ConfigSourceError`` is
raised when a source cannot run at all.
"""

from meshplane.durations import DurationError, parse_duration, parse_timeout
from pilot.config.errors import ConfigError, ConfigSourceError, FieldPath, format_path
from pilot.config.parse import API_VERSIONS, ParsedFile, Rejected, content_hash, parse_config_text
from pilot.config.source_files import DirectorySource
from pilot.config.store import ConfigStore, Rejection, StoreChange

__all__ = [
    "API_VERSIONS",
    "ConfigError",
    "ConfigSourceError",
    "ConfigStore",
    "DirectorySource",
    "DurationError",
    "FieldPath",
    "ParsedFile",
    "Rejected",
    "Rejection",
    "StoreChange",
    "content_hash",
    "format_path",
    "parse_config_text",
    "parse_duration",
    "parse_timeout",
]
