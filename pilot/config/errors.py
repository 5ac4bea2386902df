"""Errors of the config layer.

Two families, kept apart on purpose:

- ``ConfigError`` is a *value*: one problem found in config, with its origin (``file:line`` for a file, an object
  reference for other sources), resource key and field path. Validation collects them (every problem of a
  resource at once, Istio's style) and the store keeps them for ``/debug/configz``; they are never raised.
- ``ConfigSourceError`` (an ``Exception``) is raised when a config source itself cannot work, e.g. its directory
  does not exist. Problems inside a file are never raised: they become ``ConfigError`` values.

Field paths are tuples of segments (``("spec", "http", 0, "route", 1, "weight")``); ``format_path`` renders them
the way Istio users read them: ``spec.http[0].route[1].weight``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pilot.config.origin import Origin
from pilot.config.types import ConfigKey

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_QUOTED_CHARS",
    "ConfigError",
    "ConfigSourceError",
    "FieldPath",
    "cut_text",
    "format_path",
    "quote",
]

FieldPath = tuple[str | int, ...]  # str: a mapping key; int: a list index

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_:-]+$")

# A value is quoted into a message with at most this many characters, and a whole message (or field path) is cut to
# at most about this many: a 10 MiB value must not become 10 MiB of output, configz and log per mention.
MAX_QUOTED_CHARS = 80
MAX_MESSAGE_CHARS = 1000


def quote(value: str) -> str:
    """``value`` as it reads in a message (Python's quoting, as ``!r``), cut after ``MAX_QUOTED_CHARS`` characters:
    ``'aaaa...'... (10485760 characters)``. Every validator quotes values through this."""
    if len(value) <= MAX_QUOTED_CHARS:
        return repr(value)
    return f"{value[:MAX_QUOTED_CHARS]!r}... ({len(value)} characters)"


def cut_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` with its middle cut out when it is longer than ``limit``: the start (what is wrong) and the end (why)
    stay readable."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]} ...({len(text) - 2 * keep} characters cut)... {text[-keep:]}"


def format_path(path: FieldPath) -> str:
    """``("spec", "http", 0, "match", 0, "headers", "end-user")`` -> ``spec.http[0].match[0].headers.end-user``.

    A map key that is not a plain word (e.g. the label ``app.kubernetes.io/name``) is quoted, so that the path
    stays unambiguous: ``metadata.labels["app.kubernetes.io/name"]``.
    """
    out: list[str] = []
    for segment in path:
        if isinstance(segment, int):
            out.append(f"[{segment}]")
        elif _PLAIN_KEY.match(segment):
            out.append(f".{segment}" if out else segment)
        else:
            out.append(f"[{json.dumps(segment)}]")
    return "".join(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigError:
    """One problem in config.

    ``key`` is None when the problem has no resource (a YAML syntax error) or the resource has no usable identity
    (no kind or no metadata.name). ``path`` is empty when the problem is about a whole document or file.
    For a file, ``origin``'s line is the line of the field named by ``path`` (or of its nearest parent present in
    the file).
    """

    origin: Origin
    key: ConfigKey | None
    path: str
    message: str

    def __post_init__(self) -> None:
        # the one place every problem passes: a huge value quoted by a message or a huge map key in the path is cut
        # here, whatever produced it (a validator, the store, the YAML reader)
        object.__setattr__(self, "path", cut_text(self.path))
        object.__setattr__(self, "message", cut_text(self.message))

    def __str__(self) -> str:
        parts = [str(self.origin)]
        if self.key is not None:
            parts.append(f"{self.key.kind} {self.key.namespace}/{cut_text(self.key.name, MAX_QUOTED_CHARS)}")
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)


class ConfigSourceError(Exception):
    """A config source cannot run at all (its directory is missing or is not a directory)."""
