"""The components' import graph: shared contracts in ``meshplane``, no cycles between pilot, mixer and citadel.

Read from the source (every ``import`` and ``from ... import`` at any depth, so a late import inside a function
counts too), and checked at run time for the imports that used to pull in a whole other component.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# component -> the other top-level packages it may import
ALLOWED: dict[str, set[str]] = {
    "meshplane": set(),
    "xdscore": {"meshplane"},
    "citadel": {"meshplane", "xdscore"},
    "pilot": {"meshplane", "xdscore"},
    "mixer": {"meshplane", "pilot"},  # Mixer reads config and the mesh model through Pilot's config layer
    "envoy_bootstrap": {"meshplane"},
    "agent": {"meshplane", "xdscore", "envoy_bootstrap"},  # the sidecar agent: capture, pods, DNS proxy
    "injector": {"meshplane", "agent", "citadel"},  # the webhook: agent's capture flags, a certificate from the CA
}
COMPONENTS = set(ALLOWED) | {"e2e", "bench"}


def _imports(component: str) -> set[tuple[str, str]]:
    """(imported top-level package, file) for every import of another component in ``component``'s sources."""
    found: set[tuple[str, str]] = set()
    for path in (ROOT / component).rglob("*.py"):
        if "v1" in path.relative_to(ROOT).parts:  # citadel.v1, meshplane.nds.v1: generated protobuf code
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in COMPONENTS and top != component:
                    found.add((top, str(path.relative_to(ROOT))))
    return found


@pytest.mark.parametrize("component", sorted(c for c in ALLOWED if (ROOT / c).is_dir()))
def test_component_imports_only_what_it_may(component: str) -> None:
    forbidden = sorted((top, file) for top, file in _imports(component) if top not in ALLOWED[component])
    assert forbidden == [], f"{component} imports {forbidden}"


def test_allowed_imports_have_no_cycle() -> None:
    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(
            nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})) for nxt in ALLOWED.get(start, ())
        )

    assert [c for c in ALLOWED if reaches(c, c, {c})] == []


@pytest.mark.parametrize(
    ("module", "not_loaded"),
    [
        ("pilot.model", ("citadel", "mixer")),
        ("pilot.generate.registry", ("citadel", "mixer")),
        ("citadel.server", ("pilot", "mixer")),
        ("envoy_bootstrap.bootstrap", ("pilot", "mixer", "citadel")),
        ("meshplane.names", ("pilot", "mixer", "citadel")),
        ("xdscore", ("pilot", "mixer", "citadel")),
    ],
    ids=lambda value: value if isinstance(value, str) else "+".join(value),
)
def test_importing_a_component_loads_no_other(module: str, not_loaded: tuple[str, ...]) -> None:
    script = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    run = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    loaded = set(run.stdout.split())
    assert loaded.isdisjoint(not_loaded), f"importing {module} loaded {sorted(loaded & set(not_loaded))}"


# package inside pilot -> pilot packages it must never import. The Kubernetes registry (pilot.kube) sits above the
# model and feeds it through the registry seam: config, model and generate never know it, it never reaches xDS.
PILOT_LAYERS: dict[str, set[str]] = {
    "config": {"kube"},
    "model": {"kube"},
    "generate": {"kube"},
    "kube": {"generate", "xds"},
}


@pytest.mark.parametrize("layer", sorted(PILOT_LAYERS))
def test_pilot_layers_import_one_way(layer: str) -> None:
    found = set()
    for path in (ROOT / "pilot" / layer).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if parts[0] == "pilot" and len(parts) > 1 and parts[1] in PILOT_LAYERS[layer]:
                    found.add((module, str(path.relative_to(ROOT))))
    assert sorted(found) == []
