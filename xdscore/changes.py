"""What changed between two resource sets of one type: computed once per pair of groups, shared by every stream.

After a small config change (one WorkloadEntry: two ClusterLoadAssignments out of thousands) a push must not compare
every name a thousand times on the event loop. The names that differ between an old and a new ``ResourceGroup``
are computed once per pair and memoized (``ChangeMemo``): for the scope groups that replaced the previous
snapshot's, in the worker thread that builds the snapshot; for any other pair (a stream that skipped snapshots), the
first time a stream asks. A stream then only intersects the changed names with the names it watches
(``plan.py``).

Two resource sets are compared group by group, in order: a proxy's groups are its scopes' groups, then its own.
This is exact whatever the alignment as long as no name is claimed by two groups of one set (``MergedResources``
``unique``): a name that moved from one group to another shows up as a candidate on both sides and is filtered
against the merged sets. When a set is not unique, ``ChangeMemo.between`` answers None: compare everything.
"""

from __future__ import annotations

import threading
from collections.abc import Set
from dataclasses import dataclass

from xdscore.resources import EMPTY_GROUP, ProxyResources, ResourceGroup

__all__ = ["NO_GROUP_CHANGES", "ChangeMemo", "GroupChanges", "ResourceChanges", "group_changes"]

_MEMO_MIN_SIZE = 64  # pairs of smaller groups (a proxy's own part) are compared directly, not remembered


@dataclass(frozen=True, slots=True)
class GroupChanges:
    """How a group's resources differ from an older group's."""

    updated: frozenset[str]  # in the new group: absent from the old one, or with another version
    removed: frozenset[str]  # in the old group, absent from the new one


NO_GROUP_CHANGES = GroupChanges(frozenset(), frozenset())


def group_changes(old: ResourceGroup, new: ResourceGroup) -> GroupChanges:
    """Compare two groups name by name (CPU work proportional to their size)."""
    if old is new:
        return NO_GROUP_CHANGES
    before, after = old.resources, new.resources
    updated = frozenset(
        name for name, resource in after.items() if (was := before.get(name)) is None or was.version != resource.version
    )
    removed = frozenset(name for name in before if name not in after)
    return GroupChanges(updated, removed) if updated or removed else NO_GROUP_CHANGES


def _worth_remembering(old: ResourceGroup, new: ResourceGroup) -> bool:
    return len(old.resources) + len(new.resources) >= _MEMO_MIN_SIZE


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceChanges:
    """How one proxy's resources of one type differ from ``since`` (what its stream was last planned against)."""

    since: ProxyResources
    updated: Set[str]  # names whose resource is new or has another version than in ``since``
    added: Set[str]  # the names of ``updated`` that ``since`` did not have
    removed: Set[str]  # names ``since`` had and the current set does not


class ChangeMemo:
    """``GroupChanges`` per (old group, new group) pair, each computed once; safe to use from several threads.

    An entry keeps both groups alive (its key is their identities), so a memo should live as long as the snapshot
    whose groups are the new side: ``ResourceCache`` holds one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pairs: dict[tuple[int, int], tuple[ResourceGroup, ResourceGroup, GroupChanges]] = {}

    def __len__(self) -> int:
        return len(self._pairs)

    def prepare(self, old: ResourceGroup, new: ResourceGroup) -> None:
        """Compute the pair's changes now (a worker thread), if it is a pair that is remembered."""
        if old is not new and _worth_remembering(old, new):
            self.group(old, new)

    def group(self, old: ResourceGroup, new: ResourceGroup) -> GroupChanges:
        """The changes from ``old`` to ``new``, computed at most once per pair (small pairs: every time)."""
        if old is new:
            return NO_GROUP_CHANGES
        if not _worth_remembering(old, new):
            return group_changes(old, new)
        key = (id(old), id(new))
        entry = self._pairs.get(key)
        if entry is None:
            with self._lock:
                entry = self._pairs.get(key)
                if entry is None:
                    entry = self._pairs[key] = (old, new, group_changes(old, new))
        return entry[2]

    def between(self, since: ProxyResources, current: ProxyResources) -> ResourceChanges | None:
        """How ``current`` differs from ``since``; None when they cannot be compared group by group."""
        if not (since.resources.unique and current.resources.unique):
            return None
        before, after = since.groups, current.groups
        updated: Set[str] = frozenset()
        removed: Set[str] = frozenset()
        several = False
        for index in range(max(len(before), len(after))):
            changes = self.group(
                before[index] if index < len(before) else EMPTY_GROUP,
                after[index] if index < len(after) else EMPTY_GROUP,
            )
            if changes is NO_GROUP_CHANGES:
                continue
            if updated or removed:
                several = True
                updated, removed = updated | changes.updated, removed | changes.removed
            else:
                updated, removed = changes.updated, changes.removed
        if not updated and not removed:
            return ResourceChanges(since=since, updated=updated, added=updated, removed=removed)
        old, new = since.resources, current.resources
        added = frozenset(name for name in updated if name not in old)
        if several:  # a name may have moved between groups: keep only real differences
            updated = frozenset(name for name in updated if name in added or old[name].version != new[name].version)
            removed = frozenset(name for name in removed if name not in new)
        return ResourceChanges(since=since, updated=updated, added=added, removed=removed)
