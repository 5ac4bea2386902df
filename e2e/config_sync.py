"""Config applied as files in Pilot's (and Mixer's) config directory, and the wait until the mesh took it in: Pilot's
``/debug/configz`` changed, its snapshot caught up, every expected sidecar ACKed, and Mixer put the same config in
force. Used by the pod meshes (``e2e.pod_mesh``, the demo's too)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from e2e.control_plane import ControlPlaneError, MixerProcess, PilotError, PilotProcess

__all__ = ["ConfigSync", "MeshNotSyncedError", "mixer_in_step", "sidecar_problems"]

_POLL_INTERVAL_SECONDS = 0.1


class MeshNotSyncedError(AssertionError):
    """Pilot's view did not converge in time; the message says what was still missing."""


def _fingerprint(configz: Mapping[str, Any]) -> str:
    """What Pilot made of the config directory: an accepted change moves ``version``, a rejected one only changes
    ``rejected``, so a change is seen by comparing the whole document."""
    return json.dumps(configz, sort_keys=True)


def _accepted(configz: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What a component accepted, by resource and content: Pilot and Mixer count versions on their own."""
    return sorted((f"{a['kind']}/{a['namespace']}/{a['name']}", a["hash"]) for a in configz.get("accepted", ()))


def mixer_in_step(mixer_configz: Mapping[str, Any], pilot_configz: Mapping[str, Any]) -> bool:
    """Whether Mixer accepted what Pilot accepted (by resource and content) and put it in force."""
    return _accepted(mixer_configz) == _accepted(pilot_configz) and mixer_configz.get(
        "in_force_version"
    ) == mixer_configz.get("version")


def sidecar_problems(proxies: Iterable[Mapping[str, Any]], expected: Mapping[str, str]) -> list[str]:
    """What keeps the sidecars ``expected`` (workload or pod name -> node id) from being in step, given the streams
    Pilot (or every replica of it) lists in ``/debug/syncz``: a node has two, its Envoy's ADS and its agent's NDS."""
    streams: dict[str, list[Mapping[str, Any]]] = {}
    for proxy in proxies:
        streams.setdefault(proxy.get("id", ""), []).append(proxy)
    problems: list[str] = []
    for name, node_id in expected.items():
        if node_id not in streams:
            problems.append(f"{name}: sidecar not connected to Pilot")
        problems += [f"{name}: not synced: {p.get('types')}" for p in streams.get(node_id, ()) if not p.get("synced")]
    return problems


class ConfigSync:
    """``apply``/``remove`` files in ``config_dir``; ``wait_synced`` until Pilot, the sidecars ``proxies()`` names
    (workload name -> node id) and Mixer (when given and running) took them in."""

    def __init__(
        self,
        *,
        config_dir: Path,
        pilot: PilotProcess,
        mixer: MixerProcess | None,
        proxies: Callable[[], Mapping[str, str]],
    ) -> None:
        self.config_dir = config_dir
        self.pilot = pilot
        self.mixer = mixer
        self.proxies = proxies
        # /debug/configz as it was before the first apply/remove not yet waited for (None: nothing pending, or
        # Pilot was down so there is nothing to compare with).
        self._configz_before: str | None = None
        self._change_pending = False

    def forget(self) -> None:
        """A new Pilot starts its versions over: nothing to compare with."""
        self._configz_before, self._change_pending = None, False

    async def _note_change(self) -> None:
        if self._change_pending or not self.pilot.running:
            return
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, PilotError):
            self._configz_before = _fingerprint(await self.pilot.configz())
        self._change_pending = True

    async def apply(self, name: str, yaml_text: str) -> Path:
        """Write ``<config dir>/<name>.yaml`` atomically (Pilot watches the directory). Replaces an earlier apply
        of the same name. Follow with ``wait_synced()``."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"name: a plain file name without '/' or leading '.', got {name!r}")
        path = self.config_dir / f"{name}.yaml"
        if path.exists() and path.read_text() == yaml_text:
            return path  # Pilot would see no change, and its version would not move for wait_synced
        await self._note_change()
        temporary = self.config_dir / f".{name}.yaml.tmp"
        temporary.write_text(yaml_text)
        temporary.replace(path)
        return path

    async def remove(self, name: str) -> None:
        await self._note_change()
        (self.config_dir / f"{name}.yaml").unlink()

    def _unsynced(self, configz: Mapping[str, Any], syncz: Mapping[str, Any]) -> list[str]:
        problems: list[str] = []
        version = int(configz.get("version", 0))
        if self._change_pending and self._configz_before == _fingerprint(configz):
            problems.append(f"Pilot's /debug/configz has not changed since the last apply/remove (version {version})")
        snapshot_version = int(syncz.get("snapshot_version", -1))
        if snapshot_version < version:
            problems.append(f"snapshot version {snapshot_version} behind config version {version}")
        return problems + sidecar_problems(syncz.get("proxies", ()), self.proxies())

    async def wait_synced(self, timeout: float = 15.0) -> dict[str, Any]:
        """Until Pilot took in every change made through ``apply``/``remove`` (its ``/debug/configz`` changed: a new
        version, or only new rejections), its snapshot caught up with that version, and every expected sidecar
        ACKed it. Returns ``/debug/configz`` (assert on its ``rejected`` list). A change that Pilot sees as no
        change at all (say, a file of comments) never completes: that is reported as a timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        problems = ["Pilot's monitor did not answer"]
        while True:
            if not self.pilot.running:
                raise PilotError(f"pilot is not running; log {self.pilot.log_path}:\n{self.pilot.log_tail()}")
            try:
                configz = await self.pilot.configz()
                syncz = await self.pilot.syncz()
                mixer_configz = await self.mixer.configz() if self.mixer is not None and self.mixer.running else None
            except (aiohttp.ClientError, TimeoutError, ControlPlaneError) as exc:
                problems = [f"monitor: {type(exc).__name__}: {exc}"]
            else:
                problems = self._unsynced(configz, syncz)
                if mixer_configz is not None and not mixer_in_step(mixer_configz, configz):
                    problems.append("Mixer has not put in force the config Pilot accepted")
                if not problems:
                    self.forget()
                    return configz
            if asyncio.get_running_loop().time() >= deadline:
                raise MeshNotSyncedError(f"mesh not synced after {timeout:g}s: " + "; ".join(problems))
            await asyncio.sleep(_POLL_INTERVAL_SECONDS)
