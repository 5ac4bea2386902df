"""What every ``validate_<kind>`` module shares: the problem sink and typed field readers (``Fields``).

Validation never stops at the first problem (Istio's ``pkg/config/validation`` style): readers report into a
``Problems`` and return ``None`` for a bad or missing value, and validators carry on with what they have. A resource
is accepted only when its ``Problems`` stays empty, so partial values built along the way are never used.

Explicit YAML ``null`` counts as "not set", as in protobuf JSON. Where a field's *presence* decides something ("at
least one of"), ``is_set`` follows proto3: an empty string and an empty list are not set either (so
``redirect: {uri: ""}`` sets nothing). A list that is given must have entries where an empty one would mean nothing
(``route: []``): readers ask for that with ``mappings(..., required=...)``. Values are quoted into messages with
``errors.quote`` only, which cuts long ones.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Mapping
from datetime import date
from typing import Any

from meshplane.durations import DurationError, parse_timeout
from pilot.config.errors import FieldPath, quote
from pilot.config.istio_api import ISTIO_MESSAGES, unsupported_message
from pilot.config.types import Labels, frozen_labels
from pilot.config.validate_names import label_errors

__all__ = [
    "INT32_MAX",
    "UINT32_MAX",
    "Fields",
    "Problems",
    "describe",
    "port_number",
    "selector_labels",
]

INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1


class Problems:
    """Every problem found in one document, as (field path, message), in the order found."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[tuple[FieldPath, str]] = []

    def add(self, path: FieldPath, message: str) -> None:
        self._items.append((path, message))

    def add_if(self, path: FieldPath, message: str | None) -> None:
        if message is not None:
            self._items.append((path, message))

    @property
    def items(self) -> tuple[tuple[FieldPath, str], ...]:
        return tuple(self._items)

    def __len__(self) -> int:
        return len(self._items)


def describe(value: Any) -> str:
    """How a YAML value reads in a message: ``string '80'``, ``integer 80``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {int(value)}"
    if isinstance(value, float):
        return f"number {float(value)}"
    if isinstance(value, str):
        return f"string {quote(str(value))}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, date):
        return f"date {value.isoformat()} (quote it to make it a string)"
    if isinstance(value, bytes):
        return "binary data"
    return type(value).__name__


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    if len(name) > 100:  # no field is named like that; difflib on a huge string is slow
        return ""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Fields:
    """A YAML mapping under validation at ``path``. Readers report problems and return None when unusable."""

    __slots__ = ("node", "path", "problems")

    def __init__(self, node: Mapping[Any, Any], path: FieldPath, problems: Problems) -> None:
        self.node = node
        self.path = path
        self.problems = problems

    @staticmethod
    def open(
        value: Any,
        path: FieldPath,
        problems: Problems,
        *,
        known: Collection[str],
        unsupported: Collection[str] = (),
        ignored: Collection[str] = (),
        message: str | None = None,
    ) -> Fields | None:
        """Check that ``value`` is a mapping whose keys are all known: ``unsupported`` ones, and (given the Istio
        ``message`` it is, see ``istio_api``) the message's other fields, are "not supported by meshplane yet";
        a field Istio removed says what replaces it; other names get "unknown field" with a did-you-mean;
        ``ignored`` ones pass silently."""
        if not isinstance(value, Mapping):
            problems.add(path, f"expected a mapping, got {describe(value)}")
            return None
        for key in value:
            if not isinstance(key, str):
                problems.add((*path, str(key)), f"field names must be strings, got {describe(key)}")
            elif key in known or key in ignored:
                continue
            elif key in unsupported:
                problems.add((*path, key), "not supported by meshplane yet")
            elif message is not None and (text := unsupported_message(message, key)) is not None:
                problems.add((*path, key), text)
            else:
                candidates = [*known, *unsupported, *ISTIO_MESSAGES.get(message or "", ())]
                problems.add((*path, key), f"unknown field {quote(key)}{_did_you_mean(key, candidates)}")
        return Fields(value, path, problems)

    def at(self, name: str | int, *more: str | int) -> FieldPath:
        return (*self.path, name, *more)

    def has(self, name: str) -> bool:
        """The field is present (not missing, not null)."""
        return self.node.get(name) is not None

    def is_set(self, name: str) -> bool:
        """The field is set in proto3's sense: present, and not an empty string or an empty list."""
        value = self.node.get(name)
        return value is not None and value != "" and value != []

    def report(self, name: str | None, message: str) -> None:
        """Report a problem on field ``name`` (None: on this mapping itself)."""
        self.problems.add(self.path if name is None else self.at(name), message)

    def _value(self, name: str, required: bool) -> Any:
        value = self.node.get(name)
        if value is None and required:
            self.report(name, "required field is missing")
        return value

    def _wrong_type(self, name: str, expected: str, value: Any) -> None:
        self.report(name, f"expected {expected}, got {describe(value)}")

    def string(self, name: str, *, required: bool = False) -> str | None:
        """A string; when ``required`` it must also be non-empty (proto3: empty is unset)."""
        value = self._value(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self._wrong_type(name, "a string", value)
            return None
        if required and not value:
            self.report(name, "must not be empty")
            return None
        return str(value)

    def integer(self, name: str, *, minimum: int, maximum: int, required: bool = False) -> int | None:
        value = self._value(name, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self._wrong_type(name, "an integer", value)
            return None
        number = int(value)
        if not minimum <= number <= maximum:
            bound = f"at least {minimum}" if maximum in (INT32_MAX, UINT32_MAX) else f"between {minimum} and {maximum}"
            self.report(name, f"must be {bound}, got {number}")
            return None
        return number

    def number(self, name: str, *, minimum: float, maximum: float, required: bool = False) -> float | None:
        value = self._value(name, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._wrong_type(name, "a number", value)
            return None
        number = float(value)
        if not minimum <= number <= maximum:
            self.report(name, f"must be between {minimum:g} and {maximum:g}, got {number:g}")
            return None
        return number

    def boolean(self, name: str) -> bool | None:
        value = self._value(name, False)
        if value is None:
            return None
        if not isinstance(value, bool):
            self._wrong_type(name, "a boolean (true or false)", value)
            return None
        return bool(value)

    def timeout(self, name: str, *, required: bool = False) -> float | None:
        """A timeout or interval (Go duration string, at least 1ms), in seconds."""
        value = self._value(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self._wrong_type(name, "a duration string like '10s' or '100ms'", value)
            return None
        try:
            return parse_timeout(value)
        except DurationError as exc:
            self.report(name, str(exc))
            return None

    def enum(self, name: str, choices: Collection[str], *, ignore_case: bool = False) -> str | None:
        """One of ``choices`` (normalized to its spelling in ``choices`` when ``ignore_case``)."""
        value = self._value(name, False)
        if value is None:
            return None
        if not isinstance(value, str):
            self._wrong_type(name, "a string", value)
            return None
        for choice in choices:
            if value == choice or (ignore_case and value.upper() == choice.upper()):
                return choice
        hint = _did_you_mean(value.upper() if ignore_case else value, choices)
        self.report(name, f"invalid value {quote(str(value))}: expected one of {', '.join(choices)}{hint}")
        return None

    def strings(self, name: str, *, required: bool = False) -> tuple[str, ...] | None:
        """A list of strings (None if any item is not a string: every bad item is reported)."""
        value = self._value(name, required)
        if value is None:
            return None
        if not isinstance(value, list):
            self._wrong_type(name, "a list of strings", value)
            return None
        if required and not value:
            self.report(name, "must have at least one entry")
            return None
        ok = True
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.problems.add(self.at(name, index), f"expected a string, got {describe(item)}")
                ok = False
        return tuple(str(item) for item in value) if ok else None

    def string_map(self, name: str) -> dict[str, str] | None:
        """A mapping of string to string (None if any value is not a string: every bad value is reported)."""
        value = self._value(name, False)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self._wrong_type(name, "a mapping of strings", value)
            return None
        ok = True
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, str):
                bad = key if not isinstance(key, str) else item
                self.problems.add(self.at(name, str(key)), f"expected a string, got {describe(bad)}")
                ok = False
        return {str(k): str(v) for k, v in value.items()} if ok else None

    def labels(self, name: str, *, required: bool = False) -> dict[str, str] | None:
        """Kubernetes labels: a string map whose keys and values follow the label syntax."""
        if required and not self.has(name):
            self.report(name, "required field is missing")
            return None
        labels = self.string_map(name)
        if labels is None:
            return None
        if required and not labels:
            self.report(name, "must have at least one label")
            return None
        for key, message in label_errors(labels):
            self.problems.add(self.at(name, key), message)
        return labels

    def mapping(
        self,
        name: str,
        *,
        known: Collection[str],
        unsupported: Collection[str] = (),
        ignored: Collection[str] = (),
        required: bool = False,
        message: str | None = None,
    ) -> Fields | None:
        """The mapping at ``name`` (Istio ``message``, if given), opened as ``Fields.open`` does."""
        value = self._value(name, required)
        if value is None:
            return None
        return Fields.open(
            value, self.at(name), self.problems, known=known, unsupported=unsupported, ignored=ignored, message=message
        )

    def mappings(
        self,
        name: str,
        *,
        known: Collection[str],
        unsupported: Collection[str] = (),
        required: bool = False,
        message: str | None = None,
    ) -> list[Fields]:
        """A list of mappings; items that are not mappings are reported and left out."""
        value = self._value(name, required)
        if value is None:
            return []
        if not isinstance(value, list):
            self._wrong_type(name, "a list", value)
            return []
        if required and not value:
            self.report(name, "must have at least one entry")
        items = [
            Fields.open(
                item, self.at(name, index), self.problems, known=known, unsupported=unsupported, message=message
            )
            for index, item in enumerate(value)
        ]
        return [item for item in items if item is not None]

    def entries(self, name: str) -> list[tuple[str, Any, FieldPath]]:
        """The (key, value, path) of a mapping with free-form keys (e.g. header names)."""
        value = self._value(name, False)
        if value is None:
            return []
        if not isinstance(value, Mapping):
            self._wrong_type(name, "a mapping", value)
            return []
        out: list[tuple[str, Any, FieldPath]] = []
        for key, item in value.items():
            if not isinstance(key, str):
                self.problems.add(self.at(name, str(key)), f"keys must be strings, got {describe(key)}")
                continue
            out.append((key, item, self.at(name, key)))
        return out

    def exclusive(self, names: Collection[str], *, required: bool = False) -> str | None:
        """At most one (exactly one when ``required``) of ``names`` is present; returns the one present, if any.

        Presence, not ``is_set``: a oneof member set to "" is set (its reader checks the value), and a list given
        empty is reported by its reader (``mappings(..., required=True)``), not taken for a missing one."""
        present = [name for name in names if self.has(name)]
        listed = ", ".join(names)
        if len(present) > 1:
            self.report(None, f"only one of {listed} may be set, got {', '.join(present)}")
            return None
        if not present:
            if required:
                self.report(None, f"one of {listed} is required")
            return None
        return present[0]


_SELECTOR_FIELDS = ("matchLabels",)
_DIGITS = re.compile(r"[0-9]+")


def selector_labels(spec: Fields) -> Labels | None:
    """``selector.matchLabels`` of a security or Mixer policy (Kubernetes label syntax, so no wildcards); an empty
    selector is no selector (the policy is namespace-wide or, in the root namespace, mesh-wide), as in Istio."""
    selector = spec.mapping("selector", known=_SELECTOR_FIELDS, message="type.WorkloadSelector")
    if selector is None:
        return None
    labels = selector.labels("matchLabels")
    return frozen_labels(labels) if labels else None


def port_number(value: object) -> int | None:
    """A port 1-65535 written as an integer or a string of ASCII digits (YAML map keys, JSON keys); else None."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _DIGITS.fullmatch(value))):
        return None
    number = int(value)
    return number if 1 <= number <= 65535 else None
