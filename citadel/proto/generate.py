"""Generate the repository's protobuf/gRPC Python code from the ``.proto`` files under each of ``PROTO_ROOTS``.

Citadel's CSR API (``citadel/proto``) and Istio's NDS name table, the contract between Pilot and the sidecar agent
(``meshplane/proto``). Each proto root is an include root and the output root is the repository, so
``citadel/proto/citadel/v1/ca.proto`` becomes the package ``citadel.v1`` (``ca_pb2.py``, ``ca_pb2.pyi``,
``ca_pb2_grpc.py``) and ``meshplane/proto/meshplane/nds/v1/nds.proto`` the package ``meshplane.nds.v1``, and the
generated imports (``from citadel.v1 import ca_pb2``) resolve. The output is gitignored and rebuilt at build time: by
``setup.py``'s ``build_py`` hook (``pip install .``, ``pip install -e .``) and by the Makefile (``make venv``,
``make test``). Run by hand with ``python citadel/proto/generate.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["PROTO_ROOT", "PROTO_ROOTS", "generate", "generated_packages"]

PROTO_ROOT = Path("citadel") / "proto"
PROTO_ROOTS = (PROTO_ROOT, Path("meshplane") / "proto")
_INIT = '"""Generated from {root} by citadel/proto/generate.py at build time; do not edit, do not commit."""\n'


def generate(repository: Path) -> list[Path]:
    """Run protoc for the ``.proto`` files of every proto root; the generated files, sorted."""
    return sorted(path for root in PROTO_ROOTS for path in _generate_root(repository, root))


def generated_packages(repository: Path, generated: list[Path]) -> list[str]:
    """The dotted names of the packages among ``generated`` (their ``__init__.py``), sorted."""
    inits = (path.parent.relative_to(repository) for path in generated if path.name == "__init__.py")
    return sorted(".".join(directory.parts) for directory in inits)


def _generate_root(repository: Path, root: Path) -> list[Path]:
    proto_root = repository / root
    sources = sorted(proto_root.rglob("*.proto"))
    if not sources:
        raise FileNotFoundError(f"no .proto files under {proto_root}")
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={proto_root}",
        f"--python_out={repository}",
        f"--pyi_out={repository}",
        f"--grpc_python_out={repository}",
        *(str(source) for source in sources),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        missing = "No module named grpc_tools" in result.stderr
        hint = " (install grpcio-tools: pip install grpcio-tools)" if missing else ""
        raise RuntimeError(f"protoc failed{hint}: {' '.join(command)}\n{result.stderr.strip()}")
    generated: set[Path] = set()
    for source in sources:
        package = repository / source.parent.relative_to(proto_root)
        directory = package
        marker = _INIT.format(root=root.as_posix())
        while directory != repository:  # every generated directory is a package (citadel/ already is one)
            init = directory / "__init__.py"
            if not init.exists():
                init.write_text(marker)
            if init.read_text() == marker:
                generated.add(init)
            directory = directory.parent
        stem = source.stem
        generated.update(package / f"{stem}{suffix}" for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))
    missing_outputs = [path for path in generated if not path.exists()]
    if missing_outputs:
        raise RuntimeError(f"protoc did not write {', '.join(map(str, sorted(missing_outputs)))}")
    return sorted(generated)


if __name__ == "__main__":
    for path in generate(Path(__file__).resolve().parents[2]):
        print(path)
