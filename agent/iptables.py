"""Apply and remove the capture rules in the current network namespace with Debian's ``iptables-restore``.

Both are idempotent: ``install_capture`` removes meshplane's chains first (a re-run after a crash starts clean),
``remove_capture`` deletes only meshplane's chains and the jumps to them (``removal_rules``), so rules of anyone
else in the same namespace stay. Any backend ``iptables`` is linked against works (Debian's default, nftables)."""

from __future__ import annotations

import shutil
import subprocess

from agent.capture import CaptureOptions, capture_rules, removal_rules

__all__ = ["IptablesError", "install_capture", "iptables_missing", "remove_capture", "restore", "save"]

_TOOLS = ("iptables", "iptables-save", "iptables-restore")


class IptablesError(RuntimeError):
    """An iptables command failed; the message has its stderr."""


def iptables_missing() -> str | None:
    """Why capture cannot work here (a tool not on PATH), or None."""
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    return f"not on PATH: {', '.join(missing)} (Debian: apt-get install -y iptables)" if missing else None


def _run(command: list[str], text: str | None = None, netns: str | None = None) -> str:
    if netns is not None:
        command = ["ip", "netns", "exec", netns, *command]
    try:
        done = subprocess.run(command, input=text, capture_output=True, text=True, check=False, timeout=30)
    except FileNotFoundError:
        raise IptablesError(f"{command[0]}: {iptables_missing()}") from None
    if done.returncode != 0:
        raise IptablesError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def save(netns: str | None = None) -> str:
    """``iptables-save`` of the current network namespace, or of the named one (every table)."""
    return _run(["iptables-save"], netns=netns)


def restore(text: str, netns: str | None = None) -> None:
    """``iptables-restore --noflush``: the tables' other rules stay."""
    if text:
        _run(["iptables-restore", "--noflush"], text, netns)


def remove_capture(netns: str | None = None) -> bool:
    """Remove meshplane's chains and jumps; True when there was something to remove."""
    text = removal_rules(save(netns))
    restore(text, netns)
    return bool(text)


def install_capture(options: CaptureOptions, netns: str | None = None) -> str:
    """Install (re-install) the capture for ``options`` (in ``netns`` when given, else here); returns the rules."""
    remove_capture(netns)
    text = capture_rules(options)
    restore(text, netns)
    return text
