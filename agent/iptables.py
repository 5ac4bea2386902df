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


def _run(command: list[str], text: str | None = None) -> str:
    try:
        done = subprocess.run(command, input=text, capture_output=True, text=True, check=False, timeout=30)
    except FileNotFoundError:
        raise IptablesError(f"{command[0]}: {iptables_missing()}") from None
    if done.returncode != 0:
        raise IptablesError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def save() -> str:
    """``iptables-save`` of the current network namespace (every table)."""
    return _run(["iptables-save"])


def restore(text: str) -> None:
    """``iptables-restore --noflush``: the tables' other rules stay."""
    if text:
        _run(["iptables-restore", "--noflush"], text)


def remove_capture() -> bool:
    """Remove meshplane's chains and jumps; True when there was something to remove."""
    text = removal_rules(save())
    restore(text)
    return bool(text)


def install_capture(options: CaptureOptions) -> str:
    """Install (re-install) the capture for ``options``; returns the rules applied."""
    remove_capture()
    text = capture_rules(options)
    restore(text)
    return text
