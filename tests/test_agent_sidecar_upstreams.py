"""``meshplane-agent sidecar``'s DNS upstreams: its flags, or the nameservers of the pod's own resolv.conf
(``--dns-upstreams-from``, what the sidecar injector passes: kube-dns on kind, the kubelet's 127.0.0.1 on the
local cluster, never the node's resolver unless the kubelet gave it to the pod)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from agent.container_sidecar import _upstreams, add_sidecar_arguments

REQUIRED = ["--workload", "w", "--ip", "10.244.0.5", "--pilot", "10.96.0.20:15010"]
CASES = [
    ("default-docker", [], None, ["127.0.0.11"]),
    ("flags", ["--dns-upstream", "10.0.0.10", "--dns-upstream", "10.0.0.11:53"], None, ["10.0.0.10", "10.0.0.11:53"]),
    ("kind-kube-dns", [], "search ns.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n", ["10.96.0.10:53"]),
    ("local-cluster-loopback", [], "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n", ["127.0.0.1:53"]),
    ("no-nameserver", [], "options ndots:5\n", []),
]  # fmt: skip


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_sidecar_arguments(parser)
    return parser.parse_args([*REQUIRED, *argv])


@pytest.mark.parametrize(("flags", "resolv", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_upstreams(tmp_path: Path, flags: list[str], resolv: str | None, expected: list[str]) -> None:
    if resolv is not None:
        (tmp_path / "resolv.conf").write_text(resolv)
        flags = [*flags, "--dns-upstreams-from", str(tmp_path / "resolv.conf")]
    assert _upstreams(_parse(flags)) == expected


def test_upstreams_flags_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(["--dns-upstream", "10.0.0.10", "--dns-upstreams-from", "/etc/resolv.conf"])
    assert "not allowed with argument" in capsys.readouterr().err
