"""bench/sidecar_scope.py: the scoped proxy gets its namespace's share of every type, the unscoped one everything."""

from __future__ import annotations

import pytest

from bench import sidecar_scope


def test_a_small_mesh_scoped_to_its_namespace() -> None:
    result = sidecar_scope.run(namespaces=3, services=2)
    without, scoped = result["without_sidecar"], result["with_sidecar"]
    assert (without["sidecar"], scoped["sidecar"]) == (None, "Sidecar/ns0/default")
    # 6 services x (default + 2 subsets) + 3 fixed clusters, and 2 services' worth under the Sidecar
    assert (without["CDS"]["resources"], scoped["CDS"]["resources"]) == (21, 9)
    assert (without["EDS"]["endpoints"], scoped["EDS"]["endpoints"]) == (24, 8)
    assert (without["RDS"]["virtual_hosts"], scoped["RDS"]["virtual_hosts"]) == (7, 3)  # + the catch-all
    assert (without["NDS"]["names"], scoped["NDS"]["names"]) == (6, 2)
    assert scoped["CDS"]["bytes"] < without["CDS"]["bytes"]
    assert "CDS resources" in sidecar_scope.report(result)


@pytest.mark.parametrize("argv", [["--namespaces", "0"], ["--services", "0"]], ids=["namespaces", "services"])
def test_sizes_must_be_positive(argv: list[str]) -> None:
    assert sidecar_scope.main(argv) == 2
